"""``ulmrec experiment ablate CONFIG`` and ``ulmrec experiment report RUNS... --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ulmrec_app.cli.options import RunsOpt

app = typer.Typer(
    help="Ablations that share unchanged stages, and their report.",
    no_args_is_help=True,
    add_completion=False,
)


def _ints(text: str) -> list[int]:
    from ulmrec_app.pipeline.errors import PipelineError

    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PipelineError(f"--seeds expects comma-separated integers >= 0, got {text!r}") from None
    if not seeds:
        raise PipelineError(f"--seeds: no seed given ({text!r}); e.g. --seeds 0,1")
    return seeds


@app.command("ablate")
def ablate_command(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="Base run config (TOML or YAML).")],
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants", help="Comma-separated: full, noindex, permuted, random, no-<task>, added, "
            "rqkmeans, nofusion, collab, text (default: the config's \\[experiment] variants, else "
            "full,noindex,permuted)."
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Comma-separated seeds (train and align seeds; default: the "
                                 "config's \\[experiment] seeds, else 0).")
    ] = None,
    runs: RunsOpt = Path("runs"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the variant configs; run nothing.")
    ] = False,
) -> None:
    """One run per variant and seed; every stage a variant does not change is shared, none trained twice."""
    from ulmrec_app.experiment.ablate import plan_experiment, run_experiment
    from ulmrec_app.experiment.variants import DEFAULT_VARIANTS, VARIANTS
    from ulmrec_app.pipeline.config import load_config
    from ulmrec_app.pipeline.errors import PipelineError

    table = load_config(config).experiment
    if variants is None:
        variants = ",".join(table.variants or DEFAULT_VARIANTS)
    if seeds is None:
        seeds = ",".join(map(str, table.seeds or [0]))
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if not chosen:
        raise PipelineError(f"--variants: no variant given ({variants!r}); known: {', '.join(VARIANTS)}")
    if unknown:
        raise PipelineError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    manifest = plan_experiment(config, runs, chosen, _ints(seeds))
    folder = Path(manifest.runs_dir) / f"{manifest.name}-experiment"
    planned_variants = list(dict.fromkeys(r.variant for r in manifest.runs))
    planned_seeds = ",".join(map(str, dict.fromkeys(r.seed for r in manifest.runs)))
    typer.echo(
        f"experiment {manifest.name}: {len(manifest.runs)} runs "
        f"({', '.join(planned_variants)} × seeds {planned_seeds}); configs in {folder / 'configs'}",
        err=True,
    )
    if dry_run:
        return
    run_experiment(manifest, line=lambda text: typer.echo(text, err=True))
    typer.echo(f"done; report with `ulmrec experiment report {folder} --out {folder / 'report'}`", err=True)


@app.command("report")
def report_command(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="RUNS...", help="Experiment folders (runs/<name>-experiment) or run folders."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.json and the plots.")],
) -> None:
    """report.md with every variant's paired comparison against full ULMRec, plots, and report.json."""
    from ulmrec_app.experiment.ablate import EXPERIMENT_FILE
    from ulmrec_app.experiment.report import build_report, check_report_folder, write_report
    from ulmrec_eval.runtime.artifacts import check_out_apart

    # what the report reads: an experiment's record (its report/ may sit beside it) or a run folder
    check_out_apart(out, {f"RUNS[{i}]": path / EXPERIMENT_FILE if (path / EXPERIMENT_FILE).is_file() else path
                          for i, path in enumerate(paths)})
    check_report_folder(out)
    report, by_variant = build_report(paths)
    path = write_report(report, by_variant, out)
    if report.baseline is None:
        typer.echo(f"no baseline: none of the variants ({', '.join(by_variant)}) is full ULMRec (named "
                   "`full`, or the only run with an index and no control), so nothing was compared", err=True)
    typer.echo(
        f"wrote {path} ({len(report.runs)} runs, {len(report.comparisons)} comparisons, "
        f"{len(report.plots)} plots)",
        err=True,
    )
