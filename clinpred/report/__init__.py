"""Results files, comparison tables across backends, plots."""
