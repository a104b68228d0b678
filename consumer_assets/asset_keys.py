"""The asset keys, spelled once. A partitioned asset's key is also its dataset's name below the storage root."""

RAW_EVENTS = "raw_events"
HISTORIES = "daily_histories"
LABELS = "order_labels"
TRAINED_LSTM = "trained_lstm"
CANDIDATE_EVALUATION = "candidate_evaluation"
VALIDATED_MODEL = "validated_model"
MODEL_IN_SERVICE = "model_in_service"
PREDICTIONS = "batch_predictions"
EXPLANATIONS = "score_explanations"
STATES = "profile_states"
MONITORING = "monitoring_stats"
ARTICLE_GROUPS_KEY = "config/article_groups.json"  # not an asset: the article groups fixed at the first labelling
