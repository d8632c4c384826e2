"""One ``--device`` rule for every command: :func:`ulmrec_eval.runtime.devices.check_device`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from ulmrec_eval.runtime.devices import DeviceError, check_device
from ulmrec_eval.runtime.errors import is_user_error

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_is_accepted_and_returned() -> None:
    assert check_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["bogus", "cuda:x", ""])
def test_a_bogus_name_is_one_user_error(device: str) -> None:
    with pytest.raises(DeviceError, match=f"--device {device!r} is not a device") as info:
        check_device(device)
    assert is_user_error(info.value)


def test_another_torch_device_type_is_refused() -> None:
    with pytest.raises(DeviceError, match="device type 'meta' is not supported"):
        check_device("meta")


def test_cuda_needs_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda") == "cuda"
    assert check_device("cuda:0") == "cuda:0"
    with pytest.raises(DeviceError, match="only 1 CUDA device"):
        check_device("cuda:1")


@pytest.mark.parametrize("available", [True, False])
def test_mps_is_accepted_where_torch_reports_it_available(monkeypatch: pytest.MonkeyPatch,
                                                          available: bool) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)
    if available:
        assert check_device("mps") == "mps"
    else:
        with pytest.raises(DeviceError, match="MPS is not available here"):
            check_device("mps")


def test_a_package_keeps_its_own_error_type() -> None:
    from ulmrec_align.models.errors import ModelError
    from ulmrec_index.encoders import EncoderError

    for error in (ModelError, EncoderError):
        with pytest.raises(error, match="is not a device"):
            check_device("bogus", error=error)


def test_index_and_align_use_the_one_rule() -> None:
    """No other ``check_device`` is defined; index's encoder and align's model loading call this one."""
    defined = []
    for file in ROOT.glob("packages/*/src/**/*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        defined += [f"{file.relative_to(ROOT)}" for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == "check_device"]
    assert defined == ["packages/ulmrec-eval/src/ulmrec_eval/runtime/devices.py"]
    import ulmrec_align.models.loading as loading
    import ulmrec_index.encoders as encoders

    assert loading.check_device is check_device
    assert encoders.check_device is check_device


def test_eval_does_not_import_torch_at_module_level() -> None:
    source = (ROOT / "packages/ulmrec-eval/src/ulmrec_eval/runtime/devices.py").read_text(encoding="utf-8")
    top = ast.parse(source).body
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] == "torch"]
