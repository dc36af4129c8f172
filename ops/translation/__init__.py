"""Translate-R1: multilingual tasks, translation backends, answer-preserving filter, gated reward, Pareto."""
