"""Benchmark: how far below ln N a ranking loss *can* go on a samples folder's pools, in a synthetic world.

Run: ``.venv/bin/python bench/pool_signal.py --run runs/demo [--samples runs/demo/align/samples]``
(no model, seconds). The samples must carry pools (``align build --answer relevance`` or ``title``).

A listwise loss over a pool of N starts at ln N (every candidate alike). What it can reach depends on what
the prompt lets a scorer know. Two scorers that need no LLM are fitted here, each a single scale ``a`` on one
feature per candidate, ``softmax(a · f)`` over the pool, ``a`` chosen on the same pools (an upper bound for
that feature, a floor for the loss):

- **history** — ``f`` = the share of the prompt's history titles that show the candidate's trait (what a
  model reading only the titles can find);
- **true trait** — ``f`` = 1 if the candidate shows the user's hidden trait (what an index or text that
  carried the trait exactly would give).

For each split and history length it prints the pools, the loss floor of each scorer and ln N; and the
standard error of a mean loss over ``--window`` training steps of ``--batch-size`` pools, so one can see
whether a floor that close to ln N could be seen in a logged training loss at all.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from ulmrec_align.data.synthetic import TRAITS
from ulmrec_align.tasks.schema import read_samples
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_index.probe import read_labels

SCALES = [x / 4 for x in range(41)]


def item_trait(title: str) -> str | None:
    """The trait a synthetic title shows, if any (a title cut short may have lost it)."""
    words = title.split()
    return next((t for t in TRAITS if t in words), None)


def history_titles(prompt: str) -> list[str]:
    """The numbered history titles of a next_item prompt (``(1) … (2) …``)."""
    body = prompt.split("User history:", 1)[-1].split("###", 1)[0]
    return [t.strip() for t in re.split(r"\(\d+\) ", body)[1:]]


def pool_loss(features: Sequence[float], target: int, scale: float) -> float:
    """``−log softmax(scale · f)[target]``."""
    scores = [scale * f for f in features]
    top = max(scores)
    return top + math.log(sum(math.exp(s - top) for s in scores)) - scores[target]


def floor(pools: Sequence[tuple[Sequence[float], int]]) -> tuple[float, float, list[float]]:
    """(best mean loss, its scale, the per-pool losses at that scale) over :data:`SCALES`."""
    best = min(SCALES, key=lambda a: sum(pool_loss(f, t, a) for f, t in pools))
    losses = [pool_loss(f, t, best) for f, t in pools]
    return statistics.fmean(losses), best, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="A run of a synthetic world (its traits).")
    parser.add_argument("--samples", type=Path, help="Default: the run's align samples.")
    parser.add_argument("--window", type=int, default=10, help="Logged steps averaged (logging_steps).")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    layout = RunLayout(args.run)
    samples = args.samples or layout.samples
    trait_files = sorted(layout.raw.glob("traits_*.jsonl"))
    if not trait_files:
        raise SystemExit(f"{layout.raw} has no traits_*.jsonl: not a run of a synthetic world")
    own = read_labels(trait_files[0])
    print(f"{samples}: next_item pools; world {args.run}")
    for split in ("train", "valid"):
        rows = [s for s in read_samples(samples, split)
                if s.task == "next_item" and s.choices and s.candidates and s.target in s.candidates]
        if not rows:
            continue
        by_length: dict[str, list[tuple[list[float], list[float], int]]] = defaultdict(list)
        shows = {"target": [0, 0], "others": [0, 0]}      # [shows the history's commonest trait, seen]
        for s in rows:
            history = [item_trait(t) for t in history_titles(s.prompt)]
            traits = [item_trait(c) for c in s.choices or []]
            share = [sum(h is not None and h == t for h in history) / max(len(history), 1) for t in traits]
            true = [float(t is not None and t == own.get(s.raw_user_id)) for t in traits]
            target = list(s.candidates).index(s.target)
            common = Counter(h for h in history if h is not None).most_common(1)
            if len(history) >= 6 and common:
                for j, t in enumerate(traits):
                    side = shows["target" if j == target else "others"]
                    side[0] += t == common[0][0]
                    side[1] += 1
            key = str(min(len(history), 6)) + ("+" if len(history) >= 6 else "")
            by_length[key].append((share, true, target))
            by_length["all"].append((share, true, target))
        n = len(rows[0].candidates or [])
        print(f"\n{split}: {len(rows)} pools of {n}, ln N = {math.log(n):.4f}")
        if shows["target"][1]:
            print(f"  6+ history items: the target shows the history's commonest trait in "
                  f"{shows['target'][0] / shows['target'][1]:.3f}, the other candidates in "
                  f"{shows['others'][0] / shows['others'][1]:.3f}")
        print(f"  {'history':>8s} {'pools':>6s} {'floor (history)':>16s} {'floor (true trait)':>19s}")
        for key in sorted(by_length, key=lambda k: (k == "all", k)):
            pools = by_length[key]
            hist, a_hist, losses = floor([(p[0], p[2]) for p in pools])
            true, a_true, _ = floor([(p[1], p[2]) for p in pools])
            print(f"  {key:>8s} {len(pools):6d} {hist:10.4f} a={a_hist:<4g} {true:12.4f} a={a_true:<4g}")
            if key == "all" and split == "train":
                window = args.window * args.batch_size
                se = statistics.stdev(losses) / math.sqrt(window)
                print(f"  a logged loss averages {window} pools: its standard error is ±{se:.3f} at the "
                      f"history floor, against a gap of {math.log(n) - hist:.3f} below ln N")


if __name__ == "__main__":
    main()
