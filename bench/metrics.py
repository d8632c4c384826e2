"""Benchmark: ulmrec_eval against torchmetrics' retrieval metrics and ranx on the same data, in the same run.

Run: ``.venv/bin/python bench/metrics.py`` (``--help`` for the sizes). Three cases:

(a) 1,000,000 users × 100 candidates;
(b) a Beauty-sized full ranking: 22,332 users × 12,086 items;
(c) ties: 100,000 users × 100 candidates whose scores take only 10 values (a coarse scorer).

Every metric is Recall@K, MRR@K and NDCG@K for K ∈ {1, 5, 10, 20} (12 numbers per case).

Cases (a) and (b) are exact: each user's scores are a random permutation of ``1..N`` (float32, so no ties and
all positive — torchmetrics treats scores ≤ 0 as non-relevant), and the target is the item holding a
*planted* rank ``r_u`` (1 + geometric, so the metrics are far from 0). So ulmrec_eval's ranks must equal the
planted ranks exactly, and every peer must give the same metrics (asserted to 1e-6).

Case (c) has ties everywhere. ulmrec_eval ranks a tied target pessimistically (behind every item with the same
score: ``rank = #{j : s_j >= s_target}``), asserted against that formula; the peers break ties their own way
(by position or sort order), so on (c) their figures are *not* asserted: the table prints how far each one
is from the pessimistic figures (a scorer with ties looks better under optimistic or positional tie
breaking — the reason ulmrec_eval is pessimistic).

Every system is timed the same way: best of ``--repeat`` runs (default 3), after one warm-up call. The peers
work one query at a time (torchmetrics' retrieval functions take one 1-D query; ranx takes dictionaries of
``{query: {doc: score}}``), which is far too slow for every user: they are timed on a random subsample of
users and their time is scaled linearly to all users (per-query cost does not depend on the number of
queries); ulmrec_eval is timed both on all users and on the very same subsample, and both ratios are printed.
ranx's numba compilation (first call) is excluded; its dictionary building is shown separately. Caveats: the
machine may be shared (ratios within one run are fair, absolute seconds are not), torch runs on one thread,
and the scaled times assume a constant per-query cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ulmrec_eval.metrics import compute_metrics, target_ranks

KS = (1, 5, 10, 20)


@dataclass
class Case:
    name: str
    n_users: int
    n_items: int
    tm_users: int
    ranx_users: int
    ties: bool = False


@dataclass
class Timing:
    system: str
    users: int
    seconds: float
    scaled: float  # seconds projected to all users of the case
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


def make_data(n_users: int, n_items: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (U, N) float32 = a permutation of 1..N per row; targets with planted ranks."""
    rng = np.random.default_rng(seed)
    scores = np.empty((n_users, n_items), dtype=np.float32)
    base = np.arange(1, n_items + 1, dtype=np.float32)
    chunk = max(1, (1 << 24) // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        scores[start:stop] = rng.permuted(np.broadcast_to(base, (stop - start, n_items)), axis=1)
    planted = np.minimum(1 + rng.geometric(0.08, size=n_users), n_items).astype(np.int64)
    planted[rng.random(n_users) < 0.25] = 1                    # some users hit at rank 1
    wanted = (n_items + 1 - planted).astype(np.float32)        # the score value ranked r_u
    targets = np.empty(n_users, dtype=np.int64)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        targets[start:stop] = np.argmax(scores[start:stop] == wanted[start:stop, None], axis=1)
    return scores, targets, planted


def make_tied_data(n_users: int, n_items: int, seed: int, *, levels: int = 10
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (U, N) float32 in ``{1, …, levels}`` (ties everywhere), random targets, and the pessimistic
    ranks ``#{j : s_j >= s_target}``."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(1, levels + 1, size=(n_users, n_items)).astype(np.float32)
    targets = rng.integers(0, n_items, size=n_users).astype(np.int64)
    target_scores = scores[np.arange(n_users), targets]
    pessimistic = (scores >= target_scores[:, None]).sum(axis=1).astype(np.int64)
    return scores, targets, pessimistic


def time_it(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def ulmrec(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    return compute_metrics(target_ranks(scores, targets), KS)


def numpy_argsort(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """A plain full-sort baseline: rank = position of the target after an argsort of each row."""
    ranks = np.empty(len(targets), dtype=np.int64)
    chunk = max(1, (1 << 22) // scores.shape[1])
    for start in range(0, len(targets), chunk):
        stop = min(start + chunk, len(targets))
        order = np.argsort(-scores[start:stop], axis=1, kind="stable")
        ranks[start:stop] = np.argmax(order == targets[start:stop, None], axis=1) + 1
    return compute_metrics(ranks, KS)


def torchmetrics_functional(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    import torch
    from torchmetrics.functional.retrieval import (
        retrieval_normalized_dcg,
        retrieval_recall,
        retrieval_reciprocal_rank,
    )

    preds = torch.from_numpy(scores)
    relevant = torch.zeros(scores.shape, dtype=torch.bool)
    relevant[torch.arange(len(targets)), torch.from_numpy(targets)] = True
    sums = {f"{name}@{k}": 0.0 for name in ("recall", "mrr", "ndcg") for k in KS}
    for u in range(len(targets)):
        p, t = preds[u], relevant[u]
        for k in KS:
            sums[f"recall@{k}"] += float(retrieval_recall(p, t, top_k=k))
            sums[f"mrr@{k}"] += float(retrieval_reciprocal_rank(p, t, top_k=k))
            sums[f"ndcg@{k}"] += float(retrieval_normalized_dcg(p, t, top_k=k))
    return {key: value / len(targets) for key, value in sums.items()}


def ranx_dicts(scores: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
    from ranx import Qrels, Run

    items = [str(j) for j in range(scores.shape[1])]
    qrels = {str(u): {items[int(targets[u])]: 1} for u in range(len(targets))}
    run = {str(u): dict(zip(items, scores[u].tolist(), strict=True)) for u in range(len(targets))}
    return Qrels.from_dict(qrels), Run.from_dict(run)


def ranx_metrics(qrels: Any, run: Any) -> dict[str, float]:
    from ranx import evaluate

    names = [f"{name}@{k}" for name in ("recall", "mrr", "ndcg") for k in KS]
    out = evaluate(qrels, run, names, make_comparable=False)
    return {key: float(value) for key, value in out.items()}


def warm_up_ranx() -> float:
    start = time.perf_counter()
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    ranx_metrics(*ranx_dicts(scores, np.array([0, 0])))
    return time.perf_counter() - start


def agree(name: str, got: dict[str, float], want: dict[str, float], tol: float = 1e-6) -> None:
    for key, value in want.items():
        if abs(got[key] - value) > tol:
            raise AssertionError(f"{name} disagrees on {key}: {got[key]!r} vs ulmrec_eval {value!r}")


def compare(case: Case, name: str, got: dict[str, float], want: dict[str, float], tol: float = 1e-6) -> str:
    """Without ties: assert agreement. With ties: the largest gap to ulmrec_eval's pessimistic figures."""
    if not case.ties:
        agree(name, got, want, tol)
        return ""
    key = max(want, key=lambda k: abs(got[k] - want[k]))
    return f"; ties: {key} {got[key]:.4f} vs pessimistic {want[key]:.4f}"


def run_case(case: Case, *, seed: int, peers: set[str], repeat: int) -> list[Timing]:
    print(f"\n== ({case.name}) {case.n_users:,} users × {case.n_items:,} items "
          f"({case.n_users * case.n_items * 4 / 2**30:.2f} GiB of float32 scores)", flush=True)
    start = time.perf_counter()
    make = make_tied_data if case.ties else make_data
    scores, targets, planted = make(case.n_users, case.n_items, seed)
    print(f"   data generated in {time.perf_counter() - start:.1f} s", flush=True)

    rows: list[Timing] = []
    ulmrec(scores[:10], targets[:10])  # warm-up, as for every system
    seconds, full = time_it(lambda: ulmrec(scores, targets), repeat)
    ranks = target_ranks(scores, targets)
    what = "pessimistic ranks" if case.ties else "planted ranks"
    assert np.array_equal(ranks, planted), f"ulmrec_eval ranks differ from the {what}"
    truth = compute_metrics(planted, KS)
    agree(what, full, truth, tol=0.0)
    rows.append(Timing("ulmrec_eval (all users)", case.n_users, seconds, seconds, "counts, no sort", full))

    if "argsort" in peers:
        numpy_argsort(scores[:10], targets[:10])
        seconds, sorted_metrics = time_it(lambda: numpy_argsort(scores, targets), repeat)
        note = compare(case, "numpy argsort", sorted_metrics, full, tol=1e-12)
        rows.append(Timing("numpy full argsort (all users)", case.n_users, seconds, seconds,
                           "plain sort baseline" + note, sorted_metrics))

    rng = np.random.default_rng(seed + 1)
    if "torchmetrics" in peers and case.tm_users > 0:
        import torch

        torch.set_num_threads(1)
        n = min(case.tm_users, case.n_users)
        sub = np.sort(rng.choice(case.n_users, size=n, replace=False))
        s_scores, s_targets = np.ascontiguousarray(scores[sub]), targets[sub]
        own_seconds, own = time_it(lambda: ulmrec(s_scores, s_targets), repeat)
        torchmetrics_functional(s_scores[:10], s_targets[:10])  # warm-up
        seconds, peer = time_it(lambda: torchmetrics_functional(s_scores, s_targets), repeat)
        note = compare(case, "torchmetrics", peer, own)
        scale = case.n_users / n
        rows.append(Timing("ulmrec_eval (same subsample)", n, own_seconds, own_seconds * scale, "", own))
        rows.append(Timing("torchmetrics functional", n, seconds, seconds * scale,
                           f"1 query per call, 12 calls/user; ×{scale:.1f} scaled{note}", peer))

    if "ranx" in peers and case.ranx_users > 0:
        n = min(case.ranx_users, case.n_users)
        sub = np.sort(rng.choice(case.n_users, size=n, replace=False))
        s_scores, s_targets = np.ascontiguousarray(scores[sub]), targets[sub]
        own_seconds, own = time_it(lambda: ulmrec(s_scores, s_targets), repeat)
        ranx_metrics(*ranx_dicts(s_scores[:20], s_targets[:20]))  # warm-up: numba compiles per data shape
        build_seconds, (qrels, run) = time_it(lambda: ranx_dicts(s_scores, s_targets), repeat)
        seconds, peer = time_it(lambda: ranx_metrics(qrels, run), repeat)
        note = compare(case, "ranx", peer, own)
        scale = case.n_users / n
        rows.append(Timing("ulmrec_eval (same subsample)", n, own_seconds, own_seconds * scale, "", own))
        rows.append(Timing("ranx evaluate", n, seconds, seconds * scale,
                           f"numba, compiled beforehand; ×{scale:.1f} scaled{note}", peer))
        total = seconds + build_seconds
        rows.append(Timing("ranx evaluate + dict building", n, total, total * scale,
                           f"building Qrels/Run {build_seconds:.2f} s", peer))
    return rows


def print_table(case: Case, rows: list[Timing]) -> None:
    ours = rows[0].scaled
    agreement = ("ranks = pessimistic ranks exactly; peers break ties their own way (see notes)" if case.ties
                 else "ranks = planted ranks exactly; peers to 1e-6")
    print(f"\n   results ({agreement}): "
          f"NDCG@10 = {rows[0].metrics['ndcg@10']:.6f}, Recall@20 = {rows[0].metrics['recall@20']:.6f}")
    header = (f"   {'system':<34} {'users timed':>12} {'measured s':>11} {'all users s':>12} "
              f"{'× ulmrec':>9}  note")
    print(header)
    print("   " + "-" * (len(header) - 3))
    same = None
    for row in rows:
        if row.system == "ulmrec_eval (same subsample)":
            same = row
        base = same.seconds if (same is not None and row.users == same.users and row is not same) else None
        ratio = row.scaled / ours
        extra = f" (same-subsample ratio {row.seconds / base:,.0f}×)" if base else ""
        print(f"   {row.system:<34} {row.users:>12,} {row.seconds:>11.3f} {row.scaled:>12.2f} "
              f"{ratio:>8,.1f}×  {row.note}{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N, for every system alike")
    parser.add_argument("--peers", default="torchmetrics,ranx,argsort",
                        help="comma-separated: torchmetrics, ranx, argsort")
    parser.add_argument("--cases", default="a,b,c",
                        help="a = 1M × 100, b = Beauty-sized full ranking, c = 100k × 100 with ties")
    parser.add_argument("--tm-users-a", type=int, default=5_000, help="torchmetrics subsample, case a")
    parser.add_argument("--tm-users-b", type=int, default=1_000, help="torchmetrics subsample, case b")
    parser.add_argument("--ranx-users-a", type=int, default=50_000, help="ranx subsample, case a")
    parser.add_argument("--ranx-users-b", type=int, default=300, help="ranx subsample, case b")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    args = parser.parse_args(argv)
    peers = {p.strip() for p in args.peers.split(",") if p.strip()}

    cases = {
        "a": Case("a", 1_000_000, 100, args.tm_users_a, args.ranx_users_a),
        "b": Case("b", 22_332, 12_086, args.tm_users_b, args.ranx_users_b),
        "c": Case("c", 100_000, 100, args.tm_users_a, args.ranx_users_a, ties=True),
    }
    if args.quick:
        cases = {"a": Case("a", 20_000, 100, 200, 1_000), "b": Case("b", 500, 2_000, 50, 50),
                 "c": Case("c", 5_000, 100, 200, 1_000, ties=True)}
    print(f"ulmrec_eval metrics benchmark — python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), seed {args.seed}")
    print("   note: timings on a shared machine are inflated by other load; ratios within one run are fair.")
    if "ranx" in peers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile_seconds = warm_up_ranx()
        print(f"   ranx numba compilation (excluded from its timings): {compile_seconds:.1f} s", flush=True)
    for key in [c.strip() for c in args.cases.split(",") if c.strip()]:
        case = cases[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = run_case(case, seed=args.seed, peers=peers, repeat=args.repeat)
        print_table(case, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
