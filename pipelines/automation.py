"""Declarative automation of the web-docs chain: what refreshes after new shards, and how often.

The shard sensor (`pipelines.sensors`) turns new input files into partitions and shard runs. What
follows is declared on the assets instead of chained by run-status sensors: the corpus-wide assets
(summary, NMI, the three students, their agreement) refresh once after a burst of shards is in, and
every shard is relabelled once after the MLP filter changed. One `AutomationConditionSensorDefinition`
evaluates the conditions; the daemon (`make ui`, `dagster dev`) runs it.
"""

import dagster as dg

# Read every shard: refreshed together, in one run, once the shards of a burst are all in.
CORPUS_ASSETS = (
    "web_corpus_summary",
    "taxonomy_nmi",
    "mlp_filter",
    "encoder_classifier",
    "distilled_classifier",
    "student_agreement",
)
LABELLER = "mlp_filter"
LABELS = "web_doc_labels"


def _settled() -> dg.AutomationCondition:
    """Nothing upstream is missing (a registered shard not cleaned yet) or running, nor is the target."""
    return (
        ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )


def corpus_refresh() -> dg.AutomationCondition:
    """Once after any upstream update, when the burst has settled.

    Like `eager()` without its "missing" trigger: a code location with no shards yet requests nothing,
    and updates that arrive while other shards still run are remembered (`since_last_handled`) until
    the last one is in, so N shards give one refresh, not N.
    """
    return (dg.AutomationCondition.any_deps_updated().since_last_handled() & _settled()).with_label(
        "once after upstream updates, when no shard is pending"
    )


def relabel_after_filter() -> dg.AutomationCondition:
    """Every shard once after the MLP filter changed; a shard's own updates do not trigger it, so a new
    shard waits for the filter retrained on it instead of being labelled twice."""
    filter_updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated()).allow(
        dg.AssetSelection.assets(LABELLER)
    )
    return (filter_updated.since_last_handled() & _settled()).with_label(f"once after {LABELLER} changed")


def automation_conditions() -> dict[str, dg.AutomationCondition]:
    """The condition of each automated asset, by asset key."""
    return {**{key: corpus_refresh() for key in CORPUS_ASSETS}, LABELS: relabel_after_filter()}


def with_automation(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The assets definition with its automation conditions attached (unchanged if it has none)."""
    conditions = automation_conditions()
    keys = [key for key in assets_def.keys if key.to_user_string() in conditions]
    if not keys:
        return assets_def
    return assets_def.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(automation_condition=conditions[spec.key.to_user_string()])
            if spec.key in keys
            else spec
        )
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "assay_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
