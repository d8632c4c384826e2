"""``UserIndexer``: texts -> embeddings -> fused vectors -> quantized codes -> distinct codes, plus save/load.

Pipeline of :meth:`UserIndexer.fit`, one module a step:

1. embed every text with the encoder (cached by model + text hash) -- :mod:`ulmrec_index.embedding`;
2. build the fusion module (:mod:`ulmrec_index.fusion`) and fuse each user's texts (and ID) into ``x_u``;
3. fit the quantizer on the fused vectors (its own k-means init, dead-code reset, …);
4. ``fusion="attention"`` with a trainable quantizer: train fusion and quantizer jointly for ``joint_epochs``
   epochs on ``quantizer.forward(fusion(u)).loss + uniformity_weight * uniformity(ID directions)`` (Adam).
   With a quantizer that cannot be trained by gradient (``rqkmeans``, ``faiss``) ``attention`` runs as
   ``mean`` (fixed random ID terms, no training); the artifact records ``fusion.effective`` -- steps 2-4:
   :mod:`ulmrec_index.training`;
5. encode, then repair collisions with :func:`ulmrec_index.uniqueness.make_unique` (next-best
   last-level codes, then an extra level only where needed) -- :mod:`ulmrec_index.repair`;
6. compute the report (:mod:`ulmrec_index.report`, :mod:`ulmrec_index.fit_report`).

Steps 2-6 and the artifact: :mod:`ulmrec_index.build`. New users (:meth:`UserIndexer.encode`):
:mod:`ulmrec_index.cold_start`. Save/load: :mod:`ulmrec_index.persistence`. Settings:
:mod:`ulmrec_index.config`. This module is the facade that ties them together.

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

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ulmrec_index.artifact import EncoderInfo, IndexArtifact, load_report
from ulmrec_index.build import build_index
from ulmrec_index.cold_start import assign_codes, embed_new_users, known_or_assigned
from ulmrec_index.config import IndexerConfig, IndexerError
from ulmrec_index.embedding import as_users, encoder_info, encoder_name, text_bank
from ulmrec_index.encoders import Encoder, PrecomputedEncoder, TextEncoder, single_threaded
from ulmrec_index.fit_report import read_reference
from ulmrec_index.fusion import FusionMode, TextBank, UserFusion
from ulmrec_index.persistence import load_modules, read_settings, save_index
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.report import IndexReport
from ulmrec_index.users import UserText
from ulmrec_index.vectors import as_user_id, as_user_ids, as_vectors

__all__ = ["IndexerConfig", "IndexerError", "UserIndexer", "read_reference"]


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
        timings: dict[str, float] = {}
        start = time.perf_counter()
        self.users = as_users(users)
        encoder = self.encoder
        bank = text_bank(self.users, encoder)
        enc_stats = getattr(encoder, "last_stats", None) if bank.embeddings.shape[0] else None
        timings["embed"] = time.perf_counter() - start
        ids = [u.user_id for u in self.users]
        return self._build(ids, bank, self.config.fusion, encoder_info(encoder, bank.dim), enc_stats,
                           reference, timings, start)

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
                                   f"{encoder_name(self._encoder)!r} gives {self._encoder.dim}")
        else:
            self._encoder = PrecomputedEncoder(x.shape[1])
        self.users = []
        bank = TextBank(x, torch.arange(len(ids) + 1, dtype=torch.int64))
        timings = {"embed": 0.0}
        return self._build(ids, bank, fusion, encoder_info(self._encoder, x.shape[1]), None, reference,
                           timings, start)

    def _build(self, ids: list[str], bank: TextBank, fusion: FusionMode, info: EncoderInfo,
               enc_stats: Any, reference: Mapping[str, Any] | None, timings: dict[str, float],
               start: float) -> UserIndexer:
        """Steps 2-6 of the pipeline (:func:`ulmrec_index.build.build_index`), kept on the indexer."""
        built = build_index(self.config, ids, bank, fusion, encoder_info=info, enc_stats=enc_stats,
                            reference=reference, timings=timings, start=start)
        self.quantizer, self.fusion, self.report, self.fused = (built.quantizer, built.fusion, built.report,
                                                                built.fused)
        self.artifact = built.artifact
        return self

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
        batch = as_users(users)
        new = [u for u in batch if u.user_id not in artifact.codes]
        assigned: dict[str, list[int]] = {}
        if new:
            assigned = self._assign_new([u.user_id for u in new],
                                        lambda: embed_new_users(new, lambda: self.encoder, artifact))
        return known_or_assigned([u.user_id for u in batch], artifact, assigned)

    def extend(self, users: Iterable[UserText | Mapping[str, Any]], *, share: float = 0.0,
               seed: int = 0) -> dict[str, list[int]]:
        """Encode users the fit never saw (:meth:`encode`) and keep their codes in the index, listed in
        ``cold_users`` with the cold-start ``share``/``seed`` that chose them; returns their codes."""
        artifact, _, _ = self._require()
        batch = [u for u in as_users(users) if u.user_id not in artifact.codes]
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
        return known_or_assigned(ids, artifact, assigned)

    def _assign_new(self, new_ids: list[str], make_bank: Callable[[], TextBank]) -> dict[str, list[int]]:
        """Free codes for users not in the index (:func:`ulmrec_index.cold_start.assign_codes`)."""
        artifact, quantizer, fusion = self._require()
        return assign_codes(artifact, quantizer, fusion, new_ids, make_bank)

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write the index folder (see :mod:`ulmrec_index.artifact`) whole or not at all.

        The files are written into a sibling temporary folder that then replaces ``folder``
        (:func:`ulmrec_eval.runtime.artifacts.atomic_dir`, under a lock); a non-empty ``folder`` needs
        ``force``.
        """
        artifact, quantizer, fusion = self._require()
        return save_index(folder, artifact=artifact, quantizer=quantizer, fusion=fusion, users=self.users,
                          report=self.report, force=force)

    @classmethod
    def load(cls, folder: str | Path, *, encoder: Encoder | None = None, **overrides: Any) -> UserIndexer:
        """Rebuild a fitted indexer from :meth:`save` output (``overrides`` e.g. ``cache_dir=...``).

        Lookups never need the encoder. To encode new users from text, the index's encoder is re-created on
        first use (sentence-transformers), or given here as ``encoder`` (required for a custom encoder; its
        ``identity`` and ``dim`` must match the index's). An index built from vectors encodes new users with
        :meth:`encode_vectors`; encoding text then says so, as does an encoder that cannot be loaded.
        """
        path = Path(folder)
        artifact, config, encoder = read_settings(path, encoder, overrides)
        indexer = cls(config, encoder=encoder)
        indexer.quantizer, indexer.fusion = load_modules(path, artifact, config)
        indexer.artifact = artifact
        indexer.report = load_report(path)
        return indexer
