"""Load a model to rank with: a folder written by ``ulmrec align train`` (base model + LoRA adapter + the
tokenizer it was tuned with + its prompt settings), or any causal LM (hub id, local folder, ``smollm2``)
ranked zero-shot with the given prompt settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ulmrec_align.models.train_manifest import TRAIN_MANIFEST
from ulmrec_align.models.tuned import ADAPTER_CONFIG
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.ranking.ranker import RankingModel
from ulmrec_eval.runtime.errors import InputError


def load_ranking_model(model: str | Path, *, device: str = "cpu", prompt: PromptConfig | None = None,
                       index_tokens: IndexTokens = "plain", quantization: str = "none") -> RankingModel:
    """``model``: a tuned folder (has ``train_manifest.json``) or a base model name/folder/hub id."""
    folder = Path(str(model)).expanduser()
    if (folder / TRAIN_MANIFEST).is_file():
        return load_tuned(folder, device=device, quantization=quantization)
    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model

    if folder.is_dir() and (folder / ADAPTER_CONFIG).is_file():
        raise InputError("a bare LoRA adapter folder: give the folder `ulmrec align train --out` wrote "
                         "(it holds train_manifest.json)", path=folder)
    resolved = resolve_model(str(model))
    tokenizer = load_tokenizer(resolved)
    if index_tokens == "added":
        raise InputError("--index-tokens added needs a tuned model (its tokenizer holds the code tokens)")
    lm = load_causal_lm(resolved, quantization=quantization, device=device)
    return RankingModel(model=lm, tokenizer=tokenizer, prompt=prompt or PromptConfig(), index_tokens="plain",
                        name=Path(str(resolved)).name if not isinstance(resolved, str) else resolved)


def cold_start_of(samples_config: dict[str, Any]) -> tuple[float, int] | None:
    """``(share, seed)`` of the users the samples held out (align build --cold-share), or None."""
    share = float(samples_config.get("cold_share") or 0.0)
    return (share, int(samples_config.get("cold_seed") or 0)) if share > 0 else None


def load_tuned(folder: str | Path, *, device: str = "cpu", quantization: str = "none") -> RankingModel:
    """A :class:`~ulmrec_align.ranking.ranker.RankingModel` of a tuned folder, with the prompt settings it was
    tuned with."""
    from ulmrec_align.models.tuned import load_tuned_model

    model, tokenizer, manifest = load_tuned_model(folder, device=device, quantization=quantization)
    return RankingModel(model=model, tokenizer=tokenizer, prompt=manifest.prompt,
                        index_tokens=manifest.index_tokens, name=Path(folder).absolute().name,
                        letter_prior=manifest.letter_prior, index_sha256=manifest.index_sha256,
                        tuned=manifest.schema_version >= 2,  # older manifests did not record the index
                        cold_start=cold_start_of(manifest.samples_config), fusion=manifest.fusion)
