"""Data-parallel tuning: ``--num-processes N`` starts N workers with ``torch.distributed.run`` (DDP through
the ``Trainer``'s Accelerate backend; gloo on CPU, NCCL on CUDA). The launching process keeps the lock on
``T`` and does the preparation and the final write; workers only train (:mod:`ulmrec_align.tuning.worker`).
With the same global batch (``batch_size × grad_accum × N``) a run with N processes takes the same steps as
a one-process run with ``batch_size × N``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ulmrec_align.tuning.request import WORKER_ENV, TrainRequest, partial_dir
from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.io import atomic_write_text

REQUEST_FILE = "launch_request.json"


class LaunchError(UlmrecError, RuntimeError):
    """A worker process failed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_workers(request: TrainRequest) -> None:
    """Run ``request.train.num_processes`` workers on this machine and wait for them."""
    run = partial_dir(request.out)
    file = run / REQUEST_FILE
    atomic_write_text(file, request.model_dump_json(indent=2) + "\n")
    n = request.train.num_processes
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={n}", "--nnodes=1",
               "--master-addr=127.0.0.1", f"--master-port={free_port()}",
               "-m", "ulmrec_align.tuning.worker", str(file)]
    env = {**os.environ, WORKER_ENV: "1"}
    if request.train.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
        raise LaunchError(f"a training process failed (exit {code}); checkpoints are in {run}; continue "
                          "with --resume")
