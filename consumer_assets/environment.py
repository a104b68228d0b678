"""Every environment variable the platform reads, with its default and meaning: the one module that reads them.

``definitions.py`` binds them into the resources (as Dagster ``EnvVar`` where the UI
should show where a value came from); the CLI, the demo and the few plain modules that
need a deployment setting outside a run (the partitions' first day, the schedule's
cadence, the GPU pod spec, the core claims' folder, the S3 endpoint of a fresh process)
take theirs from here. The README's configuration table is generated from this list
(``make docs``; a test keeps it current).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from consumer_assets.timeline import Timeline


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None  # None: unset unless the deployment sets it
    meaning: str
    read_by: str = "consumer-assets"  # who reads it, where that is not this package (Dagster's instance, the demo)

    def value(self) -> str | None:
        """The variable's value; an empty one counts as unset."""
        return os.environ.get(self.name) or self.default

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))


ROOT = Variable("CONSUMER_ASSETS_ROOT", ".data", "storage root: a local folder, or `s3://BUCKET/PREFIX`")
S3_ENDPOINT = Variable(
    "AWS_ENDPOINT_URL", None, "an S3-compatible server (MinIO, a test server), e.g. `http://127.0.0.1:9000`; unset: AWS"
)
S3_REGION = Variable("AWS_REGION", None, "region of the bucket (else `AWS_DEFAULT_REGION`, else `us-east-1`)")
S3_DEFAULT_REGION = Variable("AWS_DEFAULT_REGION", None, "the region when `AWS_REGION` is unset")
START_DATE = Variable(
    "CONSUMER_ASSETS_START_DATE",
    "2026-01-01",
    "first daily partition (UTC); `make demo` needs it 116 days before today (its backfill)",
)
LABEL_HORIZON_DAYS = Variable(
    "CONSUMER_ASSETS_LABEL_HORIZON_DAYS",
    None,
    f"label horizon H (default {Timeline.label_horizon_days}): orders in (D, D+H] label the snapshot of D; the "
    "labels' lineage and automation, the training window, monitoring and the reconcile sensor follow it",
)
TRAINING_DAYS = Variable(
    "CONSUMER_ASSETS_TRAINING_DAYS",
    None,
    f"matured snapshots a candidate trains on at most (default {Timeline.training_days})",
)
HELD_OUT_DAYS = Variable(
    "CONSUMER_ASSETS_HELD_OUT_DAYS",
    None,
    "the latest matured snapshots, whose held-out profiles stop training and judge the candidate (default "
    f"{Timeline.held_out_days})",
)
DAGSTER_HOME = Variable(
    "DAGSTER_HOME",
    "./.dagster_home",
    "the Dagster instance (runs, event log, schedules); `make` copies `dagster.yaml` there",
    read_by="Dagster",
)
SPARK_MASTER = Variable(
    "SPARK_MASTER", "local[*]", "Spark master (`yarn`, `k8s://…` on a cluster, `sc://HOST:PORT` for Spark Connect)"
)
TORCH_THREADS = Variable(
    "TORCH_THREADS", "2", "most CPU threads of training and scoring; runs sharing the machine split its cores"
)
TRAINING_DEVICE = Variable(
    "CONSUMER_ASSETS_TRAINING_DEVICE",
    "auto",
    "`auto`, `cpu` or `cuda`; `cuda` on GPU deployments, so a run without a GPU fails instead of training on the CPU",
)
GPU_NODE_SELECTOR = Variable(
    "CONSUMER_ASSETS_GPU_NODE_SELECTOR", None, "JSON node selector of the training pods (Kubernetes; docs/model.md)"
)
GPU_TOLERATIONS = Variable("CONSUMER_ASSETS_GPU_TOLERATIONS", None, "JSON tolerations of the training pods")
CORE_CLAIMS = Variable(
    "CONSUMER_ASSETS_CORE_CLAIMS",
    None,
    "folder where the runs of one machine claim its cores (default: `consumer-assets-core-claims` in the temp folder)",
)
TRAINING_CADENCE = Variable(
    "CONSUMER_ASSETS_TRAINING_CADENCE", "daily", "`training_schedule`: `daily` (04:00 UTC) or `weekly` (Mondays)"
)
LANDING_COMPLETION = Variable(
    "CONSUMER_ASSETS_LANDING_COMPLETION",
    "marker",
    "a landing day is complete at its `_SUCCESS` file (`marker`) or after 10 quiet minutes (`quiet`)",
)
FRESHNESS_DEADLINE = Variable(
    "CONSUMER_ASSETS_FRESHNESS_DEADLINE",
    "0 6 * * *",
    "cron (UTC) by which the latest day of `raw_events`, `daily_histories`, `batch_predictions` must be there",
)
ALERT_WEBHOOK = Variable("CONSUMER_ASSETS_ALERT_WEBHOOK", None, "Slack-compatible webhook URL for alerts")
SMTP_HOST = Variable("CONSUMER_ASSETS_SMTP_HOST", None, "SMTP server for e-mail alerts")
SMTP_PORT = Variable("CONSUMER_ASSETS_SMTP_PORT", "25", "its port")
SMTP_USER = Variable("CONSUMER_ASSETS_SMTP_USER", None, "SMTP login")
SMTP_PASSWORD = Variable("CONSUMER_ASSETS_SMTP_PASSWORD", None, "SMTP password")
SMTP_STARTTLS = Variable("CONSUMER_ASSETS_SMTP_STARTTLS", "false", "`true`: STARTTLS before the login")
ALERT_EMAILS = Variable("CONSUMER_ASSETS_ALERT_EMAILS", None, "comma-separated recipients of e-mail alerts")
UI_URL = Variable("CONSUMER_ASSETS_UI_URL", "http://127.0.0.1:3000", "base of the run links in alerts")
STATE_STORE = Variable(
    "CONSUMER_ASSETS_STATE_STORE", "embedded", "the online service's state store: `embedded` or `redis://HOST:PORT/DB`"
)
ONLINE_TOKEN = Variable(
    "CONSUMER_ASSETS_ONLINE_TOKEN",
    None,
    "bearer token for the online service's writes (`POST /events`); unset: `serve` starts only with `--no-token` on "
    "a loopback address",
)
PG_URL = Variable(
    "DAGSTER_PG_URL", None, "the production instance's Postgres (`deploy/production.yaml`)", read_by="Dagster"
)
COMPUTE_LOG_BUCKET = Variable(
    "DAGSTER_COMPUTE_LOG_BUCKET", None, "bucket of the production instance's run logs", read_by="Dagster"
)
DEMO_DAYS = Variable("DEMO_DAYS", "26", "days `make demo` replays (after a backfill of one window)")
DEMO_PROFILES = Variable("DEMO_PROFILES", "12000", "profiles of the shop `make demo` simulates")

VARIABLES = [value for value in dict(globals()).values() if isinstance(value, Variable)]


def configuration_markdown() -> str:
    """The README's configuration table (``make docs``)."""
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    for variable in VARIABLES:
        default = f"`{variable.default}`" if variable.default is not None else "unset"
        reader = f" (read by {variable.read_by})" if variable.read_by != "consumer-assets" else ""
        lines.append(f"| `{variable.name}` | {default} | {variable.meaning}{reader} |")
    return "\n".join(lines) + "\n"
