"""``UserIndexer``: texts -> embeddings -> fused vectors -> quantized codes -> distinct codes, plus save/load.

Pipeline of :meth:`UserIndexer.fit`:

1. embed every text with the encoder (cached by model + text hash);
2. build the fusion module (:mod:`ulmrec_index.fusion`) and fuse each user's texts (and ID) into ``x_u``;
3. fit the quantizer on the fused vectors (its own k-means init, dead-code reset, …);
4. ``fusion="attention"`` with a trainable quantizer: train fusion and quantizer jointly for ``joint_epochs``
   epochs on ``quantizer.forward(fusion(u)).loss + uniformity_weight * uniformity(ID directions)`` (Adam).
   With a quantizer that cannot be trained by gradient (``rqkmeans``, ``faiss``) ``attention`` runs as
   ``mean`` (fixed random ID terms, no training); the artifact records ``fusion.effective``;
5. encode, then repair collisions with :func:`ulmrec_index.uniqueness.make_unique` (next-best
   last-level codes, then an extra level only where needed);
6. compute the report (:mod:`ulmrec_index.report`).

Bring your own vectors: :meth:`UserIndexer.fit_vectors` starts at step 2 with one given vector per user (no
text encoder; fusion ``none`` by default, i.e. the vectors are quantized as they are) and gives the same
artifact, report, save/load/lookup and collision-free cold start (:meth:`UserIndexer.encode_vectors`). Any
object with ``encode``/``dim``/``identity`` (:class:`ulmrec_index.encoders.Encoder`) can replace the
sentence-transformers encoder: ``UserIndexer(config, encoder=...)``. User ids may be ``str`` or ``int``
(stored as its decimal string).

Fewer users than codes (N < K) is allowed: the quantizers still build K-row codebooks, at most N codes per
level are used, and every user still gets a distinct code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator
from safetensors.torch import load_file, save_file

from ulmrec_eval.runtime.artifacts import atomic_dir
from ulmrec_eval.runtime.errors import InputError, UlmrecError
from ulmrec_eval.runtime.events import emit
from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl
from ulmrec_index import __version__
from ulmrec_index.artifact import (
    FUSION_FILE,
    INDEX_FILE,
    QUANTIZER_FILE,
    REPORT_FILE,
    TEXTS_FILE,
    EncoderInfo,
    ExtraLevelInfo,
    FusionInfo,
    IndexArtifact,
    load_index,
    load_report,
    read_json,
)
from ulmrec_index.codes import default_token_format, validate_token_format
from ulmrec_index.encoders import (
    PRECOMPUTED,
    Encoder,
    EncoderError,
    PrecomputedEncoder,
    TextEncoder,
    UnavailableEncoder,
    single_threaded,
    unavailable_encoder_error,
)
from ulmrec_index.fusion import FusionMode, TextBank, UserFusion, uniformity_loss
from ulmrec_index.quantizers.base import Quantizer, QuantizerConfig, TrainableQuantizer
from ulmrec_index.quantizers.registry import create_quantizer, parse_quantizer_config
from ulmrec_index.report import IndexReport, Repair, code_stats, count_collisions, reference_stats
from ulmrec_index.users import UserText, check_unique_ids
from ulmrec_index.vectors import as_user_id, as_user_ids, as_vectors

log = logging.getLogger(__name__)


class IndexerError(UlmrecError, RuntimeError):
    """The index cannot be built or used as asked (e.g. no free code left for a new user)."""


def _default_quantizer() -> QuantizerConfig:
    return parse_quantizer_config({"kind": "rqvae"})


class IndexerConfig(BaseModel):
    """Everything that decides a user index (the cache folder and progress bars aside)."""

    model_config = ConfigDict(extra="forbid")

    quantizer: SerializeAsAny[QuantizerConfig] = Field(
        default_factory=_default_quantizer,
        description="Quantizer config (dict with 'kind' or a config instance).",
    )
    encoder: str | None = Field(
        default=None, description="sentence-transformers name or folder; None: MiniLM."
    )
    fusion: FusionMode = Field(
        default="attention", description="none | mean | attention (see ulmrec_index.fusion)."
    )
    id_weight: float = Field(default=0.25, ge=0.0, description="Norm of the ID term added to the text part.")
    id_dim: int = Field(default=64, ge=1, description="User-ID embedding size.")
    attn_dim: int = Field(default=64, ge=1, description="Attention query/key size.")
    max_texts: int = Field(default=128, ge=1, description="Attention looks at a user's last max_texts texts.")
    joint_epochs: int = Field(default=5, ge=0, description="Epochs of joint fusion + quantizer training.")
    joint_lr: float = Field(default=1e-3, gt=0.0, description="Adam learning rate of the joint training.")
    joint_batch_size: int = Field(default=1024, ge=2, description="Users per joint-training step.")
    uniformity_weight: float = Field(
        default=0.1, ge=0.0, description="Weight of the ID-direction uniformity loss."
    )
    token_format: list[str] | None = Field(
        default=None, description="Per-level templates; None: <a_{}>, <b_{}>…"
    )
    seed: int = Field(
        default=0, description="Seed of fusion init, joint training and (unless set) the quantizer."
    )
    device: str = Field(default="cpu", description="Device of the text encoder.")
    encode_batch_size: int = Field(default=1, ge=1, description="Texts per encoder batch (1: bit-exact on "
                                   "every BLAS; more: same-length texts only, see ulmrec_index.encoders).")
    workers: int = Field(default=0, ge=0, description=">1: sentence-transformers multi-process pool size.")
    cache_dir: Path | None = Field(default=None, description="Embedding cache folder (None: no cache).")
    show_progress: bool = Field(default=False, description="Progress bar while encoding.")

    @field_validator("quantizer", mode="before")
    @classmethod
    def _parse_quantizer(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return parse_quantizer_config(value)
        return value


def _as_users(users: Iterable[UserText | Mapping[str, Any]]) -> list[UserText]:
    return check_unique_ids(u if isinstance(u, UserText) else UserText.model_validate(u) for u in users)


def _bank(users: Sequence[UserText], encoder: Encoder) -> TextBank:
    flat = [text for user in users for text in user.texts]
    counts = torch.tensor([len(user.texts) for user in users], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    if not flat:
        return TextBank(torch.zeros(0, encoder.dim), offsets)
    vectors = _encode_texts(encoder, flat)
    what = f"encoder {_encoder_name(encoder)!r} output"
    return TextBank(as_vectors(vectors, n=len(flat), what=what), offsets)


def _encoder_name(encoder: Encoder) -> str:
    return str(getattr(encoder, "name", type(encoder).__name__))


def _encode_texts(encoder: Encoder, texts: list[str]) -> Any:
    """``encoder.encode(texts)``; a model that cannot be loaded (a hub name offline, a missing package or
    folder) becomes one :class:`EncoderError` saying how to encode without it."""
    try:
        return encoder.encode(texts)
    except (OSError, ImportError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        name = _encoder_name(encoder)
        raise unavailable_encoder_error(name, encoder.identity, encoder.dim, reason) from exc


def _encoder_info(encoder: Encoder, dim: int) -> EncoderInfo:
    """What the artifact records of ``encoder`` (its kind decides what :meth:`UserIndexer.load` rebuilds)."""
    kind = ("sentence-transformers" if isinstance(encoder, TextEncoder)
            else PRECOMPUTED if isinstance(encoder, PrecomputedEncoder) else "custom")
    length = getattr(encoder, "max_seq_length", None) if kind != PRECOMPUTED else None
    return EncoderInfo(kind=kind, name=_encoder_name(encoder), identity=encoder.identity, dim=dim,
                       max_seq_length=length if isinstance(length, int) else None)


def _is_trainable(quantizer: Quantizer) -> bool:
    return isinstance(quantizer, TrainableQuantizer) and isinstance(quantizer, torch.nn.Module)


def _set_eval(quantizer: Quantizer) -> None:
    if isinstance(quantizer, torch.nn.Module):
        quantizer.eval()


class UserIndexer:
    """Fit, use, save and load a user index.

    >>> indexer = UserIndexer(IndexerConfig(quantizer={"kind": "rqvae", "levels": 4, "codebook_size": 256}))
    >>> indexer.fit(users).save("runs/x/index")               # doctest: +SKIP
    >>> UserIndexer.load("runs/x/index").token("A1GNYV0RA0EQSS") # doctest: +SKIP
    '<a_71><b_254><c_87><d_24>'
    """

    def __init__(self, config: IndexerConfig | None = None, *, encoder: Encoder | None = None,
                 **overrides: Any) -> None:
        if encoder is not None and not isinstance(encoder, Encoder):
            raise IndexerError(f"encoder must have encode(texts), dim and identity; "
                               f"got {type(encoder).__name__}")
        base = config or IndexerConfig()
        self.config = IndexerConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
        self.quantizer: Quantizer | None = None
        self.fusion: UserFusion | None = None
        self.artifact: IndexArtifact | None = None
        self.report: IndexReport | None = None
        self.users: list[UserText] = []
        #: The fused vectors ``(N, D)`` the quantizer encoded at the end of :meth:`fit` (not saved).
        self.fused: torch.Tensor | None = None
        self._encoder: Encoder | None = encoder

    # ------------------------------------------------------------------ building
    @property
    def encoder(self) -> Encoder:
        """The text encoder: the one given, else sentence-transformers' ``config.encoder``."""
        if self._encoder is None:
            cfg = self.config
            self._encoder = TextEncoder(
                cfg.encoder,
                device=cfg.device,
                batch_size=cfg.encode_batch_size,
                cache_dir=cfg.cache_dir,
                workers=cfg.workers,
                show_progress=cfg.show_progress,
            )
        return self._encoder

    @single_threaded
    def fit(
        self, users: Iterable[UserText | Mapping[str, Any]], *, reference: Mapping[str, Any] | None = None
    ) -> UserIndexer:
        """Build the index of ``users`` (each a :class:`UserText` or a dict of one); ``reference`` (a
        paper-style ``{"levels", "codebook_size", "codes"}`` dict) adds its figures to the report."""
        cfg = self.config
        timings: dict[str, float] = {}
        start = time.perf_counter()
        self.users = _as_users(users)
        encoder = self.encoder
        bank = _bank(self.users, encoder)
        enc_stats = getattr(encoder, "last_stats", None) if bank.embeddings.shape[0] else None
        timings["embed"] = time.perf_counter() - start
        ids = [u.user_id for u in self.users]
        return self._build(ids, bank, cfg.fusion, _encoder_info(encoder, bank.dim), enc_stats, reference,
                           timings, start)

    @single_threaded
    def fit_vectors(self, user_ids: Iterable[str | int] | np.ndarray | torch.Tensor, vectors: Any, *,
                    fusion: FusionMode = "none", reference: Mapping[str, Any] | None = None) -> UserIndexer:
        """Build the index from one vector per user: ``vectors`` ``(N, D)`` (numpy or torch, row ``i`` is
        ``user_ids[i]``, an int or str id). No text encoder runs; ``fusion="none"`` (default) quantizes the
        vectors as they are (``mean``/``attention`` add a per-user ID term of norm ``id_weight``). Save, load,
        lookup and :meth:`encode_vectors` (cold start) work as for a text index."""
        start = time.perf_counter()
        ids = as_user_ids(user_ids)
        x = as_vectors(vectors, n=len(ids))
        if self._encoder is not None and not isinstance(self._encoder, PrecomputedEncoder):
            if self._encoder.dim != x.shape[1]:
                raise IndexerError(f"vectors have dimension {x.shape[1]} but encoder "
                                   f"{_encoder_name(self._encoder)!r} gives {self._encoder.dim}")
        else:
            self._encoder = PrecomputedEncoder(x.shape[1])
        self.users = []
        bank = TextBank(x, torch.arange(len(ids) + 1, dtype=torch.int64))
        timings = {"embed": 0.0}
        return self._build(ids, bank, fusion, _encoder_info(self._encoder, x.shape[1]), None, reference,
                           timings, start)

    def _build(self, ids: list[str], bank: TextBank, fusion: FusionMode, encoder_info: EncoderInfo,
               enc_stats: Any, reference: Mapping[str, Any] | None, timings: dict[str, float],
               start: float) -> UserIndexer:
        """Steps 2-6 of the pipeline on ``bank`` (row ``u`` of its users is ``ids[u]``): fit, encode,
        make codes distinct, report, artifact."""
        n_no_text = int((bank.counts == 0).sum())
        if n_no_text:
            log.warning("%d of %d users have no text: indexed from the user-ID path alone", n_no_text,
                        len(ids))
        quantizer, fusion_module, effective, epochs, notes = self._fit(bank, fusion, timings, len(ids))
        x, raw, unique = self._encode_distinct(quantizer, fusion_module, bank, epochs, timings)
        final = unique.codes.to(torch.int64).cpu().numpy()

        t = time.perf_counter()
        levels, k = raw.shape[1], self.config.quantizer.codebook_size
        sizes = [k] * final.shape[1]
        token_format = (validate_token_format(self.config.token_format) if self.config.token_format
                        else default_token_format(len(sizes)))
        if len(token_format) < len(sizes):
            raise IndexerError(f"token_format has {len(token_format)} levels; the codes have {len(sizes)}")
        report = self._report(bank, quantizer, x, raw, unique, final, sizes, ids=ids, n_no_text=n_no_text,
                              enc_stats=enc_stats, fusion=fusion, effective=effective, notes=notes,
                              reference=reference)
        timings["report"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start
        report.timings = timings

        self.quantizer, self.fusion, self.report, self.fused = quantizer, fusion_module, report, x
        self.artifact = self._artifact(ids, final, sizes, levels, token_format, encoder_info, fusion,
                                       effective, epochs, unique)
        return self

    def _fit(self, bank: TextBank, fusion: FusionMode, timings: dict[str, float],
             n_users: int) -> tuple[Quantizer, UserFusion, FusionMode, int, list[str]]:
        """The quantizer fitted on the fused users (and, for ``attention``, trained jointly with the fusion);
        returns ``(quantizer, fusion module, effective fusion mode, joint epochs, notes)``."""
        cfg = self.config
        t = time.perf_counter()
        torch.manual_seed(cfg.seed)
        quantizer = create_quantizer(cfg.quantizer)
        effective: FusionMode = fusion
        notes: list[str] = []
        if fusion == "attention" and not _is_trainable(quantizer):
            effective = "mean"
            notes.append(f"fusion 'attention' ran as 'mean': quantizer {cfg.quantizer.kind!r} is not "
                         "trainable")
            log.warning(notes[-1])
        fusion_module = UserFusion(mode=effective, num_users=n_users, text_dim=bank.dim,
                                   id_dim=cfg.id_dim, attn_dim=cfg.attn_dim, id_weight=cfg.id_weight,
                                   max_texts=cfg.max_texts, seed=cfg.seed)
        fusion_module.init_null(bank)
        x0 = fusion_module.fuse_all(bank)
        emit(message=f"fitting {cfg.quantizer.kind} on {n_users} users")  # pipeline progress
        quantizer.fit(x0)
        timings["quantizer_fit"] = time.perf_counter() - t

        t = time.perf_counter()
        epochs = 0
        if effective == "attention" and cfg.joint_epochs > 0:
            emit(message=f"joint training of the fusion and the quantizer ({cfg.joint_epochs} epochs)")
            epochs = self._joint_train(fusion_module, quantizer, bank)
        timings["joint_train"] = time.perf_counter() - t
        return quantizer, fusion_module, effective, epochs, notes

    def _encode_distinct(self, quantizer: Quantizer, fusion_module: UserFusion, bank: TextBank, epochs: int,
                         timings: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """``(fused users (U, d), raw codes (U, L), the distinct codes)``."""
        t = time.perf_counter()
        _set_eval(quantizer)
        fusion_module.eval()
        x = fusion_module.fuse_all(bank)
        calibrate = getattr(quantizer, "calibrate", None)
        if epochs and callable(calibrate):
            # rqvae (or any quantizer offering it) settles on the final fused population after joint training:
            # codes left unused are re-seeded and the last level's Sinkhorn prices recomputed exactly.
            with torch.no_grad():
                calibrate(x)
        with torch.no_grad():
            raw = quantizer.encode(x)
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        from ulmrec_index.uniqueness import make_unique_for_quantizer

        emit(message="making every code distinct")
        with torch.no_grad():
            unique = make_unique_for_quantizer(quantizer, x, raw)
        timings["repair"] = time.perf_counter() - t
        return x, raw, unique

    def _report(self, bank: TextBank, quantizer: Quantizer, x: torch.Tensor, raw: torch.Tensor, unique: Any,
                final: Any, sizes: list[int], *, ids: list[str], n_no_text: int, enc_stats: Any,
                fusion: FusionMode, effective: FusionMode, notes: list[str],
                reference: Mapping[str, Any] | None) -> IndexReport:
        """Code usage, collisions before and after the repair, reconstruction error, reference agreement."""
        levels, k = raw.shape[1], self.config.quantizer.codebook_size
        with torch.no_grad():
            recon = quantizer.decode(torch.from_numpy(final[:, :levels]))
        err = ((x - recon) ** 2).sum(1)
        spread = ((x - x.mean(0)) ** 2).sum(1).mean()
        text = bank.means().numpy()
        raw_np = raw.to(torch.int64).cpu().numpy()
        report = IndexReport(
            n_users=len(ids),
            n_users_without_text=n_no_text,
            n_texts=int(bank.embeddings.shape[0]),
            n_texts_truncated=enc_stats.n_truncated if enc_stats else 0,
            n_texts_encoded=enc_stats.n_encoded if enc_stats else 0,
            fusion=effective if effective == fusion else f"{fusion} (ran as {effective})",
            quantizer=f"{self.config.quantizer.kind} {levels}x{k}",
            ours=code_stats(final, sizes, text),
            before_repair=code_stats(raw_np, [k] * levels, text),
            repair=Repair(
                collisions_before=count_collisions(raw_np),
                collisions_after=count_collisions(final),
                n_collided_before=int(unique.n_collided_before),
                n_reassigned=int(unique.n_reassigned),
                n_extra_level=int(unique.n_extra_level),
                extra_level_used=bool(unique.extra_level_used),
            ),
            reconstruction_mse=float(err.mean()),
            reconstruction_rel=float(err.mean() / spread) if float(spread) > 0 else 0.0,
            notes=notes,
        )
        if reference is not None:
            report.reference, report.reference_users_matched = reference_stats(reference, ids, text)
        return report

    def _artifact(self, ids: list[str], final: Any, sizes: list[int], levels: int, token_format: list[str],
                  encoder_info: EncoderInfo, fusion: FusionMode, effective: FusionMode, epochs: int,
                  unique: Any) -> IndexArtifact:
        """The :class:`IndexArtifact` of the distinct codes and the settings that made them."""
        cfg = self.config
        k = cfg.quantizer.codebook_size
        n_extra_levels = len(sizes) - levels
        extra = ExtraLevelInfo()
        if n_extra_levels:
            extra = ExtraLevelInfo(used=True, levels=n_extra_levels, codebook_size=k,
                                   n_users=int(unique.n_extra_level))
        return IndexArtifact(
            package_version=__version__,
            quantizer_kind=cfg.quantizer.kind,
            quantizer_config=cfg.quantizer.model_dump(mode="json"),
            levels=len(sizes),
            codebook_sizes=sizes,
            token_format=token_format[: len(sizes)],
            encoder=encoder_info,
            fusion=FusionInfo(mode=fusion, effective=effective, id_dim=cfg.id_dim, attn_dim=cfg.attn_dim,
                              id_weight=cfg.id_weight, max_texts=cfg.max_texts, joint_epochs=epochs),
            extra_level=extra,
            seed=cfg.seed,
            codes={uid: [int(c) for c in row] for uid, row in zip(ids, final, strict=True)},
        )

    def _joint_train(self, fusion: UserFusion, quantizer: Quantizer, bank: TextBank) -> int:
        """Adam on fusion + quantizer: ``forward(fusion(u)).loss + uniformity_weight * uniformity``."""
        cfg = self.config
        assert isinstance(quantizer, torch.nn.Module)
        trainable_q: Any = quantizer
        params = [p for p in fusion.parameters() if p.requires_grad] + [
            p for p in quantizer.parameters() if p.requires_grad
        ]
        optimizer = torch.optim.Adam(params, lr=cfg.joint_lr)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        fusion.train()
        quantizer.train()
        n = bank.num_users
        for epoch in range(cfg.joint_epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, cfg.joint_batch_size):
                users = order[i : i + cfg.joint_batch_size]
                if len(users) < 2:
                    continue
                out = trainable_q.forward(fusion(users, bank))
                loss = out.loss + cfg.uniformity_weight * uniformity_loss(fusion.id_directions(users[:512]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(users)
            log.info("joint epoch %d: loss %.5f", epoch + 1, total / n)
        quantizer.eval()
        fusion.eval()
        return cfg.joint_epochs

    # ------------------------------------------------------------------ using
    def _require(self) -> tuple[IndexArtifact, Quantizer, UserFusion]:
        if self.artifact is None or self.quantizer is None or self.fusion is None:
            raise IndexerError("the indexer is not fitted: call fit() or UserIndexer.load()")
        return self.artifact, self.quantizer, self.fusion

    @property
    def codes(self) -> dict[str, list[int]]:
        """user_id -> code of every indexed user."""
        return self._require()[0].codes

    def token(self, user_id: str | int) -> str:
        """The user's code as tokens."""
        return self._require()[0].token(as_user_id(user_id))

    def encode(self, users: Iterable[UserText | Mapping[str, Any]]) -> list[list[int]]:
        """Codes of ``users``: an indexed user_id gets its stored code; a new one is embedded, fused from its
        text alone (it has no learned ID embedding) and quantized, then moved to the nearest free last-level
        code (and extra-level slot) so it clashes neither with the index nor with the other new users."""
        artifact, _, _ = self._require()
        batch = _as_users(users)
        new = [u for u in batch if u.user_id not in artifact.codes]

        def embed_new() -> TextBank:
            try:
                return _bank(new, self.encoder)
            except (EncoderError, OSError, ImportError) as exc:
                if isinstance(self._encoder, (PrecomputedEncoder, UnavailableEncoder)):
                    raise
                info = artifact.encoder
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                UnavailableEncoder(info.name, info.identity, info.dim, reason).encode([])
                raise  # pragma: no cover - encode above always raises

        assigned: dict[str, list[int]] = {}
        if new:
            assigned = self._assign_new([u.user_id for u in new], embed_new)
        return [
            list(artifact.codes[u.user_id]) if u.user_id in artifact.codes else assigned[u.user_id]
            for u in batch
        ]

    def extend(self, users: Iterable[UserText | Mapping[str, Any]], *, share: float = 0.0,
               seed: int = 0) -> dict[str, list[int]]:
        """Encode users the fit never saw (:meth:`encode`) and keep their codes in the index, listed in
        ``cold_users`` with the cold-start ``share``/``seed`` that chose them; returns their codes."""
        artifact, _, _ = self._require()
        batch = [u for u in _as_users(users) if u.user_id not in artifact.codes]
        codes = dict(zip([u.user_id for u in batch], self.encode(batch), strict=True))
        artifact.codes.update(codes)
        artifact.cold_users.extend(codes)
        artifact.cold_share, artifact.cold_seed = share, seed
        return codes

    def encode_vectors(self, user_ids: Iterable[str | int] | np.ndarray | torch.Tensor,
                       vectors: Any) -> list[list[int]]:
        """Codes of users given by their vectors ``(N, D)`` (the cold-start form of :meth:`encode`, for an
        index from :meth:`fit_vectors` or any index whose fused space is the encoder's): an indexed id gets
        its stored code; a new one is quantized from its vector and moved to the nearest free code, so it
        clashes neither with the index nor with the other new users."""
        artifact, _, _ = self._require()
        ids = as_user_ids(user_ids)
        x = as_vectors(vectors, n=len(ids), dim=artifact.encoder.dim)
        rows = [i for i, uid in enumerate(ids) if uid not in artifact.codes]
        assigned: dict[str, list[int]] = {}
        if rows:
            new_x = x[rows]
            offsets = torch.arange(len(rows) + 1, dtype=torch.int64)
            assigned = self._assign_new([ids[i] for i in rows], lambda: TextBank(new_x, offsets))
        return [list(artifact.codes[uid]) if uid in artifact.codes else assigned[uid] for uid in ids]

    @single_threaded
    def _assign_new(self, new_ids: list[str], make_bank: Callable[[], TextBank]) -> dict[str, list[int]]:
        """Codes of users not in the index, from their texts or vectors (``make_bank``), fused without an
        ID embedding (they have none) and moved to free codes."""
        artifact, quantizer, fusion = self._require()
        x = fusion.pooled_text_only(make_bank())
        _set_eval(quantizer)
        with torch.no_grad():
            raw = quantizer.encode(x)
            levels = raw.shape[1]
            dist = quantizer.code_distances(x, levels - 1, raw[:, : levels - 1])
        taken = {tuple(code) for code in artifact.codes.values()}
        extra = artifact.extra_level
        extra_shape = (extra.codebook_size or 2, extra.levels) if extra.used else None
        out: dict[str, list[int]] = {}
        for i, uid in enumerate(new_ids):
            prefix = [int(c) for c in raw[i, : levels - 1]]
            code = self._free_code(prefix, dist[i], taken, extra_shape)
            if code is None:
                raise IndexerError(f"no free code left for new user {uid!r} under prefix {prefix}")
            taken.add(tuple(code))
            out[uid] = code
        return out

    @staticmethod
    def _free_code(
        prefix: list[int],
        distances: torch.Tensor,
        taken: set[tuple[int, ...]],
        extra_shape: tuple[int, int] | None,
    ) -> list[int] | None:
        """Nearest free last-level code after ``prefix``; with extra levels ``(K, e)``, the first free slot
        (base-K digits) under it."""
        for last in torch.argsort(distances).tolist():
            base = [*prefix, int(last)]
            if extra_shape is None:
                if tuple(base) not in taken:
                    return base
                continue
            k, n_digits = extra_shape
            for slot in range(k**n_digits):
                digits = [(slot // k**p) % k for p in range(n_digits - 1, -1, -1)]
                if (*base, *digits) not in taken:
                    return [*base, *digits]
        return None

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write the index folder (see :mod:`ulmrec_index.artifact`) whole or not at all.

        The files are written into a sibling temporary folder that then replaces ``folder``
        (:func:`ulmrec_eval.runtime.artifacts.atomic_dir`, under a lock); a non-empty ``folder`` needs
        ``force``.
        """
        artifact, quantizer, fusion = self._require()
        out = Path(folder)
        with atomic_dir(out, force=force) as tmp:
            for module, file in ((quantizer, QUANTIZER_FILE), (fusion, FUSION_FILE)):
                state = {key: t.detach().cpu().contiguous().clone() for key, t in module.state_dict().items()}
                meta: dict[str, str] | None = {"mode": fusion.mode} if module is fusion else None
                save_file(state, str(tmp / file), metadata=meta)
            if self.users:
                atomic_write_jsonl(tmp / TEXTS_FILE, self.users)
            if self.report is not None:
                atomic_write_json(tmp / REPORT_FILE, self.report.model_dump(mode="json"))
            atomic_write_json(tmp / INDEX_FILE, artifact.model_dump(mode="json"))
        return out

    @classmethod
    def load(cls, folder: str | Path, *, encoder: Encoder | None = None, **overrides: Any) -> UserIndexer:
        """Rebuild a fitted indexer from :meth:`save` output (``overrides`` e.g. ``cache_dir=...``).

        Lookups never need the encoder. To encode new users from text, the index's encoder is re-created on
        first use (sentence-transformers), or given here as ``encoder`` (required for a custom encoder; its
        ``identity`` and ``dim`` must match the index's). An index built from vectors encodes new users with
        :meth:`encode_vectors`; encoding text then says so, as does an encoder that cannot be loaded.
        """
        path = Path(folder)
        artifact = load_index(path)
        saved = artifact.encoder
        if encoder is not None and (encoder.identity != saved.identity or encoder.dim != saved.dim):
            raise IndexerError(f"encoder identity {encoder.identity!r} (D={encoder.dim}) differs from the "
                               f"index's {saved.identity!r} (D={saved.dim}): its codes would not match")
        info = artifact.fusion
        config = IndexerConfig(
            quantizer=parse_quantizer_config(artifact.quantizer_config),
            encoder=artifact.encoder.name,
            fusion=info.mode,
            id_weight=info.id_weight,
            id_dim=info.id_dim,
            attn_dim=info.attn_dim,
            max_texts=info.max_texts,
            token_format=artifact.token_format,
            seed=artifact.seed,
            **overrides,
        )
        if encoder is None and saved.kind == PRECOMPUTED:
            encoder = PrecomputedEncoder(saved.dim, saved.identity)
        elif encoder is None and saved.kind == "custom":
            encoder = UnavailableEncoder(saved.name, saved.identity, saved.dim,
                                         "a custom encoder object, of which only the identity is saved")
        indexer = cls(config, encoder=encoder)
        quantizer = create_quantizer(config.quantizer)
        quantizer.load_state_dict(load_file(str(path / QUANTIZER_FILE)))
        _set_eval(quantizer)
        fusion = UserFusion(
            mode=info.effective,
            num_users=len(artifact.codes),
            text_dim=artifact.encoder.dim,
            id_dim=info.id_dim,
            attn_dim=info.attn_dim,
            id_weight=info.id_weight,
            max_texts=info.max_texts,
            seed=artifact.seed,
        )
        fusion.load_state_dict(load_file(str(path / FUSION_FILE)))
        fusion.eval()
        indexer.quantizer, indexer.fusion, indexer.artifact = quantizer, fusion, artifact
        indexer.report = load_report(path)
        return indexer


def read_reference(path: str | Path) -> dict[str, Any]:
    """Read a reference index JSON (``{"levels", "codebook_size", "codes": {user_id: [int, …]}}``)."""
    file = Path(path)
    data = read_json(file)
    codes = data.get("codes") if isinstance(data, dict) else None
    if not isinstance(codes, dict) or not codes:
        raise InputError("reference index needs a non-empty 'codes' object {user_id: [int, ...]}", path=file)
    lengths = {len(c) for c in codes.values() if isinstance(c, list)}
    if len(lengths) != 1 or not all(
        isinstance(c, list) and all(isinstance(v, int) for v in c) for c in codes.values()
    ):
        raise InputError("reference codes must be lists of integers of one length", path=file)
    return data
