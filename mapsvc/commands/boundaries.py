"""CLI commands: boundaries (to be written)."""

COMMANDS: list = []
