"""Whole-or-nothing artifact folders and a one-writer lock (numpy + pydantic + stdlib only, no torch).

Every multi-file artifact (an index, a prepared dataset, a retriever run) is written with
:func:`atomic_dir`: the writer fills a sibling temporary folder ``.<name>.tmp-<pid>-<hex>`` and, on success,
it is swapped into place. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so a ``kill -9`` at
any moment leaves either the previous folder or the new one at ``out``, never a mix. Where the exchange is not
available the old folder is first renamed to ``.<name>.old-<pid>-<hex>``; a kill between the two renames
leaves ``out`` missing, and the next :func:`clean_orphans` (run by every :func:`atomic_dir`) renames the old
folder back. Temporary folders of dead writers are removed by :func:`clean_orphans`.

:func:`folder_lock` takes an exclusive, non-blocking ``flock`` on ``.<name>.lock`` beside the folder, so a
second writer of the same folder stops with one line instead of both "succeeding".
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.io import SIDE_NAME, pid_alive, side_path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class ArtifactExistsError(UlmrecError, FileExistsError):
    """The output folder already holds an artifact and ``--force`` was not given."""


class ArtifactLockedError(UlmrecError, RuntimeError):
    """Another process is writing the same artifact folder."""


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_renameat2() -> object | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the platform or file system cannot do it (the caller then falls back to two renames);
    other failures raise :class:`OSError`.
    """
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[operator]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def clean_orphans(parent: str | Path) -> list[Path]:
    """Remove temporary folders/files of dead writers in ``parent``; returns what was removed or restored.

    ``.<name>.tmp-<pid>-<hex>`` of a dead ``pid`` is deleted. ``.<name>.old-<pid>-<hex>`` (the previous
    artifact, moved aside by the two-rename fallback) is renamed back to ``<name>`` when ``<name>`` is
    missing (the writer died between its two renames), else deleted.
    """
    folder = Path(parent)
    done: list[Path] = []
    if not folder.is_dir():
        return done
    for entry in sorted(folder.iterdir()):
        match = SIDE_NAME.match(entry.name)
        if match is None or pid_alive(int(match["pid"])):
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.rename(entry, target)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        done.append(entry)
    return done


def lock_path(path: str | Path) -> Path:
    """The lock file of an artifact path: ``.<name>.lock`` in its parent folder."""
    target = Path(path)
    return target.parent / f".{target.name}.lock"


_HELD: dict[Path, int] = {}  # lock files this process holds -> nesting depth


@contextlib.contextmanager
def folder_lock(path: str | Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``path`` (a folder or file, existing or not).

    Another process holding it raises :class:`ArtifactLockedError`: ``<path> is being written by another
    process (pid N)``; with ``wait``, this one waits for it instead (for short read-modify-write updates of
    a shared record, which two writers must take in turn). Re-entrant within one process (a command may lock
    its ``--out`` before a long fit and the save inside takes it again). The lock file stays (removing it
    would race).
    """
    target = Path(path).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    file = lock_path(target)
    if file in _HELD:
        _HELD[file] += 1
        try:
            yield file
        finally:
            _HELD[file] -= 1
        return
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ArtifactLockedError(
                f"{target} is being written by another process (pid {holder}); wait for it or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        _HELD[file] = 1
        try:
            yield file
        finally:
            del _HELD[file]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class OutputOverlapError(UlmrecError, ValueError):
    """An output path that is, holds or lies inside one of the command's inputs."""


def check_out_apart(out: str | Path, inputs: dict[str, str | Path | None], *, option: str = "--out") -> None:
    """Refuse ``out`` when it is, holds or lies inside one of ``inputs`` (``{"--data": path}``; None and
    non-paths such as ``none`` or a model name that is no file are skipped), links followed: replacing it
    (``--force``) would destroy what the command reads, and writing into an input folder would change it.
    One line, naming both. Call it before anything is read or written."""
    target = Path(out).expanduser().resolve()
    for name, given in inputs.items():
        if given is None or str(given) == "":
            continue
        source = Path(given).expanduser()
        if not (source.exists() or source.is_symlink()):
            continue
        source = source.resolve()
        if target == source:
            how = "is"
        elif target in source.parents:
            how = "holds"
        elif source in target.parents:
            how = "lies inside"
        else:
            continue
        raise OutputOverlapError(f"{option} {out} {how} the input {name} {given}: writing it would destroy "
                                 f"or change what the command reads; choose another {option}")


def check_writable(out: str | Path, *, force: bool) -> None:
    """Refuse an existing, non-empty ``out`` unless ``force``; a file where a folder should be is refused."""
    target = Path(out)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ArtifactExistsError(f"{target} exists and is a file or a link, not a folder; use another --out")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ArtifactExistsError(f"{target} exists; pass --force to replace it")


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, force: bool, lock: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on success it replaces ``out`` whole.

    ``out`` may be absent or an empty folder; a non-empty one needs ``force=True`` (else
    :class:`ArtifactExistsError`, "exists; pass --force"). With ``lock`` (default) :func:`folder_lock` is held
    for the whole write. On an exception the temporary folder is removed and ``out`` is untouched; after a
    kill the temporary folder stays under its dot-name until :func:`clean_orphans` removes it.
    """
    target = Path(out).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(target) if lock else contextlib.nullcontext(target):
        clean_orphans(target.parent)
        check_writable(target, force=force)
        tmp = side_path(target, "tmp")
        tmp.mkdir()
        try:
            yield tmp
            _install(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@contextlib.contextmanager
def atomic_update(out: str | Path, *, lock: bool = True) -> Iterator[Path]:
    """Yield a temporary *copy* of the folder ``out`` (empty when absent); on success it replaces ``out``.

    For stages that rewrite some files of an existing folder (new model + candidates + metrics beside a
    checkpoint): the files written into the copy appear together or not at all. The copy is made with
    ``shutil.copy2`` (not hard links), so writing into a copied file in place never touches the original.
    """
    target = Path(out).absolute()
    with atomic_dir(target, force=True, lock=lock) as tmp:
        if target.is_dir():
            for entry in sorted(target.iterdir()):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
        yield tmp


def _install(tmp: Path, target: Path) -> None:
    """Put the finished ``tmp`` folder at ``target`` (see the module docstring for the kill-safety)."""
    if not target.exists():
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return
    if exchange(tmp, target):
        _fsync_dir(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the old artifact; a kill here leaves a dead tmp orphan
        return
    old = side_path(target, "old")
    os.rename(target, old)
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
