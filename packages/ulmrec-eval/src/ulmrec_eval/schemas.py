"""The boundary of ``ulmrec-eval``: it reads :class:`RankedPrediction` and writes :class:`MetricReport`.

Every model carries ``schema_version``; files are JSON / JSON lines (never pickle).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Version of the prediction and report schemas below; bump it on any incompatible change.
SCHEMA_VERSION = 1

ItemId = str | int
Scope = Literal["full", "subset", "overall"]


def _id_kinds(ids: list[ItemId]) -> set[type]:
    return {str if isinstance(x, str) else int for x in ids}


class RankedPrediction(BaseModel):
    """One user's prediction: a ranked list of item ids, or candidates with one score each (or both).

    When ``scores`` are given the target's rank is computed from them with ties resolved pessimistically
    (``rank = #{candidates scoring ≥ the target}``); otherwise it is the target's 1-based position in
    ``ranked``. A target absent from the list or the candidates is a miss. Unknown fields are ignored, so
    files written by other stages (the retriever's ``candidates.jsonl`` carries ``raw_user_id``) read as is.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this record's schema.")
    user_id: ItemId = Field(description="The user's id (raw or dense; only used to pair systems).")
    target: ItemId = Field(description="The held-out item the user actually interacted with next.")
    ranked: list[ItemId] | None = Field(default=None, description="Item ids, best first.")
    candidates: list[ItemId] | None = Field(default=None, description="Item ids that were scored.")
    scores: list[float] | None = Field(default=None,
                                       description="One score per candidate, higher is better; -inf: masked.")
    source: str | None = Field(default=None, description="The system that produced it, e.g. 'lrurec'.")
    history_length: int | None = Field(default=None, ge=0,
                                       description="Items in the user's history (for sparsity buckets).")
    split: str | None = Field(default=None,
                              description="Evaluation split, e.g. 'valid' or 'test'; a file holding several "
                                          "is read one split at a time.")
    retrieved_n: int | None = Field(default=None, ge=1,
                                    description="N of the retrieved top-N these candidates were taken from "
                                                "(a re-ranker's pool); the report then gives the subset and "
                                                "overall scopes without being told.")

    @model_validator(mode="after")
    def _check(self) -> RankedPrediction:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this ulmrec-eval "
                             f"understands ({SCHEMA_VERSION})")
        if (self.candidates is None) != (self.scores is None):
            raise ValueError("'candidates' and 'scores' go together: give both or neither")
        if self.ranked is None and self.scores is None:
            raise ValueError("a prediction needs 'ranked' (item ids, best first) or 'candidates' + 'scores'")
        if self.candidates is not None and self.scores is not None:
            if len(self.candidates) != len(self.scores):
                raise ValueError(f"{len(self.candidates)} candidates but {len(self.scores)} scores")
            for i, value in enumerate(self.scores):
                if math.isnan(value):
                    raise ValueError(f"score {i} (candidate {self.candidates[i]!r}) is NaN")
        for name in ("ranked", "candidates"):
            ids = getattr(self, name)
            if ids and len(set(ids)) != len(ids):
                seen: set[ItemId] = set()
                twice = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
                raise ValueError(f"'{name}' lists item {twice!r} more than once: a duplicate would count the "
                                 "same item twice in the ranking")
        target_kind = _id_kinds([self.target])
        for name in ("ranked", "candidates"):
            ids = getattr(self, name)
            if ids and not _id_kinds(ids) <= target_kind:
                raise ValueError(f"target {self.target!r} is a {next(iter(target_kind)).__name__} but "
                                 f"'{name}' holds other id types: write ids consistently (all ints or all "
                                 "strings) so that the target can be found")
        return self

    @property
    def uses_scores(self) -> bool:
        """Whether the rank comes from ``candidates`` + ``scores`` (rather than ``ranked``)."""
        return self.scores is not None


class BucketReport(BaseModel):
    """Metrics of the users whose history length lies in ``[min_length, max_length]``."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="Human-readable range, e.g. '5-9' or '50+'.")
    min_length: int = Field(description="Smallest history length in the bucket (inclusive).")
    max_length: int | None = Field(description="Largest history length (inclusive); None = unbounded.")
    n_users: int = Field(description="Users in the bucket.")
    metrics: dict[str, float] = Field(description="'recall@K', 'mrr@K', 'ndcg@K'; empty for an empty bucket.")


class MetricReport(BaseModel):
    """Metrics of one scope of an evaluation, labelled by ``scope``.

    * ``full`` — every user, as predicted (a target absent from its list counts as a miss).
    * ``subset`` — only users whose target is in the retrieved top-``retrieved_n`` (LlamaRec's figure).
    * ``overall`` — every user, those outside the subset counted as misses; only ``K ≤ retrieved_n``.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this report's schema.")
    scope: Scope = Field(description="'full', 'subset' (target retrieved) or 'overall' (others = misses).")
    metrics: dict[str, float] = Field(description="Means: 'recall@K' (= HitRate@K), 'mrr@K', 'ndcg@K'.")
    ks: list[int] = Field(description="The cut-offs K reported in 'metrics'.")
    n_users: int = Field(description="Users the metrics average over.")
    total_users: int = Field(description="Users in the predictions file.")
    subset_size: int | None = Field(default=None,
                                    description="Users whose target is in the retrieved top-N (None: no N).")
    retrieved_n: int | None = Field(default=None, description="N of the retrieval stage, when given.")
    omitted_ks: list[int] = Field(default_factory=list,
                                  description="Requested K left out of this scope (overall: K > N).")
    buckets: list[BucketReport] = Field(default_factory=list,
                                        description="Metrics by history length (users that carry one).")
    source: str | None = Field(default=None, description="The predictions' source, when all agree.")

    def value(self, key: str) -> float:
        """The metric ``key`` (``"ndcg@10"``; ``hit@K`` / ``hitrate@K`` mean ``recall@K``)."""
        from ulmrec_eval.metrics import metric_key, parse_metric_key

        name, k = parse_metric_key(key)
        full = metric_key(name, k)
        if full not in self.metrics:
            raise KeyError(f"{key!r} is not in this {self.scope} report (has {sorted(self.metrics)})")
        return self.metrics[full]


class EvalResult(BaseModel):
    """All scopes of one evaluation: ``[full]``, or ``[subset, overall]`` when ``retrieved_n`` is given."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this result's schema.")
    predictions: str | None = Field(default=None, description="The predictions file, if read from one.")
    reports: list[MetricReport] = Field(description="One report per scope.")

    def scope(self, scope: Scope) -> MetricReport:
        """The report of ``scope``."""
        for report in self.reports:
            if report.scope == scope:
                return report
        raise KeyError(f"no {scope!r} report (have {[r.scope for r in self.reports]})")


class MetricComparison(BaseModel):
    """Paired comparison of systems A and B on one metric over the same users; ``difference = B − A``."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="Metric key, e.g. 'ndcg@10'.")
    n_users: int = Field(description="Users paired.")
    mean_a: float = Field(description="Metric of A.")
    mean_b: float = Field(description="Metric of B.")
    difference: float = Field(description="mean_b − mean_a.")
    relative: float | None = Field(description="difference / mean_a (None when mean_a = 0).")
    ci_low: float = Field(description="Lower end of the bootstrap percentile interval of the difference.")
    ci_high: float = Field(description="Upper end of the bootstrap percentile interval of the difference.")
    confidence: float = Field(description="Confidence level of the interval, e.g. 0.95.")
    p_value: float = Field(description="Two-sided p-value of the paired randomisation (sign-flip) test.")
    n_resamples: int = Field(description="Bootstrap resamples and randomisation permutations.")
    seed: int = Field(description="Seed of the random generator (results are reproducible).")
    wins: int = Field(description="Users for whom B is better.")
    losses: int = Field(description="Users for whom A is better.")
    ties: int = Field(description="Users with equal values.")


class ComparisonReport(BaseModel):
    """The paired comparison of two prediction files on one or more metrics."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this report's schema.")
    a: str = Field(description="System A (baseline): its file or name.")
    b: str = Field(description="System B: its file or name.")
    comparisons: list[MetricComparison] = Field(description="One entry per metric.")
