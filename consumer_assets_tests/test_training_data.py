"""Feeding the LSTM: rows encoded once, batches gathered from them, a prefetch thread, and cores shared between runs."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from consumer_assets.cores import CoreShare, available_cores, live_claims
from consumer_assets.model.encoding import encode
from consumer_assets.training.dataset import EncodedRows, length_buckets, prefetched
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
    assert rows.events == sum(max(min(n, 10), 1) for n in LENGTHS)  # ragged: no padding stored; an empty history keeps one step
    for picked in ([0, 1, 2], [9, 4, 8, 11], list(range(len(LENGTHS)))[::-1]):
        gathered = rows.batch(np.array(picked))
        direct = encode(table.take(picked), VOCAB, 10, labels[picked])
        for name in ("categorical", "continuous", "profile", "lengths", "labels"):
            assert torch.equal(getattr(gathered, name), getattr(direct, name)), name


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
                f"import time; from pathlib import Path; from consumer_assets.cores import CoreShare; c = CoreShare(1, Path({str(tmp_path)!r})).__enter__(); print('held', flush=True); time.sleep(60)",
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

    with pytest.raises(RuntimeError, match=r"no usable GPU: torch .* is (a CPU-only build|built for CUDA).*GPU node.*'auto' or 'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
