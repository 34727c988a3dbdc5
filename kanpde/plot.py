"""Figures: solutions, training histories, KAN diagrams, edge functions, studies.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``.
Figures are detached from pyplot's list of open figures, so a notebook shows a returned
figure exactly once (``kanpde.plot.solution(run)`` as the last line of a cell), loops over
many runs leak no windows, and scripts save them: ``fig.savefig("solution.png")``.

==================  =====================================================================
:func:`solution`    prediction, exact/reference and absolute error (1-D lines, 2-D maps,
                    space-time maps with time slices, 3-D slices; one row per output)
:func:`history`     loss terms and test errors against steps, grid extensions marked
:func:`network`     the KAN diagram: nodes, every edge with its learned function, opacity
                    by importance, symbolic labels
:func:`activations` the edge functions of one layer with their knots
:func:`compare`     error against parameters and training time (KAN vs MLP, Pareto front)
:func:`curves`      training curves of every model and seed of a comparison
:func:`sweep`       error against grid size with the fitted convergence slope
==================  =====================================================================

On the command line: ``kanpde plot RUN.h5 --kind solution|history|network|activations
-o FILE.png`` and ``kanpde plot comparison.csv|sweep.csv``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .problem import _near_match

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike
    from torch import Tensor

    from .compare import Comparison, Sweep
    from .nn.kan import KAN, KANLayer
    from .results import Run
    from .training import Trainer

__all__ = [
    "activations", "compare", "curves", "edge_kinds", "history", "network", "solution", "sweep",
    "symbolic_labels",
]  # fmt: skip

TIME_NAMES = ("t", "time")
CMAP = "viridis"  # prediction and reference (one shared scale per output)
ERROR_CMAP = "magma_r"  # absolute error (white = small)
METRIC_LABELS = {
    "rel_l2": "test relative L2 error",
    "mse": "test MSE",
    "rmse": "test RMSE",
    "max_err": "test max |error|",
    "loss": "final training loss (weighted)",
}


# ------------------------------------------------------------------------------- helpers


def _figure(figsize, **kwargs):
    """A new constrained-layout figure, not registered with pyplot (see the module doc)."""
    import matplotlib.pyplot as plt

    # Created through pyplot so that a notebook's inline backend knows how to display it,
    # then closed at once: it is shown only where it is returned or saved.
    fig = plt.figure(figsize=figsize, layout="constrained", **kwargs)
    plt.close(fig)
    return fig


def _where(run) -> str:
    path = getattr(run, "path", None)
    return str(path) if path is not None else f"run of {_problem_name(run)}"


def _problem_name(run) -> str:
    return str(run.config.get("problem") or run.attrs.get("problem") or "run")


def _size_label(basis: str | None, grid) -> str:
    """A KAN's ``grid`` as what it counts: intervals (G=10), or a Chebyshev basis's degree."""
    return f"degree {grid}" if basis == "chebyshev" else f"G={grid}"


def _model_text(run) -> str:
    cfg = run.config.get("model", {})
    kind = str(cfg.get("type", "kan")).upper()
    if kind == "CUSTOM":  # a module of the user's own: its class, no widths
        text = str(cfg.get("class", "custom module")).rsplit(".", 1)[-1]
    else:
        text = f"{kind} {list(cfg.get('width', []))}"
    if kind == "KAN" and "grid" in cfg:
        basis = "Chebyshev, " if cfg.get("basis") == "chebyshev" else ""
        text += f", {basis}{_size_label(cfg.get('basis'), cfg['grid'])}"
    params = run.config.get("parameters")
    if params is not None:
        text += f", {params} parameters"
    return text


def _load_run(path: str | os.PathLike, figure: str) -> Run:
    """The run in a results file or run directory; a run with only its checkpoint (training,
    or interrupted) as far as it got, for ``history`` alone (``figure``, the plot's name)."""
    from .results import load, load_progress

    path = Path(path)
    unfinished = path.name == "checkpoint.h5" or (
        path.is_dir() and (path / "checkpoint.h5").exists() and not (path / "result.h5").exists()
    )
    if not unfinished:
        return load(path)
    if figure != "history":
        raise ValueError(
            f"{path}: the run has not finished (only its checkpoint); --kind history plots "
            "its progress (plot.history in Python)"
        )
    return load_progress(path)


def _as_run(obj, figure: str = "history"):
    """A :class:`~kanpde.results.Run` from a run, a results file's path or a
    :class:`~kanpde.training.Trainer` (``figure``: the plot asking, for messages)."""
    from .training import Trainer

    if isinstance(obj, str | os.PathLike):
        return _load_run(obj, figure)
    if not isinstance(obj, Trainer):
        return obj
    import time

    from .nn import count_parameters
    from .results import Run
    from .training import model_config

    problem, net = obj.residuals.problem, obj.residuals.model  # (not the unknowns with it)
    config = {"problem": problem.name, "model": model_config(net),
              "parameters": count_parameters(net)}  # fmt: skip
    return Run.from_trainer(obj, problem=problem, config=config, started=time.time())


def _fmt(v: float) -> str:
    return f"{v:.2e}" if np.isfinite(v) else "n/a"


def _time_axis(names: Sequence[str]) -> int | None:
    """Index of the time column (kanpde puts time last and calls it ``t``), else None."""
    if names and str(names[-1]).lower() in TIME_NAMES:
        return len(names) - 1
    return None


def _grid(x: np.ndarray, rtol: float = 1e-9):
    """Reconstruct a tensor grid from points.

    Parameters
    ----------
    x : ndarray
        ``(N, D)`` points (e.g. ``domain.grid(n).points``, C order, "ij" indexing, possibly
        with nodes outside a non-rectangular domain left out).

    Returns
    -------
    axes : list of ndarray
        Sorted unique coordinates per axis (coordinates closer than ``rtol`` times the axis
        span are merged).
    index : tuple of ndarray
        Each point's position along every axis (``D`` integer arrays of length ``N``).
    gridded : bool
        True when the points are distinct nodes of that grid and fill at least an eighth of
        it (scattered points are not a grid).
    """
    axes, index = [], []
    for col in x.T:
        s = np.sort(col)
        tol = rtol * max(float(s[-1] - s[0]), 1e-300)
        u = s[np.concatenate([[True], np.diff(s) > tol])]
        axes.append(u)
        index.append(np.searchsorted(u, col + tol, side="right") - 1)
    shape = tuple(len(a) for a in axes)
    cells = math.prod(shape)
    gridded = cells <= 8 * len(x) and len(np.unique(np.ravel_multi_index(index, shape))) == len(x)
    return axes, tuple(index), gridded


def _on_grid(values: np.ndarray, index, shape) -> np.ndarray:
    g = np.full(shape, np.nan)
    g[index] = values
    return g


def _solution_arrays(run):
    """``x (N, D)``, ``pred (N, m)``, ``ref (N, m)`` or None, ``|error| (N, m)`` or None."""
    sol = run.solution or {}
    if "x" in sol and "pred" in sol:
        x = np.asarray(sol["x"], dtype=float)
        pred = np.asarray(sol["pred"], dtype=float)
        ref = np.asarray(sol["ref"], dtype=float) if "ref" in sol else None
    else:
        x, pred = _predict_from_problem(run)
        ref = None
    if x.ndim == 1:
        x = x[:, None]
    if pred.ndim == 1:
        pred = pred[:, None]
    if ref is not None and ref.ndim == 1:
        ref = ref[:, None]
    if ref is None:
        return x, pred, None, None
    err = np.asarray(sol["error"], dtype=float) if "error" in sol else pred - ref
    return x, pred, ref, np.abs(err.reshape(pred.shape))


def _predict_from_problem(run):
    """No stored solution (problem without exact/reference): evaluate the model on the
    problem's domain grid, if the problem file is still where the run says."""
    import torch

    file = run.attrs.get("problem_file") or ""
    if not file or not Path(file).exists():
        raise ValueError(
            f"{_where(run)}: no solution stored (the problem has no exact or reference "
            "solution) and its problem file is not available to evaluate the model on"
        )
    from .problem import load_problem
    from .results import EVAL_GRID

    domain = load_problem(file).domain
    n = EVAL_GRID.get(domain.dim, 11)
    x = domain.grid(n).points
    net = run.model()
    p = next(net.parameters())
    with torch.no_grad():
        pred = net(torch.as_tensor(x, dtype=p.dtype, device=p.device)).cpu().numpy()
    return x, pred


def _slice_values(axis_values: np.ndarray, slices, is_time: bool) -> list[int]:
    """Indices along an axis for the requested slices (a count or coordinates), each
    coordinate snapped to the nearest node of the test grid (equal nodes are drawn once)."""
    if slices is None:
        slices = 4 if is_time else 3
    if isinstance(slices, int | np.integer):
        fr = np.linspace(0, 1, int(slices)) if is_time else (np.arange(slices) + 1) / (slices + 1)
        lo, hi = axis_values[0], axis_values[-1]
        targets = lo + fr * (hi - lo)
    else:
        targets = np.asarray(slices, dtype=float)
    idx = [int(np.argmin(np.abs(axis_values - t))) for t in targets]
    return list(dict.fromkeys(idx))


def _checked_slices(slices, axis_values: np.ndarray | None, name: str | None):
    """A slice request as the layouts take it (None, a count, or a 1-D array of coordinates),
    refused in one line where it would fail inside matplotlib or be silently changed;
    ``axis_values`` is None where the layout has nothing to slice."""
    if isinstance(slices, np.ndarray) and slices.ndim == 0:
        slices = slices.item()  # a 0-d array is its value (an integer one a count)
    if slices is None:
        return None
    if isinstance(slices, np.ndarray) and slices.ndim > 1:
        raise ValueError(f"slices (--slices): a flat list of coordinates, not shape {slices.shape}")
    if axis_values is None:
        raise ValueError(
            f"slices (--slices) {slices!r}: only for 3-D or space-time runs on a grid; this "
            "run's solution is drawn whole"
        )
    if isinstance(slices, bool) or not (
        isinstance(slices, int | np.integer | float | np.floating)
        or (isinstance(slices, Sequence | np.ndarray) and not isinstance(slices, str))
    ):
        raise ValueError(
            f"slices (--slices) {slices!r}: give a count (3) or coordinates of {name} (0.25, 0.5)"
        )
    if isinstance(slices, int | np.integer):
        if slices < 1:
            raise ValueError(
                f"slices (--slices) {slices}: the number of slices must be >= 1 (a coordinate "
                "is a float: 0.0)"
            )
        return int(slices)
    try:
        values = np.atleast_1d(np.asarray(slices, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(
            f"slices (--slices) {slices!r}: coordinates of {name} must be numbers"
        ) from None
    lo, hi = float(axis_values[0]), float(axis_values[-1])
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    bad = [float(v) for v in values if not (lo - tol <= v <= hi + tol)]  # NaN fails too
    if values.size == 0 or bad:
        what = "no coordinates" if values.size == 0 else f"{bad} outside"
        raise ValueError(f"slices (--slices): {what} {name} in [{lo:.6g}, {hi:.6g}]")
    return values


def _mesh(ax, xa, ya, values2d, **kw):
    """``values2d[i, j]`` at ``(xa[i], ya[j])`` as cells centred on the nodes (NaN: grey, so
    that outside a non-rectangular domain does not read as zero error)."""
    ax.set_facecolor("0.8")
    return ax.pcolormesh(xa, ya, np.ma.masked_invalid(values2d.T), shading="nearest", **kw)


# ------------------------------------------------------------------------------- solution


def solution(
    run: Run | str | os.PathLike,
    *,
    outputs: str | Sequence[str] | None = None,
    slices: float | Sequence[float] | None = None,
    ref_label: str | None = None,
    cmap: str = CMAP,
    error_cmap: str = ERROR_CMAP,
    log_error: bool = False,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Prediction, exact/reference solution and absolute error side by side.

    The layout follows the evaluation points stored in ``run.solution`` (their tensor grid
    is reconstructed from the unique coordinates along each axis; nodes outside a
    non-rectangular domain are left blank):

    * 1-D: prediction and reference as lines on one axes, ``|error|`` next to it;
    * 2-D: three maps (prediction, reference, ``|error|``) with equal aspect;
    * 1-D + time (last axis named ``t``): three space-time maps (``x`` across, ``t`` up)
      and the solution at a few times (prediction solid, reference dashed);
    * 3-D (or 2-D + time): maps on slices along the last axis;
    * systems: one row (or block of rows) per output.

    Prediction and reference of one output share one colour scale and colour bar; the
    error has its own. Scattered 2-D points are drawn on a triangulation.

    Parameters
    ----------
    run : Run or path
        A loaded or returned run (:func:`kanpde.load`, :func:`kanpde.solve`), or the path of
        its results file or run directory.
    outputs : str or sequence of str, optional
        Which outputs to show, in this order (default: all).
    slices : int, float or sequence of float, optional
        For 3-D and space-time runs only: the number of slices (default 3 across a 3-D box,
        4 times from start to end), or the coordinates along the last axis to slice at; each
        is drawn at the nearest node of the stored test grid (equal nodes once).
    ref_label : str, optional
        Title of the exact/reference column (default: ``"exact"`` or ``"reference"``, as the
        results file records).
    cmap, error_cmap : str
        Matplotlib colour maps of the solution and of the error.
    log_error : bool
        Draw ``|error|`` on a log scale (six decades below its maximum), so that small errors
        away from a peak (a shock, a corner) keep their structure.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    run = _as_run(run, "solution")
    x, pred, ref, err = _solution_arrays(run)
    if log_error and err is None:  # it would be ignored without a word
        raise ValueError(
            f"{_where(run)}: log_error (--log-error): the run has no exact solution or "
            "reference, so there is no error panel to draw on a log scale"
        )
    names = list(run.names) or [f"x{i + 1}" for i in range(x.shape[1])]
    all_outputs = list(run.outputs) if len(run.outputs) == pred.shape[1] else None
    all_outputs = all_outputs or [f"u{i + 1}" for i in range(pred.shape[1])]
    if len(names) != x.shape[1]:
        names = [f"x{i + 1}" for i in range(x.shape[1])]
    if outputs is None:
        chosen = all_outputs
    else:
        chosen = [outputs] if isinstance(outputs, str) else [str(o) for o in outputs]
        unknown = [o for o in chosen if o not in all_outputs]
        if unknown:
            raise ValueError(
                f"outputs (--outputs) {unknown}: not among the run's outputs {all_outputs}"
            )
        if not chosen or len(set(chosen)) < len(chosen):
            raise ValueError(
                f"outputs (--outputs) {chosen}: name each of the run's outputs {all_outputs} at "
                "most once, at least one"
            )
    cols = [all_outputs.index(o) for o in chosen]
    dim = x.shape[1]
    if dim > 3:
        raise ValueError(f"{_where(run)}: solution plots cover 1 to 3 axes, this run has {dim}")
    axes_, index, gridded = _grid(x)
    # the run says which column is time (-1: steady); older files only by the axis name
    stored = (getattr(run, "attrs", None) or {}).get("time_axis")
    t_axis = _time_axis(names) if stored is None else (None if int(stored) < 0 else int(stored))
    # the layouts below slice along the last axis: 3-D, and space-time on a grid
    if dim == 3 or (dim == 2 and t_axis is not None and gridded):
        slices = _checked_slices(slices, axes_[-1], names[-1])
    else:
        slices = _checked_slices(slices, None, None)
    if ref_label is None:  # what the file says it stored: an exact solution or a reference
        ref_label = str((getattr(run, "attrs", None) or {}).get("reference", "reference"))
    data = {
        "x": x, "pred": pred, "ref": ref, "err": err, "names": names, "outputs": all_outputs,
        "cols": cols, "axes": axes_, "index": index, "gridded": gridded,
        "ref_label": ref_label, "cmap": cmap, "error_cmap": error_cmap, "log_error": log_error,
    }  # fmt: skip
    if dim == 1:
        fig = _solution_1d(data, figsize)
    elif dim == 2 and t_axis is not None and gridded:
        fig = _solution_space_time(data, slices, figsize)
    elif dim == 2:
        fig = _solution_2d(data, figsize)
    else:
        if not gridded:
            raise ValueError(f"{_where(run)}: 3-D solutions need points on a tensor grid")
        fig = _solution_slices(data, 2, t_axis is not None, slices, figsize)
    if dim > 1:  # room between a shared colour bar's label and the next panel's axis label
        fig.get_layout_engine().set(wspace=0.07)
    title = f"{_problem_name(run)}: {_model_text(run)}"
    m = run.metrics or {}
    if ref is not None:
        title += f"\ntest rel. L2 {_fmt(m.get('rel_l2', np.nan))}"
        # a system's outputs differ in scale: each one's own error says more than the joint one
        parts = [f"{o} {_fmt(m[f'rel_l2_{o}'])}" for o in all_outputs if f"rel_l2_{o}" in m]
        if len(parts) > 1:
            title += f" ({', '.join(parts)})"
        title += f", max |error| {_fmt(m.get('max_err', np.nan))}"
    found = getattr(run, "unknowns", {})  # an inverse problem's trained coefficients
    if found:
        title += ("\n" if ref is None else "; ") + ", ".join(
            f"{n} = {v:.6g}" for n, v in found.items()
        )
    fig.suptitle(title, fontsize=10)
    return fig


def _row_label(data, j: int) -> str:
    return data["outputs"][j]


def _limits(*arrays) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(a, float).ravel() for a in arrays if a is not None])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-12), hi + 0.5 * max(abs(hi), 1e-12)
    return lo, hi


def _error_scale(data, vmax: float) -> dict:
    """Colour-scale keywords of an ``|error|`` map: from 0, or log over six decades."""
    if not data["log_error"]:
        return {"vmin": 0, "vmax": vmax}
    from matplotlib.colors import LogNorm

    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    return {"norm": LogNorm(vmin=vmax * 1e-6, vmax=vmax, clip=True)}


def _colorbar(fig, mappable, ax, label: str, error: bool = False):
    """A colour bar with a fixed number of ticks (so its width, and the layout, do not depend on
    its final length) and scientific notation for small errors."""
    import matplotlib.ticker as mticker
    from matplotlib.colors import LogNorm

    cb = fig.colorbar(mappable, ax=ax, shrink=0.9, aspect=25)
    if isinstance(mappable.norm, LogNorm):  # decades as ticks
        cb.set_label(label)
        return cb
    cb.locator = mticker.MaxNLocator(nbins=6)
    if error:
        cb.formatter = mticker.ScalarFormatter(useMathText=False)
        cb.formatter.set_powerlimits((-2, 3))
    cb.set_label(label)
    cb.update_ticks()
    return cb


def _solution_1d(data, figsize):
    x, pred, ref, err, cols = data["x"][:, 0], data["pred"], data["ref"], data["err"], data["cols"]
    order = np.argsort(x, kind="stable")
    x = x[order]
    ncol = 1 if ref is None else 2
    fig = _figure(figsize or (4.2 * ncol, 2.8 * len(cols) + 0.7))
    grid = fig.subplots(len(cols), ncol, squeeze=False)
    for r, j in enumerate(cols):
        o = _row_label(data, j)
        ax = grid[r, 0]
        ax.set_label(f"pred {o}")
        if ref is not None:
            ax.plot(x, ref[order, j], "k--", lw=1.6, label=data["ref_label"], zorder=3)
        ax.plot(x, pred[order, j], color="C0", lw=2.2, alpha=0.85, label="prediction", zorder=2)
        ax.set_xlabel(data["names"][0])
        ax.set_ylabel(o)
        both = f" and {data['ref_label']}" if ref is not None else ""
        ax.set_title(f"{o}: prediction{both}", fontsize=10)
        if ref is not None:
            ax.legend(fontsize=8)
            e = grid[r, 1]
            e.set_label(f"error {o}")
            e.plot(x, err[order, j], color="C3", lw=1.5)
            e.set_xlabel(data["names"][0])
            e.set_ylabel(f"|error| of {o}")
            e.set_title(f"{o}: |error| (max {err[:, j].max():.2e})", fontsize=10)
            if data["log_error"]:
                e.set_yscale("log")
            else:
                e.set_ylim(bottom=0)
                e.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    return fig


def _map_panel_size(spans, equal: bool) -> tuple[float, float]:
    w = 3.0
    aspect = spans[1] / spans[0] if equal else 0.85
    return w, float(np.clip(w * aspect, 1.8, 4.4))


def _triangulation(x):
    import matplotlib.tri as mtri

    return mtri.Triangulation(x[:, 0], x[:, 1])


def _solution_2d(data, figsize):
    x, pred, ref, err, cols = data["x"], data["pred"], data["ref"], data["err"], data["cols"]
    axes_, index, gridded = data["axes"], data["index"], data["gridded"]
    shape = tuple(len(a) for a in axes_)
    spans = [float(a[-1] - a[0]) or 1.0 for a in axes_]
    ncol = 1 if ref is None else 3
    w, h = _map_panel_size(spans, equal=True)
    fig = _figure(figsize or (w * ncol + 1.6, h * len(cols) + 0.9))
    grid = fig.subplots(len(cols), ncol, squeeze=False)
    tri = None if gridded else _triangulation(x)

    def draw(ax, values, **kw):
        if gridded:
            return _mesh(ax, axes_[0], axes_[1], _on_grid(values, index, shape), **kw)
        return ax.tripcolor(tri, values, shading="gouraud", **kw)

    for r, j in enumerate(cols):
        o = _row_label(data, j)
        vmin, vmax = _limits(pred[:, j], None if ref is None else ref[:, j])
        panels = [("pred", pred[:, j], "prediction")]
        if ref is not None:
            panels.append(("ref", ref[:, j], data["ref_label"]))
        ims = []
        for c, (key, values, label) in enumerate(panels):
            ax = grid[r, c]
            ax.set_label(f"{key} {o}")
            ims.append(draw(ax, values, cmap=data["cmap"], vmin=vmin, vmax=vmax))
            ax.set_title(f"{o}: {label}", fontsize=10)
        _colorbar(fig, ims[0], list(grid[r, : len(panels)]), o)
        if ref is not None:
            ax = grid[r, 2]
            ax.set_label(f"error {o}")
            emax = float(np.nanmax(err[:, j]))
            im = draw(ax, err[:, j], cmap=data["error_cmap"], **_error_scale(data, emax))
            ax.set_title(f"{o}: |error| (max {emax:.2e})", fontsize=10)
            _colorbar(fig, im, ax, f"|error| of {o}", error=True)
        for ax in grid[r]:
            ax.set_aspect("equal")
            ax.set_xlabel(data["names"][0])
            ax.set_ylabel(data["names"][1])
    return fig


def _solution_space_time(data, slices, figsize):
    pred, ref, err, cols = data["pred"], data["ref"], data["err"], data["cols"]
    axes_, index = data["axes"], data["index"]
    shape = tuple(len(a) for a in axes_)
    xs, ts = axes_
    (xn, tn) = data["names"]
    ncol = 2 if ref is None else 4
    fig = _figure(figsize or (3.3 * ncol + 1.4, 2.9 * len(cols) + 0.9))
    grid = fig.subplots(len(cols), ncol, squeeze=False)
    t_idx = _slice_values(ts, slices, is_time=True)
    import matplotlib as mpl

    colors = mpl.colormaps["plasma"](np.linspace(0.0, 0.85, len(t_idx)))
    for r, j in enumerate(cols):
        o = _row_label(data, j)
        P = _on_grid(pred[:, j], index, shape)
        R = None if ref is None else _on_grid(ref[:, j], index, shape)
        vmin, vmax = _limits(P, R)
        maps = [("pred", P, "prediction")] + ([] if R is None else [("ref", R, data["ref_label"])])
        ims = []
        for c, (key, G, label) in enumerate(maps):
            ax = grid[r, c]
            ax.set_label(f"{key} {o}")
            ims.append(_mesh(ax, xs, ts, G, cmap=data["cmap"], vmin=vmin, vmax=vmax))
            ax.set_title(f"{o}: {label}", fontsize=10)
        _colorbar(fig, ims[0], list(grid[r, : len(maps)]), o)
        for k, c in zip(t_idx, colors):  # where the slices are taken
            grid[r, 0].axhline(ts[k], color=c, lw=1.3, ls="--")
        if R is not None:
            ax = grid[r, 2]
            ax.set_label(f"error {o}")
            E = _on_grid(err[:, j], index, shape)
            im = _mesh(ax, xs, ts, E, cmap=data["error_cmap"], **_error_scale(data, np.nanmax(E)))
            ax.set_title(f"{o}: |error| (max {np.nanmax(E):.2e})", fontsize=10)
            _colorbar(fig, im, ax, f"|error| of {o}", error=True)
        for ax in grid[r, : ncol - 1]:
            ax.set_xlabel(xn)
            ax.set_ylabel(tn)
        sl = grid[r, ncol - 1]
        sl.set_label(f"slices {o}")
        for k, c in zip(t_idx, colors):
            sl.plot(xs, P[:, k], color=c, lw=2, label=f"{tn} = {ts[k]:.3g}")
            if R is not None:  # in its slice's colour: black for all could not be told apart
                sl.plot(xs, R[:, k], color=c, lw=1.2, ls="--")
        if R is not None:
            sl.plot([], [], color="0.3", lw=1.2, ls="--", label=f"{data['ref_label']} (dashed)")
        sl.set_xlabel(xn)
        sl.set_ylabel(o)
        sl.set_title(f"{o} at fixed {tn}", fontsize=10)
        sl.legend(fontsize=7, loc="best")
    return fig


def _solution_slices(data, axis: int, is_time: bool, slices, figsize):
    pred, ref, err, cols = data["pred"], data["ref"], data["err"], data["cols"]
    axes_, index = data["axes"], data["index"]
    shape = tuple(len(a) for a in axes_)
    names = data["names"]
    a, b = [i for i in range(3) if i != axis]
    s_idx = _slice_values(axes_[axis], slices, is_time)
    spans = [float(axes_[i][-1] - axes_[i][0]) or 1.0 for i in (a, b)]
    w, h = _map_panel_size(spans, equal=True)
    ncol = 1 if ref is None else 3
    nrow = len(cols) * len(s_idx)
    fig = _figure(figsize or (w * ncol + 1.6, h * nrow + 0.9))
    grid = fig.subplots(nrow, ncol, squeeze=False)

    def cut(G, k):
        return np.take(G, k, axis=axis)

    for q, j in enumerate(cols):
        o = _row_label(data, j)
        P = _on_grid(pred[:, j], index, shape)
        R = None if ref is None else _on_grid(ref[:, j], index, shape)
        E = None if ref is None else _on_grid(err[:, j], index, shape)
        vmin, vmax = _limits(P, R)
        emax = None if E is None else float(np.nanmax(E))
        rows = grid[q * len(s_idx) : (q + 1) * len(s_idx)]
        sol_axes, err_axes = [], []
        for row, k in zip(rows, s_idx):
            where = f"{names[axis]} = {axes_[axis][k]:.3g}"
            maps = [("pred", P, "prediction")] + (
                [] if R is None else [("ref", R, data["ref_label"])]
            )
            for c, (key, G, label) in enumerate(maps):
                ax = row[c]
                ax.set_label(f"{key} {o}")
                im = _mesh(
                    ax, axes_[a], axes_[b], cut(G, k), cmap=data["cmap"], vmin=vmin, vmax=vmax
                )
                ax.set_title(f"{o}: {label}, {where}", fontsize=9)
                sol_axes.append(ax)
            if E is not None:
                ax = row[2]
                ax.set_label(f"error {o}")
                eim = _mesh(
                    ax, axes_[a], axes_[b], cut(E, k), cmap=data["error_cmap"],
                    **_error_scale(data, emax),
                )  # fmt: skip
                ax.set_title(f"{o}: |error|, {where}", fontsize=9)
                err_axes.append(ax)
            for ax in row:
                ax.set_aspect("equal")
                ax.set_xlabel(names[a])
                ax.set_ylabel(names[b])
        _colorbar(fig, im, sol_axes, o)
        if err_axes:
            span = "space-time" if is_time else "the volume"
            label = f"|error| of {o} (scale: max over {span}, {emax:.2e})"
            _colorbar(fig, eim, err_axes, label, error=True)
    return fig


# -------------------------------------------------------------------------------- history


def _stage_starts(run) -> list[tuple[int, int, int | None, str]]:
    """``(stage, start step, grid, optimizer)`` for every stage that ran."""
    h = run.history
    if "stage" not in h or "step" not in h:
        return []
    stage = np.asarray(h["stage"], float)
    step = np.asarray(h["step"], float)
    grid = np.asarray(h.get("grid", np.full_like(step, np.nan)), float)
    sched = run.config.get("schedule") or []
    out = []
    for s in np.unique(stage[np.isfinite(stage)]).astype(int):
        rows = np.nonzero(stage == s)[0]
        earlier = np.nonzero(stage < s)[0]
        start = int(step[earlier[-1]]) if earlier.size else 0  # last row of the stage before
        g = grid[rows[-1]]
        opt = sched[s].get("optimizer", "") if s < len(sched) and isinstance(sched[s], dict) else ""
        out.append((int(s), start, int(g) if np.isfinite(g) and g > 0 else None, str(opt)))
    return out


def _positive(v):
    v = np.asarray(v, float).copy()
    v[~(v > 0)] = np.nan
    return v


def history(
    run: Run | Trainer | str | os.PathLike,
    *,
    x: str = "step",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Loss terms and test errors against the optimizer step, log scale.

    Stage boundaries are vertical lines labelled with the grid size and optimizer; a grid
    extension (dashed) is where the KAN paper's "staircase" drops. The loss panel shows the
    weighted total (black) and every loss term; the error panel (when the run has a reference)
    shows relative L2, MSE and max error, and per-output relative L2 for systems; a last
    panel (for an inverse problem) shows each unknown coefficient the history records as
    ``param_<name>``, on a linear scale, with its last value in the legend.

    Parameters
    ----------
    run : Run, Trainer or path
        A run, a trainer that has run (as :func:`kanpde.symbolic.train` returns), or the path
        of a results file or run directory; a run still training or interrupted (only its
        ``checkpoint.h5``) is drawn as far as its last checkpoint.
    x : {"step", "time"}
        Horizontal axis: optimizer steps or training time in seconds.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    run = _as_run(run)
    h = run.history
    if x not in ("step", "time"):
        raise ValueError(f"history(x={x!r}): use 'step' or 'time'")
    if not h or "step" not in h or len(h["step"]) == 0:
        raise ValueError(f"{_where(run)}: the run has no history to plot")
    if x not in h:
        raise ValueError(f"{_where(run)}: the history has no {x!r} column")
    xs = np.asarray(h[x], float)
    errors = [k for k in ("rel_l2", "mse", "max_err") if k in h]
    order = list(getattr(run, "outputs", ()) or ())  # the problem's order, not the alphabet's
    per_output = sorted(
        (k for k in h if k.startswith("rel_l2_")),
        key=lambda k: (order.index(k[7:]) if k[7:] in order else len(order), k),
    )
    unknowns = [k for k in h if k.startswith("param_")]  # in the order declared
    npanel = 1 + bool(errors) + bool(unknowns)
    fig = _figure(figsize or (7.5, 2.9 * npanel + 0.6))
    axs = fig.subplots(npanel, 1, sharex=True, squeeze=False)[:, 0]
    ax = axs[0]
    ax.set_label("loss")
    terms = sorted(k for k in h if k.startswith("loss_"))
    # one logged row (a checkpoint early in training) is a point: a line alone would not show
    dot = {"marker": "o", "ms": 4} if len(xs) < 2 else {}
    for i, k in enumerate(terms):
        ax.plot(xs, _positive(h[k]), color=f"C{i % 10}", lw=1.3, label=k[5:], **dot)
    if "loss" in h:
        ax.plot(xs, _positive(h["loss"]), color="k", lw=2.0, label="total (weighted)", **dot)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="loss terms",
              title_fontsize=8)  # fmt: skip
    if errors:
        e = axs[1]
        e.set_label("error")
        styles = {
            "rel_l2": ("C0", "relative L2"),
            "mse": ("C1", "MSE"),
            "max_err": ("C3", "max |error|"),
        }
        for k in errors:
            color, label = styles[k]
            e.plot(xs, _positive(h[k]), color=color, lw=1.8, label=label, **dot)
        for i, k in enumerate(per_output):
            e.plot(xs, _positive(h[k]), color=f"C{(i + 4) % 10}", lw=1.0, ls="--",
                   label=f"relative L2 of {k[7:]}", **dot)  # fmt: skip
        e.set_yscale("log")
        e.set_ylabel("test error")
        e.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if unknowns:
        pa = axs[-1]
        pa.set_label("unknowns")
        for i, k in enumerate(unknowns):
            values = np.asarray(h[k], float)
            pa.plot(xs, values, color=f"C{i % 10}", lw=1.6,
                    label=f"{k[6:]} = {values[-1]:.6g}", **dot)  # fmt: skip
        pa.set_ylabel("unknown coefficients")
        pa.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="last value",
                  title_fontsize=8)  # fmt: skip
    axs[-1].set_xlabel("optimizer step" if x == "step" else "training time (s)")
    # Stage boundaries: grid extensions dashed, other stage changes dotted.
    steps = np.asarray(h["step"], float)
    previous = None
    # Labels of close stages go on rows above each other; a label's width is estimated from
    # its length (8 pt characters about 0.6 em wide, the axes about 62 % of the figure).
    span = float(xs.max() - xs.min()) or 1.0
    char = 0.6 * 8 / 72 / (0.62 * fig.get_figwidth())  # one character, in axes widths
    row_ends: list[float] = []
    basis = run.config.get("model", {}).get("basis")
    for s, start, g, opt in _stage_starts(run):
        pos = float(np.interp(start, steps, xs)) if x == "time" else float(start)
        extension = previous is not None and g is not None and g != previous
        opt = {"lbfgs": "L-BFGS", "adam": "Adam"}.get(opt, opt)
        label = ", ".join(p for p in (_size_label(basis, g) if g else "", opt) if p)
        for a in axs:
            if s > 0:
                a.axvline(
                    pos,
                    color="0.35",
                    lw=1.1 if extension else 0.8,
                    ls="--" if extension else ":",
                    zorder=0,
                )
        left = (pos - float(xs.min())) / span
        row = next((r for r, end in enumerate(row_ends) if end <= left), len(row_ends))
        row_ends[row : row + 1] = [left + (len(label) + 2) * char]
        axs[0].text(pos, 1.01 + 0.07 * row, " " + label, transform=axs[0].get_xaxis_transform(),
                    ha="left", va="bottom", fontsize=8, color="0.25", clip_on=False)  # fmt: skip
        previous = g if g is not None else previous
    progress = ""
    if run.attrs.get("in_progress"):  # from a checkpoint (kanpde.results.load_progress)
        progress = f" (not finished: checkpoint at step {run.metrics.get('steps')})"
    fig.suptitle(f"{_problem_name(run)}: {_model_text(run)}{progress}", fontsize=10)
    return fig


# -------------------------------------------------------------------------- network / KAN


def _check_layer(layer: int, n_layers: int, name: str = "layer") -> None:
    """Refuse a layer index outside ``-n_layers .. n_layers - 1``, naming it as ``name``."""
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"{name} {layer}: the KAN has layers 0..{n_layers - 1}")


def _kan(model, figure: str):
    """``(KAN, run or None)`` from a Run or a model; ValueError naming ``figure`` (the plot
    function) for anything else."""
    from .nn import KAN
    from .results import Run

    run = None
    if isinstance(model, str | os.PathLike):
        model = _load_run(model, figure)
    if isinstance(model, Run):
        run = model
        model = run.model()
    if not isinstance(model, KAN):
        what = type(model).__name__
        raise ValueError(f"{figure}() draws a KAN's edge functions; got {what} (an MLP has none)")
    return model, run


def _samples(net, run, x, samples: int):
    """Input samples ``(N, D)`` as a tensor of the model's dtype."""
    import torch

    p = net.layers[0].coef
    if x is not None:
        if isinstance(x, torch.Tensor):  # np.asarray of a GPU tensor would raise
            xs = x.detach().to(dtype=p.dtype, device=p.device)
        else:
            xs = torch.as_tensor(np.asarray(x, dtype=float), dtype=p.dtype, device=p.device)
        if xs.ndim == 1:
            xs = xs[:, None]
        return xs
    if run is not None and "x" in (run.solution or {}):
        return torch.as_tensor(run.solution["x"], dtype=p.dtype, device=p.device)
    lo, hi = net.layers[0].grid_range.detach().unbind(1)
    u = np.random.default_rng(0).random((samples, len(lo)))
    return lo + (hi - lo) * torch.as_tensor(u, dtype=p.dtype, device=p.device)


SPLINE = "spline"  # kind of a basis-expanded edge; "" is a removed (pruned) edge
_SYMBOLIC_ATTRS = ("symbolic_labels", "symbolic", "symbolic_edges", "symbolic_functions")


def _edge_label(value) -> str | None:
    if value is None or value is False or isinstance(value, bool | np.bool_) and not value:
        return None
    if value is True or isinstance(value, np.bool_):
        return "symbolic"
    for attr in ("label", "name", "formula", "expr"):
        v = getattr(value, attr, None)
        if isinstance(v, str) and v:
            return v
    text = str(value).strip()
    return text or None


def _labels_from(value, n_in: int, n_out: int) -> dict[tuple[int, int], str]:
    """``{(i, o): label}`` from one of the shapes :func:`edge_kinds` accepts (or ValueError)."""
    if hasattr(value, "edges") and hasattr(value, "names"):  # a module of symbolic edges
        pairs = [(int(o), int(i)) for o, i in value.edges]
        return {(i, o): str(n) for (o, i), n in zip(pairs, value.names) if n}
    if callable(value) and not hasattr(value, "shape"):
        value = value()
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    out = {}
    if isinstance(value, Mapping):
        for key, v in value.items():
            i, o = (int(k) for k in key)
            label = _edge_label(v)
            if label and 0 <= i < n_in and 0 <= o < n_out:
                out[(i, o)] = label
        return out
    is_mask = isinstance(value, np.ndarray) and value.dtype == bool
    rows = [list(r) for r in value]
    if len(rows) != n_out or any(len(r) != n_in for r in rows):
        raise ValueError("not an (n_out, n_in) table")
    for o, row in enumerate(rows):
        for i, v in enumerate(row):
            label = _edge_label(bool(v) if is_mask else v)
            if label:
                out[(i, o)] = label
    return out


def edge_kinds(layer: KANLayer | Any) -> dict[tuple[int, int], str]:
    """The kind of every edge of a KAN layer, ``{(i, o): kind}`` (``i`` input, ``o`` output):
    ``"spline"``, ``""`` (removed by pruning) or the label of a symbolic function.

    A tolerant hook, never an error: the layer's ``edge_kinds()`` method when it has one
    (``n_out`` rows of ``n_in`` strings, the layout of ``coef``), then labels from the first
    of the attributes ``symbolic_labels``, ``symbolic``, ``symbolic_edges``,
    ``symbolic_functions`` that is set: a dict keyed by ``(i, o)``, a nested list ``[o][i]``,
    a boolean mask ``(n_out, n_in)``, or an object with ``edges`` (``(o, i)`` pairs) and
    ``names``; a method is called first. Values are strings, objects with a ``label``,
    ``name``, ``formula`` or ``expr`` string, or anything ``str()`` describes; ``None`` and
    ``False`` mark a plain spline edge.

    Parameters
    ----------
    layer : KANLayer or layer-like
        A :class:`~kanpde.nn.KANLayer`, or any object with ``in_features`` and
        ``out_features`` (and optionally the hooks above).

    Returns
    -------
    dict of (int, int) to str
        One entry per edge.
    """
    n_in, n_out = layer.in_features, layer.out_features
    kinds = {(i, o): SPLINE for i in range(n_in) for o in range(n_out)}
    method = getattr(layer, "edge_kinds", None)
    if callable(method):
        try:
            rows = [list(r) for r in method()]
            if len(rows) == n_out and all(len(r) == n_in for r in rows):
                for o, row in enumerate(rows):
                    for i, k in enumerate(row):
                        kinds[(i, o)] = SPLINE if k is None else str(k)
        except Exception:  # noqa: BLE001 - a label hook must never break a figure
            pass
    for attr in _SYMBOLIC_ATTRS:
        try:
            value = getattr(layer, attr, None)
            if value is None:
                continue
            kinds.update(_labels_from(value, n_in, n_out))
            break
        except Exception:  # noqa: BLE001
            continue
    return kinds


def symbolic_labels(layer: KANLayer | Any) -> dict[tuple[int, int], str]:
    """Labels of the symbolic edges of a layer, ``{(i, o): label}`` (see :func:`edge_kinds`).

    Parameters
    ----------
    layer : KANLayer or layer-like
        As for :func:`edge_kinds`.

    Returns
    -------
    dict of (int, int) to str
        The edges whose kind is neither ``"spline"`` nor ``""`` (removed).
    """
    return {k: v for k, v in edge_kinds(layer).items() if v not in (SPLINE, "")}


def _node_names(net, run) -> tuple[list[str], list[str]]:
    n_in, n_out = net.width[0], net.width[-1]
    ins = list(run.names) if run is not None and len(run.names) == n_in else None
    outs = list(run.outputs) if run is not None and len(run.outputs) == n_out else None
    return ins or [f"x{i + 1}" for i in range(n_in)], outs or [f"y{o + 1}" for o in range(n_out)]


def _edge_data(net, xs, points: int = 100):
    """Per layer: importance ``(n_in, n_out)``, curve inputs ``(M, n_in)`` and edge values
    ``(M, n_in, n_out)`` on them."""
    import torch

    out = []
    with torch.no_grad():
        for layer, h in zip(net.layers, net._layer_inputs(xs)):
            phi = layer.edges(h)[0]
            importance = phi.abs().mean(0)
            lo, hi = h.min(0).values, h.max(0).values
            same = hi <= lo
            lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
            t = torch.linspace(0, 1, points, dtype=h.dtype, device=h.device)[:, None]
            grid = lo + (hi - lo) * t
            out.append(
                (importance.cpu().numpy(), grid.cpu().numpy(), layer.edges(grid)[0].cpu().numpy())
            )
    return out


def network(
    model: Run | KAN | str | os.PathLike,
    x: ArrayLike | Tensor | None = None,
    *,
    labels: Mapping | None = None,
    beta: float = 3.0,
    samples: int = 1000,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """The KAN as a diagram: nodes per layer, every edge with its learned function.

    Layers run bottom (inputs) to top (outputs). Between two node rows, each edge ``i → o``
    has a box (ordered by input, then output) holding its curve ``φ(x)`` over the range its
    input actually takes on the samples; lines join the input node to the box and the box to
    the output node. Each curve is scaled to fill its box, so the amplitude is shown by the
    opacity: edge importance is ``mean |φ_{oi}(x_i)|`` over the samples, relative to the
    largest in its layer (in the last layer of a system, the largest into the same output),
    ``s``, drawn with opacity ``tanh(beta·s)/tanh(beta)``. Symbolic edges
    (see :func:`symbolic_labels`, or ``labels``) are drawn in red with their formula.

    Parameters
    ----------
    model : Run, KAN or path
        A run (its evaluation points are the samples), a KAN, or the path of a results file
        or run directory.
    x : array_like or Tensor (N, D), optional
        Samples; default the run's evaluation points, else ``samples`` uniform points in the
        first layer's grid range.
    labels : dict, optional
        Extra edge labels ``{(layer, i, o): "sin"}`` (pykan's ``(l, i, j)`` addressing).
    beta : float
        Contrast of the opacity ``tanh(beta·s)/tanh(beta)``.
    samples : int
        Number of uniform samples when there are neither ``x`` nor a run's points.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    title : str, optional
        Title; default the width, the basis and how opacity is scaled.
    """
    import matplotlib as mpl
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    net, run = _kan(model, "network")
    xs = _samples(net, run, x, samples)
    data = _edge_data(net, xs)
    width = list(net.width)
    n_layers = len(net.layers)
    in_names, out_names = _node_names(net, run)
    most_edges = max(a * b for a, b in zip(width[:-1], width[1:]))
    W = float(np.clip(0.42 * most_edges + 1.5, 6.0, 18.0))
    H = float(np.clip(1.9 * n_layers + 1.0, 3.2, 12.0))
    fig = _figure(figsize or (W, H))
    ax = fig.subplots()
    ax.set_label("network")
    ax.set_axis_off()
    ax.set_xlim(-0.09, 1.01)
    ax.set_ylim(-0.32, n_layers + 0.3)

    def node_x(n, j):
        return (j + 0.5) / n

    lines, line_colors, curves, curve_colors = [], [], [], []
    red = np.array(mpl.colors.to_rgba("C3"))
    black = np.array([0.0, 0.0, 0.0, 1.0])
    norm_beta = math.tanh(beta) if beta > 0 else 1.0
    for l, (layer, (imp, _, phi)) in enumerate(zip(net.layers, data)):
        n_in, n_out = layer.in_features, layer.out_features
        n_e = n_in * n_out
        bw = min(0.72 / n_e, 0.11)
        bh = 0.3
        cy = l + 0.5
        kinds = edge_kinds(layer)
        for (ll, i, o), text in (labels or {}).items():
            if ll % n_layers == l:
                kinds[(int(i), int(o))] = str(text)
        sym = {k: v for k, v in kinds.items() if v not in (SPLINE, "")}
        # The outputs of a system may differ in scale (kovasznay's v is a tenth of u): in the
        # last layer each output's edges are measured against that output's largest.
        per_output = l == n_layers - 1 and n_out > 1 and imp.size
        tops = imp.max(axis=0) if per_output else np.full(n_out, imp.max() if imp.size else 0.0)
        tops = np.where(tops > 0, tops, 1.0)
        for i in range(n_in):
            for o in range(n_out):
                if kinds[(i, o)] == "":
                    continue  # removed by pruning
                b = i * n_out + o
                cx = (b + 0.5) / n_e
                s = float(imp[i, o]) / float(tops[o])
                alpha = max(0.04, math.tanh(beta * s) / norm_beta if beta > 0 else s)
                base = red if (i, o) in sym else black
                color = base.copy()
                color[3] = alpha
                lines.append([(node_x(n_in, i), l), (cx, cy - bh / 2)])
                lines.append([(cx, cy + bh / 2), (node_x(n_out, o), l + 1)])
                line_colors += [color, color]
                ax.add_patch(Rectangle((cx - bw / 2, cy - bh / 2), bw, bh, fill=False,
                                       lw=0.7, edgecolor=color))  # fmt: skip
                f = phi[:, i, o]
                lo, hi = float(f.min()), float(f.max())
                fy = (f - lo) / (hi - lo) if hi - lo > 1e-12 * max(1.0, abs(hi)) else f * 0 + 0.5
                t = np.linspace(0, 1, len(f))
                curves.append(np.stack([cx - bw / 2 + bw * (0.08 + 0.84 * t),
                                        cy - bh / 2 + bh * (0.1 + 0.8 * fy)], axis=1))  # fmt: skip
                curve_colors.append(color)
                if (i, o) in sym:
                    # on a white patch: the label sits where the incoming line runs
                    ax.text(cx, cy - bh / 2 - 0.03, sym[(i, o)], ha="center", va="top",
                            fontsize=7, color=red[:3], alpha=max(alpha, 0.6), zorder=4,
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6,
                                  "alpha": 0.85})  # fmt: skip
        ax.text(-0.09, cy, f"layer {l}\n{_size_text(layer)}", ha="left", va="center",
                fontsize=7, color="0.4")  # fmt: skip
    ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=0.8))
    ax.add_collection(LineCollection(curves, colors=curve_colors, linewidths=1.3))
    for l, n in enumerate(width):
        xs_nodes = [node_x(n, j) for j in range(n)]
        ax.scatter(xs_nodes, [l] * n, s=36, color="k", zorder=5)
        if l == 0:
            for xn, name in zip(xs_nodes, in_names):
                ax.text(xn, l - 0.07, name, ha="center", va="top", fontsize=10)
        elif l == n_layers:
            for xn, name in zip(xs_nodes, out_names):
                ax.text(xn, l + 0.07, name, ha="center", va="bottom", fontsize=10)
    first = net.layers[0]
    ax.set_title(
        title
        or f"KAN {width}, {_basis_text(first)} — opacity: mean |φ| relative to the layer's largest",
        fontsize=9,
    )
    return fig


def activations(
    model: Run | KAN | str | os.PathLike,
    layer: int = 0,
    x: ArrayLike | Tensor | None = None,
    *,
    samples: int = 1000,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """The edge functions ``φ_{l,i,o}`` of one layer, one panel per edge, knots marked.

    Rows are the layer's inputs ``i`` and columns its outputs ``o`` when it has no more inputs
    than outputs, else the other way round (the grid is wider than tall); every panel is titled
    with its edge. Each curve spans the range
    its input takes on the samples (the run's evaluation points, ``x``, or the grid range). For
    B-splines, the range beyond the grid is shaded (only the ``silu`` part acts there) and dots
    mark the knots, including the ``k`` extension knots on each side that fall in view; for
    Gaussian bases the dots are the centres; Chebyshev layers have neither.

    Parameters
    ----------
    model : Run, KAN or path
        A run (its evaluation points are the samples), a KAN, or the path of a results file
        or run directory.
    layer : int
        Layer index (negative counts from the end).
    x : array_like or Tensor (N, D), optional
        Samples of the network's inputs.
    samples : int
        Number of uniform samples when there are neither ``x`` nor a run's points.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    import torch

    net, run = _kan(model, "activations")
    n_layers = len(net.layers)
    _check_layer(layer, n_layers)
    l = layer % n_layers
    lay = net.layers[l]
    xs = _samples(net, run, x, samples)
    h = net._layer_inputs(xs)[l]
    n_in, n_out = lay.in_features, lay.out_features
    in_names, out_names = _node_names(net, run)
    inputs = in_names if l == 0 else [f"node {i}" for i in range(n_in)]
    outs = out_names if l == n_layers - 1 else [f"node {o}" for o in range(n_out)]
    rng = lay.grid_range.detach()
    with torch.no_grad():
        lo, hi = h.min(0).values, h.max(0).values
        if x is None and run is None:  # uniform samples: show the whole grid range
            lo, hi = torch.minimum(lo, rng[:, 0]), torch.maximum(hi, rng[:, 1])
        pad = torch.where(hi > lo, 0.0, 0.5)  # a constant input: show a unit interval
        t = torch.linspace(0, 1, 300, dtype=h.dtype, device=h.device)[:, None]
        grid = (lo - pad) + (hi - lo + 2 * pad) * t
        curves = lay.edges(grid)[0].cpu().numpy()
        knots = lay.grid_points.detach()  # (n_in, K)
        at_knots = lay.edges(knots.t().contiguous())[0].cpu().numpy()  # (K, n_in, n_out)
    grid, knots, rng = grid.cpu().numpy(), knots.cpu().numpy(), rng.cpu().numpy()
    kinds = edge_kinds(lay)
    sym = {k: v for k, v in kinds.items() if v not in (SPLINE, "")}
    # what the grid points are to the basis: knots, Gaussian centres, or nothing drawn
    dots = {"bspline": "knots", "chebyshev": None}.get(lay.basis.name, "centres")
    wide = n_in <= n_out  # rows are inputs (else outputs): the grid is wider than tall
    nrow, ncol = (n_in, n_out) if wide else (n_out, n_in)
    fig = _figure(figsize or (min(max(2.2 * ncol + 0.6, 6.5), 16), min(1.8 * nrow + 0.9, 16)))
    axs = fig.subplots(nrow, ncol, squeeze=False)
    for i in range(n_in):
        inside = (knots[i] >= grid[0, i]) & (knots[i] <= grid[-1, i])
        for o in range(n_out):
            ax = axs[i, o] if wide else axs[o, i]
            ax.set_label(f"edge {l} {i} {o}")
            if lay.basis.local and rng[i, 0] > grid[0, i]:
                ax.axvspan(grid[0, i], rng[i, 0], color="0.9", lw=0)
            if lay.basis.local and rng[i, 1] < grid[-1, i]:
                ax.axvspan(rng[i, 1], grid[-1, i], color="0.9", lw=0)
            name = f"φ[{l},{i},{o}]: {inputs[i]} → {outs[o]}"
            ax.tick_params(labelsize=7)
            ax.set_xlabel(inputs[i], fontsize=8)
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("φ", fontsize=8)
            if kinds[(i, o)] == "":
                ax.set_title(name + "\n(removed)", fontsize=8)
                ax.text(0.5, 0.5, "removed", transform=ax.transAxes, ha="center", color="0.5")
                continue
            ax.plot(grid[:, i], curves[:, i, o], color="C3" if (i, o) in sym else "C0", lw=1.6)
            if (i, o) in sym:
                ax.set_title(f"{name}\n= {sym[(i, o)]}", fontsize=8)
                continue
            if dots:
                ax.plot(knots[i, inside], at_knots[inside, i, o], "o", ms=2.8, color="C1",
                        label=dots)  # fmt: skip
            ax.set_title(name, fontsize=8)
    notes = ([f"dots: {dots}"] if dots else []) + (
        ["grey: outside the grid range (silu part only)"] if lay.basis.local else []
    )
    fig.suptitle(
        f"layer {l} edge functions φ[layer, input, output] ({_basis_text(lay)})"
        + ("\n" + "; ".join(notes) if notes else ""),
        fontsize=10,
    )
    return fig


def _size_text(layer) -> str:
    """A layer's size: a Chebyshev layer's degree, else its number of intervals G."""
    return _size_label(layer.basis.name, layer.grid)


def _basis_text(layer) -> str:
    """How a layer's basis is described: B-splines by G and k, Chebyshev by its degree."""
    name = layer.basis.name
    if name == "bspline":
        return f"{_size_text(layer)}, k={layer.k}, bspline"
    if name == "chebyshev":
        return f"Chebyshev, {_size_text(layer)}"
    return f"{_size_text(layer)}, {name}"


# --------------------------------------------------------------------------- study tables


def _number(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _rows(results) -> tuple[list[dict], str | None]:
    """Rows (list of dicts) and a title from a CSV path, an object with ``.rows``, a list of
    dicts or a dict of columns."""
    title = getattr(results, "problem", None)
    if isinstance(results, str | Path):
        path = _study_table(Path(results))
        if not path.exists():
            raise ValueError(f"{path}: file not found{_near_match(path)}")
        if path.suffix.lower() == ".h5":
            from .compare import Comparison

            study = Comparison.load(path, runs=False)  # the table only
            if not study.rows:
                raise ValueError(f"{path}: no rows (no run of the study has finished yet)")
            return [dict(r) for r in study.rows], study.problem
        with open(path, newline="") as f:
            rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
        if not rows:
            raise ValueError(f"{path}: no rows (no run of the study has finished yet)")
        return rows, _study_problem(path)
    if hasattr(results, "rows"):
        return [dict(r) for r in results.rows], title
    if isinstance(results, Mapping):
        keys = list(results)
        n = {len(results[k]) for k in keys}
        if len(n) != 1:
            raise ValueError("columns of different lengths")
        return [{k: results[k][j] for k in keys} for j in range(n.pop())], title
    if isinstance(results, Sequence) and all(isinstance(r, Mapping) for r in results):
        return [dict(r) for r in results], title
    raise ValueError(
        f"expected a CSV path, a list of dicts or a dict of columns, got {type(results).__name__}"
    )


def _study_problem(table: Path) -> str | None:
    """The problem of the study whose ``comparison.csv`` or ``sweep.csv`` is ``table``, from
    the files beside it (None for a table of the user's own, or one moved out of its study)."""
    import json

    try:
        if table.name == "comparison.csv":
            import h5py

            with h5py.File(table.with_name("comparison.h5"), "r") as f:
                return str(f.attrs["problem"])
        if table.name == "sweep.csv":
            return str(json.loads(table.with_name("sweep.json").read_text())["problem"])
    except (OSError, KeyError, TypeError, ValueError):
        pass
    return None


# What a study directory holds to plot, in the order they are looked for.
STUDY_FILES = ("comparison.csv", "sweep.csv", "comparison.h5")


def _study_table(path: Path) -> Path:
    """A study directory's table (``comparison.csv`` or ``sweep.csv``); other paths as given."""
    if path.is_dir():
        for name in STUDY_FILES:
            if (path / name).is_file():
                return path / name
        raise ValueError(f"{path}: no comparison.csv, sweep.csv or comparison.h5 in that directory")
    return path


def _need(rows, columns, what):
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {', '.join(missing)}; have {', '.join(rows[0])}"
        )


def _plain_log_ticks(axis) -> None:
    """Log axis labels as plain numbers at 1, 2 and 5 times powers of ten (no overlaps); on a
    range holding fewer than two of those, at a few rounded values across it instead."""
    import matplotlib.ticker as mticker

    def label(v, _pos):
        if v <= 0:
            return ""
        mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return f"{v:g}" if mantissa in (1, 2, 5) else ""

    lo, hi = sorted(axis.get_view_interval())
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    shown = [m * 10.0**e for e in decades for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    if len(shown) >= 2:
        axis.set_major_formatter(mticker.FuncFormatter(label))
        axis.set_minor_formatter(mticker.FuncFormatter(label))
        return
    # a narrow range (times of 1.1 to 1.9 s): three values inside it, to two digits
    inside = np.geomspace(lo, hi, 5)[1:-1]
    ticks = sorted({float(f"{v:.2g}") for v in inside})
    axis.set_major_locator(mticker.FixedLocator(ticks))
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(mticker.NullFormatter())


def _pareto(xs, ys) -> list[int]:
    """Indices of the points no other point beats in both x and y (lower is better), by x."""
    order = sorted(range(len(xs)), key=lambda j: (xs[j], ys[j]))
    front, best = [], math.inf
    for j in order:
        if ys[j] < best:
            front.append(j)
            best = ys[j]
    return front


def compare(
    results: str | Path | Comparison | list[dict] | dict,
    metric: str | None = None,
    *,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Test error against trainable parameters and training time, log–log, Pareto front.

    Parameters
    ----------
    results : path, Comparison, list of dict or dict of columns
        One row per trained model (and seed) with columns ``model`` (label, e.g.
        ``"KAN [2,10,1]"``), ``params`` and the ``metric`` column; ``train_time`` (seconds)
        adds the second panel. This is ``comparison.csv`` or ``comparison.h5`` of ``kanpde
        compare``, the study directory holding them, or the
        :class:`~kanpde.compare.Comparison`. Rows sharing a model label are seeds: the
        median is plotted with a min–max bar.
    metric : str, optional
        ``rel_l2``, ``mse``, ``max_err``, ``loss`` (the final training loss) or any numeric
        column. Default ``rel_l2``, or ``loss`` for a study of a problem without exact solution
        or reference (whose test errors are NaN).
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    rows, problem = _rows(results)

    def finite(key: str) -> bool:
        return any(_finite(r.get(key)) for r in rows)

    if metric is None:
        metric = "rel_l2" if finite("rel_l2") or "loss" not in rows[0] else "loss"
    _need(rows, ["model", "params", metric], "compare()")
    if not finite(metric):
        raise ValueError(
            f"compare(): column {metric!r} has no finite values (test errors of a problem "
            "without exact solution or reference are NaN; metric='loss' plots the final loss)"
        )
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    # train_time; studies written before it was named so call it wall_time
    time_key = next((k for k in ("train_time", "wall_time") if k in rows[0]), None)
    has_time = time_key is not None
    stats, left_out = [], []
    for label in models:
        rs = [r for r in rows if str(r["model"]) == label]
        e = np.array([float(r[metric]) for r in rs])
        t = np.array([float(r[time_key]) for r in rs]) if has_time else np.zeros(len(rs))
        # a seed without a finite error (or time) has no place on a log axis: the others are
        # drawn, and the legend says how many (a NaN made the median NaN and hid the model)
        ok = np.isfinite(e) & (e > 0) & np.isfinite(t)
        if not ok.any():
            left_out.append(label)
            continue
        shown = label if ok.all() else f"{label} ({ok.sum()} of {len(rs)} seeds finite)"
        e, t = e[ok], t[ok]
        entry = {"model": shown, "params": float(rs[0]["params"]), "n": len(rs),
                 "err": (np.median(e), e.min(), e.max())}  # fmt: skip
        if has_time:
            entry["time"] = (np.median(t), t.min(), t.max())
        stats.append(entry)
    panels = [("params", "trainable parameters")] + (
        [("time", "training time (s)")] if has_time else []
    )
    fig = _figure(figsize or (5.0 * len(panels) + 0.4, 4.2))
    axs = fig.subplots(1, len(panels), squeeze=False)[0]
    markers = {"KAN": "o", "MLP": "s"}
    for ax, (key, xlabel) in zip(axs, panels):
        ax.set_label(f"compare {key}")
        xs, ys = [], []
        for c, s in enumerate(stats):
            y, ylo, yhi = s["err"]
            if key == "params":
                xv, xerr = s["params"], None
            else:
                xv, tlo, thi = s["time"]
                xerr = [[xv - tlo], [thi - xv]]
            marker = markers.get(s["model"].split()[0].upper(), "^")
            ax.errorbar(xv, y, yerr=[[y - ylo], [yhi - y]], xerr=xerr, fmt=marker, ms=7,
                        color=f"C{c % 10}", capsize=3, label=s["model"])  # fmt: skip
            xs.append(xv)
            ys.append(y)
        front = _pareto(xs, ys)
        if len(front) > 1:
            ax.step([xs[j] for j in front], [ys[j] for j in front], where="post", color="0.4",
                    ls="--", lw=1, zorder=0, label="Pareto front")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(True, which="major", alpha=0.3)
    axs[-1].legend(fontsize=8, loc="best")
    seeds = max(s["n"] for s in stats)
    head = f"{problem}: " if problem else ""
    note = f" (median, bars min–max over {seeds} seeds)" if seeds > 1 else ""
    if left_out:
        note += f"; no finite {metric}: {', '.join(left_out)}"
    fig.suptitle(f"{head}{METRIC_LABELS.get(metric, metric)} vs cost{note}", fontsize=10)
    return fig


def curves(
    results: str | Path | Comparison, *, figsize: tuple[float, float] | None = None
) -> Figure:
    """Training loss, test error and (for an inverse problem) each unknown against optimizer
    step for every model of a comparison.

    Parameters
    ----------
    results : path or Comparison
        ``comparison.h5`` of ``kanpde compare`` (its ``history/<model> seed <s>`` groups) or the
        :class:`~kanpde.compare.Comparison` it returns. One colour per model, one line per seed.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    histories: dict[str, list[dict]] = {}
    problem = getattr(results, "problem", None)
    if hasattr(results, "runs"):
        for (label, _seed), run in results.runs.items():
            histories.setdefault(label, []).append(run.history)
    else:
        import h5py

        path = Path(results)
        if path.is_dir():  # a study directory
            path = path / "comparison.h5"
        if not path.exists():
            raise ValueError(f"{path}: file not found{_near_match(path)}")
        if path.suffix != ".h5" or not h5py.is_hdf5(path):
            raise ValueError(
                f"{path}: not an HDF5 file; the training curves are in comparison.h5 (the CSV "
                "holds the final errors only)"
            )
        with h5py.File(path, "r") as f:
            if "history" not in f:
                raise ValueError(f"{path}: no history group (not a kanpde comparison file?)")
            problem = f.attrs.get("problem", problem)
            if "rows/model" in f:  # the comparison's model order, so colours match compare()
                for label in f["rows/model"].asstr()[()]:
                    histories.setdefault(str(label), [])
            for name, g in f["history"].items():
                label = name.rsplit(" seed ", 1)[0]
                histories.setdefault(label, []).append({k: g[k][()] for k in g})
            histories = {k: v for k, v in histories.items() if v}
    if not histories:
        raise ValueError("curves(): no training histories")
    every = [h for hs in histories.values() for h in hs]
    # the test error where there is one (not for a problem without a test solution), then
    # the unknowns of an inverse problem, one panel each, in the order the runs recorded them
    panels = ["loss"] + (["rel_l2"] if any("rel_l2" in h for h in every) else [])
    panels += list(dict.fromkeys(k for h in every for k in h if k.startswith("param_")))
    fig = _figure(figsize or (5.2 * len(panels), 4.0))
    axs = fig.subplots(1, len(panels), squeeze=False)[0]
    for c, (label, hs) in enumerate(histories.items()):
        for j, h in enumerate(hs):
            kw = {"color": f"C{c % 10}", "lw": 1.2, "alpha": 0.8}
            for ax, key in zip(axs, panels):
                if key not in h:
                    continue
                draw = ax.plot if key.startswith("param_") else ax.semilogy
                draw(h["step"], h[key], label=label if j == 0 and key == "loss" else None, **kw)
    axs[0].set_ylabel("training loss (weighted)")
    for ax, key in zip(axs, panels):
        ax.set_label(f"curves {key}")
        if key == "rel_l2":
            ax.set_ylabel(METRIC_LABELS["rel_l2"])
        elif key.startswith("param_"):
            ax.set_ylabel(f"unknown {key[len('param_') :]}")
    for ax in axs:
        ax.set_xlabel("optimizer step")
        ax.grid(True, which="major", alpha=0.3)
    axs[0].legend(fontsize=8, loc="best")
    head = f"{problem}: " if problem else ""
    fig.suptitle(f"{head}training curves (one line per seed)", fontsize=10)
    return fig


_SWEEP_LABELS = {
    "rmse": "RMSE",
    "rmse_extension": "one run, grid extension",
    "rmse_separate": "trained from scratch at each G",
}


def _sweep_series(results):
    """``grids``, ``{label: errors}``, ``{label: slope or None}``, title, theory slope.

    The theory slope is the sweep's (None for bases without one), or ``-4`` (cubic splines)
    for tables that do not record it.
    """
    if hasattr(results, "grids") and hasattr(results, "extension"):
        grids = np.asarray(results.grids, float)
        series = {_SWEEP_LABELS["rmse_extension"]: np.asarray(results.extension, float)}
        slopes = {_SWEEP_LABELS["rmse_extension"]: getattr(results, "slope_extension", None)}
        if getattr(results, "separate", None) is not None and len(results.separate):
            series[_SWEEP_LABELS["rmse_separate"]] = np.asarray(results.separate, float)
            slopes[_SWEEP_LABELS["rmse_separate"]] = getattr(results, "slope_separate", None)
        theory = getattr(results, "theory", -4.0)
        return grids, series, slopes, getattr(results, "problem", None), theory
    rows, problem = _rows(results)
    _need(rows, ["grid"], "sweep()")
    theory = rows[0].get("theory_slope", -4.0)
    theory = None if theory in ("", None) or not np.isfinite(float(theory)) else float(theory)
    keys = [k for k in rows[0] if k == "rmse" or k.startswith("rmse_")]
    if not keys:
        raise ValueError(f"sweep(): need a column rmse or rmse_<label>; have {', '.join(rows[0])}")
    grids = np.array([float(r["grid"]) for r in rows])
    series, slopes = {}, {}
    for k in keys:
        label = _SWEEP_LABELS.get(k, k[5:] if k.startswith("rmse_") else k)
        series[label] = np.array([float(r[k]) for r in rows])
        suffix = k[4:]  # "" or "_<label>"
        for s in (f"slope{suffix}", "slope"):
            if s in rows[0] and rows[0][s] not in ("", None):
                slopes[label] = float(rows[0][s])
                break
        else:
            slopes[label] = None
    return grids, series, slopes, problem, theory


def sweep(
    results: str | Path | Sweep | list[dict] | dict,
    *,
    theory: float | None | str = "auto",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Test error against grid size ``G``, log–log, with the fitted convergence slope.

    Parameters
    ----------
    results : path, Sweep, list of dict or dict of columns
        Column ``grid`` and one or more error columns ``rmse`` / ``rmse_<label>``
        (``sweep.csv`` of ``kanpde sweep`` has ``rmse_extension`` and ``rmse_separate``), or a
        :class:`~kanpde.compare.Sweep`. An optional ``slope`` / ``slope_<label>`` column (the
        same value in every row) is used as the fitted slope; otherwise the slope is fitted
        here by least squares on ``log RMSE`` against ``log G``.
    theory : float, None or "auto"
        Slope of a reference line; None hides it. ``"auto"``: the sweep's own, ``-(k + 1)``
        for B-splines of degree ``k`` (column ``theory_slope`` of ``sweep.csv``; none for other
        bases), or ``-4`` (cubic splines) for a table without that column.
    figsize : (float, float), optional
        Figure size in inches; default one that fits the panels.
    """
    import matplotlib.ticker as mticker

    grids, series, slopes, problem, recorded = _sweep_series(results)
    if isinstance(theory, str):
        if theory != "auto":
            raise ValueError(f"sweep(): theory must be a slope, None or 'auto', got {theory!r}")
        theory = recorded
    fig = _figure(figsize or (5.6, 4.2))
    ax = fig.subplots()
    ax.set_label("sweep")
    anchor = None
    for c, (label, err) in enumerate(series.items()):
        ok = np.isfinite(err) & (err > 0) & (grids > 0)
        g, e = grids[ok], err[ok]
        if g.size == 0:
            continue
        ax.plot(g, e, "o-", color=f"C{c}", lw=1.2, ms=6, label=label)
        lg, le = np.log(g), np.log(e)
        slope = slopes.get(label)
        if slope is None and g.size >= 2:
            slope = float(np.polyfit(lg, le, 1)[0])
        if slope is not None and g.size >= 2:
            # The least-squares line for this slope passes through the centroid in log-log.
            fit = np.exp(le.mean() + slope * (lg - lg.mean()))
            ax.plot(g, fit, "--", color=f"C{c}", lw=1, alpha=0.8, label=f"fit: slope {slope:.2f}")
        if anchor is None:
            anchor = (g[0], e[0])
    if theory is not None and anchor is not None and len(grids) > 1:
        g = np.array([grids.min(), grids.max()])
        ax.plot(g, anchor[1] * (g / anchor[0]) ** theory, ":", color="0.3", lw=1.2,
                label=f"theory: $G^{{{theory:g}}}$")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = np.unique(grids[grids > 0])
    ax.xaxis.set_major_locator(mticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(mticker.FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("grid size G (intervals)")
    ax.set_ylabel(METRIC_LABELS["rmse"])
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{problem + ': ' if problem else ''}test RMSE vs grid size", fontsize=10)
    return fig


# ---------------------------------------------------------------------------- command line

RUN_KINDS = ("solution", "history", "network", "activations")
TABLE_KINDS = ("compare", "sweep")


def _table_kind(path: Path) -> str:
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    if "params" in header and "model" in header:
        return "compare"
    if "grid" in header and any(h == "rmse" or h.startswith("rmse_") for h in header):
        return "sweep"
    raise ValueError(
        f"{path}: not a comparison table (model, params, ...) or a sweep table (grid, rmse...)"
    )


def _is_comparison(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == "kanpde-comparison"
    except OSError:
        return False


def figure_for(
    path: str | Path,
    kind: str | None = None,
    layer: int | None = None,
    log_error: bool = False,
    outputs: str | Sequence[str] | None = None,
    slices: float | Sequence[float] | None = None,
) -> tuple[str, Figure]:
    """The figure ``kanpde plot`` draws for a results file or a study table.

    ``layer`` (default 0) is for ``kind="activations"`` only; ``log_error``, ``outputs`` and
    ``slices`` are :func:`solution`'s, for ``kind="solution"`` only.

    Returns
    -------
    (str, Figure)
        The kind drawn (``solution``, ``history``, ..., ``compare`` or ``sweep``) and the figure.
    """
    path = Path(path)
    if path.is_dir() and not (path / "result.h5").exists():
        if any((path / n).is_file() for n in STUDY_FILES):
            path = _study_table(path)  # a study directory: its table
    table = path.suffix.lower() == ".csv" or (
        path.suffix.lower() == ".h5" and kind in (None, "compare") and _is_comparison(path)
    )
    for flag, value in (("--log-error", log_error), ("--outputs", outputs), ("--slices", slices)):
        given = value is not None and value is not False  # (0 is a slice count given)
        if given and (table or kind not in (None, "solution")):
            raise ValueError(f"{flag}: only with --kind solution, not {kind or 'a table'}")
    if layer is not None and (table or kind != "activations"):
        raise ValueError(f"--layer: only with --kind activations, not {kind or 'the default'}")
    if path.suffix.lower() == ".h5" and table:
        return "compare", compare(path)
    if path.suffix.lower() == ".csv":
        if not path.exists():
            raise ValueError(f"{path}: file not found{_near_match(path)}")
        if kind is not None and kind not in TABLE_KINDS:
            what = "unknown" if kind not in RUN_KINDS else "for a run's results"
            raise ValueError(
                f"--kind {kind!r}: {what}; {path} is a table, plotted with --kind compare or "
                "sweep (or no --kind)"
            )
        found = _table_kind(path)
        if kind is not None and kind != found:
            name = "comparison" if found == "compare" else "sweep"
            raise ValueError(f"--kind {kind}: {path} is a {name} table; use --kind {found}")
        kind = found
        return kind, (compare if kind == "compare" else sweep)(path)
    kind = kind or "solution"
    if kind in TABLE_KINDS:
        raise ValueError(
            f"--kind {kind!r} is for a {'comparison' if kind == 'compare' else kind}.csv "
            f"table; a results file takes {', '.join(RUN_KINDS)}"
        )
    if kind not in RUN_KINDS:
        raise ValueError(
            f"--kind {kind!r}: unknown; use one of {', '.join(RUN_KINDS)} for a results file "
            f"({' or '.join(TABLE_KINDS)} for a .csv table)"
        )
    if path.suffix.lower() == ".h5" and _is_comparison(path):
        raise ValueError(
            f"--kind {kind}: {path} is a comparison study, not a run; plot it with --kind "
            "compare (or no --kind)"
        )
    run = _load_run(path, kind)
    if kind == "history":
        return kind, history(run)
    cfg = run.config.get("model", {})
    model_type = cfg.get("type", "kan")
    if kind in ("network", "activations") and model_type != "kan":
        raise ValueError(
            f"--kind {kind}: {path} holds {'an MLP' if model_type == 'mlp' else 'a ' + model_type}"
            " run; this figure draws a KAN's edges"
        )
    if kind == "activations":
        _check_layer(layer or 0, len(cfg["width"]) - 1, "--layer")
        return kind, activations(run, layer or 0)
    if kind == "solution":
        return kind, solution(run, outputs=outputs, slices=slices, log_error=log_error)
    return kind, {"history": history, "network": network}[kind](run)


def cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    path = Path(args.file)
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise ValueError(
            f"-o {args.output}: a directory; give a file such as {out / 'solution.png'}"
        )
    if out is not None and out.suffix.lower().lstrip(".") not in _formats():
        raise ValueError(
            f"-o {args.output}: unknown image format; use one of {', '.join(sorted(_formats()))}"
        )
    if args.dpi <= 0:
        raise ValueError(f"--dpi {args.dpi}: must be positive")
    outputs = None if args.outputs is None else [o.strip() for o in args.outputs.split(",")]
    kind, fig = figure_for(
        path, args.kind, args.layer, args.log_error, outputs, _parse_slices(args.slices)
    )
    if out is None:
        out = (path if path.is_dir() else path.parent) / f"{kind}.png"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    except OSError as e:
        raise ValueError(f"-o {out}: cannot write the figure ({e.strerror or e})") from None
    print(f"figure: {out}")
    return 0


def _parse_slices(text: str | None) -> int | list[float] | None:
    """``--slices 3`` (a count) or ``--slices 0.25,0.5`` / ``--slices 1.0`` (coordinates)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--slices {text}: give a count (3) or comma-separated coordinates (0.25,0.5)"
        ) from None


def _formats() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def register(sub) -> None:
    """Add ``kanpde plot`` to the command line."""
    p = sub.add_parser(
        "plot",
        help="figures of a run (solution, history, network, activations) or a study table",
        description="Draw a figure of a results file (RUN.h5 or its run directory) or of a "
        "comparison.csv / sweep.csv table.",
    )
    p.add_argument(
        "file",
        help="result.h5 (or its run directory; with only a checkpoint.h5, --kind history), "
        "comparison.csv or sweep.csv (or the study's directory)",
    )
    p.add_argument(
        "--kind",
        help="solution (default), history, network, activations; compare or sweep for tables "
        "(default: from the table's columns)",
    )
    # --out as well: solve and compare take it, and --outputs would make it ambiguous
    p.add_argument(
        "-o", "--output", "--out", help="image file (default: <kind>.png next to the input)"
    )
    p.add_argument("--layer", type=int, help="layer for --kind activations (default 0)")
    p.add_argument("--dpi", type=int, default=130, help="resolution of -o (default 130)")
    p.add_argument(
        "--log-error", action="store_true", help="|error| on a log scale (--kind solution)"
    )
    p.add_argument("--outputs", help="outputs to draw, comma-separated, e.g. u,v (--kind solution)")
    p.add_argument(
        "--slices",
        help="3-D and space-time runs: a number of slices (3) or coordinates along the last "
        "axis, e.g. 0.25,0.5 (a single one as 1.0) (--kind solution)",
    )
    p.set_defaults(func=cmd_plot)
