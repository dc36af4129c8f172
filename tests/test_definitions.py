"""The code location loads in every profile, and every asset carries what the UI needs."""

import ast
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from pipelines.profiles import PROFILES, build_resources, current_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IMPORTS = {
    "ops": {"dagster", "assets", "resources", "pipelines"},
    "training": {"dagster", "assets", "resources", "pipelines"},
    "resources": {"assets", "pipelines"},
}


@pytest.mark.parametrize("profile", PROFILES)
def test_definitions_load_in_every_profile(profile, assay_home, monkeypatch):
    monkeypatch.setenv("ASSAY_PROFILE", profile)
    defs = build_definitions(build_resources())
    dg.Definitions.validate_loadable(defs)
    assert {"llm", "embedder", "io_manager", "lancedb", "duckdb", "quality", "inputs"} <= set(defs.resources)
    backends = {"local": "llamacpp", "gpu": "vllm", "cluster": "openai"}
    assert defs.resources["llm"].backend == backends[profile]
    jobs = {"webdocs", "shopping_catalog", "shopping", "shopping_summary", "shopbench", "shopbench_report"}
    assert {job.name for job in defs.jobs} >= jobs


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("ASSAY_PROFILE", "laptop")
    with pytest.raises(ValueError, match="'laptop' is not one of local, gpu, cluster"):
        current_profile()


def test_every_asset_has_code_version_group_description_and_kinds(assay_home):
    graph = build_definitions(build_resources("local")).resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        name = key.to_user_string()
        assert node.code_version, f"{name} has no code_version"
        assert node.group_name and node.group_name != "default", f"{name} has no group"
        assert node.description and len(node.description) > 30, f"{name} has no description"
        assert node.kinds, f"{name} has no kinds"


def test_every_check_is_blocking(assay_home):
    defs = build_definitions(build_resources("local"))
    specs = [spec for checks in defs.asset_checks for spec in checks.check_specs]
    assert specs and all(spec.blocking for spec in specs)
    assert {spec.asset_key.to_user_string() for spec in specs} >= {
        "raw_web_docs",
        "web_docs",
        "web_docs_quarantine",
        "web_doc_embeddings",
    }


def test_every_asset_has_a_blocking_check(assay_home):
    defs = build_definitions(build_resources("local"))
    checked = {spec.asset_key for checks in defs.asset_checks for spec in checks.check_specs if spec.blocking}
    graph = defs.resolve_asset_graph()
    unchecked = sorted(key.to_user_string() for key in graph.materializable_asset_keys if key not in checked)
    assert unchecked == [], f"assets without a blocking check: {', '.join(unchecked)}"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_IMPORTS))
def test_layers_import_in_one_direction(layer):
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_modules(path) & FORBIDDEN_IMPORTS[layer])
        for path in (REPO_ROOT / layer).rglob("*.py")
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}


def test_import_rule_test_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dagster import asset\nimport resources.llm\n")
    assert imported_modules(bad) & FORBIDDEN_IMPORTS["ops"] == {"dagster", "resources"}
