"""The alignment-samples folder ``A/``: ``train.jsonl`` / ``valid.jsonl`` (one :class:`AlignmentSample`
per line) and ``manifest.json`` (:class:`AlignManifest`). Written by ``ulmrec align build``, read by
``align train`` and ``align rank``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import read_json_model, read_jsonl_models

ALIGN_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SampleSplit = Literal["train", "valid", "test"]
#: The choices of ``align build --prefixes``, ``--negatives`` and ``--valid-order`` (:class:`AlignConfig`).
Prefixes = Literal["all", "last"]
Negatives = Literal["random", "retriever"]
ValidOrder = Literal["shuffled", "retriever"]
#: ``align build --negative-draws`` at most: each draw is another copy of every next_item training prefix
#: (K times that task's build time and size; training still passes over one draw per epoch). LlamaRec trains
#: one epoch; 16 covers any epoch count worth a fresh draw each.
MAX_NEGATIVE_DRAWS = 16


def redraw_conflict(negative_draws: int, negatives: str) -> str | None:
    """Why ``negative_draws`` cannot apply to ``negatives`` (the retriever's pools are the same in each
    draw), or None; ``align build`` and the pipeline's plan check both ask it."""
    if negative_draws > 1 and negatives == "retriever":
        return (f"--negative-draws {negative_draws} redraws random negatives for each epoch, but --negatives "
                "retriever (the default with --answer relevance) gives the same pools in every draw: pass "
                "--negatives random or --negative-draws 1")
    return None


class AlignmentSample(BaseModel):
    """One instruction sample: a prompt, the response the model must learn, and where it came from."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = ALIGN_SCHEMA_VERSION
    task: str = Field(description="Registered task name, e.g. 'next_item'.")
    split: SampleSplit = Field(description="'train' samples come from training interactions only.")
    user_id: int = Field(ge=0, description="Dense user id of the prepared dataset.")
    raw_user_id: str
    template_id: str = Field(description="'<task>/<n>': which paraphrase of the instruction was used.")
    prompt: str = Field(description="Alpaca-style prompt, ending with '### Response:\\n'.")
    response: str = Field(description="What the model is trained to answer (EOS is added when encoding).")
    prompt_code_spans: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character spans of user codes in the prompt.")
    response_code_spans: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character spans of user codes in the response.")
    candidates: list[int] | None = Field(
        default=None, description="Ranking tasks: dense item ids in letter order (A, B, ...).")
    target: int | None = Field(default=None, description="Ranking tasks: the target's dense item id.")
    target_letter: str | None = Field(default=None, description="Ranking tasks: the target's letter.")
    choices: list[str] | None = Field(
        default=None, description="next_item answered by title (validation): each candidate's answer text "
        "(its cut title), in candidates order; the ranking scores their likelihoods (title) or reads each "
        "after the prompt (relevance).")
    retriever_scores: list[float] | None = Field(
        default=None, description="next_item answered by relevance: the retriever's score of each candidate "
        "(candidates in the retriever's order); validation ranks fused with them as the test does, training "
        "pools (the retriever's top n for the prefix) add them to the LLM's with `align train "
        "--retriever-prior`.")
    draw: int = Field(
        default=0, ge=0, description="next_item training with `--negative-draws K`: which of the prefix's K "
        "draws of random negatives (and letter order) this is; training epoch e uses draw e mod K. 0 is not "
        "written, so a build without redraws writes the same lines as before draws existed.")

    @model_serializer(mode="wrap")
    def _without_draw_zero(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.draw == 0:
            data.pop("draw", None)
        return data


class InputHashes(BaseModel):
    """What the samples were built from (resume and readers refuse anything else)."""

    model_config = ConfigDict(extra="forbid")

    data_split_sha256: str
    index_sha256: str | None = Field(description="sha256 of the index's index.json; None = no index.")
    candidates_sha256: str | None


class AlignConfig(BaseModel):
    """The options of ``ulmrec align build``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(description="Tasks to build, in registry names.")
    task_weights: dict[str, float] = Field(
        default_factory=dict, description="Samples per user and task (default 1.0; 0.5 = every other user; "
        "2.0 = two samples per user).")
    index_tokens: IndexTokens = "plain"
    model: str = Field(default="smollm2", description="Model whose tokenizer counts tokens.")
    max_users: int | None = Field(default=None, ge=1, description="A seeded random subset of users.")
    seed: int = 0
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    prefixes: Prefixes = Field(
        default="all", description="next_item training samples: one per prefix of the training sequence (as "
        "LlamaRec), the latest `max_prefixes` per user; 'last': only the last training item as target.")
    max_prefixes: int | None = Field(default=10, ge=1, description="Cap on next_item prefixes per user (the "
                                     "latest ones); None = every prefix.")
    negatives: Negatives = Field(
        default="random", description="next_item training negatives: uniformly random items (LlamaRec), or "
        "the items the retriever ranks highest for that very prefix (hard, like the test candidates; needs "
        "--retriever; no later interaction is an input). With relevance answers the pool is then the "
        "retriever's top n for the prefix in its order, target included (the pools the ranker sees).")
    negative_draws: int = Field(
        default=1, ge=1, le=MAX_NEGATIVE_DRAWS, description="next_item training samples with random "
        "negatives: K draws per prefix, each with its own seeded negatives and letter order (`draw` 0..K-1); "
        "`align train` epoch e uses draw e mod K, so each epoch sees fresh negatives (LlamaRec draws them "
        "anew every epoch). Other tasks and validation: one draw. Not with --negatives retriever.")
    valid_users: int | None = Field(default=None, ge=1, description="Cap on validation samples.")
    valid_order: ValidOrder = Field(
        default="shuffled", description="Order of the lettered validation candidates: shuffled (seeded; the "
        "letter prior is estimated on them and removed) or the retriever's, as LlamaRec validates and tests "
        "(the order is information: validation then selects on the uncalibrated NDCG). Relevance answers "
        "always validate in the retriever's order.")
    index_permute: int | None = Field(default=None, description="Control: user codes shuffled among users "
                                      "with this seed (same codes, no user information).")
    index_random: int | None = Field(default=None, description="Control: every user a random distinct code "
                                     "drawn with this seed (an identity, nothing semantic).")
    cold_share: float = Field(default=0.0, ge=0.0, lt=1.0, description="Cold start: this share of users "
                              "(ulmrec_eval.cold_start) gets no training or validation samples.")
    cold_seed: int = Field(default=0, description="Seed of the cold-start choice.")

    @model_validator(mode="before")
    @classmethod
    def _older_fields(cls, data: Any) -> Any:
        """Samples built before prefixes existed had ``hard_negatives`` (validation candidates) and one
        sample per user."""
        if isinstance(data, dict) and "hard_negatives" in data:
            data = {k: v for k, v in data.items() if k != "hard_negatives"}
            data.setdefault("prefixes", "last")
        return data


class AlignManifest(BaseModel):
    """``A/manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = ALIGN_SCHEMA_VERSION
    kind: Literal["alignment-samples"] = "alignment-samples"
    config: AlignConfig
    inputs: InputHashes
    data_path: str
    index_path: str | None
    candidates_path: str | None
    tokenizer: str = Field(description="Resolved model path or hub id of the tokenizer that counted tokens.")
    token_format: list[str] | None = Field(description="User-code token templates; None without an index.")
    codebook_sizes: list[int] | None
    counts: dict[str, dict[str, int]] = Field(description="split -> task -> samples.")
    skipped: dict[str, str] = Field(default_factory=dict, description="task -> why it was not built.")
    cold_users: int = Field(default=0, description="Users held out as cold-start (no samples).")
    prompt_tokens: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="task -> mean / max prompt tokens (train split).")
    ulmrec_version: str


def read_manifest(folder: str | Path) -> AlignManifest:
    """``folder/manifest.json``; a folder without one is not a finished samples folder."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError("not an alignment-samples folder (no manifest.json); run `ulmrec align build`",
                         path=folder)
    return read_json_model(path, AlignManifest)


def read_samples(folder: str | Path, split: SampleSplit = "train") -> list[AlignmentSample]:
    """All samples of ``split``; malformed lines name the file and line."""
    read_manifest(folder)
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        raise InputError(f"no {split}.jsonl", path=folder)
    return list(read_jsonl_models(path, AlignmentSample))
