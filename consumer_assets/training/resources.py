"""Settings of training as a Dagster resource; every default comes from the plain config it builds."""

import dagster as dg
from pydantic import Field

from consumer_assets.model.encoding import VocabularyLimits
from consumer_assets.model.network import ModelConfig
from consumer_assets.training.train import CPU_MAX_EPOCHS, CUDA_BATCH, CUDA_MAX_EPOCHS, REFERENCE_BATCH, TrainConfig


class TrainingResource(dg.ConfigurableResource):
    """How trained_lstm trains; the defaults train a useful model on the simulator in minutes on CPU."""

    hidden_size: int = Field(default=ModelConfig.hidden_size, description="LSTM hidden size (one layer).")
    max_epochs: int | None = Field(
        default=TrainConfig.max_epochs,
        description=f"Upper bound on epochs; None: {CPU_MAX_EPOCHS} on the CPU, {CUDA_MAX_EPOCHS} on a GPU (larger "
        "batches, fewer steps per epoch). "
        "Early stopping usually ends sooner.",
    )
    patience: int = Field(
        default=TrainConfig.patience, description="Epochs without a better validation log-loss before stopping."
    )
    learning_rate: float = Field(
        default=TrainConfig.learning_rate,
        description=f"AdamW learning rate at a batch of {REFERENCE_BATCH}; larger batches scale it by the root of "
        f"batch/{REFERENCE_BATCH}.",
    )
    batch_size: int | None = Field(
        default=TrainConfig.batch_size,
        description=f"Sequences per batch (length-bucketed); None: {REFERENCE_BATCH} on the CPU, {CUDA_BATCH:,} on a "
        "GPU, the learning rate scaled by the root of "
        f"batch/{REFERENCE_BATCH}.",
    )
    one_snapshot_per_profile: bool = Field(
        default=TrainConfig.one_snapshot_per_profile,
        description="Each epoch sees each training profile once, on one of its snapshot days drawn at random (for many "
        "profiles: cost grows "
        "with profiles, not profiles x days); False: every snapshot row every epoch (better below some 50,000 "
        "training profiles).",
    )
    judged_target_weight: float = Field(
        default=TrainConfig.judged_target_weight,
        description="The judged target's (order_any) share of the loss; the article-group targets share the rest.",
    )
    max_articles: int = Field(
        default=VocabularyLimits.max_articles,
        description="Articles with an embedding of their own; rarer ones share the OOV row.",
    )
    min_id_count: int = Field(
        default=VocabularyLimits.min_count,
        description="An id needs this many events in the training data to get an embedding.",
    )
    device: str = Field(
        default=TrainConfig.device, description="'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."
    )
    threads: int = Field(
        default=TrainConfig.threads,
        description="Most torch threads for training on the CPU (env TORCH_THREADS); runs that share the machine "
        "split its cores.",
    )
    seed: int = Field(
        default=TrainConfig.seed, description="Seed of initialisation and batch order: same seed, same model on CPU."
    )
    warm_start: bool = Field(default=True, description="Start from the model in service when its config is compatible.")

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            max_epochs=self.max_epochs,
            patience=self.patience,
            learning_rate=self.learning_rate,
            seed=self.seed,
            threads=self.threads,
            device=self.device,
            batch_size=self.batch_size,
            one_snapshot_per_profile=self.one_snapshot_per_profile,
            judged_target_weight=self.judged_target_weight,
        )

    def network_config(self, max_length: int) -> ModelConfig:
        """The network's shape; ``max_length`` is the histories' L, so the model reads every event a snapshot keeps."""
        return ModelConfig(hidden_size=self.hidden_size, max_length=max_length)

    def vocabulary_limits(self) -> VocabularyLimits:
        return VocabularyLimits(max_articles=self.max_articles, min_count=self.min_id_count)
