"""The labelling interface the annotators see in Label Studio, and the answers it produces.

One video with its sound, one required emotion choice (the taxonomy's classes, polarity and definition as a hint),
an "unsure" flag and an optional comment; the expert's interface also shows the earlier votes. An annotation's
`result` list is Label Studio's JSON for the regions of that interface.

The layout fits a 1366x768 laptop screen with a portrait clip: the video's height is capped and the answers sit
beside it, so the play button, the choices, the flag and the comment box are all visible without scrolling (the
browser test measures this). Every answer has a key, listed in the instructions.
"""

from __future__ import annotations

from html import escape
from typing import Any

from emotions_data.taxonomy import Taxonomy

EMOTION = "emotion"  # the Choices control holding the label
UNSURE = "unsure"
COMMENT = "comment"

# Label Studio draws the video on a canvas of this height (its default, 600 px, pushes a portrait clip's controls
# and everything under it below a 768 px screen); the timeline and the play button come under it.
VIDEO_HEIGHT_PX = 360
UNSURE_KEY = "0"  # beside the class keys 1-9; Label Studio's own keys (u, ctrl+..., alt+...) stay free
PLAY_KEYS = "ctrl+alt+space"  # Label Studio's media play/pause
SUBMIT_KEYS = "ctrl+enter"  # Label Studio's submit
SKIP_KEYS = "ctrl+space"


def class_keys(taxonomy: Taxonomy) -> dict[str, str]:
    """Class -> its key: the digits 1-9 in the taxonomy's order; classes after the ninth have none."""
    return {c: str(i) for i, c in enumerate(taxonomy.classes[:9], start=1)}


def _hint(taxonomy: Taxonomy, label: str) -> str:
    parts = [taxonomy.polarity.get(label, ""), taxonomy.definitions.get(label, "")]
    return " — ".join(p for p in parts if p)


def labeling_config(taxonomy: Taxonomy, show_previous_votes: bool = False) -> str:
    """The labelling interface: the video with its sound on the left (height capped), and on the right the earlier
    votes (expert only), one required choice with its key and hint, an "unsure" flag and a comment."""
    keys = class_keys(taxonomy)
    choices = "".join(
        f'<Choice value="{escape(c)}" hint="{escape(_hint(taxonomy, c))}"'
        + (f' hotkey="{keys[c]}"' if c in keys else "")
        + "/>"
        for c in taxonomy.classes
    )
    previous = '<Header value="Earlier votes" size="6"/><Text name="previous_votes" value="$previous_votes"/>'
    return (
        "<View>"
        '<Header value="Watch the whole clip with sound, then choose the emotion it conveys" size="5"/>'
        '<View style="display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start">'
        f'<View style="flex: 3 1 320px; min-width: 0"><Video name="video" value="$video" height="{VIDEO_HEIGHT_PX}"/>'
        "</View>"
        '<View style="flex: 2 1 240px">'
        f"{previous if show_previous_votes else ''}"
        f'<Choices name="{EMOTION}" toName="video" choice="single-radio" required="true">{choices}</Choices>'
        f'<Choices name="{UNSURE}" toName="video" choice="multiple">'
        f'<Choice value="unsure" hotkey="{UNSURE_KEY}"/></Choices>'
        f'<TextArea name="{COMMENT}" toName="video" placeholder="Comment (optional)" rows="2" maxSubmissions="1"'
        ' editable="true"/>'
        "</View></View></View>"
    )


def instructions(taxonomy: Taxonomy) -> str:
    """The annotators' instructions (HTML) for the project page: how to watch, what to choose, each class with its
    key, polarity and definition, and the keys for everything else."""
    keys = class_keys(taxonomy)
    rows = "".join(
        f"<li>{f'<kbd>{keys[c]}</kbd> ' if c in keys else ''}<b>{escape(c)}</b>"
        f"{f' ({escape(taxonomy.polarity[c])})' if c in taxonomy.polarity else ''}"
        f"{f': {escape(taxonomy.definitions[c])}' if c in taxonomy.definitions else ''}</li>"
        for c in taxonomy.classes
    )
    return (
        "<p>Watch each clip to the end <b>with sound</b>. Choose the one emotion the clip conveys to a viewer "
        "(not what a person in it feels). Tick <i>unsure</i> when two classes fit about equally; add a comment "
        "when something is wrong with the clip (it is saved with your answer: no need to press <i>Add</i>)."
        f"</p><ul>{rows}</ul>"
        f"<p>Keys: <kbd>{PLAY_KEYS}</kbd> play/pause, the digits above choose a class, <kbd>{UNSURE_KEY}</kbd> "
        f"unsure, <kbd>{SUBMIT_KEYS}</kbd> submit, <kbd>{SKIP_KEYS}</kbd> skip. Keys do nothing while the "
        "comment box has the focus: click outside it first.</p>"
    )


def annotation_result(label: str, unsure: bool = False, comment: str | None = None) -> list[dict[str, Any]]:
    """The `result` list of an annotation choosing `label` (ticking "unsure", writing `comment`), in the form the
    browser submits and `parse_annotation` reads."""
    result = [{"from_name": EMOTION, "to_name": "video", "type": "choices", "value": {"choices": [label]}}]
    if unsure:
        result.append({"from_name": UNSURE, "to_name": "video", "type": "choices", "value": {"choices": ["unsure"]}})
    if comment:
        result.append({"from_name": COMMENT, "to_name": "video", "type": "textarea", "value": {"text": [comment]}})
    return result


def parse_annotation(result: list[dict[str, Any]]) -> tuple[str | None, bool, str | None]:
    """(label, unsure, comment) from an annotation's result list; the comment's lines joined by newlines, None
    when there is none."""
    label, unsure, comment = None, False, None
    for region in result or []:
        value = region.get("value") or {}
        choices = value.get("choices") or []
        if region.get("from_name") == EMOTION and choices:
            label = str(choices[0])
        elif region.get("from_name") == UNSURE and choices:
            unsure = True
        elif region.get("from_name") == COMMENT:
            text = "\n".join(str(t) for t in (value.get("text") or []) if str(t).strip())
            comment = text or comment
    return label, unsure, comment


def parse_result(result: list[dict[str, Any]]) -> tuple[str | None, bool]:
    """(label, unsure) from an annotation's result list (`parse_annotation` without the comment)."""
    label, unsure, _ = parse_annotation(result)
    return label, unsure
