"""Benchmark: the first use of ``smollm2`` (GGUF -> a plain HF folder) with and without the GGUF parsed once.

Run: ``.venv/bin/python bench/smollm2_convert.py`` on a quiet machine (it prints the load). Converts the
packaged SmolLM2 GGUF twice into temporary folders, alternating: ``as shipped`` memoises ``gguf.GGUFReader``
and ``gguf.get_tensor_name_map`` during the conversion (``models/resolve.py: _gguf_parsed_once``);
``unmemoised`` lets transformers parse the file for the tokenizer, the config and the weights and rebuild the
tensor-name map for every tensor, as before 2026-12-07. Printed: seconds of each (best of ``--rounds``), the
ratio, and whether the two folders hold the same files byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    from ulmrec_align.models import resolve

    gguf = resolve.find_smollm2_gguf()
    shipped = resolve._gguf_parsed_once
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: Path(tmp) / name for name in ("as shipped", "unmemoised")}
        for _ in range(args.rounds):
            for name, folder in folders.items():
                folder.mkdir(exist_ok=True)
                resolve._gguf_parsed_once = shipped if name == "as shipped" else contextlib.nullcontext
                try:
                    start = time.perf_counter()
                    resolve._convert_gguf(gguf, folder)
                    took = time.perf_counter() - start
                finally:
                    resolve._gguf_parsed_once = shipped
                seconds[name] = min(seconds.get(name, took), took)
        a, b = folders.values()
        names = sorted(p.name for p in a.iterdir())
        _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
        same = names == sorted(p.name for p in b.iterdir()) and not mismatch and not errors
    load = os.getloadavg()
    print(f"{gguf.name}, best of {args.rounds} round(s), load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, took in seconds.items():
        print(f"{name:11s} {took:6.1f} s")
    print(f"unmemoised / as shipped: × {seconds['unmemoised'] / seconds['as shipped']:.2f}; "
          f"same files byte for byte: {same}")


if __name__ == "__main__":
    main()
