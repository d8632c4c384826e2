"""The ablation variants: each is the base config with a few stage options changed (nothing else), so every
stage a variant does not change is shared with the others through the pipeline's stage reuse.

* ``full`` — the config as given (ULMRec);
* ``noindex`` — ``align.index = "none"``: no user index in any prompt (LlamaRec-style);
* ``permuted`` — the codes shuffled among users (``--index-permute``) in training and ranking;
* ``random`` — every user a random distinct code (``--index-random``): an identity, nothing semantic;
* ``no-<task>`` — that auxiliary task's training weight set to 0 (``index_to_pref``, ``pref_to_index``,
  ``history_to_index``, ``rating``, ``intent``);
* ``added`` — the code tokens added to the vocabulary (``--index-tokens added``) instead of plain text;
* ``rqkmeans`` — the index quantized with residual k-means instead of RQ-VAE;
* ``nofusion`` — the index built from the review embedding alone (``--fusion none``: no learned user-ID
  embedding fused in);
* ``text`` — no index, but the next_item prompts show the user's preference text in words
  (``--user-text``): the upper bound of what reading the index could add at the same steps;
* ``collab`` — collaborative codes: the index built from the retriever's user vectors (its hidden state
  after each user's training prefix, ``retrieve user-vectors``) instead of review text.

Every variant also gets ``train.seed`` and ``align.seed`` = the seed; a base with a time budget
(``train.max_minutes``) has it lifted far above its steps, so variants train for equal steps, not equal
minutes (a base without one keeps none, and its runs share stages with the base config's own runs).
"""

from __future__ import annotations

from typing import Any

from ulmrec_app.pipeline.errors import PipelineError

AUX_TASKS = ("index_to_pref", "pref_to_index", "history_to_index", "rating", "intent")
VARIANTS = ("full", "noindex", "permuted", "random", *(f"no-{t}" for t in AUX_TASKS), "added", "rqkmeans",
            "nofusion", "collab", "text")
DEFAULT_VARIANTS = ("full", "noindex", "permuted")
#: Variants that differ from ``full`` only through its user index (so a base without one cannot have them).
NEEDS_INDEX = ("noindex", "permuted", "random", "added", "rqkmeans", "nofusion", "collab", "text")
#: Minutes of the time budget of every variant: far above any CPU run, so that max_steps ends training.
EQUAL_STEPS_MINUTES = 100_000


def _task_weights(base: dict[str, Any], task: str) -> list[str]:
    weights = base.get("align", {}).get("task_weight", [])
    if isinstance(weights, str):
        weights = [weights]
    kept = [w for w in weights if str(w).split("=", 1)[0].strip() != task]
    return [*kept, f"{task}=0"]


def overrides(variant: str, seed: int, base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stage options ``variant`` (with ``seed``) sets on top of ``base`` (the base config's tables)."""
    if variant not in VARIANTS:
        raise PipelineError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant in NEEDS_INDEX and str(base.get("align", {}).get("index", "")).lower() == "none":
        raise PipelineError(f"variant {variant}: changes or removes the user index, but the base config has "
                            "none (align.index = \"none\"); ablate a config with an index")
    out: dict[str, dict[str, Any]] = {"align": {"seed": seed}, "train": {"seed": seed}}
    if base.get("train", {}).get("max_minutes") is not None:
        out["train"]["max_minutes"] = EQUAL_STEPS_MINUTES
    if variant == "noindex":
        out["align"]["index"] = "none"
    elif variant == "permuted":
        out["align"]["index_permute"] = 1000 + seed
        out["rank"] = {"index_permute": 1000 + seed}
    elif variant == "random":
        out["align"]["index_random"] = 2000 + seed
        out["rank"] = {"index_random": 2000 + seed}
    elif variant.startswith("no-"):
        out["align"]["task_weight"] = _task_weights(base, variant[3:])
    elif variant == "text":
        out["align"]["index"] = "none"
        out["align"]["user_text"] = True
    elif variant == "added":
        out["align"]["index_tokens"] = "added"
    elif variant == "rqkmeans":
        out["index"] = {"quantizer": "rqkmeans"}
    elif variant == "nofusion":
        out["index"] = {"fusion": "none"}
    elif variant == "collab":
        out["index"] = {"vectors": "retriever"}
    return out
