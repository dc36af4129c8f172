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
