"""Jobs: one per stage of a domain, plus `sample`, which covers every asset on the bundled sample data."""

import dagster as dg

from pipelines.partitions import customer_cohorts, models_under_test, web_doc_shards

# Per shard: read, clean, quarantine, embed and annotate. What the shard sensor and backfills run.
webdocs_job = dg.define_asset_job(
    name="webdocs",
    selection=dg.AssetSelection.assets(
        "raw_web_docs",
        "web_docs",
        "web_docs_quarantine",
        "web_doc_embeddings",
        "web_doc_annotations",
        "web_doc_annotations_quarantine",
    ),
    partitions_def=web_doc_shards,
    description="Read, clean, quarantine, embed and teacher-annotate one shard of web documents.",
)

# Over every shard: the corpus summary, the NMI matrix, the students and their agreement.
webdocs_corpus_job = dg.define_asset_job(
    name="webdocs_corpus",
    selection=dg.AssetSelection.assets(
        "web_corpus_summary",
        "taxonomy_nmi",
        "mlp_filter",
        "encoder_classifier",
        "distilled_classifier",
        "student_agreement",
    ),
    description="Summarize every shard, measure the taxonomy, train the students and compare them.",
)

# Per shard again: label every document with the MLP filter trained over the whole corpus.
webdocs_labels_job = dg.define_asset_job(
    name="webdocs_labels",
    selection=dg.AssetSelection.assets("web_doc_labels"),
    partitions_def=web_doc_shards,
    description="Label one shard's documents with the MLP filter.",
)

# Shopping: the catalog and its search index, then per cohort the simulated customers, their
# questions, rendered histories and the agent evaluation, then the event log over all cohorts.
shopping_catalog_job = dg.define_asset_job(
    name="shopping_catalog",
    selection=dg.AssetSelection.assets("product_catalog", "product_catalog_quarantine", "product_search_results"),
    description="Load and normalize the product catalogs; embed the shop's titles and rank the search vocabulary.",
)

shopping_job = dg.define_asset_job(
    name="shopping",
    selection=dg.AssetSelection.assets(
        "customer_personas",
        "shopping_trajectories",
        "shoptrajqa_questions",
        "shoptrajqa_contexts",
        "customer_agent_eval",
        "shoptrajqa_rl_dataset",
    ),
    partitions_def=customer_cohorts,
    description="Simulate one cohort of customers, ask ShopTrajQA questions, render contexts, evaluate the agent.",
)

shopping_event_log_job = dg.define_asset_job(
    name="shopping_summary",
    selection=dg.AssetSelection.assets("shopping_event_log"),
    description="Put every cohort's events behind the DuckDB view and chart the event mix and spend.",
)

# Shopping Reasoning Bench: missions (with reviewed drafts), then per model under test the answers and
# their rubric grades, then the scores over every graded model.
shopbench_missions_job = dg.define_asset_job(
    name="shopbench_missions",
    selection=dg.AssetSelection.assets(
        "mission_drafts",
        "mission_draft_rejects",
        "shopping_missions",
        "shopping_mission_criteria",
        "shopping_missions_quarantine",
    ),
    description="Draft missions with the LLM, then load and validate the missions (reviewed drafts included).",
)

shopbench_job = dg.define_asset_job(
    name="shopbench",
    selection=dg.AssetSelection.assets("assistant_responses", "rubric_grades"),
    partitions_def=models_under_test,
    description="One model under test answers every mission turn by turn; the judge grades every criterion.",
)

shopbench_scores_job = dg.define_asset_job(
    name="shopbench_report",
    selection=dg.AssetSelection.assets("shopbench_scores"),
    description="Score and compare every graded model; write the DuckDB tables.",
)

# Tool use: specs, their index and backends, base trajectories (BFCL + synthesis), augmentations,
# the policy evaluation and the RL environment export.
tooluse_job = dg.define_asset_job(
    name="tooluse",
    selection=dg.AssetSelection.groups("tooluse"),
    description="Specs to augmented trajectories, the policy evaluation and the RL environment export.",
)

# There is no single `sample` job: Dagster requires one partitions definition per job, and the
# sample spans shards, cohorts and models under test. `python -m pipelines.sample` materializes
# everything stage by stage through the implicit asset job instead (see docs/decisions.md).
