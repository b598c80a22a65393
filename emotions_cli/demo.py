"""`emotions demo`: the whole pipeline on the built-in corpus, strung together from the libraries' steps.

The corpus is generated (`emotions_data.demo_corpus`), served on loopback and ingested through yt-dlp like real
URLs; a simulated panel (9 annotators in 3 groups, one of them weak, one careless who double-votes and votes in
another annotator's project, and an expert) runs the multi-stage annotation workflow on a real Label Studio server,
whose pull report shows the careless votes excluded; the labelled videos are split and released, and the tiny
baseline is trained on the release and evaluated on its test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from annotation.agreement import AgreementReport
from emotions_cli.baseline import print_metrics
from emotions_cli.console import ProgressBar, console, fail, local_folder, progress_bars, say, stdout
from emotions_cli.dataset import print_report
from emotions_cli.labels import print_agreement
from emotions_cli.params import WORKERS, number
from emotions_data.schema import Stage
from emotions_data.taxonomy import EMOTIONS6

demo_app = typer.Typer()

DEMO_BASE_URL = "http://demo-corpus.invalid"
DEMO_SPLIT_RATIOS = (0.6, 0.2, 0.2)  # a small corpus needs larger val/test shares to say anything
DEMO_VERSION = "0.1.0"
VOTES_PER_ITEM = 3
CONSISTENCY_THRESHOLD = 0.6
CARELESS = "D05"  # the simulated panel's careless annotator: a second vote, a vote outside their assignment
# The simulated panel's seed. Each annotator answers in their own project from their own seeded draws; with 16
# items per annotator a weak one (35 % accurate) can land above the consistency threshold by chance (seed 0 does,
# at 0.62), and the demo is meant to show the weak annotator found and dropped: seed 1's weak one scores 0.36.
PANEL_SEED = 1


def demo_roster() -> str:
    """Nine annotators with the five allocation attributes, plus one expert. Fictitious people."""
    people = [
        ("D01", 1, 96, "BSc", "CN", 0), ("D02", 8, 112, "MSc", "CN", 1), ("D03", 3, 104, "PhD", "US", 0),
        ("D04", 5, 99, "BSc", "US", 1), ("D05", 2, 118, "MSc", "EU", 0), ("D06", 11, 91, "PhD", "EU", 1),
        ("D07", 4, 107, "BSc", "CN", 0), ("D08", 7, 101, "MSc", "US", 1), ("D09", 6, 95, "PhD", "EU", 0),
    ]  # fmt: skip
    lines = ["id,name,email,work_experience,eq_score,education,culture,leadership,role"]
    lines += [
        f"{i},Annotator {i},{i.lower()}@example.org,{y},{s},{e},{c},{lead},annotator" for i, y, s, e, c, lead in people
    ]
    lines.append("DX,Expert,expert@example.org,15,124,PhD,CN,1,expert")
    return "\n".join(lines) + "\n"


@dataclass
class AnnotationDemoReport:
    agreement: AgreementReport
    dropped: list[str]
    label_counts: dict[str, int]
    decided_by: dict[str, int]
    server_url: str
    excluded: list[str]  # the label stage's pull report: every vote not counted, with its reason


def run_annotation_demo(out: Path, log: Callable[[str], None] = print) -> AnnotationDemoReport:
    """Allocate, label, cross-check, evaluate consistency, relabel, expert stage and final labels on a real
    Label Studio server started for the demo (and stopped afterwards)."""
    from annotation.allocation_step import allocate
    from annotation.consistency import evaluate_consistency
    from annotation.credentials import drop
    from annotation.labels_step import decide_labels
    from annotation.labelstudio.client import LabelStudio
    from annotation.labelstudio.config import ServerConfig
    from annotation.labelstudio.process import start, stop
    from annotation.pull import pull
    from annotation.push import push
    from annotation.simulate import simulate
    from annotation.votes import kept_votes, read_vote_table
    from emotions_data.layout import DatasetLayout
    from emotions_data.storage import write_bytes_atomic

    layout = DatasetLayout(out)
    roster = out / "demo_source" / "annotators.csv"
    write_bytes_atomic(roster, demo_roster().encode())
    log("starting Label Studio (the first start migrates its database: about half a minute) ...")
    handle = start(ServerConfig(data_dir=(out / ".label-studio").absolute(), port=0), out.absolute())
    try:
        client = LabelStudio(handle.config)
        allocate(layout, roster, n_groups=3, seed=0, client=client)
        excluded: list[str] = []
        for stage in (Stage.LABEL, Stage.CROSSCHECK):
            push(layout, stage, client, EMOTIONS6, votes_per_item=VOTES_PER_ITEM)
            careless = CARELESS if stage == Stage.LABEL else None
            posted = simulate(layout, stage, client, EMOTIONS6, votes_per_item=VOTES_PER_ITEM, seed=PANEL_SEED,
                              careless=careless)  # fmt: skip
            pulled = pull(layout, client, EMOTIONS6)
            log(f"{stage}: {posted.posted} annotations posted, {pulled.n_votes} votes on record")
            if careless:
                for slip in posted.careless:
                    log(f"  careless by design: {slip}")
                summary = ", ".join(f"{reason}: {n}" for reason, n in pulled.summary().items()) or "nothing"
                log(f"  pull report ({pulled.path}): not counted: {summary}")
                excluded = [f"{e.reason}: {e.detail} ({e.video_id}, project {e.project})" for e in pulled.excluded]
                for line in excluded:
                    log(f"    {line}")
        votes = read_vote_table(layout)  # dropped annotators' votes too: they are who the evaluation is about
        consistency = evaluate_consistency(kept_votes(votes), CONSISTENCY_THRESHOLD)
        dropped = list(consistency.annotators.index[consistency.annotators["flagged"]])
        for ann in dropped:  # their votes stop counting; their account is deactivated and its token revoked
            drop(layout, ann, handle.config)
        log(f"consistency evaluation: dropped {', '.join(dropped) or 'nobody'} (agreement with the cross-check "
            f"under {CONSISTENCY_THRESHOLD}); weak by design: {', '.join(posted.weak) or 'none'}")  # fmt: skip
        # Multi-stage: the updated groups re-label what the dropped annotators had labelled.
        push(layout, Stage.RELABEL, client, EMOTIONS6)
        relabelled = simulate(layout, Stage.RELABEL, client, EMOTIONS6, seed=PANEL_SEED).posted
        pull(layout, client, EMOTIONS6)
        log(f"relabel: {relabelled} fresh annotations (by annotators who had not seen the items)")
        decide_labels(layout, EMOTIONS6)  # the ties become the expert's queue
        push(layout, Stage.EXPERT, client, EMOTIONS6, min_agreement=0.5)
        simulate(layout, Stage.EXPERT, client, EMOTIONS6, seed=PANEL_SEED)
        pull(layout, client, EMOTIONS6)
        result = decide_labels(layout, EMOTIONS6)
        labels = result.labels.to_pandas()
        assert result.agreement is not None  # the simulated panel always votes
        return AnnotationDemoReport(
            agreement=result.agreement,
            dropped=dropped,
            label_counts=labels["label"].value_counts().sort_index().to_dict(),
            decided_by=labels["decided_by"].value_counts().to_dict(),
            server_url=handle.config.url,
            excluded=excluded,
        )
    finally:
        stop(handle.config)


def run_demo(
    out: Path, workers: int = 2, progress=None, log: Callable[[str], None] = print, annotate: bool = True,
    train: bool = True,
):  # fmt: skip
    """Build the corpus, serve it on loopback, ingest it through yt-dlp into `out`, then (with
    `annotate`) run the multi-stage annotation workflow on a real Label Studio server, split and release, and
    (with `train`) train the tiny baseline on the release and evaluate it on its test split."""
    from emotions_data.demo_corpus import build_corpus, write_url_table
    from emotions_data.executor import make_executor
    from emotions_data.ingest import ingest
    from emotions_data.loopback import serve
    from emotions_data.settings import DownloadSettings, IngestSettings

    corpus = out / "demo_source"
    log(f"building the demo corpus in {corpus} ...")
    items = build_corpus(corpus)
    (corpus / "deleted_by_uploader.mp4").unlink(missing_ok=True)  # served as a 404
    urls = write_url_table(items, DEMO_BASE_URL, corpus / "urls.csv")
    with serve(corpus) as server:
        # The server's port changes per run but the URLs must not (they key the dataset's input
        # register), so the URLs name a host that never resolves and yt-dlp reaches it through
        # the loopback server acting as its HTTP proxy.
        download = replace(DownloadSettings(), attempts=2, backoff_s=0.2, proxy=server.proxy_url)
        settings = IngestSettings(workers=workers, download=download)
        log(f"serving {len(items)} files on {server.base_url}; ingesting through yt-dlp ...")
        with make_executor("local", workers) as pool:
            report = ingest([urls], out, settings, executor=pool, progress=progress)
    annotation = release = evaluation = None
    if annotate:
        annotation = run_annotation_demo(out, log)
        release = split_and_release(out, log)
        if train:
            evaluation = train_and_evaluate(release, workers, progress, log)
            release = record_demo_baseline(release, evaluation.out_dir, log)
    return report, annotation, release, evaluation


def train_and_evaluate(release: Path, workers: int = 2, progress=None, log: Callable[[str], None] = print):
    """The tiny baseline on the demo release's full variant: trained (resumed when already done), then evaluated
    on test (into the run's folder; the release is only read). Returns the `baselines.recipes.Evaluation`."""
    from baselines.recipes import TrainRequest, evaluate_release, train_release
    from emotions_data.executor import make_executor

    log("training the tiny baseline on the full variant (CPU, about a minute) ...")
    request = TrainRequest(release, variant="full", config="tiny", device="cpu")

    def on_epoch(result) -> None:
        log(f"  epoch {result.epoch + 1}: train accuracy {result.train_accuracy:.3f}, "
            f"val accuracy {result.val['accuracy']:.3f}")  # fmt: skip

    with make_executor("local", workers) as pool:
        run_dir, _ = train_release(request, executor=pool, on_epoch=on_epoch, on_cache_progress=progress)
        return evaluate_release(run_dir / "best.pt", release, "test", executor=pool)


def record_demo_baseline(release: Path, evaluation: Path, log: Callable[[str], None] = print) -> Path:
    """The test result recorded in the card of the next release version, 0.1.1 (kept when it exists: releases
    are never modified). Returns that release's folder."""
    from emotions_data.release_baseline import next_patch, record_baseline

    folder = release.parent / next_patch(release.name)
    if folder.exists():
        log(f"release {folder.name} exists: kept as it is ({folder})")
        return folder
    folder = record_baseline(release, [evaluation])
    log(f"recorded the baseline's test result in release {folder.name}: {folder}")
    return folder


def split_and_release(out: Path, log: Callable[[str], None] = print) -> Path:
    """Split the labelled demo videos and write release 0.1.0 with its card (kept when it exists)."""
    from annotation.votes import read_counted_votes
    from emotions_data.card import card_writer
    from emotions_data.layout import DatasetLayout
    from emotions_data.release import write_release
    from emotions_data.split_step import split_dataset
    from emotions_data.stratified_split import SplitSettings

    layout = DatasetLayout(out)
    folder = layout.release(DEMO_VERSION).root
    if folder.exists():
        log(f"release {DEMO_VERSION} exists: kept as it is ({folder})")
        return folder
    split_dataset(layout, SplitSettings(ratios=DEMO_SPLIT_RATIOS, seed=0))
    votes = read_counted_votes(layout)
    folder = write_release(layout, DEMO_VERSION, votes=votes, name="emotions-demo", card=card_writer(layout))
    log(f"split (60/20/20, group-aware) and released {DEMO_VERSION}: {folder}")
    return folder


@demo_app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder", callback=local_folder)] = Path(
        "demo-dataset"
    ),
    workers: Annotated[int, number(bounds=WORKERS, help="parallel worker processes")] = 2,
    annotate: Annotated[bool, typer.Option("--annotate/--no-annotate", help="run the annotation workflow")] = True,
    train: Annotated[bool, typer.Option("--train/--no-train", help="train and evaluate the tiny baseline")] = True,
) -> None:
    """Build the demo dataset: generate the corpus, serve it on 127.0.0.1 and ingest it through yt-dlp
    like real URLs, then annotate it on a real Label Studio server with a simulated panel."""
    try:
        with progress_bars() as progress:
            report, annotation, release_dir, evaluation = run_demo(
                out,
                workers=workers,
                progress=ProgressBar(progress),
                annotate=annotate,
                train=train,
                log=say,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise fail(str(exc)) from None
    print_report(report)
    if annotation is not None:
        print_agreement(annotation.agreement.to_dict())
        counts = ", ".join(f"{k}: {v}" for k, v in annotation.label_counts.items())
        decided = ", ".join(f"{k}: {v}" for k, v in annotation.decided_by.items())
        stdout.print(f"final labels: {counts}  (decided by {decided})", highlight=False, soft_wrap=True)
        stdout.print(
            f"to browse the projects: emotions annotate server start --data-dir {out / '.label-studio'} "
            f"--document-root {out}", highlight=False, soft_wrap=True,
        )  # fmt: skip
    if evaluation is not None:
        print_metrics(evaluation.metrics)
        console.print(f"baseline evaluation: {evaluation.out_dir}", highlight=False)
    if release_dir is not None:
        console.print(f"release: {release_dir}  (card: {release_dir / 'README.md'})", highlight=False)
    console.print(f"dataset: {out}  (manifests in {out / 'manifests'})", highlight=False)
