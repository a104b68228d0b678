"""Shared fixtures: a real S3-compatible server (SeaweedFS on 127.0.0.1) and storage roots on it or on a folder."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import boto3
import pytest

from consumer_assets.storage import StorageRoot
from local_servers import S3_KEY, S3_SECRET, SeaweedFS


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """A real S3-compatible server, SeaweedFS (``weed server -s3``), on loopback for the whole session.

    Its S3 gateway checks signatures against the identity configured here, as a real
    deployment does; the tests' AWS credentials are that identity's keys.
    """
    env = {
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server.endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def private_copy(tmp_path: Path):
    """Build once per module, copy per test: ``private_copy(folder)`` is this test's own copy of what a module fixture
    built."""

    def copy(folder: Path | str, name: str = "root") -> Path:
        return Path(shutil.copytree(folder, tmp_path / name))

    return copy


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["folder", "s3"])
def root_uri(request, tmp_path: Path) -> tuple[str, str | None]:
    """A storage root URI and its endpoint: once a local folder, once a bucket on the SeaweedFS server."""
    if request.param == "folder":
        return str(tmp_path / "root"), None
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/consumer-assets", endpoint


@pytest.fixture
def root(root_uri: tuple[str, str | None]) -> StorageRoot:
    uri, endpoint = root_uri
    return StorageRoot(uri, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole suite (it takes ~10 s to start); assets reuse it."""
    from consumer_assets.features.spark import spark_session

    session = spark_session(
        "local[2]", {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", "spark.driver.memory": "2g"}
    )
    yield session
    session.stop()
