"""Declarative document filters over the corpus labels: DuckDB SQL WHERE clauses, their yields, compounds.

The labels of `web_doc_labels` are flattened into one table `labels`: `doc_id`, per dimension
`{d}__primary` and `{d}__secondary` (codes as strings) and one probability column `{d}__p{code}` per
non-abstain code. A filter is a name plus a WHERE clause over that table (e.g.
`reasoning_depth__primary IN ('3', '4', '5')` or `timeliness__p1 >= 0.6`). Expressions run in an
in-memory DuckDB connection without file or network access, one SELECT each.

Baselines are filters too: `none` keeps everything, `random_y0.30` keeps the documents ranked lowest by
sha256(seed:doc_id), as many as that yield asks for, so a filter is compared with a random subset of
the same size (yields are rounded to a grid so that filters of similar yield share one baseline).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from ops.common.text import sha256_hex
from ops.webdocs.taxonomy import ABSTAIN, DIMENSIONS, vocabularies

TABLE = "labels"
SINGLE, COMPOUND, RANDOM, NONE = "single", "compound", "random", "none"
NO_FILTER = "none"
SELECTED, EMPTY, OUT_OF_RANGE, NOT_CHOSEN = "selected", "empty", "yield_out_of_range", "not_chosen"
STATUSES = (SELECTED, EMPTY, OUT_OF_RANGE, NOT_CHOSEN)
KINDS = (SINGLE, COMPOUND, RANDOM, NONE)
# Codes in their natural order where "at least" means something (the last code of each is "indeterminate"
# or "not applicable" and is left out).
ORDINAL: dict[str, tuple[str, ...]] = {
    "reasoning_depth": ("1", "2", "3", "4", "5"),
    "technical_correctness": ("1", "2", "3", "4", "5"),
    "education_level": ("1", "2", "3", "4"),
    "bloom_cognitive_process": ("1", "2", "3", "4", "5", "6"),
}
FILTERS_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String,
    "kind": pl.String,
    "dimension": pl.String,
    "expression": pl.String,
    "kept_docs": pl.Int64,
    "total_docs": pl.Int64,
    "yield": pl.Float64,
    "baseline": pl.String,
    "status": pl.String,
}


class FilterError(ValueError):
    """A filter expression that does not parse, names an unknown column or is not a single condition."""


@dataclass(frozen=True)
class FilterSpec:
    """A named WHERE clause over `labels` (kind `single` or `compound`), or a baseline (`random`, `none`)."""

    name: str
    expression: str
    kind: str = SINGLE
    dimension: str = ""


@dataclass(frozen=True)
class CandidateConfig:
    """How single-dimension filters are picked: yields kept in [min_yield, max_yield], per dimension the
    one closest to `target_yield`, at most `max_filters`; random baselines on a `yield_step` grid."""

    dimensions: tuple[str, ...] = DIMENSIONS
    min_yield: float = 0.1
    max_yield: float = 0.7
    target_yield: float = 0.3
    max_filters: int = 4
    yield_step: float = 0.1
    seed: int = 0


def probability_column(dimension: str, code: str) -> str:
    """Name of the probability column of one code ("timeliness", "1" -> "timeliness__p1")."""
    return f"{dimension}__p{code}"


def label_table(labels: pl.DataFrame, doc_ids: pl.Series | None = None) -> pl.DataFrame:
    """The flat `labels` table of `web_doc_labels` rows, restricted to `doc_ids` (the deduplicated corpus)."""
    if doc_ids is not None:
        labels = labels.filter(pl.col("doc_id").is_in(doc_ids))
    columns: list[pl.Expr] = [pl.col("doc_id")]
    for dimension, codes in vocabularies().items():
        columns += [pl.col(f"{dimension}__primary"), pl.col(f"{dimension}__secondary")]
        columns += [
            pl.col(f"{dimension}__probs").list.get(index).cast(pl.Float64).alias(probability_column(dimension, code))
            for index, code in enumerate(codes)
            if code != ABSTAIN
        ]
    return labels.select(columns).sort("doc_id")


class FilterTable:
    """The `labels` table registered once in a sandboxed in-memory DuckDB, for evaluating many filters."""

    def __init__(self, table: pl.DataFrame) -> None:
        self.table = table
        self._connection = duckdb.connect(":memory:")
        self._connection.register(TABLE, table.to_arrow())
        self._connection.execute("SET enable_external_access = false")
        self._random_order: list[str] | None = None

    def __enter__(self) -> FilterTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.close()

    def kept_ids(self, spec: FilterSpec) -> list[str]:
        """Ids of the documents a filter keeps, sorted; `FilterError` naming the filter if it is invalid."""
        if spec.kind == NONE:
            return sorted(self.table["doc_id"].to_list())
        if spec.kind == RANDOM:
            if self._random_order is None:
                self._random_order = random_order(self.table["doc_id"])
            return sorted(self._random_order[: round(random_yield(spec.name) * self.table.height)])
        if ";" in spec.expression or not spec.expression.strip():
            raise FilterError(f"filter {spec.name!r}: {spec.expression!r} must be one non-empty condition")
        query = f"SELECT doc_id FROM {TABLE} WHERE ({spec.expression}) ORDER BY doc_id"
        try:
            rows = self._connection.execute(query).fetchall()
        except duckdb.ParserException as error:
            raise FilterError(f"filter {spec.name!r}: {spec.expression!r} does not parse: {error}") from error
        except duckdb.BinderException as error:
            raise FilterError(f"filter {spec.name!r}: {spec.expression!r} names an unknown column: {error}") from error
        except duckdb.Error as error:
            raise FilterError(f"filter {spec.name!r}: {spec.expression!r} cannot run: {error}") from error
        return [row[0] for row in rows]


def kept_ids(table: pl.DataFrame, spec: FilterSpec) -> list[str]:
    """Ids of the documents one filter keeps (see `FilterTable.kept_ids`)."""
    with FilterTable(table) as filters:
        return filters.kept_ids(spec)


def random_order(doc_ids: pl.Series, seed: int = 0) -> list[str]:
    """Documents ranked by sha256(seed:doc_id): a random order independent of row order. A random
    baseline of yield y keeps the first y * n."""
    return sorted(doc_ids.to_list(), key=lambda doc_id: sha256_hex(f"{seed}:{doc_id}"))


def random_name(yield_: float, step: float) -> str:
    """The random baseline's name for a yield rounded to the grid (0.337, 0.1 -> "random_y0.30")."""
    rounded = max(step, round(round(yield_ / step) * step, 6))
    return f"{RANDOM}_y{rounded:.2f}"


def random_yield(name: str) -> float:
    """The yield a random baseline's name asks for ("random_y0.30" -> 0.3)."""
    return float(name.removeprefix(f"{RANDOM}_y"))


def single_filters(table: pl.DataFrame, config: CandidateConfig) -> list[FilterSpec]:
    """Every generated single-dimension filter: primary = code, primary at least k (ordinal dimensions),
    and a probability threshold per code at the quantile that keeps `target_yield` of the documents."""
    vocabulary = vocabularies()
    specs = []
    for dimension in config.dimensions:
        primary = f"{dimension}__primary"
        for code in vocabulary[dimension]:
            if code == ABSTAIN:
                continue
            specs.append(FilterSpec(f"{dimension}_eq_{code}", f"{primary} = '{code}'", SINGLE, dimension))
            probs = table[probability_column(dimension, code)].to_numpy()
            if len(probs):
                threshold = float(np.floor(np.quantile(probs, 1 - config.target_yield) * 1e4) / 1e4)
                column = probability_column(dimension, code)
                specs.append(
                    FilterSpec(f"{column}_ge_{threshold:.4f}", f"{column} >= {threshold:.4f}", SINGLE, dimension)
                )
        ordered = ORDINAL.get(dimension, ())
        for index in range(1, len(ordered)):
            codes = ", ".join(f"'{code}'" for code in ordered[index:])
            specs.append(FilterSpec(f"{dimension}_ge_{ordered[index]}", f"{primary} IN ({codes})", SINGLE, dimension))
    return specs


def filter_rows(table: pl.DataFrame, specs: Sequence[FilterSpec], step: float) -> list[dict]:
    """One row per filter: its kept count and yield, and the random baseline at that yield."""
    rows = []
    with FilterTable(table) as filters:
        counts = [len(filters.kept_ids(spec)) for spec in specs]
    for spec, kept in zip(specs, counts, strict=True):
        share = kept / table.height if table.height else 0.0
        baseline = random_name(share, step) if spec.kind in (SINGLE, COMPOUND) and kept else None
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "dimension": spec.dimension,
                "expression": spec.expression,
                "kept_docs": kept,
                "total_docs": table.height,
                "yield": round(share, 6),
                "baseline": baseline,
                "status": EMPTY if kept == 0 else SELECTED,
            }
        )
    return rows


def _choose(rows: list[dict], config: CandidateConfig) -> list[dict]:
    """Mark the filters to train: per dimension the in-range one closest to the target yield, at most max_filters."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["status"] == EMPTY:
            continue
        if not config.min_yield <= row["yield"] <= config.max_yield:
            row["status"] = OUT_OF_RANGE
            continue
        row["status"] = NOT_CHOSEN
        current = best.get(row["dimension"])
        key = (abs(row["yield"] - config.target_yield), row["name"])
        if current is None or key < (abs(current["yield"] - config.target_yield), current["name"]):
            best[row["dimension"]] = row
    chosen = sorted(best.values(), key=lambda row: (abs(row["yield"] - config.target_yield), row["name"]))
    for row in chosen[: config.max_filters]:
        row["status"] = SELECTED
    return rows


def with_baselines(rows: list[dict], table_height: int, known: Sequence[str] = ()) -> list[dict]:
    """Append the `none` baseline (unless known) and one random baseline per yield the selected filters need."""
    needed = sorted({row["baseline"] for row in rows if row["status"] == SELECTED and row["baseline"]} - set(known))
    extra = [] if NO_FILTER in known else [FilterSpec(NO_FILTER, "TRUE", NONE)]
    extra += [FilterSpec(name, f"random sample, yield {random_yield(name):.2f}", RANDOM) for name in needed]
    for spec in extra:
        kept = table_height if spec.kind == NONE else round(random_yield(spec.name) * table_height)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "dimension": "",
                "expression": spec.expression,
                "kept_docs": kept,
                "total_docs": table_height,
                "yield": round(kept / table_height, 6) if table_height else 0.0,
                "baseline": None,
                "status": SELECTED if kept else EMPTY,
            }
        )
    return rows


def filter_candidates(table: pl.DataFrame, config: CandidateConfig, extra: Mapping[str, str]) -> pl.DataFrame:
    """All generated single-dimension filters plus `extra` (name -> WHERE clause, always trained unless empty),
    with yields, the chosen ones marked `selected`, and the baselines they need."""
    specs = single_filters(table, config)
    known = {spec.name for spec in specs}
    clashes = sorted(known & set(extra)) + sorted(set(extra) & {NO_FILTER})
    if clashes:
        raise FilterError(f"extra filter names {clashes} clash with generated filters or baselines")
    rows = _choose(filter_rows(table, specs, config.yield_step), config)
    for row in filter_rows(
        table, [FilterSpec(name, expr, SINGLE, "extra") for name, expr in extra.items()], config.yield_step
    ):
        rows.append(row)
    return pl.DataFrame(with_baselines(rows, table.height), schema=FILTERS_SCHEMA)


def to_spec(row: Mapping[str, object]) -> FilterSpec:
    """A row of a filters table back into a `FilterSpec`."""
    return FilterSpec(str(row["name"]), str(row["expression"]), str(row["kind"]), str(row["dimension"] or ""))


def trained(filters: pl.DataFrame) -> list[str]:
    """Names of the filters and baselines that get proxy runs (selected and keeping at least one document)."""
    return filters.filter((pl.col("status") == SELECTED) & (pl.col("kept_docs") > 0))["name"].to_list()


def compound_specs(top: Sequence[FilterSpec]) -> list[FilterSpec]:
    """AND and OR of every pair of the top filters, in rank order."""
    specs = []
    for first, second in itertools.combinations(top, 2):
        for operator in ("and", "or"):
            specs.append(
                FilterSpec(
                    f"{first.name}__{operator}__{second.name}",
                    f"({first.expression}) {operator.upper()} ({second.expression})",
                    COMPOUND,
                    f"{first.dimension}+{second.dimension}",
                )
            )
    return specs


def compound_filters(
    table: pl.DataFrame, pass1: pl.DataFrame, top_k: int, step: float, known_baselines: Sequence[str]
) -> pl.DataFrame:
    """AND / OR compounds of the `top_k` single filters of pass 1 (ranked), with yields and the extra
    random baselines their yields need (baselines already trained in pass 1 are reused)."""
    singles = pass1.filter(pl.col("kind") == SINGLE).sort("rank").head(top_k)
    specs = compound_specs([to_spec(row) for row in singles.iter_rows(named=True)])
    rows = filter_rows(table, specs, step)
    rows = with_baselines(rows, table.height, known=[*known_baselines, NO_FILTER])
    return pl.DataFrame(rows, schema=FILTERS_SCHEMA)
