"""Emotion taxonomies. eMotions' six classes are the default; their index order is fixed (alphabetical)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Taxonomy:
    name: str
    classes: tuple[str, ...]
    polarity: dict[str, str]  # class -> "positive" | "neutral" | "negative"
    aliases: dict[str, str]  # raw spelling -> class (e.g. "Sad" -> "Sadness")
    # class -> a one-line definition for the annotators' instructions; optional, so taxonomies without one still load
    definitions: dict[str, str] = field(default_factory=dict)

    def index(self, label: str) -> int:
        return self.classes.index(self.canonical(label))

    def canonical(self, label: str) -> str:
        name = self.aliases.get(label, label)
        if name not in self.classes:
            raise ValueError(f"label {label!r} is not in taxonomy {self.name} ({', '.join(self.classes)})")
        return name


EMOTIONS6 = Taxonomy(
    name="eMotions",
    classes=("Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"),
    polarity={
        "Excitation": "positive",
        "Relaxation": "positive",
        "Neutral": "neutral",
        "Fear": "negative",
        "Sadness": "negative",
        "Tension": "negative",
    },
    aliases={"Sad": "Sadness"},
    # The paper names the classes and their polarity but publishes no definitions (its full text was not available
    # to us): these are ours, written so that neighbouring classes (Excitation/Relaxation, Fear/Tension) separate.
    definitions={
        "Excitation": "positive and energetic: joy, thrill, enthusiasm, amusement, triumph",
        "Fear": "a threat or danger felt as present: fright, horror, panic, alarm",
        "Neutral": "no clear emotion conveyed: information, routine, everyday scenes",
        "Relaxation": "positive and calm: peace, comfort, warmth, contentment",
        "Sadness": "loss or sorrow: grief, loneliness, disappointment, pity",
        "Tension": "unease without a present danger: suspense, anxiety, anger, conflict, stress",
    },
)


POLARITIES = ("positive", "neutral", "negative")


def load_taxonomy(path: Path) -> Taxonomy:
    """A taxonomy from a TOML file::

    [taxonomy]
    name = "Ekman-6"
    classes = ["Anger", "Disgust", "Fear", "Joy", "Sadness", "Surprise"]
    [taxonomy.polarity]      # optional; every class when given
    Joy = "positive"
    [taxonomy.aliases]       # optional raw spellings
    Happy = "Joy"
    """
    try:
        table = tomllib.loads(Path(path).read_text())["taxonomy"]
        classes = tuple(str(c) for c in table["classes"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a taxonomy file ({exc})") from exc
    polarity = {str(k): str(v) for k, v in table.get("polarity", {}).items()}
    aliases = {str(k): str(v) for k, v in table.get("aliases", {}).items()}
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"{path}: classes must be a non-empty list of distinct names")
    bad = sorted({*polarity, *aliases.values()} - set(classes)) + sorted(set(polarity.values()) - set(POLARITIES))
    if bad or (polarity and set(polarity) != set(classes)):
        raise ValueError(f"{path}: polarity/aliases must name the classes and polarities {POLARITIES}: {bad}")
    return Taxonomy(str(table.get("name", Path(path).stem)), classes, polarity, aliases)


def resolve_taxonomy(spec: str | Path | None) -> Taxonomy | None:
    """`None` -> no taxonomy; "emotions6" -> eMotions' six classes; anything else is a TOML path."""
    if spec is None:
        return None
    if str(spec).lower() in {"emotions6", "emotions", "emotions-6"}:
        return EMOTIONS6
    return load_taxonomy(Path(spec))
