"""Code versions derived from the source an asset runs, so changed logic marks it unsynced.

An asset's code version is its declared version plus a digest of the syntax trees of its module and
every project module that module imports, transitively (`assets/`, `ops/`, `training/`), and of the
data files (prompts, label sets) shipped inside those packages. Comments and formatting do not count
(the digest is over the parsed tree); any change of code does, without anyone remembering to bump
`code_version`. Applied once, in `pipelines/definitions.py`, to every asset.

Every process that runs a step loads the definitions, so parsing ~180 files there (2.7 s of CPU) was paid
per step. Each file's (tree digest, imported names) is kept in a small JSON cache keyed by the sha256 of the
file's bytes and the Python version (`ast.dump` differs across versions): a load then reads and hashes the
files and parses only the changed ones. A missing, corrupt or unwritable cache only costs the parse.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import dagster as dg

PROJECT_PACKAGES = ("assets", "ops", "training")
DATA_SUFFIXES = (".json", ".txt")
DIGEST_CHARS = 12
CACHE_FORMAT = f"1-{sys.implementation.cache_tag}"
CACHE_ENTRIES = 4096


@cache
def module_path(name: str) -> Path | None:
    """Source file of a module, None when it is not a Python source module.

    Only the top-level package is looked up with `find_spec`; submodules are resolved as files under its
    folders. `find_spec("a.b.c")` would import `a.b` (and `from m import x` candidates `m.x` make that `m`),
    so deriving versions would import every module an asset body imports lazily (torch and all) at load."""
    top, *parts = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not parts:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for folder in map(Path, spec.submodule_search_locations or []):
        package = folder.joinpath(*parts[:-1])
        if parts[:-1] and not (package / "__init__.py").is_file():
            continue
        for candidate in (package / f"{parts[-1]}.py", package / parts[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules (and of `from m import x` candidates `m.x`) a syntax tree imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def digest_cache_path() -> Path:
    """`$ASSAY_HOME/cache/code_versions.json`, else under `$XDG_CACHE_HOME` (or `~/.cache`)."""
    home = os.environ.get("ASSAY_HOME")
    root = Path(home) / "cache" if home else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assay"
    return root / "code_versions.json"


class ParsedFiles:
    """(tree digest, imported names) per file content, remembered across processes in the digest cache."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = self._read()
        self.added = 0

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else None
        return entries if isinstance(entries, dict) else {}

    def get(self, path: Path, module: str) -> tuple[str, frozenset[str]]:
        """The file's tree digest and imported names, parsed only when this content was never seen."""
        source = path.read_bytes()
        key = f"{module}:{path.name == '__init__.py'}:{hashlib.sha256(source).hexdigest()}"
        entry = self.entries.get(key)
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            tree = ast.parse(source)
            entry = [
                hashlib.sha256(ast.dump(tree).encode()).hexdigest(),
                sorted(_imports(tree, module, path.name == "__init__.py")),
            ]
            self.entries[key] = entry
            self.added += 1
        return entry[0], frozenset(entry[1])

    def save(self) -> None:
        """Write new entries (the newest `CACHE_ENTRIES` kept) atomically; an unwritable place is skipped."""
        if not self.added:
            return
        kept = dict(list(self.entries.items())[-CACHE_ENTRIES:])
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging.write_text(json.dumps({"format": CACHE_FORMAT, "entries": kept}), encoding="utf-8")
            os.replace(staging, self.path)
        except OSError:
            staging.unlink(missing_ok=True)
            return
        self.added = 0


@cache
def parsed_files() -> ParsedFiles:
    """This process's view of the digest cache."""
    return ParsedFiles(digest_cache_path())


def module_closure(module: str, packages: Iterable[str] = PROJECT_PACKAGES) -> dict[str, Path]:
    """The module and every module of `packages` it imports, directly or not: name -> source file."""
    roots = tuple(packages)
    found: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in found or not (name == module or name.split(".")[0] in roots):
            continue
        path = module_path(name)
        if path is None:
            continue
        found[name] = path
        todo.extend(parsed_files().get(path, name)[1])
    return found


def _package_data(path: Path) -> list[Path]:
    """Data files shipped inside a package (only for its `__init__.py`)."""
    if path.name != "__init__.py":
        return []
    return sorted(p for p in path.parent.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file())


def source_digest(modules: dict[str, Path]) -> str:
    """sha256 over each module's syntax-tree digest and its package's data files, in name order."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        path = modules[name]
        digest.update(f"{name}\n{parsed_files().get(path, name)[0]}\n".encode())
        for data in _package_data(path):
            digest.update(f"{data.relative_to(path.parent)}\n".encode() + data.read_bytes() + b"\n")
    return digest.hexdigest()


@cache
def module_digest(module: str, packages: tuple[str, ...] = PROJECT_PACKAGES) -> str:
    """Digest of a module's import closure, computed once per process (a code location reload is a new one)."""
    digest = source_digest(module_closure(module, packages))
    parsed_files().save()
    return digest


def compute_modules(assets_def: dg.AssetsDefinition) -> set[str]:
    """Modules whose functions compute the assets (one for an op, several for a graph)."""
    node = assets_def.node_def
    ops = node.iterate_op_defs() if isinstance(node, dg.GraphDefinition) else [node]
    modules = set()
    for op in ops:
        function = getattr(op.compute_fn, "decorated_fn", op.compute_fn)
        modules.add(function.__module__)
    return modules


def derived_version(declared: str | None, digests: Iterable[str]) -> str:
    """`<declared>+<digest>`: a manual bump still shows, the digest follows the code."""
    combined = hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()[:DIGEST_CHARS]
    return f"{declared or '0'}+{combined}"


def with_derived_code_versions(
    assets_def: dg.AssetsDefinition, packages: tuple[str, ...] = PROJECT_PACKAGES
) -> dg.AssetsDefinition:
    """The assets definition with every asset's code version derived from its source."""
    if not assets_def.is_executable:
        return assets_def
    digests = [module_digest(module, packages) for module in sorted(compute_modules(assets_def))]
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=derived_version(spec.code_version, digests))
    )
