"""A training run's rows, encoded once into compact tensors; every epoch only gathers batches from them.

Encoding (id look-ups, the continuous inputs, padding) is the slow part of feeding
the LSTM: redone every epoch it starved a GPU at a fifteenth of its speed. Here a
run encodes its rows once, chunk by chunk, into ragged tensors: the kept events of
all rows one after another (int32 ids, float32 inputs), each row's start and
length, its profile features and labels. A batch is then an index into them, so
an epoch costs a gather per batch, on the GPU itself when the rows fit there.

Memory: 40 bytes per kept event and about 40 per row (1 million histories of mean
length 30: 1.2 GB). Rows are encoded with the very ``encode`` that scoring uses, so
a training row and a scored row are the same tensors.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import torch

from consumer_assets.model.encoding import EncodedBatch, Vocabulary, encode

POOL_BATCHES = (
    50  # rows are sorted by length within pools of this many batches: little padding, yet a new grouping every epoch
)


def length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Row indices of each batch, rows of similar length together so a batch pads little.

    With ``rng``: the rows are shuffled, sorted by length within pools of
    ``POOL_BATCHES`` batches, cut into batches, and the batches shuffled, so each
    epoch groups and orders rows anew. Without: all rows sorted by length.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    shuffled, pool, batches = rng.permutation(len(lengths)), batch_size * POOL_BATCHES, []
    for begin in range(0, len(shuffled), pool):
        part = shuffled[begin : begin + pool]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def _concatenate(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` that frees each part once copied, so the peak is the result plus one part, not twice the data."""
    out = torch.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    at = 0
    while parts:
        part = parts.pop(0)
        out[at : at + len(part)] = part
        at += len(part)
    return out


@dataclass(frozen=True)
class EncodedRows:
    """Encoded rows of one role (train or validation), ragged: no padding is stored."""

    categorical: torch.Tensor  # (events, fields) int32: the kept events of every row, row after row
    continuous: torch.Tensor  # (events, features) float32
    starts: torch.Tensor  # (rows,) int64: where each row's events begin
    lengths: torch.Tensor  # (rows,) int64, >= 1 (an empty history keeps its one padding step); always on the CPU
    profile: torch.Tensor  # (rows, profile features) float32
    labels: torch.Tensor  # (rows, targets) float32
    groups: (
        np.ndarray
    )  # (rows,) int64: which profile each row is, numbered from 0; a profile has a row per snapshot day

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def events(self) -> int:
        return int(self.categorical.shape[0])

    @property
    def nbytes(self) -> int:
        tensors = (self.categorical, self.continuous, self.starts, self.lengths, self.profile, self.labels)
        return sum(t.element_size() * t.nelement() for t in tensors) + self.groups.nbytes

    @property
    def profiles(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    @property
    def device(self) -> torch.device:
        return self.categorical.device

    @classmethod
    def encode(
        cls, chunks: Iterable[tuple[pa.Table, np.ndarray]], vocabulary: Vocabulary, max_length: int
    ) -> EncodedRows:
        """Encode (history rows, labels) chunks; memory holds one chunk's padded batch at a time besides the result."""
        parts: dict[str, list[torch.Tensor]] = {
            name: [] for name in ("categorical", "continuous", "lengths", "profile", "labels")
        }
        profile_ids: list[pa.Array] = []
        for table, labels in chunks:
            profile_ids.append(table.column("profile_id").combine_chunks())
            batch = encode(table, vocabulary, max_length, labels)
            kept = (
                torch.arange(batch.categorical.shape[1]) < batch.lengths[:, None]
            )  # (rows, width): the real steps, row by row
            parts["categorical"].append(batch.categorical[kept].to(torch.int32))
            parts["continuous"].append(batch.continuous[kept])
            parts["lengths"].append(batch.lengths)
            parts["profile"].append(batch.profile)
            parts["labels"].append(batch.labels)
        if not parts["lengths"]:
            raise ValueError("no rows to encode")
        lengths = _concatenate(parts["lengths"])
        return cls(
            categorical=_concatenate(parts["categorical"]),
            continuous=_concatenate(parts["continuous"]),
            starts=torch.cumsum(lengths, 0) - lengths,
            lengths=lengths,
            profile=_concatenate(parts["profile"]),
            labels=_concatenate(parts["labels"]),
            groups=pa.concat_arrays(profile_ids)
            .dictionary_encode()
            .indices.to_numpy(zero_copy_only=False)
            .astype(np.int64),
        )

    def to(self, device: torch.device | str) -> EncodedRows:
        """The rows on ``device`` (``lengths`` stays on the CPU: batches are planned there)."""
        move = lambda t: t.to(device)  # noqa: E731
        return replace(
            self,
            categorical=move(self.categorical),
            continuous=move(self.continuous),
            starts=move(self.starts),
            profile=move(self.profile),
            labels=move(self.labels),
        )

    def batch(self, rows: np.ndarray) -> EncodedBatch:
        """The rows ``rows`` as a padded batch on the rows' device, equal to ``encode`` of those history rows."""
        index = torch.from_numpy(np.asarray(rows, np.int64))
        lengths = self.lengths[index]  # planned on the CPU; only indices travel to the rows' device
        steps = torch.arange(int(lengths.max()), device=self.device)
        index = index.to(self.device, non_blocking=True)
        real = steps < lengths.to(self.device, non_blocking=True)[:, None]  # (batch, width)
        position = torch.where(real, self.starts[index][:, None] + steps, 0)
        categorical = self.categorical[position].long()
        continuous = self.continuous[position]
        categorical[~real] = 0
        continuous[~real] = 0
        return EncodedBatch(categorical, continuous, self.profile[index], lengths, self.labels[index])

    def batches(
        self, batch_size: int, rng: np.random.Generator | None = None, rows: np.ndarray | None = None
    ) -> Iterator[EncodedBatch]:
        """One pass over ``rows`` (default: all) in length-bucketed batches (shuffled when ``rng`` is given)."""
        rows = np.arange(len(self)) if rows is None else rows
        for bucket in length_buckets(self.lengths.numpy()[rows], batch_size, rng):
            yield self.batch(rows[bucket])

    def one_per_profile(self, rng: np.random.Generator) -> np.ndarray:
        """One row of each profile, drawn at random: an epoch that sees each profile once, on one of its snapshot days.

        A profile's daily snapshots differ by a day of events; an epoch over all of them
        shows each profile a dozen times over, nearly alike, and costs profiles x days.
        """
        order = np.lexsort((rng.random(len(self)), self.groups))
        first = np.ones(len(order), bool)
        first[1:] = self.groups[order][1:] != self.groups[order][:-1]
        return order[first]


def prefetched(
    batches: Iterator[EncodedBatch], depth: int = 3, transform: Callable[[EncodedBatch], EncodedBatch] = lambda b: b
) -> Iterator[EncodedBatch]:
    """``batches`` gathered (and ``transform``-ed) by a background thread, ``depth`` ahead of the consumer.

    For rows kept on the host while a GPU trains: the gather and the copy to
    page-locked memory overlap the GPU's work. An error in the thread is raised here.
    """
    done = object()
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                ahead.put(transform(batch))
            ahead.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(exc)

    thread = threading.Thread(target=work, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ahead.get_nowait()
            except queue.Empty:
                thread.join(0.01)
