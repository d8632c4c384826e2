"""``report.md`` of an :class:`ExperimentReport`: the verdict, the metrics of each variant, the paired
differences, NDCG@10 by history length, the cold-start users, the index, machine and versions, plots and
notes (the PNG plots are drawn by ``plots``). Pure text from the report; nothing is read or computed."""

from __future__ import annotations

from pathlib import Path

from ulmrec_app.experiment.model import BUCKETS, KS, ExperimentReport, VariantRow

#: The subset metrics of the metrics table.
TABLE_METRICS = [f"ndcg@{k}" for k in KS] + ["recall@1", "recall@10"]
#: The metrics of the cold-start table.
COLD_METRICS = ("ndcg@10", "recall@1", "recall@10")


def _ranking_loss(report: ExperimentReport) -> bool:
    """Whether the baseline's next-item loss is held to ln N (true without a baseline)."""
    full = next((r for r in report.rows if r.variant == report.baseline), None)
    return full is None or full.ranking_loss


def verdict(report: ExperimentReport) -> str:
    """Whether the LLM learned, in one paragraph."""
    ranking_loss = _ranking_loss(report)
    if report.baseline is None:
        return ("**No baseline**: none of these variants is full ULMRec (named `full`, or the only run with "
                "a user index and no control), so nothing is compared with it and nothing says whether the "
                "LLM learned; report the runs with their full ULMRec run.")
    if report.learned:
        return ("The LLM learned: full ULMRec ranks above the retriever's own order (paired, p < 0.05)"
                + (" and its next-item loss is below ln(n)." if ranking_loss else "."))
    loss_test = (f"its last next-item training loss is not below ln({report.n_candidates}) = "
                 f"{report.chance_loss:.3f} or " if ranking_loss else "")
    return (f"**The LLM has not learned to rank here**: {'either ' if ranking_loss else ''}{loss_test}it "
            "does not rank above the retriever's own order (paired, p < 0.05). Differences between variants "
            "below are then differences between rankers that lose to the retriever.")


def _introduction(report: ExperimentReport) -> list[str]:
    return [
        "# Ablation report",
        "",
        verdict(report),
        "",
        *([f"Full ULMRec (the baseline of every comparison): {report.baseline}.", ""] if report.baseline
          else []),
        f"Runs: {', '.join(report.runs)}. Each LLM ranks the retriever's top {report.n_candidates}; subset = "
        "test users whose target is among them; paired comparisons over (seed, user) pairs of the "
        "subset, 95 % bootstrap interval, two-sided sign-flip p-value.",
        "",
    ]


def _metrics_line(row: VariantRow) -> str:
    loss = "—" if row.last_next_item_loss is None else f"{row.last_next_item_loss:.3f}"
    return (
        f"| {row.variant} | {','.join(map(str, row.seeds))} | {row.n_users} | "
        + " | ".join(f"{row.subset.get(k, float('nan')):.4f}" for k in TABLE_METRICS)
        + f" | {row.overall.get('ndcg@10', float('nan')):.4f} | {loss} | {row.steps or '—'} | "
        + (f"{row.wall_seconds:.0f}" if row.wall_seconds else "—")
        + " | " + (", ".join("—" if w is None else f"{w:g}" for w in row.fusion_weights) or "—")
        + " |"
    )


def _metrics_table(report: ExperimentReport) -> list[str]:
    n = report.n_candidates
    return [
        "## Metrics (subset, mean over seeds)",
        "",
        "| variant | seeds | users | " + " | ".join(TABLE_METRICS) + " | NDCG@10 overall | next-item loss | "
        "steps | wall s | W |",
        "|---" * (len(TABLE_METRICS) + 8) + "|",
        *(_metrics_line(row) for row in report.rows),
        "",
        f"ln({n}) = {report.chance_loss:.3f}: a next-item (ranking) loss at or above it learned nothing."
        if _ranking_loss(report) else
        "Next-item loss: the token loss of the target's title, per token (title answers); no chance level "
        f"of ln({n}) applies to it.",
    ]


def _comparison_lines(report: ExperimentReport) -> list[str]:
    return [
        "| B − A | metric | users | A | B | B − A | 95 % CI | p |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {label} | {c.metric} | {c.n_users} | {c.mean_a:.4f} | {c.mean_b:.4f} | "
          f"{c.difference:+.4f} | [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.p_value:.3g} |"
          for label, comps in report.comparisons.items() for c in comps),
    ]


def _bucket_lines(report: ExperimentReport) -> list[str]:
    return [
        "| variant | " + " | ".join(b[2] for b in BUCKETS) + " |",
        "|---" * (len(BUCKETS) + 1) + "|",
        *(f"| {row.variant} | "
          + " | ".join(f"{row.buckets[b[2]]:.4f}" if b[2] in row.buckets else "—" for b in BUCKETS) + " |"
          for row in report.rows),
    ]


def _cold_lines(report: ExperimentReport) -> list[str]:
    return [
        "| variant | users | NDCG@10 | Recall@1 | Recall@10 |",
        "|---|---|---|---|---|",
        *(f"| {row.variant} | {row.cold_users} | "
          + " | ".join(f"{row.cold_subset.get(k, float('nan')):.4f}" for k in COLD_METRICS) + " |"
          for row in report.rows if row.cold_users),
    ]


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", f"## {title}", "", *lines]


def render_markdown(report: ExperimentReport) -> str:
    """``report.md``: every section of the report, in order (the optional ones only when they hold
    something)."""
    lines = [
        *_introduction(report),
        *_metrics_table(report),
        *_section("Paired differences (B − A)", _comparison_lines(report)),
        *_section("NDCG@10 by history length (subset)", _bucket_lines(report)),
    ]
    if any(row.cold_users for row in report.rows):
        lines += _section("Cold-start users (held out of LLM training; subset)", _cold_lines(report))
    if report.index:
        lines += _section("User index (of the full variant's first run)",
                          [f"- {key}: {value}" for key, value in report.index.items()])
    lines += _section("Machine and versions",
                      [f"- {k}: {v}" for k, v in {**report.hardware, **report.versions}.items()])
    if report.plots:
        lines += _section("Plots", [f"![{Path(p).stem}]({Path(p).name})" for p in report.plots])
    if report.notes:
        lines += _section("Notes", [f"- {note}" for note in report.notes])
    return "\n".join(lines) + "\n"
