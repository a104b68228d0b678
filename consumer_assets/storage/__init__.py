"""Storage roots on pyarrow.fs: a local folder or S3, with atomic daily partitions."""

from consumer_assets.storage.root import (
    LAYERS,
    MANIFEST,
    Manifest,
    PartitionNotFoundError,
    StorageError,
    StorageRoot,
    partition_dir,
)

__all__ = ["LAYERS", "MANIFEST", "Manifest", "PartitionNotFoundError", "StorageError", "StorageRoot", "partition_dir"]
