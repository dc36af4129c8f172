"""Concept dictionaries (DACO): WordNet vocabulary, text stimuli, dictionary maths and sparse-coding steering."""
