"""What an ablation report measures: the cut-offs K and the history-length buckets."""

from __future__ import annotations

#: Cut-offs of the metrics by K.
KS = (1, 5, 10, 20)
#: History-length buckets ``(min items, max items or None, label)``.
BUCKETS: tuple[tuple[int, int | None, str], ...] = ((1, 4, "1-4"), (5, 9, "5-9"), (10, None, "10+"))
