"""Tiny Mixtral-class MoE: pretraining, expert utilities, the upcycling operator and continued pretraining."""
