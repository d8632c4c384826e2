"""Validation of the code-writing tasks: exact match from one teacher-forced pass is exactly "greedy decoding
writes the whole code", and training records per-task validation loss and exact match."""

from __future__ import annotations

from pathlib import Path

import torch

from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
from ulmrec_align.prompts.encoding import IGNORE_INDEX, encode_sample
from ulmrec_align.tasks.schema import AlignmentSample
from ulmrec_align.tuning.validation import code_matches, code_task_scores


def _sample(user: int, code: str, text: str) -> AlignmentSample:
    return AlignmentSample(task="pref_to_index", split="valid", user_id=user, raw_user_id=f"u{user}",
                           template_id="pref_to_index/0",
                           prompt="### Instruction:\nWhich user index?\n\n### Input:\n"
                                  f"Preferences: {text}\n\n### Response:\n",
                           response=code, response_code_spans=[(0, len(code))])


def _greedy_writes(model: torch.nn.Module, tokenizer: object, sample: AlignmentSample) -> bool:
    encoded = encode_sample(tokenizer, sample)
    start = next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
    answer = encoded.input_ids[start:]
    prompt = torch.tensor([encoded.input_ids[:start]])
    generate = model.generate  # type: ignore[operator]
    out = generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=len(answer),
                   do_sample=False, pad_token_id=0)
    return out[0, start:].tolist() == answer


def test_exact_match_is_greedy_decoding_of_the_whole_code(tiny_llm: Path) -> None:
    torch.manual_seed(0)
    tokenizer = load_tokenizer(tiny_llm)
    model = load_causal_lm(tiny_llm, quantization="none")
    learned = _sample(0, "<a_1><b_2><c_3>", "gentle fragrance free products")
    other = _sample(1, "<a_3><b_1><c_2>", "matte lipstick and nail polish")
    encoded = encode_sample(tokenizer, learned)
    ids, labels = torch.tensor([encoded.input_ids]), torch.tensor([encoded.labels])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):                                    # memorise one code
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    matches = code_matches(model, tokenizer, [learned, other], index_tokens="plain", batch_size=2)
    assert [m[2] for m in matches] == [_greedy_writes(model, tokenizer, s) for s in (learned, other)]
    assert matches[0][2] is True                           # the memorised code is written exactly
    assert matches[1][2] is False
    assert matches[0][0] / matches[0][1] < matches[1][0] / matches[1][1]
    scores = code_task_scores(model, tokenizer, [learned, other], index_tokens="plain", batch_size=1)
    assert scores == {"pref_to_index": {"exact": 0.5, "loss": scores["pref_to_index"]["loss"]}}
    assert scores["pref_to_index"]["loss"] > 0
