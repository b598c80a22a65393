"""MkDocs hook: pages generated from the code at every build (the schema reference, the annotators' keys).

A page holding the marker ``<!-- schemas -->`` gets one section per table the module defines (its ``#:`` comment,
then a row per column with the type pyarrow reports and the column's own comment), so the reference cannot drift
from the code that writes the files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

MARKER = "<!-- schemas -->"
CLASSES_MARKER = "<!-- annotator-classes -->"
_FIELD = re.compile(r'pa\.field\(\s*"(?P<name>[^"]+)".*?#\s*(?P<comment>.+)$')
_ASSIGN = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*pa\.schema\(")


def _doc_comments(lines: list[str]) -> dict[str, str]:
    """Schema name -> the ``#:`` comment block right above its assignment."""
    docs: dict[str, str] = {}
    block: list[str] = []
    for line in lines:
        if line.startswith("#:"):
            block.append(line[2:].strip())
            continue
        match = _ASSIGN.match(line)
        if match:
            docs[match["name"]] = " ".join(block)
        if line.strip():
            block = []
    return docs


def _field_comments(lines: list[str]) -> dict[str, str]:
    """Column name -> the comment on the line that defines it (the first definition wins)."""
    comments: dict[str, str] = {}
    for line in lines:
        match = _FIELD.search(line)
        if match:
            comments.setdefault(match["name"], match["comment"].strip())
    return comments


def render_schemas() -> str:
    """Markdown for every public ``pa.Schema`` of `emotions_data.schema`, in the module's order."""
    from emotions_data import schema

    lines = Path(schema.__file__).read_text(encoding="utf-8").splitlines()
    docs, comments = _doc_comments(lines), _field_comments(lines)
    out = [f"Schema version of the manifests written today: `{schema.SCHEMA_VERSION}`.", ""]
    for name, doc in docs.items():
        table = getattr(schema, name, None)
        if not isinstance(table, pa.Schema) or name.startswith("_"):
            continue
        out += [f"## `{name}`", "", doc or "(no description)", "", "| column | type | null allowed | notes |"]
        out += ["| --- | --- | --- | --- |"]
        for field in table:
            note = comments.get(field.name, "").replace("|", "\\|")
            out.append(f"| `{field.name}` | `{field.type}` | {'yes' if field.nullable else 'no'} | {note} |")
        out.append("")
    return "\n".join(out)


def render_classes() -> str:
    """Markdown table of the default taxonomy's classes with the keys, polarity and definition the annotators'
    screen shows (the same functions build Label Studio's labelling interface), then the other keys."""
    from annotation.labelstudio import interface
    from emotions_data.taxonomy import EMOTIONS6

    keys = interface.class_keys(EMOTIONS6)
    out = ["| key | class | polarity | what it means |", "| --- | --- | --- | --- |"]
    for name in EMOTIONS6.classes:
        out.append(
            f"| `{keys.get(name, '')}` | **{name}** | {EMOTIONS6.polarity.get(name, '')} "
            f"| {EMOTIONS6.definitions.get(name, '')} |"
        )
    out += [
        "",
        "| key | what it does |",
        "| --- | --- |",
        f"| `{interface.UNSURE_KEY}` | flag the clip as *unsure* (you still choose the closest class) |",
        f"| `{interface.PLAY_KEYS}` | play or pause the clip |",
        f"| `{interface.SUBMIT_KEYS}` | submit your answer |",
        f"| `{interface.SKIP_KEYS}` | skip the clip (your lead sees skipped clips) |",
    ]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the markers with the generated tables."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render_schemas())
    if CLASSES_MARKER in markdown:
        markdown = markdown.replace(CLASSES_MARKER, render_classes())
    return markdown
