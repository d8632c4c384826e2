"""Read a tuned-model folder ``T/`` (``ulmrec align train --out T``): base model, LoRA adapter, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ulmrec_align.tuning.config import ADAPTER_DIR, TrainManifest, read_train_manifest
from ulmrec_align.tuning.train import TOKENIZER_DIR
from ulmrec_eval.errors import InputError

if TYPE_CHECKING:
    from ulmrec_align.ranking.ranker import RankingModel



def load_tuned_model(folder: str | Path, *, device: str = "cpu", quantization: str = "none",
                     check_base: bool = True) -> tuple[object, object, TrainManifest]:
    """``(peft model in eval mode, tokenizer, manifest)`` of a tuned folder.

    The base model is the one recorded in the manifest; with ``check_base`` its content identity must still
    match (a changed base model would silently give other scores).
    """
    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import model_identity, resolve_model

    root = Path(folder)
    manifest = read_train_manifest(root)
    base = manifest.base_model
    resolved = resolve_model(base.path if Path(base.path).exists() else base.name)
    if check_base and model_identity(resolved) != base.identity:
        raise InputError(f"the base model at {resolved} is not the one this adapter was tuned on "
                         f"({base.identity[:19]}…)", path=root)
    try:
        from peft import PeftModel
    except ImportError as exc:
        from ulmrec_align.models.errors import missing_extra

        raise missing_extra("peft", str(exc)) from None
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    model = load_causal_lm(resolved, quantization=quantization, device=device)
    if len(tokenizer) != model.get_input_embeddings().weight.shape[0]:  # type: ignore[index]
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # rows come from the adapter
    tuned = PeftModel.from_pretrained(model, str(root / ADAPTER_DIR), is_trainable=False)
    tuned.eval()
    return tuned, tokenizer, manifest


def load_tuned(folder: str | Path, *, device: str = "cpu", quantization: str = "none") -> RankingModel:
    """A :class:`~ulmrec_align.ranking.ranker.RankingModel` with the prompt settings it was tuned with."""
    from ulmrec_align.ranking.ranker import RankingModel

    model, tokenizer, manifest = load_tuned_model(folder, device=device, quantization=quantization)
    return RankingModel(model=model, tokenizer=tokenizer, prompt=manifest.prompt,
                        index_tokens=manifest.index_tokens, name=Path(folder).absolute().name,
                        letter_prior=manifest.letter_prior, index_sha256=manifest.index_sha256,
                        tuned=manifest.schema_version >= 2)  # older manifests did not record the index
