"""A campaign's busiest hour, on loopback: 30 annotators submitting at once while `pull` runs again and again, on the
managed Label Studio server with SQLite and with PostgreSQL, in the same run.

For each database: a fresh managed server (PostgreSQL: a cluster of its own made with Debian's initdb/pg_ctl, as the
tests make it), a dataset of N generated clips (ingested once, shared), A annotators in 3 groups allocated and the
label stage pushed (each annotator gets their group's clips, one project each). Then A threads each submit their
votes through the REST API (`POST /api/tasks/{id}/annotations/`, the toolkit's admin posting on the annotator's behalf
as `emotions annotate simulate` does; `--think` seconds per vote, none by default), while one thread runs the
workflow's `pull` in a loop. Every submit is timed. At the end one more pull, and the checks: no error in any thread,
every posted annotation exactly once in `votes.parquet` (none lost, none duplicated), nothing else there.

Prints per database: votes, wall time, submits/s, submit latency p50/p95/max, pulls done meanwhile and their median
time; then the PostgreSQL / SQLite ratio of p50 and p95. Exit code 1 when a check fails.

    python benchmarks/ls_load.py [--annotators 30] [--clips 12] [--think 0] [--wsgi django|gunicorn]
                                 [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from annotation.allocation_step import allocate
from annotation.labelstudio.client import LabelStudio
from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.process import start, stop
from annotation.projects import load_projects
from annotation.pull import pull
from annotation.push import push
from emotions_data.demo_corpus import ClipSpec, make_clip
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from emotions_data.taxonomy import EMOTIONS6

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.postgres import postgres_cluster

GROUPS = 3


def roster(annotators: int) -> str:
    rows = ["id,name,email,work_experience,eq_score,education,culture,leadership,role"]
    for i in range(annotators):
        rows.append(f"L{i:02d},Person {i},l{i}@example.org,{i % 12},{90 + i % 30},BSc,CN,{i % 2},annotator")
    return "\n".join(rows) + "\n"


@contextlib.contextmanager
def managed_server(kind: str, folder: Path, wsgi: str) -> Iterator[LabelStudio]:
    with contextlib.ExitStack() as stack:
        url = None
        if kind == "postgresql":
            url = stack.enter_context(postgres_cluster()).create_database("labelstudio")
        config = ServerConfig(data_dir=folder / f"ls-{kind}", port=0, database_url=url, wsgi=wsgi,
                              document_root=folder)  # fmt: skip
        t0 = time.monotonic()
        handle = start(config, timeout_s=900)
        print(f"  {kind}: server up in {time.monotonic() - t0:.0f} s ({handle.url}, {wsgi})", flush=True)
        stack.callback(stop, handle.config)
        yield LabelStudio(handle.config)


@dataclass
class Load:
    """What the annotators' threads and the concurrent puller measured."""

    latencies: list[float] = field(default_factory=list)  # seconds per submit
    posted: list[int] = field(default_factory=list)  # annotation ids the server answered with
    errors: list[str] = field(default_factory=list)
    pulls: list[float] = field(default_factory=list)  # seconds per pull made meanwhile
    wall: float = 0.0


def _pushed_work(kind: str, folder: Path, clips: Path, annotators: int, client: LabelStudio) -> tuple:
    """Ingests the clips, allocates the roster and pushes the label stage; returns the layout, each annotator's
    (id, user id, task ids) and their Label Studio user ids."""
    root = folder / f"dataset-{kind}"
    ingest([clips], root, load_settings(None), executor=make_executor("local", 2))
    layout = DatasetLayout(root)
    (folder / "roster.csv").write_text(roster(annotators))
    allocate(layout, folder / "roster.csv", n_groups=GROUPS, seed=0, client=client)
    push(layout, "label", client, EMOTIONS6, votes_per_item=annotators // GROUPS)
    work = []  # (annotator, user id, task ids)
    for project in load_projects(layout).values():
        if project["stage"] == "label" and project.get("annotator"):
            tasks = [t["id"] for t in client.tasks(project["id"])]
            work.append((project["annotator"], project.get("ls_user_id"), tasks))
    people = pd.read_parquet(layout.annotators).set_index("annotator_id")["ls_user_id"]
    return layout, work, people


def _annotate_while_pulling(layout: DatasetLayout, client: LabelStudio, work: list, people: pd.Series,
                            think_s: float) -> Load:  # fmt: skip
    """Every annotator submits its tasks in a thread of its own while one thread pulls in a loop."""
    load = Load()
    lock = threading.Lock()
    done = threading.Event()

    def annotator(who: str, tasks: list[int]) -> None:
        mine = LabelStudio(client.config)
        rng = np.random.default_rng(abs(hash(who)) % 2**32)
        for task in tasks:
            time.sleep(think_s * rng.uniform(0.5, 1.5))  # watching the clip (0: none)
            label = str(rng.choice(list(EMOTIONS6.classes)))
            t0 = time.perf_counter()
            try:
                answer = mine.annotate(task, label, int(people[who]), lead_time_s=3.0)
            except Exception as exc:  # every failure is a finding: counted, printed, never hidden
                with lock:
                    load.errors.append(f"{who} task {task}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                load.latencies.append(elapsed)
                load.posted.append(int(answer["id"]))

    def puller() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                pull(layout, client, EMOTIONS6)
            except Exception as exc:
                load.errors.append(f"pull: {exc}")
                return
            load.pulls.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=annotator, args=(who, tasks)) for who, _, tasks in work]
    pulling = threading.Thread(target=puller)
    t0 = time.perf_counter()
    pulling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.wall = time.perf_counter() - t0
    done.set()
    pulling.join()
    pull(layout, client, EMOTIONS6)
    return load


def _report(kind: str, load: Load, votes: pd.DataFrame, n_projects: int, expected: int) -> dict[str, float] | None:
    """Prints the figures; returns the submit latency percentiles (ms) when nothing was lost, duplicated or failed."""
    ids = votes["ls_annotation_id"].astype(int)
    lost = set(load.posted) - set(ids)
    extra = set(ids) - set(load.posted)
    ok = not load.errors and not lost and not extra and ids.is_unique and len(load.posted) == expected
    if not load.latencies:
        print(f"  {kind}: nothing was posted ({n_projects} projects, {expected} tasks); errors: {load.errors[:3]}")
        return None
    lat = np.array(load.latencies) * 1000
    pulls = load.pulls
    print(f"  {kind}: {len(load.posted)}/{expected} votes by {n_projects} annotators in {load.wall:.1f} s "
          f"({len(load.posted) / load.wall:.1f} submits/s); submit p50 {np.percentile(lat, 50):.0f} ms, "
          f"p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} ms; {len(pulls)} pulls meanwhile "
          f"(median {statistics.median(pulls) if pulls else float('nan'):.1f} s); "
          f"lost {len(lost)}, not posted {len(extra)}, duplicated {len(ids) - ids.nunique()}, "
          f"errors {len(load.errors)}", flush=True)  # fmt: skip
    for line in load.errors[:5]:
        print(f"    {line}")
    if not ok:
        return None
    return {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}


def run(kind: str, folder: Path, clips: Path, annotators: int, wsgi: str, think_s: float) -> dict[str, float] | None:
    with managed_server(kind, folder, wsgi) as client:
        layout, work, people = _pushed_work(kind, folder, clips, annotators, client)
        expected = sum(len(t) for _, _, t in work)
        if not expected:
            print(f"  {kind}: no task pushed (were the clips ingested? see {layout.root}/manifests)")
            return None
        load = _annotate_while_pulling(layout, client, work, people, think_s)
        return _report(kind, load, pd.read_parquet(layout.votes), len(work), expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--clips", type=int, default=12, help="clips in the dataset (each group gets a third)")
    parser.add_argument("--wsgi", choices=["django", "gunicorn"], default="gunicorn")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds an annotator takes per vote (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ls-load-") as tmp:
        folder = Path(tmp)
        clips = folder / "clips"
        for i in range(args.clips):
            label = EMOTIONS6.classes[i % len(EMOTIONS6.classes)]
            spec = ClipSpec(label=label, seed=1000 + i, duration_s=2.0, tone_shift=1 + i / 50)
            make_clip(spec, clips / f"c{i:03d}.mp4")
        print(f"{args.annotators} annotators, {args.clips} clips, {GROUPS} groups, {args.wsgi}, think {args.think} s")
        results = {}
        for kind in [args.only] if args.only else ["sqlite", "postgresql"]:
            results[kind] = run(kind, folder, clips, args.annotators, args.wsgi, args.think)
    if any(r is None for r in results.values()):
        print("FAILED: an error, or a lost or duplicated vote")
        return 1
    if len(results) == 2:
        sq, pg = results["sqlite"], results["postgresql"]
        print(f"PostgreSQL / SQLite submit latency: p50 {pg['p50'] / sq['p50']:.2f}, p95 {pg['p95'] / sq['p95']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
