"""Reader of RecBole atomic files: ``<name>.inter``, ``<name>.item`` and optionally ``<name>.user``.

Each file is tab-separated with a typed header such as ``user_id:token  item_id:token  timestamp:float``.
Columns read: ``.inter`` user_id, item_id, timestamp (required), rating, review, summary (optional);
``.item`` item_id, title (required); ``.user`` user_id (required), preference (optional).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ulmrec_align.data.lines import finite, iter_lines, raw_id
from ulmrec_align.data.raw import RawData, RawInteraction
from ulmrec_eval.runtime.errors import InputError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


class AtomicFile:
    """A parsed typed header plus an iterator over the rows (lists of column strings)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = iter_lines(path)
        try:
            _, header = next(self._lines)
        except StopIteration:
            raise InputError("empty file (expected a typed header line)", path=path) from None
        self.columns: dict[str, int] = {}
        for position, cell in enumerate(header.rstrip("\r\n").split("\t")):
            name, sep, kind = cell.strip().partition(":")
            if not sep or kind not in FIELD_TYPES:
                raise InputError(f"header cell {cell!r} is not '<name>:<type>' with type in {FIELD_TYPES}",
                                 path=path, line=1)
            self.columns[name] = position

    def require(self, *names: str) -> list[int]:
        """Column positions of ``names``; a missing column raises :class:`InputError` naming it."""
        missing = [name for name in names if name not in self.columns]
        if missing:
            raise InputError(f"missing column {', '.join(repr(m) for m in missing)} "
                             f"(columns: {', '.join(self.columns)})", path=self.path, line=1)
        return [self.columns[name] for name in names]

    def optional(self, name: str) -> int | None:
        return self.columns.get(name)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.columns)
        for number, line in self._lines:
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) != width:
                raise InputError(f"expected {width} tab-separated columns, got {len(cells)}",
                                 path=self.path, line=number)
            yield number, cells


def find_atomic_files(path: Path) -> tuple[Path, Path, Path | None]:
    """Locate ``(.inter, .item, .user or None)`` from a folder holding one ``*.inter`` or from a file path."""
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            raise InputError(f"expected exactly one *.inter file, found {len(inters)}", path=path)
        inter = inters[0]
    elif path.is_file() or path.with_suffix(".inter").is_file():
        inter = path.with_suffix(".inter")
    else:
        raise InputError("no such file or folder", path=path)
    item = inter.with_suffix(".item")
    if not item.is_file():
        raise InputError("missing the .item file (item titles are required)", path=item)
    user = inter.with_suffix(".user")
    return inter, item, user if user.is_file() else None


def _float(text: str, column: str, path: Path, line: int) -> float:
    return finite(text.strip(), f"column {column!r}", path, line)


def read_recbole(path: Path) -> RawData:
    """Read RecBole atomic files into :class:`RawData` (name = the folder's name)."""
    inter_path, item_path, user_path = find_atomic_files(Path(path))

    inter = AtomicFile(inter_path)
    u_col, i_col, t_col = inter.require("user_id", "item_id", "timestamp")
    r_col, rev_col, sum_col = inter.optional("rating"), inter.optional("review"), inter.optional("summary")
    interactions: list[RawInteraction] = []
    for number, cells in inter.rows():
        interactions.append(RawInteraction(
            user=raw_id(cells[u_col], "column 'user_id'", inter_path, number),
            item=raw_id(cells[i_col], "column 'item_id'", inter_path, number),
            timestamp=_float(cells[t_col], "timestamp", inter_path, number),
            rating=None if r_col is None else _float(cells[r_col], "rating", inter_path, number),
            review=None if rev_col is None else cells[rev_col],
            summary=None if sum_col is None else cells[sum_col],
        ))

    items = AtomicFile(item_path)
    id_col, title_col = items.require("item_id", "title")
    titles = {cells[id_col]: cells[title_col] for _, cells in items.rows() if cells[title_col].strip()}

    preferences: dict[str, str] = {}
    if user_path is not None:
        users = AtomicFile(user_path)
        (uid_col,) = users.require("user_id")
        pref_col = users.optional("preference")
        for _, cells in users.rows():
            if pref_col is not None and cells[pref_col].strip():
                preferences[cells[uid_col]] = cells[pref_col]

    folder_name = inter_path.parent.name if Path(path).is_dir() else inter_path.stem
    sources = [p for p in (inter_path, item_path, user_path) if p is not None]
    return RawData(source_format="recbole", name=folder_name, interactions=interactions, titles=titles,
                   preferences=preferences, sources=sources)
