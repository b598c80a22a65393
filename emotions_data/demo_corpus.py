"""The built-in demo corpus: short synthetic clips whose emotion class is visible and audible.

Each class has its own colours and motion speed (Conway's life from ffmpeg's `life` source,
upscaled so the picture has coarse structure) and its own tone and tremolo rate; each clip has its
own random seed, so clips of one class look alike but are different clips. Around the good clips
the corpus holds the bad inputs every ingest must handle: corrupt and truncated files, no audio,
too short, too small, an exact and a near duplicate, and a URL that answers 404.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from emotions_data.taxonomy import EMOTIONS6

CLIPS_PER_CLASS = 8  # enough for every split of every variant to hold each class
FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]

# class -> (live colour, dead colour, mould colour, generations per second, tone Hz, tremolo Hz)
CLASS_STYLE: dict[str, tuple[str, str, str, float, float, float]] = {
    "Excitation": ("#ff3020", "#401010", "#ffb000", 12, 880.0, 8.0),
    "Fear": ("#8a2be2", "#05000f", "#301040", 8, 233.0, 13.0),
    "Neutral": ("#c0c0c0", "#505050", "#808080", 2, 440.0, 0.1),
    "Relaxation": ("#30d070", "#002818", "#60a0ff", 1, 330.0, 0.5),
    "Sadness": ("#2050ff", "#000820", "#102040", 2, 196.0, 1.5),
    "Tension": ("#ff8000", "#000000", "#603000", 6, 622.0, 4.0),
}


@dataclass(frozen=True)
class ClipSpec:
    """How to synthesise one clip. `width`/`height` are the encoded frame; `rotate` adds display
    rotation metadata (a phone clip filmed upright but stored sideways)."""

    label: str
    seed: int
    width: int = 426
    height: int = 240
    fps: str = "25"
    duration_s: float = 3.0
    audio: bool = True
    container: str = "mp4"  # "mp4" (H.264/AAC) or "webm" (VP9/Opus)
    rotate: int = 0
    vfr: bool = False
    tone_shift: float = 1.0  # small per-clip pitch change, so no two clips sound identical

    @property
    def suffix(self) -> str:
        return ".webm" if self.container == "webm" else ".mp4"


def clip_command(spec: ClipSpec, path: Path) -> list[str]:
    live, dead, mould, rate, tone, tremolo = CLASS_STYLE[spec.label]
    cells_w, cells_h = max(8, spec.width // 14), max(8, spec.height // 14)
    video = (
        f"life=s={cells_w}x{cells_h}:seed={spec.seed}:ratio=0.35:rate={rate}:mold=10"
        f":life_color={live}:death_color={dead}:mold_color={mould},"
        f"scale={spec.width}:{spec.height}:flags=neighbor,setsar=1,fps={spec.fps},format=yuv420p"
    )
    if spec.vfr:
        video += r",select='not(eq(mod(n\,4)\,1))*not(eq(mod(n\,7)\,3))'"
    cmd = [*FFMPEG, "-f", "lavfi", "-i", video]
    if spec.audio:
        audio = f"sine=f={tone * spec.tone_shift:.1f}:sample_rate=44100,tremolo=f={tremolo}:d=0.8"
        cmd += ["-f", "lavfi", "-i", audio]
    cmd += ["-t", f"{spec.duration_s}"]
    if spec.vfr:
        cmd += ["-fps_mode", "vfr"]
    if spec.container == "webm":
        cmd += ["-c:v", "libvpx-vp9", "-b:v", "400k", "-deadline", "realtime", "-cpu-used", "8"]
        cmd += ["-c:a", "libopus", "-b:a", "64k"] if spec.audio else []
    else:
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        cmd += ["-c:a", "aac", "-b:a", "96k"] if spec.audio else []
    return [*cmd, str(path)]


def make_clip(spec: ClipSpec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not spec.rotate:
        subprocess.run(clip_command(spec, path), check=True, capture_output=True)
        return path
    # ffmpeg 5.1 drops a rotate tag when encoding but keeps it on a stream copy: encode, then remux.
    encoded = path.with_name(f"unrotated-{path.name}")
    subprocess.run(clip_command(spec, encoded), check=True, capture_output=True)
    remux = [*FFMPEG, "-i", str(encoded), "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={spec.rotate}"]
    subprocess.run([*remux, str(path)], check=True, capture_output=True)
    encoded.unlink()
    return path


def make_near_duplicate(src: Path, dst: Path, *, scale: float = 0.75, crop: float = 0.08, crf: int = 32) -> Path:
    """The same clip re-encoded smaller, lightly cropped and watermarked (a typical re-upload)."""
    vf = (
        f"crop=iw*{1 - crop}:ih*{1 - crop},scale=trunc(iw*{scale}/2)*2:trunc(ih*{scale}/2)*2,"
        "drawbox=x=8:y=8:w=iw/5:h=ih/14:color=white@0.7:t=fill"
    )
    cmd = [*FFMPEG, "-i", str(src), "-vf", vf, "-c:v", "libx264", "-crf", str(crf), "-preset", "veryfast"]
    cmd += ["-c:a", "aac", "-b:a", "64k", str(dst)]
    subprocess.run(cmd, check=True, capture_output=True)
    return dst


# Five container/geometry profiles the good clips cycle through.
_PROFILES = [
    dict(width=426, height=240, fps="25"),
    dict(width=270, height=480, fps="30"),
    dict(width=480, height=270, fps="24", rotate=90),  # displayed as 270x480
    dict(width=320, height=320, fps="30000/1001", container="webm"),
    dict(width=360, height=640, fps="30", vfr=True),
]


@dataclass(frozen=True)
class CorpusItem:
    name: str  # file name on the server
    kind: str  # "good" or what is wrong with it; the expected manifest reason
    label: str | None
    uploader: str


def corpus_plan(clips_per_class: int = CLIPS_PER_CLASS, seed: int = 7) -> list[tuple[CorpusItem, ClipSpec | None]]:
    rng = random.Random(seed)
    plan: list[tuple[CorpusItem, ClipSpec | None]] = []
    n = 0
    for label in EMOTIONS6.classes:
        for k in range(clips_per_class):
            profile = _PROFILES[(k + EMOTIONS6.index(label)) % len(_PROFILES)]
            spec = ClipSpec(
                label=label,
                seed=1000 + n,
                duration_s=round(rng.uniform(2.0, 4.5), 1),
                tone_shift=round(rng.uniform(0.95, 1.05), 3),
                **profile,  # type: ignore[arg-type]
            )
            plan.append((CorpusItem(f"{label.lower()}_{k:02d}{spec.suffix}", "good", label, f"u{n // 2:02d}"), spec))
            n += 1
    bad = [
        ("silent_clip.mp4", "no_audio", ClipSpec("Neutral", 9001, audio=False)),
        ("blink.mp4", "too_short", ClipSpec("Excitation", 9002, duration_s=0.5)),
        ("tiny.mp4", "low_resolution", ClipSpec("Sadness", 9003, width=160, height=120)),
        ("truncated.mp4", "corrupt", ClipSpec("Tension", 9004)),
    ]
    for name, kind, spec in bad:
        plan.append((CorpusItem(name, kind, spec.label, "u90"), spec))
    plan.append((CorpusItem("corrupt.mp4", "corrupt", None, "u90"), None))
    plan.append((CorpusItem("excitation_00_copy.mp4", "duplicate", "Excitation", "u91"), None))
    plan.append((CorpusItem("relaxation_01_reupload.mp4", "near_duplicate", "Relaxation", "u92"), None))
    plan.append((CorpusItem("deleted_by_uploader.mp4", "download_error", None, "u93"), None))
    return plan


def build_corpus(folder: Path, clips_per_class: int = CLIPS_PER_CLASS) -> list[CorpusItem]:
    """Write the corpus files into `folder` (skipped when already built with the same plan)."""
    plan = corpus_plan(clips_per_class)
    digest = hashlib.sha1(json.dumps([(asdict(i), s and asdict(s)) for i, s in plan]).encode()).hexdigest()
    marker = folder / ".corpus-plan"
    items = [item for item, _ in plan]
    if marker.exists() and marker.read_text() == digest:
        return items
    folder.mkdir(parents=True, exist_ok=True)
    for item, spec in plan:
        if spec is not None:
            make_clip(spec, folder / item.name)
    truncated = folder / "truncated.mp4"  # no faststart: cutting the tail loses the index
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 5])
    (folder / "corrupt.mp4").write_bytes(random.Random(0).randbytes(40_000))
    (folder / "excitation_00_copy.mp4").write_bytes((folder / "excitation_00.mp4").read_bytes())
    make_near_duplicate(folder / "relaxation_01.mp4", folder / "relaxation_01_reupload.mp4")
    marker.write_text(digest)
    return items


def write_url_table(items: list[CorpusItem], base_url: str, path: Path) -> Path:
    """The demo's SOURCE: a CSV with url, video_id, platform and uploader, plus the ground truth
    (`true_label`, `expected`) as extra columns that ingest carries through."""
    from urllib.parse import quote

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "video_id", "platform", "uploader", "true_label", "expected"])
        for item in items:
            writer.writerow(
                [
                    f"{base_url}/{quote(item.name)}",
                    Path(item.name).stem,
                    "demo",
                    item.uploader,
                    item.label or "",
                    "ok" if item.kind == "good" else item.kind,
                ]
            )
    return path
