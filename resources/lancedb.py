"""LanceDB connection for vector tables (embeddings) stored as files under the project home."""

from __future__ import annotations

import dagster as dg
import lancedb
import pyarrow as pa


class LanceDBResource(dg.ConfigurableResource):
    """A LanceDB database at `uri`: a local folder, or object storage in the cluster profile."""

    uri: str = ".assay/lancedb"

    def connect(self) -> lancedb.DBConnection:
        """A connection to the database (cheap; LanceDB opens files lazily)."""
        return lancedb.connect(self.uri)

    def table(self, name: str, schema: pa.Schema) -> lancedb.table.Table:
        """Open table `name`, creating it empty with `schema` if it does not exist yet."""
        return self.connect().create_table(name, schema=schema, exist_ok=True)


def sql_literal(value: str) -> str:
    """A string as a single-quoted SQL literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def rows_where(table: lancedb.table.Table, column: str, value: str, columns: list[str]) -> pa.Table:
    """The `columns` of every row whose `column` equals `value`, without a vector search."""
    return table.search().where(f"{column} = {sql_literal(value)}").select(columns).limit(None).to_arrow()
