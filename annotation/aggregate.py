"""Label aggregation over a long vote table, crowd-kit style: estimators with `fit` / `predict`.

`MajorityVote` never breaks a tie: a tied item gets no label and is reported, so it can go to the
expert stage. `DawidSkene` (Dawid & Skene 1979) learns one confusion matrix per annotator and a
class prior by EM, starting from the vote shares; it decides every item, with a posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotation.agreement import EncodedVotes, encode
from annotation.plurality import TIE, unique_plurality


@dataclass(frozen=True)
class Aggregate:
    """Per item: the decided label (None for an unresolved tie), its confidence and vote count."""

    video_id: list[str]
    label: list[str | None]
    confidence: np.ndarray  # vote share of the label (majority) or its posterior (Dawid-Skene)
    n_votes: np.ndarray
    posteriors: np.ndarray | None = None  # (items, labels) for model-based estimators
    labels: tuple[str, ...] = ()


class MajorityVote:
    """Each item's unique plurality label (`annotation.plurality`); a tie leaves the item without a label."""

    def fit(self, votes: pd.DataFrame, labels: list[str] | None = None) -> MajorityVote:
        """Count the votes of a long table (`video_id`, `annotator_id`, `label`) into `result_`. `labels` fixes the
        label order (else the sorted distinct labels); ValueError for a missing column or a label outside it."""
        enc = encode(votes, labels)
        counts = enc.counts
        top = counts.max(axis=1)
        n = counts.sum(axis=1)
        self.result_ = Aggregate(
            video_id=enc.items,
            label=[None if c == TIE else enc.labels[int(c)] for c in unique_plurality(counts)],
            confidence=np.where(n > 0, top / np.maximum(n, 1), np.nan),
            n_votes=n,
            labels=tuple(enc.labels),
        )
        return self

    def fit_predict(self, votes: pd.DataFrame, labels: list[str] | None = None) -> Aggregate:
        """`fit`, then the per-item result; confidence is the label's vote share (NaN for an item without votes)."""
        return self.fit(votes, labels).result_


class DawidSkene:
    """Dawid-Skene EM: per-annotator confusion matrices (`confusion_`, annotators x true x given, rows in
    `annotators_` order) and a class prior (`prior_`); every item gets its most probable label."""

    def __init__(self, n_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing  # pseudo-count on every confusion cell, so no probability is 0

    def _m_step(self, enc: EncodedVotes, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_ann, n_lab = len(enc.annotators), len(enc.labels)
        prior = post.mean(axis=0)
        confusion = np.full((n_ann, n_lab, n_lab), self.smoothing)  # [annotator, true, given]
        cell = enc.annotator * n_lab + enc.label
        for c in range(n_lab):
            confusion[:, c, :] += np.bincount(cell, weights=post[enc.item, c], minlength=n_ann * n_lab).reshape(
                n_ann, n_lab
            )
        confusion /= confusion.sum(axis=2, keepdims=True)
        return prior, confusion

    def _e_step(self, enc: EncodedVotes, prior: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, float]:
        n_items, n_lab = len(enc.items), len(enc.labels)
        log_post = np.tile(np.log(np.maximum(prior, 1e-300)), (n_items, 1))
        log_conf = np.log(confusion)
        for c in range(n_lab):
            log_post[:, c] += np.bincount(enc.item, weights=log_conf[enc.annotator, c, enc.label], minlength=n_items)
        norm = np.logaddexp.reduce(log_post, axis=1)
        return np.exp(log_post - norm[:, None]), float(norm.sum())

    def fit(self, votes: pd.DataFrame, labels: list[str] | None = None) -> DawidSkene:
        """Run EM from the vote shares until the log-likelihood changes by at most `tol` (relative) or `n_iter`
        iterations (`n_iter_` says how many ran). `votes` and `labels` as for `MajorityVote.fit`."""
        enc = encode(votes, labels)
        counts = enc.counts.astype(float)
        n = counts.sum(axis=1)
        post = counts / np.maximum(n, 1)[:, None]
        log_lik = -np.inf
        self.n_iter_ = 0
        while self.n_iter_ < self.n_iter:
            self.n_iter_ += 1
            prior, confusion = self._m_step(enc, post)
            post, new_log_lik = self._e_step(enc, prior, confusion)
            converged = abs(new_log_lik - log_lik) <= self.tol * max(1.0, abs(new_log_lik))
            log_lik = new_log_lik
            if converged:
                break
        self.prior_, self.confusion_ = prior, confusion
        self.annotators_ = enc.annotators  # row order of confusion_
        self.result_ = Aggregate(
            video_id=enc.items,
            label=[enc.labels[int(c)] for c in post.argmax(axis=1)],
            confidence=post.max(axis=1),
            n_votes=n.astype(np.int64),
            posteriors=post,
            labels=tuple(enc.labels),
        )
        return self

    def fit_predict(self, votes: pd.DataFrame, labels: list[str] | None = None) -> Aggregate:
        """`fit`, then the per-item result with its posterior as the confidence and `posteriors` (items, labels)."""
        return self.fit(votes, labels).result_
