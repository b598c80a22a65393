"""Label aggregation over a long vote table, crowd-kit style: every aggregator is an `Aggregator` (`fit(votes)`
returns the aggregator, `fit_predict(votes)` a label per item, `fit_predict_proba(votes)` a probability per item and
label) registered under the name `emotions labels --method` takes.

`MajorityVote` never breaks a tie: a tied item gets no label and is reported, so it can go to the
expert stage. `DawidSkene` (Dawid & Skene 1979) learns one confusion matrix per annotator and a
class prior by EM, starting from the vote shares; it decides every item, with a posterior.

The vote table's roles are crowd-kit's: `video_id` is the task, `annotator_id` the worker, `label` the label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pandas as pd

from annotation.plurality import TIE, unique_plurality
from annotation.votes import ITEM, LABEL, EncodedVotes, encode
from emotions_data.schema import DecidedBy


@dataclass(frozen=True)
class Aggregate:
    """Per item: the decided label (None for an unresolved tie), its confidence and vote count."""

    video_id: list[str]
    label: list[str | None]
    confidence: np.ndarray  # vote share of the label (majority) or its posterior (Dawid-Skene)
    n_votes: np.ndarray
    posteriors: np.ndarray | None = None  # (items, labels) for model-based estimators
    labels: tuple[str, ...] = ()


class Aggregator(ABC):
    """An aggregator of a long vote table (`video_id`, `annotator_id`, `label`). After `fit`: `result_` (an
    `Aggregate`), `labels_` (video_id -> label, None for an item left undecided) and `probas_` (video_id x label
    probabilities, rows summing to 1 for items with votes). `name` is its registry name, `decided_by` what the
    labels step records for the labels it decides."""

    name: ClassVar[str]
    decided_by: ClassVar[DecidedBy]

    @abstractmethod
    def fit(self, votes: pd.DataFrame, labels: list[str] | None = None) -> Self:
        """Aggregate `votes`; `labels` fixes the label order (else the sorted distinct labels). ValueError for a
        missing column or a label outside `labels`."""

    def _keep(self, result: Aggregate, probabilities: np.ndarray) -> None:
        """Record a fit: its `result_` and its (items, labels) probabilities."""
        self.result_ = result
        self._probabilities = probabilities

    @property
    def labels_(self) -> pd.Series:
        """The fit's video_id -> decided label (None for an item left undecided), in video_id order."""
        index = pd.Index(self.result_.video_id, name=ITEM)
        return pd.Series(self.result_.label, index=index, name=LABEL, dtype=object)

    @property
    def probas_(self) -> pd.DataFrame:
        """The fit's (items, labels) probabilities: index video_id, columns the labels."""
        index = pd.Index(self.result_.video_id, name=ITEM)
        return pd.DataFrame(self._probabilities, index=index, columns=pd.Index(self.result_.labels, name=LABEL))

    def fit_predict(self, votes: pd.DataFrame, labels: list[str] | None = None) -> pd.Series:
        """`fit`, then video_id -> decided label (None for an item left undecided), in video_id order."""
        return self.fit(votes, labels).labels_

    def fit_predict_proba(self, votes: pd.DataFrame, labels: list[str] | None = None) -> pd.DataFrame:
        """`fit`, then a (items, labels) frame of probabilities, index video_id, columns the labels."""
        return self.fit(votes, labels).probas_


AGGREGATORS: dict[str, type[Aggregator]] = {}


def register_aggregator(cls: type[Aggregator]) -> type[Aggregator]:
    """Class decorator: make `cls` choosable by its `name` (ValueError when the name is taken)."""
    if AGGREGATORS.get(cls.name, cls) is not cls:
        raise ValueError(f"aggregator name {cls.name!r} is already registered ({AGGREGATORS[cls.name].__name__})")
    AGGREGATORS[cls.name] = cls
    return cls


def make_aggregator(name: str) -> Aggregator:
    """A new aggregator of the registered `name`; ValueError naming the choices for an unknown one."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown method {name!r} (choose: {', '.join(AGGREGATORS)})")
    return AGGREGATORS[name]()


@register_aggregator
class MajorityVote(Aggregator):
    """Each item's unique plurality label (`annotation.plurality`); a tie leaves the item without a label. Its
    probabilities are the vote shares."""

    name = "majority"
    decided_by = DecidedBy.MAJORITY

    def fit(self, votes: pd.DataFrame, labels: list[str] | None = None) -> MajorityVote:
        """Count the votes of a long table (`video_id`, `annotator_id`, `label`) into `result_`. `labels` fixes the
        label order (else the sorted distinct labels); ValueError for a missing column or a label outside it.
        Confidence is the label's vote share (NaN for an item without votes)."""
        enc = encode(votes, labels)
        counts = enc.counts
        top = counts.max(axis=1)
        n = counts.sum(axis=1)
        result = Aggregate(
            video_id=enc.items,
            label=[None if c == TIE else enc.labels[int(c)] for c in unique_plurality(counts)],
            confidence=np.where(n > 0, top / np.maximum(n, 1), np.nan),
            n_votes=n,
            labels=tuple(enc.labels),
        )
        self._keep(result, counts / np.maximum(n, 1)[:, None])
        return self


@register_aggregator
class DawidSkene(Aggregator):
    """Dawid-Skene EM: per-annotator confusion matrices (`confusion_`, annotators x true x given, rows in
    `annotators_` order) and a class prior (`prior_`); every item gets its most probable label, and the posteriors are
    its probabilities."""

    name = "dawid-skene"
    decided_by = DecidedBy.MODEL

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
        result = Aggregate(
            video_id=enc.items,
            label=[enc.labels[int(c)] for c in post.argmax(axis=1)],
            confidence=post.max(axis=1),
            n_votes=n.astype(np.int64),
            posteriors=post,
            labels=tuple(enc.labels),
        )
        self._keep(result, post)
        return self
