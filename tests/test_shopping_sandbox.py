"""The SQL sandbox really refuses or stops each attack, leaves no trace, and still answers honest queries."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ops.shopping.sandbox import CustomerSandbox, QueryObservation, observation_text

EVENT_SCHEMA = {
    "customer_id": pl.String,
    "cohort": pl.String,
    "event_index": pl.Int64,
    "ts": pl.Datetime("us"),
    "session_id": pl.String,
    "event_type": pl.String,
    "query": pl.String,
    "product_id": pl.String,
    "price": pl.Float64,
    "quantity": pl.Int64,
    "rating": pl.Int64,
}


def make_events(customer_id: str, purchases: list[tuple[str, float, int]]) -> pl.DataFrame:
    """A search, then a view and a purchase per (product, price, quantity), one day apart."""
    rows: list[dict[str, object]] = []
    start = dt.datetime(2024, 3, 1, 9)

    def add(event_type: str, query: str | None, product: str | None, price: float | None, qty: int | None) -> None:
        index = len(rows)
        rows.append(
            {
                "customer_id": customer_id,
                "cohort": "cohort-000",
                "event_index": index,
                "ts": start + dt.timedelta(days=index),
                "session_id": f"{customer_id}-s{index:05d}",
                "event_type": event_type,
                "query": query,
                "product_id": product,
                "price": price,
                "quantity": qty,
                "rating": None,
            }
        )

    add("search", "lego sets", None, None, None)
    for product, price, qty in purchases:
        add("view", None, product, price, None)
        add("purchase", None, product, price, qty)
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)


CATALOG = pl.DataFrame(
    {
        "product_id": ["t:lego", "t:train", "t:balloons", "t:secret"],
        "source": ["t"] * 4,
        "title": ["LEGO City Police Station", "Hornby Express", "Party Balloons x50", "Private Item"],
        "brand": ["LEGO", "Hornby", "Unbranded", "Secret"],
        "category": ["Toys > Building", "Toys > Trains", "Party > Balloons", "Toys > Secret"],
        "top_category": ["Toys", "Toys", "Party", "Toys"],
        "leaf_category": ["Building", "Trains", "Balloons", "Secret"],
        "price": [49.99, 120.0, 3.5, 9.99],
        "currency": ["GBP"] * 4,
        "consumable": [False, False, True, False],
    }
)
ALL_EVENTS = pl.concat(
    [
        make_events("cohort-000-00001", [("t:lego", 49.99, 1), ("t:balloons", 3.5, 4), ("t:lego", 45.0, 2)]),
        make_events("cohort-000-00002", [("t:secret", 9.99, 7), ("t:train", 120.0, 1)]),
    ]
)


def own_rows(events: pl.DataFrame, catalog: pl.DataFrame, customer_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One customer's events with the whole catalog (the sandbox keeps only that customer's products)."""
    return events.filter(pl.col("customer_id") == customer_id), catalog


@pytest.fixture()
def sandbox() -> CustomerSandbox:
    with CustomerSandbox(*own_rows(ALL_EVENTS, CATALOG, "cohort-000-00001"), row_limit=3, time_limit_s=1.0) as box:
        yield box


def assert_refused(obs: QueryObservation, *fragments: str) -> None:
    assert not obs.ok
    assert obs.rows == [] and obs.columns == []
    assert obs.error is not None
    for fragment in fragments:
        assert fragment in obs.error, obs.error


def test_normal_aggregate_query_works(sandbox: CustomerSandbox) -> None:
    obs = sandbox.run_query(
        """
        WITH bought AS (SELECT product_id, price * quantity AS spend FROM events WHERE event_type = 'purchase')
        SELECT p.brand, round(sum(b.spend), 2) AS spend, count(*) AS n
        FROM bought b JOIN products p USING (product_id) GROUP BY p.brand ORDER BY spend DESC
        """
    )
    assert obs.ok and obs.error is None
    assert obs.columns == ["brand", "spend", "n"]
    assert obs.rows == [("LEGO", 139.99, 2), ("Unbranded", 14.0, 1)]
    assert not obs.truncated
    text = observation_text(obs)
    assert text.splitlines() == ["brand | spend | n", "LEGO | 139.99 | 2", "Unbranded | 14 | 1"]


def test_values_and_describe_are_read_statements(sandbox: CustomerSandbox) -> None:
    assert sandbox.run_query("VALUES (1, 'a')").rows == [(1, "a")]
    described = sandbox.run_query("DESCRIBE events")
    assert described.ok and described.truncated
    assert [(row[0], row[1]) for row in described.rows] == [
        ("customer_id", "VARCHAR"),
        ("cohort", "VARCHAR"),
        ("event_index", "BIGINT"),
    ]


def test_result_over_row_limit_is_truncated(sandbox: CustomerSandbox) -> None:
    obs = sandbox.run_query("SELECT event_index FROM events ORDER BY event_index")
    assert obs.ok and obs.truncated
    assert obs.rows == [(0,), (1,), (2,)]
    assert "first 3 rows shown" in observation_text(obs)
    huge = sandbox.run_query("SELECT * FROM range(1000000000)")
    assert huge.ok and huge.truncated and len(huge.rows) == 3  # streamed: a billion rows never materialize


def test_other_customers_rows_are_not_there(sandbox: CustomerSandbox) -> None:
    assert sandbox.run_query("SELECT DISTINCT customer_id FROM events").rows == [("cohort-000-00001",)]
    assert sandbox.run_query("SELECT count(*) FROM events WHERE customer_id = 'cohort-000-00002'").rows == [(0,)]
    products = sandbox.run_query("SELECT product_id FROM products ORDER BY product_id")
    assert products.rows == [("t:balloons",), ("t:lego",)]
    assert sandbox.run_query("SELECT * FROM products WHERE title LIKE '%Private%'").rows == []
    # The catalog-only column is not copied in.
    assert_refused(sandbox.run_query("SELECT consumable FROM products"), "SQL error", "consumable")


def test_sandbox_rejects_events_of_several_customers() -> None:
    with pytest.raises(ValueError, match="one customer"):
        CustomerSandbox(ALL_EVENTS, CATALOG)


def test_copy_to_file_is_refused_and_writes_nothing(sandbox: CustomerSandbox, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    assert_refused(sandbox.run_query(f"COPY events TO '{target}'"), "refused: only one SELECT statement", "COPY")
    assert not target.exists()
    # Defence in depth: the engine itself refuses even if the statement filter were bypassed.
    with pytest.raises(duckdb.PermissionException):
        sandbox._connection.execute(f"COPY events TO '{target}'")
    assert not target.exists()


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM read_csv('{path}')",
        "SELECT * FROM '{path}'",
        "SELECT * FROM read_text('{path}')",
        "SELECT * FROM glob('{directory}/*')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        "SELECT * FROM read_csv('https://example.com/x.csv')",
    ],
)
def test_reading_files_or_urls_is_refused(sandbox: CustomerSandbox, tmp_path: Path, template: str) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("card,pin\n4111,1234\n")
    obs = sandbox.run_query(template.format(path=secret, directory=tmp_path))
    assert_refused(obs, "refused: file and network access are disabled in this sandbox")
    assert "4111" not in (obs.error or "")


def test_other_customers_files_cannot_be_read_or_attached(sandbox: CustomerSandbox, tmp_path: Path) -> None:
    other_events, _ = own_rows(ALL_EVENTS, CATALOG, "cohort-000-00002")
    parquet = tmp_path / "cohort-000-00002.parquet"
    other_events.write_parquet(parquet)
    obs = sandbox.run_query(f"SELECT * FROM read_parquet('{parquet}')")
    assert_refused(obs, "refused: file and network access are disabled in this sandbox")
    with CustomerSandbox(*own_rows(ALL_EVENTS, CATALOG, "cohort-000-00002")) as other:
        other_db = os.path.join(other._directory, "customer.duckdb")
        assert os.path.exists(other_db)
        attach = sandbox.run_query(f"ATTACH '{other_db}' AS other")
        assert_refused(attach, "refused: only one SELECT statement", "ATTACH")
        with pytest.raises(duckdb.PermissionException):
            sandbox._connection.execute(f"ATTACH '{other_db}' AS other")
    assert [row[0] for row in sandbox.run_query("SELECT database_name FROM duckdb_databases()").rows] == [
        "customer",
        "system",
        "temp",
    ]


@pytest.mark.parametrize("sql", ["INSTALL httpfs", "LOAD httpfs"])
def test_extensions_cannot_be_installed_or_loaded(sandbox: CustomerSandbox, sql: str) -> None:
    assert_refused(sandbox.run_query(sql), "refused: only one SELECT statement", "(got LOAD)")
    with pytest.raises(duckdb.PermissionException):
        sandbox._connection.execute(sql)
    # httpfs registers the s3_* settings when it loads; they are absent.
    assert sandbox.run_query("SELECT count(*) FROM duckdb_settings() WHERE name = 's3_region'").rows == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [
        "SET memory_limit = '64GB'",
        "PRAGMA memory_limit = '64GB'",
        "SET enable_external_access = true",
        "SET threads = 16",
        "RESET memory_limit",
        "SET lock_configuration = false",
    ],
)
def test_settings_cannot_be_lifted(sandbox: CustomerSandbox, sql: str) -> None:
    assert_refused(sandbox.run_query(sql), "refused: only one SELECT statement", "(got SET)")
    with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
        sandbox._connection.execute(sql)
    settings = sandbox.run_query(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('enable_external_access'), current_setting('lock_configuration')"
    )
    assert settings.rows == [("244.1 MiB", 1, False, True)]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("CREATE TABLE t AS SELECT 1 AS a", "CREATE"),
        ("CREATE TEMP TABLE t AS SELECT 1 AS a", "CREATE"),
        ("INSERT INTO events (customer_id) VALUES ('intruder')", "INSERT"),
        ("UPDATE events SET price = 0", "UPDATE"),
        ("DELETE FROM events", "DELETE"),
        ("DROP TABLE events", "DROP"),
        ("CALL pragma_version()", "CALL"),
        ("EXPORT DATABASE '/tmp/assay-sandbox-export'", "EXPORT"),
    ],
)
def test_writes_are_refused_and_change_nothing(sandbox: CustomerSandbox, sql: str, kind: str) -> None:
    assert_refused(sandbox.run_query(sql), "refused: only one SELECT statement", f"(got {kind})")
    assert sandbox.run_query("SELECT count(*), round(sum(price), 2) FROM events").rows == [(7, 196.98)]
    assert sandbox.run_query("SELECT count(*) FROM duckdb_tables()").rows == [(2,)]
    assert not os.path.exists("/tmp/assay-sandbox-export")


def test_read_only_database_refuses_writes_without_the_filter(sandbox: CustomerSandbox) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="read-only"):
        sandbox._connection.execute("DROP TABLE events")
    assert sandbox.run_query("SELECT count(*) FROM events").rows == [(7,)]


def test_multiple_statements_are_refused(sandbox: CustomerSandbox) -> None:
    obs = sandbox.run_query("SELECT 1; DROP TABLE events")
    assert_refused(obs, "refused: only one SELECT statement is allowed (got 2 statements: SELECT, DROP)")
    assert sandbox.run_query("SELECT count(*) FROM events").rows == [(7,)]
    assert_refused(sandbox.run_query("  ;  "), "no SQL statement")
    assert_refused(sandbox.run_query("SELEC 1"), "SQL error", "syntax error")


def test_query_function_cannot_smuggle_other_statements(sandbox: CustomerSandbox, tmp_path: Path) -> None:
    target = tmp_path / "y.csv"
    obs = sandbox.run_query(f"SELECT * FROM query('COPY events TO ''{target}''')")
    assert_refused(obs, "SQL error")
    assert not target.exists()


def test_endless_cross_join_is_stopped_by_the_time_limit(sandbox: CustomerSandbox) -> None:
    obs = sandbox.run_query("SELECT sum(a.range * b.range) FROM range(1000000000) a CROSS JOIN range(1000000000) b")
    assert_refused(obs, "query stopped after 1 s (time limit)")
    assert obs.elapsed_s >= 1.0  # it ran until the limit (no upper bound: tests never assert wall times)
    recursive = sandbox.run_query(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
    )
    assert_refused(recursive, "time limit")
    assert sandbox.run_query("SELECT count(*) FROM events").rows == [(7,)]


def test_memory_hungry_query_is_stopped() -> None:
    # a generous time limit, so that on a loaded machine the memory limit (not the clock) stops it
    rows = own_rows(ALL_EVENTS, CATALOG, "cohort-000-00001")
    with CustomerSandbox(*rows, row_limit=3, time_limit_s=60.0, memory_limit="64MB") as box:
        obs = box.run_query("SELECT list(range) FROM range(1000000000)")
    assert_refused(obs, "memory limit of 64MB reached")


def test_close_removes_the_database_and_refuses_later_queries() -> None:
    box = CustomerSandbox(*own_rows(ALL_EVENTS, CATALOG, "cohort-000-00002"))
    directory = box._directory
    assert box.run_query("SELECT count(*) FROM events").rows == [(5,)]
    box.close()
    assert not os.path.exists(directory)
    assert_refused(box.run_query("SELECT 1"), "sandbox is closed")


def test_schema_text_lists_both_tables(sandbox: CustomerSandbox) -> None:
    text = sandbox.schema_text()
    assert text.splitlines()[0].startswith(
        "events(customer_id VARCHAR, cohort VARCHAR, event_index BIGINT, ts TIMESTAMP"
    )
    assert text.splitlines()[1] == (
        "products(product_id VARCHAR, title VARCHAR, brand VARCHAR, category VARCHAR, top_category VARCHAR, "
        "leaf_category VARCHAR, price DOUBLE, currency VARCHAR)"
    )


def test_observation_text_cuts_long_cells_and_shows_errors() -> None:
    obs = QueryObservation(
        ok=True,
        columns=["title", "ts", "n"],
        rows=[("x" * 100, dt.datetime(2024, 3, 5, 10, 30), None)],
        truncated=False,
        error=None,
        elapsed_s=0.0,
    )
    assert (
        observation_text(obs, max_cell_chars=19).splitlines()[1] == "xxxxxxxxxxxxxxxx... | 2024-03-05 10:30:00 | NULL"
    )
    failed = QueryObservation(ok=False, columns=[], rows=[], truncated=False, error="refused: x", elapsed_s=0.0)
    assert observation_text(failed) == "error: refused: x"
