"""Do two Beauty index builds with the same seed give the same codes, whatever the cache holds and however
many threads run?

    .venv/bin/python bench/index_determinism.py [--out runs/bench/determinism] [--users USERS.jsonl]

Build 1 runs with ``OMP_NUM_THREADS=2`` on an empty embedding cache (every text encoded); build 2 runs with
``OMP_NUM_THREADS=1`` on the cache build 1 filled. Both use ``ulmrec-index build --seed 0`` with the defaults
(RQ-VAE, 4 x 256, attention fusion). Printed: users whose code differs, collisions before repair and semantic
coherence of each build, wall times (inflated on a shared machine), date and hardware. Without ``--users`` the
Beauty users file is made from ``../shared/data/amazon-beauty`` with ``ulmrec data prepare`` + ``data users``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = Path(os.environ.get("ULMREC_SHARED_DATA", REPO.parent / "shared" / "data")) / "amazon-beauty"


def run(*args: object, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    subprocess.run([str(a) for a in args], check=True, env=full_env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "determinism")
    parser.add_argument("--users", type=Path, default=None,
                        help="USERS.jsonl (default: Beauty, prepared here)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    users = args.users
    if users is None:
        users = out / "users.jsonl"
        if not users.is_file():
            run(BIN / "ulmrec", "data", "prepare", "--source", "recbole", "--path", DATA,
                "--out", out / "data", "--force")
            run(BIN / "ulmrec", "data", "users", out / "data", "--out", users, "--force")
    cache = out / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    seconds = {}
    for name, threads in (("cold-2-threads", "2"), ("warm-1-thread", "1")):
        seconds[name] = run(BIN / "ulmrec-index", "build", "--users", users, "--out", out / name,
                            "--cache-dir", cache, "--seed", "0", "--no-progress", "--force",
                            env={"OMP_NUM_THREADS": threads})
    codes = [json.loads((out / name / "index.json").read_text())["codes"] for name in seconds]
    differ = sum(codes[0][user] != codes[1].get(user) for user in codes[0])
    print(f"{dt.date.today()} {platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}")
    print(f"users {len(codes[0]):,}; codes that differ between the builds: {differ}")
    for name in seconds:
        report = json.loads((out / name / "report.json").read_text())
        coherence = [round(c["ratio"], 4) for c in report["ours"]["coherence"] if c["ratio"] is not None]
        print(f"{name:>15}: collisions before repair {report['repair']['collisions_before']}, coherence "
              f"(1, 2 codes shared) {coherence}, wall {seconds[name]:.0f} s")


if __name__ == "__main__":
    main()
