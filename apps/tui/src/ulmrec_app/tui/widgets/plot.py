"""A terminal line plot drawn with Braille dots (2×4 dots per cell), for loss and validation curves."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from textual.widgets import Static

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # (row, column) -> Braille bit


def braille_plot(points: Sequence[tuple[float, float]], width: int, height: int) -> list[str]:
    """``height`` lines of ``width`` characters: the points joined left to right, y up.

    >>> braille_plot([(0, 0), (1, 1)], 2, 1)
    ['⡠⠊']
    """
    if width < 1 or height < 1 or not points:
        return [" " * max(width, 0)] * max(height, 0)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    cols, rows = width * 2, height * 4
    grid = [[0] * width for _ in range(height)]

    def put(px: int, py: int) -> None:
        px = min(max(px, 0), cols - 1)
        py = min(max(py, 0), rows - 1)
        row = rows - 1 - py
        grid[row // 4][px // 2] |= _DOTS[row % 4][px % 2]

    def scale(x: float, y: float) -> tuple[int, int]:
        sx = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (cols - 1))
        sy = rows // 2 if y1 == y0 else round((y - y0) / (y1 - y0) * (rows - 1))
        return sx, sy

    scaled = [scale(x, y) for x, y in sorted(points)]
    for (ax, ay), (bx, by) in itertools.pairwise(scaled):
        steps = max(abs(bx - ax), abs(by - ay), 1)
        for i in range(steps + 1):
            put(round(ax + (bx - ax) * i / steps), round(ay + (by - ay) * i / steps))
    if len(scaled) == 1:
        put(*scaled[0])
    return ["".join(chr(0x2800 + cell) for cell in line) for line in grid]


class LinePlot(Static):
    """A titled Braille plot with its y range; ``points`` are ``(x, y)``."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.title = title
        self.points: list[tuple[float, float]] = []

    def set_points(self, points: Sequence[tuple[float, float]]) -> None:
        self.points = list(points)
        self.refresh_plot()

    def on_resize(self) -> None:
        self.refresh_plot()

    def refresh_plot(self) -> None:
        width = max(self.size.width - 9, 10)
        height = max(self.size.height - 2, 3)
        if not self.points:
            self.update(f"[b]{self.title}[/b]\n  (no points yet)")
            return
        ys = [p[1] for p in self.points]
        lines = braille_plot(self.points, width, height)
        labels = [f"{max(ys):8.4f}"] + [" " * 8] * (height - 2) + [f"{min(ys):8.4f}"] if height > 1 else \
            [f"{ys[-1]:8.4f}"]
        body = "\n".join(f"{label} {line}" for label, line in zip(labels, lines, strict=False))
        x0, x1 = self.points[0][0], self.points[-1][0]
        self.update(f"[b]{self.title}[/b]  (steps {x0:g}–{x1:g}, last {ys[-1]:.4f})\n{body}")
