"""Annotators in a real browser: Debian's chromium driven by Playwright, against a real Label Studio.

Two annotators log in through Label Studio's login page with the passwords the toolkit issued, open their project
from the projects list they see, and label through the "Label All Tasks" queue, the path they are told to use. The
test checks what a person would notice: the clip plays, with sound, for as long as the manifest says; the choices,
the "unsure" flag, the comment box and the play button fit a 1366x768 laptop screen next to a portrait clip; the
second annotator sees nothing of the first one's vote; and `pull` records exactly the votes they cast.

The browser is the system's /usr/bin/chromium (`make system-deps`); the test never downloads one. Screenshots of
the labelling view are kept in the test's temporary folder; `pytest -s` prints the timings (docs/performance.md).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from annotation.allocation_step import allocate
from annotation.annotators import load_annotators
from annotation.credentials import issue_credentials
from annotation.labelstudio.client import LabelStudio
from annotation.labelstudio.interface import (
    COMMENT,
    UNSURE_KEY,
    class_keys,
    instructions,
    labeling_config,
    parse_annotation,
    parse_result,
)
from annotation.labelstudio.process import start, stop
from annotation.pull import pull
from annotation.push import push
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import VoteStatus
from emotions_data.settings import load_settings
from emotions_data.taxonomy import EMOTIONS6
from tests.support.ls_fixtures import clone_data_dir

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out: no QUIC, no background fetches, no component or sync updates. The
# sandbox needs user namespaces that CI containers (running as root) do not grant.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1366, "height": 768}  # a common laptop screen: the layout must fit it
CLIPS = ["portrait.mp4", "rotated.mp4"]  # both portrait as displayed, the shape that used to push the answers down
ROSTER = (
    "id,name,email,work_experience,eq_score,education,culture,leadership,role\n"
    "BR1,Person 1,p1@example.org,2,95,BSc,CN,0,annotator\n"
    "BR2,Person 2,p2@example.org,9,110,MSc,US,1,annotator\n"
    "BRX,Expert,x@example.org,20,125,PhD,CN,1,expert\n"
)
DURATION_TOLERANCE_S = 0.1  # the media's container duration against the browser's (AAC priming, frame rounding)


# ---------------------------------------------------------------- the interface, without a browser


def test_interface_lists_keys_and_definitions_and_keeps_the_comment():
    config, guide = labeling_config(EMOTIONS6), instructions(EMOTIONS6)
    for label, key in class_keys(EMOTIONS6).items():
        assert f'<Choice value="{label}"' in config and f'hotkey="{key}"' in config
        assert re.search(
            rf"<kbd>{key}</kbd> <b>{label}</b> \([a-z]+\): {re.escape(EMOTIONS6.definitions[label])}", guide
        )
    assert f'hotkey="{UNSURE_KEY}"' in config and "ctrl+enter" in guide and "ctrl+alt+space" in guide
    assert len(EMOTIONS6.definitions) == len(EMOTIONS6.classes), "one definition per class"
    assert 'height="' in config, "the video's height is capped so the answers stay above the fold"
    # What the browser submits (checked against a real submission below): the comment is a textarea region.
    result = [
        {"from_name": "emotion", "to_name": "video", "type": "choices", "value": {"choices": ["Fear"]}},
        {"from_name": COMMENT, "to_name": "video", "type": "textarea", "value": {"text": ["too dark", " "]}},
    ]
    assert parse_annotation(result) == ("Fear", False, "too dark") and parse_result(result) == ("Fear", False)


# ---------------------------------------------------------------- the study: a private server, a pushed dataset


@dataclass(frozen=True)
class Study:
    layout: DatasetLayout
    client: LabelStudio
    passwords: dict[str, tuple[str, str]] = field(repr=False)  # annotator -> (login, password): never in a report
    groups: dict[str, str]  # annotator -> group
    durations: dict[str, float]  # video_id -> the manifest's media duration (s)
    setup_s: dict[str, float]  # seconds of each setup step, for the timings docs/performance.md quotes


@pytest.fixture(scope="module")
def study(ls_template, corpus, tmp_path_factory) -> Iterator[Study]:
    """Two portrait clips ingested into a private server's document root, allocated to one group of two
    annotators (and an expert), pushed for the label stage with two votes per clip, passwords issued. A private
    server keeps the projects list and the accounts to this study: other modules' tests drop and move people."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium for this test")
    base = tmp_path_factory.mktemp("browser-study")
    config = clone_data_dir(ls_template.config, base / "label-studio")
    document_root = base / "documents"
    document_root.mkdir()
    setup_s: dict[str, float] = {}
    t0 = time.monotonic()
    handle = start(config, document_root)
    setup_s["server start"] = time.monotonic() - t0
    try:
        source = base / "clips"
        source.mkdir()
        for name in CLIPS:
            shutil.copy(corpus / name, source / name)
        layout = DatasetLayout(document_root / "browser-ds")
        t0 = time.monotonic()
        ingest([source], layout.root, load_settings(None), executor=make_executor("serial", 1))
        roster = base / "annotators.csv"
        roster.write_text(ROSTER)
        client = LabelStudio(handle.config)
        setup_s["ingest"] = time.monotonic() - t0
        t0 = time.monotonic()
        allocate(layout, roster, n_groups=1, seed=0, client=client)
        push(layout, "label", client, EMOTIONS6, votes_per_item=2)
        setup_s["allocate + push"] = time.monotonic() - t0
        t0 = time.monotonic()
        path = issue_credentials(layout, handle.config, base)
        setup_s["credentials"] = time.monotonic() - t0
        passwords = {r["annotator_id"]: (r["login"], r["password"]) for r in csv.DictReader(path.open())}
        people = load_annotators(layout)
        groups = dict(zip(people["annotator_id"], people["group"], strict=True))
        videos = pq.read_table(layout.videos_manifest).to_pandas()
        videos = videos[videos["status"] == "ok"]
        assert len(videos) == len(CLIPS), "both clips are ingested"
        durations = dict(zip(videos["video_id"], videos["media_duration_s"], strict=True))
        yield Study(layout, client, passwords, groups, durations, setup_s)
    finally:
        stop(handle.config)


# ---------------------------------------------------------------- what an annotator does


@dataclass
class Timings:
    """Seconds, as an annotator waits for them."""

    login: float = 0.0  # login page opened -> the projects list shows their project
    video_ready: float = 0.0  # "Label All Tasks" clicked -> the first clip can play
    submit: float = 0.0  # Submit pressed -> Label Studio has stored the annotation
    total: float = 0.0  # login page opened -> stored


def _open_browser(playwright: Any, profile: Path) -> Any:
    """A fresh Chromium profile (no cookies from anyone else) with the laptop viewport."""
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
    )
    context.set_default_timeout(90_000)  # two shared cores: Label Studio's pages can take a while
    return context


def _log_in(page: Any, url: str, login: str, password: str) -> None:
    """Through Label Studio's own login form, as the annotator types it."""
    page.goto(f"{url}/user/login/")
    page.locator("input#email").fill(login)
    page.locator("input#password").fill(password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda u: "/user/login" not in u)


def _annotator_project(page: Any, url: str, study: Study, annotator: str) -> str:
    """The title of the annotator's label project as they find it in their projects list (the server is this
    study's alone): the one named for them, else the one named for their group. Opens it."""
    page.goto(f"{url}/projects/")
    cards = page.locator(".lsf-project-card__title-text")
    cards.first.wait_for()
    titles = [t.strip() for t in cards.all_inner_texts()]
    label = [t for t in titles if "label" in (part.strip() for part in t.split("·"))]
    mine = [t for t in label if re.search(rf"\b{re.escape(annotator)}\b", t)] or [
        t for t in label if re.search(rf"\bgroup {re.escape(study.groups[annotator])}\b", t)
    ]
    assert len(mine) == 1, f"{annotator} should find one label project of theirs among {titles}"
    page.locator(".lsf-project-card", has_text=mine[0]).first.click()
    return mine[0]


def _open_queue(page: Any) -> tuple[dict[str, Any], str, float]:
    """Click "Label All Tasks"; returns the task Label Studio served, the text of the instructions it shows with
    the first task, and the seconds until the clip can play."""
    button = page.get_by_role("button", name="Label All Tasks")
    button.wait_for()
    t0 = time.monotonic()
    # The queue asks for its next task through the data manager's "next_task" action.
    with page.expect_response(lambda r: "/api/dm/actions?id=next_task" in r.url) as served:
        button.click()
    task = served.value.json()
    modal = page.locator(".lsf-modal-ls_visible", has_text="Labeling Instructions")
    guide = modal.inner_text()  # waits for it: the instructions open with the first task
    page.keyboard.press("Escape")  # and stay one click away ("Instructions" in the top bar)
    modal.wait_for(state="hidden")
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 2; }")
    page.get_by_test_id("playback-button:play").wait_for()  # the player's controls come after the media
    return task, guide, time.monotonic() - t0


def _video_state(page: Any) -> dict[str, Any]:
    # Label Studio draws the frames on a canvas from a <video> element it keeps off-screen: that element is
    # what plays, so its state is what the annotator sees and hears.
    return page.evaluate(
        """() => { const v = document.querySelector('video');
        return {readyState: v.readyState, duration: v.duration, currentTime: v.currentTime, paused: v.paused,
                muted: v.muted, volume: v.volume, width: v.videoWidth, height: v.videoHeight, src: v.currentSrc,
                audioBytes: v.webkitAudioDecodedByteCount,
                audioTracks: v.audioTracks ? v.audioTracks.length : null}; }"""
    )


def _check_playback(page: Any, study: Study, task: dict[str, Any]) -> dict[str, Any]:
    """The clip is the task's media, as long as the manifest says, portrait, and plays with sound."""
    before = _video_state(page)
    video_id = task["data"]["video_id"]
    assert before["src"].endswith(task["data"]["video"].split("?d=", 1)[1]), before["src"]
    assert abs(before["duration"] - study.durations[video_id]) <= DURATION_TOLERANCE_S, (before, video_id)
    assert before["height"] > before["width"], "a portrait clip, shown upright"
    assert not before["muted"] and before["volume"] > 0, "sound on"
    page.get_by_test_id("playback-button:play").click()
    page.wait_for_function("() => document.querySelector('video').currentTime > 0.5")
    after = _video_state(page)
    assert after["currentTime"] > before["currentTime"] and not after["paused"]
    assert after["audioBytes"] > 0 and after["audioTracks"] in (None, 1), "the audio track is decoded"
    return after


def _check_fold(page: Any) -> dict[str, dict[str, float]]:
    """Every answer and the play button lie inside the 1366x768 viewport without scrolling, above the bottom bar
    (Submit, Skip), and are the element on top at their centre (not covered)."""
    boxes: dict[str, dict[str, float]] = page.evaluate(
        """() => { const out = {};
        const bar = document.querySelector('.lsf-bottombar');
        const floor = bar ? bar.getBoundingClientRect().top : window.innerHeight;
        const add = (name, el) => { const r = el.getBoundingClientRect();
            const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            out[name] = {x: r.x, y: r.y, right: r.right, bottom: r.bottom, floor: floor,
                         onTop: !!top && (el === top || el.contains(top) || top.contains(el))}; };
        document.querySelectorAll('label:has(input[type=radio]), label:has(input[type=checkbox])')
            .forEach(l => add(l.querySelector('input').name, l));
        add('comment', document.querySelector('textarea'));
        add('play', document.querySelector('[data-testid^="playback-button:"]'));
        out._scroll = {x: window.scrollX, y: window.scrollY};
        return out; }"""
    )
    assert boxes.pop("_scroll") == {"x": 0, "y": 0}
    assert set(EMOTIONS6.classes) | {"unsure", "comment", "play"} <= set(boxes), sorted(boxes)
    for name, box in boxes.items():
        inside = box["x"] >= 0 and box["y"] >= 0 and box["right"] <= VIEWPORT["width"]
        assert inside and box["bottom"] <= min(box["floor"], VIEWPORT["height"]), f"{name} below the fold: {box}"
        assert box["onTop"], f"{name} is covered: {box}"
    return boxes


def _submitted(page: Any, click: Any) -> tuple[dict[str, Any], float]:
    """Submit (by `click()`), wait until Label Studio has stored the annotation; its JSON and the seconds it took."""
    t0 = time.monotonic()
    with page.expect_response(
        lambda r: r.request.method == "POST" and re.search(r"/api/tasks/\d+/annotations", r.url) is not None
    ) as stored:
        click()
    response = stored.value
    assert response.status == 201, response.status
    return response.json(), time.monotonic() - t0


def _votes(study: Study) -> pd.DataFrame:
    """The votes that count after a pull (the table also keeps deleted ones, marked)."""
    votes = pd.read_parquet(study.layout.votes) if study.layout.votes.exists() else pd.DataFrame()
    return votes[votes["status"] == VoteStatus.KEPT]


def test_annotators_vote_independently_in_a_real_browser(study, tmp_path):
    from playwright.sync_api import sync_playwright

    url = study.client.config.url
    # `make docs-screenshots` points this at docs/images: the annotator's guide shows this real screen
    shots = Path(os.environ.get("EMOTIONS_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    comment = "flash at 0:01 (browser test)"
    timings = Timings()
    browsers_t0 = time.monotonic()
    with sync_playwright() as playwright:
        # -- the first annotator: mouse only, a comment typed but not "Added" (it must be kept anyway)
        context = _open_browser(playwright, tmp_path / "profile-1")
        page = context.pages[0] if context.pages else context.new_page()
        t0 = time.monotonic()
        login, password = study.passwords["BR1"]
        _log_in(page, url, login, password)
        project = _annotator_project(page, url, study, "BR1")
        timings.login = time.monotonic() - t0
        task, guide, timings.video_ready = _open_queue(page)
        for label, definition in EMOTIONS6.definitions.items():  # what the annotator reads: one line per class
            assert f"{class_keys(EMOTIONS6)[label]} {label} ({EMOTIONS6.polarity[label]}): {definition}" in guide
        assert "ctrl+enter submit" in guide and "ctrl+alt+space play/pause" in guide, guide
        page.screenshot(path=shots / "BR1-labelling.png")
        boxes = _check_fold(page)
        playing = _check_playback(page, study, task)
        page.locator("label:has(input[type=radio][name='Fear'])").click()
        page.locator("label:has(input[type=checkbox][name='unsure'])").click()
        page.get_by_placeholder("Comment (optional)").fill(comment)
        page.screenshot(path=shots / "BR1-answered.png")
        first, timings.submit = _submitted(
            page, lambda: page.get_by_role("button", name="Submit current annotation").click()
        )
        timings.total = time.monotonic() - t0
        context.close()
        assert parse_annotation(first["result"]) == ("Fear", True, comment), "the browser stored all three answers"

        pulled = pull(study.layout, study.client, EMOTIONS6)
        votes = _votes(study)
        assert len(votes) == 1, (pulled, votes)
        vote = votes.iloc[0]
        expected = {"video_id": task["data"]["video_id"], "annotator_id": "BR1", "stage": "label", "label": "Fear"}
        assert {k: vote[k] for k in expected} == expected and bool(vote["unsure"])
        assert vote["comment"] == comment, "the comment is part of the vote"
        assert pulled.excluded == [], "nothing the annotator did on their own path is excluded"

        # -- the second annotator, on their own path: the same clip, nothing of the first vote; keys only
        context = _open_browser(playwright, tmp_path / "profile-2")
        page = context.pages[0] if context.pages else context.new_page()
        login, password = study.passwords["BR2"]
        _log_in(page, url, login, password)
        _annotator_project(page, url, study, "BR2")
        second_task, _, _ = _open_queue(page)
        assert second_task["data"]["video_id"] == task["data"]["video_id"], "the same clip, to compare like with like"
        page.screenshot(path=shots / "BR2-labelling.png")
        seen = page.evaluate(
            """() => ({checked: [...document.querySelectorAll('input')].filter(i => i.checked).map(i => i.name),
                       comment: document.querySelector('textarea').value,
                       tabs: document.querySelectorAll('.lsf-annotation-button, .lsf-annotations-carousel').length,
                       text: document.body.innerText})"""
        )
        assert seen["checked"] == [] and seen["comment"] == "", "nothing pre-selected"
        assert seen["tabs"] == 0, "no tabs with other annotators' annotations"
        assert "BR1" not in seen["text"] and comment not in seen["text"], "nothing of the first vote shows"
        _check_fold(page)
        page.locator(".lsf-choices").first.hover()  # keys act when the comment box does not have the focus
        # Every key the instructions list: play/pause, a class, unsure, submit.
        page.keyboard.press("Control+Alt+Space")
        page.wait_for_function("() => document.querySelector('video').currentTime > 0.3")
        page.keyboard.press(class_keys(EMOTIONS6)["Tension"])
        page.keyboard.press(UNSURE_KEY)
        page.wait_for_function(
            "() => document.querySelector('input[type=radio][name=\"Tension\"]').checked"
            " && document.querySelector('input[type=checkbox][name=\"unsure\"]').checked"
        )
        second, _ = _submitted(page, lambda: page.keyboard.press("Control+Enter"))
        context.close()
        assert parse_annotation(second["result"]) == ("Tension", True, None)
    browsers_s = time.monotonic() - browsers_t0

    assert pull(study.layout, study.client, EMOTIONS6).excluded == []
    votes = _votes(study).set_index("annotator_id")
    assert sorted(votes.index) == ["BR1", "BR2"] and votes.loc["BR2", "label"] == "Tension"
    assert votes.loc["BR1", "label"] == "Fear", "the first vote is unchanged by the second"

    report = {
        "timings_s": {k: round(v, 2) for k, v in vars(timings).items()},
        "both_browser_sessions_s": round(browsers_s, 2),
        "setup_s": {k: round(v, 2) for k, v in study.setup_s.items()},
        "project": project,
        "video": {k: playing[k] for k in ("duration", "width", "height", "audioBytes")},
        "fold": boxes,
    }
    (tmp_path / "browser-timings.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nbrowser test timings (s): {report['timings_s']}, both browser sessions {report['both_browser_sessions_s']}"
    )
    print(f"setup (s): {report['setup_s']}; screenshots in {shots}")
