"""The project's one rubric engine, shared by `shopbench`, `rubrics` (QUBRIC) and the tool-use judge.

- `criteria`: the `Criterion` unit, its frame (`CRITERIA_SCHEMA`) and validation of raw records;
- `judge_prompt`: the HealthBench-style judge prompt and its JSON schema;
- `grading`: one judge call per (response, criterion) through an `LLMClient`, with retries and
  "ungraded" instead of a guess; the grades frame (`GRADES_SCHEMA`) and the judge's cost;
- `scores`: weighted pass rate, HealthBench score with bootstrap std, breakdowns;
- `reliability`: the judge's agreement and Cohen's kappa against human labels.
"""
