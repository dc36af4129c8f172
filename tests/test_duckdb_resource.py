"""The DuckDB file is shared by runs in several processes: a second writer waits instead of failing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from resources.duckdb import DuckDBResource

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import sys
from resources.duckdb import DuckDBResource
print("ready", flush=True)
with DuckDBResource(path=sys.argv[1]).connect() as connection:
    connection.execute("INSERT INTO t VALUES (2)")
"""


def test_a_second_process_waits_for_the_writer_instead_of_failing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.duckdb")
    resource = DuckDBResource(path=path)
    with resource.connect() as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    with resource.connect() as connection:
        connection.execute("INSERT INTO t VALUES (1)")
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, path],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1)  # the child is now at connect(); without the lock DuckDB refuses it ("Could not set lock")
        assert child.poll() is None, child.communicate()
    _, errors = child.communicate(timeout=120)
    assert child.returncode == 0, errors
    with resource.connect(read_only=True) as connection:
        assert connection.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
