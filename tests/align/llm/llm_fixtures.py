"""Helpers shared by the LLM-half tests (importable: conftest modules are not, under importlib mode)."""

from __future__ import annotations


def metaspace_tokenizer():  # type: ignore[no-untyped-def]
    """A Llama-style (SentencePiece-like, ``▁`` word prefix, BOS added) tokenizer trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ulmrec_align.models.testing import TOKENIZER_CORPUS

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    core.train_from_iterator(list(TOKENIZER_CORPUS) * 4, trainer=trainer)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>")
