"""Torch side of the concept dictionaries: hidden-state capture, steering hooks and the TopK SAE."""
