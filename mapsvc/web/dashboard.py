"""Blueprint dashboard (to be written)."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__)
