"""Where raw input shards are dropped: the sensor watches these folders, the intake reads them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class InputFoldersResource(dg.ConfigurableResource):
    """Input folders per domain; point them at a full corpus with `ASSAY_WEB_DOCS_INPUT`."""

    web_docs: str = "samples/web_docs"

    def web_docs_shard(self, shard: str) -> Path:
        """Path of a web-document shard: one file in the folder, named by its partition key."""
        return Path(self.web_docs) / shard
