"""Code versions follow the source an asset runs, and Dagster then reports it and its downstream as unsynced."""

import importlib
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

import pipelines.code_versions
from pipelines.code_versions import (
    ParsedFiles,
    compute_modules,
    derived_version,
    module_closure,
    module_digest,
    module_path,
    parsed_files,
    source_digest,
    with_derived_code_versions,
)

DEMO = ("demo_assets", "demo_ops")
OPS_SOURCE = '''
def scale(values: list[int]) -> list[int]:
    """Double every value."""
    return [2 * value for value in values]
'''
UPSTREAM_SOURCE = """
import dagster as dg

from demo_ops.logic import scale


@dg.asset(code_version="1")
def numbers() -> list[int]:
    return scale([1, 2, 3])
"""
DOWNSTREAM_SOURCE = """
import dagster as dg


@dg.asset(code_version="1")
def total(numbers: list[int]) -> int:
    return sum(numbers)
"""


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project: `demo_assets.upstream` runs `demo_ops.logic`; `demo_assets.downstream` reads its asset."""
    for package, files in {
        "demo_ops": {"logic.py": OPS_SOURCE},
        "demo_assets": {"upstream.py": UPSTREAM_SOURCE, "downstream.py": DOWNSTREAM_SOURCE},
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        for name, source in files.items():
            (tmp_path / package / name).write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    _forget_demo()


def _forget_demo() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in DEMO]:
        del sys.modules[name]
    module_digest.cache_clear()
    module_path.cache_clear()
    importlib.invalidate_caches()


def _definitions() -> dg.Definitions:
    """The demo's assets with derived code versions, imported afresh (as a code-location reload does)."""
    _forget_demo()
    upstream = importlib.import_module("demo_assets.upstream")
    downstream = importlib.import_module("demo_assets.downstream")
    assets = [with_derived_code_versions(a, DEMO) for a in (upstream.numbers, downstream.total)]
    return dg.Definitions(assets=assets)


def _resolver(instance: dg.DagsterInstance, defs: dg.Definitions) -> CachingStaleStatusResolver:
    """What the UI asks for "unsynced"."""
    return CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))


def _statuses(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, StaleStatus]:
    resolver = _resolver(instance, defs)
    return {name: resolver.get_status(dg.AssetKey(name)) for name in ("numbers", "total")}


def _causes(instance: dg.DagsterInstance, defs: dg.Definitions, name: str) -> list[str]:
    return [cause.reason for cause in _resolver(instance, defs).get_stale_causes(dg.AssetKey(name))]


def test_changed_op_logic_marks_the_asset_then_its_downstream_unsynced(demo: Path, instance):
    defs = _definitions()
    assert dg.materialize(list(defs.assets), instance=instance).success
    assert _statuses(instance, defs) == {"numbers": StaleStatus.FRESH, "total": StaleStatus.FRESH}

    logic = demo / "demo_ops" / "logic.py"
    logic.write_text(logic.read_text() + "\n# a comment and blank lines change nothing\n\n")
    assert _statuses(instance, _definitions()) == {"numbers": StaleStatus.FRESH, "total": StaleStatus.FRESH}

    logic.write_text(OPS_SOURCE.replace("2 * value", "3 * value"))
    changed = _definitions()
    assert _statuses(instance, changed) == {"numbers": StaleStatus.STALE, "total": StaleStatus.FRESH}
    assert _causes(instance, changed, "numbers") == ["has a new code version"]

    # Dagster reports a downstream asset unsynced once its input has a new data version:
    numbers_only = dg.AssetSelection.assets("numbers")
    assert dg.materialize(list(changed.assets), instance=instance, selection=numbers_only).success
    assert _statuses(instance, changed) == {"numbers": StaleStatus.FRESH, "total": StaleStatus.STALE}
    assert _causes(instance, changed, "total") == ["has a new dependency data version"]

    assert dg.materialize(list(changed.assets), instance=instance).success
    assert _statuses(instance, changed) == {"numbers": StaleStatus.FRESH, "total": StaleStatus.FRESH}


def test_closure_follows_project_imports_only(demo: Path):
    importlib.import_module("demo_assets.upstream")
    closure = module_closure("demo_assets.upstream", DEMO)
    assert set(closure) == {"demo_assets.upstream", "demo_ops.logic"}  # not dagster, not the downstream module
    assert compute_modules(importlib.import_module("demo_assets.upstream").numbers) == {"demo_assets.upstream"}


def test_digest_ignores_formatting_but_not_code(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    before = source_digest({"m": path})
    path.write_text("# note\nx = (1)\n\n")
    assert source_digest({"m": path}) == before
    path.write_text("x = 2\n")
    assert source_digest({"m": path}) != before


def test_declared_version_stays_visible():
    assert derived_version("3", ["abc"]).startswith("3+")
    assert derived_version(None, ["abc"]).startswith("0+")
    assert derived_version("1", ["abc"]) != derived_version("1", ["abd"])


def test_every_asset_of_the_code_location_has_a_derived_version(assay_home):
    from pipelines.definitions import build_definitions
    from pipelines.profiles import build_resources

    graph = build_definitions(build_resources("local")).resolve_asset_graph()
    versions = {key.to_user_string(): graph.get(key).code_version for key in graph.materializable_asset_keys}
    assert [name for name, version in versions.items() if "+" not in (version or "")] == []
    # the students share their module and ops; NMI's module differs, so its version does too
    assert versions["mlp_filter"] == versions["encoder_classifier"] != versions["taxonomy_nmi"]


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real_parse = pipelines.code_versions.ast.parse

    def counting_parse(*args, **kwargs):
        calls[0] += 1
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(pipelines.code_versions.ast, "parse", counting_parse)
    return calls


def test_parsed_files_are_remembered_by_content_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = tmp_path / "m.py"
    source.write_text("import demo_ops.logic\nx = 1\n")
    cache = tmp_path / "cache" / "code_versions.json"
    parses = _count_parses(monkeypatch)

    first = ParsedFiles(cache)
    parsed = first.get(source, "m")
    first.save()
    assert parses[0] == 1 and parsed[1] == {"demo_ops.logic"}

    again = ParsedFiles(cache)  # what the next process reads
    assert again.get(source, "m") == parsed and parses[0] == 1  # no parse: same content, same answer
    source.write_text("import demo_ops.logic\nx = 2\n")
    assert again.get(source, "m")[0] != parsed[0] and parses[0] == 2  # changed content is parsed again

    cache.write_text("{not json")
    assert ParsedFiles(cache).get(source, "m") == again.get(source, "m")  # a corrupt cache costs a parse only


def test_a_load_with_the_cache_derives_the_same_versions(demo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ASSAY_HOME", str(tmp_path / "home"))
    parsed_files.cache_clear()
    try:
        fresh = {a.key: a.specs_by_key[a.key].code_version for a in _definitions().assets}
        parses = _count_parses(monkeypatch)
        parsed_files.cache_clear()  # a new process: only the cache file remains
        cached = {a.key: a.specs_by_key[a.key].code_version for a in _definitions().assets}
        assert cached == fresh and parses[0] == 0
    finally:
        parsed_files.cache_clear()
