"""COVERT's "SFT, then RL": the tool policy fine-tuned on trajectories, then GRPO on the AST reward, and
base vs SFT vs SFT+GRPO on held-out BFCL categories and ids."""

import json

import dagster as dg
import polars as pl

from assets.models import files_version, load_model_files, model_result
from assets.outputs import frame_output, markdown_table, png_metadata
from assets.tooluse.evaluation import RL_ENVIRONMENT_FILE
from assets.tooluse.specs import GROUP
from assets.training_metadata import policy_config, training_metadata, work_dir
from ops.common.expectations import between, columns_exist, in_set, not_null
from ops.common.plots import grouped_bar_png
from ops.common.text import sha256_hex
from ops.common.versioning import frame_version
from ops.tooluse.policy_eval import REWARD_FUNCTION, SCORED_SCHEMA
from ops.tooluse.reward import tool_reward
from ops.tooluse.training_data import (
    HELDOUT,
    TRAIN,
    ToolSplit,
    all_trajectories,
    assign_split,
    ast_scored,
    grpo_rows,
    policy_comparison,
    score_checkpoints,
    sft_rows,
    shortest,
    shortest_rows,
)
from resources.artifact_store import ArtifactStoreResource
from resources.quality import QualityResource
from resources.scale import ScaleResource
from training.rl.card import TRAINING_RECORD, adapter_files
from training.rl.config import GRPOSettings, SFTSettings
from training.rl.integrity import adapter_problems
from training.rl.policy import PolicyClient, load_policy, write_adapter
from training.rl.trainer import fingerprint, train_grpo, train_sft

SPLIT_FILE = "split.json"
POLICIES = ("base", "sft", "sft_grpo")


class ToolPolicyTrainingConfig(dg.Config):
    """The held-out split (whole BFCL categories, plus a share of the other categories' base ids), its
    seed, and GRPO's mode ("grpo" or "gspo")."""

    heldout_categories: list[str] = ["parallel_multiple"]
    heldout_share: float = 0.25
    seed: int = 0
    mode: str = "grpo"


def _split(config: ToolPolicyTrainingConfig) -> ToolSplit:
    return ToolSplit(tuple(config.heldout_categories), config.heldout_share, config.seed)


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, pool="gpu")
def tool_policy_sft(
    context: dg.AssetExecutionContext,
    config: ToolPolicyTrainingConfig,
    base_tool_trajectories: pl.DataFrame,
    augmented_tool_trajectories: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """LoRA SFT of the tool policy (SmolLM2-135M locally) on the training split of base + augmented
    trajectories: the policy-eval prompt, the oracle calls as a JSON list (or a no-call sentence). The
    split (held-out categories and ids) is stored with the adapter and the model card."""
    split = _split(config)
    rows = assign_split(all_trajectories(base_tool_trajectories, augmented_tool_trajectories), split)
    train = shortest(
        ast_scored(rows.filter(pl.col("split") == TRAIN)), scale.rl_sft_examples, scale.rl_max_prompt_chars
    )
    examples = sft_rows(train)
    settings = SFTSettings(
        policy_config(scale),
        max_steps=scale.rl_sft_steps,
        batch_size=scale.rl_sft_batch_size,
        save_steps=max(1, scale.rl_sft_steps // 10),
        seed=config.seed,
    )
    folder = work_dir(scale.rl_work_dir, "tool_policy_sft") / fingerprint("sft", settings, examples, {})
    result = train_sft(examples, settings, folder, log=context.log.info)
    fields = {
        **split.describe(),
        "training_examples": len(examples),
        "data": "base + augmented tool trajectories",
        "data_version": frame_version(train),
    }
    files = adapter_files(result, fields)
    ids = {name: rows.filter(pl.col("split") == name)["trajectory_id"].sort().to_list() for name in (TRAIN, HELDOUT)}
    files[SPLIT_FILE] = json.dumps({"split": split.describe(), "ids": ids}, sort_keys=True).encode()
    metadata = {**training_metadata(result, "tool policy SFT"), "training_examples": len(examples)}
    return model_result(context, artifact_store.get_store(), files, metadata)


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    pool="gpu",
    deps=["tool_rl_environment", "tool_policy_sft"],
)
def tool_policy_grpo(
    context: dg.AssetExecutionContext,
    config: ToolPolicyTrainingConfig,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """GRPO (or GSPO) of the SFT adapter on the training split of `tool_rl_environment`, rewarded by the
    BFCL-style AST reward (`ops.tooluse.reward.tool_reward`); groups with equal rewards are dropped."""
    store = artifact_store.get_store()
    sft = load_model_files(context.instance, store, "tool_policy_sft")
    environment = load_model_files(context.instance, store, "tool_rl_environment")[RL_ENVIRONMENT_FILE]
    lines = [json.loads(line) for line in environment.decode().splitlines() if line.strip()]
    train_ids = set(json.loads(sft[SPLIT_FILE])["ids"][TRAIN])
    limit = scale.rl_grpo_steps * scale.rl_prompts_per_step
    rows = shortest_rows(grpo_rows(lines, train_ids), limit, scale.rl_max_prompt_chars)
    settings = GRPOSettings(
        policy_config(scale),
        mode=config.mode,  # type: ignore[arg-type]
        max_steps=scale.rl_grpo_steps,
        prompts_per_step=scale.rl_prompts_per_step,
        num_generations=scale.rl_generations,
        max_completion_length=scale.rl_max_completion_tokens,
        beta=scale.rl_beta,
        save_steps=max(1, scale.rl_grpo_steps // 10),
        seed=config.seed,
    )
    folder = work_dir(scale.rl_work_dir, "tool_policy_grpo") / fingerprint("grpo", settings, rows, {"sft": sft})
    init = write_adapter(sft, folder / "init_adapter")
    result = train_grpo(
        rows,
        [tool_reward],
        settings,
        folder / "run",
        init_adapter=init,
        reward_columns=["oracle"],
        log=context.log.info,
    )
    fields = {
        **json.loads(sft[SPLIT_FILE])["split"],
        "reward": REWARD_FUNCTION,
        "init": f"tool_policy_sft {files_version(sft)}",
        "data": "tool_rl_environment",
        "data_version": sha256_hex(environment)[:16],
    }
    files = adapter_files(result, fields)
    files[SPLIT_FILE] = sft[SPLIT_FILE]
    metadata = {**training_metadata(result, f"tool policy {config.mode.upper()}"), "prompts": len(rows)}
    return model_result(context, store, files, metadata)


class ToolCheckpointEvalConfig(dg.Config):
    """Held-out examples per category (0: the profile's `rl_eval_examples`; both 0: all) and reply tokens
    (0: twice the profile's `rl_max_completion_tokens`)."""

    per_category: int = 0
    max_tokens: int = 0


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "polars"},
    pool="gpu",
    deps=["tool_policy_sft", "tool_policy_grpo"],
)
def tool_policy_checkpoint_eval(
    context: dg.AssetExecutionContext,
    config: ToolCheckpointEvalConfig,
    base_tool_trajectories: pl.DataFrame,
    augmented_tool_trajectories: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.Output:
    """The policies under test, base -> SFT -> SFT+GRPO, on the held-out split only (categories never
    trained on, and held-out ids of the others), scored by the AST reward; accuracy per category with a
    bootstrap interval. Only AST-scored rows: no judge, so the policy never grades itself."""
    store = artifact_store.get_store()
    adapters = {name: load_model_files(context.instance, store, f"tool_policy_{name}") for name in ("sft", "grpo")}
    split = json.loads(adapters["sft"][SPLIT_FILE])
    rows = all_trajectories(base_tool_trajectories, augmented_tool_trajectories)
    heldout = ast_scored(rows.filter(pl.col("trajectory_id").is_in(split["ids"][HELDOUT])))
    per_category = config.per_category or scale.rl_eval_examples
    sample = pl.concat([shortest(group, per_category, 0) for _, group in heldout.group_by("category")]).sort(
        "trajectory_id"
    )
    policy = policy_config(scale)
    clients = {
        "base": PolicyClient(load_policy(policy), "base"),
        "sft": PolicyClient(load_policy(policy, adapters["sft"]), "sft"),
        "sft_grpo": PolicyClient(load_policy(policy, adapters["grpo"]), "sft_grpo"),
    }
    context.log.info(f"{sample.height} held-out examples x {len(clients)} policies")
    scored = score_checkpoints(sample, clients, config.max_tokens or 2 * scale.rl_max_completion_tokens)
    table = policy_comparison(scored)
    overall = table.filter(pl.col("category") == "all")
    chart = grouped_bar_png(
        table["category"].unique(maintain_order=True).to_list(),
        {name: table.filter(pl.col("policy") == name)["accuracy"].to_list() for name in POLICIES},
        "Held-out tool-call accuracy (AST reward)",
        "accuracy",
    )
    return frame_output(
        scored,
        {
            "examples": sample.height,
            "accuracy": markdown_table(table),
            "accuracy_chart": png_metadata(chart, "base vs SFT vs SFT+GRPO per held-out category"),
            **{f"accuracy_{row['policy']}": round(row["accuracy"], 4) for row in overall.iter_rows(named=True)},
            "note": "SmolLM2-135M locally: a pipeline check, not evidence about the method",
        },
    )


ADAPTER_SOUND = "the adapter loads with finite weights; one finite metrics row per configured step; no step twice"
SPLIT_DISJOINT = "no held-out id or category among the training ids"
EVAL_COMPLETE = "every policy answered every held-out example once; rewards in [0, 1]"


def _problems_result(name: str, problems: list[str], metadata: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={name: not problems, "problems": "; ".join(problems) or "none", **(metadata or {})},
    )


def _adapter_check(asset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset, name=f"{asset}_sound", blocking=True, description=f"{ADAPTER_SOUND}; {SPLIT_DISJOINT}."
    )
    def check(context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource) -> dg.AssetCheckResult:
        files = load_model_files(context.instance, artifact_store.get_store(), asset)
        steps = json.loads(files[TRAINING_RECORD])["config"]["max_steps"]
        problems = adapter_problems(files, expected_steps=steps)
        split = json.loads(files[SPLIT_FILE])
        train, heldout = set(split["ids"][TRAIN]), set(split["ids"][HELDOUT])
        categories = split["split"]["heldout_categories"].split(",")
        if train & heldout or any(f"bfcl:{category}_" in tid for tid in train for category in categories):
            problems.append(SPLIT_DISJOINT)
        return _problems_result(ADAPTER_SOUND, problems, {"train_ids": len(train), "heldout_ids": len(heldout)})

    return check


adapter_checks = [_adapter_check(asset) for asset in ("tool_policy_sft", "tool_policy_grpo")]


@dg.asset_check(asset="tool_policy_checkpoint_eval", blocking=True, description=f"{EVAL_COMPLETE}; {SPLIT_DISJOINT}.")
def tool_policy_checkpoint_eval_valid(
    context: dg.AssetCheckExecutionContext,
    tool_policy_checkpoint_eval: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    scored = tool_policy_checkpoint_eval
    split = json.loads(load_model_files(context.instance, artifact_store.get_store(), "tool_policy_sft")[SPLIT_FILE])
    counts = scored.group_by("policy").agg(pl.len(), pl.col("trajectory_id").n_unique().alias("unique"))
    complete = (
        counts.height == len(POLICIES) and counts["len"].n_unique() == 1 and (counts["len"] == counts["unique"]).all()
    )
    leaked = set(scored["trajectory_id"]) & set(split["ids"][TRAIN])
    suite = [
        *columns_exist([*SCORED_SCHEMA, "policy"]),
        not_null("reward"),
        between("reward", 0.0, 1.0),
        in_set("policy", list(POLICIES)),
    ]
    return quality.validate(scored, "tool_policy_checkpoint_eval", suite).to_check_result(
        extra={EVAL_COMPLETE: complete, SPLIT_DISJOINT: not leaked},
        metadata={"rows": scored.height, "leaked_training_ids": len(leaked)},
    )
