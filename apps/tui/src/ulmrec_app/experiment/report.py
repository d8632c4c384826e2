"""``ulmrec experiment report RUNS... --out report/``: what each variant of an ablation buys, with paired
comparisons, in ``report.md``, ``report.json`` (:class:`ExperimentReport`) and PNG plots.

Inputs are experiment folders (``runs/<name>-experiment``, written by ``ulmrec experiment ablate``) or run
folders (variant = the run name without its ``-s<seed>`` suffix). For every run it reads the LLM's test
predictions (``rank/predictions.jsonl``), the retriever's order of the same candidates, the training
curve, the index report and the stage records; then, over the LLM's subset (users whose target the
retriever put among the candidates the LLM ranked):

* metrics by K of each variant (mean over seeds) and of the retriever's own order;
* each variant against ``full`` (and ``full`` against the retriever's order; ``text`` also against
  ``noindex``) as a paired difference over
  (seed, user) pairs, with a 95 % bootstrap interval and a sign-flip p-value (``ulmrec_eval.compare_ranks``);
* NDCG@10 by history length (1–4, 5–9, 10+ items);
* whether the LLM learned: its last next-item training loss against ln(number of candidates);
* training curves, index quality, wall time, hardware and versions.

Published figures are never mixed with measured ones: the report lists none (the ULMRec paper's table is not
transcribed, and the synthetic worlds have none).

One module a job: ``report_data`` reads the runs and their records, ``report_stats`` computes the rows,
comparisons and verdict, ``report_render`` writes the markdown and ``plots`` the PNGs; this module ties them
together, writes the report folder and keeps every name importable from here.
"""

from __future__ import annotations

from pathlib import Path

from ulmrec_app.experiment.model import ExperimentReport, RunData
from ulmrec_app.experiment.report_data import (
    KINDS,
    check_comparable,
    index_summary,
    is_ranking_loss,
    read_run,
    run_kind,
    runs_of,
)
from ulmrec_app.experiment.report_render import render_markdown
from ulmrec_app.experiment.report_stats import (
    BASELINE,
    EXTRA_PAIRS,
    RETRIEVER,
    by_variant_of,
    choose_baseline,
    compute_report,
)
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_eval.runtime.io import atomic_write_text

__all__ = [
    "BASELINE",
    "EXTRA_PAIRS",
    "KINDS",
    "RETRIEVER",
    "build_report",
    "check_report_folder",
    "choose_baseline",
    "is_ranking_loss",
    "read_run",
    "render_markdown",
    "run_kind",
    "write_report",
]


def build_report(paths: list[Path]) -> tuple[ExperimentReport, dict[str, list[RunData]]]:
    """Read every run and compute the report (no files written)."""
    runs = [read_run(folder, variant, seed) for folder, variant, seed in runs_of(paths)]
    if not runs:
        raise PipelineError("no runs to report")
    check_comparable(runs)
    by_variant = by_variant_of(runs)
    baseline = choose_baseline(by_variant)
    first = (by_variant.get(baseline or "") or runs)[0]   # the baseline's index, not a variant's own
    index = {"run": first.name, **index_summary(first.folder)}
    return compute_report(runs, by_variant, baseline, index), by_variant


def check_report_folder(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding anything but an earlier report: the report
    folder is replaced whole."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PipelineError(f"--out {out}: not a folder; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise PipelineError(f"--out {out} holds other files than a report ({shown}…); the report replaces "
                            "its folder whole: give a new or empty folder")


def write_report(report: ExperimentReport, by_variant: dict[str, list[RunData]], out: Path) -> Path:
    """``out/report.md``, ``out/report.json`` and the PNG plots (skipped with a note without matplotlib),
    written whole: a new folder replaces the previous report at once (a stale plot never survives, a
    killed write leaves the previous report)."""
    from ulmrec_eval.runtime.artifacts import atomic_dir

    check_report_folder(out)
    with atomic_dir(out, force=True) as tmp:
        try:
            from ulmrec_app.experiment.plots import draw_all

            report.plots = [str(out.absolute() / Path(p).name) for p in draw_all(report, by_variant, tmp)]
        except ImportError:
            report.notes.append("Plots skipped: matplotlib is not installed (pip install matplotlib).")
        atomic_write_text(tmp / "report.json", report.model_dump_json(indent=2) + "\n")
        atomic_write_text(tmp / "report.md", render_markdown(report))
    return out / "report.md"
