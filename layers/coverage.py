"""Layer module coverage (to be written)."""
