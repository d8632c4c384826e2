"""Benchmark of the user indexer on Amazon Beauty preference texts (22,332 users), 4 levels x 256 codes.

    .venv/bin/python bench/index.py [--fusion attention|mean|none] [--quantizer rqvae] [--fresh-cache]

Reports, in one run:
* wall time of embedding (uncached the first time, or always with --fresh-cache) and of fit + encode with the
  embeddings cached (goal: < 60 s);
* our quantizer against faiss ResidualQuantizer on the same fused vectors: time ratio, reconstruction error,
  collisions before repair;
* ours against the paper's reference index (reference_user_index.json): collisions (goal 0), minimum codes
  used per level (goal >= 250 of 256 on every level; theirs: 252 at level 1) and semantic coherence (goal:
  higher), measured twice: with the MiniLM vectors the index quantizes (which favours ours by construction)
  and with an independent encoder that shares nothing with MiniLM (TF-IDF of word 1-2-grams -> truncated SVD,
  256 dims, fit on these users' own texts: ``--lsa-dim 0`` skips it).
Embeddings are cached under .cache/ulmrec-index/embeddings (git-ignored). Timings on a shared 2-core machine
are inflated by other load. A JSON summary goes to runs/bench/index-<quantizer>-<fusion>.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ULMREC_SHARED_DATA", REPO.parent / "shared" / "data")) / "amazon-beauty"


def lsa_vectors(documents: list[str], dim: int, seed: int) -> np.ndarray:
    """Unit-norm LSA vectors ``(N, dim)`` of ``documents``: TF-IDF (word 1-2-grams, sublinear tf, min_df 2)
    then truncated SVD; an empty document gets a zero row (left out of coherence like a user without text)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000,
                            dtype=np.float32).fit_transform(documents)
    vectors = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(tfidf)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0)


def independent_coherence(vectors: np.ndarray, user_ids: list[str], codes: dict[str, list[int]],
                          prefixes: tuple[int, ...] = (1, 2)) -> list[float | None]:
    """Coherence ratios of ``codes`` measured with ``vectors`` (rows align with ``user_ids``), on the users
    that have both a code and a non-zero vector."""
    from ulmrec_index.report import coherence

    rows = [i for i, uid in enumerate(user_ids) if uid in codes and np.abs(vectors[i]).sum() > 0]
    width = min(len(codes[user_ids[i]]) for i in rows)
    matrix = np.array([codes[user_ids[i]][:width] for i in rows], dtype=np.int64)
    return [coherence(vectors[rows], matrix, p).ratio for p in prefixes]


def read_beauty_users(path: Path) -> list[dict[str, Any]]:
    """``beauty.user`` (RecBole atomic file: ``user_id:token<TAB>preference:token_seq``) -> UserText dicts."""
    users = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if header[:2] != ["user_id:token", "preference:token_seq"]:
            raise SystemExit(f"{path}:1: unexpected header {header}")
        for line in handle:
            uid, _, text = line.rstrip("\n").partition("\t")
            users.append({"user_id": uid, "texts": [text] if text.strip() else []})
    return users


def run_faiss(x: np.ndarray, levels: int, codebook_size: int, threads: int) -> dict[str, float | int]:
    """faiss ``ResidualQuantizer`` (default training, beam 5) on the same vectors: time, error, collisions."""
    import faiss

    from ulmrec_index.report import count_collisions

    faiss.omp_set_num_threads(threads)
    nbits = int(np.log2(codebook_size))
    if 2**nbits != codebook_size:
        raise SystemExit("faiss ResidualQuantizer needs a power-of-two codebook size")
    x = np.ascontiguousarray(x, dtype=np.float32)
    start, cpu = time.perf_counter(), time.process_time()
    rq = faiss.ResidualQuantizer(x.shape[1], levels, nbits)
    rq.train(x)
    packed = rq.compute_codes(x)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    recon = rq.decode(packed)
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, : levels * nbits].reshape(
        len(x), levels, nbits
    )
    codes = (bits.astype(np.int64) << np.arange(nbits)).sum(-1)
    mse = float(((x - recon) ** 2).sum(1).mean())
    spread = float(((x - x.mean(0)) ** 2).sum(1).mean())
    used = [len(np.unique(codes[:, level])) for level in range(levels)]
    return {
        "fit_encode_s": seconds,
        "fit_encode_cpu_s": cpu_seconds,
        "reconstruction_mse": mse,
        "reconstruction_rel": mse / spread,
        "collisions_before_repair": count_collisions(codes),
        "min_used": min(used),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fusion", default="attention", choices=["attention", "mean", "none"])
    parser.add_argument("--quantizer", default="rqvae")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "ulmrec-index" / "embeddings")
    parser.add_argument("--fresh-cache", action="store_true", help="embed into an empty temporary cache")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--lsa-dim", type=int, default=256,
                        help="dimensions of the independent TF-IDF/SVD encoder for coherence (0: skip)")
    parser.add_argument("--set", action="append", default=[], help="quantizer config KEY=VALUE (JSON value)")
    parser.add_argument("--config", action="append", default=[], help="indexer config KEY=VALUE (JSON value)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    import typer
    from rich.console import Console
    from rich.table import Table

    from ulmrec_eval.runtime.io import atomic_write_json
    from ulmrec_index.cli import parse_settings
    from ulmrec_index.encoders import TextEncoder
    from ulmrec_index.indexer import IndexerConfig, UserIndexer, read_reference
    from ulmrec_index.quantizers.registry import parse_quantizer_config
    from ulmrec_index.report import render_report

    def kv(items: list[str], option: str) -> dict[str, Any]:
        try:
            return parse_settings(items, option)
        except typer.BadParameter as exc:
            parser.error(exc.format_message())

    users = read_beauty_users(DATA / "beauty.user")
    reference = read_reference(DATA / "reference_user_index.json")
    texts = [t for u in users for t in u["texts"]]
    console = Console()
    console.print(f"{len(users)} users, {len(texts)} texts; torch threads {args.threads}")

    tmp = tempfile.TemporaryDirectory() if args.fresh_cache else None
    cache_dir = Path(tmp.name) if tmp else args.cache_dir
    t = time.perf_counter()
    encoder = TextEncoder(cache_dir=cache_dir, batch_size=64, show_progress=True)
    encoder.encode(texts)
    embed_s = time.perf_counter() - t
    n_encoded = encoder.last_stats.n_encoded
    console.print(
        f"embedding: {embed_s:.1f}s ({n_encoded} texts encoded, {encoder.last_stats.n_cached} cached)"
    )

    qconfig = parse_quantizer_config(
        {"kind": args.quantizer, **kv(args.set, "--set")},
        levels=args.levels,
        codebook_size=args.codebook_size,
        seed=args.seed,
    )
    config = IndexerConfig(
        quantizer=qconfig,
        fusion=args.fusion,
        seed=args.seed,
        cache_dir=cache_dir,
        **kv(args.config, "--config"),
    )
    t, cpu = time.perf_counter(), time.process_time()
    indexer = UserIndexer(config).fit(users, reference=reference)
    fit_s, fit_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    report = indexer.report
    assert report is not None
    assert indexer.fused is not None
    console.print(render_report(report))
    ours_q_s = report.timings["quantizer_fit"] + report.timings["joint_train"] + report.timings["encode"]

    faiss_row: dict[str, float | int] = {}
    if not args.no_faiss:
        faiss_row = run_faiss(indexer.fused.numpy(), args.levels, args.codebook_size, args.threads)

    ref = report.reference
    assert ref is not None
    ours_coh = [c.ratio for c in report.ours.coherence]
    ref_coh = [c.ratio for c in ref.coherence]
    lsa_ours: list[float | None] = []
    lsa_ref: list[float | None] = []
    if args.lsa_dim > 0:
        t = time.perf_counter()
        user_ids = [u["user_id"] for u in users]
        lsa = lsa_vectors([" ".join(u["texts"]) for u in users], args.lsa_dim, args.seed)
        lsa_ours = independent_coherence(lsa, user_ids, indexer.codes)
        lsa_ref = independent_coherence(lsa, user_ids, reference["codes"])
        lsa_s = time.perf_counter() - t
        console.print(f"independent encoder (TF-IDF 1-2-grams -> SVD {args.lsa_dim}): {lsa_s:.1f}s;"
                      f" coherence 1 / 2 codes shared: ours {lsa_ours[0]:.3f} / {lsa_ours[1]:.3f},"
                      f" reference {lsa_ref[0]:.3f} / {lsa_ref[1]:.3f}")
    summary = {
        "users": len(users),
        "quantizer": args.quantizer,
        "fusion": args.fusion,
        "threads": args.threads,
        "embed_s": embed_s,
        "embed_texts_encoded": n_encoded,
        "embedding": "uncached" if n_encoded else "cached",
        "fit_encode_s_cached": fit_s,
        "fit_encode_cpu_s_cached": fit_cpu_s,
        "ours_quantize_s": ours_q_s,
        "timings": report.timings,
        "collisions_before_repair": report.repair.collisions_before,
        "collisions_after_repair": report.repair.collisions_after,
        "reassigned": report.repair.n_reassigned,
        "extra_level_users": report.repair.n_extra_level,
        "used_per_level": [lv.used for lv in report.ours.levels[: args.levels]],
        "perplexity_per_level": [round(lv.perplexity, 1) for lv in report.ours.levels[: args.levels]],
        "reconstruction_mse": report.reconstruction_mse,
        "reconstruction_rel": report.reconstruction_rel,
        "coherence_1_2": ours_coh,
        "coherence_1_2_independent_encoder": lsa_ours,
        "independent_encoder": f"tfidf-1-2gram-svd{args.lsa_dim}" if args.lsa_dim > 0 else None,
        "reference": {
            "users": report.reference_users_matched,
            "collisions": ref.collisions,
            "used_per_level": [lv.used for lv in ref.levels],
            "perplexity_per_level": [round(lv.perplexity, 1) for lv in ref.levels],
            "coherence_1_2": ref_coh,
            "coherence_1_2_independent_encoder": lsa_ref,
        },
        "faiss": faiss_row,
    }
    if faiss_row:
        summary["time_ratio_ours_over_faiss"] = ours_q_s / float(faiss_row["fit_encode_s"])
        summary["cpu_ratio_ours_fit_over_faiss"] = fit_cpu_s / float(faiss_row["fit_encode_cpu_s"])

    table = Table(title="bench/index.py goals")
    for col in ("figure", "ours", "goal / peer", "met"):
        table.add_column(col)
    min_used = min(lv.used for lv in report.ours.levels[: args.levels])
    rows = [
        ("fit+encode, embeddings cached (s)", f"{fit_s:.1f} (CPU {fit_cpu_s:.1f})", "< 60", fit_s < 60),
        (
            "collisions after repair",
            str(report.repair.collisions_after),
            f"0 (reference: {ref.collisions})",
            report.repair.collisions_after == 0,
        ),
        (
            "min codes used per level",
            str(min_used),
            f">= 250 (reference level 1: {ref.levels[0].used})",
            min_used >= 250,
        ),
        (
            "coherence, 1 code shared",
            f"{ours_coh[0]:.3f}",
            f"> {ref_coh[0]:.3f} (reference)",
            (ours_coh[0] or 0) > (ref_coh[0] or 0),
        ),
        (
            "coherence, 2 codes shared",
            f"{ours_coh[1]:.3f}",
            f"> {ref_coh[1]:.3f} (reference)",
            (ours_coh[1] or 0) > (ref_coh[1] or 0),
        ),
    ]
    if lsa_ours:
        for i, shared in enumerate(("1 code", "2 codes")):
            rows.append((
                f"coherence, {shared} shared, independent encoder (TF-IDF/SVD)",
                f"{lsa_ours[i]:.3f}",
                f"> {lsa_ref[i]:.3f} (reference)",
                (lsa_ours[i] or 0) > (lsa_ref[i] or 0),
            ))
    if faiss_row:
        rows += [
            (
                "quantize time ours / faiss",
                f"{ours_q_s:.1f}s / {faiss_row['fit_encode_s']:.1f}s",
                f"ratio {summary['time_ratio_ours_over_faiss']:.2f} (goal <= 1: not slower)",
                summary["time_ratio_ours_over_faiss"] <= 1.0,
            ),
            (
                "CPU seconds, whole fit ours / faiss",
                f"{fit_cpu_s:.1f} / {faiss_row['fit_encode_cpu_s']:.1f}",
                f"ratio {summary['cpu_ratio_ours_fit_over_faiss']:.2f} (goal <= 1: not slower)",
                summary["cpu_ratio_ours_fit_over_faiss"] <= 1.0,
            ),
            (
                "reconstruction rel. ours / faiss",
                f"{report.reconstruction_rel:.3f}",
                f"{faiss_row['reconstruction_rel']:.3f}",
                report.reconstruction_rel <= faiss_row["reconstruction_rel"],
            ),
            (
                "collisions before repair ours / faiss",
                str(report.repair.collisions_before),
                str(faiss_row["collisions_before_repair"]),
                report.repair.collisions_before <= faiss_row["collisions_before_repair"],
            ),
        ]
    summary["goals"] = {name: bool(met) for name, _, _, met in rows}  # every "met" is computed, none fixed
    for name, ours, goal, met in rows:
        table.add_row(name, ours, goal, "yes" if met else "NO")
    console.print(table)
    out = REPO / "runs" / "bench" / f"index-{args.quantizer}-{args.fusion}.json"
    atomic_write_json(out, summary)
    console.print(f"summary: {out}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
