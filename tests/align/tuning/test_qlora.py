"""QLoRA on a CPU: after an eval pass, the LoRA gradients of the NF4 model equal those of a float32 model
whose weights are the de-quantized NF4 weights — which needs ``support_avx512bf16_for_cpu = False`` on
AVX512-BF16 CPUs (there, the default repacks the weights during eval and breaks later training passes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ulmrec_align.models import ModelError, load_causal_lm
from ulmrec_align.models.loading import require_bitsandbytes


@pytest.fixture(scope="module")
def bnb() -> Any:
    try:
        return require_bitsandbytes("cpu")
    except ModelError as exc:
        pytest.skip(f"bitsandbytes 4-bit cannot run on this CPU: {exc}")


def _lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _set_lora(model: Any, seed: int) -> None:
    """Same non-zero LoRA A and B in both models (B=0 at init would leave A without gradient)."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters()):
        if "lora_" in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def _dequantized_reference(path: Path, quantized: Any, bnb: Any) -> Any:
    reference = load_causal_lm(path, quantization="none")
    modules = dict(reference.named_modules())
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            with torch.no_grad():
                modules[name].weight.copy_(weight.to(torch.float32))
    return reference


def _grads_after_eval(model: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        model(**batch)  # the eval pass that repacks weights on AVX512-BF16 CPUs unless told not to
    model.train()
    model.zero_grad()
    model(**batch).loss.backward()
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 40, 77, 120, 9, 250, 33, 2], [1, 5, 300, 64, 64, 17, 2, 2]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def test_nf4_lora_gradients_after_eval_match_a_dequantized_fp32_reference(tiny_llm: Path, bnb: Any) -> None:
    quantized = load_causal_lm(tiny_llm, quantization="nf4", device="cpu")
    linear4 = [m for m in quantized.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4
    assert all(m.support_avx512bf16_for_cpu is False for m in linear4)
    reference = _dequantized_reference(tiny_llm, quantized, bnb)
    quantized, reference = _lora(quantized), _lora(reference)
    _set_lora(quantized, 0)
    _set_lora(reference, 0)
    got, want = _grads_after_eval(quantized, _batch()), _grads_after_eval(reference, _batch())
    assert got.keys() == want.keys()
    assert len(got) == 2 * 2 * 2  # A and B of q_proj and v_proj in 2 layers
    for name in want:
        assert want[name].abs().max() > 0, name
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_training_with_nf4_on_cpu_runs_end_to_end(samples_dir: Path, tiny_llm: Path, tmp_path: Path,
                                                  bnb: Any) -> None:
    from ulmrec_align.tuning.config import TrainSettings
    from ulmrec_align.tuning.request import TrainRequest
    from ulmrec_align.tuning.run import run_training

    manifest = run_training(TrainRequest(
        samples=samples_dir, model=str(tiny_llm), out=tmp_path / "T", progress=False,
        train=TrainSettings(max_steps=2, save_steps=2, batch_size=4, quantization="nf4", lr=1e-3)))
    assert manifest.quantization == "nf4"
    assert manifest.steps == 2
    assert [h.step for h in manifest.history] == [2]
