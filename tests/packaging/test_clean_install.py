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

# ulmrec-eval on another model's outputs: arrays -> predictions file (jsonl and npz) -> metrics, comparison
EVAL_OTHER_MODEL = """
from ulmrec_eval import evaluate_ranks
from ulmrec_eval import compare_ranks, evaluate, target_ranks, write_predictions
rng = np.random.default_rng(0)
scores = rng.standard_normal((50, 30)).astype(np.float32)
targets = rng.integers(0, 30, 50)
ranks = target_ranks(scores, targets)
top = np.argsort(-scores, axis=1)[:, :20]
for name in ("p.jsonl", "p.npz"):
    path = write_predictions(name, np.arange(50), targets, candidates=top,
                             scores=np.take_along_axis(scores, top, 1))
    got = evaluate(path, ks=10).reports[0].metrics
    assert got == evaluate_ranks(np.where(ranks <= 20, ranks, 0), ks=10)[0].metrics, (name, got)
assert compare_ranks(ranks, ranks, metrics="ndcg@10").comparisons[0].difference == 0.0
"""

EVAL_TORCH = """
import torch
t = torch.from_numpy(scores).bfloat16().requires_grad_(True)
assert (target_ranks(t, torch.from_numpy(targets)) >= 1).all()
"""

# ulmrec-index on another model's vectors: fit, save, load, lookup, collision-free cold start
INDEX_OWN_VECTORS = """
import numpy as np
from ulmrec_index import IndexerConfig, UserIndexer
rng = np.random.default_rng(0)
x = (rng.standard_normal((8, 16))[rng.integers(0, 8, 300)] + 0.3 * rng.standard_normal((300, 16)))
for quantizer in ({"kind": "rqkmeans"}, {"kind": "rqvae", "min_steps": 100}):
    config = IndexerConfig(quantizer={**quantizer, "levels": 2, "codebook_size": 16})
    built = UserIndexer(config).fit_vectors(np.arange(300), x.astype(np.float32))
    loaded = UserIndexer.load(built.save("idx-" + quantizer["kind"]))
    assert loaded.token(7) == built.token("7")
    new = loaded.encode_vectors([1000, 1001, 7], np.concatenate([x[:2], x[7:8]]))
    codes = {tuple(c) for c in loaded.codes.values()}
    assert new[2] == loaded.codes["7"] and not {tuple(c) for c in new[:2]} & codes and new[0] != new[1]
    assert len(codes) == 300
"""

# (distribution, python snippet run in the fresh venv, console command whose --help must work)
CASES = [
    pytest.param(
        "ulmrec-eval",
        "import importlib.util, sys, ulmrec_eval, ulmrec_eval.metrics, ulmrec_eval.cli\n"
        "assert importlib.util.find_spec('torch') is None, 'ulmrec-eval must not pull torch'\n"
        "assert 'torch' not in sys.modules\n"
        "import numpy as np\n"
        "print(ulmrec_eval.metrics.compute_metrics(np.array([1, 3, 30]), ks=(10,)))\n"
        + EVAL_OTHER_MODEL,
        "ulmrec-eval",
        id="eval",
    ),
    pytest.param(
        "ulmrec-index",
        "import ulmrec_index, ulmrec_index.cli\n"
        "from ulmrec_index.quantizers.registry import available_quantizers\n"
        "print(available_quantizers())\n"
        + INDEX_OWN_VECTORS + EVAL_OTHER_MODEL + EVAL_TORCH,
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
