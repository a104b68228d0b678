"""Spark beyond client mode: the histories and labels built through a Spark Connect server (``SPARK_MASTER=sc://...``)
equal those built by Spark in this process. The server is the one pyspark ships (``sbin/start-connect-server.sh``),
on 127.0.0.1, a driver of its own as on a cluster; it reads and writes the same storage root."""

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pyspark
import pytest

from consumer_assets.asset_keys import HISTORIES, LABELS, RAW_EVENTS
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.features.spark import SparkStorage
from consumer_assets.labels.build_labels import build_labels
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from local_servers import REPO, free_port, port_open, wait_for

pytestmark = pytest.mark.slow

START = date(2026, 10, 1)
DAYS, HORIZON = 5, 2
SBIN = Path(pyspark.__file__).parent / "sbin"


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark-connect")
    port = free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(SBIN.parent),
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_PID_DIR": str(folder / "pids"),
        "SPARK_IDENT_STRING": f"test-{port}",
    }
    local = [
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
    ]
    grpc = [
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
    ]
    subprocess.run(
        ["bash", str(SBIN / "start-connect-server.sh"), *local, *grpc, "--driver-memory", "1g"],
        env=env,
        check=True,
        capture_output=True,
    )
    wait_for(f"the Spark Connect server started (its log: {folder / 'logs'})", 120, lambda: port_open(port), every=0.5)
    yield f"sc://127.0.0.1:{port}"
    subprocess.run(["bash", str(SBIN / "stop-connect-server.sh")], env=env, capture_output=True)


def _build(spark, root: StorageRoot) -> None:
    storage = SparkStorage(root)
    for k in range(DAYS):
        build_snapshot(spark, storage, START + timedelta(days=k), HistoryConfig(window_days=30, max_events=24), files=1)
    for k in range(DAYS - HORIZON):
        build_labels(spark, storage, START + timedelta(days=k), HORIZON, {"c1": ["c1"]})


def _sorted(table):
    return table.sort_by([(name, "ascending") for name in ("profile_id",)]).to_pylist()


def test_histories_and_labels_through_spark_connect_equal_local_spark(tmp_path, spark, connect_url):
    roots = {name: StorageRoot(str(tmp_path / name)) for name in ("local", "connect")}
    for root in roots.values():
        for day in ShopSimulator(SimulationConfig(profiles=400, seed=9)).simulate(START, DAYS):
            root.write_partition(RAW_EVENTS, day.day, day.events)
    _build(spark, roots["local"])
    # A process of its own, as a run worker configured with SPARK_MASTER=sc://... is (pyspark allows no remote
    # session beside a regular one, and this test session holds one).
    script = (
        "import sys; from consumer_assets.features.resources import SparkResource; from consumer_assets.storage import "
        "StorageRoot; "
        "from test_spark_connect import _build; session = SparkResource(master=sys.argv[2]).session(); "
        "assert type(session).__module__.startswith('pyspark.sql.connect'), type(session); _build(session, "
        "StorageRoot(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    remote = subprocess.run(
        [sys.executable, "-c", script, roots["connect"].uri, connect_url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]

    for k in range(DAYS):
        day = START + timedelta(days=k)
        local, connected = (read_snapshot(roots[n], day) for n in ("local", "connect"))
        assert local.num_rows > 20 and _sorted(connected) == _sorted(local)
    for k in range(DAYS - HORIZON):
        day = START + timedelta(days=k)
        assert _sorted(roots["connect"].read_partition(LABELS, day)) == _sorted(
            roots["local"].read_partition(LABELS, day)
        )
    assert roots["connect"].list_partitions(HISTORIES) == roots["local"].list_partitions(HISTORIES)
