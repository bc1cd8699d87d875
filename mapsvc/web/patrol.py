"""Blueprint patrol (to be written)."""

from flask import Blueprint

bp = Blueprint("patrol", __name__)
