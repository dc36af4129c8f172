"""LanceDB connection for vector tables (embeddings) stored as files under the project home."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pyarrow as pa

from ops.common.text import sql_literal
from resources.object_store import object_store_options

if TYPE_CHECKING:
    import lancedb


class LanceDBResource(dg.ConfigurableResource):
    """A LanceDB database at `uri`: a local folder, or object storage (s3://bucket/prefix) in the cluster
    profile, its endpoint and credentials taken from the AWS environment variables (`resources/object_store.py`)."""

    uri: str = ".assay/lancedb"

    def connect(self) -> lancedb.DBConnection:
        """A connection to the database (cheap; LanceDB opens files lazily). lancedb is imported here, not at
        module level, so loading the code location does not pay for it."""
        import lancedb

        return lancedb.connect(self.uri, storage_options=object_store_options(self.uri) or None)

    def table(self, name: str, schema: pa.Schema) -> lancedb.table.Table:
        """Open table `name`, creating it empty with `schema` if it does not exist yet."""
        return self.connect().create_table(name, schema=schema, exist_ok=True)


def table_exists(connection: lancedb.DBConnection, name: str) -> bool:
    """Whether the database has table `name` (`list_tables` pages; `table_names` is deprecated and warns)."""
    page_token = None
    while True:
        page = connection.list_tables(page_token=page_token)
        if name in page.tables:
            return True
        if not page.page_token:
            return False
        page_token = page.page_token


def rows_where(table: lancedb.table.Table, column: str, value: str, columns: list[str]) -> pa.Table:
    """The `columns` of every row whose `column` equals `value`, without a vector search."""
    return table.search().where(f"{column} = {sql_literal(value)}").select(columns).limit(None).to_arrow()


def vectors_for(table: lancedb.table.Table, doc_ids: list[str], batch_size: int = 2_000) -> dict[str, np.ndarray]:
    """Stored vectors of the given documents, queried in batches of ids (missing ids are absent)."""
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(doc_ids), batch_size):
        ids = ", ".join(sql_literal(doc_id) for doc_id in doc_ids[start : start + batch_size])
        rows = table.search().where(f"doc_id IN ({ids})").select(["doc_id", "vector"]).limit(None).to_arrow()
        found.update(zip(rows["doc_id"].to_pylist(), vector_matrix(rows), strict=True))
    return found


def vector_matrix(rows: pa.Table, column: str = "vector") -> np.ndarray:
    """The fixed-size-list vector column of an Arrow table as a float32 (rows, dim) matrix."""
    if len(rows) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    flat = rows[column].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32).reshape(len(rows), -1)
