"""CLI commands: incidents (to be written)."""

COMMANDS: list = []
