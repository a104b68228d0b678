"""The storage root as a Dagster resource: a local folder (the embedded default) or S3."""

import dagster as dg
from pydantic import Field

from consumer_assets.storage.root import DEFAULT_ROOT, StorageRoot


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
