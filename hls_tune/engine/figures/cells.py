"""Cell diagrams: a derived cell drawn as a graph, to PNG or SVG.

Graphviz's `dot` draws it when the binary exists (`cell_dot` writes its DOT text, in the
layout of DARTS' visualize.py); otherwise a matplotlib drawing on the Agg canvas
(`cell_figure`) does, in a fixed layout where no label can overlap another.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path as MplPath

from hls_tune.engine.figures.canvas import OP_COLORS, new_figure, save_figure, state_name
from hls_tune.engine.nas.genotype import Edge

__all__ = [
    "DOT_TIMEOUT_S",
    "CellEngine",
    "cell_diagram",
    "cell_dot",
    "cell_figure",
    "dot_available",
]

DOT_TIMEOUT_S = 30

CellEngine = Literal["auto", "dot", "matplotlib"]


def dot_available() -> bool:
    """Whether Graphviz's `dot` binary is on PATH."""
    return shutil.which("dot") is not None


def cell_dot(edges: Sequence[Edge], concat: Sequence[int], title: str = "") -> str:
    """The Graphviz DOT text of a derived cell, in the layout of DARTS' visualize.py."""
    nodes = len(edges) // 2
    lines = [
        "digraph cell {",
        '  rankdir="LR"; bgcolor="white";',
        f'  label="{_dot_escape(title)}"; labelloc="t"; fontname="Helvetica";',
        '  node [style="filled,rounded", shape=rect, fontname="Helvetica", penwidth=2,'
        " fontsize=16, height=0.5, width=0.5, align=center];",
        '  edge [fontname="Helvetica", fontsize=14];',
        '  "c_{k-2}" [fillcolor="darkseagreen2"];',
        '  "c_{k-1}" [fillcolor="darkseagreen2"];',
    ]
    lines += [f'  "{i}" [fillcolor="lightblue"];' for i in range(nodes)]
    lines.append('  "c_{k}" [fillcolor="palegoldenrod"];')
    for position, (op, source) in enumerate(edges):
        node = position // 2
        color = OP_COLORS[op]
        lines.append(
            f'  "{state_name(source)}" -> "{node}" [label="{op}", color="{color}",'
            f' fontcolor="{color}"];'
        )
    lines += [f'  "{state_name(state)}" -> "c_{{k}}" [color="gray"];' for state in concat]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _render_dot(dot_text: str, path: Path) -> None:
    fmt = path.suffix.lstrip(".")
    result = subprocess.run(
        ["dot", f"-T{fmt}", "-Gdpi=96" if fmt == "png" else "-Gdpi=72", "-o", str(path)],
        input=dot_text,
        text=True,
        capture_output=True,
        timeout=DOT_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"dot failed ({result.returncode}): {result.stderr.strip()[:300]}")


# Layout of the matplotlib cell drawing, in inches (the axes span the whole figure, so one
# data unit is one inch and text sizes are known): the two inputs left, the intermediate nodes
# on one line, and each edge's op as its own labelled box in the gap before its target node,
# above or below the line. Every label has a slot of its own, so none can overlap another.
_COLUMN = 1.9  # between consecutive nodes; an op box (≤ 13 characters) is ~0.85 in wide
_MARGIN = 0.75
_OP_OFFSET = 0.75  # op boxes above / below the node line
_INPUT_OFFSET = 1.35  # c_{k-2} above and c_{k-1} below the node line
_HEIGHT = 3.9
_TITLE_SPACE = 0.45


def _cell_positions(nodes: int) -> dict[int, tuple[float, float]]:
    """Node centres (inches): inputs left, intermediate nodes on one line, output right."""
    mid = (_HEIGHT - _TITLE_SPACE) / 2
    positions = {0: (_MARGIN, mid + _INPUT_OFFSET), 1: (_MARGIN, mid - _INPUT_OFFSET)}
    for i in range(nodes):
        positions[i + 2] = (_MARGIN + _COLUMN * (i + 1), mid)
    positions[-1] = (_MARGIN + _COLUMN * (nodes + 1), mid)  # c_{k}
    return positions


def _line(
    axes: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    color: str,
    *,
    bend: float = 0.0,
    arrow: bool = True,
    gap: float = 0.0,
    lw: float = 1.4,
    alpha: float = 1.0,
) -> None:
    """A line (a quadratic curve with `bend`) from `start` to `end`, drawn under the boxes;
    with `arrow` it ends in an arrowhead `gap` inches before `end` (outside its box)."""
    (x0, y0), (x2, y2) = start, end
    control = ((x0 + x2) / 2, (y0 + y2) / 2 + bend)
    dx, dy = x2 - control[0], y2 - control[1]
    norm = math.hypot(dx, dy) or 1.0
    end = (x2 - gap * dx / norm, y2 - gap * dy / norm)
    path = MplPath([start, control, end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
    axes.add_patch(
        FancyArrowPatch(
            path=path,
            arrowstyle="-|>" if arrow else "-",
            mutation_scale=11,
            color=color,
            lw=lw,
            alpha=alpha,
            zorder=1,
        )
    )


def cell_figure(edges: Sequence[Edge], concat: Sequence[int], title: str) -> Figure:
    """The matplotlib drawing of a derived cell (the fallback when `dot` is missing)."""
    nodes = len(edges) // 2
    positions = _cell_positions(nodes)
    width = positions[-1][0] + _MARGIN
    figure = new_figure(width, _HEIGHT)
    figure.set_layout_engine("none")  # the axes fill the figure: inches are data units
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_axis_off()
    axes.set_xlim(0.0, width)
    axes.set_ylim(0.0, _HEIGHT)
    mid = positions[2][1] if nodes else positions[-1][1]
    boxes = {
        0: ("c_{k-2}", "#b4eeb4"),
        1: ("c_{k-1}", "#b4eeb4"),
        -1: ("c_{k}", "#eee8aa"),
    } | {i + 2: (str(i), "#add8e6") for i in range(nodes)}
    for key, (label, color) in boxes.items():
        x, y = positions[key]
        axes.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=10,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.35", "fc": color, "lw": 1.5},
        )
    out_x = positions[-1][0]
    for state in concat:
        x, _ = positions[state]
        hops = round((out_x - x) / _COLUMN)
        # Into c_{k} below the op boxes, so the grey lines never run through a node.
        bend = 0.0 if hops <= 1 else -(2 * _OP_OFFSET + 0.25 * hops)
        gap = 0.42 if hops <= 1 else 0.3  # c_{k} is wide: a level arrow stops further out
        _line(axes, positions[state], positions[-1], "#b0b0b0", bend=bend, gap=gap, lw=1.0)
    for node in range(nodes):
        pair = sorted(
            (edges[2 * node], edges[2 * node + 1]),
            key=lambda edge: -positions[edge[1]][1],  # the higher source takes the upper slot
        )
        target = positions[node + 2]
        for slot, (op, source) in zip((1, -1), pair, strict=True):
            color = OP_COLORS[op]
            box = (target[0] - _COLUMN / 2, mid + slot * _OP_OFFSET)
            _line(axes, positions[source], box, color, arrow=False, alpha=0.55)
            _line(axes, box, target, color, gap=0.2)
            axes.text(
                box[0],
                box[1],
                op,
                color=color,
                fontsize=8,
                ha="center",
                va="center",
                zorder=2,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "lw": 0.8},
            )
    if title:
        axes.text(
            width / 2,
            _HEIGHT - _TITLE_SPACE / 2 - 0.05,
            title,
            ha="center",
            va="center",
            fontsize=11,
        )
    return figure


def cell_diagram(
    edges: Sequence[Edge],
    concat: Sequence[int],
    path: str | Path,
    *,
    title: str = "",
    engine: CellEngine = "auto",
) -> tuple[Path, str]:
    """Draws a derived cell to `path` (.png or .svg).

    Args:
        edges: the cell's `(op, input_index)` pairs, two per node.
        concat: the states concatenated into the cell output.
        path: output file; its suffix picks the format.
        title: caption above the diagram.
        engine: `dot` (Graphviz, needs the binary), `matplotlib`, or `auto` (dot when the
            binary exists, else matplotlib; also matplotlib when dot fails).

    Returns:
        The path written and the engine that drew it.

    Example:
        >>> from hls_tune.engine.nas.genotype import builtin_genotype
        >>> g = builtin_genotype("darts_v2")
        >>> cell_diagram(g.normal, g.normal_concat, "/tmp/normal.png")  # doctest: +SKIP
        (PosixPath('/tmp/normal.png'), 'dot')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if engine not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"engine must be auto, dot or matplotlib but got {engine!r}.")
    if engine == "dot" or (engine == "auto" and dot_available()):
        try:
            _render_dot(cell_dot(edges, concat, title), path)
            return path, "dot"
        except (OSError, RuntimeError, subprocess.SubprocessError):
            if engine == "dot":
                raise
    save_figure(cell_figure(edges, concat, title), path)
    return path, "matplotlib"
