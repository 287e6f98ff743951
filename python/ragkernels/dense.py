"""ragkernels.dense (being built)."""
