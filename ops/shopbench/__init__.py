"""Shopping Reasoning Bench domain ops: taxonomy, mission loading, drafting and model-under-test answers."""
