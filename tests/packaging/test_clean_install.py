"""Each distribution's wheel installs ALONE (with its declared dependencies) in a fresh venv and works.

This is what proves `pip install ulmrec-eval` (or -index, -align) works on its own: the test builds all four
wheels, then for each distribution creates an empty venv, installs that wheel (sibling wheels are offered
through --find-links so that declared ulmrec-* dependencies resolve to this checkout), imports its public API
and runs its command's --help.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"

DISTRIBUTIONS = {
    "ulmrec-eval": REPO / "packages" / "ulmrec-eval",
    "ulmrec-index": REPO / "packages" / "ulmrec-index",
    "ulmrec-align": REPO / "packages" / "ulmrec-align",
    "ulmrec": REPO / "apps" / "tui",
}

# (distribution, python snippet run in the fresh venv, console command whose --help must work)
CASES = [
    pytest.param(
        "ulmrec-eval",
        "import importlib.util, sys, ulmrec_eval, ulmrec_eval.metrics, ulmrec_eval.cli\n"
        "assert importlib.util.find_spec('torch') is None, 'ulmrec-eval must not pull torch'\n"
        "assert 'torch' not in sys.modules\n"
        "import numpy as np\n"
        "print(ulmrec_eval.metrics.compute_metrics(np.array([1, 3, 30]), ks=(10,)))\n",
        "ulmrec-eval",
        id="eval",
    ),
    pytest.param(
        "ulmrec-index",
        "import ulmrec_index, ulmrec_index.cli\n"
        "from ulmrec_index.quantizers.registry import available_quantizers\n"
        "print(available_quantizers())\n",
        "ulmrec-index",
        id="index",
    ),
    pytest.param(
        "ulmrec-align",
        "import ulmrec_align, ulmrec_align.cli\n"
        "from ulmrec_align.data.prepared import PreparedDataset\n",
        "ulmrec-align",
        id="align",
    ),
    pytest.param(
        "ulmrec",
        "import ulmrec_app.main\n",
        "ulmrec",
        id="ulmrec",
    ),
]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    for source in DISTRIBUTIONS.values():
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)])
    return out


@pytest.mark.packaging
@pytest.mark.parametrize(("distribution", "snippet", "command"), CASES)
def test_wheel_installs_alone(
    wheelhouse: Path, tmp_path: Path, distribution: str, snippet: str, command: str
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    wheel = next(wheelhouse.glob(f"{distribution.replace('-', '_')}-*.whl"))
    _run([str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), "--find-links", str(wheelhouse),
          str(wheel)])
    _run([str(python), "-c", snippet], cwd=tmp_path)
    help_result = _run([str(env_dir / "bin" / command), "--help"], cwd=tmp_path)
    assert "Usage" in help_result.stdout
