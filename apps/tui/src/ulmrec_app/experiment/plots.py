"""PNG plots of an ablation report (matplotlib, headless): metrics by K, a forest plot of the paired
differences, training curves, NDCG@10 by history length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ulmrec_app.experiment.model import BUCKETS, KS, ExperimentReport, RunData


def draw_all(report: ExperimentReport, by_variant: dict[str, list[RunData]], out: Path) -> list[str]:
    """Write every plot into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    return [
        str(p)
        for p in (_by_k(report, out), _forest(report, out), _curves(by_variant, out), _buckets(report, out))
        if p is not None
    ]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _by_k(report: ExperimentReport, out: Path) -> Path:
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 4))
    for row in report.rows:
        ax.plot(
            KS,
            [row.subset.get(f"ndcg@{k}", float("nan")) for k in KS],
            marker="o",
            label=row.variant,
            linestyle="--" if row.variant.startswith("LRURec") else "-",
        )
    ax.set_xlabel("K")
    ax.set_ylabel("NDCG@K (subset)")
    ax.set_xticks(list(KS))
    ax.legend(fontsize=8)
    ax.set_title("Metrics by K")
    return _save(fig, out / "metrics_by_k.png")


def _forest(report: ExperimentReport, out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    items = [
        (label, c) for label, comps in report.comparisons.items() for c in comps if c.metric == "ndcg@10"
    ]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(items) + 1.2))
    for i, (_, c) in enumerate(items):
        ax.errorbar(
            c.difference,
            i,
            xerr=[[c.difference - c.ci_low], [c.ci_high - c.difference]],
            fmt="o",
            capsize=4,
            color="black",
        )
        ax.text(c.ci_high, i + 0.15, f" p={c.p_value:.2g}", fontsize=8)
    ax.axvline(0.0, color="grey", linewidth=1)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([label for label, _ in items])
    ax.set_xlabel("paired difference in NDCG@10 (95 % CI)")
    ax.set_title("Each variant against full ULMRec")
    return _save(fig, out / "forest.png")


def _curves(by_variant: dict[str, list[RunData]], out: Path) -> Path | None:
    """Loss, learning rate, validation NDCG@10 and, where validations measured it, the exact-match rate of
    the code-writing tasks (is alignment learned?), one line per variant (its first seed)."""
    import matplotlib.pyplot as plt

    runs = [group[0] for group in by_variant.values() if group and group[0].curve]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for run in runs:
        steps = [p["step"] for p in run.curve]
        axes[0].plot(steps, [p["loss"] for p in run.curve], label=run.variant)
        axes[1].plot(steps, [p["lr"] for p in run.curve], label=run.variant)
        if run.validation:
            axes[2].plot(
                [v["step"] for v in run.validation],
                [v["ndcg_at_10"] for v in run.validation],
                marker="o",
                label=run.variant,
            )
        tasks = sorted({t for v in run.validation for t in v.get("task_exact", {})})
        for task in tasks:
            points = [(v["step"], v["task_exact"][task]) for v in run.validation
                      if task in v.get("task_exact", {})]
            axes[3].plot([x for x, _ in points], [y for _, y in points], marker="o",
                         label=f"{run.variant}: {task}")
    titles = ("training loss", "learning rate", "validation NDCG@10 (calibrated)",
              "codes written exactly (validation)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    if axes[3].lines:
        axes[3].legend(fontsize=7)
        axes[3].set_ylim(-0.05, 1.05)
    return _save(fig, out / "curves.png")


def _buckets(report: ExperimentReport, out: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np


    labels = [b[2] for b in BUCKETS]
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(len(report.rows), 1)
    for i, row in enumerate(report.rows):
        ax.bar(
            np.arange(len(labels)) + i * width,
            [row.buckets.get(b, 0.0) for b in labels],
            width,
            label=row.variant,
        )
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{b} items" for b in labels])
    ax.set_ylabel("NDCG@10 (subset)")
    ax.legend(fontsize=8)
    ax.set_title("By history length")
    return _save(fig, out / "buckets.png")
