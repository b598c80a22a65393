"""The labelling interface the annotators see in Label Studio, and the answers it produces.

One video with its sound, one required emotion choice (the taxonomy's classes, polarity as a hint), an "unsure"
flag and an optional comment; the expert's interface also shows the earlier votes. An annotation's `result` list
is Label Studio's JSON for the regions of that interface.
"""

from __future__ import annotations

from html import escape
from typing import Any

from emotions_data.taxonomy import Taxonomy

EMOTION = "emotion"  # the Choices control holding the label
UNSURE = "unsure"
COMMENT = "comment"


def labeling_config(taxonomy: Taxonomy, show_previous_votes: bool = False) -> str:
    """The labelling interface: the video with its sound, one required choice (polarity as a hint),
    an "unsure" flag and a comment; the expert's interface also shows the earlier votes."""
    choices = "".join(
        f'<Choice value="{escape(c)}" hint="{escape(taxonomy.polarity.get(c, ""))}"/>' for c in taxonomy.classes
    )
    previous = '<Header value="Earlier votes"/><Text name="previous_votes" value="$previous_votes"/>'
    return (
        "<View>"
        '<Header value="Watch the whole clip with sound, then choose the emotion it conveys"/>'
        '<Video name="video" value="$video"/>'
        f"{previous if show_previous_votes else ''}"
        f'<Choices name="{EMOTION}" toName="video" choice="single-radio" required="true" showInline="true">'
        f"{choices}</Choices>"
        f'<Choices name="{UNSURE}" toName="video" choice="multiple"><Choice value="unsure"/></Choices>'
        f'<TextArea name="{COMMENT}" toName="video" placeholder="Comment (optional)" maxSubmissions="1"/>'
        "</View>"
    )


def instructions(taxonomy: Taxonomy) -> str:
    """The annotators' instructions (HTML) for the project page: how to watch, what to choose, each class."""
    rows = "".join(
        f"<li><b>{escape(c)}</b>{f' ({escape(taxonomy.polarity[c])})' if c in taxonomy.polarity else ''}</li>"
        for c in taxonomy.classes
    )
    return (
        "<p>Watch each clip to the end <b>with sound</b>. Choose the one emotion the clip conveys to a viewer "
        "(not what a person in it feels). Tick <i>unsure</i> when two classes fit about equally; add a comment "
        f"when something is wrong with the clip.</p><ul>{rows}</ul>"
    )


def annotation_result(label: str, unsure: bool = False) -> list[dict[str, Any]]:
    """The `result` list of an annotation choosing `label` (and ticking "unsure"), as `parse_result` reads it."""
    result = [{"from_name": EMOTION, "to_name": "video", "type": "choices", "value": {"choices": [label]}}]
    if unsure:
        result.append({"from_name": UNSURE, "to_name": "video", "type": "choices", "value": {"choices": ["unsure"]}})
    return result


def parse_result(result: list[dict[str, Any]]) -> tuple[str | None, bool]:
    """(label, unsure) from an annotation's result list."""
    label, unsure = None, False
    for region in result or []:
        choices = (region.get("value") or {}).get("choices") or []
        if region.get("from_name") == EMOTION and choices:
            label = str(choices[0])
        elif region.get("from_name") == UNSURE and choices:
            unsure = True
    return label, unsure
