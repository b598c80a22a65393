"""Evaluation metrics of the baseline (pure numpy): WAR (accuracy), UAR, weighted F1, per-class and
polarity accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np

#: What each recall average means; stored with the metrics, so a reader of `metrics.json` knows which UAR it holds.
UAR_DEFINITIONS = {
    "uar": "mean recall over every class of the taxonomy; a class absent from the split counts 0 "
    "(as the authors' AV-CANet evaluation)",
    "uar_present": "mean recall over the classes present in the split (scikit-learn's balanced accuracy)",
}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], class_polarity: np.ndarray | None = None
) -> dict[str, object]:
    """All the headline metrics of (n,) true and predicted class ids over `classes`.

    Two unweighted average recalls (`UAR_DEFINITIONS`): `uar` over all `len(classes)` classes, an absent class
    counting 0 (the authors' `main_final_delay.py` / `infer_emotions_val.py`), and `uar_present` over the classes
    present in `y_true` (NaN when `y_true` is empty). They agree whenever every class is present. Classes absent
    from `y_true` get no per-class accuracy."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    correct = np.diag(cm)
    present = support > 0
    recall = np.divide(correct, support, out=np.zeros(len(classes)), where=present)
    precision = np.divide(correct, predicted, out=np.zeros(len(classes)), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(classes)), where=denom > 0)
    result: dict[str, object] = {
        "accuracy": float(correct.sum() / max(len(y_true), 1)),  # WAR
        "uar": float(recall.mean()) if present.any() else float("nan"),
        "uar_present": float(recall[present].mean()) if present.any() else float("nan"),
        "weighted_f1": float((f1 * support).sum() / max(support.sum(), 1)),
        "per_class_accuracy": {c: float(recall[i]) for i, c in enumerate(classes) if present[i]},
        "confusion_matrix": cm.tolist(),
        "n": len(y_true),
        "definitions": dict(UAR_DEFINITIONS),
    }
    if class_polarity is not None:
        result["polarity_accuracy"] = float(np.mean(class_polarity[y_true] == class_polarity[y_pred]))
    return result
