"""Shared fixtures: a media corpus made with the real ffmpeg once per session, served on loopback; a real Label
Studio (tests/support/ls_fixtures.py) and a local Ray instance per module (tests/support/ray_cluster.py)."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from emotions_data.demo_corpus import ClipSpec, make_clip, make_near_duplicate
from emotions_data.loopback import serve
from tests.support.corpus import CORPUS
from tests.support.ls_fixtures import ls_data_dir, ls_server, ls_template  # noqa: F401  (a real Label Studio, once per session)
from tests.support.ray_cluster import ray_address, reference, reference_ds, two_node_cluster, urls  # noqa: F401  (Ray, per module)

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


def _upright_marker(path: Path) -> Path:
    """A portrait clip (white top third) stored sideways with a rotate=90 tag, as phones do."""
    sideways = path.with_name("sideways-" + path.name)
    subprocess.run(
        [*FF, "-f", "lavfi", "-i", "color=black:s=240x320:d=2,drawbox=x=0:y=0:w=iw:h=ih/3:color=white:t=fill,"
         "transpose=1", "-f", "lavfi", "-i", "sine=f=500:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(sideways)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*FF, "-i", str(sideways), "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path)],
        check=True,
        capture_output=True,
    )
    sideways.unlink()
    return path


def _make(name: str, how: object, folder: Path) -> None:
    path = folder / name
    if isinstance(how, ClipSpec):
        make_clip(how, path)
    elif how == "upright_marker":
        _upright_marker(path)
    elif isinstance(how, str) and how.startswith("near:"):
        make_near_duplicate(folder / how[5:], path)
    elif isinstance(how, str) and how.startswith("copy:"):
        path.write_bytes((folder / how[5:]).read_bytes())
    elif how == "audio_only":
        subprocess.run([*FF, "-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(path)], check=True)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        make_clip(ClipSpec("Tension", 23, width=320, height=240, duration_s=3.0), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "truncated_faststart":  # the index survives, the media data does not: probes fine, decodes short
        make_clip(ClipSpec("Tension", 24, width=320, height=240, duration_s=4.0), path.with_suffix(".src.mp4"))
        subprocess.run(
            [*FF, "-i", str(path.with_suffix(".src.mp4")), "-c", "copy", "-movflags", "+faststart", str(path)],
            check=True,
        )
        path.with_suffix(".src.mp4").unlink()
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    elif how == "garbage":
        path.write_bytes(random.Random(1).randbytes(30_000))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The test corpus folder (generated once per session; dependencies are made first)."""
    folder = tmp_path_factory.mktemp("corpus")
    ordered = sorted(CORPUS, key=lambda n: isinstance(CORPUS[n][0], str) and ":" in CORPUS[n][0])
    for name in ordered:
        _make(name, CORPUS[name][0], folder)
    return folder


@pytest.fixture()
def server(corpus):
    with serve(corpus) as srv:
        yield srv


# The longest modules first. Under `--dist loadfile` a module goes whole to one worker, so a long one handed out
# last runs alone while the other worker idles; started first, the short ones fill in beside it. The Ray modules
# (which take turns through a lock) are spread out so that the two workers rarely wait on each other.
_LONGEST_FIRST = (
    "tests/cli/test_cli.py",
    "tests/cli/test_baseline_crash.py",
    "tests/cli/test_baseline_cli.py",
    "tests/cli/test_ingest_faults_cli.py",
    "tests/cli/test_ray_multinode_cli.py",
    "tests/cli/test_baseline_integrity_cli.py",
    "tests/cli/test_object_storage_edges_cli.py",
    "tests/cli/test_commit_crash_cli.py",
    "tests/annotation/test_vote_integrity_ls.py",
    "tests/cli/test_option_refusals_cli.py",
    "tests/annotation/test_any_deployment_ls.py",
    "tests/annotation/test_ls_server.py",
    "tests/annotation/test_ls_postgres.py",
    "tests/cli/test_ray_object_storage_cli.py",
    "tests/cli/test_object_storage_cli.py",
)


# Fixtures that start a server: a test that uses one, directly or through another fixture, is marked `server` and
# left out of the fast lane (`make test-fast`). Modules that start servers of their own say so with `pytestmark`.
# The tests in tests/cli/ run the `emotions` command as a user does, one process per call: marked `cli`, they are
# `make test`'s too.
_SERVER_FIXTURES = frozenset({"ls_server", "ls_template", "ls_data_dir", "ray_address", "two_node_cluster"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
        if item.nodeid.startswith("tests/cli/"):
            item.add_marker(pytest.mark.cli)
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest keep order
