"""Tool-use domain ops: BFCL data loading and the BFCL-style AST reward (plain Python, no dagster)."""
