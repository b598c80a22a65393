"""The card's "Baseline validation" section (pure): written into the README of the new release version that
`emotions release record-baseline` makes (`emotions_data.release_baseline`), between markers."""

from __future__ import annotations

from typing import Any

from emotions_data.card.text import fmt, markdown_table

BASELINE_BEGIN = "<!-- baseline-validation: written by `emotions release record-baseline` -->"
BASELINE_END = "<!-- /baseline-validation -->"


def render_baseline_section(results: dict[str, dict[str, Any]]) -> str:
    """The card's "Baseline validation" section, Markdown between `BASELINE_BEGIN` and `BASELINE_END` ending in a
    newline, from `results`: variant -> its parsed `baseline/<variant>/metrics.json` (accuracies as fractions)."""
    lines = [BASELINE_BEGIN, "## Baseline validation", ""]
    lines += [
        "The release was checked by training the bundled AV-CANet baseline (AV-CPNet in the paper's first version) "
        "on each variant's train split, choosing the checkpoint on val, and evaluating it once on test "
        "(centre sampling). Files: `baseline/<variant>/metrics.json`, `confusion.csv`, `confusion.png`. "
        "UAR is the mean recall over every class of the taxonomy, a class absent from the test split counting 0 "
        "(as the authors' evaluation); `uar_present` in `metrics.json` averages over the classes present.",
        "",
    ]
    header = ["variant", "config", "epoch", "val acc", "test acc (WAR)", "UAR", "weighted F1", "polarity acc",
              "audio head", "visual head", "n"]  # fmt: skip
    rows = []
    for variant, m in results.items():
        run = m.get("run", {})
        epoch = f"{run.get('epoch')}/{run.get('epochs')}"
        rows.append([variant, run.get("config"), epoch, fmt(run.get("val_accuracy")), fmt(m.get("accuracy")),
                     fmt(m.get("uar")), fmt(m.get("weighted_f1")),
                     fmt(m.get("polarity_accuracy")), fmt(m.get("audio_accuracy")), fmt(m.get("visual_accuracy")),
                     m.get("n")])  # fmt: skip
    lines += markdown_table(header, rows)
    lines += ["", *(initialisation_line(variant, m.get("run", {})) for variant, m in results.items())]
    for variant, m in results.items():
        per_class = m.get("per_class_accuracy") or {}
        if per_class:
            accuracies = ", ".join(f"{c} {fmt(v)}" for c, v in per_class.items())
            lines += ["", f"Per-class test accuracy ({variant}): {accuracies}", "",
                      f"![confusion matrix, {variant}](baseline/{variant}/confusion.png)"]  # fmt: skip
    lines += ["", "Reproduce: `emotions train RELEASE --variant V --config C` then "
              "`emotions evaluate RUN/best.pt RELEASE --split test`, recorded by "
              "`emotions release record-baseline RELEASE RUN/eval-V-test`.", BASELINE_END]  # fmt: skip
    return "\n".join(lines) + "\n"


def initialisation_line(variant: str, run: dict[str, Any]) -> str:
    """How the run of `variant` was initialised, from what its checkpoint recorded (`run["pretrained"]`: one entry
    per weights file with its name, SHA-256 and tensors loaded and skipped); older runs recorded nothing."""
    model = f"model `{run['model']}`, " if run.get("model") else ""
    pretrained = run.get("pretrained")
    if pretrained is None:
        return f"Initialisation ({variant}): {model}not recorded by this run."
    if not pretrained:
        return f"Initialisation ({variant}): {model}random weights (no pretrained backbone)."
    files = "; ".join(f"{p['part']} backbone from `{p['file']}` (SHA-256 `{p['sha256']}`, {p['loaded']} "
                      f"tensors loaded, {p['skipped']} skipped)" for p in pretrained)  # fmt: skip
    return f"Initialisation ({variant}): {model}{files}."


def with_baseline_section(readme: str, section: str) -> str:
    """`readme` with its baseline section replaced, or inserted before the licence section (or at the end)."""
    if BASELINE_BEGIN in readme and BASELINE_END in readme:
        head, _, rest = readme.partition(BASELINE_BEGIN)
        _, _, tail = rest.partition(BASELINE_END)
        return head + section.rstrip("\n") + tail
    anchor = "## Distribution and licence"
    if anchor in readme:
        head, _, tail = readme.partition(anchor)
        return head + section + "\n" + anchor + tail
    return readme.rstrip("\n") + "\n\n" + section
