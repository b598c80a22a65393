"""Emotion taxonomies. eMotions' six classes are the default; their index order is fixed (alphabetical)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Taxonomy:
    name: str
    classes: tuple[str, ...]
    polarity: dict[str, str]  # class -> "positive" | "neutral" | "negative"
    aliases: dict[str, str]  # raw spelling -> class (e.g. "Sad" -> "Sadness")

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
)
