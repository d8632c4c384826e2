"""``ulmrec align build``: prepared data + user index + retriever candidates → alignment samples folder.

Per user (a seeded random subset with ``max_users``), every enabled task contributes
``floor(w) + Bernoulli(frac(w))`` samples for weight ``w``; the template and negatives come from one
``random.Random`` seeded by ``(seed, task, user, split, repeat)``, so the build is deterministic and adding a
task never changes another task's samples. With ``negative_draws = K`` the next_item training samples of each
repeat are built K times (``draw`` 0..K-1; draw 0 from the generator above, so it is the build without
redraws), each with its own template, negatives and letter order; ``align train`` takes draw ``e mod K`` in
epoch ``e``. Tasks the data cannot support, and tasks that need an index when there is none, are skipped with
their reason in the manifest. The folder is written whole or not at all.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulmrec_align import __version__
from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.answers.registry import get_answer
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.retrieval.candidates import CandidateRow, read_candidates
from ulmrec_align.tasks.base import BuildContext, TaskBuilder
from ulmrec_align.tasks.builders import NextItem, has_preference_source
from ulmrec_align.tasks.registry import get_task
from ulmrec_align.tasks.schema import (
    MANIFEST,
    AlignConfig,
    AlignManifest,
    AlignmentSample,
    InputHashes,
    SampleSplit,
    redraw_conflict,
)
from ulmrec_align.tasks.summarise import ExtractiveSummariser, Summariser
from ulmrec_eval.runtime.artifacts import atomic_dir, sha256_file
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl
from ulmrec_eval.runtime.limits import check_task_weight
from ulmrec_index.artifact import INDEX_FILE, IndexArtifact, load_index


@dataclass
class BuildResult:
    """In-memory result: samples per split and the manifest."""

    samples: dict[str, list[AlignmentSample]]
    manifest: AlignManifest


def user_codes(dataset: PreparedDataset, index: IndexArtifact, *,
               path: str | Path = "index") -> dict[int, str]:
    """Dense user id -> code text; every user of the data must be in the index."""
    codes: dict[int, str] = {}
    for user in dataset.users:
        if user.raw_id not in index.codes:
            raise InputError(f"user {user.raw_id!r} of the dataset is not in the index (built from other "
                             "users?); rebuild it from `ulmrec data users` of this dataset", path=path)
        codes[user.user_id] = index.token(user.raw_id)
    return codes


def permute_codes(codes: dict[int, str], seed: int | None) -> dict[int, str]:
    """``codes`` shuffled among the users with ``seed`` (None: unchanged): the same code distribution, no
    information about the user — the control that tells a user index from a mere extra token.

    The shuffle is a random cyclic permutation (Sattolo's algorithm), so no user keeps its own code: a
    uniform shuffle leaves about one user in place on average and, with few users, sometimes many (or all).

    >>> shuffled = permute_codes({0: "a", 1: "b", 2: "c"}, 1)
    >>> sorted(shuffled.values()), [u for u, c in shuffled.items() if c == "abc"[u]]
    (['a', 'b', 'c'], [])
    """
    if seed is None:
        return codes
    users = sorted(codes)
    values = [codes[u] for u in users]
    rng = random.Random(seed)
    for i in range(len(values) - 1, 0, -1):
        j = rng.randrange(i)  # j < i (never i itself): one cycle through every user
        values[i], values[j] = values[j], values[i]
    return dict(zip(users, values, strict=True))


def random_codes(codes: dict[int, str], seed: int | None, *, codebook_sizes: Sequence[int],
                 token_format: Sequence[str]) -> dict[int, str]:
    """Every user a distinct code drawn uniformly from the index's code space (``codebook_sizes``, rendered
    with ``token_format``) with ``seed`` (None: unchanged): codes of the same length and vocabulary, and
    as distinct as the real ones, that carry nothing about the user but an identity — the control that tells
    semantic codes from an ID-like token.

    >>> sorted(random_codes({0: "x", 1: "y"}, 3, codebook_sizes=[2, 2], token_format=["<a_{}>", "<b_{}>"])
    ...        .values())
    ['<a_0><b_0>', '<a_1><b_1>']
    """
    if seed is None:
        return codes
    from ulmrec_index.codes import format_code

    space = math.prod(codebook_sizes)
    if len(codes) > space:
        raise InputError(f"{len(codes)} users cannot get distinct random codes from {space} codes")
    rng = random.Random(seed)
    drawn: set[tuple[int, ...]] = set()
    out: dict[int, str] = {}
    for user in sorted(codes):
        while True:
            code = tuple(rng.randrange(k) for k in codebook_sizes)
            if code not in drawn:
                break
        drawn.add(code)
        out[user] = format_code(list(code), token_format)
    return out


def control_codes(codes: dict[int, str], index: IndexArtifact, *, permute: int | None = None,
                  random_seed: int | None = None) -> dict[int, str]:
    """The codes the prompts show: the index's, or a control (``permute``: shuffled among users;
    ``random_seed``: random distinct codes); at most one control."""
    if permute is not None and random_seed is not None:
        raise InputError("--index-permute and --index-random are two different controls: give one")
    if random_seed is not None:
        return random_codes(codes, random_seed, codebook_sizes=index.codebook_sizes,
                            token_format=index.token_format)
    return permute_codes(codes, permute)


def retriever_negatives(dataset: PreparedDataset, retriever: Any, users: Sequence[int], config: AlignConfig,
                        *, batch: int = 256) -> tuple[dict[tuple[int, int], list[int]],
                                                      dict[tuple[int, int], dict[int, float]]]:
    """``(ranked, scores)``: ``ranked[(user, prefix length)]`` the retriever's best items for that prefix
    (items of the prefix masked), for every next_item training prefix of ``users``; ``scores[key]`` its
    scores of those items and of the prefix's target (the pool a relevance sample trains on carries them,
    for ``align train --retriever-prior``). The retriever reads only the prefix, so no later interaction is
    an input. ``2 × n_candidates`` items are kept (the target is removed later)."""
    import torch

    from ulmrec_align.tasks.builders import training_prefixes

    keys = [(u, t) for u in users for t in training_prefixes(dataset.splits[u].train, mode=config.prefixes,
                                                              cap=config.max_prefixes)]
    keep = min(2 * config.prompt.n_candidates, dataset.n_items)
    out: dict[tuple[int, int], list[int]] = {}
    by_item: dict[tuple[int, int], dict[int, float]] = {}
    with torch.no_grad():
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            histories = [list(dataset.splits[u].train[:t]) for u, t in chunk]
            scores = retriever.score_histories(histories).float().clone()
            for row, history in enumerate(histories):
                scores[row, history] = -float("inf")
            top = scores.topk(keep, dim=1).indices.tolist()
            for row, (key, items) in enumerate(zip(chunk, top, strict=True)):
                user, length = key
                target = int(dataset.splits[user].train[length])
                out[key] = [int(i) for i in items]
                by_item[key] = {i: float(scores[row, i]) for i in (*out[key], target)}
    return out, by_item


def check_candidates(dataset: PreparedDataset, rows: dict[tuple[str, int], CandidateRow],
                     path: str | Path) -> None:
    """Refuse candidates written for another dataset (targets must be the split's targets)."""
    for (split, user), row in rows.items():
        if user >= dataset.n_users:
            raise InputError(f"user {user} is not in the dataset ({dataset.n_users} users): candidates of "
                             "another dataset?", path=path)
        s = dataset.splits[user]
        want = s.valid_target if split == "valid" else s.test_target
        if row.target != want:
            raise InputError(f"user {user}'s {split} target is {row.target} here but {want} in the dataset: "
                             "candidates of another dataset or split", path=path)


def _rng(seed: int, *parts: object) -> random.Random:
    key = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(key[:8], "little"))


def _draw_rng(seed: int, task: str, user: int, split: str, repeat: int, draw: int) -> random.Random:
    """The generator of one draw; draw 0's is the one a build without redraws uses (same samples)."""
    return _rng(seed, task, user, split, repeat) if draw == 0 else _rng(seed, task, user, split, repeat,
                                                                         "draw", draw)


def negative_draws(builder: TaskBuilder, split: str, config: AlignConfig) -> int:
    """How many draws of ``builder``'s samples ``split`` gets: ``config.negative_draws`` for next_item
    training samples (their random negatives and letter order, redrawn for each training epoch), else 1."""
    return config.negative_draws if builder.name == NextItem.name and split == "train" else 1


def _drawn(rows: list[AlignmentSample], draw: int) -> list[AlignmentSample]:
    return rows if draw == 0 else [row.model_copy(update={"draw": draw}) for row in rows]


def _repeats(weight: float, rng: random.Random) -> int:
    whole = math.floor(weight)
    return whole + (1 if rng.random() < weight - whole else 0)


def cold_start_users(dataset: PreparedDataset, config: AlignConfig, index: IndexArtifact | None) -> set[int]:
    """Dense ids of the users held out as cold-start (``config.cold_share``); an index that held out another
    share or seed would make "cold" mean two different things, and is refused."""
    if index is not None:   # also an index fitted on every user, under --cold-share here
        from ulmrec_eval.cold_start import check_same_cold_start

        check_same_cold_start((index.cold_share, index.cold_seed), (config.cold_share, config.cold_seed))
    if config.cold_share <= 0:
        return set()
    from ulmrec_eval.cold_start import is_cold

    return {u.user_id for u in dataset.users if is_cold(u.raw_id, config.cold_share, seed=config.cold_seed)}


def select_users(n_users: int, max_users: int | None, seed: int) -> list[int]:
    """All users, or a seeded random subset of ``max_users`` (sorted)."""
    if max_users is None or max_users >= n_users:
        return list(range(n_users))
    return sorted(random.Random(seed).sample(range(n_users), max_users))


def build_samples(dataset: PreparedDataset, config: AlignConfig, tokenizer: Any, *,
                  index: IndexArtifact | None, candidates: dict[tuple[str, int], CandidateRow],
                  inputs: InputHashes, paths: dict[str, str | None], tokenizer_name: str,
                  summariser: Summariser | None = None, retriever: Any | None = None,
                  progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Build every enabled task's samples in memory (see the module docstring). ``retriever`` (a loaded
    sequence retriever) is needed for ``negatives="retriever"``."""
    _check_negatives(config, retriever)
    ctx = _context(dataset, config, tokenizer, index=index, candidates=candidates, summariser=summariser,
                   index_path=paths.get("index") or "index")
    builders, skipped = _enabled_builders(ctx)
    users = select_users(dataset.n_users, config.max_users, config.seed)
    cold = cold_start_users(dataset, config, index)
    users = [u for u in users if u not in cold]
    if config.negatives == "retriever" and any(b.name == "next_item" for b in builders):
        ctx.hard_negatives, ctx.prefix_scores = retriever_negatives(dataset, retriever, users, config)
    samples: dict[str, list[AlignmentSample]] = {"train": [], "valid": []}
    for done, user in enumerate(users, start=1):
        for builder in builders:
            for split in builder.splits:
                samples[split] += _user_samples(ctx, builder, user, split)
        if progress is not None:
            progress(done, len(users))
    samples["valid"] = _cap_valid(samples["valid"], config)
    manifest = _manifest(ctx, samples, builders, skipped, index=index, inputs=inputs, paths=paths,
                         tokenizer_name=tokenizer_name, cold_users=len(cold))
    return BuildResult(samples=samples, manifest=manifest)


def _check_negatives(config: AlignConfig, retriever: Any | None) -> None:
    """Retriever negatives need the retriever and cannot be redrawn (the one place ``align build`` checks)."""
    conflict = redraw_conflict(config.negative_draws, config.negatives)
    if conflict is not None:
        raise InputError(conflict)
    if config.negatives == "retriever" and retriever is None:
        answer = config.prompt.answer
        default = (f" (the default with --answer {answer})" if get_answer(answer).negatives == "retriever"
                   else "")
        raise InputError(f"--negatives retriever{default} needs --retriever (the folder of `ulmrec retrieve "
                         "train`); or pass --negatives random")


def _context(dataset: PreparedDataset, config: AlignConfig, tokenizer: Any, *, index: IndexArtifact | None,
             candidates: dict[tuple[str, int], CandidateRow], summariser: Summariser | None,
             index_path: str) -> BuildContext:
    """What the builders share: the prompt builder (the code tokens added to ``tokenizer`` in ``added``
    mode), the codes the prompts show (the index's or a control; None without an index), the candidates."""
    if config.index_tokens == "added" and index is not None:
        from ulmrec_align.prompts.index_tokens import add_index_tokens

        add_index_tokens(tokenizer, index.token_format, index.codebook_sizes)
    prompts = PromptBuilder(tokenizer, config.prompt, titles=dataset.titles(),
                            index_tokens=config.index_tokens if index is not None else "plain")
    codes = None
    if index is not None:
        codes = control_codes(user_codes(dataset, index, path=index_path), index,
                              permute=config.index_permute, random_seed=config.index_random)
    ctx = BuildContext(dataset=dataset, config=config, prompts=prompts, codes=codes,
                       candidates=candidates, summariser=summariser or ExtractiveSummariser())
    if config.prompt.user_text:
        _check_user_text(ctx, summariser)
    return ctx


def _check_user_text(ctx: BuildContext, summariser: Summariser | None) -> None:
    """``--user-text`` shows the extractive preference text (what ``align rank`` writes again), from data
    that has some."""
    if summariser is not None and not isinstance(summariser, ExtractiveSummariser):
        raise InputError("--user-text shows the default (extractive) preference text, which "
                         "`align rank` writes again; another summariser would make the ranked prompts "
                         "differ from the trained ones")
    if not has_preference_source(ctx):
        raise InputError("--user-text: the data has no preference, review or user texts to show")


def _enabled_builders(ctx: BuildContext) -> tuple[list[TaskBuilder], dict[str, str]]:
    """The builders of ``config.tasks`` the data supports, and ``task -> why`` for the others (an index
    task without an index; validation without validation candidates)."""
    builders = []
    skipped: dict[str, str] = {}
    for name in ctx.config.tasks:
        builder = get_task(name)
        if builder.needs_index and ctx.codes is None:
            skipped[name] = "needs a user index (built with --index none)"
            continue
        reason = builder.unsupported_reason(ctx)
        if reason is not None:
            skipped[name] = reason
            continue
        builders.append(builder)
    if ("valid" in {s for b in builders for s in b.splits}
            and not any(k[0] == "valid" for k in ctx.candidates)):
        skipped.setdefault("next_item:valid", "no validation candidates (--candidates not given)")
    return builders, skipped


def _user_samples(ctx: BuildContext, builder: TaskBuilder, user: int,
                  split: SampleSplit) -> list[AlignmentSample]:
    """One user's samples of one task and split: ``floor(w) + Bernoulli(frac(w))`` repeats of the task's
    weight ``w`` (1 outside training), each built once per draw, from its own seeded generator."""
    config = ctx.config
    weight = config.task_weights.get(builder.name, 1.0) if split == "train" else 1.0
    rows: list[AlignmentSample] = []
    for repeat in range(_repeats(weight, _rng(config.seed, builder.name, user, split, "weight"))):
        for draw in range(negative_draws(builder, split, config)):
            rng = _draw_rng(config.seed, builder.name, user, split, repeat, draw)
            rows += _drawn(builder.build(ctx, user, split, rng), draw)
    return rows


def _cap_valid(rows: list[AlignmentSample], config: AlignConfig) -> list[AlignmentSample]:
    """At most ``config.valid_users`` validation samples per task (ranking and code-writing samples), a
    seeded choice kept in order."""
    if config.valid_users is None:
        return rows
    capped: list[AlignmentSample] = []
    for task in dict.fromkeys(x.task for x in rows):
        kept = [x for x in rows if x.task == task]
        if len(kept) > config.valid_users:
            keep = sorted(random.Random(config.seed).sample(range(len(kept)), config.valid_users))
            kept = [kept[i] for i in keep]
        capped += kept
    return capped


def _manifest(ctx: BuildContext, samples: dict[str, list[AlignmentSample]], builders: list[TaskBuilder],
              skipped: dict[str, str], *, index: IndexArtifact | None, inputs: InputHashes,
              paths: dict[str, str | None], tokenizer_name: str, cold_users: int) -> AlignManifest:
    """The manifest: inputs, counts per split and task, skipped tasks (a task that built nothing too), the
    prompt lengths of the first 2000 training samples."""
    counts: dict[str, dict[str, int]] = {split: defaultdict(int) for split in samples}
    lengths: dict[str, list[int]] = defaultdict(list)
    for split_name, rows in samples.items():
        for sample in rows:
            counts[split_name][sample.task] += 1
    for builder in builders:
        if not any(counts[s].get(builder.name) for s in counts):
            skipped.setdefault(builder.name, "no user had what this task needs")
    for sample in samples["train"][:2000]:
        lengths[sample.task].append(ctx.prompts.count_text(sample.prompt, sample.prompt_code_spans))
    return AlignManifest(
        config=ctx.config, inputs=inputs, data_path=str(paths.get("data")), index_path=paths.get("index"),
        candidates_path=paths.get("candidates"), tokenizer=tokenizer_name,
        token_format=list(index.token_format) if index else None,
        codebook_sizes=list(index.codebook_sizes) if index else None,
        counts={split: dict(c) for split, c in counts.items()}, skipped=skipped, cold_users=cold_users,
        prompt_tokens={task: {"mean": sum(v) / len(v), "max": float(max(v))}
                       for task, v in lengths.items()},
        ulmrec_version=__version__)


def write_samples(out: str | Path, result: BuildResult, *, force: bool = False) -> Path:
    """Write ``train.jsonl``, ``valid.jsonl`` and ``manifest.json`` as one whole folder."""
    with atomic_dir(out, force=force) as tmp:
        for split, rows in result.samples.items():
            atomic_write_jsonl(tmp / f"{split}.jsonl", rows)
        atomic_write_json(tmp / MANIFEST, result.manifest.model_dump(mode="json"))
    return Path(out)


def load_inputs(data: str | Path, index: str | Path | None, candidates: str | Path | None,
                ) -> tuple[PreparedDataset, IndexArtifact | None, dict[tuple[str, int], CandidateRow],
                           InputHashes]:
    """Read and cross-check the three inputs; hash them for the manifest."""
    dataset = PreparedDataset.load(data)
    artifact = load_index(index) if index is not None else None
    rows = read_candidates(candidates) if candidates is not None else {}
    if candidates is not None:
        check_candidates(dataset, rows, candidates)
    index_file = None if index is None else (
        Path(index) / INDEX_FILE if Path(index).is_dir() else Path(index))
    inputs = InputHashes(data_split_sha256=dataset.manifest.split_sha256,
                         index_sha256=sha256_file(index_file) if index_file else None,
                         candidates_sha256=sha256_file(candidates) if candidates is not None else None)
    return dataset, artifact, rows, inputs


def parse_task_weights(values: Sequence[str]) -> dict[str, float]:
    """``["rating=0.5", ...]`` -> ``{"rating": 0.5}``; a malformed value is an :class:`InputError`."""
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            weight = float(number)
        except ValueError:
            weight = float("nan")
        if not sep or not name or not math.isfinite(weight) or weight < 0:
            raise InputError(f"--task-weight expects NAME=W with W a finite number >= 0, got {value!r}")
        out[name.strip()] = check_task_weight(name.strip(), weight)
    return out
