"""Agreement + aggregation speed at eMotions' scale, beside the `krippendorff` package.

Measures, on a simulated vote table of N items x K votes from A annotators of mixed reliability:
  ours   `agreement_report` (alpha, Fleiss, Cohen pairs, per class, per annotator, 1,000 bootstrap
         resamples) plus Dawid-Skene, from the long table, timed together
  ref    `krippendorff.alpha(level_of_measurement="nominal")`: ONE alpha, no interval, from the
         dense raters x items matrix it needs (building that matrix is not timed)
  cli    `emotions agreement VOTES.parquet --json` end to end (process start, reading and cleaning the table,
         the report with its bootstrap, the JSON), on the same votes written to Parquet; with --cli
  crowd-kit  `crowdkit.aggregation.DawidSkene` (n_iter=100) on the same votes beside ours: time, ratio, the share
         of items given the same label and how far the posteriors lie apart; with --crowd-kit (a bench-only
         dependency)
Targets: ours <= 3 s for 28,000 x 5; the command <= 10 s for 1,000,000 x 5. The ratio printed is ours / one
reference alpha: what the whole report costs in units of one package call (a bootstrap with the package would
cost ~1,000).

    python benchmarks/agreement.py [--items 28000] [--votes 5] [--annotators 30] [--bootstrap 1000] [--repeats 3]
    python benchmarks/agreement.py --items 1000000 --repeats 1 --cli --crowd-kit
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from annotation.aggregate import DawidSkene
from annotation.agreement import agreement_report, encode


def simulate(items: int, votes: int, annotators: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, items)
    accuracy = rng.uniform(0.4, 0.95, annotators)
    who = np.argsort(rng.random((items, annotators)), axis=1)[:, :votes].ravel()
    item = np.repeat(np.arange(items), votes)
    label = np.where(rng.random(items * votes) < accuracy[who], truth[item], rng.integers(0, 6, items * votes))
    return pd.DataFrame({"video_id": item.astype(str), "annotator_id": who.astype(str), "label": label.astype(str)})


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=28000)
    parser.add_argument("--votes", type=int, default=5)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli", action="store_true", help="time `emotions agreement` on the votes as Parquet")
    parser.add_argument("--crowd-kit", action="store_true", help="compare Dawid-Skene with crowd-kit's")
    args = parser.parse_args()
    import krippendorff

    votes = simulate(args.items, args.votes, args.annotators)
    enc = encode(votes)
    dense = np.full((len(enc.annotators), len(enc.items)), np.nan)
    dense[enc.annotator, enc.item] = enc.label

    def ours():
        report = agreement_report(votes, n_bootstrap=args.bootstrap, seed=0)
        DawidSkene().fit(votes)
        return report

    t_ours, report = best_of(args.repeats, ours)
    t_ref, ref_alpha = best_of(args.repeats, lambda: krippendorff.alpha(dense, level_of_measurement="nominal"))
    t_agree, _ = best_of(args.repeats, lambda: agreement_report(votes, n_bootstrap=args.bootstrap, seed=0))
    t_ds, _ = best_of(args.repeats, lambda: DawidSkene().fit(votes))

    print(
        f"{args.items} items x {args.votes} votes, {args.annotators} annotators, {args.bootstrap} bootstrap resamples"
    )
    print(f"alpha: ours {report.krippendorff_alpha:.12f}  krippendorff package {ref_alpha:.12f}")
    print(f"ours, full report + Dawid-Skene : {t_ours:7.3f} s  (target <= 3 s)")
    print(f"  of which agreement report     : {t_agree:7.3f} s")
    print(f"  of which Dawid-Skene          : {t_ds:7.3f} s")
    print(f"krippendorff package, one alpha : {t_ref:7.3f} s")
    print(f"ratio ours / one reference alpha = {t_ours / t_ref:.1f}")
    if args.cli:
        cli(votes, args.bootstrap)
    if args.crowd_kit:
        against_crowd_kit(votes, args.repeats)


def cli(votes: pd.DataFrame, bootstrap: int) -> None:
    """`emotions agreement` end to end, as a user runs it, on the votes written to Parquet."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "votes.parquet"
        votes.to_parquet(path)
        entry = "from emotions_cli.main import app; app()"
        command = [sys.executable, "-c", entry, "agreement", str(path), "--json", "--bootstrap", str(bootstrap)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ})
        elapsed = time.perf_counter() - start
    print(f"`emotions agreement --json`, end to end: {elapsed:7.3f} s  (target <= 10 s at 1,000,000 x 5)")


def against_crowd_kit(votes: pd.DataFrame, repeats: int) -> None:
    """Our Dawid-Skene beside crowd-kit's on the same votes: speed and how far the results agree."""
    from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

    table = votes.rename(columns={"video_id": "task", "annotator_id": "worker"})
    t_theirs, theirs = best_of(repeats, lambda: CrowdKitDawidSkene(n_iter=100).fit(table))
    t_ours, ours = best_of(repeats, lambda: DawidSkene(n_iter=100).fit(votes))
    result = ours.result_
    probas = theirs.probas_.reindex(index=result.video_id, columns=list(result.labels)).to_numpy(float)
    same = np.mean(np.array(result.label, dtype=object) == theirs.labels_.reindex(result.video_id).to_numpy())
    gap = np.abs(result.posteriors - probas)
    print(f"Dawid-Skene, ours      : {t_ours:7.3f} s ({ours.n_iter_} EM iterations)")
    print(
        f"Dawid-Skene, crowd-kit : {t_theirs:7.3f} s ({len(theirs.loss_history_)} EM iterations)  "
        f"ratio crowd-kit / ours = {t_theirs / t_ours:.1f}"
    )
    print(
        f"same label on {same:.4%} of items; posteriors apart by {gap.mean():.2e} on average, {gap.max():.2e} at most"
    )


if __name__ == "__main__":
    main()
