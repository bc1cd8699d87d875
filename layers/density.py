"""Layer module density (to be written)."""
