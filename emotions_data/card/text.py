"""How the card prints numbers, tables and settings, shared by the README, the Croissant file and the baseline
section (pure)."""

from __future__ import annotations

import math
from typing import Any

from emotions_data.card.metadata import CardMetadata


def fmt(value: Any, digits: int = 3) -> str:
    """A number as the card prints it ("n/a" for missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_ci(ci: list[float] | None, digits: int = 3) -> str:
    """A confidence interval as the card prints it, `[low, high]` ("n/a" for missing)."""
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else "n/a"


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table, one string per line."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def key_values(mapping: dict[str, Any]) -> str:
    """`k: v, k: v` ("n/a" for an empty mapping)."""
    return ", ".join(f"{k}: {v}" for k, v in mapping.items()) if mapping else "n/a"


def filter_settings(meta: CardMetadata) -> dict[str, Any]:
    """The ingest filter and duplicate settings of the release, as `filters.<name>` / `dedup.<name>` -> value."""
    settings = meta.ingest.get("settings") or {}
    return {
        **{f"filters.{k}": v for k, v in (settings.get("filters") or {}).items()},
        **{f"dedup.{k}": v for k, v in (settings.get("dedup") or {}).items()},
    }


def listed_statistics(agreement: dict[str, Any]) -> list[dict[str, Any]]:
    """The agreement statistics of an agreement report (`manifests/agreement.json`) as the list the report writes:
    one dict per statistic with `key`, `name`, `value`, `ci`, `reason`, `detail` and `digits`. A report written
    before the list existed names its three statistics by fixed keys; they are read into the same form."""
    if isinstance(agreement.get("statistics"), list):
        return agreement["statistics"]
    undefined = agreement.get("undefined") or {}
    return [
        {"key": "krippendorff_alpha", "name": "Krippendorff's alpha (nominal)",
         "value": agreement.get("krippendorff_alpha"), "ci": agreement.get("alpha_ci"),
         "reason": undefined.get("krippendorff_alpha")},
        {"key": "fleiss_kappa", "name": "Fleiss' kappa", "value": agreement.get("fleiss_kappa"),
         "ci": agreement.get("fleiss_kappa_ci"), "reason": agreement.get("fleiss_kappa_absent_reason")},
        {"key": "cohen_kappa_mean", "name": "Mean pairwise Cohen's kappa", "value": agreement.get("cohen_kappa_mean"),
         "ci": None, "reason": undefined.get("cohen_kappa_mean"),
         "detail": f"over {agreement.get('cohen_kappa_pairs')} pairs"},
    ]  # fmt: skip


def statistic_sentence(statistic: dict[str, Any], confidence: float) -> str:
    """One listed statistic as a sentence: name, value, interval, detail and, when it is missing or partial, why."""
    digits = int(statistic.get("digits") or 3)
    reason = f" ({statistic['reason']})" if statistic.get("reason") else ""
    if statistic.get("value") is None:
        return f"{statistic['name']}: n/a{reason}."
    text = f"{statistic['name']}: {fmt(float(statistic['value']), digits)}"
    if statistic.get("ci"):
        text += f", {round(100 * confidence)}% CI {fmt_ci(statistic['ci'], digits)}"
    if statistic.get("detail"):
        text += f" {statistic['detail']}"
    return f"{text}{reason}."


def agreement_summary(meta: CardMetadata) -> list[str]:
    """One sentence per listed statistic, then how the intervals were drawn and per-class alpha (also used for
    `rai:dataAnnotationAnalysis`)."""
    a = meta.agreement
    if not a:
        return ["No vote table was given, so agreement was not computed."]
    confidence = float(a.get("confidence") or 0.95)
    out = [statistic_sentence(s, confidence) for s in listed_statistics(a)]
    out.append(
        f"Intervals are {round(100 * confidence)}% percentile bootstrap intervals ({a.get('n_bootstrap')} resamples "
        "over items)."
    )
    per_class = a.get("per_class") or {}
    out.append(
        "Per-class alpha (one class against the rest): "
        + "; ".join(f"{c} {fmt(v.get('alpha'))} {fmt_ci(v.get('alpha_ci'))}" for c, v in per_class.items())
        + "."
    )
    return out
