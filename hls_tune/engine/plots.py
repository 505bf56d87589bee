"""Figures of one search: cell diagrams, α evolution, HLS schedule, per-class accuracy,
losses and α movement.

Pure functions from engine objects (Genotype, EpochMetrics, SearchConfig) to PNG/SVG files;
no Optuna here. Figures are built on `matplotlib.figure.Figure` with the Agg canvas and never
through pyplot, so they work headless, in threads, and leave the user's backend alone.

This module holds the figures of a search's history (α over epochs, the schedule, per-class
accuracy) and is the public surface of all of them: the canvas and colours
(`hls_tune.engine.figures.canvas`) and the cell diagrams (`hls_tune.engine.figures.cells`,
Graphviz's `dot` when the binary exists and a matplotlib drawing otherwise) are re-exported
here under their names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hls_tune.engine.figures.canvas import (
    CELL_GROUPS,
    GROUP_COLORS,
    OP_COLORS,
    SHOT_COLORS,
    edge_index,
    new_figure,
    save_figure,
    state_name,
)
from hls_tune.engine.figures.cells import (
    CellEngine,
    cell_diagram,
    cell_dot,
    cell_figure,
    dot_available,
)
from hls_tune.engine.nas.genotype import PRIMITIVES, Edge
from hls_tune.engine.results import EpochMetrics
from hls_tune.engine.schedules import alpha_learning_rates
from hls_tune.engine.settings import SearchConfig

__all__ = [
    "CELL_GROUPS",
    "OP_COLORS",
    "SHOT_COLORS",
    "CellEngine",
    "architecture_figure",
    "cell_diagram",
    "cell_dot",
    "dot_available",
    "edge_index",
    "new_figure",
    "per_class_figure",
    "save_figure",
    "schedule_figure",
    "training_figure",
]

# The matplotlib cell drawing under its name from before `figures.cells` (tests use it).
_cell_figure = cell_figure


# --- α over epochs --------------------------------------------------------------------------


def _nodes_of(edge_count: int) -> int:
    # edges = n(n + 3)/2  →  n = (−3 + √(9 + 8·edges)) / 2
    return round((-3 + math.sqrt(9 + 8 * edge_count)) / 2)


def architecture_figure(
    history: Sequence[EpochMetrics],
    groups: Sequence[str] | None = None,
    *,
    kept: Mapping[str, Sequence[Edge]] | None = None,
) -> Figure:
    """Each edge's softmaxed op weights across epochs, one row per α group.

    In a group's row the edges sit side by side in α order (node 0's edges from c_{k-2},
    c_{k-1}, then node 1's, ...); within an edge's slot, x is the epoch and each op is a
    line. Edges the derived cell keeps (`kept`) are shaded and labelled with their op. One
    axes per group keeps the figure cheap enough to draw at the end of every trial.

    Args:
        history: per-epoch metrics with `alphas[group]` (edges × ops).
        groups: the α groups to draw (default: all in the history).
        kept: per group, the derived cell's edges to highlight (e.g. the last genotype's).
    """
    if not history:
        raise ValueError("architecture_figure needs at least one epoch of history.")
    groups = list(groups if groups is not None else history[-1].alphas)
    epochs = [m.epoch for m in history]
    span = max(1, epochs[-1] - epochs[0])
    slot = span * 1.25  # width of one edge's slot, with a gap
    edge_count = len(history[-1].alphas[groups[0]])
    nodes = _nodes_of(edge_count)
    labels = [f"{state_name(source)}→{node}" for node in range(nodes) for source in range(node + 2)]
    figure = new_figure(max(8.0, 0.75 * edge_count + 1.5), 2.0 * len(groups) + 0.9)
    markers = len(epochs) < 12  # few epochs: dots, so that a single epoch still shows
    for row, group in enumerate(groups):
        axes = figure.add_subplot(len(groups), 1, row + 1)
        weights = [m.alphas[group] for m in history]
        top = max(max(edge) for w in weights for edge in w)
        kept_ops = {}
        for position, (op, source) in enumerate((kept or {}).get(group, ())):
            kept_ops[edge_index(position // 2, source)] = op
        # One collection per axes instead of 112 Line2D artists: drawing stays fast.
        segments, colors, dots = [], [], []
        for e in range(edge_count):
            x0 = e * slot
            xs = [x0 + (epoch - epochs[0]) for epoch in epochs]
            for k, op in enumerate(PRIMITIVES):
                points = list(zip(xs, [w[e][k] for w in weights], strict=True))
                segments.append(points)
                colors.append(OP_COLORS[op])
                if markers:
                    dots += [(x, y, OP_COLORS[op]) for x, y in points]
            if e in kept_ops:
                axes.axvspan(x0 - 0.1 * span, x0 + 1.1 * span, color="#fff3b0", zorder=0)
                axes.text(
                    x0 + span / 2,
                    top * 1.02,
                    kept_ops[e],
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color=OP_COLORS[kept_ops[e]],
                    rotation=90 if edge_count > 10 else 0,
                )
        axes.add_collection(LineCollection(segments, colors=colors, linewidths=1.2))
        if dots:
            axes.scatter(
                [d[0] for d in dots], [d[1] for d in dots], c=[d[2] for d in dots], s=5, lw=0
            )
        axes.set_xticks([e * slot + span / 2 for e in range(edge_count)])
        axes.set_xticklabels(labels if row == len(groups) - 1 else [], fontsize=7)
        axes.set_xlim(-0.2 * span, edge_count * slot)
        axes.set_ylim(0, top * (1.45 if edge_count > 10 else 1.2))
        axes.set_ylabel(group.replace("_", "\n", 1), fontsize=8)
        axes.tick_params(axis="y", labelsize=7)
    handles = [Line2D([], [], color=OP_COLORS[op], lw=2, label=op) for op in PRIMITIVES]
    figure.legend(handles=handles, loc="outside lower center", ncols=8, fontsize=7)
    figure.suptitle(
        f"op weights (softmax α) of every edge over epochs {epochs[0]}–{epochs[-1]}; "
        "shaded: edges the derived cell keeps",
        fontsize=10,
    )
    return figure


# --- schedule -------------------------------------------------------------------------------


def schedule_figure(
    config: SearchConfig, history: Sequence[EpochMetrics] = (), *, points: int = 201
) -> Figure:
    """μ(t) and each α group's learning rate over the epoch budget.

    Lines are the schedule as configured (per step, over the whole budget); markers are the
    values the search recorded at the start of each epoch it ran.

    Args:
        config: the trial's engine settings (method, schedule, alpha_lr, epochs).
        history: the epochs run so far.
        points: samples of the continuous curves.
    """
    groups = tuple(history[0].alpha_lrs) if history else _groups_of(config)
    ts = [i / (points - 1) for i in range(points)]
    x = [t * config.epochs for t in ts]
    panels = 2 if config.is_bbn else 1
    figure = new_figure(7.0, 2.4 * panels + 0.6)
    grid = figure.add_gridspec(panels, 1)
    lr_axes = figure.add_subplot(grid[panels - 1, 0])
    if config.is_bbn:
        mu_axes = figure.add_subplot(grid[0, 0], sharex=lr_axes)
        mu_axes.plot(x, [config.schedule.mixing(t) for t in ts], color="black", lw=1.6)
        done = [m for m in history if m.mixing_ratio is not None]
        mu_axes.plot(
            [m.epoch for m in done], [m.mixing_ratio for m in done], "o", color="black", ms=4
        )
        mu_axes.set_ylabel("μ (conventional share)")
        mu_axes.set_ylim(-0.05, 1.05)
        mu_axes.set_title(f"mixing ratio: {config.schedule.mixing.form}", fontsize=10)
        mu_axes.grid(alpha=0.3)
    curves = {g: [] for g in groups}
    for t in ts:
        for g, lr in alpha_learning_rates(config, t, groups).items():
            curves[g].append(lr)
    # The α rates run on α-progress: from alpha_start_epoch (α warm-up) to the end.
    start = config.alpha_start_epoch
    x_alpha = [start + t * (config.epochs - start) for t in ts]
    for g in groups:
        color = GROUP_COLORS.get(g)
        # Backbone groups dashed: with some couplings they coincide with a head's curve.
        dashed = "--" if g.startswith("backbone") else "-"
        lr_axes.plot(x_alpha, curves[g], lw=1.6, color=color, label=g, ls=dashed)
        lr_axes.plot(
            [m.epoch for m in history], [m.alpha_lrs[g] for m in history], "o", color=color, ms=4
        )
    lr_axes.set_xlabel("epoch")
    lr_axes.set_ylabel("α learning rate")
    lr_axes.set_xlim(0, config.epochs)
    lr_axes.grid(alpha=0.3)
    lr_axes.legend(fontsize=8)
    lr_axes.set_title(
        f"{config.method}: {_shapes_title(config, groups)}, lr_α {config.alpha_lr:.3g}",
        fontsize=10,
    )
    return figure


def _shapes_title(config: SearchConfig, groups: Sequence[str]) -> str:
    """Each group's α-LR shape (a family named once when its groups agree), the coupling."""
    if config.method != "hls":
        return "one constant α-LR for every group"
    schedule = config.schedule
    shapes = {}
    for g in groups:
        shapes[g] = schedule.follows(g).shape
    parts = []
    for family, members in (
        ("backbone", ("backbone_normal", "backbone_reduce")),
        ("heads", ("head_conventional", "head_rebalancing")),
    ):
        present = [g for g in members if g in shapes]
        if present and len({shapes[g] for g in present}) == 1:
            parts.append(f"{family} {shapes[present[0]]}")
        else:
            parts.extend(f"{g} {shapes[g]}" for g in present)
    return f"{', '.join(parts)}; coupling {schedule.coupling}"


def _groups_of(config: SearchConfig) -> tuple[str, ...]:
    if config.is_bbn:
        return tuple(CELL_GROUPS.values())
    return ("backbone_normal", "backbone_reduce")


# --- per-class accuracy ---------------------------------------------------------------------


def per_class_figure(
    per_class_accuracy: Sequence[float],
    shot_group: Sequence[str],
    train_counts: Sequence[int] | None = None,
    *,
    title: str = "validation accuracy per class",
) -> Figure:
    """Per-class accuracy bars coloured by shot group, with each group's mean as a line.

    Args:
        per_class_accuracy: accuracy of each class, in class order.
        shot_group: `many`, `medium` or `few` per class.
        train_counts: training images per class, written above the bars.
        title: the figure title.
    """
    if len(per_class_accuracy) != len(shot_group):
        raise ValueError(
            f"per_class_accuracy has {len(per_class_accuracy)} classes but shot_group "
            f"{len(shot_group)}."
        )
    classes = list(range(len(per_class_accuracy)))
    figure = new_figure(max(6.5, 0.3 * len(classes) + 3.5), 3.4)
    axes = figure.add_subplot()
    colors = [SHOT_COLORS.get(g, "gray") for g in shot_group]
    axes.bar(classes, per_class_accuracy, color=colors, edgecolor="black", lw=0.5)
    handles = []
    for group, color in SHOT_COLORS.items():
        members = [a for a, g in zip(per_class_accuracy, shot_group, strict=True) if g == group]
        if members:
            mean = sum(members) / len(members)
            handles.append(Patch(color=color, label=f"{group}-shot ({len(members)} classes)"))
            handles.append(
                axes.axhline(mean, color=color, ls="--", lw=1.2, label=f"mean {mean:.2f}")
            )
    if train_counts is not None:
        for c, (accuracy, count) in enumerate(zip(per_class_accuracy, train_counts, strict=True)):
            axes.text(c, accuracy + 0.02, str(count), ha="center", va="bottom", fontsize=7)
    axes.set_ylim(0, 1.12)
    axes.set_xticks(classes)
    for label, color in zip(axes.get_xticklabels(), colors, strict=True):
        label.set_color(color)  # the shot group stays visible on bars of height 0
    axes.set_xlabel("class (training images above each bar)" if train_counts else "class")
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize=9)
    figure.legend(handles=handles, loc="outside right upper", fontsize=7)
    return figure


# --- losses and α movement ------------------------------------------------------------------


def training_figure(history: Sequence[EpochMetrics]) -> Figure:
    """Per epoch: the training loss against the validation loss (the HLS paper's Fig. 2
    compares them for naive BBN+DARTS), each BBN branch's training loss, and each α group's
    movement ‖α_e − α_{e−1}‖ (whether equal cumulative α rates give equal movement).

    Args:
        history: the epochs the search finished (at least one).
    """
    if not history:
        raise ValueError("training_figure needs at least one finished epoch.")
    epochs = [m.epoch for m in history]
    figure = new_figure(7.0, 5.4)
    loss_axes, move_axes = figure.subplots(2, 1, sharex=True)
    loss_axes.plot(epochs, [m.train_loss for m in history], "o-", color="black", label="train")
    if any(m.val_loss is not None for m in history):
        val = [m.val_loss for m in history]
        loss_axes.plot(epochs, val, "s--", color="gray", label="validation")
    for branch, color in (("conventional", "tab:blue"), ("rebalancing", "tab:orange")):
        values = [(m.branch_losses or {}).get(branch) for m in history]
        if any(v is not None for v in values):
            loss_axes.plot(epochs, values, ".:", color=color, label=f"{branch} branch")
    loss_axes.set_ylabel("cross-entropy")
    loss_axes.set_title("training and validation loss", fontsize=10)
    loss_axes.grid(alpha=0.3)
    loss_axes.legend(fontsize=8)
    for group in sorted({g for m in history for g in m.alpha_movement}):
        values = [m.alpha_movement.get(group) for m in history]
        dashed = "--" if group.startswith("backbone") else "-"
        move_axes.plot(
            epochs, values, "o", ls=dashed, color=GROUP_COLORS.get(group), label=group, ms=4
        )
    move_axes.set_xlabel("epoch")
    move_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    move_axes.set_ylabel("‖α_e − α_{e−1}‖")
    move_axes.set_title("α movement per group", fontsize=10)
    move_axes.grid(alpha=0.3)
    if any(m.alpha_movement for m in history):
        move_axes.legend(fontsize=8)
    return figure
