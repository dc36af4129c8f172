"""RESD (paper 7): reflections on failed rollouts, a persistent playbook, and self-distillation from it."""
