"""Translate-R1's gated policy on the shared RL trainer (`training.rl`), in GSPO mode."""
