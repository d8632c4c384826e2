"""The ``ulmrec-eval`` command (also ``ulmrec eval``): ``metrics`` and ``compare`` over prediction files.

Heavy modules (numpy, the metrics) are imported inside the commands so that ``ulmrec --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ulmrec_eval.runtime.cli import run_app

if TYPE_CHECKING:
    from ulmrec_eval.schemas import ComparisonReport, EvalResult

app = typer.Typer(name="eval", help="Ranking metrics (Recall/HitRate, MRR, NDCG @K) and paired comparisons.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

PredictionsArg = Annotated[Path, typer.Argument(
    exists=True, dir_okay=False, readable=True, metavar="PREDICTIONS.jsonl|.npz",
    help="JSON lines, one user per line: {\"user_id\", \"target\", \"ranked\": [...]} or "
         "{\"user_id\", \"target\", \"candidates\": [...], \"scores\": [...]}; or a .npz of arrays "
         "user_ids, targets and ranked or candidates + scores (see ulmrec_eval.write_predictions).")]


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        message = f"expected comma-separated integers, got {text!r}"
        raise typer.BadParameter(message, param_hint=option) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"expected positive integers, got {text!r}", param_hint=option)
    return values


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _print_result(result: EvalResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from ulmrec_eval.metrics import METRIC_NAMES, metric_key

    console = Console()
    titles = {"full": "full — all {u:,} users",
              "subset": "subset — target in the retrieved top-{n}: {u:,} of {t:,} users",
              "overall": "overall — all {u:,} users, target outside the top-{n} = miss"}
    for report in result.reports:
        title = titles[report.scope].format(n=report.retrieved_n, u=report.n_users, t=report.total_users)
        console.print(f"[bold]{title}[/bold]", highlight=False)
        table = Table()
        table.add_column("metric")
        for k in report.ks:
            table.add_column(f"@{k}", justify="right")
        for name in METRIC_NAMES:
            label = "recall (= hit rate)" if name == "recall" else name
            table.add_row(label, *[_fmt(report.metrics.get(metric_key(name, k))) for k in report.ks])
        console.print(table)
        if report.omitted_ks:
            console.print(f"  K > N={report.retrieved_n} omitted from the overall scope: "
                          f"{', '.join(map(str, report.omitted_ks))}")
        if report.buckets:
            console.print(f"{report.scope} — by history length", highlight=False)
            buckets = Table()
            buckets.add_column("history")
            buckets.add_column("users", justify="right")
            for k in report.ks:
                buckets.add_column(f"ndcg@{k}", justify="right")
            for bucket in report.buckets:
                buckets.add_row(bucket.label, f"{bucket.n_users:,}",
                                *[_fmt(bucket.metrics.get(metric_key("ndcg", k))) for k in report.ks])
            console.print(buckets)


def _emit(text: str, *, out: Path | None, as_json: bool, show: Callable[[], None]) -> None:
    """Write the JSON ``text`` to ``out`` (atomically) if given; print it with ``--json``, else ``show()``."""
    from ulmrec_eval.runtime.io import atomic_write_text

    if out is not None:
        atomic_write_text(out, text + "\n")
    if as_json:
        typer.echo(text)
    else:
        show()


@app.command("metrics")
def metrics_command(
    predictions: PredictionsArg,
    k: Annotated[str, typer.Option("--k", help="Cut-offs K, comma-separated.")] = "1,5,10,20",
    retrieved_n: Annotated[int | None, typer.Option(
        "--retrieved-n", min=1,
        help="N of the retrieval stage: report the subset whose target is in the top-N and the overall "
             "figure (others = misses, K <= N).")] = None,
    buckets: Annotated[str, typer.Option(
        "--buckets", help="History-length bucket edges (used when predictions carry history_length).")
    ] = "5,10,20,50",
    split: Annotated[str | None, typer.Option(
        "--split", help="Evaluate only the records of this split (e.g. test); needed when a file holds "
                        "several.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[Path | None, typer.Option("--out", dir_okay=False,
                                             help="Also write the report JSON here (atomically).")] = None,
) -> None:
    """Recall@K (= HitRate@K), MRR@K and NDCG@K of a predictions file."""
    from ulmrec_eval.evaluation import evaluate
    from ulmrec_eval.runtime.artifacts import check_out_apart

    if out is not None:
        check_out_apart(out, {"PREDICTIONS": predictions})
    ks = _int_list(k, "--k")
    edges = _int_list(buckets, "--buckets")
    result = evaluate(predictions, ks=ks, retrieved_n=retrieved_n, bucket_edges=edges, split=split)
    _emit(result.model_dump_json(indent=2), out=out, as_json=as_json, show=lambda: _print_result(result))


def _fmt_p(p: float, n_resamples: int) -> str:
    # p = 1 / (1 + R) means no random sign flip was as extreme: the test can only say p < 1/R
    return f"< {1.0 / n_resamples:.2g}" if p <= 1.0 / (1 + n_resamples) else f"{p:.4g}"


def _print_comparison(report: ComparisonReport) -> None:
    from rich.console import Console
    from rich.table import Table

    first = report.comparisons[0]
    table = Table()
    table.add_column("")
    for c in report.comparisons:
        table.add_column(c.metric, justify="right")
    rows: list[tuple[str, list[str]]] = [
        (f"A = {report.a}", [_fmt(c.mean_a) for c in report.comparisons]),
        (f"B = {report.b}", [_fmt(c.mean_b) for c in report.comparisons]),
        ("B − A", [f"{c.difference:+.4f}" for c in report.comparisons]),
        ("relative", ["—" if c.relative is None else f"{c.relative:+.1%}" for c in report.comparisons]),
        (f"{first.confidence:.0%} CI", [f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]" for c in report.comparisons]),
        ("p-value", [_fmt_p(c.p_value, c.n_resamples) for c in report.comparisons]),
        ("B better / A better / tie", [f"{c.wins:,} / {c.losses:,} / {c.ties:,}"
                                       for c in report.comparisons]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    console = Console()
    console.print(f"[bold]paired comparison over {first.n_users:,} users: B − A[/bold]", highlight=False)
    console.print(table)
    console.print(f"bootstrap percentile interval and paired sign-flip p-value, {first.n_resamples:,} "
                  f"resamples, seed {first.seed}")


@app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, metavar="A.jsonl|.npz",
                                      help="Predictions of system A (the baseline).")],
    b: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, metavar="B.jsonl|.npz",
                                      help="Predictions of system B (same users).")],
    metric: Annotated[str, typer.Option(
        "--metric", help="Metric(s), comma-separated: recall@K (hit@K), mrr@K, ndcg@K.")] = "ndcg@10",
    resamples: Annotated[int, typer.Option("--resamples", min=1,
                                           help="Bootstrap resamples and sign flips.")] = 10_000,
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                              help="Level of the interval.")] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (results are reproducible).")] = 0,
    split: Annotated[str | None, typer.Option(
        "--split", help="Compare only the records of this split (e.g. test).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    out: Annotated[Path | None, typer.Option("--out", dir_okay=False,
                                             help="Also write the JSON here (atomically).")] = None,
) -> None:
    """Paired comparison of B against A over the same users: difference, bootstrap CI and p-value (a file of a
    pipeline run is first checked against its stage records: unchanged, and made from the stages upstream)."""
    from ulmrec_eval.compare import compare_predictions
    from ulmrec_eval.metrics import parse_metric_key
    from ulmrec_eval.runtime.artifacts import check_out_apart
    from ulmrec_eval.runtime.provenance import check_made_from

    keys = [part for part in metric.replace(" ", "").split(",") if part]
    for key in keys:
        try:
            parse_metric_key(key)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--metric") from None
    if not keys:
        raise typer.BadParameter("give at least one metric, e.g. ndcg@10", param_hint="--metric")
    if out is not None:
        check_out_apart(out, {"A": a, "B": b})
    for side in (a, b):   # a pipeline run's file: as its stage wrote it, from the stages now upstream of it
        check_made_from(side)
    report = compare_predictions(a, b, metrics=keys, n_resamples=resamples, confidence=confidence, seed=seed,
                                 split=split)
    _emit(report.model_dump_json(indent=2), out=out, as_json=as_json, show=lambda: _print_comparison(report))


@app.command("version")
def version() -> None:
    """Print the package version."""
    from ulmrec_eval import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    run_app(app, prog_name="ulmrec-eval")
