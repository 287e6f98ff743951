"""ragkernels.prf (being built)."""
