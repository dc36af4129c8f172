"""G answers per scenario query from the policy (torch, sampled as GRPO samples) and from the teacher."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output
from assets.rubrics.common import GROUP, policy_name, teacher_client
from assets.training_metadata import policy_config
from ops.common.llm import UsageTotals
from ops.common.threads import torch_threads
from ops.rubrics.qubric.teacher import KEY_POINT_METHOD, response_frame, responses_split, sample_requests
from resources.llm import LLMResource
from resources.scale import ScaleResource
from training.rl.policy import load_policy
from training.rl.sampling import sample

TEACHER_TEMPERATURE = 0.7  # the teacher's samples: varied, but still its best answers


class ResponsesConfig(dg.Config):
    """Samples per query (0: the profile's `qubric_samples` for the policy; for the teacher, as many of those as
    the consistency check grades, `qubric_consistency_samples`), sampling temperature and seed."""

    samples: int = 0
    temperature: float = 1.0
    seed: int = 0
    # torch threads while the policy samples, 0: the cores free right now. On a shared 2-core CPU two threads spin
    # against each other (measured: 24 CPU s for 2 x 16 tokens at load 33, 1.6 CPU s with one thread, same text);
    # on an idle one both are used.
    torch_threads: int = 0


def _scenarios(scenario_queries: pl.DataFrame) -> pl.DataFrame:
    return scenario_queries.filter(pl.col("method") == KEY_POINT_METHOD).sort("query_id")


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "polars"}, pool="gpu")
def policy_responses(config: ResponsesConfig, scenario_queries: pl.DataFrame, scale: ScaleResource) -> dg.Output:
    """G sampled answers of the policy (the RL trainer's base, torch) to each key-point scenario query, at the
    GRPO temperature: the spread the learnability filter and the contrastive rubrics see."""
    prompts = _scenarios(scenario_queries)
    samples = config.samples or scale.qubric_samples
    policy = load_policy(policy_config(scale))
    chats = [[{"role": "user", "content": text}] for text in prompts["scenario_query"].to_list()]
    with torch_threads(config.torch_threads):
        outputs = sample(policy, chats, samples, scale.qubric_policy_tokens, config.temperature, config.seed)
    texts = [text for group in outputs for text, _ in group]
    tokens = [count for group in outputs for _, count in group]
    frame = response_frame(prompts, texts, tokens, samples, "policy", policy_name(scale))
    return frame_output(
        frame,
        {"policy": policy_name(scale), "samples_per_query": samples, "queries": prompts.height, "tokens": sum(tokens)},
    )


@dg.multi_asset(
    outs={
        "teacher_responses": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Sampled answers of the teacher to each key-point scenario query (larger token budget), as "
            "many as the consistency check grades.",
        ),
        "teacher_responses_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Teacher answers that came back empty or failed, with the reason.",
        ),
    },
    pool="llm",
)
def teacher_responses(config: ResponsesConfig, scenario_queries: pl.DataFrame, llm: LLMResource, scale: ScaleResource):
    """Teacher answers per scenario query (seeded, so a rerun is served from the LLM cache): as many as the
    consistency check grades (at most G; the contrastive prompt reads the first), since no step reads more."""
    prompts = _scenarios(scenario_queries)
    samples = config.samples or max(1, min(scale.qubric_samples, scale.qubric_consistency_samples))
    with teacher_client(llm, scale) as (teacher, provenance):
        requests = sample_requests(prompts, samples, scale.qubric_teacher_tokens, TEACHER_TEMPERATURE)
        results = teacher.chat(requests)
        frame = response_frame(
            prompts,
            [result.text or "" for result in results],
            [result.completion_tokens for result in results],
            samples,
            "teacher",
            teacher.model_id,
        )
    result = responses_split(frame)
    metadata = {**result.metadata(), **provenance, **UsageTotals.from_results(results).as_metadata()}
    yield frame_output(result.kept, metadata, output_name="teacher_responses")
    yield frame_output(result.quarantined, output_name="teacher_responses_quarantine")
