"""Jobs: one per stage of a domain, plus `sample`, which covers every asset on the bundled sample data."""

import dagster as dg

from pipelines.partitions import (
    curation_compounds,
    curation_filters,
    customer_cohorts,
    models_under_test,
    upcycling_strategies,
    web_doc_shards,
)

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
# Training the tool policy is its own job (`tooluse_training`): a data refresh does not retrain.
TOOL_TRAINING_ASSETS = ("tool_policy_sft", "tool_policy_grpo", "tool_policy_checkpoint_eval")
tooluse_job = dg.define_asset_job(
    name="tooluse",
    selection=dg.AssetSelection.groups("tooluse") - dg.AssetSelection.assets(*TOOL_TRAINING_ASSETS),
    description="Specs to augmented trajectories, the policy evaluation and the RL environment export.",
)

# There is no single `sample` job: Dagster requires one partitions definition per job, and the
# sample spans shards, cohorts and models under test. `python -m pipelines.sample` materializes
# everything stage by stage through the implicit asset job instead (see docs/decisions.md).

# Webdocs curation (issue 13): corpus-wide dedup and the filter table, then per filter the pass 1 proxies,
# the pass 1 ranking and the compounds, per compound the pass 2 proxies, then pass 2 and the curated corpus.
webdocs_filter_search_job = dg.define_asset_job(
    name="webdocs_filter_search",
    selection=dg.AssetSelection.assets("web_docs_dedup", "web_docs_dedup_quarantine", "filter_candidates"),
    description="Deduplicate the whole corpus and generate the filters to search (registers their partitions).",
)
webdocs_proxy_runs_job = dg.define_asset_job(
    name="webdocs_proxy_runs",
    selection=dg.AssetSelection.assets("proxy_runs"),
    partitions_def=curation_filters,
    description="Train the pass 1 proxy LMs of one filter (a backfill over all filters trains them in parallel).",
)
webdocs_compounds_job = dg.define_asset_job(
    name="webdocs_compounds",
    selection=dg.AssetSelection.assets("filter_search_pass1", "compound_filters"),
    description="Rank the pass 1 filters and build AND / OR compounds of the best (registers their partitions).",
)
webdocs_compound_runs_job = dg.define_asset_job(
    name="webdocs_compound_runs",
    selection=dg.AssetSelection.assets("compound_proxy_runs"),
    partitions_def=curation_compounds,
    description="Train the pass 2 proxy LMs of one compound filter.",
)
webdocs_curation_job = dg.define_asset_job(
    name="webdocs_curation",
    selection=dg.AssetSelection.assets("filter_search_pass2", "curated_corpus"),
    description="Rank the compounds against the best single filter and write the curated corpus.",
)

# Concepts (issue 12): WordNet vocabulary to the concept dictionary, the steering eval, the dictionary SAE
# and its atom annotations.
concepts_job = dg.define_asset_job(
    name="concepts",
    selection=dg.AssetSelection.groups("concepts"),
    description="Concept dictionary from WordNet stimuli, sparse-coding steering eval, dictionary-initialised SAE.",
)

# Translation (issue 14): multilingual tasks, the translate tool, answer-preserving translations, base-policy
# rollouts, the GSPO-trained gated policy and the Pareto report.
translation_job = dg.define_asset_job(
    name="translation",
    selection=dg.AssetSelection.groups("translation"),
    description="Answer-preserving multilingual tasks, gated translate-or-not policy (GSPO) and its Pareto front.",
)

# Expert upcycling (issue 17): corpus, E-expert base, utilities and baselines; then per strategy the
# upcycled checkpoint and its continued pretraining; then the report over every strategy.
moe_base_job = dg.define_asset_job(
    name="moe_base",
    selection=dg.AssetSelection.assets(
        "moe_pretraining_corpus",
        "moe_corpus_quarantine",
        "moe_base_checkpoint",
        "expert_utilities",
        "upcycling_baselines",
    ),
    description="Tokenize the corpus, pretrain the E-expert MoE, score its experts, train the two reference runs.",
)
moe_upcycling_job = dg.define_asset_job(
    name="moe_upcycling",
    selection=dg.AssetSelection.assets("upcycled_checkpoints", "upcycling_cpt"),
    partitions_def=upcycling_strategies,
    description="Upcycle E -> mE experts by one strategy and continue pretraining the result.",
)
moe_report_job = dg.define_asset_job(
    name="moe_report",
    selection=dg.AssetSelection.assets("upcycling_report"),
    description="Gap closure, compute saved and routing figures of every strategy against both baselines.",
)

# RL (issue 10): SFT then GRPO of the tool policy, and base vs SFT vs SFT+GRPO on the held-out split.
tooluse_training_job = dg.define_asset_job(
    name="tooluse_training",
    selection=dg.AssetSelection.assets(*TOOL_TRAINING_ASSETS),
    description="SFT, then GRPO on the AST reward, of the tool policy; held-out comparison of the checkpoints.",
)

# RL (issue 10): RLVR of the Customer Agent over every materialized cohort, then base vs trained on
# held-out customers.
shopping_training_job = dg.define_asset_job(
    name="shopping_training",
    selection=dg.AssetSelection.assets("customer_agent_grpo", "customer_agent_rl_eval"),
    description="GRPO of the Customer Agent on its SQL exact-match reward; base vs trained on held-out customers.",
)

# agents / RESD (issue 16): one round = rollouts with feedback, reflections, playbook, self-distillation, eval.
resd_round_job = dg.define_asset_job(
    name="agents_resd_round",
    selection=dg.AssetSelection.assets(
        "failed_rollouts", "reflections", "reflections_quarantine", "playbook", "self_distillation", "resd_eval"
    ),
    description="One RESD round: student rollouts with verifier feedback, reflections, playbook update, "
    "self-distillation from the playbook-prompted self-teacher, and base vs playbook vs RESD vs GRPO.",
)

# agents / CoMem (issue 15): episodes per memory condition, scored summaries, the reward-trained memory model
# and the latency/success report.
comem_job = dg.define_asset_job(
    name="comem",
    selection=dg.AssetSelection.assets(
        "agent_episodes", "agent_episode_steps", "memory_training_data", "memory_model", "comem_report"
    ),
    description="CoMem: episodes under full/synchronous/k-step-off memory, memory-usefulness GRPO, report.",
)

# QUBRIC (issue 11): open queries -> key points -> scenario queries -> responses -> contrastive rubrics ->
# learnability -> query-rubric pairs; then rubric-reward GRPO and the pairwise evaluation (kept apart so a
# data refresh does not retrain).
RUBRICS_TRAINING_ASSETS = ("rubric_policy_grpo", "rubric_policy_eval")
rubrics_job = dg.define_asset_job(
    name="rubrics",
    selection=dg.AssetSelection.groups("rubrics") - dg.AssetSelection.assets(*RUBRICS_TRAINING_ASSETS),
    description="Query-rubric pairs: key-point rewriting, contrastive rubrics, learnability filter (QUBRIC).",
)
rubrics_training_job = dg.define_asset_job(
    name="rubrics_training",
    selection=dg.AssetSelection.assets(*RUBRICS_TRAINING_ASSETS),
    description="GRPO on the query-rubric pairs with the rubric reward; trained vs base, pairwise, held-out queries.",
)
