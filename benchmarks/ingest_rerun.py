"""A re-run of `emotions ingest` with nothing left to do, at N registered inputs: the bookkeeping alone.

For each N the benchmark builds a finished dataset without downloading anything: a URL list as SOURCE, the input
register written by `ingest.register_inputs`, and the three stage logs committed with `StageLog.commit` (one shard
each, as a finished run leaves them) holding plausible rows: every item resolved and fetched ok (unique sha256,
probe facts that pass the default filters), and normalised ok under the default recipe with a random `p2`
fingerprint, one planted near copy for every 100 clips (`benchmarks/dedup.py`'s generator); each log's rows in the
order of shards finishing at random. The media and original files are empty files: a re-run never opens them, it
checks that each ok row's media file exists, deletes the media no manifest row names and sweeps both folders of
temporaries. Then, each in its own process through the real CLI (`emotions ingest SOURCE --out DS`):

* `first`: the first run over those logs, which composes the manifest (near-duplicate search included), deletes
  the near copies' media and writes the summary;
* `rerun` (best of --repeats): the same command again, nothing changed;
* `raw floor`: `pyarrow.parquet.read_table` of the files a re-run has to read (inputs, three logs), nothing else;
* with `--before REF`: the re-run with the code of git revision REF (exported with `git archive`), on the same
  dataset, and its manifest compared with ours.

Every run's manifest must equal the first run's (checked). Prints wall seconds, peak RSS (the child's
`ru_maxrss`) and the ratios rerun / first, rerun / raw floor and rerun / before.

Run: python benchmarks/ingest_rerun.py --n 10000 100000 1000000
     python benchmarks/ingest_rerun.py --n 100000 --before HEAD~3     (the earlier code in the same run)
Targets: the 1M re-run <= 60 s and <= 4 GB on the 2-core machine. 1M media files are 1M inodes: the dataset folders
are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotions_data import fingerprint as fp  # noqa: E402
from emotions_data.input_register import register_inputs  # noqa: E402
from emotions_data.layout import DatasetLayout  # noqa: E402
from emotions_data.normalise import recipe_id  # noqa: E402
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA, RESOLVE_STAGE_SCHEMA  # noqa: E402
from emotions_data.settings import IngestSettings  # noqa: E402
from emotions_data.sources import read_sources  # noqa: E402
from emotions_data.storage import StageLog  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from dedup import planted  # noqa: E402


def _column(schema: pa.Schema, values: dict[str, object], n: int) -> pa.Table:
    """A table of `schema` with `n` rows: the given columns (arrays or one value for all rows), nulls elsewhere."""
    arrays = []
    for field in schema:
        value = values.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        elif isinstance(value, pa.Array | np.ndarray | list):
            arrays.append(pa.array(value, field.type))
        else:
            arrays.append(pa.array(np.full(n, value) if not isinstance(value, str) else [value] * n, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def build(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """A finished dataset of `n` URL inputs under `folder`; returns (SOURCE file, dataset folder)."""
    source = folder / "urls.txt"
    source.write_text("".join(f"http://127.0.0.1:9/v/clip-{k:07d}.mp4\n" for k in range(n)))
    layout = DatasetLayout(folder / "ds")
    layout.work.mkdir(parents=True)
    items = read_sources([source])
    register_inputs(layout, items)
    ids = [item.video_id for item in items]
    rng = np.random.default_rng(seed)
    candidates, _, _ = planted(n, 0.28, seed)
    durations = np.array([c.duration_s for c in candidates])
    durations = np.clip(durations, 1.5, 290.0)
    # A finished log holds its rows in the order its shards were committed (jobs finish in any order): blocks of
    # 16 rows, shuffled, so no lookup can rely on the register's order.
    blocks = rng.permutation((n + 15) // 16)
    order = pa.array(np.concatenate([np.arange(b * 16, min(n, b * 16 + 16)) for b in blocks]))
    when = pa.array(np.full(n, np.datetime64("2026-11-01T00:00:00", "s")), pa.timestamp("s", tz="UTC"))
    ok = {"status": "ok", "retryable": False, "attempts": 1, "processed_at": when}
    StageLog(layout.resolve_log, RESOLVE_STAGE_SCHEMA).commit(_column(RESOLVE_STAGE_SCHEMA, {"video_id": ids, **ok}, n))
    sha = [f"{x:064x}" for x in rng.integers(0, 2**63, n)]
    short = rng.choice([360, 480, 720, 1080], n)
    width, height = short * 16 // 9 // 2 * 2, short
    fetched = {
        "video_id": ids, **ok, "sha256": sha, "size_bytes": rng.integers(200_000, 40_000_000, n),
        "container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_s": durations, "video_duration_s": durations,
        "audio_duration_s": durations, "has_video": True, "width": width, "height": height, "rotation": 0,
        "fps": 30.0, "vfr": False, "has_audio": True, "audio_sample_rate": 44100, "audio_channels": 2,
        "video_codec": "h264", "audio_codec": "aac", "bit_rate": rng.integers(300_000, 8_000_000, n),
        "original_path": [f"originals/{v}.mp4" for v in ids], "downloader": "yt-dlp",
        "downloader_version": "2025.01.01", "extractor": "generic",
    }  # fmt: skip
    StageLog(layout.fetch_log, PROBE_STAGE_SCHEMA).commit(_column(PROBE_STAGE_SCHEMA, fetched, n).take(order))
    media_short = np.minimum(short, 720)
    made = {
        "video_id": ids, "sha256": sha, "recipe": recipe_id(IngestSettings().normalise), **ok,
        "media_path": [f"media/{v}.mp4" for v in ids], "media_sha256": sha, "media_duration_s": durations,
        "media_width": media_short * 16 // 9 // 2 * 2, "media_height": media_short, "media_fps": 30.0,
        "fingerprint": [c.fingerprint for c in candidates],
    }  # fmt: skip
    StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA).commit(
        _column(NORMALISE_STAGE_SCHEMA, made, n).take(rng.permutation(n))  # normalise jobs finish in another order
    )
    for folder in (layout.media, layout.originals):
        folder.mkdir()
        for v in ids:  # a re-run only checks that media exist and lists both folders for temporaries
            os.close(os.open(folder / f"{v}.mp4", os.O_CREAT | os.O_WRONLY, 0o644))
    assert fp.VERSION  # the fingerprints are of the version this code reads
    return source, layout.root


def run_child(argv: list[str], pythonpath: Path = ROOT) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, output) of one child: measured by `/usr/bin/time`-like `wait4` on that child alone."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "COLUMNS": "200"}
    start = time.perf_counter()
    # -c puts the working folder first on sys.path: run from one without code, so PYTHONPATH decides
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    chunks = []
    while True:
        chunk = proc.stdout.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = b"".join(chunks).decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


RAW_FLOOR = """
import sys, pyarrow.parquet as pq
from pathlib import Path
work = Path(sys.argv[1]) / ".work"
files = [work / "inputs.parquet", *[p for s in ("resolve", "fetch", "normalise") for p in (work / s).glob("*.parquet")]]
print(sum(pq.read_table(p).num_rows for p in files))
"""


def ingest_argv(source: Path, dataset: Path) -> list[str]:
    """The `emotions` command, run by this interpreter with the code on PYTHONPATH."""
    return [sys.executable, "-c", "from emotions_cli.main import app; app()", "ingest", str(source), "--out",
            str(dataset)]  # fmt: skip


def export(ref: str, folder: Path) -> Path:
    """The code of git revision `ref`, exported to `folder` (the working tree is left alone)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=2, help="re-runs per size; the best is reported")
    parser.add_argument("--before", help="git revision whose code re-runs the same dataset, for a before/after")
    parser.add_argument("--tmp", type=Path, default=None, help="where the datasets are built [default: $TMPDIR]")
    parser.add_argument("--keep", action="store_true", help="keep the dataset folders")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ingest-rerun-", dir=args.tmp))
    before = None
    if args.before:
        (base / "before").mkdir()
        before = export(args.before, base / "before")
    print(f"{'n':>9} {'what':<22} {'wall s':>8} {'peak MB':>8}   ratio")
    try:
        for n in args.n:
            folder = base / f"n{n}"
            folder.mkdir()
            start = time.perf_counter()
            source, dataset = build(folder, n)
            print(f"{n:>9,} {'(build)':<22} {time.perf_counter() - start:8.1f}", flush=True)
            first = run_child(ingest_argv(source, dataset))
            manifest = pq.read_table(dataset / "manifests" / "videos.parquet")
            status = {r["values"]: r["counts"] for r in pc.value_counts(manifest["status"]).to_pylist()}
            print(f"{n:>9,} {'first run':<22} {first[0]:8.2f} {first[1]:8.0f}   {status}", flush=True)
            reruns = []
            for _ in range(args.repeats):
                reruns.append(run_child(ingest_argv(source, dataset)))
                again = pq.read_table(dataset / "manifests" / "videos.parquet")
                assert again.equals(manifest), "the re-run's manifest differs from the first run's"
            wall, peak, _ = min(reruns)
            floor = run_child([sys.executable, "-c", RAW_FLOOR, str(dataset)])
            print(f"{n:>9,} {'rerun (best)':<22} {wall:8.2f} {peak:8.0f}   rerun/first {wall / first[0]:.3f}")
            print(f"{n:>9,} {'raw floor (read_table)':<22} {floor[0]:8.2f} {floor[1]:8.0f}   "
                  f"rerun/floor {wall / floor[0]:.1f}", flush=True)  # fmt: skip
            if before:
                old = run_child(ingest_argv(source, dataset), pythonpath=before)
                again = pq.read_table(dataset / "manifests" / "videos.parquet")
                same = again.equals(manifest)
                print(f"{n:>9,} {f'rerun at {args.before}':<22} {old[0]:8.2f} {old[1]:8.0f}   "
                      f"rerun/before {wall / old[0]:.3f}, same manifest: {same}", flush=True)  # fmt: skip
            if not args.keep:
                shutil.rmtree(folder)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept: {base}")


if __name__ == "__main__":
    main()
