"""Blueprint incidents (to be written)."""

from flask import Blueprint

bp = Blueprint("incidents", __name__)
