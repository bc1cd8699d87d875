"""CLI commands: staffing (to be written)."""

COMMANDS: list = []
