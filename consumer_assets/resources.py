"""Resources configured per deployment: where data lives and how strict the checks are.

Deployment settings come from the environment through ``EnvVar`` so one code
location runs unchanged on a laptop folder and on S3.
"""


import os

import dagster as dg
from pydantic import Field

from consumer_assets.storage import StorageRoot

DEFAULT_ROOT = ".data"


class StorageResource(dg.ConfigurableResource):
    """The storage root: a local folder (the embedded default) or ``s3://bucket/prefix``."""

    root: str = Field(default=DEFAULT_ROOT, description="Local folder or s3://BUCKET/PREFIX (env CONSUMER_ASSETS_ROOT).")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint such as MinIO (env AWS_ENDPOINT_URL); None means AWS itself.",
    )
    region: str | None = Field(default=None, description="AWS region; None takes AWS_REGION or us-east-1.")

    def open(self) -> StorageRoot:
        return StorageRoot(self.root, endpoint_url=self.endpoint_url or None, region=self.region)


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the data checks; tighten or loosen them per deployment."""

    quarantine_warn_rate: float = Field(default=0.02, description="Quarantined share of rows read above which a WARN is raised.")
    quarantine_error_rate: float = Field(default=0.10, description="Quarantined share above which the check fails with ERROR and blocks downstream.")
    dedup_lookback_days: int = Field(default=3, description="Earlier days whose event ids a new day is de-duplicated against.")


def env_or_default(name: str, default: str | None) -> str | dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so the UI shows where the value came from), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def storage_from_env() -> StorageResource:
    return StorageResource(
        root=env_or_default("CONSUMER_ASSETS_ROOT", DEFAULT_ROOT),
        endpoint_url=env_or_default("AWS_ENDPOINT_URL", None),
        region=env_or_default("AWS_REGION", None),
    )
