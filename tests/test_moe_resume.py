"""kill -9 during training, then a rerun resumes from the last checkpoint and ends where an
uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.moe.model import MoEShape
from training.moe.train import TrainResult, TrainSettings, _latest_checkpoint, fresh_checkpoint, train

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = 40


def tiny_run(work: Path | None, sleep_per_eval: float) -> TrainResult:
    """40 steps of a tiny MoE, checkpointing every 5; evaluations may sleep so a test can kill it mid-run."""
    torch.set_num_threads(1)
    shape = MoEShape(layers=1, hidden=16, heads=2, kv_heads=1, intermediate=24, experts=4, top_k=2, seq_len=16)
    stream = np.random.default_rng(0).integers(0, 256, size=4000).astype(np.uint16)
    settings = TrainSettings(
        tokens=STEPS * 4 * 16, batch_size=4, lr=1e-2, eval_every=2, eval_windows=2, checkpoint_every=5
    )
    return train(
        fresh_checkpoint(shape.config(), 0),
        stream,
        stream,
        settings,
        work,
        on_eval=lambda _: time.sleep(sleep_per_eval),
    )


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path: Path):
    work = tmp_path / "work"
    script = f"from tests.test_moe_resume import tiny_run; from pathlib import Path; tiny_run(Path({str(work)!r}), 0.3)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    victim = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not work.exists() or _latest_checkpoint(work) is None:
        assert victim.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_at = int(_latest_checkpoint(work).name.split("-")[1])
    assert 0 < killed_at < STEPS

    resumed = tiny_run(work, 0.0)
    assert resumed.resumed_from_step == killed_at
    assert [p.step for p in resumed.history] == list(range(0, STEPS + 1, 2))  # the history survived the kill
    straight = tiny_run(None, 0.0)
    assert straight.resumed_from_step == 0
    for name, tensor in straight.checkpoint.weights.items():
        assert torch.allclose(tensor, resumed.checkpoint.weights[name], atol=1e-6), name
    assert torch.allclose(
        straight.checkpoint.exp_avg_sq["model.embed_tokens.weight"],
        resumed.checkpoint.exp_avg_sq["model.embed_tokens.weight"],
        atol=1e-9,
    )
