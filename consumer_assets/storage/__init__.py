"""Storage roots on pyarrow.fs: a local folder or S3, with atomic daily partitions written by one writer at a time."""

from consumer_assets.storage.errors import LeaseLostError, PartitionBusyError, PartitionNotFoundError, StorageError
from consumer_assets.storage.root import LAYERS, MANIFEST, Manifest, StorageRoot, partition_dir

__all__ = [
    "LAYERS",
    "MANIFEST",
    "LeaseLostError",
    "Manifest",
    "PartitionBusyError",
    "PartitionNotFoundError",
    "StorageError",
    "StorageRoot",
    "partition_dir",
]
