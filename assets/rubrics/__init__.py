"""QUBRIC (domain `rubrics`): open queries -> teacher key points -> scenario queries -> responses ->
contrastive rubrics -> learnability filter -> query-rubric pairs -> rubric-reward GRPO -> pairwise eval."""
