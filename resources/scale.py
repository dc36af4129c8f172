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
