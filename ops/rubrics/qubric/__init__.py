"""QUBRIC: query-rubric pairs co-designed from teacher key points, filtered for learnability (docs/qubric.md).

- `queries`: open-ended queries from JSONL (Arena-Hard layout or `{"id", "query"}`), bad rows quarantined.
- `prompts`: the teacher's prompts (key points, scenario rewriting, naive narrowing, contrastive criteria).
- `teacher`: requests to the teacher and parsing of its JSON answers (invalid JSON is quarantined raw).
- `fabrication`: the fabricated-reference detector (a plain deterministic function).
- `contrastive`: criteria from the teacher-vs-policy gap, deduplicated, kept when they prefer the teacher.
- `learnability`: p̂ over G policy samples, the keep/drop rule with a reason for every drop.
- `reward`: the rubric reward Σ wᵢ·metᵢ / Σ wᵢ as a TRL reward callable; `pairs`: the artifact and its export.
- `pairwise`: Arena-Hard-style pairwise judging (both orders) and the bootstrap win rate.
- `no_update`: the "no learnable pair: no update" record GRPO stores instead of an adapter, and its check.
"""
