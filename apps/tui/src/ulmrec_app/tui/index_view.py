"""The user index as the Index screen shows it: per-level code usage, collisions, coherence, user search."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ulmrec_app.pipeline.layout import RunLayout

BARS = " ▁▂▃▄▅▆▇█"


@dataclass
class IndexView:
    folder: Path
    codes: dict[str, list[int]]
    codebook_sizes: list[int]
    token_format: list[str]
    report: object | None = None                     # ulmrec_index.report.IndexReport
    texts: dict[str, list[str]] = field(default_factory=dict)

    def token(self, user_id: str) -> str:
        code = self.codes[user_id]
        return "".join(fmt.format(c) for fmt, c in zip(self.token_format, code, strict=False))


def load_index_view(run_dir: Path) -> IndexView | None:
    """The run's index (``index/index``), None when the run has none yet."""
    from ulmrec_index.artifact import INDEX_FILE, TEXTS_FILE, load_index, load_report

    folder = RunLayout(run_dir).index
    if not (folder / INDEX_FILE).is_file():
        return None
    artifact = load_index(folder)
    texts: dict[str, list[str]] = {}
    path = folder / TEXTS_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts[str(row.get("user_id"))] = list(row.get("texts") or [])
    return IndexView(folder=folder, codes=artifact.codes, codebook_sizes=artifact.codebook_sizes,
                     token_format=artifact.token_format, report=load_report(folder), texts=texts)


def histogram(counts: list[int], width: int) -> str:
    """Counts squeezed into ``width`` cells of block characters (each cell: the max of its codes)."""
    if not counts or width < 1:
        return ""
    cells = []
    per = len(counts) / min(width, len(counts))
    n = min(width, len(counts))
    for i in range(n):
        chunk = counts[int(i * per): max(int((i + 1) * per), int(i * per) + 1)]
        cells.append(max(chunk))
    top = max(cells) or 1
    return "".join(BARS[0 if c == 0 else max(1, round(c / top * (len(BARS) - 1)))] for c in cells)


def level_counts(view: IndexView) -> list[list[int]]:
    out = []
    for level, size in enumerate(view.codebook_sizes):
        counts = [0] * size
        for code in view.codes.values():
            if level < len(code) and 0 <= code[level] < size:
                counts[code[level]] += 1
        out.append(counts)
    return out


def summary(view: IndexView, width: int = 40) -> str:
    """Per-level usage histograms, collisions and coherence (Rich markup)."""
    lines = [f"[b]{len(view.codes):,} users[/b], {len(view.codebook_sizes)} levels, "
             f"codebooks {'/'.join(map(str, view.codebook_sizes))}"]
    distinct = len({tuple(c) for c in view.codes.values()})
    lines[0] += f", collisions {len(view.codes) - distinct}"
    for level, counts in enumerate(level_counts(view)):
        used = sum(1 for c in counts if c)
        name = view.token_format[level].split("_")[0].lstrip("<") if level < len(view.token_format) else level
        lines.append(f"{name!s:>2} {histogram(counts, width)} {used}/{len(counts)} used")
    report = view.report
    coherence = getattr(getattr(report, "ours", None), "coherence", None) or []
    parts = [f"p{c.prefix} {c.ratio:.2f}×" for c in coherence if c.ratio is not None]
    if parts:
        lines.append("coherence (text cos. within prefix / random): " + ", ".join(parts))
    return "\n".join(lines)


def search(view: IndexView, query: str, *, show: int = 5) -> str:
    """A user's code, texts and the users sharing each prefix of it (Rich markup, escaped)."""
    from rich.markup import escape

    query = query.strip()
    if not query:
        return "type a user id and press Enter"
    matches = [u for u in view.codes if u == query] or [u for u in view.codes if query.lower() in u.lower()]
    if not matches:
        return f"no user id contains {escape(query)!r}"
    user = matches[0]
    code = view.codes[user]
    lines = [f"[b]{escape(user)}[/b]  {escape(view.token(user))}"
             + (f"  ({len(matches)} matches)" if len(matches) > 1 else "")]
    for depth in range(1, len(code) + 1):
        sharing = [u for u, c in view.codes.items() if c[:depth] == code[:depth] and u != user]
        prefix = "".join(fmt.format(c) for fmt, c in zip(view.token_format, code[:depth], strict=False))
        shown = ", ".join(escape(u) for u in sharing[:show]) + (" …" if len(sharing) > show else "")
        lines.append(f"  {escape(prefix)}: {len(sharing)} other users {shown}")
    texts = view.texts.get(user, [])
    lines.append(f"[b]texts[/b] ({len(texts)})")
    lines += [f"  • {escape(t[:200])}" for t in texts[:show]]
    return "\n".join(lines)
