"""The storage root as a Dagster resource: a local folder (the embedded default) or S3, reached through dagster-aws."""

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from consumer_assets.storage.objects import DEFAULT_ROOT, s3_region
from consumer_assets.storage.root import StorageRoot

# The retry policy of the assets that read and write the storage root: a step that fails on storage (a throttled or
# briefly unreachable S3, a partition whose previous writer's lease is about to expire) runs again after 10 s, then
# 20 s; a step that fails on its input raises dg.Failure(allow_retries=False) and is not retried. Checks are not
# retried: a failed check is a verdict, alerted once.
STORAGE_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class StorageResource(dg.ConfigurableResource):
    """The storage root: a local folder (the embedded default) or ``s3://bucket/prefix``."""

    root: str = Field(
        default=DEFAULT_ROOT, description="Local folder or s3://BUCKET/PREFIX (env CONSUMER_ASSETS_ROOT)."
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint such as MinIO (env AWS_ENDPOINT_URL); None means AWS itself.",
    )
    region: str | None = Field(default=None, description="AWS region; None takes AWS_REGION or us-east-1.")
    max_attempts: int = Field(
        default=5,
        description="Retries of each S3 request (botocore's standard mode, with backoff) before a step fails.",
    )

    def open(self) -> StorageRoot:
        if not self.root.startswith("s3://"):
            return StorageRoot(self.root)
        s3 = S3Resource(
            endpoint_url=self.endpoint_url or None, region_name=s3_region(self.region), max_attempts=self.max_attempts
        )
        return StorageRoot(
            self.root, endpoint_url=self.endpoint_url or None, region=self.region, s3_client_factory=s3.get_client
        )
