"""Shopping domain ops: catalog, personas, trajectory simulation and long-context QA (plain Python, no dagster)."""
