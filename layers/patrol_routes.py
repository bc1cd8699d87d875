"""Layer module patrol_routes (to be written)."""
