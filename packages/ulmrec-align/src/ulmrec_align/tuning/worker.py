"""One data-parallel worker: ``python -m ulmrec_align.tuning.worker T.partial/launch_request.json``
(started by :func:`ulmrec_align.tuning.launch.launch_workers`, never by hand)."""

from __future__ import annotations

import os
import sys

from ulmrec_align.tuning.config import TrainManifest
from ulmrec_align.tuning.request import RUN_FILE, TrainRequest, partial_dir
from ulmrec_align.tuning.train import train_in_process
from ulmrec_eval.runtime.errors import is_user_error
from ulmrec_eval.runtime.io import read_json_model


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        with open(args[0], encoding="utf-8") as handle:
            request = TrainRequest.model_validate_json(handle.read())
        planned = read_json_model(partial_dir(request.out) / RUN_FILE, TrainManifest)
        train_in_process(request, planned)
    except Exception as exc:
        if os.environ.get("ULMREC_DEBUG") or not is_user_error(exc):
            raise
        print(f"error (rank {os.environ.get('RANK', '?')}): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
