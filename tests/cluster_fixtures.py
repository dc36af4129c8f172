"""Throwaway cluster services for the cluster tests: Postgres (Debian's binaries), Redis and an S3 endpoint.

Each fixture starts its service on a free local port in a temporary folder and stops it afterwards. A
missing Debian package skips the test on a workstation and fails it in CI (`CI` set), where `.ci/run`
installs `postgresql` and `redis-server`. `initdb` refuses to run as root, so as root the cluster is
created and run by the unprivileged `nobody` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "assay"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_binary(name: str, search: tuple[str, ...] = ()) -> str:
    """Path of a system binary; skip without it (fail in CI, which must prove the cluster path)."""
    found = next((str(Path(folder) / name) for folder in search if (Path(folder) / name).exists()), None)
    found = found or shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian: apt-get install postgresql redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _postgres_bin_folders() -> tuple[str, ...]:
    return tuple(str(path) for path in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f} s")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh Postgres cluster (trust auth on 127.0.0.1 only), removed afterwards."""
    initdb = require_binary("initdb", _postgres_bin_folders())
    pg_ctl = require_binary("pg_ctl", _postgres_bin_folders())
    folder = Path(tempfile.mkdtemp(prefix="assay-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, cwd=folder,
    )  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "postgres.log"), "-w", "start"],
        check=True, capture_output=True, cwd=folder,
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh Redis server without persistence (the Celery broker and result backend)."""
    server = require_binary("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class S3Endpoint:
    """A local S3-compatible endpoint and the environment that points the AWS clients at it."""

    url: str
    bucket: str

    def environment(self) -> dict[str, str]:
        """The standard AWS variables: the only way assay is told where the object store is."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "assay-test",
            "AWS_SECRET_ACCESS_KEY": "assay-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` in the bucket."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.url, **_credentials(self.environment()))
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _credentials(environment: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"],
        "region_name": environment["AWS_DEFAULT_REGION"],
    }


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """moto's S3 server on a free port with an empty bucket; this process's AWS variables point at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = S3Endpoint(url=f"http://127.0.0.1:{port}", bucket=BUCKET)
    for name, value in endpoint.environment().items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint.url, **_credentials(endpoint.environment())).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
