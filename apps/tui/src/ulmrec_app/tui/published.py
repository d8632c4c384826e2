"""Published figures shown beside a run's own, in a separate, labelled column.

Each entry names its source; only figures that are printed in the cited paper belong here. The ULMRec paper's
own table (arXiv 2412.05543) is not transcribed yet: add its rows here, with the table they come from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    label: str          # column header
    source: str         # where the numbers are printed
    dataset: str        # matched (case-insensitively) against the run's dataset name
    scope: str          # the scope of our table they compare with ("overall" = all users, full ranking)
    metrics: dict[str, float]


PUBLISHED: tuple[Published, ...] = (
    Published(label="LlamaRec LRURec", source="LlamaRec (arXiv 2311.02089), Table 2, LRURec retriever",
              dataset="beauty", scope="overall",
              metrics={"recall@5": 0.0614, "recall@10": 0.0916, "ndcg@5": 0.0435, "ndcg@10": 0.0533,
                       "mrr@5": 0.0376, "mrr@10": 0.0417}),
)


def published_for(dataset: str | None) -> list[Published]:
    """The published columns for a dataset name (e.g. ``amazon-beauty``); none when unknown."""
    if not dataset:
        return []
    name = dataset.lower()
    return [p for p in PUBLISHED if p.dataset in name]
