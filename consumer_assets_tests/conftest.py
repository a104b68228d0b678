"""Shared fixtures: a real S3-compatible server (SeaweedFS on 127.0.0.1) and storage roots on it or on a folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from consumer_assets.storage import StorageRoot
from local_servers import free_port

BIN = Path(sys.executable).parent


S3_KEY, S3_SECRET = "consumer-assets-test", "consumer-assets-test-secret"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """A real S3-compatible server, SeaweedFS (``weed server -s3``), on loopback for the whole session.

    Its S3 gateway checks signatures against the identity configured here, as a real
    deployment does; the tests' AWS credentials are that identity's keys.
    """
    folder = tmp_path_factory.mktemp("seaweedfs")
    identities = {
        "identities": [
            {"name": "tests", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        ]
    }
    (folder / "s3.json").write_text(json.dumps(identities))
    (folder / "data").mkdir()
    names = ("master", "volume", "filer", "s3", "master.port.grpc", "volume.port.grpc", "filer.port.grpc", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance")
    ports = {name: free_port() for name in names}  # every listener on a free port: several servers (CI, a demo) may share the machine
    command = [
        str(BIN / "weed"),
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={folder / 's3.json'}",
        "-volume.max=500",
        "-master.volumeSizeLimitMB=32",  # many small volumes: every bucket is a collection with its own
        *[f"-{name}={port}" if "." in name else f"-{name}.port={port}" for name, port in ports.items()],
    ]
    with open(folder / "weed.log", "wb") as log:  # the server keeps its own descriptor
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    env = {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    deadline = time.monotonic() + 60
    while True:  # ready when an object can be written: the volume server has registered with the master
        try:
            client.create_bucket(Bucket="readiness-probe")
            client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"SeaweedFS did not start; see {folder / 'weed.log'}") from None
            time.sleep(0.3)
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()  # nothing of a test server needs a graceful stop (it waits 10 s for its volume heartbeats, 15 s for its filer)
    try:
        server.wait(timeout=3)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def private_copy(tmp_path: Path):
    """Build once per module, copy per test: ``private_copy(folder)`` is this test's own copy of what a module fixture built."""

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

    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", "spark.driver.memory": "2g"})
    yield session
    session.stop()
