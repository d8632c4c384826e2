"""Load a model to rank with: a folder written by ``ulmrec align train`` (base model + LoRA adapter + the
tokenizer it was tuned with + its prompt settings), or any causal LM (hub id, local folder, ``smollm2``)
ranked zero-shot with the given prompt settings."""

from __future__ import annotations

from pathlib import Path

from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.ranking.ranker import RankingModel
from ulmrec_eval.runtime.errors import InputError

TRAIN_MANIFEST = "train_manifest.json"


def load_ranking_model(model: str | Path, *, device: str = "cpu", prompt: PromptConfig | None = None,
                       index_tokens: IndexTokens = "plain", quantization: str = "none") -> RankingModel:
    """``model``: a tuned folder (has ``train_manifest.json``) or a base model name/folder/hub id."""
    folder = Path(str(model)).expanduser()
    if (folder / TRAIN_MANIFEST).is_file():
        from ulmrec_align.tuning.artifact import load_tuned

        return load_tuned(folder, device=device, quantization=quantization)
    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model

    if folder.is_dir() and (folder / "adapter_config.json").is_file():
        raise InputError("a bare LoRA adapter folder: give the folder `ulmrec align train --out` wrote "
                         "(it holds train_manifest.json)", path=folder)
    resolved = resolve_model(str(model))
    tokenizer = load_tokenizer(resolved)
    if index_tokens == "added":
        raise InputError("--index-tokens added needs a tuned model (its tokenizer holds the code tokens)")
    lm = load_causal_lm(resolved, quantization=quantization, device=device)
    return RankingModel(model=lm, tokenizer=tokenizer, prompt=prompt or PromptConfig(), index_tokens="plain",
                        name=Path(str(resolved)).name if not isinstance(resolved, str) else resolved)

