"""Names of the datasets below the storage root; each is also the asset key that writes it."""

RAW_EVENTS = "raw_events"
QUARANTINE = "quarantine/raw_events"
HISTORIES = "daily_histories"
LABELS = "order_labels"
PREDICTIONS = "batch_predictions"
MONITORING = "monitoring_stats"
ARTICLE_GROUPS_KEY = "config/article_groups.json"
