"""The Makefile's install path (docs/install.md): every package install goes through uv with pip's find-links (where
this workplace's CPU torch wheel lies), and llama.cpp keeps its x86-64-v3 flags without the multimodal library."""

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _dry_run(target: str, *variables: str) -> list[list[str]]:
    """The commands `make -n -B <target>` would run (recipe comments left out), each split into words."""
    done = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target, *variables], capture_output=True, text=True, check=True
    )
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip() and not line.startswith("#")]


def _installs(commands: list[list[str]]) -> list[list[str]]:
    return [words for words in commands if "install" in words and any(w.endswith(("pip", "uv")) for w in words[:2])]


@pytest.mark.parametrize("target", ["install", "install-dev"])
def test_every_install_but_uv_itself_goes_through_uv_with_the_find_links(target: str) -> None:
    installs = _installs(_dry_run(target, "FIND_LINKS=/wheels/a /wheels/b"))
    bootstrap, rest = installs[0], installs[1:]
    assert bootstrap[0].endswith("/pip") and bootstrap[-1].startswith("uv")
    assert rest and all(words[0].endswith("/uv") and words[1:3] == ["pip", "install"] for words in rest)
    for words in rest:
        links = [words[i + 1] for i, word in enumerate(words) if word == "--find-links"]
        assert links == ["/wheels/a", "/wheels/b"], words


def test_find_links_default_to_pips_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/from/pip")
    rest = _installs(_dry_run("install"))[1:]
    assert all("/from/pip" in words for words in rest)


def test_llama_cpp_is_built_for_x86_64_v3_without_libmtmd_or_llama_common() -> None:
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "--eval", "print-cmake: ; @echo $$CMAKE_ARGS", "print-cmake"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"},
    )
    flags = set(done.stdout.split())
    assert {"-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_AVX512=OFF", "-DGGML_AMX_INT8=OFF"} <= flags
    assert "-DLLAVA_BUILD=OFF" in flags
    script = next(flag.split("=", 1)[1] for flag in flags if flag.startswith("-DCMAKE_PROJECT_llama.cpp_INCLUDE="))
    assert Path(script).name == "llama_cpp_no_common.cmake" and Path(script).parent == ROOT / ".venv"
    recipe = subprocess.run(
        ["make", "-s", "-n", "-B", "-C", str(ROOT), script], capture_output=True, text=True, check=True
    ).stdout
    assert "set(LLAMA_BUILD_COMMON OFF)" in recipe


def test_installed_llama_cpp_loads_without_the_multimodal_library() -> None:
    """The import path assay uses (Llama, LlamaGrammar) never touches libmtmd, built or not."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    code = (
        "import sys, llama_cpp; llama_cpp.Llama, llama_cpp.LlamaGrammar; assert 'llama_cpp.mtmd_cpp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_recipes_write_bytecode_caches_even_where_the_environment_turns_them_off() -> None:
    """Every target's Python processes compile each module once, not on every import (docs/install.md)."""
    probe = 'probe:\n\t@echo "[$$PYTHONDONTWRITEBYTECODE]"\n'
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "-f", "Makefile", "-f", "-", "probe"],
        input=probe,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
