"""Benchmark: how much a user index *could* add on a synthetic world, before any LLM is trained.

Run: ``.venv/bin/python bench/world.py [--run runs/demo] [--history-items 6] [--limit 80]`` on any run of a
synthetic world (``ulmrec data synthetic``) with its data and retrieve stages done.

In the synthetic world every user has a hidden trait (``traits_<Category>.jsonl``, ground truth no stage
reads) and every item shows one in its title. The reviews state the trait (``--signal reviews``), so a
perfect user index knows it; a ranker that only reads the prompt's history can at best guess it from the
titles there. This bench measures both and what they are worth on the retriever's top ``N``:

* **history reads the trait** — share of users whose most common trait among the last ``--history-items``
  history titles (what the prompt shows) is their own;
* **target has the trait** — share of targets that carry the user's trait;
* **re-rankings of the retriever's top N** (users whose target is there: the subset), NDCG@10:
  ``LRURec order``; ``trait first (history)`` — candidates carrying the history's most common trait moved
  first, the retriever's order kept otherwise; ``trait first (true)`` — the same with the user's true trait,
  the most a ranker can gain from knowing it by this simple rule.

``trait first (true) − trait first (history)`` is the **headroom of the index**: what knowing the trait
exactly adds over reading it off the history. Paired comparisons (bootstrap 95 % CI, sign-flip p) are over
all subset users of the split and over the first ``--limit`` test users (the users ``ulmrec demo`` ranks), so
one can see whether even a perfect reader could reach p < 0.05 on that sample.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.synthetic import TRAITS
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_eval.compare import paired_comparison
from ulmrec_eval.metrics import ndcg_at_k_per_user
from ulmrec_index.probe import read_labels

ROOT = Path(__file__).resolve().parents[1]


def item_trait(title: str) -> str | None:
    """The trait a synthetic title shows (``"<Brand> <Trait> <Adjective> <Type>, <size>"``), if any."""
    return next((t for t in TRAITS if f" {t} " in title), None)


def ndcg_at_10(ranked: Sequence[int], target: int) -> float:
    return float(ndcg_at_k_per_user([list(ranked).index(target) + 1], 10)[0])


def trait_first(candidates: Sequence[int], traits: Sequence[str | None], trait: str | None) -> list[int]:
    """Candidates carrying ``trait`` first, each group in the given order (a stable sort)."""
    return sorted(candidates, key=lambda i: traits[i] != trait)


def user_traits(run: Path, dataset: PreparedDataset) -> list[str]:
    by_raw = read_labels(sorted(RunLayout(run).raw.glob("traits_*.jsonl"))[0])
    return [by_raw[u.raw_id] for u in dataset.users]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--history-items", type=int, default=6,
                        help="History titles a prompt shows (the demo's align.history_items).")
    parser.add_argument("--n-candidates", type=int, default=10, help="Retriever candidates re-ranked.")
    parser.add_argument("--limit", type=int, default=80, help="First test users, as `align rank --limit`.")
    args = parser.parse_args()
    layout = RunLayout(args.run)
    if not sorted(layout.raw.glob("traits_*.jsonl")):
        raise SystemExit(f"{layout.raw} has no traits_*.jsonl: not a run of a synthetic world "
                         "(ulmrec data synthetic)")
    dataset = PreparedDataset.load(layout.dataset)
    traits = [item_trait(t) for t in dataset.titles()]
    own = user_traits(args.run, dataset)
    candidates = read_candidates(layout.candidates)
    splits = {s.user_id: s for s in dataset.splits}
    summary: dict[str, object] = {"run": str(args.run), "history_items": args.history_items,
                                  "n_candidates": args.n_candidates}
    print(f"{args.run}: {dataset.n_users} users, {dataset.n_items} items; last {args.history_items} history "
          f"items, retriever top {args.n_candidates}")
    for split in ("valid", "test"):
        reads = has = 0
        rows: list[tuple[int, float, float, float]] = []      # (user, LRURec, history, true)
        for user, s in splits.items():
            history = list(s.valid_input if split == "valid" else s.test_input)[-args.history_items:]
            target = s.valid_target if split == "valid" else s.test_target
            guess = Counter(traits[i] for i in history).most_common(1)[0][0]
            reads += guess == own[user]
            has += traits[target] == own[user]
            row = candidates.get((split, user))
            if row is None:
                continue
            top = list(row.candidates[: args.n_candidates])
            if target not in top:
                continue
            rows.append((user, ndcg_at_10(top, target),
                         ndcg_at_10(trait_first(top, traits, guess), target),
                         ndcg_at_10(trait_first(top, traits, own[user]), target)))
        n = len(splits)
        print(f"\n{split}: history reads the trait {reads / n:.3f}, target has the trait {has / n:.3f} "
              f"({n} users)")
        samples = {"all": rows}
        if split == "test":
            first = set(sorted(splits)[: args.limit])
            samples[f"first {args.limit}"] = [r for r in rows if r[0] in first]
        block: dict[str, object] = {"history_reads_trait": reads / n, "target_has_trait": has / n}
        for label, sample in samples.items():
            lrurec, hist, true = ([r[k] for r in sample] for k in (1, 2, 3))
            n_sample = len(sample)
            means = [sum(v) / n_sample for v in (lrurec, hist, true)]
            print(f"  subset of {label} ({n_sample} users) NDCG@10: LRURec order {means[0]:.4f}, "
                  f"trait first (history) {means[1]:.4f}, trait first (true) {means[2]:.4f}")
            pairs = {"trait first (true) − trait first (history)": (hist, true),
                     "trait first (history) − LRURec order": (lrurec, hist),
                     "trait first (true) − LRURec order": (lrurec, true)}
            out = {}
            for name, (a, b) in pairs.items():
                c = paired_comparison(a, b, metric="ndcg@10")
                out[name] = c.model_dump()
                print(f"    {name}: {c.difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], "
                      f"p = {c.p_value:.4g}")
            block[label] = {"users": len(sample), "comparisons": out}
        summary[split] = block
    out_dir = ROOT / "runs" / f"bench-world-{args.run.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"\nsummary: {out_dir / 'summary.json'}")


if __name__ == "__main__":
    from ulmrec_eval.runtime.errors import InputError

    try:
        main()
    except InputError as exc:          # a wrong --run: one line, no traceback
        raise SystemExit(f"bench/world.py: {exc}") from None
