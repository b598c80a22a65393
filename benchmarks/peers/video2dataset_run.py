"""Runs video2dataset on a URL list with the encoder settings given, inside the peers' virtualenv (`make
bench-peers`); prints one JSON line: wall seconds around the `video2dataset()` call, clips written, failures.

    EMOTIONS_BENCH_ENCODER='{"short_side": 360, "output_options": {...}}' \\
        python video2dataset_run.py URLS.csv OUT_DIR WORKERS

The settings are the ffmpeg output options of emotions' normalise step (codec, preset, CRF, pixel format, profile,
audio codec, bit rate, sample rate, channels, faststart) and the target short side, so both tools encode alike.
video2dataset's `ResolutionSubsampler` encodes with ffmpeg's defaults and has no options for these, so a subclass
passes them; it also sets `encode_formats`, which video2dataset 1.3.0's download worker reads from every video
subsampler but `ResolutionSubsampler` does not define (without it every shard fails with AttributeError).

video2dataset's workers are spawned processes, which import this file as their main module: the subclass is
installed at import time, and its settings come from the environment the workers inherit.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

_STARTED = time.perf_counter()
import ffmpeg  # noqa: E402  (timed: the peer's import cost is reported apart)
import video2dataset.workers.download_worker as download_worker  # noqa: E402
from video2dataset import video2dataset  # noqa: E402
from video2dataset.subsamplers import ResolutionSubsampler  # noqa: E402

IMPORT_S = time.perf_counter() - _STARTED
SETTINGS = json.loads(os.environ["EMOTIONS_BENCH_ENCODER"])


class SameEncoderResolution(ResolutionSubsampler):
    """`ResolutionSubsampler` (scale to the short side) with emotions' encoder options."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encode_formats = {"video": "mp4"}

    def __call__(self, streams, metadata=None):
        made = []
        for data in streams["video"]:
            with tempfile.TemporaryDirectory() as tmp:
                src, dst = os.path.join(tmp, "input.mp4"), os.path.join(tmp, "output.mp4")
                Path(src).write_bytes(data)
                try:
                    stream = ffmpeg.input(src)
                    video = stream.video.filter("scale", -2, self.height).filter("setsar", 1)
                    out = ffmpeg.output(video, stream.audio, dst, **SETTINGS["output_options"])
                    out.run(capture_stdout=True, quiet=True)
                except Exception as exc:  # video2dataset's own subsamplers report any failure this way
                    return [], None, str(exc)
                made.append(Path(dst).read_bytes())
        streams["video"] = made
        return streams, metadata, None


download_worker.ResolutionSubsampler = SameEncoderResolution  # the name its download worker instantiates


def main() -> int:
    urls, out, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    side = SETTINGS["short_side"]
    config = {
        "subsampling": {"ResolutionSubsampler": {"args": {"video_size": side, "resize_mode": "scale"}}},
        "reading": {
            "yt_args": {"download_size": side, "download_audio_rate": 44100, "yt_metadata_args": None},
            "timeout": 60,
            "sampler": None,
        },
        "storage": {"number_sample_per_shard": 1000, "oom_shard_count": 5, "captions_are_subtitles": False},
        "distribution": {
            "processes_count": workers,
            "thread_count": 1,
            "subjob_size": 1000,
            "distributor": "multiprocessing",
        },
    }
    started = time.perf_counter()
    video2dataset(
        url_list=urls, output_folder=str(out), output_format="files", input_format="csv",
        encode_formats={"video": "mp4"}, config=config, tmp_dir=tempfile.gettempdir(),
    )  # fmt: skip
    wall = time.perf_counter() - started
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    failed = sum(s.get("failed_to_download", 0) + s.get("failed_to_subsample", 0) for s in stats)
    successes = sum(s.get("successes", 0) for s in stats)
    made = len(list(out.rglob("*.mp4")))
    print(json.dumps({"wall_s": wall, "import_s": IMPORT_S, "clips": made, "successes": successes, "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
