"""Feeding the LSTM: rows encoded once, batches gathered from them, a prefetch thread, and cores shared between runs."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.cores import CoreShare, available_cores, live_claims
from consumer_assets.model.encoding import encode
from consumer_assets.training.dataset import EncodedRows, length_buckets, prefetched
from consumer_assets.training.train import TrainConfig
from consumer_assets_tests.test_model import VOCAB, _histories

LENGTHS = [3, 0, 15, 7, 1, 12, 9, 4, 0, 20, 2, 5]


def _rows(chunk: int = 5):
    table = _histories(LENGTHS, seed=3)
    labels = np.arange(len(LENGTHS) * 2, dtype=np.float32).reshape(-1, 2)
    chunks = [(table.slice(i, chunk), labels[i : i + chunk]) for i in range(0, len(LENGTHS), chunk)]
    return table, labels, EncodedRows.encode(chunks, VOCAB, max_length=10)


def test_gathered_batches_equal_encoding_the_same_rows_directly():
    table, labels, rows = _rows()
    assert len(rows) == len(LENGTHS)
    assert rows.events == sum(
        max(min(n, 10), 1) for n in LENGTHS
    )  # ragged: no padding stored; an empty history keeps one step
    for picked in ([0, 1, 2], [9, 4, 8, 11], list(range(len(LENGTHS)))[::-1]):
        gathered = rows.batch(np.array(picked))
        direct = encode(table.take(picked), VOCAB, 10, labels[picked])
        for name in ("categorical", "continuous", "profile", "lengths", "labels"):
            assert torch.equal(getattr(gathered, name), getattr(direct, name)), name


def test_an_epoch_sees_each_profile_once_on_a_snapshot_day_drawn_anew():
    table = _histories([3, 5, 2, 4, 1, 6], seed=4)
    profiles = ["p0", "p1", "p0", "p2", "p1", "p0"]  # three profiles, on several snapshot days each
    table = table.set_column(0, "profile_id", pa.array(profiles))
    rows = EncodedRows.encode([(table, np.zeros((6, 1), np.float32))], VOCAB, max_length=10)
    assert rows.groups.tolist() == [0, 1, 0, 2, 1, 0] and rows.profiles == 3
    rng = np.random.default_rng(0)
    draws = [rows.one_per_profile(rng) for _ in range(40)]
    for drawn in draws:
        assert sorted(rows.groups[drawn].tolist()) == [0, 1, 2]  # every profile exactly once
    assert {int(d[rows.groups[d] == 0][0]) for d in draws} == {0, 2, 5}  # each of p0's days is drawn in some epoch
    batches = list(rows.batches(2, rng, draws[0]))
    assert sum(len(b) for b in batches) == 3


def test_the_judged_target_weighs_as_much_as_all_others_together():
    weights = TrainConfig().target_weights(6)
    assert weights.sum().item() == pytest.approx(1.0) and weights[0].item() == pytest.approx(0.5)
    assert weights[1:].tolist() == pytest.approx([0.1] * 5)
    assert TrainConfig().target_weights(1).tolist() == [1.0]


def test_length_buckets_cover_every_row_once_and_shuffle_by_epoch():
    lengths = np.random.default_rng(0).integers(1, 100, 5_000)
    plain = length_buckets(lengths, 64)
    assert np.all(np.diff(lengths[np.concatenate(plain)]) >= 0)  # without a generator: sorted by length
    rng = np.random.default_rng(1)
    first, second = length_buckets(lengths, 64, rng), length_buckets(lengths, 64, rng)
    for batches in (first, second):
        rows = np.concatenate(batches)
        assert sorted(rows.tolist()) == list(range(5_000))
        assert max(len(b) for b in batches) == 64
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    # Within a pool rows are sorted, so a batch spans far fewer lengths than a random one would.
    spread = np.median([np.ptp(lengths[b]) for b in first if len(b) == 64])
    assert spread < 10
    with pytest.raises(ValueError, match="batch_size"):
        length_buckets(lengths, 0)


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(20)), depth=2)) == list(range(20))

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetched(failing()))
    consumer = prefetched(iter(range(1_000)), depth=2)
    assert next(consumer) == 0
    consumer.close()  # a consumer that stops early does not leave the thread blocked


def test_runs_that_share_the_cores_split_them_and_a_dead_run_frees_its_share(tmp_path):
    cores = available_cores()
    with CoreShare(max_threads=64, folder=tmp_path) as first:
        assert first.threads() == cores
        with CoreShare(max_threads=64, folder=tmp_path):
            assert first.threads() == max(1, cores // 2)
        assert first.threads() == cores
        # Another process claims, then dies without releasing: its claim stops counting.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; from pathlib import Path; from consumer_assets.cores import CoreShare; c = "
                f"CoreShare(1, Path({str(tmp_path)!r})).__enter__(); print('held', flush=True); time.sleep(60)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        assert live_claims(tmp_path) == 2
        holder.kill()
        holder.wait()
        assert live_claims(tmp_path) == 1
        assert first.rebalance(force=True) == min(64, cores) == torch.get_num_threads()
    assert live_claims(tmp_path) == 0 and not list(tmp_path.glob("*.claim"))
    with pytest.raises(ValueError, match="max_threads"):
        CoreShare(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: nothing to refuse")
def test_a_gpu_deployment_without_a_gpu_fails_with_a_clear_message_instead_of_training_on_the_cpu():
    from consumer_assets.training.train import resolve_device

    with pytest.raises(
        RuntimeError, match=r"no usable GPU: torch .* is (a CPU-only build|built for CUDA).*GPU node.*'auto' or 'cpu'"
    ):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
