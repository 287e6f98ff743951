"""Fuzz targets for every parser and loader of ragkernels (issue 14).

``python -m fuzz.run --list`` names them; docs/fuzzing.md says how to run
them, what counts as a finding and what the long runs found.
"""
