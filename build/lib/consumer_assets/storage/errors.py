"""What storage raises: errors a caller reports to the user rather than retries."""


class StorageError(RuntimeError):
    """A storage operation failed in a way the caller should report, not retry."""


class PartitionNotFoundError(StorageError):
    """A partition was asked for that has never been written (no manifest)."""


class PartitionBusyError(StorageError):
    """Another writer holds the partition's lease."""


class LeaseLostError(StorageError):
    """The writer's lease was taken over (it stalled past its term): its commit would overwrite another's."""
