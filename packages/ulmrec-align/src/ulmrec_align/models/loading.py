"""Load a causal LM and its tokenizer for LoRA tuning or ranking, in full precision or NF4 (QLoRA).

``quantization="auto"`` means NF4 with double quantization and bf16 compute on CUDA, and no quantization on
CPU. NF4 on a CPU is allowed when asked for explicitly (compute in float32); there every bitsandbytes
``Linear4bit`` gets ``support_avx512bf16_for_cpu = False``, because on AVX512-BF16 CPUs an eval pass otherwise
repacks the weights and later LoRA gradients come out silently wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ulmrec_align.models.errors import ModelError, missing_extra
from ulmrec_eval.runtime.devices import check_device

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Quantization = Literal["auto", "nf4", "none"]


def resolve_quantization(quantization: str, device: str) -> Literal["nf4", "none"]:
    """``auto`` → ``nf4`` on CUDA, ``none`` on CPU; ``nf4``/``none`` as given (anything else is refused)."""
    if quantization == "auto":
        return "nf4" if device.startswith("cuda") else "none"
    if quantization in ("nf4", "none"):
        return quantization  # type: ignore[return-value]
    raise ModelError(f"unknown quantization {quantization!r}; use auto, nf4 or none")


def require_bitsandbytes(device: str) -> Any:
    """Import bitsandbytes and check that a 4-bit round trip runs on ``device``; else one clear error."""
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb_functional
    except Exception as exc:  # ImportError, or a broken native library raising at import
        raise missing_extra("bitsandbytes (NF4 quantization)", f"{type(exc).__name__}: {exc}") from None
    import torch

    try:
        probe = torch.linspace(-1.0, 1.0, 128, device=device).reshape(2, 64)
        packed, state = bnb_functional.quantize_4bit(probe, quant_type="nf4", blocksize=64)
        restored = bnb_functional.dequantize_4bit(packed, state)
        if restored.shape != probe.shape or not torch.isfinite(restored).all():
            raise RuntimeError("4-bit round trip returned garbage")
    except Exception as exc:
        raise missing_extra(f"bitsandbytes 4-bit on {device}", f"{type(exc).__name__}: {exc}") from None
    return bitsandbytes


def disable_cpu_bf16_repack(model: torch.nn.Module) -> int:
    """Set ``support_avx512bf16_for_cpu = False`` on every bitsandbytes ``Linear4bit``; returns how many."""
    import bitsandbytes as bnb

    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token (the EOS token when it has none) and right padding."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except OSError as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_causal_lm(path: Path | str, *, quantization: str = "auto", device: str = "cpu",
                   dtype: torch.dtype | None = None) -> PreTrainedModel:
    """Load ``path`` (a folder or hub id) as a causal LM on ``device``.

    ``dtype`` defaults to float32 on CPU and bfloat16 on CUDA; with NF4 it is the compute dtype (bf16 on
    CUDA, float32 on CPU unless given), with double quantization, and on CPU the bf16 repack is disabled.
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_device(device, error=ModelError)
    mode = resolve_quantization(quantization, device)
    on_cuda = device.startswith("cuda")
    dtype = dtype or (torch.bfloat16 if on_cuda else torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": {"": device}}
    if mode == "nf4":
        require_bitsandbytes(device)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise ModelError(f"cannot load a causal LM from {path}: {exc}") from None
    if mode == "nf4" and not on_cuda:
        disable_cpu_bf16_repack(model)
    return model
