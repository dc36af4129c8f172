"""A per-customer DuckDB sandbox where model-written SQL runs, and the text the agent reads back.

The Customer Agent answers questions by querying one customer's `events` and `products` tables. The
SQL comes from a model, so it is treated as hostile; protections are layered, each checked by tests:
1. Only the customer's own rows exist: the tables are written into a fresh DuckDB file in a private
   temporary directory (mode 0700), one per sandbox, so other customers' rows are simply not there.
2. Statement filter: DuckDB's own parser (`extract_statements`) must find exactly one statement of
   type SELECT (this covers WITH ... SELECT, VALUES, FROM-first, DESCRIBE/SHOW/SUMMARIZE); COPY,
   ATTACH, INSTALL/LOAD, SET/PRAGMA, CREATE/INSERT/UPDATE/DELETE/DROP, CALL, EXPORT, EXPLAIN and
   multiple statements are refused before anything runs.
3. Engine settings: the file is reopened `read_only`, with `enable_external_access=false` (no file,
   network, ATTACH or extension access, even from SELECT table functions such as `read_csv`),
   extension autoload/autoinstall off, `threads=1`, a `memory_limit`, and `lock_configuration=true`
   so no SET/PRAGMA can lift these limits.
4. Limits: each query runs in a worker thread on its own cursor and is interrupted when it passes
   `time_limit_s`; at most `row_limit` rows are fetched (streamed, so a huge result costs nothing).
Every refusal or stop comes back as a `QueryObservation` with a message the agent can read; nothing
is raised to the caller.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from ops.shopping.questions import NONE_ANSWER, customer_tables, format_answer

TABLES = ("events", "products")

# How long a stopped query may take to unwind after `interrupt()` before we give up waiting on it.
_INTERRUPT_GRACE_S = 5.0


@dataclass(frozen=True)
class QueryObservation:
    """What one query produced: rows (at most `row_limit`) or a readable `error`; never an exception.

    `truncated` is True when the result had more rows than were kept. `elapsed_s` covers parsing,
    execution and fetching.
    """

    ok: bool
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    error: str | None
    elapsed_s: float


class CustomerSandbox:
    """One customer's `events` and `products` in a locked, read-only DuckDB database.

    Build it with that customer's events (a single customer) and the catalog or any superset of their
    products: the tables are made by `questions.customer_tables`, the same function that builds the
    tables the gold SQL runs over, so the agent sees exactly what the gold answer was computed from.
    Use it as a context manager or call `close()` to delete its temporary directory.
    """

    def __init__(
        self,
        events: pl.DataFrame,
        products: pl.DataFrame,
        *,
        row_limit: int = 20,
        time_limit_s: float = 5.0,
        memory_limit: str = "256MB",
    ) -> None:
        customers = events.get_column("customer_id").unique().to_list()
        if len(customers) > 1:
            raise ValueError(f"a sandbox holds one customer's events, got {len(customers)} customers")
        if row_limit < 1 or time_limit_s <= 0:
            raise ValueError("row_limit must be >= 1 and time_limit_s > 0")
        self.customer_id: str | None = customers[0] if customers else None
        self.row_limit = row_limit
        self.time_limit_s = time_limit_s
        self.memory_limit = memory_limit
        self._directory = tempfile.mkdtemp(prefix="assay-sandbox-")  # created with mode 0700
        path = os.path.join(self._directory, "customer.duckdb")
        try:
            events_table, products_table = customer_tables(events, products)
            _write_database(path, {"events": events_table, "products": products_table})
            self._connection = duckdb.connect(path, read_only=True, config=_locked_config(memory_limit))
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, _release, self._connection, self._directory)
        self.schema: dict[str, list[tuple[str, str]]] = {
            table: [(row[0], row[1]) for row in self._connection.execute(f"DESCRIBE {table}").fetchall()]
            for table in TABLES
        }

    def __enter__(self) -> CustomerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and delete the database file; later queries report the sandbox closed."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return not self._finalizer.alive

    def schema_text(self) -> str:
        """The two tables as `name(column TYPE, ...)` lines, for the agent's system prompt."""
        return "\n".join(
            f"{table}({', '.join(f'{column} {kind}' for column, kind in columns)})"
            for table, columns in self.schema.items()
        )

    def run_query(self, sql: str) -> QueryObservation:
        """Run one model-written SELECT under the sandbox limits; refusals and stops come back as errors."""
        started = time.perf_counter()
        if self.closed:
            return _failure("refused: this sandbox is closed", started)
        refusal = self._refusal(sql)
        if refusal is not None:
            return _failure(refusal, started)
        cursor = self._connection.cursor()
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=self._execute, args=(cursor, sql, outcome), daemon=True)
        worker.start()
        worker.join(self.time_limit_s)
        if worker.is_alive():
            cursor.interrupt()
            worker.join(_INTERRUPT_GRACE_S)
            if not worker.is_alive():
                cursor.close()
            return _failure(f"query stopped after {self.time_limit_s:g} s (time limit)", started)
        cursor.close()
        if "error" in outcome:
            return _failure(self._error_message(outcome["error"]), started)
        rows = outcome["rows"]
        return QueryObservation(
            ok=True,
            columns=outcome["columns"],
            rows=rows[: self.row_limit],
            truncated=len(rows) > self.row_limit,
            error=None,
            elapsed_s=time.perf_counter() - started,
        )

    def _refusal(self, sql: str) -> str | None:
        """Why `sql` may not run (None when it is a single SELECT), from DuckDB's own parser."""
        try:
            statements = self._connection.extract_statements(sql)
        except duckdb.Error as exc:
            return f"SQL error: {_first_lines(str(exc))}"
        if not statements:
            return "refused: no SQL statement found; send one SELECT statement"
        kinds = [statement.type.name for statement in statements]
        if len(statements) > 1:
            return (
                f"refused: only one SELECT statement is allowed (got {len(statements)} statements: {', '.join(kinds)})"
            )
        if statements[0].type != duckdb.StatementType.SELECT:
            return f"refused: only one SELECT statement is allowed (got {kinds[0]})"
        return None

    def _execute(self, cursor: duckdb.DuckDBPyConnection, sql: str, outcome: dict[str, Any]) -> None:
        """Worker body: execute and fetch at most row_limit + 1 rows (the extra one detects truncation)."""
        try:
            result = cursor.execute(sql)
            outcome["columns"] = [column[0] for column in result.description or []]
            outcome["rows"] = result.fetchmany(self.row_limit + 1)
        except Exception as exc:  # reported to the agent, e.g. a value Python cannot convert
            outcome["error"] = exc

    def _error_message(self, exc: Exception) -> str:
        text = _first_lines(str(exc))
        if isinstance(exc, duckdb.PermissionException):
            return f"refused: file and network access are disabled in this sandbox ({text})"
        if isinstance(exc, duckdb.OutOfMemoryException):
            return f"query stopped: memory limit of {self.memory_limit} reached"
        if isinstance(exc, duckdb.InterruptException):
            return f"query stopped after {self.time_limit_s:g} s (time limit)"
        return f"SQL error: {text}"


def _locked_config(memory_limit: str) -> dict[str, Any]:
    """DuckDB settings of the query connection; `lock_configuration` keeps SET/PRAGMA from changing them."""
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "threads": 1,
        "memory_limit": memory_limit,
        "lock_configuration": True,
    }


def _write_database(path: str, frames: dict[str, pl.DataFrame]) -> None:
    """Write the frames as tables of a new DuckDB file with an ordinary (unlocked) builder connection."""
    builder = duckdb.connect(path)
    try:
        for table, frame in frames.items():
            builder.register("_frame", frame.to_arrow())
            builder.execute(f"CREATE TABLE {table} AS SELECT * FROM _frame")
            builder.unregister("_frame")
    finally:
        builder.close()


def _release(connection: duckdb.DuckDBPyConnection, directory: str) -> None:
    connection.close()
    shutil.rmtree(directory, ignore_errors=True)


def _failure(message: str, started: float) -> QueryObservation:
    return QueryObservation(
        ok=False, columns=[], rows=[], truncated=False, error=message, elapsed_s=time.perf_counter() - started
    )


def _first_lines(text: str, limit: int = 300) -> str:
    """DuckDB error text folded onto one line and capped, so it fits an agent prompt."""
    folded = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def observation_text(obs: QueryObservation, max_cell_chars: int = 60, max_chars: int = 2000) -> str:
    """Compact text of an observation for the agent's next prompt: a header row, `|`-separated rows.

    Cells longer than `max_cell_chars` and text beyond `max_chars` are cut and marked, so a wide or
    long result cannot flood the prompt; a truncated result says how many rows are shown.
    """
    if not obs.ok:
        return f"error: {obs.error}"
    lines = [" | ".join(obs.columns)]
    lines += [" | ".join(_cell(value, max_cell_chars) for value in row) for row in obs.rows]
    if not obs.rows:
        lines.append("(no rows)")
    elif obs.truncated:
        lines.append(f"(first {len(obs.rows)} rows shown; the result has more - aggregate or add LIMIT)")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 14] + "\n(text cut...)"


def _cell(value: Any, max_chars: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, float):
        text = format(value, ".10g")
    elif isinstance(value, Decimal):
        text = format(value.normalize(), "f")
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def result_mismatch(observation: QueryObservation, answer: str, answer_type: str) -> str | None:
    """Why a sandbox result differs from the gold answer (None when it matches).

    The result must be one row of one value whose canonical form (`format_answer`) is the gold
    answer; for a "none" answer the value itself must be the word "none", since `format_answer`
    maps any value to "none" under that type.
    """
    if not observation.ok:
        return f"error: {observation.error}"
    if len(observation.rows) != 1 or len(observation.rows[0]) != 1:
        return f"shape: {len(observation.rows)} rows, not one value"
    value = observation.rows[0][0]
    if value is None:
        return "NULL result"
    if answer_type == NONE_ANSWER:
        got = value.strip().casefold() if isinstance(value, str) else repr(value)
    else:
        try:
            got = format_answer(value, answer_type)
        except ValueError as error:
            return f"unformattable: {error}"
    return None if got == answer else f"got {got!r}, gold {answer!r}"


def gold_mismatches(questions: pl.DataFrame, events: pl.DataFrame, products: pl.DataFrame) -> list[dict[str, str]]:
    """Every question whose stored SQL, run in its customer's sandbox (the agent's path), does not give
    its gold answer: question id, gold answer and why (empty when all match)."""
    mismatches = []
    for (customer,), group in questions.group_by("customer_id", maintain_order=True):
        with CustomerSandbox(events.filter(pl.col("customer_id") == customer), products, row_limit=2) as sandbox:
            for row in group.iter_rows(named=True):
                reason = result_mismatch(sandbox.run_query(row["sql"]), row["answer"], row["answer_type"])
                if reason is not None:
                    mismatches.append({"question_id": row["question_id"], "gold": row["answer"], "reason": reason})
    return mismatches
