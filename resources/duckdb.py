"""DuckDB database file for analytics tables that users query with SQL."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl


class DuckDBResource(dg.ConfigurableResource):
    """One DuckDB file; a single writer at a time, as DuckDB requires."""

    path: str = ".assay/assay.duckdb"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that is closed on exit, so the file's write lock is released.

        DuckDB refuses a second process's connection while one process writes, instead of waiting: runs side
        by side (`make run`'s workers, the UI's runs) first take a lock on `<path>.lock`, shared to read and
        exclusive to write, and wait for it.
        """
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH if read_only else fcntl.LOCK_EX)
            connection = duckdb.connect(self.path, read_only=read_only)
            try:
                yield connection
            finally:
                connection.close()

    def replace_table(self, name: str, frame: pl.LazyFrame, chunk_size: int = 50_000) -> int:
        """(Re)create table `name` from a lazy frame, streamed chunk by chunk in one transaction."""
        with self.connect() as connection:
            connection.execute("BEGIN TRANSACTION")
            connection.register("incoming", frame.clear().collect())
            connection.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM incoming')
            for chunk in frame.collect_batches(chunk_size=chunk_size):
                connection.register("incoming", chunk)
                connection.execute(f'INSERT INTO "{name}" SELECT * FROM incoming')
            connection.unregister("incoming")
            connection.execute("COMMIT")
            return connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
