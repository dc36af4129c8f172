"""Connection options for an S3-compatible object store, read only from the standard AWS environment.

The endpoint (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, e.g. MinIO, Ceph or a local moto server),
the region (`AWS_REGION` / `AWS_DEFAULT_REGION`) and the credentials (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) are never part of a resource's config, so no secret is
ever written to a run's config or the instance's event log.
"""

from __future__ import annotations

import os

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Rust object_store option (LanceDB, polars) for each AWS environment variable it is given explicitly.
_LANCE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
}


def is_s3(uri: str) -> bool:
    """Whether `uri` names an S3 (or S3-compatible) location."""
    return uri.startswith(("s3://", "s3a://"))


def s3_endpoint() -> str | None:
    """The S3 endpoint from the environment; None means AWS itself."""
    return next((os.environ[name] for name in _ENDPOINT_VARIABLES if os.environ.get(name)), None)


def fsspec_options(uri: str) -> dict[str, object]:
    """s3fs options for `uri` (the endpoint; s3fs reads credentials from the environment itself)."""
    endpoint = s3_endpoint()
    if not is_s3(uri) or endpoint is None:
        return {}
    return {"endpoint_url": endpoint}


def object_store_options(uri: str) -> dict[str, str]:
    """`storage_options` of LanceDB and polars (both Rust object_store) for `uri`: endpoint, plain HTTP when
    the endpoint is http://, region, keys."""
    if not is_s3(uri):
        return {}
    options = {option: os.environ[name] for name, option in _LANCE_CREDENTIALS.items() if os.environ.get(name)}
    region = next((os.environ[name] for name in _REGION_VARIABLES if os.environ.get(name)), None)
    if region:
        options["region"] = region
    endpoint = s3_endpoint()
    if endpoint:
        options["endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    return options
