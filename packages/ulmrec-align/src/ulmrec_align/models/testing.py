"""Tiny offline models for tests: a random ``LlamaConfig`` model and a small byte-level BPE tokenizer.

Nothing here touches a model hub. ``write_tiny_llama(folder)`` writes a folder that
:func:`ulmrec_align.models.load_causal_lm` and ``AutoTokenizer`` load like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

#: Special tokens of the tiny tokenizer (ids 0..3, in this order).
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

TOKENIZER_CORPUS = (
    "Below is an instruction that describes a task, paired with an input that provides further context.",
    "Write a response that appropriately completes the request.",
    "### Instruction: Given the user's history, rank the candidate items. ### Input: ### Response:",
    "User Index: <a_1><b_2><c_3> The user has bought the following items in order:",
    "(A) Hydrating face cream (B) Rose shampoo (C) Matte lipstick (D) Nail polish remover (E) Eye liner",
    "Answer with the letter of the item the user is most likely to buy next. The answer is A B C D E F G H",
    "I J K L M N O P Q R S T. Rating: 1 2 3 4 5 stars. The user prefers gentle, fragrance free products.",
    "0123456789 , . ; : ! ? ' \" ( ) [ ] < > _ - / the a of and to in is for with on this that it",
)


def tiny_tokenizer(*, vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few fixed sentences (deterministic, covers any text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(list(TOKENIZER_CORPUS) * 4, trainer=trainer)
    pad, bos, eos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=pad, bos_token=bos, eos_token=eos,
                                   unk_token=unk, padding_side="right")


def write_tiny_llama(folder: str | Path, vocab_from: PreTrainedTokenizerBase | str | Path | None = None, *,
                     hidden_size: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     intermediate_size: int = 64, tie_word_embeddings: bool = True, seed: int = 0) -> Path:
    """Write a random tiny ``LlamaForCausalLM`` (safetensors) and a tokenizer to ``folder``; returns it.

    ``vocab_from``: a tokenizer (or a folder holding one) to ship instead of :func:`tiny_tokenizer`; the
    embedding has one row per token of it (``len(tokenizer)``). Same arguments and seed → same weights.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if vocab_from is None:
        tokenizer: Any = tiny_tokenizer()
    elif isinstance(vocab_from, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(str(vocab_from))
    else:
        tokenizer = vocab_from
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).float()
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
