"""Emotion taxonomies. eMotions' six classes are the default; their index order is fixed (alphabetical)."""

from __future__ import annotations

import tomllib
import unicodedata
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

    def lookup(self, label: str) -> str | None:
        """The class `label` names, itself or by an alias ("Sad" -> "Sadness"), as written or after Unicode NFKC
        normalisation (fullwidth "Ｆｅａｒ" is "Fear"; Unicode Standard Annex #15); None when it names none."""
        for spelling in dict.fromkeys((label, unicodedata.normalize("NFKC", label))):
            name = self.aliases.get(spelling, spelling)
            if name in self.classes:
                return name
        return None

    def canonical(self, label: str) -> str:
        """The class `label` names (`lookup`); ValueError naming the label and the classes when it names none."""
        name = self.lookup(label)
        if name is None:
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

    Raises ValueError, one line naming the file and the key: unreadable or not TOML, no [taxonomy] table, `classes`
    not a non-empty list of distinct class names (a name is non-empty text without surrounding spaces, "/" or control
    characters: it becomes a folder and a list entry in releases), polarity entries for unknown classes or with
    values other than positive/neutral/negative, polarity missing a class, aliases naming unknown classes.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a taxonomy file ({exc})") from None
    table = document.get("taxonomy")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: not a taxonomy file (no [taxonomy] table)")
    raw = table.get("classes")
    if not isinstance(raw, list) or not raw:
        shown = "missing" if raw is None else f"{type(raw).__name__} {raw!r}"
        raise ValueError(f"{path}: taxonomy.classes must be a non-empty list of class names, not {shown}")
    for value in raw:
        problem = _class_name_problem(value)
        if problem:
            raise ValueError(f"{path}: taxonomy.classes: {value!r} {problem}")
    classes = tuple(raw)
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"{path}: taxonomy.classes lists {', '.join(map(repr, repeated))} more than once")
    polarity = _string_table(path, table, "polarity")
    aliases = _string_table(path, table, "aliases")
    unknown = sorted(set(polarity) - set(classes))
    if unknown:
        raise ValueError(f"{path}: taxonomy.polarity names class(es) not in taxonomy.classes: {', '.join(unknown)}")
    bad = sorted({v for v in polarity.values() if v not in POLARITIES})
    if bad:
        shown = ", ".join(map(repr, bad))
        raise ValueError(f"{path}: taxonomy.polarity: {shown} is not one of {', '.join(POLARITIES)}")
    if polarity and set(polarity) != set(classes):
        missing = ", ".join(c for c in classes if c not in polarity)
        raise ValueError(f"{path}: taxonomy.polarity must give every class when given; missing: {missing}")
    unknown = sorted({v for v in aliases.values() if v not in classes})
    if unknown:
        raise ValueError(f"{path}: taxonomy.aliases point to class(es) not in taxonomy.classes: {', '.join(unknown)}")
    shadowing = sorted(a for a, c in aliases.items() if a in classes and a != c)
    if shadowing:
        raise ValueError(f"{path}: taxonomy.aliases would rename the class(es) {', '.join(shadowing)} to another")
    name = table.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: taxonomy.name must be non-empty text, not {name!r}")
    return Taxonomy(name, classes, polarity, aliases)


def _class_name_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not text"
    if not value.strip():
        return "is empty"
    if value != value.strip():
        return "has surrounding spaces"
    if "/" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds '/' or a control character"
    return None


def _string_table(path: Path, table: dict, key: str) -> dict[str, str]:
    value = table.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{path}: taxonomy.{key} must be a table of names to text, not {value!r}")
    return dict(value)


def resolve_taxonomy(spec: str | Path | None) -> Taxonomy | None:
    """`None` -> no taxonomy; "emotions6" -> eMotions' six classes; anything else is a TOML path."""
    if spec is None:
        return None
    if str(spec).lower() in {"emotions6", "emotions", "emotions-6"}:
        return EMOTIONS6
    return load_taxonomy(Path(spec))
