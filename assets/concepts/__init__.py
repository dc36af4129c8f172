"""Concept dictionaries (DACO): vocabulary, stimuli, activations, dictionary, steering eval and the SAE."""
