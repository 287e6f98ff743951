"""ragkernels.fusion (being built)."""
