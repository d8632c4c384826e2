"""The tuner's inputs, checked before any model loads: every sample line, a non-empty training set, and a
``--max-length`` that leaves room for a prompt beside the longest response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ulmrec_eval.runtime.errors import InputError

#: The fewest prompt tokens a sample keeps under ``--max-length`` (the prompt is cut from the left).
MIN_PROMPT_TOKENS = 16


def prepared_tokenizer(model_path: str, samples: Path, index_tokens: str) -> tuple[Any, list[int]]:
    """The base model's tokenizer, with the code tokens added when the samples use ``added`` index tokens;
    returns ``(tokenizer, ids of the added tokens)``."""
    from ulmrec_align.models.loading import load_tokenizer
    from ulmrec_align.prompts.index_tokens import add_index_tokens
    from ulmrec_align.tasks.schema import read_manifest

    tokenizer = load_tokenizer(model_path)
    if index_tokens != "added":
        return tokenizer, []
    manifest = read_manifest(samples)
    if not manifest.token_format or not manifest.codebook_sizes:
        raise InputError("samples use added index tokens but the manifest has no token_format/codebook_sizes",
                         path=samples)
    return tokenizer, add_index_tokens(tokenizer, manifest.token_format, manifest.codebook_sizes)


def check_training_inputs(samples: Path, *, model_path: str, index_tokens: str, max_length: int) -> int:
    """Read every training and validation sample (a malformed line names its file and line), refuse an
    empty training set and a ``max_length`` below the longest response + :data:`MIN_PROMPT_TOKENS`.

    Returns the number of training samples.
    """
    from ulmrec_align.prompts.encoding import encode_response
    from ulmrec_align.tasks.schema import read_samples

    rows = read_samples(samples, "train")
    if not rows:
        raise InputError("no training samples (were all task weights 0?); nothing to train",
                         path=Path(samples) / "train.jsonl")
    if (Path(samples) / "valid.jsonl").is_file():
        read_samples(samples, "valid")
    tokenizer, _ = prepared_tokenizer(model_path, samples, index_tokens)
    longest = max(len(encode_response(tokenizer, r.response, r.response_code_spans,
                                      index_tokens=index_tokens))  # type: ignore[arg-type]
                  for r in rows)
    if max_length < longest + MIN_PROMPT_TOKENS:
        raise InputError(f"--max-length {max_length} leaves no room for the prompt: the longest response is "
                         f"{longest} tokens; give at least {longest + MIN_PROMPT_TOKENS}")
    return len(rows)
