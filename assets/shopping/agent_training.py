"""RLVR of the Customer Agent on `shoptrajqa_rl_dataset` (SQL in the sandbox, exact-match reward), and the
trained agent against its base on customers it never trained on."""

from contextlib import ExitStack

import dagster as dg
import polars as pl

from assets.models import load_model_files, model_result
from assets.outputs import frame_output, markdown_table, png_metadata
from assets.shopping.catalog import GROUP
from assets.training_metadata import policy_config, training_metadata, work_dir
from ops.common.expectations import between, columns_exist, in_set, not_null
from ops.common.plots import grouped_bar_png
from ops.common.versioning import frame_version
from ops.shopping.agent import AgentItem, run_agent
from ops.shopping.agent_rl import HELDOUT, TRAIN, agent_prompts, customer_split, sql_agent_reward
from ops.shopping.evaluation import EVAL_SCHEMA, agent_rows
from ops.shopping.sandbox import CustomerSandbox
from pipelines.partitions import customer_cohorts
from resources.artifact_store import ArtifactStoreResource
from resources.inputs import InputFoldersResource
from resources.io_manager import materialized_partition_files
from resources.quality import QualityResource
from resources.scale import ScaleResource
from training.rl.card import adapter_files
from training.rl.config import GRPOSettings
from training.rl.integrity import stored_adapter_problems
from training.rl.policy import PolicyClient, load_policy
from training.rl.trainer import fingerprint, train_grpo

REWARD = "ops.shopping.agent_rl.sql_agent_reward (exact match by ops.shopping.answers.shoptrajqa_reward)"
AGENT_POLICIES = ("base", "trained")


class CustomerAgentRLConfig(dg.Config):
    """Customer split (share held out, seed), GRPO's mode, and the agent's turns in the prompt and at evaluation
    (0: the profile's `customer_agent_max_steps`); `eval_max_tokens` bounds each agent turn at evaluation (0: four
    times the profile's `rl_max_completion_tokens`, a SQL query needs more than an answer)."""

    heldout_share: float = 0.3
    seed: int = 0
    mode: str = "grpo"
    max_steps: int = 0
    eval_max_tokens: int = 0


def _latest_cohorts(context: dg.AssetExecutionContext, key: str) -> pl.DataFrame:
    files, missing = materialized_partition_files(
        context.instance, dg.AssetKey(key), customer_cohorts.get_partition_keys()
    )
    if not files:
        raise dg.Failure(f"no cohort of {key} is materialized yet: run the `shopping` job first")
    if missing:
        context.log.info(f"{key}: cohorts not materialized yet, left out: {', '.join(missing)}")
    return pl.concat([pl.read_parquet(path) for path in files], how="vertical_relaxed")


def _customers(dataset: pl.DataFrame, side: str, config: CustomerAgentRLConfig) -> set[str]:
    """The customers of the RL dataset on one side of the customer split."""
    customers = set(dataset["extra_info"].struct.field("customer_id").to_list())
    return {c for c in customers if customer_split(c, config.heldout_share, config.seed) == side}


def _sandboxes(stack: ExitStack, events: pl.DataFrame, products: pl.DataFrame, customers: set[str]) -> dict:
    return {
        customer: stack.enter_context(CustomerSandbox(events.filter(pl.col("customer_id") == customer), products))
        for customer in sorted(customers)
    }


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    pool="gpu",
    deps=["shoptrajqa_rl_dataset", "shopping_trajectories"],
)
def customer_agent_grpo(
    context: dg.AssetExecutionContext,
    config: CustomerAgentRLConfig,
    product_catalog: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    inputs: InputFoldersResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """GRPO of a LoRA adapter on the Customer Agent's questions (agent mode of every materialized cohort's
    `shoptrajqa_rl_dataset`) of the training customers: the policy writes one action, its SQL runs in the
    customer's read-only sandbox, and the result is scored by exact match against the gold answer."""
    dataset = _latest_cohorts(context, "shoptrajqa_rl_dataset")
    events, products = _latest_cohorts(context, "shopping_trajectories"), inputs.shop_products(product_catalog)
    max_steps = config.max_steps or scale.customer_agent_max_steps
    customers = _customers(dataset, TRAIN, config)
    with ExitStack() as stack:
        sandboxes = _sandboxes(stack, events, products, customers)
        schema = {customer: sandbox.schema_text() for customer, sandbox in sandboxes.items()}
        rows = agent_prompts(dataset, schema.__getitem__, max_steps, TRAIN, config.heldout_share, config.seed)
        rows = rows[: scale.rl_grpo_steps * scale.rl_prompts_per_step]
        settings = GRPOSettings(
            policy_config(scale),
            mode=config.mode,  # type: ignore[arg-type]
            max_steps=scale.rl_grpo_steps,
            prompts_per_step=scale.rl_prompts_per_step,
            num_generations=scale.rl_generations,
            max_completion_length=max(scale.rl_max_completion_tokens, 64),
            beta=scale.rl_beta,
            save_steps=max(1, scale.rl_grpo_steps // 10),
            seed=config.seed,
        )
        folder = work_dir(scale.rl_work_dir, "customer_agent_grpo") / fingerprint("grpo", settings, rows, {})
        reward = sql_agent_reward(sandboxes)
        result = train_grpo(
            rows, [reward], settings, folder, reward_columns=["ground_truth", "customer_id"], log=context.log.info
        )
    split = {"heldout_share": config.heldout_share, "split_seed": config.seed, "rule": "sha256(seed|customer id)"}
    fields = {**split, "reward": REWARD, "agent_turns": max_steps, "questions": len(rows)}
    files = adapter_files(result, {**fields, "data": "shoptrajqa_rl_dataset", "data_version": frame_version(dataset)})
    metadata = {**training_metadata(result, f"Customer Agent {config.mode.upper()}"), "questions": len(rows)}
    return model_result(context, artifact_store.get_store(), files, metadata)


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "duckdb"},
    pool="gpu",
    deps=["customer_agent_grpo", "shoptrajqa_rl_dataset", "shopping_trajectories"],
)
def customer_agent_rl_eval(
    context: dg.AssetExecutionContext,
    config: CustomerAgentRLConfig,
    product_catalog: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    inputs: InputFoldersResource,
    scale: ScaleResource,
) -> dg.Output:
    """The full multi-step Customer Agent (query, observe, answer) run by the base policy and by the
    RL-trained adapter on the held-out customers' questions; exact-match accuracy of each."""
    dataset = _latest_cohorts(context, "shoptrajqa_rl_dataset")
    events, products = _latest_cohorts(context, "shopping_trajectories"), inputs.shop_products(product_catalog)
    adapter = load_model_files(context.instance, artifact_store.get_store(), "customer_agent_grpo")
    max_steps = config.max_steps or scale.customer_agent_max_steps
    customers = _customers(dataset, HELDOUT, config)
    policy = policy_config(scale)
    clients = {
        "base": PolicyClient(load_policy(policy), "base"),
        "trained": PolicyClient(load_policy(policy, adapter), "trained"),
    }
    frames = []
    with ExitStack() as stack:
        sandboxes = _sandboxes(stack, events, products, customers)
        schema = {customer: sandbox.schema_text() for customer, sandbox in sandboxes.items()}
        heldout = agent_prompts(dataset, schema.__getitem__, max_steps, HELDOUT, config.heldout_share, config.seed)
        heldout = heldout[: scale.rl_eval_examples] if scale.rl_eval_examples else heldout
        questions = _question_rows(dataset, {row["id"] for row in heldout})
        items = [AgentItem(q["question_id"], q["question"], sandboxes[q["customer_id"]]) for q in questions.values()]
        for name, client in clients.items():
            traces = run_agent(
                client,
                items,
                max_steps=max_steps,
                max_tokens=config.eval_max_tokens or 4 * scale.rl_max_completion_tokens,
            )
            frames.append(
                pl.DataFrame(agent_rows(questions, traces), schema=EVAL_SCHEMA).with_columns(
                    pl.lit(name).alias("policy")
                )
            )
    evals = pl.concat(frames).sort("policy", "question_id")
    table = (
        evals.group_by("policy")
        .agg(pl.len().alias("questions"), pl.col("reward").mean().alias("accuracy"))
        .sort("policy")
    )
    chart = grouped_bar_png(
        table["policy"].to_list(),
        {"accuracy": table["accuracy"].to_list()},
        "Customer Agent, held-out customers",
        "exact-match accuracy",
    )
    return frame_output(
        evals,
        {
            "questions": len(items),
            "accuracy": markdown_table(table),
            "accuracy_chart": png_metadata(chart, "base vs RL-trained Customer Agent"),
            **{f"accuracy_{row['policy']}": round(row["accuracy"], 4) for row in table.iter_rows(named=True)},
            "outcomes": markdown_table(evals.group_by("policy", "outcome").len().sort("policy", "outcome")),
            "note": "SmolLM2-135M locally: a pipeline check, not evidence about the method",
        },
    )


def _question_rows(dataset: pl.DataFrame, ids: set[str]) -> dict[str, dict]:
    """Question rows (for `agent_rows`) of the chosen agent-mode prompts, by question id."""
    rows = {}
    for row in dataset.iter_rows(named=True):
        info = row["extra_info"]
        if info["mode"] == "agent" and info["question_id"] in ids:
            rows[info["question_id"]] = {
                "question_id": info["question_id"],
                "customer_id": info["customer_id"],
                "kind": info["kind"],
                "difficulty": info["difficulty"],
                "answer": row["ground_truth"],
                "question": row["prompt"][-1]["content"],
            }
    return dict(sorted(rows.items()))


ADAPTER_SOUND = "the adapter loads with finite weights; one finite metrics row per configured step; no step twice"
EVAL_COMPLETE = "both policies answered every held-out question once; rewards in [0, 1]"


@dg.asset_check(asset="customer_agent_grpo", blocking=True, description=f"{ADAPTER_SOUND}.")
def customer_agent_grpo_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "customer_agent_grpo")
    problems = stored_adapter_problems(files)
    return dg.AssetCheckResult(
        passed=not problems, metadata={ADAPTER_SOUND: not problems, "problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(asset="customer_agent_rl_eval", blocking=True, description=f"{EVAL_COMPLETE}.")
def customer_agent_rl_eval_valid(customer_agent_rl_eval: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    evals = customer_agent_rl_eval
    counts = evals.group_by("policy").agg(pl.len(), pl.col("question_id").n_unique().alias("unique"))
    complete = (
        counts.height == len(AGENT_POLICIES)
        and counts["len"].n_unique() == 1
        and (counts["len"] == counts["unique"]).all()
    )
    suite = [
        *columns_exist([*EVAL_SCHEMA, "policy"]),
        not_null("reward"),
        between("reward", 0.0, 1.0),
        in_set("policy", list(AGENT_POLICIES)),
    ]
    return quality.validate(evals, "customer_agent_rl_eval", suite).to_check_result(
        extra={EVAL_COMPLETE: complete}, metadata={"rows": evals.height}
    )
