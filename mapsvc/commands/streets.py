"""CLI commands: streets (to be written)."""

COMMANDS: list = []
