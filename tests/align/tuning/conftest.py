"""Fixtures for the tuning tests: a tiny random Llama model folder (offline, no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmrec_align.models.testing import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama_untied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, with a separate ``lm_head`` (untied), for the added-token tests."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama-untied") / "model", tie_word_embeddings=False)


COLOURS = ["red", "blue", "green", "black", "white", "pink", "gold", "grey"]
THINGS = ["shampoo", "lipstick", "cream", "mascara", "perfume", "soap", "lotion", "brush", "polish", "gel"]


def _title(item: int) -> str:
    return f"{COLOURS[item % len(COLOURS)]} {THINGS[item // len(COLOURS) % len(THINGS)]}"


def make_samples(folder: Path, *, n_train: int = 24, n_valid: int = 8, n_candidates: int = 5,
                 index_tokens: str = "plain", seed: int = 0, answer: str = "letter") -> Path:
    """A real alignment-samples folder (the build's schema) with a learnable rule: the target is the red item
    (title answers: the item whose colour the user's code names, ``<a_0>`` red, ``<a_1>`` blue, ...).

    Each user has a code ``<a_i><b_j>``; in ``added`` mode the code spans are marked so that they become
    added tokens. ``answer="title"``: no lettered candidates in the prompt, the response is the target's
    title, and every sample carries its pool's titles as ``choices`` (``align build --answer``).
    """
    import random

    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.prompts.letters import letter
    from ulmrec_align.tasks.schema import AlignConfig, AlignManifest, AlignmentSample, InputHashes
    from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl

    rng = random.Random(seed)
    items = list(range(len(COLOURS) * len(THINGS)))
    red = [i for i in items if i % len(COLOURS) == 0]
    other = [i for i in items if i % len(COLOURS) != 0]

    def sample(user: int, split: str) -> AlignmentSample:
        target = rng.choice(red)
        pool = [target, *rng.sample(other, n_candidates - 1)]
        if answer == "title":   # the colour follows the code (a content-free "always red" is a title prior)
            colour = user % 4
            target = rng.choice([i for i in items if i % len(COLOURS) == colour])
            pool = [target, *rng.sample([i for i in items if i % len(COLOURS) != colour], n_candidates - 1)]
        rng.shuffle(pool)
        code = f"<a_{user % 4}><b_{user % 3}>"
        head = "### Instruction:\nPick the item the user buys next.\n\n### Input:\nUser Index: "
        lines = "".join(f"({letter(i)}) {_title(item)}\n" for i, item in enumerate(pool))
        prompt = f"{head}{code}\nCandidates:\n{lines}\n### Response:\n"
        start = len(head)
        if answer == "title":
            prompt = f"{head}{code}\n\n### Response:\n"
            return AlignmentSample(task="next_item", split=split, user_id=user, raw_user_id=f"u{user}",  # type: ignore[arg-type]
                                   template_id="next_item/0", prompt=prompt, response=_title(target),
                                   prompt_code_spans=[(start, start + len(code))],
                                   candidates=pool, target=target, choices=[_title(i) for i in pool])
        target_letter = letter(pool.index(target))
        return AlignmentSample(task="next_item", split=split, user_id=user, raw_user_id=f"u{user}",  # type: ignore[arg-type]
                               template_id="next_item/0", prompt=prompt, response=target_letter,
                               prompt_code_spans=[(start, start + len(code))], candidates=pool, target=target,
                               target_letter=target_letter)

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(folder / "train.jsonl", [sample(u, "train") for u in range(n_train)])
    atomic_write_jsonl(folder / "valid.jsonl", [sample(u, "valid") for u in range(n_valid)])
    config = AlignConfig(tasks=["next_item"], index_tokens=index_tokens, model="tiny",  # type: ignore[arg-type]
                         prompt=PromptConfig(n_candidates=n_candidates, answer=answer))  # type: ignore[arg-type]
    manifest = AlignManifest(
        config=config, inputs=InputHashes(data_split_sha256="0" * 64, index_sha256="1" * 64,
                                          candidates_sha256=None),
        data_path="synthetic", index_path="index", candidates_path=None, tokenizer="tiny",
        token_format=["<a_{}>", "<b_{}>"], codebook_sizes=[4, 3],
        counts={"train": {"next_item": n_train}, "valid": {"next_item": n_valid}}, ulmrec_version="0.1.0")
    atomic_write_json(folder / "manifest.json", manifest.model_dump(mode="json"))
    return folder


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_samples(tmp_path_factory.mktemp("samples") / "A")


@pytest.fixture(scope="session")
def added_samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_samples(tmp_path_factory.mktemp("samples-added") / "A", index_tokens="added")
