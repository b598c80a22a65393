"""Suspect labels on planted noise: precision and recall of `emotions validate`'s confident learning against the
labels that were flipped, beside cleanlab when it is installed in a virtualenv of its own.

Two corpora:
  synthetic  `--items` items of 6 classes whose true class is drawn at random, a share `--noise` of given labels
             flipped to another class; out-of-fold probabilities from an imperfect model that learnt the true
             classes (softmax of logits favouring the true class by `--sharpness`, unit Gaussian noise).
             Pure maths, seconds.
  demo       `--clips-per-class` demo clips per class (class visible and audible, `emotions_data.demo_corpus`) made
             with the real ffmpeg, a share `--noise` of them filed under a wrong class (a careless annotator whose
             votes decided them), imported with `emotions import-official`, then the real `validate` pipeline
             (group-aware folds, the baseline trained per fold with `--config`, out-of-fold probabilities). Minutes on
             CPU with the tiny configuration.
For each rule (`prune by noise rate`, the default, and the confident joint's off-diagonal) it prints the suspects'
precision and recall against the flipped items, and how many flipped labels an expert round repairs when the
first `--to-expert` suspects go to an expert who knows the true class (the expert decides; the model never does).

cleanlab (AGPL-3.0, not a dependency of this Apache-2.0 project) is compared only when `--cleanlab PYTHON` names
the interpreter of a separate virtualenv that has it (`python -m venv /tmp/cl && /tmp/cl/bin/pip install
cleanlab`): its `find_label_issues` runs there on the same labels and probabilities, and the share of identical
suspects is printed.

    python benchmarks/suspects.py [--items 5000] [--noise 0.1] [--sharpness 3] [--cleanlab /tmp/cl/bin/python]
    python benchmarks/suspects.py --corpus demo --clips-per-class 8 --noise 0.15 --epochs 15 --folds 4
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, copied rather than installed

import argparse
import json
import subprocess
import tempfile
import time

import numpy as np

from emotions_data.suspects import RULES, find_suspects
from tests.support.planted_noise import planted_noise, precision_recall

_CLEANLAB = """
import json, sys
import numpy as np
from cleanlab.filter import find_label_issues
data = np.load(sys.argv[1])
out = {}
for filter_by in ("prune_by_noise_rate", "confident_learning"):
    found = find_label_issues(data["labels"], data["probs"], filter_by=filter_by)
    out[filter_by] = np.flatnonzero(found).tolist()
import cleanlab
out["version"] = cleanlab.__version__
print(json.dumps(out))
"""
#: Our rule -> cleanlab's `filter_by` of the same method.
_SAME_RULE = {"noise-rate": "prune_by_noise_rate", "off-diagonal": "confident_learning"}


def cleanlab_suspects(python: str, labels: np.ndarray, probs: np.ndarray) -> dict:
    """cleanlab's suspects (filter_by -> item indices) computed by `python` in its own virtualenv."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, labels=labels, probs=probs)
        proc = subprocess.run([python, "-c", _CLEANLAB, str(path)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(labels: np.ndarray, probs: np.ndarray, flipped: np.ndarray, to_expert: int, cleanlab: str | None) -> None:
    """One line per rule: suspects, precision, recall, flipped labels an expert round repairs, cleanlab beside."""
    theirs = cleanlab_suspects(cleanlab, labels, probs) if cleanlab else None
    accuracy = float(np.mean(probs.argmax(1) == labels))
    print(f"items {len(labels)}, flipped {int(flipped.sum())} ({flipped.mean():.1%}), model accuracy against the "
          f"given labels {accuracy:.3f}")  # fmt: skip
    for rule in RULES:
        start = time.perf_counter()
        result = find_suspects(labels, probs, rule)
        took = time.perf_counter() - start
        precision, recall = precision_recall(result.suspect, flipped)
        sent = result.ranked()[:to_expert]
        line = (f"{rule:>12}: {int(result.suspect.sum())} suspects, precision {precision:.3f}, recall {recall:.3f}, "
                f"{took * 1000:.1f} ms; the first {len(sent)} to the expert repair {int(flipped[sent].sum())} of "
                f"{int(flipped.sum())} flipped labels")  # fmt: skip
        if theirs is not None:
            other = set(theirs[_SAME_RULE[rule]])
            ours = set(np.flatnonzero(result.suspect).tolist())
            same = len(ours & other) / max(len(ours | other), 1)
            mask = np.zeros(len(labels), bool)
            mask[list(other)] = True
            p, r = precision_recall(mask, flipped)
            line += (f"; cleanlab {theirs['version']} {_SAME_RULE[rule]}: {len(other)} suspects, precision {p:.3f}, "
                     f"recall {r:.3f}, identical share (Jaccard) {same:.3f}")  # fmt: skip
        print(line)


def demo_corpus(args: argparse.Namespace, root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build the planted-noise demo corpus under `root`, run the validate pipeline, return (given labels, OOF
    probabilities, flipped) in the taxonomy's class indices."""
    from baselines.crossval import cross_validate
    from baselines.recipes import TrainRequest
    from emotions_data.demo_corpus import ClipSpec, make_clip
    from emotions_data.taxonomy import EMOTIONS6
    from tests.support.commands import run_cli

    rng = np.random.default_rng(args.seed)
    classes = list(EMOTIONS6.classes)
    truth = {}
    for c, label in enumerate(classes):
        for k in range(args.clips_per_class):
            given = label
            if rng.random() < args.noise:  # the careless annotator's vote decided this one
                given = classes[(c + int(rng.integers(1, len(classes)))) % len(classes)]
            name = f"{label.lower()}_{k}"
            make_clip(ClipSpec(label, 1000 * c + k, duration_s=args.seconds), root / "in" / given / f"{name}.mp4")
            truth[name] = (label, given)
    run_cli("import-official", str(root / "in"), "--out", str(root / "ds"), check=True)
    request = TrainRequest(root / "ds", config=args.config, device=args.device, epochs=args.epochs)
    start = time.perf_counter()
    result = cross_validate(root / "ds", request, EMOTIONS6, k=args.folds)
    print(f"validate ({args.folds} folds, {args.config}, {args.device}): {time.perf_counter() - start:.0f} s; fold "
          f"accuracy {', '.join(f'{a:.3f}' for a in result.fold_accuracy.values())}")  # fmt: skip
    videos = __import__("pandas").read_parquet(root / "ds" / "manifests" / "videos.parquet")
    name_of = dict(zip(videos["video_id"], videos["source"].map(lambda s: Path(str(s)).stem), strict=True))
    flipped = np.array([truth[name_of[v]][0] != truth[name_of[v]][1] for v in result.items["video_id"]])
    labels = result.items["label_index"].to_numpy(int)
    return labels, result.probs, flipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("synthetic", "demo"), default="synthetic")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--sharpness", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--to-expert", type=int, default=None, help="default: as many as flipped")
    parser.add_argument("--cleanlab", default=None, help="python of a virtualenv with cleanlab")
    parser.add_argument("--clips-per-class", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    if args.corpus == "synthetic":
        labels, probs, flipped = planted_noise(args.items, 6, args.noise, args.seed, args.sharpness)
        print(f"synthetic: sharpness {args.sharpness}, seed {args.seed}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            labels, probs, flipped = demo_corpus(args, Path(tmp))
    report(labels, probs, flipped, args.to_expert or int(flipped.sum()), args.cleanlab)


if __name__ == "__main__":
    main()
