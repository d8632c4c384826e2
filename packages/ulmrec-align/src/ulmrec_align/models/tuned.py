"""Read a tuned-model folder ``T/`` (``ulmrec align train --out T``): base model, LoRA adapter, tokenizer.

Below both ``tuning`` (which writes the folder) and ``ranking`` (which ranks with it).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ulmrec_align.models.train_manifest import ADAPTER_DIR, TOKENIZER_DIR, TrainManifest, read_train_manifest
from ulmrec_eval.runtime.errors import InputError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def check_safetensors(path: Path) -> None:
    """Refuse a ``.safetensors`` file that is missing, truncated or has an unreadable header, naming it.

    Reads only the header: ``size == 8 + header_length + max(end of every tensor's data_offsets)``.
    """
    if not path.is_file():
        raise InputError("missing: the tuned folder is incomplete", path=path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise InputError(f"truncated safetensors file ({size} bytes)", path=path)
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise InputError(f"truncated or not a safetensors file (header of {length} bytes in a file of "
                             f"{size})", path=path)
        try:
            header = json.loads(handle.read(length))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise InputError("not a safetensors file (unreadable header)", path=path) from None
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        raise InputError(f"truncated or corrupt: {size} bytes, its header describes {expected}", path=path)


def check_adapter(folder: Path) -> None:
    """Refuse a LoRA adapter folder whose config or weights are missing or unreadable (before any model
    is loaded), each error naming the file."""
    config = folder / ADAPTER_CONFIG
    if not config.is_file():
        raise InputError("missing: the tuned folder is incomplete", path=config)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"malformed JSON ({exc})", path=config) from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise InputError("not a PEFT adapter config (no 'peft_type')", path=config)
    check_safetensors(folder / ADAPTER_WEIGHTS)


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
    check_adapter(root / ADAPTER_DIR)
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
    try:
        tuned = PeftModel.from_pretrained(model, str(root / ADAPTER_DIR), is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load the LoRA adapter ({first})", path=root / ADAPTER_DIR) from None
    tuned.eval()
    return tuned, tokenizer, manifest
