"""CLI commands: demo (to be written)."""

COMMANDS: list = []
