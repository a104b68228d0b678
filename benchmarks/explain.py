"""What explaining costs next to scoring: profiles/s of both on the same histories, and peak memory.

    .venv/bin/python benchmarks/explain.py [--profiles 100000] [--max-length 100] [--threads 2]

Explaining runs one LSTM pass per profile and the head after every event
(``ConsumerLSTM.prefix_logits``); scoring runs the same pass and the head once. The
histories are synthetic (``serving.smoke.synthetic_histories``: lengths uniform up to
``--max-length``), the model untrained with the default sizes: cost does not depend on
what the weights learnt.
"""

import argparse
import resource
import time

import torch

from consumer_assets.model.encoding import Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import LoadedModel
from consumer_assets.serving.explain import explain
from consumer_assets.serving.smoke import synthetic_histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    histories = synthetic_histories(args.profiles, args.max_length, seed=1)
    vocabulary = Vocabulary.build([histories], VocabularyLimits(min_count=1))
    config = ModelConfig(max_length=args.max_length)
    network = ConsumerLSTM.for_vocabulary(config, vocabulary)
    network.fit_standardisation(encode(histories.slice(0, 10_000), vocabulary, args.max_length).profile)
    model = LoadedModel("bench", config, vocabulary, network.eval(), {})
    events = sum(min(n, args.max_length) for n in histories.column("length").to_pylist())
    print(
        f"{args.profiles:,} profiles, {events:,} events (mean {events / args.profiles:.1f}), {args.threads} torch "
        "threads"
    )

    started = time.perf_counter()
    score_table(model, histories, batch_size=2048)
    scoring = time.perf_counter() - started
    print(f"  scoring     {scoring:7.1f} s  {args.profiles / scoring:>10,.0f} profiles/s")
    started = time.perf_counter()
    explained = explain(model, histories, batch_size=512)
    explaining = time.perf_counter() - started
    print(
        f"  explaining  {explaining:7.1f} s  {args.profiles / explaining:>10,.0f} profiles/s  "
        f"({explained.events.num_rows:,} event rows)"
    )
    print(
        f"  explaining / scoring: {explaining / scoring:.1f}x; peak memory of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    )


if __name__ == "__main__":
    main()
