"""The one RL trainer: SFT, GRPO and GSPO on TRL with PEFT LoRA, domain-agnostic.

Public API (see docs/training.md):
- `config`: `PolicyConfig`, `LoraSettings`, `SFTSettings`, `GRPOSettings` (mode "grpo" | "gspo").
- `trainer`: `train_sft`, `train_grpo`, `TrainingResult`, `NonFiniteLossError`, `finite_metrics`.
- `rewards`: `SafeReward` (a reward that raises or returns None/NaN scores 0 and is counted).
- `group_filter`: `GroupFilter`, `ZeroVarianceFilter`, `LearnabilityFilter`.
- `policy`: `load_policy`, `generate`, `PolicyClient` (a trained checkpoint as an `LLMClient`).
- `data`: row checks with quarantine reason codes; `card`: store files; `integrity`: what a check verifies.
"""
