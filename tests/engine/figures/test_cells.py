"""hls_tune/engine/figures/cells.py: cell diagrams, with Graphviz and without it."""

from __future__ import annotations

import itertools

import pytest

from hls_tune.engine import plots
from hls_tune.engine.nas.genotype import builtin_genotype
from tests.support.helpers import require_program
from tests.support.pngs import assert_png


def test_cell_diagrams_draw_without_graphviz(tmp_path):
    genotype = builtin_genotype("darts_v2")
    path, engine = plots.cell_diagram(
        genotype.normal, genotype.normal_concat, tmp_path / "normal.png", engine="matplotlib"
    )
    assert engine == "matplotlib"
    assert_png(path.read_bytes())
    svg, _ = plots.cell_diagram(
        genotype.reduce, genotype.reduce_concat, tmp_path / "reduce.svg", engine="matplotlib"
    )
    assert b"<svg" in svg.read_bytes()


def test_cell_diagrams_use_graphviz_where_dot_exists(tmp_path):
    require_program("dot", "Graphviz renders the cell diagrams (apt-get install graphviz)")
    genotype = builtin_genotype("pc_darts")
    path, engine = plots.cell_diagram(genotype.normal, genotype.normal_concat, tmp_path / "n.png")
    assert engine == "dot"
    assert_png(path.read_bytes())
    dot = plots.cell_dot(genotype.normal, genotype.normal_concat, "normal")
    # every kept edge and every concatenated state appears in the graph
    assert dot.count("->") == len(genotype.normal) + len(genotype.normal_concat)


def _text_boxes(figure):
    """Every label's extent (with its box) in display pixels, after a draw: node and op
    labels, titles (the hidden axes' tick labels are not drawn)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [*figure.texts]
    for axes in figure.axes:
        texts += [*axes.texts, axes.title]
    boxes = []
    for text in texts:
        if not text.get_visible() or not text.get_text():
            continue
        patch = text.get_bbox_patch()
        extent = (patch or text).get_window_extent(renderer)
        boxes.append((text.get_text(), extent))
    return boxes


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ("darts_v2", "normal"),
        ("darts_v2", "reduce"),
        ("pc_darts", "normal"),
        ("pc_darts", "reduce"),
    ],
)
def test_the_matplotlib_cell_diagram_labels_neither_overlap_nor_leave_the_figure(name, cell):
    genotype = builtin_genotype(name)
    edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
    figure = plots._cell_figure(edges, concat, f"{name} {cell} cell")
    boxes = _text_boxes(figure)
    labels = [label for label, _ in boxes]
    assert sorted(op for op, _ in edges) == sorted(
        label for label in labels if label in dict(edges)
    )
    bounds = figure.bbox
    for label, extent in boxes:
        inside = (
            extent.x0 >= bounds.x0
            and extent.y0 >= bounds.y0
            and extent.x1 <= bounds.x1
            and extent.y1 <= bounds.y1
        )
        assert inside, (label, extent, bounds)
    for (first, a), (second, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (first, second, a, b)
