"""Layer module heatmap (to be written)."""
