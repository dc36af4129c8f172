"""A TopK sparse autoencoder (EleutherAI's `eai-sparsify` `SparseCoder`) trained on token activations.

Two initialisations are compared at equal L0 (the same k):
- `dictionary`: the first rows of the decoder are the concept directions (unit norm), the remaining
  `free_latents` rows random unit vectors; the encoder starts as the decoder (sparsify's convention).
- `random`: sparsify's own initialisation (encoder random, decoder its normalised copy).
The decoder bias starts at the data mean in both, and the encoder is scaled so that the initial
reconstruction has the least-squares scale (`calibrate_encoder`). The training loop is sparsify's recipe on a tensor
in memory (its `Trainer` streams a hub model and dataset, which this offline run has not): loss =
FVU + auxk_alpha x AuxK loss for dead latents, Adam at sparsify's default learning rate, decoder
rows renormalised and the gradient parallel to them removed each step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

INITS = ("dictionary", "random")


@dataclass(frozen=True)
class SaeSettings:
    """Shape and schedule of one SAE run; `lr` 0 = sparsify's default for the latent count."""

    k: int = 16
    free_latents: int = 256
    steps: int = 50
    batch_size: int = 256
    lr: float = 0.0
    auxk_alpha: float = 1 / 32
    dead_after_tokens: int = 2048
    eval_every: int = 10
    seed: int = 0


@dataclass
class TrainedSae:
    """A trained SAE, how it started, and the FVU curve on the evaluation activations."""

    sae: Any
    init: str
    settings: SaeSettings
    initial_decoder: np.ndarray
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def new_sae(hidden: int, settings: SaeSettings, init: str, dictionary: np.ndarray, mean: np.ndarray) -> Any:
    """A `SparseCoder` with `len(dictionary) + free_latents` latents, initialised as `init` says."""
    import torch

    if init not in INITS:
        raise ValueError(f"init {init!r} is not one of {INITS}")
    from sparsify import SparseCoder, SparseCoderConfig  # imported on use: it prints a notice on import

    torch.manual_seed(settings.seed)
    latents = len(dictionary) + settings.free_latents
    sae = SparseCoder(hidden, SparseCoderConfig(num_latents=latents, k=settings.k, normalize_decoder=True))
    with torch.no_grad():
        if init == "dictionary":
            free = torch.randn(settings.free_latents, hidden)
            rows = torch.cat([torch.from_numpy(dictionary).float(), free / free.norm(dim=1, keepdim=True)])
            sae.W_dec.copy_(rows)
            sae.encoder.weight.copy_(rows)
        sae.b_dec.copy_(torch.from_numpy(mean).float())
    return sae


def calibrate_encoder(sae: Any, data: torch.Tensor) -> float:
    """Scale the encoder so that the initial reconstruction is least-squares optimal in scale on `data`.

    TopK of ReLU codes is positively homogeneous, so scaling the encoder by s scales the codes (and the
    decoded part) by s without changing which latents fire. Unit concept directions align with the data's
    large directions, so unscaled they overshoot (held-out FVU far above 1); after calibration the initial
    FVU is at most that of predicting the mean. Applied to both inits alike.
    """
    import torch

    with torch.no_grad():
        encoded = sae.encode(data)
        decoded = sae.decode(encoded.top_acts, encoded.top_indices) - sae.b_dec
        scale = float((decoded * (data - sae.b_dec)).sum() / decoded.pow(2).sum().clamp_min(1e-12))
        sae.encoder.weight.mul_(scale)
        sae.encoder.bias.mul_(scale)
    return scale


def evaluate(sae: Any, activations: torch.Tensor) -> dict[str, float]:
    """FVU, L0 and the fraction of latents that never fire on `activations`."""
    import torch

    with torch.no_grad():
        out = sae(activations)
        fired = torch.zeros(sae.num_latents, dtype=torch.bool)
        fired[out.latent_indices.flatten()] = True
        l0 = float((out.latent_acts > 0).sum(dim=1).float().mean())
    return {"fvu": float(out.fvu), "l0": l0, "dead_fraction": float(1 - fired.float().mean())}


def train_sae(
    train: np.ndarray,
    held_out: np.ndarray,
    dictionary: np.ndarray,
    init: str,
    settings: SaeSettings,
    log: Callable[[str], None] | None = None,
) -> TrainedSae:
    """Train one SAE on `train` token activations; evaluate FVU on `held_out` every `eval_every` steps."""
    import torch

    data, evaluation = torch.from_numpy(train).float(), torch.from_numpy(held_out).float()
    sae = new_sae(data.shape[1], settings, init, dictionary, train.mean(axis=0))
    calibrate_encoder(sae, data)
    trained = TrainedSae(sae, init, settings, sae.W_dec.detach().numpy().copy())
    lr = settings.lr or 2e-4 / (sae.num_latents / 2**14) ** 0.5
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long)
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.perf_counter()
    trained.curve.append({"step": 0, **evaluate(sae, evaluation)})
    for step in range(1, settings.steps + 1):
        batch = data[torch.randint(len(data), (settings.batch_size,), generator=generator)]
        out = sae(batch, dead_mask=since_fired > settings.dead_after_tokens)
        loss = out.fvu + settings.auxk_alpha * out.auxk_loss
        optimizer.zero_grad()
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        optimizer.step()
        sae.set_decoder_norm_to_unit_norm()
        since_fired += len(batch)
        since_fired[out.latent_indices.flatten()] = 0
        if step % settings.eval_every == 0 or step == settings.steps:
            trained.curve.append({"step": step, **evaluate(sae, evaluation)})
            if log:
                log(f"{init} SAE step {step}: held-out FVU {trained.curve[-1]['fvu']:.4f}")
    trained.seconds = time.perf_counter() - started
    return trained


def atom_drift(trained: TrainedSae, dictionary: np.ndarray) -> np.ndarray:
    """Per concept atom: 1 - cosine between its final decoder row and its concept direction."""
    final = trained.sae.W_dec.detach().numpy()[: len(dictionary)]
    return 1.0 - (final * dictionary).sum(axis=1) / np.linalg.norm(final, axis=1)


def sae_files(trained: TrainedSae, card_fields: dict[str, Any]) -> dict[str, bytes]:
    """Weights (safetensors, sparsify's parameter names), config JSON and a model card."""
    from safetensors.torch import save

    config = {"d_in": trained.sae.d_in, **trained.sae.cfg.to_dict(), "init": trained.init, **asdict(trained.settings)}
    card = [f"# TopK SAE ({trained.init} init)", ""] + [f"- {key}: {value}" for key, value in card_fields.items()]
    card += ["", "| step | held-out FVU | L0 | dead fraction |", "|---|---|---|---|"]
    card += [f"| {int(p['step'])} | {p['fvu']:.4f} | {p['l0']:.1f} | {p['dead_fraction']:.3f} |" for p in trained.curve]
    weights = {name: tensor.detach().contiguous() for name, tensor in trained.sae.state_dict().items()}
    return {
        f"sae_{trained.init}.safetensors": save(weights),
        f"sae_{trained.init}.json": json.dumps(config, indent=2, sort_keys=True).encode(),
        f"card_{trained.init}.md": ("\n".join(card) + "\n").encode(),
    }


def load_sae(files: dict[str, bytes], init: str) -> Any:
    """Rebuild the `init` SAE written by `sae_files`."""
    from safetensors.torch import load
    from sparsify import SparseCoder, SparseCoderConfig

    config = json.loads(files[f"sae_{init}.json"])
    sae = SparseCoder(config["d_in"], SparseCoderConfig(num_latents=config["num_latents"], k=config["k"]))
    sae.load_state_dict(load(files[f"sae_{init}.safetensors"]))
    return sae


def latent_codes(sae: Any, activations: np.ndarray) -> np.ndarray:
    """Dense [tokens, latents] TopK codes of `activations`."""
    import torch

    with torch.no_grad():
        encoded = sae.encode(torch.from_numpy(activations).float())
        dense = torch.zeros(len(activations), sae.num_latents)
        dense.scatter_(1, encoded.top_indices, encoded.top_acts)
    return dense.numpy()


def train_both(
    activations: np.ndarray, heldout: np.ndarray, dictionary: np.ndarray, settings: SaeSettings, log=None
) -> dict[str, TrainedSae]:
    """The dictionary-initialised and the random-initialised SAE, same data, k and steps (held-out rows: `heldout`)."""
    if heldout.all() or not heldout.any():
        raise ValueError("need both training and held-out token activations for the SAE")
    return {
        init: train_sae(activations[~heldout], activations[heldout], dictionary, init, settings, log) for init in INITS
    }


def ablate_latents(sae: Any, latents: list[int], strength: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """A steerer that subtracts `strength` x the decoded contribution of `latents` from hidden states."""
    import torch

    index = torch.tensor(latents, dtype=torch.long)

    def steer(hidden: np.ndarray) -> np.ndarray:
        codes = torch.from_numpy(latent_codes(sae, hidden.astype(np.float32)))[:, index]
        removed = codes @ sae.W_dec.detach()[index]
        return hidden - strength * removed.double().numpy()

    return steer
