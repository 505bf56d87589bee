"""The figure canvas and the conventions every search figure shares.

`new_figure`/`save_figure` build and write figures on the Agg canvas, never through pyplot;
the colour tables (one colour per op, shot group and α group), the genotype-cell → α-group
map, and the naming and row order of a cell's states and edges.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hls_tune.engine.nas.genotype import PRIMITIVES

__all__ = [
    "CELL_GROUPS",
    "GROUP_COLORS",
    "OP_COLORS",
    "SHOT_COLORS",
    "edge_index",
    "new_figure",
    "save_figure",
    "state_name",
]

# Genotype cell → α group that derives it.
CELL_GROUPS = {
    "normal": "backbone_normal",
    "reduce": "backbone_reduce",
    "head_conventional": "head_conventional",
    "head_rebalancing": "head_rebalancing",
}
# One colour per op, the same in every figure (tab10 without its grey).
OP_COLORS = dict(
    zip(
        PRIMITIVES,
        (
            "#7f7f7f",
            "#1f77b4",
            "#17becf",
            "#2ca02c",
            "#d62728",
            "#ff7f0e",
            "#9467bd",
            "#8c564b",
        ),
        strict=True,
    )
)
SHOT_COLORS = {"many": "#1f77b4", "medium": "#ff7f0e", "few": "#d62728"}
GROUP_COLORS = {
    "backbone_normal": "#1f77b4",
    "backbone_reduce": "#2ca02c",
    "head_conventional": "#d62728",
    "head_rebalancing": "#9467bd",
}


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (no pyplot, no global state)."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Writes the figure (format from the suffix: .png or .svg) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def edge_index(node: int, source: int) -> int:
    """Row of the α tensor that weighs the edge from state `source` into node `node`.

    Rows run node 0's edges from states 0, 1, then node 1's from 0, 1, 2, and so on.
    """
    return sum(m + 2 for m in range(node)) + source


def state_name(index: int) -> str:
    """A cell state's label: the inputs `c_{k-2}`, `c_{k-1}`, then the nodes `0`, `1`, …"""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)
