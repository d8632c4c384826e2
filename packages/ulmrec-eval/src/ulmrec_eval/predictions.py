"""Prediction files, read and written: JSON lines of :class:`~ulmrec_eval.schemas.RankedPrediction` or
``.npz`` arrays (:data:`NPZ_KEYS`).

:func:`read_prediction_arrays` reads a ``.npz`` predictions file straight into ranks, without one Python
object per user. :func:`write_predictions` writes another model's outputs (numpy arrays, torch tensors or
lists) as either form.

``write_predictions(path, user_ids, targets, ranked=...)`` or ``(..., candidates=..., scores=...)`` writes
JSON lines of :class:`~ulmrec_eval.schemas.RankedPrediction` (``.jsonl``) or the arrays themselves (``.npz``,
see :data:`NPZ_KEYS`), atomically. Both read back with ``ulmrec eval metrics`` /
:func:`ulmrec_eval.evaluate`. Scores keep their exact value: a float32 score is written as the shortest
decimal that reads back as the same float32 (JSON) or as float32 itself (``.npz``); ``-inf`` (masked) is
written as ``-Infinity``, which Python's JSON reader accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ulmrec_eval.arrays import as_numpy, dtype_kind, id_kind
from ulmrec_eval.metrics import ranks_from_candidates, ranks_from_lists
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_path
from ulmrec_eval.schemas import SCHEMA_VERSION, RankedPrediction

__all__ = ["NPZ_KEYS", "PredictionArrays", "read_prediction_arrays", "write_predictions"]

#: Arrays of a ``.npz`` predictions file: ``user_ids (U,)``, ``targets (U,)`` and either ``ranked (U, L)``
#: (item ids, best first) or ``candidates (U, L)`` + ``scores (U, L)``; optional ``history_lengths (U,)``
#: (-1 = unknown), 0-d string arrays ``source`` and ``split`` and a 0-d integer ``retrieved_n`` (the N of
#: the retrieved top-N a re-ranker's candidates came from). Ids are integers or unicode strings (no pickle).
NPZ_KEYS: tuple[str, ...] = ("user_ids", "targets", "ranked", "candidates", "scores", "history_lengths",
                             "source", "split", "retrieved_n")


@dataclass
class PredictionArrays:
    """One prediction set as arrays: ``user_ids (U,)``, ``targets (U,)``, target ``ranks (U,)`` (0 = miss)."""

    user_ids: npt.NDArray[Any]
    targets: npt.NDArray[Any]
    ranks: npt.NDArray[np.int64]
    history_lengths: npt.NDArray[np.int64] | None = None
    source: str | None = None
    split: str | None = None
    retrieved_n: int | None = None


def _scalar_text(data: Any, key: str, path: Path) -> str | None:
    if key not in data.files:
        return None
    value = data[key]
    if value.ndim != 0 or value.dtype.kind not in ("U", "S"):
        raise InputError(f"'{key}' must be a 0-d string array, got shape {value.shape} dtype {value.dtype}",
                         path=path)
    return str(value.item() if value.dtype.kind == "U" else value.item().decode())


def read_prediction_arrays(path: str | Path) -> PredictionArrays:
    """Read a ``.npz`` predictions file (keys :data:`NPZ_KEYS`) and rank each target; errors name the file.

    Ranks come from ``candidates`` + ``scores`` when given (ties pessimistic), else from ``ranked``.
    """
    file = Path(path)
    try:
        data = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npz predictions file ({exc})", path=file) from None
    with data:
        unknown = sorted(set(data.files) - set(NPZ_KEYS))
        if unknown:
            raise InputError(f"unknown array(s) {unknown}; a predictions .npz holds {list(NPZ_KEYS)}",
                             path=file)
        for key in ("user_ids", "targets"):
            if key not in data.files:
                raise InputError(f"missing array '{key}' (a predictions .npz needs user_ids, targets and "
                                 "ranked or candidates + scores)", path=file)
        try:
            user_ids, targets = data["user_ids"], data["targets"]
        except ValueError as exc:  # object arrays would need pickle
            raise InputError(f"{exc}: write ids as integer or unicode-string arrays", path=file) from None
        n = user_ids.shape[0] if user_ids.ndim == 1 else -1
        if n <= 0 or targets.shape != (n,):
            raise InputError(f"user_ids and targets must be 1-D of one length > 0, got {user_ids.shape} and "
                             f"{targets.shape}", path=file)
        if len(np.unique(user_ids)) != n:
            raise InputError("user_ids repeat", path=file)
        has_scores = "scores" in data.files or "candidates" in data.files
        try:
            if has_scores:
                if not ("scores" in data.files and "candidates" in data.files):
                    raise InputError("'candidates' and 'scores' go together: give both or neither", path=file)
                cands, scores = data["candidates"], data["scores"]
                if cands.ndim != 2 or cands.shape[0] != n or scores.shape != cands.shape:
                    raise InputError(f"candidates and scores must both have shape ({n}, L), got "
                                     f"{cands.shape} and {scores.shape}", path=file)
                _check_id_kinds(cands.dtype, targets.dtype, "candidates", file)
                ranks = ranks_from_candidates(cands, scores.astype(np.float64, copy=False), targets)
            elif "ranked" in data.files:
                ranked = data["ranked"]
                if ranked.ndim != 2 or ranked.shape[0] != n:
                    raise InputError(f"ranked must have shape ({n}, L), got {ranked.shape}", path=file)
                _check_id_kinds(ranked.dtype, targets.dtype, "ranked", file)
                ranks = ranks_from_lists(ranked, targets)
            else:
                raise InputError("needs 'ranked' (U, L) or 'candidates' + 'scores' (U, L)", path=file)
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(str(exc), path=file) from None
        lengths = None
        if "history_lengths" in data.files:
            lengths = data["history_lengths"]
            if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
                raise InputError(f"history_lengths must be ({n},) integers, got {lengths.shape} "
                                 f"{lengths.dtype}", path=file)
            lengths = lengths.astype(np.int64)
        retrieved_n = None
        if "retrieved_n" in data.files:
            value = data["retrieved_n"]
            if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer) or int(value) < 1:
                raise InputError(f"retrieved_n must be a 0-d integer >= 1, got shape {value.shape} "
                                 f"dtype {value.dtype}", path=file)
            retrieved_n = int(value)
        return PredictionArrays(user_ids=user_ids, targets=targets, ranks=ranks, history_lengths=lengths,
                                source=_scalar_text(data, "source", file),
                                split=_scalar_text(data, "split", file), retrieved_n=retrieved_n)


def _check_id_kinds(items: np.dtype[Any], targets: np.dtype[Any], name: str, path: Path) -> None:
    a, b = dtype_kind(items), dtype_kind(targets)
    if a != b:
        raise InputError(f"targets are {b} but '{name}' holds {a} ids: the target could never be found",
                         path=path)



def _ids(values: Any, what: str, n: int | None = None) -> list[Any]:
    arr = as_numpy(values, what=what)
    items = arr.tolist() if isinstance(arr, np.ndarray) else list(arr)
    if isinstance(arr, np.ndarray) and arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if n is not None and len(items) != n:
        raise ValueError(f"{what} has {len(items)} entries, expected {n} (one per user)")
    for i, x in enumerate(items):
        if id_kind(x) not in ("int", "str"):
            raise ValueError(f"{what}[{i}] must be an int or str id, got {type(x).__name__} {x!r}")
    return items


def _rows(values: Any, what: str, n: int) -> list[Any]:
    arr = as_numpy(values, what=what)
    if isinstance(arr, np.ndarray):
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{what} must have shape ({n}, L), got {arr.shape}")
        return arr.tolist()  # exact: float32 -> the double of the same value, ints -> int
    rows = [r.tolist() if isinstance(r := as_numpy(row, what=what), np.ndarray) else list(r) for row in arr]
    if len(rows) != n:
        raise ValueError(f"{what} has {len(rows)} rows, expected {n} (one per user)")
    return rows


def _score_text(value: float, single: bool) -> str:
    """``value`` as JSON: for float32 (``single``) inputs the shortest decimal that reads back as the same
    float32, else the double's shortest repr; ``-Infinity`` for -inf."""
    if single and math.isfinite(value):
        return json.dumps(float(str(np.float32(value))))
    return json.dumps(float(value))


def write_predictions(path: str | Path, user_ids: Any, targets: Any, *, ranked: Any = None,
                      candidates: Any = None, scores: Any = None, source: str | None = None,
                      split: str | None = None, history_lengths: Any = None,
                      retrieved_n: int | None = None) -> Path:
    """Write one prediction per user to ``path`` (``.npz``: arrays; otherwise JSON lines) and return it.

    Args:
        user_ids: ``(U,)`` int or str ids (numpy, torch or a list).
        targets: ``(U,)`` each user's held-out item id.
        ranked: ``(U, L)`` item ids, best first (or per-user lists of any length).
        candidates: ``(U, L)`` item ids that were scored; with ``scores`` ``(U, L)`` (higher is better, any
            float dtype incl. bf16; ``-inf`` masks a candidate). Give ``ranked`` or ``candidates`` +
            ``scores``.
        source, split: recorded in every record (e.g. ``"my-model"``, ``"test"``).
        history_lengths: ``(U,)`` items in each user's history (for sparsity buckets).
        retrieved_n: the N of the retrieved top-N that ``candidates`` were taken from, when these are a
            re-ranker's predictions; the evaluation then reports subset and overall by itself.

    >>> import tempfile, os
    >>> from ulmrec_eval import evaluate
    >>> path = os.path.join(tempfile.mkdtemp(), "p.jsonl")
    >>> _ = write_predictions(path, [1, 2], [7, 9], candidates=np.array([[7, 8], [8, 9]]),
    ...                       scores=np.array([[0.5, 0.25], [0.5, 0.5]], dtype=np.float32))
    >>> evaluate(path, ks=1).reports[0].metrics["recall@1"]
    0.5
    """
    if (candidates is None) != (scores is None):
        raise ValueError("'candidates' and 'scores' go together: give both or neither")
    if ranked is None and candidates is None:
        raise ValueError("give ranked=(U, L) item ids or candidates=(U, L) with scores=(U, L)")
    users = _ids(user_ids, "user_ids")
    n = len(users)
    if n == 0:
        raise ValueError("no users to write")
    if len(set(users)) != n:
        raise ValueError("user_ids repeat")
    tgts = _ids(targets, "targets", n)
    if retrieved_n is not None and retrieved_n < 1:
        raise ValueError(f"retrieved_n must be >= 1, got {retrieved_n}")
    lengths = (None if history_lengths is None
               else [int(v) for v in _ids(history_lengths, "history_lengths", n)])
    target = Path(path)
    if target.suffix == ".npz":
        _write_npz(target, users, tgts, ranked=ranked, candidates=candidates, scores=scores, source=source,
                   split=split, lengths=lengths, retrieved_n=retrieved_n)
        return target
    ranked_rows = None if ranked is None else _rows(ranked, "ranked", n)
    cand_rows = None if candidates is None else _rows(candidates, "candidates", n)
    score_rows = None if scores is None else _rows(scores, "scores", n)
    score_array = as_numpy(scores, what="scores") if scores is not None else None
    single = (isinstance(score_array, np.ndarray) and score_array.dtype.kind == "f"
              and score_array.itemsize <= 4)
    # validate every record through the schema (id types, lengths, NaN) before anything is written
    checked = [RankedPrediction(user_id=u, target=t, ranked=ranked_rows[i] if ranked_rows else None,
                                candidates=cand_rows[i] if cand_rows else None,
                                scores=score_rows[i] if score_rows else None, source=source,
                                history_length=lengths[i] if lengths else None, split=split,
                                retrieved_n=retrieved_n)
               for i, (u, t) in enumerate(zip(users, tgts, strict=True))]
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for line in _lines(checked, score_rows, single):
            handle.write(line)
    return target


def _lines(records: Sequence[RankedPrediction], score_rows: list[Any] | None, single: bool) -> Iterator[str]:
    for i, record in enumerate(records):
        obj = record.model_dump(mode="python", exclude_none=True, exclude={"scores"})
        obj["schema_version"] = SCHEMA_VERSION
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        if score_rows is not None:
            text = text[:-1] + ',"scores":[' + ",".join(_score_text(v, single) for v in score_rows[i]) + "]}"
        yield text + "\n"


def _write_npz(path: Path, users: list[Any], targets: list[Any], *, ranked: Any, candidates: Any, scores: Any,
               source: str | None, split: str | None, lengths: list[int] | None,
               retrieved_n: int | None) -> None:
    arrays: dict[str, np.ndarray] = {"user_ids": np.asarray(users), "targets": np.asarray(targets)}
    n = len(users)
    for key, value in (("ranked", ranked), ("candidates", candidates), ("scores", scores)):
        if value is None:
            continue
        arr = np.asarray(as_numpy(value, what=key))
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{key} must be a ({n}, L) array for .npz, got shape {arr.shape}")
        arrays[key] = arr
    if "scores" in arrays and arrays["scores"].shape != arrays["candidates"].shape:
        raise ValueError(f"candidates {arrays['candidates'].shape} and scores {arrays['scores'].shape} "
                         "differ")
    if "scores" in arrays and bool(np.isnan(arrays["scores"].astype(np.float64)).any()):
        raise ValueError("scores contain NaN")
    if lengths is not None:
        arrays["history_lengths"] = np.asarray(lengths, dtype=np.int64)
    if retrieved_n is not None:
        arrays["retrieved_n"] = np.asarray(retrieved_n, dtype=np.int64)
    for key, text in (("source", source), ("split", split)):
        if text is not None:
            arrays[key] = np.asarray(text)
    for key in ("user_ids", "targets", "ranked", "candidates"):
        if key in arrays and arrays[key].dtype == object:
            raise ValueError(f"{key} mixes id types: use all ints or all strings")
    savez: Any = np.savez  # its stubs confuse **arrays with the allow_pickle keyword
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        savez(handle, allow_pickle=False, **arrays)
