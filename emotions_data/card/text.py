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


def fmt_ci(ci: list[float] | None) -> str:
    """A confidence interval as the card prints it, `[low, high]` ("n/a" for missing)."""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "n/a"


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


def agreement_summary(meta: CardMetadata) -> list[str]:
    """One sentence per statistic (also used for `rai:dataAnnotationAnalysis`)."""
    a = meta.agreement
    if not a:
        return ["No vote table was given, so agreement was not computed."]
    conf = round(100 * float(a.get("confidence") or 0.95))
    out = [
        f"Krippendorff's alpha (nominal): {fmt(a.get('krippendorff_alpha'))}, {conf}% bootstrap CI "
        f"{fmt_ci(a.get('alpha_ci'))} ({a.get('n_bootstrap')} resamples over items).",
    ]
    if a.get("fleiss_kappa") is not None:
        out.append(f"Fleiss' kappa: {fmt(a['fleiss_kappa'])}, {conf}% CI {fmt_ci(a.get('fleiss_kappa_ci'))}.")
    else:
        out.append(f"Fleiss' kappa: n/a ({a.get('fleiss_kappa_absent_reason')}).")
    out.append(
        f"Mean pairwise Cohen's kappa: {fmt(a.get('cohen_kappa_mean'))} over {a.get('cohen_kappa_pairs')} pairs."
    )
    per_class = a.get("per_class") or {}
    out.append(
        "Per-class alpha (one class against the rest): "
        + "; ".join(f"{c} {fmt(v.get('alpha'))} {fmt_ci(v.get('alpha_ci'))}" for c, v in per_class.items())
        + "."
    )
    return out
