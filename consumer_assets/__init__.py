"""consumer-assets: events on S3 to a validated LSTM in service, as Dagster assets.

Dagster warns on import about every beta or preview API a definition uses; these are
the ones this project uses knowingly (code references in the UI, partitioned asset
checks, partition mappings that tolerate days before the start), silenced here by
message so that the CLI, the demo and scripts print no page of warnings. Any other
warning still shows.
"""

import warnings

_KNOWN_BETA_OR_PREVIEW = (
    r"Class `(CodeReferencesMetadataValue|LocalFileCodeReference)` is currently in beta",
    r"Function `with_source_code_references` is currently in beta",
    r"Parameter `allow_nonexistent_upstream_partitions` of initializer `TimeWindowPartitionMapping.__init__` is "
    r"currently in beta",
    r"Specifying a partitions_def on an AssetCheckSpec is currently in preview",
)
for _message in _KNOWN_BETA_OR_PREVIEW:
    warnings.filterwarnings("ignore", message=_message)
