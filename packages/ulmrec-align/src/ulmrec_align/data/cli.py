"""Sub-commands of ``ulmrec data``: prepare, synthetic, download, users, inspect.

Nothing heavy is imported at module level (``ulmrec --help`` stays fast); each command imports what it needs.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

app = typer.Typer(help="Prepare datasets: raw Amazon / RecBole files -> k-core, dense ids, leave-one-out "
                  "split.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("prepare")
def prepare(
    source: str = typer.Option(..., "--source", help="amazon (raw 2014/2018 crawl) or recbole."),
    path: Path = typer.Option(..., "--path", help="Folder (or reviews / .inter file) to read."),
    out: Path = typer.Option(..., "--out", help="Prepared-dataset folder to write."),
    k_core: int = typer.Option(5, "--k-core", min=1, help="Minimum interactions per user and per item."),
    text_source: str = typer.Option("auto", "--text-source",
                                    help="auto | reviews | summaries | preference | none"),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: from the files)."),
    category: str | None = typer.Option(None, "--category", help="Amazon category (folder with several)."),
    max_texts: int | None = typer.Option(None, "--max-texts", min=1, help="Keep N latest texts per user."),
    min_rating: float | None = typer.Option(None, "--min-rating", help="Drop interactions rated below this."),
    max_users: int | None = typer.Option(None, "--max-users", min=1,
                                         help="Keep a seeded random subset of N users (after the k-core)."),
    subset_seed: int = typer.Option(0, "--subset-seed", help="Seed of the --max-users subset."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON instead of a summary."),
    force: bool = typer.Option(False, "--force", help="Replace an existing prepared folder at OUT."),
) -> None:
    """Read raw files, filter, split, and write a prepared-dataset folder (whole or not at all)."""
    from pydantic import ValidationError

    from ulmrec_align.data.config import PrepareConfig
    from ulmrec_align.data.pipeline import prepare_dataset
    from ulmrec_eval.runtime.errors import InputError, error_text

    if source not in ("amazon", "recbole"):
        raise InputError(f"--source must be 'amazon' or 'recbole', got {source!r}")
    try:
        config = PrepareConfig(k_core=k_core, text_source=text_source, category=category,
                               max_texts_per_user=max_texts, min_rating=min_rating, max_users=max_users,
                               subset_seed=subset_seed)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-").replace("max-texts-per-user", "max-texts")
        raise InputError(f"{option}: {error_text(first)} (got {first.get('input')!r})") from None
    start = time.perf_counter()
    dataset = prepare_dataset(source=source, path=path, out=out, config=config, name=name,  # type: ignore[arg-type]
                              force=force)
    elapsed = time.perf_counter() - start
    manifest = dataset.manifest
    if json_out:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    counts = manifest.counts
    typer.echo(f"{manifest.name} ({manifest.source_format}): {counts.users:,} users, {counts.items:,} items, "
               f"{counts.interactions:,} interactions")
    typer.echo(f"texts: {manifest.text_source}; ratings: {'yes' if manifest.has_ratings else 'no'}; "
               f"dropped: {manifest.stats.get('dropped_untitled', 0):,} untitled, "
               f"{manifest.stats.get('dropped_k_core', 0):,} by the {k_core}-core"
               + (f", {manifest.stats['dropped_max_users']:,} outside the --max-users subset"
                  if "dropped_max_users" in manifest.stats else ""))
    typer.echo(f"split_sha256: {manifest.split_sha256}")
    typer.echo(f"wrote {out} in {elapsed:.1f} s")


@app.command("synthetic")
def synthetic(
    out: Path = typer.Option(..., "--out", help="Folder for reviews_<Cat>_5.json.gz and meta_<Cat>.json.gz."),
    users: int = typer.Option(300, "--users", min=5, help="Number of users."),
    items: int = typer.Option(150, "--items", min=10, help="Number of items."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the output is deterministic per seed)."),
    category: str = typer.Option("Synthetic", "--category", help="Category name used in the file names."),
    signal: str = typer.Option("reviews", "--signal", help="reviews: every non-gift review states the user's "
                               "hidden trait | none: no review mentions it (the null world)."),
    trait_strength: float = typer.Option(0.7, "--trait-strength", min=0.0, max=1.0,
                                         help="Share of non-gift purchases restricted to the user's trait."),
    gift: float = typer.Option(0.2, "--gift", min=0.0, max=0.99, help="Share of purchases that are gifts."),
) -> None:
    """Write a small, realistic-looking dataset in the raw Amazon 2014 format (with hidden user traits)."""
    from ulmrec_align.data.synthetic import check_category, write_synthetic_amazon

    check_category(category)

    folder = write_synthetic_amazon(out, n_users=users, n_items=items, seed=seed, category=category,
                                    signal=signal, trait_strength=trait_strength, gift=gift)
    typer.echo(f"wrote {folder / f'reviews_{category}_5.json.gz'} and {folder / f'meta_{category}.json.gz'}")
    typer.echo(f"next: ulmrec data prepare --source amazon --path {folder} --out <DIR>")


@app.command("download")
def download(
    dataset: str = typer.Argument(..., help="amazon-beauty or amazon-games"),
    out: Path = typer.Option(..., "--out", help="Folder to download into."),
    base_url: str | None = typer.Option(None, "--base-url", help="Mirror to fetch from (default: the public "
                                        "SNAP/UCSD path)."),
    sha256: list[str] = typer.Option([], "--sha256", help="Expected checksum as FILE=HEX (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Download again even if the files are present."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fetch the public Amazon 2014 review + meta files (resumable, verified where a checksum is known)."""
    from ulmrec_align.data.download import DEFAULT_BASE_URL, download_dataset
    from ulmrec_eval.runtime.errors import InputError

    checksums: dict[str, str] = {}
    for pair in sha256:
        file_name, sep, digest = pair.partition("=")
        if not sep or len(digest) != 64:
            raise InputError(f"--sha256 expects FILE=<64 hex digits>, got {pair!r}")
        checksums[file_name] = digest
    results = download_dataset(dataset, out, base_url=base_url or DEFAULT_BASE_URL, checksums=checksums,
                               force=force, progress=not quiet)
    for result in results:
        check = "verified" if result.verified else "not verified (no known checksum)"
        typer.echo(f"{result.status:10} {result.path} {result.size:,} bytes sha256 {result.sha256} {check}")


@app.command("users")
def users(
    folder: Path = typer.Argument(..., help="A prepared-dataset folder."),
    out: Path = typer.Option(..., "--out", help="USERS.jsonl to write (one {user_id, texts} per line)."),
    skip_empty: bool = typer.Option(False, "--skip-empty", help="Leave out users without texts."),
    force: bool = typer.Option(False, "--force", help="Replace an existing OUT file."),
) -> None:
    """Write the per-user texts as JSON lines for `ulmrec index build`."""
    from ulmrec_align.data.prepared import PreparedDataset, refuse_dataset_file
    from ulmrec_align.data.users import write_users_jsonl
    from ulmrec_eval.runtime.artifacts import ArtifactExistsError, check_out_apart

    refuse_dataset_file(out)
    check_out_apart(out, {"FOLDER": folder})
    if out.exists() and not force:
        raise ArtifactExistsError(f"{out} exists; pass --force to replace it")
    dataset = PreparedDataset.load(folder)
    count = write_users_jsonl(dataset, out, skip_empty=skip_empty, force=force)
    typer.echo(f"wrote {count:,} users to {out} (texts: {dataset.manifest.text_source})")


@app.command("inspect")
def inspect(
    folder: Path = typer.Argument(..., help="A prepared-dataset folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Counts, sparsity and sequence-length statistics of a prepared dataset."""
    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.data.stats import dataset_stats

    stats = dataset_stats(PreparedDataset.load(folder))
    if json_out:
        typer.echo(stats.model_dump_json(indent=2))
        return
    seq, per_item = stats.sequence_length, stats.item_interactions
    rows = [
        ("dataset", stats.name),
        ("users / items", f"{stats.users:,} / {stats.items:,}"),
        ("interactions", f"{stats.interactions:,}"),
        ("sparsity", f"{stats.sparsity:.4%} (density {stats.density:.3e})"),
        ("sequence length", f"min {seq.min}, median {seq.median:g}, mean {seq.mean:.2f}, p90 {seq.p90:g}, "
                            f"max {seq.max}"),
        ("interactions/item", f"min {per_item.min}, median {per_item.median:g}, mean {per_item.mean:.2f}, "
                              f"max {per_item.max}"),
        ("user texts", f"{stats.text_source}: {stats.users_with_texts:,} users, "
                       f"{stats.texts_per_user:.2f} per user"),
        ("ratings", f"mean {stats.mean_rating:.2f}" if stats.mean_rating is not None else "none"),
        ("split_sha256", stats.split_sha256),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label:<{width}}  {value}")
