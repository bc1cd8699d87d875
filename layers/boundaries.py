"""Layer module boundaries (to be written)."""
