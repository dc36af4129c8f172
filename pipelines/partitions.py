"""Partition definitions, in their own module so that assets and pipelines share one object each."""

import os

import dagster as dg

# One partition per input file of web documents (its file name), registered by the shard sensor
# or by `python -m pipelines.sample`.
web_doc_shards = dg.DynamicPartitionsDefinition(name="web_doc_shards")

# Simulated customers come in cohorts of equal size; each cohort is simulated, questioned and
# evaluated independently, so a backfill over cohorts scales out and memory stays flat per cohort.
# The number of cohorts is configuration (`ASSAY_SHOPPING_COHORTS`), read when the code location loads.
SHOPPING_COHORTS = int(os.environ.get("ASSAY_SHOPPING_COHORTS") or "2")
customer_cohorts = dg.StaticPartitionsDefinition([f"cohort-{index:03d}" for index in range(SHOPPING_COHORTS)])


def cohort_index(cohort: str) -> int:
    """The number of a cohort partition key ("cohort-007" -> 7)."""
    return int(cohort.rsplit("-", 1)[1])


# One partition per model under test of the Shopping Reasoning Bench: a new model is a new
# partition and a backfill, not a code change (see `assets/shopbench`).
models_under_test = dg.DynamicPartitionsDefinition(name="models_under_test")

# One partition per expert-upcycling strategy (`assets/moe`): uniform copying, greedy by each utility,
# softmax sampling by the Fisher utility. Configuration (`ASSAY_MOE_STRATEGIES`, comma-separated),
# read when the code location loads; `ops.moe.selection.parse_strategy` validates the keys. The local
# profile keeps three (the baseline, the reference code's default utility and Fisher) to fit `make run`.
ALL_MOE_STRATEGIES = "uniform,greedy-weight_norm,greedy-saliency,greedy-grad_sq,greedy-fisher,softmax-fisher"
LOCAL_MOE_STRATEGIES = "uniform,greedy-weight_norm,greedy-fisher"
MOE_STRATEGIES = (
    os.environ.get("ASSAY_MOE_STRATEGIES")
    or (LOCAL_MOE_STRATEGIES if os.environ.get("ASSAY_PROFILE", "local") == "local" else ALL_MOE_STRATEGIES)
).split(",")
upcycling_strategies = dg.StaticPartitionsDefinition([key.strip() for key in MOE_STRATEGIES if key.strip()])

# Filter search (`assets/webdocs/proxies.py`): one partition per filter under search, so a backfill trains
# the proxy LMs of all filters in parallel. `filter_candidates` registers pass 1's filters and baselines,
# `compound_filters` pass 2's compounds, each as soon as it knows them.
curation_filters = dg.DynamicPartitionsDefinition(name="curation_filters")
curation_compounds = dg.DynamicPartitionsDefinition(name="curation_compounds")
