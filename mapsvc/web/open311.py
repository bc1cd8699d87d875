"""Blueprint open311 (to be written)."""

from flask import Blueprint

bp = Blueprint("open311", __name__)
