"""Where a run keeps what its stages wrote, named once: ``runs/<name>/<stage>/<output>``.

Every reader of a run (the stage wiring, ``ulmrec demo``, ``experiment report``, the TUI, the benches) asks a
:class:`RunLayout` for a path instead of spelling it::

    runs/<name>/data/dataset/             .dataset       (the downloaded or synthetic files: .raw)
    runs/<name>/users/user_texts.jsonl    .user_texts
    runs/<name>/index/index/              .index         (collaborative codes' input: .user_vectors)
    runs/<name>/retrieve/retriever/       .retriever     (.candidates, .retriever_metrics)
    runs/<name>/align/samples/            .samples
    runs/<name>/train/model/              .model         (.train_manifest)
    runs/<name>/rank/predictions.jsonl    .predictions
    runs/<name>/eval/metrics.json         .metrics       (the retriever alone: .retriever_eval)
    runs/<name>/compare/                  .compare       (``ulmrec demo``'s paired comparisons)

Each stage's main output is bound to its stage where the stage is declared (:mod:`ulmrec_app.pipeline.stages`,
from the names here). The defaults a reader falls back on when a run does not record a value (the pool size)
are read from the packages that define them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ulmrec_app.pipeline.config import StageName

#: Main outputs of the stages, relative to the stage's folder.
DATASET = "dataset"
USER_TEXTS = "user_texts.jsonl"
INDEX = "index"
RETRIEVER = "retriever"
SAMPLES = "samples"
MODEL = "model"
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
#: Other files the stages write that readers look for.
RAW = "raw"                              # data/: what `data synthetic` or `data download` wrote
USER_VECTORS = "user_vectors"            # index/: `retrieve user-vectors` for collaborative codes
CANDIDATES = "candidates.jsonl"          # in the retriever: ulmrec_align.retrieval.saved.CANDIDATES_FILE
RETRIEVER_METRICS = "metrics.json"       # in the retriever: ulmrec_align.retrieval.saved.METRICS_FILE
TRAIN_MANIFEST = "train_manifest.json"   # in the model: ulmrec_align.models.train_manifest.TRAIN_MANIFEST
RETRIEVER_EVAL = "retriever.json"        # eval/: `eval metrics` of the retriever's candidates alone
COMPARE = "compare"                      # <run>/compare/: `ulmrec demo`'s paired comparisons
# (the align constants are not imported: ulmrec_align.retrieval.saved loads torch; a test keeps them equal)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder ``root`` (``runs/<name>``); nothing is read or created."""

    root: Path

    def folder(self, stage: StageName) -> Path:
        """The stage's folder, ``<root>/<stage>`` (its manifest, log, events and outputs)."""
        return self.root / stage

    @property
    def dataset(self) -> Path:
        return self.folder("data") / DATASET

    @property
    def raw(self) -> Path:
        return self.folder("data") / RAW

    @property
    def user_texts(self) -> Path:
        return self.folder("users") / USER_TEXTS

    @property
    def index(self) -> Path:
        return self.folder("index") / INDEX

    @property
    def user_vectors(self) -> Path:
        return self.folder("index") / USER_VECTORS

    @property
    def retriever(self) -> Path:
        return self.folder("retrieve") / RETRIEVER

    @property
    def candidates(self) -> Path:
        return self.retriever / CANDIDATES

    @property
    def retriever_metrics(self) -> Path:
        return self.retriever / RETRIEVER_METRICS

    @property
    def samples(self) -> Path:
        return self.folder("align") / SAMPLES

    @property
    def model(self) -> Path:
        return self.folder("train") / MODEL

    @property
    def train_manifest(self) -> Path:
        return self.model / TRAIN_MANIFEST

    @property
    def predictions(self) -> Path:
        return self.folder("rank") / PREDICTIONS

    @property
    def metrics(self) -> Path:
        return self.folder("eval") / METRICS

    @property
    def retriever_eval(self) -> Path:
        return self.folder("eval") / RETRIEVER_EVAL

    @property
    def compare(self) -> Path:
        return self.root / COMPARE


def default_pool_size() -> int:
    """Candidates per user ``retrieve train`` writes when no ``pool_size`` is set
    (:class:`ulmrec_align.retrieval.config.CandidateConfig`)."""
    from ulmrec_align.retrieval.config import CandidateConfig

    return int(CandidateConfig.model_fields["pool_size"].default)


def default_n_candidates() -> int:
    """Candidates the LLM sees per prompt when no ``n_candidates`` is set
    (:class:`ulmrec_align.prompts.config.PromptConfig`)."""
    from ulmrec_align.prompts.config import PromptConfig

    return int(PromptConfig.model_fields["n_candidates"].default)


def default_ranked_n() -> int:
    """The N of the LLM's subset when neither is set: the first ``n_candidates`` of the retriever's pool; a
    reader falls back on it when a result does not record its ``retrieved_n``."""
    return min(default_pool_size(), default_n_candidates())
