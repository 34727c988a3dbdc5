"""Training: models from configs, optimizer stages, grid extension, test metrics, history.

:func:`solve` is the whole pipeline: problem → points → model → residuals → loss → optimizer
→ results. The pieces (:func:`build_model`, :class:`Trainer`) are public for custom loops.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import copy
import dataclasses
import functools
import json
import math
import numbers
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from .allocator import retain_freed_memory
from .losses import Residuals, WithUnknowns, chunked, error_metrics
from .nn import KAN, MLP, count_parameters, from_config
from .nn.bases import BSpline
from .problem import (
    MODEL_OPTIONS,
    Problem,
    _first_line,
    _is_int,
    _one_line,
    merge_weights,
    start_value_error,
    warn,
)
from .results import ResultsError, Run, save_run
from .schedule import ScheduleError, Stage, parse_schedule
from .signals import (
    STOPS,
    installed,
    interrupt,
    kanpde_stops,
    signal_of,
    signals_held,
    stop_now,
    terminate_as_interrupt,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# One default for the API and the command line, so a CLI run and the catalogue log alike.
LOG_EVERY = 50
CHECKPOINT_EVERY = 100
MAX_SEED = 2**32 - 1  # seeds of point sets and initialisations are derived from it by sums


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; checks that a requested CUDA device exists."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use float32 or float64")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use float32 or float64")
    return DTYPES[dtype]


def build_model(
    problem: Problem,
    config: dict | None = None,
    dtype: str | torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build the trial function of ``problem`` from its ``model`` defaults updated by ``config``.

    For a KAN the first layer's grid covers the domain's bounding box (``input_range``).

    Parameters
    ----------
    problem : Problem
        Its ``model`` gives the defaults, its domain and outputs the width's ends.
    config : dict, optional
        Options replacing the problem's (``{"width": [2, 20, 1], "grid": 10}``; a ``type``
        other than the problem's model takes none of its options).
    dtype : str or torch.dtype
        Of the parameters, ``float32`` or ``float64`` (the default, not the problem's
        ``dtype``).
    device : str or torch.device
        Of the parameters: ``cpu`` (the default), ``cuda``, ``cuda:N`` or ``auto``.

    Raises
    ------
    ValueError
        A width that does not fit the problem, an unknown model type or option, or a bad
        ``dtype`` or ``device``.
    """
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    config = dict(config or {})
    base = dict(problem.model)
    if config.get("type", base.get("type", "kan")) != base.get("type", "kan"):
        base = {}  # another kind of model shares none of the defaults
    cfg = {**base, **config}
    kind = cfg.get("type", "kan")
    width = list(cfg.get("width") or [problem.domain_dim, 10, len(problem.outputs)])
    cfg["width"] = width
    if width[0] != problem.domain_dim or width[-1] != len(problem.outputs):
        raise ValueError(
            f"model width {width} does not fit the problem: it needs {problem.domain_dim} inputs "
            f"and {len(problem.outputs)} outputs"
        )
    if kind not in MODEL_OPTIONS:
        raise ValueError(f"unknown model type {kind!r}; use kan or mlp")
    allowed = MODEL_OPTIONS[kind]
    if kind == "kan":
        lo, hi = problem.domain.bounds
        cfg.setdefault("input_range", [[float(a), float(b)] for a, b in zip(lo, hi)])
    unknown = set(cfg) - allowed - {"type"}
    if unknown:
        raise ValueError(
            f"unknown {kind} option(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    kw = {k: v for k, v in cfg.items() if k in allowed}
    return from_config({"type": kind, **kw}, dtype=dtype, device=device)


def _warn_flat_splines(model: nn.Module, order: int, where: str) -> None:
    """Warn when B-splines of degree ``k`` < the PDE's derivative order: their derivative of
    that order is zero inside every interval, so only the silu part can meet the residual.
    With ``k`` = the order it is piecewise constant, jumping at the knots: harmless where the
    inputs are the fixed points, but in a later layer the inputs move with the parameters, so
    the loss jumps as they cross knots and L-BFGS stalls (poisson1d, k = 2: 68 of 200 steps,
    rel. L2 0.27). (Layers are looked for in the whole module: a KAN inside a user's wrapper
    counts too.)"""
    layers = [m for m in model.modules() if isinstance(getattr(m, "basis", None), BSpline)]
    ks = [m.k for m in layers]
    # layers after the first of each network (a wrapper may hold several, each fed the points)
    later = [l for net in _kans(model) for l in net.layers[1:] if isinstance(l.basis, BSpline)]
    if ks and min(ks) < order:
        warn(
            f"{where}: B-splines of degree k={min(ks)} have no derivative of order {order} "
            f"inside their intervals, which the PDE needs; use k >= {order + 1}"
        )
    elif order > 0 and any(m.k == order for m in later):
        warn(
            f"{where}: B-splines of degree k={order} have a derivative of order {order} that "
            "jumps at the knots: the loss jumps as a hidden layer's inputs cross them, which "
            f"can stop L-BFGS early; use k >= {order + 1}"
        )


def _kans(model: nn.Module) -> list[KAN]:
    """The KANs in ``model``: itself, or those a module of the user's own holds."""
    return [m for m in model.modules() if isinstance(m, KAN)]


# torch modules that only hold others (or the unknowns themselves, as a ParameterDict)
_CONTAINERS = (nn.ParameterDict, nn.ParameterList, nn.ModuleDict, nn.ModuleList, nn.Sequential)


def _unknowns(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The one-number parameters a module of the user's own holds itself (not its networks'
    or torch layers' such as a ``Linear(n, 1)``'s bias): an inverse problem's unknown
    coefficients, whose values the history records."""
    if isinstance(model, KAN | MLP):
        return []
    if isinstance(model, WithUnknowns):  # a problem's own, under their names
        return list(model.unknowns.items()) + _unknowns(model.net)
    found, skip = [], []
    for prefix, m in model.named_modules():
        layer = type(m).__module__.startswith("torch.nn") and not isinstance(m, _CONTAINERS)
        if isinstance(m, KAN | MLP) or (layer and type(m) is not nn.Module):
            skip.append(f"{prefix}.")
        if any(f"{prefix}.".startswith(s) for s in skip):
            continue
        found += [
            (f"{prefix}.{name}" if prefix else name, p)
            for name, p in m.named_parameters(recurse=False)
            if p.numel() == 1
        ]
    return found


@contextlib.contextmanager
def _inspecting(model: nn.Module, device: torch.device):
    """Run ``model`` for a look only: in eval mode (no batch-norm statistics updated, no
    dropout), without gradients, and with the random state given back afterwards."""
    training = model.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with torch.no_grad():
                yield model.eval()
    finally:
        model.train(training)


def _inputs_of(net: nn.Module, model: nn.Module, x: Tensor) -> Tensor | None:
    """What ``net`` receives when ``model`` (which holds it, or is it) runs on ``x``; None if
    ``model`` does not call it."""
    if net is model:
        return x
    seen: list[Tensor] = []

    def take(module, args, kwargs):
        given = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(given, Tensor):
            seen.append(given.detach())

    hook = net.register_forward_pre_hook(take, with_kwargs=True)
    try:
        with _inspecting(model, x.device):
            chunked(model, x)
    finally:
        hook.remove()
    return torch.cat(seen) if seen else None


def _outside(layer, inputs: Tensor, slack: float) -> tuple[float, int, Tensor, Tensor] | None:
    """Share of ``inputs`` beyond ``layer``'s grid range widened by ``slack`` times its width
    at each end, for its worst input, that input's index and its grid range; None for a
    global basis, which has no range."""
    if not layer.basis.local:
        return None
    inputs = inputs.to(layer.grid_range)
    lo, hi = layer.grid_range[:, 0], layer.grid_range[:, 1]
    slack = slack * (hi - lo)
    outside = ((inputs < lo - slack) | (inputs > hi + slack)).double().mean(0)
    worst = int(outside.argmax())
    return float(outside[worst]), worst, lo[worst], hi[worst]


def _warn_inputs_outside_grid(
    model: nn.Module, x: Tensor, where: str, hidden: bool = True, first: bool = True
) -> None:
    """Warn when a KAN's layer sees inputs well outside its grid range at the start.

    First layer (``first``): kanpde's own KANs span the domain; a ready KAN (default range
    [-1, 1]) on another domain, or one inside a user's module that scales the points, trains
    on inputs where its splines have no support until a grid update or extension widens the
    range (measured: rel. L2 0.125 for a wrapper feeding 3x, against 0.004 unwrapped).

    Hidden layers (``hidden``): their grids start at [-1, 1], but the silu part of the layer
    before passes the coordinates' scale on. Measured with a [1, 5, 1] KAN and 300 L-BFGS
    steps on sin(pi x / 2L), x in [0, L]: L = 1, 3, 10 (hidden inputs reaching ±0.5, ±2, ±7)
    end at rel. L2 8e-5, 4e-4, 9e-4 with or without a grid update at the start; L = 30 and
    100 (±20, ±67) at 0.2 and 0.92 without it, 6e-4 and 3e-3 with it. So the hidden check
    allows four grid widths beyond either end (±9 for [-1, 1]).
    """
    for net in _kans(model) if first or hidden else []:
        inputs = _inputs_of(net, model, x)
        if inputs is None:
            continue
        # a 1% share needs no more than a few thousand rows to be seen
        h = inputs[:: max(1, len(inputs) // 20000)]
        owner = "the model" if net is model else f"the KAN in {type(model).__name__}"
        for i, layer in enumerate(net.layers):
            found = _outside(layer, h, 0.05 if i == 0 else 4.0) if (first, hidden)[i > 0] else None
            if found is not None and found[0] > 0.01:
                share, j, lo, hi = found
                reach = f"[{h[:, j].min():g}, {h[:, j].max():g}]"
                if i == 0:
                    warn(
                        f"{where}: {share:.0%} of the inputs of {owner}'s input {j} lie "
                        f"outside its grid range [{lo:g}, {hi:g}] (they reach {reach}), where "
                        "its splines have no support until a grid update or extension widens "
                        "the range; build the KAN with input_range= covering them"
                    )
                else:
                    warn(
                        f"{where}: at the start {share:.0%} of the inputs of {owner}'s layer "
                        f"{i} (input {j}) lie far outside its grid range [{lo:g}, {hi:g}] (they "
                        f"reach {reach}: the silu part of the layer before carries the "
                        "coordinates' scale), where its splines have no support; add "
                        '"update_grid": True to the first stage, which moves every grid to its '
                        "inputs, or rescale the problem to coordinates of order one"
                    )
                break
            if not hidden:  # the next layers' inputs are not to be checked
                break
            with torch.no_grad():
                h = layer(h.to(layer.grid_range))


def _warn_undetermined(problem: Problem) -> None:
    """Warn when a problem has no condition at all, or a space-time one neither an Initial
    condition nor data: nothing fixes the solution (at t = 0), so the PDE and boundary terms
    leave it undetermined."""
    if not problem.conditions:
        warn(
            f"{problem.source or problem.name}: the problem has no conditions (boundary, "
            "initial or data): the PDE alone does not determine the solution; add them, e.g. "
            "Dirichlet(g), unless your model builds them in"
        )
        return
    if problem.unknowns and not any(c.where == "data" for c in problem.conditions):
        warn(
            f"{problem.source or problem.name}: the problem has unknowns "
            f"({', '.join(problem.unknowns)}) but no data condition (PointData): the PDE and "
            "boundary conditions alone rarely pin them down, so many values may fit"
        )
    time = getattr(problem.domain, "time_axis", None)
    if time is None or any(c.where in ("initial", "data") for c in problem.conditions):
        return
    warn(
        f"{problem.source or problem.name}: the domain has a time axis but the problem has no "
        "Initial condition (nor data): nothing fixes the solution at the start time; add "
        "Initial(u0)"
    )


def _warn_unnested_extension(model: nn.Module, stages: list[Stage], where: str) -> None:
    """Warn when the schedule extends the grid of Gaussian edges (rbf, rswaf): bases of
    another width do not nest, so each extension refits the values only and the PINN loss can
    jump (measured: 3e4x on a 1-D problem, rbf G = 5 -> 10)."""
    nets = _kans(model)
    names = {layer.basis.name for net in nets for layer in net.layers}
    gaussian = sorted(names & {"rbf", "rswaf"})
    grids = {s.grid for s in stages if s.grid is not None} | {net.grid for net in nets}
    if gaussian and len(grids) > 1:
        warn(
            f"{where}: the schedule changes the grid of {'/'.join(gaussian)} edges, whose "
            "bases of another width do not nest: the loss can jump at each extension; give "
            "them one grid"
        )


def _warn_coarsening(model: nn.Module, stages: list[Stage], where: str) -> None:
    """Warn when the schedule makes a KAN's grid coarser: the coarse spline is only a
    least-squares fit of the fine one, so what the finer grid learned is partly lost."""
    nets = _kans(model)
    if not nets:
        return
    grid = nets[0].grid
    for i, stage in enumerate(stages):
        if stage.grid is not None and stage.grid < grid:
            warn(
                f"{where}: schedule stage {i} coarsens the grid from {grid} to {stage.grid}: "
                "the coarser spline only approximates the finer one; grids usually refine "
                "(5, 10, 20)"
            )
            return
        grid = stage.grid if stage.grid is not None else grid


def preset_model_config(problem, preset: str | None, model: dict | None) -> dict:
    """The model options of a run: the preset's, updated by ``model``. A ``model`` of another
    type than the preset's (``--model kan`` under an MLP preset) shares none of them."""
    preset_model = problem.presets.get(preset, {}).get("model", {}) if preset else {}
    kind = dict(model or {}).get("type")
    if kind is not None and kind != preset_model.get("type", problem.model.get("type", "kan")):
        preset_model = {}
    return {**preset_model, **dict(model or {})}


def model_config(model: nn.Module) -> dict:
    """The config saved with a run (``{"type": "custom", ...}`` for a module of the user's own,
    which :meth:`~kanpde.Run.model` cannot rebuild; its state is saved all the same)."""
    if not callable(getattr(model, "config", None)):
        cls = type(model)
        return {"type": "custom", "class": f"{cls.__module__}.{cls.__qualname__}"}
    cfg = model.config()
    if isinstance(model, KAN):
        cfg["input_range"] = model.layers[0].grid_range.tolist()
        cfg["grid_range"] = model.layers[-1].grid_range[0].tolist()
    return cfg


def _logged_interval(history: str) -> int:
    """The history-row interval of a checkpoint written before runs saved it: the most common
    step difference between rows (stage ends add others), 50 without any."""
    steps = [r.get("step", 0) for r in json.loads(history).get("rows", [])]
    diffs = [b - a for a, b in zip(steps, steps[1:]) if b > a]
    return int(collections.Counter(diffs).most_common(1)[0][0]) if diffs else 50


def test_set(problem, n=None, dtype=torch.float64, device="cpu") -> tuple[Tensor, Tensor] | None:
    """Held-out evaluation points and the exact/reference solution there.

    Raises
    ------
    ProblemError
        One line naming the problem file when ``exact`` or ``reference`` raises (chained from
        the original exception) or returns values of the wrong shape or non-finite values.
    """
    from .problem import ProblemError, default_test, user_code_error

    if n is None:
        n = problem.points.get("test", default_test(problem.domain_dim))
    where = problem.source or f"problem {problem.name!r}"
    # Built on the CPU and moved at the end: an exact(x) written with NumPy works on any
    # device, and the test values do not depend on the GPU's transcendental functions.
    if problem.exact is not None:
        try:
            x = torch.as_tensor(problem.domain.grid(n).points, dtype=dtype, device="cpu")
        except MemoryError as e:  # the count asked for: n per axis
            raise ProblemError(
                f"{where}: test={n} points per axis ({n}^{problem.domain_dim}) do not fit in "
                f"memory ({type(e).__name__})"
            ) from None
        try:
            with torch.no_grad():
                u = problem.exact(x)
            if u is None:
                raise ProblemError(
                    f"{where}: exact(x) returned None (a missing return?); expected a tensor "
                    f"of shape (N, {len(problem.outputs)})"
                )
            if not isinstance(u, Tensor):
                u = torch.as_tensor(np.asarray(u), dtype=dtype, device="cpu")
        except (ProblemError, MemoryError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - user code becomes one line naming the file
            raise user_code_error(problem, "exact(x)", e) from e
        returned = tuple(u.shape)  # as the user's function gave it, for the message
        if u.ndim == 1:
            u = u.unsqueeze(1)
        if u.shape != (x.shape[0], len(problem.outputs)):
            raise ProblemError(
                f"{where}: exact(x) returned shape {returned}, expected "
                f"({x.shape[0]}, {len(problem.outputs)})"
            )
    elif problem.reference is not None:
        try:
            ref = problem.reference() if callable(problem.reference) else problem.reference
        except (MemoryError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - user code becomes one line naming the file
            raise user_code_error(problem, "reference()", e) from e
        from .reference import Reference

        if not isinstance(ref, Reference):
            raise ProblemError(
                f"{where}: reference() returned {type(ref).__name__}, expected a "
                "kanpde.reference.Reference"
            )
        domain = problem.domain
        if tuple(ref.names) != tuple(domain.names):
            raise ProblemError(
                f"{where}: the reference's axes ({', '.join(ref.names)}) are not the domain's "
                f"({', '.join(domain.names)}); build it with the domain's axis order"
            )
        lo, hi = domain.bounds
        for name, a, l, h in zip(ref.names, ref.axes, lo, hi):
            tol = 1e-9 * max(1.0, float(h - l))
            if a[0] < l - tol or a[-1] > h + tol:
                raise ProblemError(
                    f"{where}: the reference's {name} runs over [{a[0]:g}, {a[-1]:g}], beyond "
                    f"the domain's [{l:g}, {h:g}]"
                )
        missing = [o for o in problem.outputs if o not in ref.values]
        if missing:
            raise ProblemError(
                f"{where}: the reference has no values for {', '.join(missing)}: its outputs "
                f"are {', '.join(ref.values)}, the problem's {', '.join(problem.outputs)}"
            )
        x = torch.as_tensor(ref.points(), dtype=dtype, device="cpu")
        u = torch.as_tensor(ref.flat(problem.outputs), dtype=dtype, device="cpu")
        if u.shape != (x.shape[0], len(problem.outputs)):
            raise ProblemError(
                f"{where}: reference values have shape {tuple(u.shape)}, expected "
                f"({x.shape[0]}, {len(problem.outputs)})"
            )
    else:
        return None
    if not bool(torch.isfinite(u).all()):
        raise ProblemError(f"{where}: the exact/reference solution has NaN or Inf values")
    return x.to(device), u.to(dtype=dtype, device=device)


class History:
    """Columns of logged values; rows are appended as dicts (missing entries become NaN)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.events: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)

    def columns(self) -> dict[str, np.ndarray]:
        keys: list[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        return {k: np.array([r.get(k, np.nan) for r in self.rows], dtype=np.float64) for k in keys}

    def last(self, key: str, default=math.nan):
        for r in reversed(self.rows):
            if key in r:
                return r[key]
        return default


@contextlib.contextmanager
def _no_host_syncs(on: bool) -> Iterator[None]:
    """Make torch raise on an op that synchronises the GPU with the host (when ``on``)."""
    if not on:
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    except RuntimeError as e:
        if "synchroniz" not in str(e):  # torch's "called a synchronizing CUDA operation";
            raise  # anything else (out of memory) is what it is
        raise RuntimeError(
            f"the evaluation waits for the GPU ({_one_line(e)}), so it cannot be captured as "
            "a CUDA graph"
        ) from e
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class _CapturedGradient:
    """One loss+gradient evaluation captured as a CUDA graph and replayed.

    The residual code runs once, at capture; a replay re-runs its kernels on the same buffers
    (points, parameters and gradients keep their addresses: optimizers update parameters in
    place). Any change of shapes or parameters (grid extension, resampling) needs a new capture.
    """

    def __init__(self, residuals: Residuals, params: list[nn.Parameter], warmup: int = 2) -> None:
        self.params = params
        # A graph holds no reference to what it reads: the points, and through the model its
        # buffers (grid, basis tables), must live as long as it does, or a replay reads memory
        # a later allocation took (a benchmark kept only .replay of a capture it made).
        self.residuals = residuals
        # Streams and the capture belong to the parameters' GPU, which need not be the current
        # one (device="cuda:1" without torchrun): else the capture records nothing.
        self.device = params[0].device
        with torch.cuda.device(self.device):
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):  # warm-up outside the graph (lazy initialisations)
                for i in range(warmup):
                    for p in params:
                        p.grad = None
                    # The last warm-up runs as the capture will, with torch refusing any op
                    # that waits for the GPU (.item(), `if` on a tensor in a pde): a capture
                    # that fails on one leaves torch's stream and allocator state behind.
                    with _no_host_syncs(i == warmup - 1):
                        loss, _ = residuals()
                        loss.backward(inputs=params)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            for p in params:
                p.grad = None
            self.graph = torch.cuda.CUDAGraph()
            before = torch.cuda.current_stream(self.device)
            try:
                # torch's default capture stream is made once per process, on the GPU current
                # then: a capture on another GPU later in the process needs its own
                with torch.cuda.graph(self.graph, stream=stream):
                    loss, terms = self.step(residuals, params)
            except BaseException:
                # a capture_end that raises skips torch's own restoring of the stream
                torch.cuda.set_stream(before)
                raise
        self.loss, self.terms = loss, terms
        # The graph writes these tensors; a callback's zero_grad() (grads set to None) must not
        # leave replays writing where nobody reads.
        self.grads = [p.grad for p in params]

    @staticmethod
    def step(residuals: Residuals, params: list[nn.Parameter]) -> tuple[Tensor, dict[str, Tensor]]:
        """The evaluation the graph records (``tests/test_capture.py`` runs it on the CPU)."""
        loss, terms = residuals()
        loss.backward(inputs=params)
        _dense_grads(params)
        return loss, terms

    def replay(self) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.cuda.device(self.device):
            self.graph.replay()
        for p, g in zip(self.params, self.grads):
            p.grad = g
        return self.loss, self.terms


def _laid_out_as(p: Tensor, t: Tensor) -> Tensor:
    """``t`` with the strides of ``p`` (fused Adam needs a parameter and its moments alike)."""
    return torch.empty_like(p).copy_(t)


def _grid_network(model: nn.Module, stages: list[Stage]) -> KAN | None:
    """The KAN whose grid the schedule changes: the model, or the one KAN a module of the
    user's own holds (an inverse problem's wrapper); None for other models (an MLP's
    schedule grids are ignored)."""
    nets = _kans(model)
    grids = {net.grid for net in nets}
    changes = [
        i
        for i, s in enumerate(stages)
        if s.update_grid or (s.grid is not None and grids != {s.grid})
    ]
    if len(nets) > 1 and changes:
        raise ValueError(
            f"stage {changes[0]} changes the grid, but the model holds {len(nets)} KANs; "
            "give their grids in the model and none in the schedule"
        )
    return nets[0] if nets else None


def _dense_grads(params: list[nn.Parameter]) -> None:
    """Every parameter's gradient present and contiguous (L-BFGS flattens them with ``view``):
    zeros for one the loss does not reach, e.g. the empty spline parameters of a layer whose
    edges are all symbolic or removed."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif not p.grad.is_contiguous():
            p.grad = p.grad.contiguous()


class Trainer:
    """Runs the stages of a schedule on a model.

    Parameters
    ----------
    residuals : Residuals
        The loss terms (with the model they evaluate).
    stages : list of Stage
        The schedule.
    test : (Tensor, Tensor), optional
        Evaluation points and exact/reference values.
    log_every : int
        Steps between history rows (with test metrics).
    progress : bool
        Show a tqdm progress bar.
    carry_moments : bool
        On grid extension, carry Adam's moments onto the new coefficients (else reset them).
    callback : callable, optional
        ``callback(trainer, row)`` after every history row.
    graphs : bool or "auto"
        Replay each loss+gradient evaluation as a captured CUDA graph (``"auto"``: on CUDA
        when every term is jet-served). Removes the kernel-launch overhead that
        dominates small PINN steps on a GPU (about 10x more evaluations per second for a
        [2, 10, 1] KAN on an H100; ``benchmarks/gpu_smoke.py``).
    checkpoint, checkpoint_every : path, int
        Write the whole training state atomically to ``checkpoint`` every ``checkpoint_every``
        steps (see :meth:`load_state_dict` to resume).
    max_failures : int
        Non-finite losses/gradients tolerated (each rolls back to the last good state and
        lowers the learning rate or leaves L-BFGS for Adam) before :class:`TrainingStopped`.
    max_seconds : float, optional
        Stop once this much training time is spent (the rest of the schedule is skipped).
    time_shares : sequence of float, optional
        With ``max_seconds``: one non-negative weight per stage. Each stage then runs on its
        own clock, ending when its steps are done or its time is up: at its start it gets the
        time still left times its weight's share of the remaining weights, so time a stage
        leaves unused passes on and overrun is taken from the later stages. Every stage runs
        at least one step (a KAN reaches its last grid); an Adam ``decay`` spreads over the
        stage's time instead of its steps.

    Notes
    -----
    A trainer for a CPU model keeps freed memory in the process for the rest of its life
    (:func:`kanpde.allocator.retain_freed_memory`; ``KANPDE_MALLOPT=0`` to opt out). During
    :meth:`run`, a first Ctrl-C (or SIGTERM, SIGHUP) stops training between steps (inside an
    L-BFGS call, at the call's start; :attr:`stopped_cleanly` is then True) and a second one
    at once.

    On a GPU, Adam steps are not checked one by one (reading a flag would wait for the step
    to finish): fused Adam leaves a step with a non-finite loss or gradient undone on the
    device, and the flags are read at each log, checkpoint, grid change, resampling and the
    end of the time budget, where a flagged step rolls back as a checked one does, losing
    the steps since the last log.
    """

    def __init__(
        self,
        residuals: Residuals,
        stages: list[Stage],
        test: tuple[Tensor, Tensor] | None = None,
        log_every: int = LOG_EVERY,
        progress: bool = True,
        carry_moments: bool = True,
        callback: Callable | None = None,
        graphs: bool | str = "auto",
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 0,
        max_failures: int = 5,
        max_seconds: float | None = None,
        time_shares: Sequence[float] | None = None,
    ) -> None:
        self.residuals = residuals
        if max_seconds is not None:
            ok = isinstance(max_seconds, numbers.Real) and not isinstance(max_seconds, bool)
            if not ok or not math.isfinite(max_seconds) or max_seconds <= 0:
                raise ValueError(f"max_seconds must be a finite number > 0, got {max_seconds!r}")
        self.max_seconds = max_seconds
        self.time_shares = _check_shares(time_shares, stages, max_seconds)
        _warm_up_optimizers()
        self._clock: tuple[float, float] | None = None  # the timed stage's start and end
        self._decayed = 0.0  # fraction of the timed stage's Adam decay applied so far
        # the network, with the problem's unknown coefficients when it has any
        self.model = getattr(residuals, "trainable", residuals.model)
        self.stages = stages
        self.test = test
        self.log_every = max(1, int(log_every))
        self.progress = progress
        self.carry_moments = carry_moments
        self.callback = callback
        self.history = History()
        self.step = 0
        self.evals = 0
        self.train_time = 0.0
        # wall clock: this process's start, and the time earlier processes of the run spent
        self.started, self.wall_before = time.time(), 0.0
        self._adam: torch.optim.Adam | None = None
        self._bar = None
        self._graph: _CapturedGradient | None = None
        self._lbfgs_opt = None
        self._lbfgs_scale = 1.0
        self._good = None
        self._resumed = False
        self._changed_at: tuple[int, int] | None = None  # (stage, i) of the last grid change
        self._interrupted: str | bool = False  # the first Ctrl-C (SIGTERM, SIGHUP), acted on
        self._stop_signal = signal.SIGINT  # which of them, for the exit status
        # between steps; stopped_cleanly says the KeyboardInterrupt left a state to resume from
        self.stopped_cleanly = False
        self.stage, self.i = 0, 0  # position: stage index and step within the stage
        self.failures = 0
        self.max_failures = max_failures
        self.checkpoint_path = Path(checkpoint) if checkpoint else None
        self.checkpoint_every = int(checkpoint_every or 0)
        self.config: dict = {}
        on_cuda = next(self.model.parameters()).is_cuda
        if not on_cuda:
            retain_freed_memory()  # see kanpde.allocator: page faults cost 15-20 % of a step
        # chosen for the user: a capture that fails falls back to plain evaluations
        self._graphs_auto = graphs == "auto"
        if graphs == "auto":
            graphs = on_cuda and residuals.fully_fused
        if graphs and not on_cuda:
            raise ValueError("graphs=True needs a CUDA device")
        if graphs and not residuals.fully_fused:
            raise ValueError(
                "CUDA graphs need every loss term to be served by the model's derivative jets "
                "(no autograd fallback); train without them (graphs=False, --graphs off)"
            )
        self.graphs = bool(graphs)
        self._grid_net = _grid_network(self.model, stages)
        self._unknowns = _unknowns(self.model)
        # Reading a step's finiteness waits for the GPU to finish it: on CUDA, Adam runs on
        # unchecked instead, fused Adam leaving a step flagged non-finite undone on the device,
        # and the flags are read where the trainer looks at the state anyway (see _settle).
        self._defer_checks = on_cuda
        self._skipped: Tensor | None = None  # Adam steps skipped since the last look

    # -- metrics ------------------------------------------------------------------------------
    def predict(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return chunked(self.model, x)

    def metrics(self) -> dict[str, float]:
        if self.test is None:
            return {}
        x, u = self.test
        return error_metrics(self.predict(x), u, self.residuals.problem.outputs)

    def param_values(self) -> dict[str, float]:
        """The current values of the unknown coefficients as ``param_<name>`` (the history's
        columns and a run's metrics)."""
        return {f"param_{name}": float(p.detach()) for name, p in self._unknowns}

    def _log(self, stage_index: int, stage: Stage, terms: dict[str, float], loss: float) -> dict:
        row = {
            "step": self.step,
            "stage": stage_index,
            "grid": getattr(self._grid_net, "grid", 0),
            "loss": loss,
            "time": self.train_time,
            "evals": self.evals,
            **{f"loss_{k}": v for k, v in terms.items()},
            **self.metrics(),
            **self.param_values(),
        }
        self.history.append(row)
        if self._bar is not None:
            post = {"stage": stage_index, "G": row["grid"], "loss": f"{loss:.2e}"}
            if "rel_l2" in row and not math.isnan(row["rel_l2"]):
                post["rel_l2"] = f"{row['rel_l2']:.2e}"
            elif "mse" in row:  # a zero exact solution has no relative error: show the MSE
                post["mse"] = f"{row['mse']:.2e}"
            self._bar.set_postfix(post, refresh=False)
        if self.callback is not None:
            self.callback(self, row)
        return row

    # -- optimizers ---------------------------------------------------------------------------
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _grad(self) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss, its terms, and fresh gradients in ``p.grad`` (one loss+gradient evaluation)."""
        self.evals += 1
        params = self.params()
        if self.graphs and self._graph is None:
            self._graph = self._capture(params)
        if self.graphs:
            loss, terms = self._graph.replay()
        else:
            for p in params:
                p.grad = None
            loss, terms = self.residuals()
            loss.backward(inputs=params)
            _dense_grads(params)
        if distributed.world() > 1:
            # Shard sums -> global loss and gradient on every rank (identical steps).
            loss = loss.detach().clone()
            terms = {k: v.detach().clone() for k, v in terms.items()}
            distributed.all_reduce_([p.grad for p in params] + [loss, *terms.values()])
        return loss, terms

    def _capture(self, params: list[nn.Parameter]) -> _CapturedGradient | None:
        """The evaluation as a CUDA graph; ``None`` (and plain evaluations from now on) when a
        capture that ``graphs="auto"`` chose fails."""
        try:
            return _CapturedGradient(self.residuals, params)
        except RuntimeError as e:
            if not self._graphs_auto or isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            # A pde or condition that reads a value back to the host (u.max().item(),
            # `if (u > 1).any():`) runs fine eagerly but cannot be recorded; the file that
            # trains on the CPU must train on a GPU too.
            with contextlib.suppress(RuntimeError):  # drained where it can be; not the news
                torch.cuda.synchronize(params[0].device)
            for p in params:
                p.grad = None
            if distributed.rank() == 0:
                warn(
                    f"CUDA graph capture failed ({_one_line(e)}); training without graphs, "
                    "which is slower: a pde that reads values to the host (.item(), if on a "
                    "tensor) cannot be captured"
                )
            self.graphs = False
            return None

    def _begin_stage(self, index: int, stage: Stage) -> None:
        self._set_sparsity(stage)
        net = self._grid_net
        if stage.grid is not None and net is not None and stage.grid != net.grid:
            before, old = self._evaluate()[0], net.grid
            self._change_grid(lambda pts: net.extend_grid(stage.grid, pts))
            after = self._evaluate()[0]
            if before > 0 and after > 2 * before and distributed.rank() == 0:
                # an inexact extension: say so, or the staircase's jump up goes unexplained
                basis = net.layers[0].basis.name
                if basis in ("rbf", "rswaf"):
                    why = "Gaussian edges of another width do not nest; give them one grid"
                elif stage.grid < old:
                    why = "a coarser grid can only approximate a finer spline"
                elif stage.grid % old:
                    why = f"{stage.grid} is no multiple of {old}; a multiple keeps the knots"
                elif index > 0 and self.stages[index - 1].update_grid:
                    # the ranges followed the inputs only until update_until: later drift shows
                    last = self.stages[index - 1]
                    if int(last.update_grid) > min(last.update_until, last.steps - 1):
                        why = (
                            "a hidden layer's inputs left its grid range after the stage before "
                            "updated it at its start only; an update_grid there smaller than its "
                            f"{last.steps} steps follows them"
                        )
                    elif last.update_until < last.steps:
                        why = (
                            "a hidden layer's inputs left its grid range after the stage before "
                            f"stopped updating it at its step {last.update_until} of "
                            f'{last.steps}; "update_until": {last.steps} there keeps the ranges '
                            "on them"
                        )
                    else:
                        why = (
                            "a hidden layer's inputs left its grid range between the stage "
                            "before's updates; a smaller update_grid there follows them closer"
                        )
                else:
                    # not a plain "add update_grid": fitted to an untrained network's early
                    # inputs, the ranges can end worse (kovasznay's p: 2.0e-2 vs 2.9e-3)
                    why = (
                        "a hidden layer's inputs left its grid range; training usually recovers, "
                        'and an update_grid in the stage before (e.g. "update_grid": 50) moves '
                        "the ranges to them, though it can also cost accuracy: compare both"
                    )
                warn(
                    f"grid {'extension' if stage.grid > old else 'change'} {old} -> {stage.grid} "
                    f"raised the loss {after / before:.3g}x "
                    f"({before:.3g} -> {after:.3g}): the new grid could only approximate the "
                    f"old one ({why}); training goes on from there"
                )
            self.history.events.append(
                {
                    "step": self.step,
                    "event": "extend_grid",
                    "grid": stage.grid,
                    "loss_before": before,
                    "loss_after": after,
                }
            )
        if stage.update_grid:
            self._update_grid()

    def _set_sparsity(self, stage: Stage) -> None:
        res = self.residuals
        if res.penalty_weight == stage.sparsity:
            return
        if stage.sparsity > 0 and res.penalty is None:
            from .symbolic import regularization

            res.penalty = regularization
        res.penalty_weight = stage.sparsity
        self._graph = None  # the loss changed: capture again

    def _update_grid(self) -> None:
        net = self._grid_net
        if net is not None:
            self._change_grid(net.update_grid)
            self.history.events.append(
                {"step": self.step, "event": "update_grid", "grid": net.grid}
            )

    def _change_grid(self, change: Callable) -> None:
        """Apply a grid change (extension/update) and carry Adam's state across it."""
        t0 = time.perf_counter()  # part of the training cost
        self._graph = None
        old = {id(p): name for name, p in self.model.named_parameters()}
        transfers = change(self._grid_samples())
        if self._adam is not None:
            self._rebuild_adam(transfers, old)
        self.train_time += time.perf_counter() - t0

    def _grid_samples(self) -> Tensor:
        """The collocation points as the KAN whose grid changes sees them: through the
        wrapper's forward when the model wraps it (which may transform them)."""
        seen = _inputs_of(self._grid_net, self.model, self.residuals.all_points())
        if seen is None:
            raise ValueError(
                f"the schedule changes the grid of the KAN in {type(self.model).__name__}, but "
                "its forward does not call that KAN; give the grid in the model and none in "
                "the schedule"
            )
        return seen

    def _rebuild_adam(self, transfers: list[Tensor], old_names: dict[int, str]) -> None:
        """Map Adam's state onto the parameters after a grid change (or reset it)."""
        lr = self._adam.param_groups[0]["lr"]
        new = self._new_adam(lr)
        layer_of = {id(layer.coef): i for i, layer in enumerate(self._grid_net.layers)}
        if self.carry_moments:
            state = {old_names[id(p)]: s for p, s in self._adam.state.items() if id(p) in old_names}
            for name, p in self.model.named_parameters():
                s = state.get(name)
                if s is None:
                    continue
                s = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in s.items()}
                if id(p) in layer_of:
                    r = transfers[layer_of[id(p)]].to(p)
                    s["exp_avg"] = _laid_out_as(p, torch.einsum("ipb,oib->oip", r, s["exp_avg"]))
                    # Second moments through |R|: the same map for nested B-splines (non-negative
                    # averages), and for signed maps (other bases, grid updates) one that keeps
                    # |m'| <= sqrt(sum_j |R_ij|) sqrt(v') (Cauchy-Schwarz), so no step explodes;
                    # R itself gave v' near 0 beside m' != 0 (rswaf: loss 0.5 -> 387).
                    sq = torch.einsum("ipb,oib->oip", r.abs(), s["exp_avg_sq"])
                    s["exp_avg_sq"] = _laid_out_as(p, sq)
                new.state[p] = s
        self._adam = new

    def _every(self, key: str) -> int:
        return int(self.residuals.problem_points.get(key, 0) or 0)

    def _resample_due(self) -> bool:
        every = self._every("resample")
        return every > 0 and self.step > 0 and self.step % every == 0

    def _resample(self) -> None:
        self._graph = None
        pts = self.residuals.problem_points
        t0 = time.perf_counter()
        self.residuals.resample(seed=1000 + self.step, adaptive=bool(pts.get("adaptive", False)))
        self.train_time += time.perf_counter() - t0
        self.history.events.append({"step": self.step, "event": "resample"})

    def _grid_due(self, stage: Stage, i: int) -> bool:
        """A grid update is due before step ``i`` (> 0) of the stage."""
        n = stage.update_grid
        return bool(n) and i > 0 and i % n == 0 and i <= stage.update_until

    # -- failure handling ---------------------------------------------------------------------
    def _snapshot(self) -> None:
        """Remember the current state as the last good one (for rollback after NaN/Inf)."""
        model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        adam = copy.deepcopy(self._adam.state_dict()) if self._adam is not None else None
        self._good = (model, adam)

    def _rollback(self) -> None:
        """Back to the last good state; Adam keeps its current learning rate, so that repeated
        failures keep lowering it instead of restarting from the snapshot's."""
        model, adam = self._good
        lrs = None if self._adam is None else [g["lr"] for g in self._adam.param_groups]
        self.model.load_state_dict(model)
        self._graph = None
        if adam is not None:
            self._adam = self._new_adam(1e-3, copy.deepcopy(adam))
            if lrs is not None and len(lrs) == len(self._adam.param_groups):
                for g, lr in zip(self._adam.param_groups, lrs):
                    g["lr"] = lr

    def _nonfinite(self, loss: Tensor) -> Tensor:
        """1.0 if the loss or a gradient is NaN/Inf, else 0.0: a float32 scalar on the device
        (fused Adam's ``found_inf``), computed without waiting for it."""
        grads = [p.grad for p in self.params() if p.grad is not None]
        norms = torch._foreach_norm(grads) if grads else []
        finite = torch.isfinite(torch.stack([loss.detach().reshape(()), *norms])).all()
        return torch.logical_not(finite).to(torch.float32)

    def _finite(self, loss: Tensor) -> bool:
        """Loss and every gradient are finite (one device synchronisation)."""
        return not bool(self._nonfinite(loss))

    def _settle(self, stop: bool = True) -> None:
        """Read the deferred finiteness flags: after a non-finite Adam step (skipped on the
        device, as are the ones after it, which see the same state) roll back as a checked
        step would. Called before the state is logged, saved, refitted or left."""
        if self._skipped is None:
            return
        t0 = time.perf_counter()
        skipped = int(self._skipped)  # waits for the queued steps: their time is training time
        self.train_time += time.perf_counter() - t0
        self._skipped = None
        if skipped:
            self._rollback()
            for g in self._adam.param_groups:
                g["lr"] *= 0.1
            steps = "1 non-finite step" if skipped == 1 else f"{skipped} non-finite steps"
            self._failure(
                f"rolled back ({steps} skipped), Adam learning rate now {g['lr']:.1e}", stop
            )

    def _new_adam(self, lr: float, state: dict | None = None) -> torch.optim.Adam:
        """Adam over the trainable parameters, optionally loaded with ``state``; fused when the
        checks are deferred (only the fused kernel can skip a step flagged on the device) and
        it takes the parameters (real, contiguous: a user's module may hold others, which
        then keep per-step checks)."""
        params = self.params()
        fusable = all(p.is_floating_point() and p.is_contiguous() for p in params)
        fused = True if self._defer_checks and fusable else None
        adam = torch.optim.Adam(params, lr=lr, fused=fused)
        if state is not None:
            # a checkpoint of the other kind (a CPU run resumed on a GPU) takes this one's
            groups = [{**g, "fused": fused, "foreach": None} for g in state["param_groups"]]
            adam.load_state_dict({**state, "param_groups": groups})
        return adam

    def _failure(self, action: str, stop: bool = True) -> None:
        self.failures += 1
        self.history.events.append({"step": self.step, "event": "nonfinite", "action": action})
        if stop and self.failures > self.max_failures:
            single = next(self.model.parameters()).dtype != torch.float64
            raise TrainingStopped(
                f"training stopped at step {self.step}: the loss or its gradient was not finite "
                f"{self.failures} times (last remedy: {action}); try a smaller learning rate, "
                + ("float64, " if single else "")
                + "or fewer/other points",
                nonfinite=True,
            )

    # -- optimizer stages ---------------------------------------------------------------------
    def _run_adam(self, index: int, stage: Stage, resumed: bool = False) -> None:
        if not resumed:
            if self._adam is None or not self.carry_moments:
                self._adam = self._new_adam(stage.lr)
            for g in self._adam.param_groups:
                g["lr"] = stage.lr
        timed = self._clock is not None and stage.decay is not None
        gamma = stage.decay ** (1.0 / max(1, stage.steps)) if stage.decay and not timed else 1.0
        while self.i < stage.steps:
            grid_due, resample_due = self._grid_due(stage, self.i), self._resample_due()
            if grid_due or resample_due:
                self._settle()  # fit no grid to, and resample by, a state about to be undone
            if grid_due:
                self._update_grid()
            if resample_due:
                self._resample()
            t0 = time.perf_counter()
            loss, _ = self._grad()
            if self._adam.param_groups[0]["fused"]:  # deferred checks (see _settle)
                flag = self._nonfinite(loss)
                self._skipped = flag if self._skipped is None else self._skipped + flag
                self._adam.found_inf = flag  # read by the fused step, which then does nothing
            elif not self._finite(loss):
                self._rollback()
                for g in self._adam.param_groups:
                    g["lr"] *= 0.1
                self._failure(f"rolled back, Adam learning rate now {g['lr']:.1e}")
                continue
            self._adam.step()
            if gamma != 1.0:
                for g in self._adam.param_groups:
                    g["lr"] *= gamma
            self.train_time += time.perf_counter() - t0
            if timed:  # decay by the fraction of the stage's time this step took
                self._sync_clock()
                start, end = self._clock
                done = min(1.0, (self.train_time - start) / (end - start)) if end > start else 1.0
                factor, self._decayed = stage.decay ** (done - self._decayed), done
                for g in self._adam.param_groups:
                    g["lr"] *= factor
            self.step += 1
            self.i += 1
            self._tick(index, stage)
            self._honour_interrupt()

    def _lbfgs(self, stage: Stage, scale: float | None = None):
        params = self.params()
        if scale is None:
            scale = self._evaluate()[0]
        # torch's L-BFGS skips curvature pairs with y·s ≤ 1e-10 and stops on tiny changes; both
        # are absolute, so optimise the loss relative to its value when the optimizer starts.
        scale = scale if math.isfinite(scale) and scale > 0 else 1.0
        opt = torch.optim.LBFGS(
            params,
            lr=stage.lr,
            max_iter=1,
            max_eval=1,
            history_size=stage.history,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-14,
            tolerance_change=1e-16,
        )

        def closure():
            if self._interrupted:
                raise _Interrupted
            loss, _ = self._grad()
            if not self._finite(loss):  # keep it out of the line search and the memory
                raise _NonFinite
            torch._foreach_mul_([p.grad for p in params], 1.0 / scale)
            return loss / scale

        self._lbfgs_opt, self._lbfgs_scale = opt, scale
        return opt, closure

    def _chunk(self, stage: Stage) -> int:
        """L-BFGS iterations in one ``step`` call: up to the next log, checkpoint or change.

        Every call starts with an extra evaluation at the current point, so calls are long;
        they end where the trainer must act, which also makes resumed runs take the same calls.
        """
        n = min(stage.steps - self.i, self.log_every - self.step % self.log_every)
        for every in (self._every("resample"), self.checkpoint_every):
            if every:
                n = min(n, every - self.step % every)
        if stage.update_grid and self.i < stage.update_until:
            n = min(n, stage.update_grid - self.i % stage.update_grid)
        self._sync_clock()
        end = self._deadline()
        if end is not None and self.evals == 0:
            n = 1  # no cost measured yet: one iteration gives the estimate below
        elif end is not None:
            # A call cannot be cut short without losing it; size it to the time left, at the
            # mean cost of an evaluation so far and ~1.5 evaluations per iteration.
            per_iter = 1.5 * self.train_time / self.evals
            left = end - self.train_time
            n = max(1, min(n, int(left / per_iter) if per_iter > 0 else n))
        return n

    def _run_lbfgs(self, index: int, stage: Stage, resumed: bool = False) -> None:
        t0 = time.perf_counter()  # building the optimizer (and its scale) is training work too
        if resumed and self._lbfgs_opt is not None:
            opt, closure = self._lbfgs(stage, self._lbfgs_scale)
            opt.load_state_dict(self._lbfgs_resume)
        else:
            opt, closure = self._lbfgs(stage)
        self.train_time += time.perf_counter() - t0
        while self.i < stage.steps:
            grid_due, resample_due = self._grid_due(stage, self.i), self._resample_due()
            if self._changed_at == (self.stage, self.i):  # done before an interrupted call
                grid_due = resample_due = False
            if grid_due:
                self._update_grid()
            if resample_due:
                self._resample()
            if grid_due or resample_due:
                t0 = time.perf_counter()
                opt, closure = self._lbfgs(stage)  # new parameters or loss: restart the memory
                self.train_time += time.perf_counter() - t0
                self._changed_at = (self.stage, self.i)
            n = self._chunk(stage)
            group = opt.param_groups[0]
            group["max_iter"], group["max_eval"] = n, n * 25 + 1
            state = opt.state[opt._params[0]]
            before = state.get("n_iter", 0)
            t0 = time.perf_counter()
            start = [p.detach().clone() for p in opt._params]
            memory = _lbfgs_memory(opt)
            try:
                opt.step(closure)
                ok = self._params_finite()
            except _NonFinite:
                ok = False
            except _Interrupted:
                # Mid-call the parameters sit somewhere in a line search and the counters lag;
                # go back to the call's start (the last logged or checkpointed iterate), where
                # both agree, with the memory of that moment, so a checkpoint taken now resumes
                # exactly as the uninterrupted run continues.
                self.train_time += time.perf_counter() - t0
                with torch.no_grad():
                    torch._foreach_copy_(opt._params, start)
                opt.state[opt._params[0]] = memory
                self._graph = None
                raise self._clean_stop() from None
            self.train_time += time.perf_counter() - t0
            if not ok:
                self._rollback()
                self._failure("rolled back, switched from L-BFGS to Adam for the rest of the stage")
                fallback = Stage("adam", stage.steps, lr=1e-3)
                self._adam = self._new_adam(fallback.lr)
                self._lbfgs_opt = None
                self._run_adam(index, fallback, resumed=True)
                return
            done = state.get("n_iter", 0) - before
            if done:
                # Calls end at the next log, checkpoint or change (see _chunk), so only the
                # last iteration of a call can be due for one: count the others first, which
                # also keeps a spent time budget from dropping them.
                self.step += done - 1
                self.i += done - 1
                if self._bar is not None:
                    self._bar.update(done - 1)
                self.step += 1
                self.i += 1
                self._tick(index, stage)
            self._honour_interrupt()
            if done < n:  # no progress possible (the loss or its gradient stopped changing)
                self.history.events.append({"step": self.step, "event": "lbfgs_converged"})
                if self.history.last("step", -1) != self.step:
                    self._log(index, stage, *reversed(self._evaluate()))
                break
        self._lbfgs_opt = None

    def _honour_interrupt(self) -> None:
        if self._interrupted:
            self._interrupted = False
            self._settle()  # the checkpoint written on Ctrl-C must hold a trainable state
            raise self._clean_stop()

    def _clean_stop(self) -> KeyboardInterrupt:
        """The stop asked for, taken between steps: the request is done with, and the state
        it leaves can be resumed from (see :attr:`stopped_cleanly`)."""
        self._interrupted = False
        self.stopped_cleanly = True
        return interrupt(self._stop_signal)

    @contextlib.contextmanager
    def _deferred_interrupt(self) -> Iterator[None]:
        """Turn the first Ctrl-C into a stop between steps; a second one stops at once.

        A KeyboardInterrupt raised wherever the signal lands can be lost (Python ignores
        exceptions from weakref callbacks and finalizers, which free autograd graphs) or leave
        the parameters mid-step; a flag checked between steps does neither. SIGTERM and SIGHUP
        (a scheduler's or ``timeout``'s stop, a closed terminal), which would end the process
        without a checkpoint, stop it the same way when nobody else handles them. The same
        signal again stops at once. Only in the main thread of a single process.
        """
        if threading.current_thread() is not threading.main_thread() or distributed.world() > 1:
            yield
            return
        own = {sig: old for sig in STOPS if kanpde_stops(sig, old := signal.getsignal(sig))}

        def handler(signum, frame):
            if not self._interrupted:  # the request's signal, not a later one's
                self._stop_signal = signum
            self._interrupted = signal.Signals(signum).name
            # the same signal again stops at once; another kind (systemd sends SIGTERM and
            # then SIGHUP) is the same request
            signal.signal(signum, own[signum] if signum == signal.SIGINT else stop_now)

        with installed(dict.fromkeys(own, handler)):
            yield
        if self._interrupted:  # pressed after the last step: still an interrupt
            raise self._clean_stop()

    def _params_finite(self) -> bool:
        norms = torch._foreach_norm([p.detach() for p in self.params()])
        return bool(torch.isfinite(torch.stack(norms)).all())

    def _evaluate(self) -> tuple[float, dict[str, float]]:
        """Loss and terms at the current parameters (not counted as a training evaluation)."""
        loss, terms = self.residuals()
        values = [loss.detach().clone(), *(v.detach().clone() for v in terms.values())]
        distributed.all_reduce_(values)
        return float(values[0]), {k: float(v) for k, v in zip(terms, values[1:])}

    def _tick(self, index: int, stage: Stage) -> None:
        if self._bar is not None:
            self._bar.update(1)
        log = self.step % self.log_every == 0 or self.i == stage.steps
        # due whether or not this rank writes the file: ranks must settle at the same steps
        save = self.checkpoint_every > 0 and self.step % self.checkpoint_every == 0
        save = save and self.i < stage.steps
        self._sync_clock()
        end = self._deadline()
        if self._skipped is not None and (
            log or save or (end is not None and self.train_time >= end)
        ):
            self._settle()
            self._sync_clock()  # every rank settled (the same flags), each with its own wait
        if end is not None and self.train_time >= end:
            loss, terms = self._evaluate()
            self._log(index, stage, terms, loss)
            if self._clock is not None and self.stage < len(self.stages) - 1:
                raise _StageTimeUp
            raise _BudgetSpent
        if log:
            loss, terms = self._evaluate()
            self._log(index, stage, terms, loss)
            # A rollback target must be a state that can be trained from: a step can land on
            # parameters whose loss is NaN before the next gradient reveals it.
            if math.isfinite(loss) and self._params_finite():
                self._snapshot()
        if save and self.checkpoint_path is not None:
            try:
                self.save_checkpoint()
            except ResultsError as e:  # a full disk, a directory made read-only
                warn(
                    f"step {self.step}: {e}; training goes on, and the previous checkpoint "
                    "(if any) is kept"
                )

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue: position, history, optimizer and RNG states, points."""
        state = {
            "position": {
                "stage": self.stage,
                "i": self.i,
                "step": self.step,
                # the grid update/resampling due here already happened (Ctrl-C inside the
                # L-BFGS call after it): a resumed run must not apply it twice
                "changed": int(self._changed_at == (self.stage, self.i)),
                "clock": list(self._clock) if self._clock is not None else None,
                "decayed": self._decayed,
            },
            "counters": {
                "evals": self.evals,
                "train_time": self.train_time,
                "failures": self.failures,
                "wall_time": self.wall_before + time.time() - self.started,
            },
            "history": json.dumps({"rows": self.history.rows, "events": self.history.events}),
            "model_state": dict(self.model.state_dict()),
            "interior": self.residuals._full[0],
            "rng": {"torch": torch.get_rng_state()},
        }
        dev = next(self.model.parameters()).device
        if dev.type == "cuda":
            # the run's own GPU only: a list of every visible GPU's state could not be restored
            # on a machine with fewer of them
            state["rng"]["cuda"] = torch.cuda.get_rng_state(dev)
        if self._adam is not None:
            state["adam"] = self._adam.state_dict()
        if self._lbfgs_opt is not None:
            state["lbfgs"] = {"state": self._lbfgs_opt.state_dict(), "scale": self._lbfgs_scale}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict` (the model must have the same shapes)."""
        pos = state["position"]
        self.stage, self.i, self.step = int(pos["stage"]), int(pos["i"]), int(pos["step"])
        self._changed_at = (self.stage, self.i) if int(pos.get("changed", 0)) else None
        self._clock = tuple(pos["clock"]) if pos.get("clock") is not None else None
        self._decayed = float(pos.get("decayed", 0.0))
        c = state["counters"]
        self.evals, self.train_time = int(c["evals"]), float(c["train_time"])
        self.failures = int(c["failures"])
        self.wall_before = float(c.get("wall_time", 0.0))
        hist = json.loads(state["history"])
        self.history.rows, self.history.events = hist["rows"], hist["events"]
        self.model.load_state_dict(state["model_state"])
        interior = state["interior"].to(self.residuals._full[0])
        if not torch.equal(interior, self.residuals._full[0]):  # resampled before the checkpoint
            self.residuals.set_interior(interior)
        torch.set_rng_state(state["rng"]["torch"])
        dev = next(self.model.parameters()).device
        cuda_rng = state["rng"].get("cuda")
        if isinstance(cuda_rng, list | tuple):  # checkpoints that saved every visible GPU's
            cuda_rng = cuda_rng[dev.index or 0] if len(cuda_rng) > (dev.index or 0) else None
        if cuda_rng is not None and dev.type == "cuda":
            torch.cuda.set_rng_state(cuda_rng.cpu(), dev)
        if "adam" in state:
            self._adam = self._new_adam(1e-3, state["adam"])
        self._skipped = None
        if "lbfgs" in state:
            self._lbfgs_opt = True  # rebuilt by _run_lbfgs with the saved memory and scale
            self._lbfgs_resume = state["lbfgs"]["state"]
            self._lbfgs_scale = float(state["lbfgs"]["scale"])
        self._graph = None
        self._resumed = True

    def save_checkpoint(self) -> None:
        """Write the training state to ``checkpoint_path`` (rank 0 only), after acting on any
        deferred finiteness flag (a hard Ctrl-C reaches this between the usual reads)."""
        from .checkpoint import save_checkpoint

        self._settle(stop=False)  # the failure is recorded; stopping is the caller's business
        if distributed.rank() != 0:
            return
        save_checkpoint(
            self.checkpoint_path, {"config": json.dumps(self.config), **self.state_dict()}
        )

    # -- time budget --------------------------------------------------------------------------
    def _deadline(self) -> float | None:
        """Training time at which the current stage (or the run) must stop, if any."""
        return self._clock[1] if self._clock is not None else self.max_seconds

    def _sync_clock(self) -> None:
        """Ranks of a timed run take the slowest rank's training time, so that they stop, decay
        and size their L-BFGS calls alike (their steps must stay identical)."""
        if distributed.world() > 1 and self._deadline() is not None:
            self.train_time = distributed.max_over_ranks(self.train_time)

    def _start_clock(self, index: int) -> None:
        """Give stage ``index`` its share of the time left (``time_shares`` only)."""
        if self.time_shares is None:
            return
        self._sync_clock()
        weights = self.time_shares[index:]
        total = sum(weights)
        fraction = weights[0] / total if total > 0 else 0.0  # weight 0: one step
        share = max(self.max_seconds - self.train_time, 0.0) * fraction
        self._clock = (self.train_time, self.train_time + share)
        self._decayed = 0.0
        self.history.events.append(
            {"step": self.step, "event": "stage_clock", "stage": index, "seconds": share}
        )

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> History:
        """Run every stage (from the restored position after :meth:`load_state_dict`)."""
        # Timed stages end by the clock, so their capped step counts are no useful total.
        total = None if self.time_shares is not None else sum(s.steps for s in self.stages)
        if self.progress and distributed.rank() == 0:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=self.step, desc=self.residuals.problem.name, unit="step"
            )
        resumed = self._resumed
        self.stopped_cleanly = False
        try:
            with self._deferred_interrupt():
                if not resumed:
                    # the first row is of the first stage's loss (its sparsity penalty too:
                    # without it, loss_sparsity read NaN and the loss jumped at step 1)
                    self._set_sparsity(self.stages[0])
                    loss, terms = self._evaluate()
                    self._log(0, self.stages[0], terms, loss)
                for index in range(self.stage, len(self.stages)):
                    stage = self.stages[index]
                    mid_stage = resumed and index == self.stage
                    if not mid_stage:
                        self.stage, self.i = index, 0
                        self._start_clock(index)
                        self._begin_stage(index, stage)
                    else:
                        self._set_sparsity(stage)
                    self._snapshot()
                    try:
                        if stage.optimizer == "adam":
                            self._run_adam(index, stage, resumed=mid_stage)
                        else:
                            self._run_lbfgs(index, stage, resumed=mid_stage)
                    except _StageTimeUp:
                        self._lbfgs_opt = None
                        self.history.events.append(
                            {"step": self.step, "event": "stage_time_spent", "stage": index}
                        )
                    resumed = False
                self.stage, self.i = len(self.stages), 0
        except _BudgetSpent:
            self.history.events.append({"step": self.step, "event": "time_budget_spent"})
            if self._interrupted:  # in the last step: the stop still asked for
                raise self._clean_stop() from None
        except torch.cuda.OutOfMemoryError:
            raise TrainingStopped(
                f"CUDA out of memory at step {self.step} with "
                f"{self.residuals.all_points().shape[0]} collocation points; use fewer points "
                "(--points interior=...), float32, or the CPU"
            ) from None
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        return self.history


def _lbfgs_memory(opt: torch.optim.LBFGS) -> dict:
    """A copy of an L-BFGS optimizer's state, cheap enough to take before every call.

    Its lists are copied but not the tensors in them: a step appends and drops curvature pairs
    and reassigns list items, never edits them in place; the loose tensors (``prev_flat_grad``
    is updated in place) are cloned. A deep copy cost ~0.75 s over a 6 s Poisson-2D run.
    """
    state = opt.state[opt._params[0]]
    return {
        k: list(v) if isinstance(v, list) else v.clone() if isinstance(v, Tensor) else v
        for k, v in state.items()
    }


def _check_shares(
    shares: Sequence[float] | None, stages: list[Stage], max_seconds: float | None
) -> list[float] | None:
    """``time_shares`` as floats, checked against the schedule."""
    if shares is None:
        return None
    if max_seconds is None:
        raise ValueError("time_shares needs max_seconds (the time they share)")
    try:
        out = [float(w) for w in shares]
    except (TypeError, ValueError):  # not a sequence, or not of numbers
        out = []
    ok = len(out) == len(stages) and all(math.isfinite(w) and w >= 0 for w in out)
    if not ok or sum(out) <= 0:
        raise ValueError(
            f"time_shares must be {len(stages)} non-negative numbers (one per stage), not all "
            f"0, got {shares!r}"
        )
    return out


@functools.cache
def _warm_up_optimizers() -> None:
    """Build a throwaway optimizer once per process: the first one imports ``torch._dynamo``
    (about 1 s), which is no training and would eat the time budget of a process's first run."""
    p = [torch.zeros(1, requires_grad=True, device="cpu")]  # a throwaway
    torch.optim.Adam(p)
    torch.optim.LBFGS(p)


class _BudgetSpent(Exception):
    """Raised when ``max_seconds`` of training time are used up."""


class _StageTimeUp(Exception):
    """Raised when a timed stage (``time_shares``) has used its share; the next one starts."""


class _Interrupted(Exception):
    """Raised inside an L-BFGS closure to leave the step after Ctrl-C."""


class _NonFinite(Exception):
    """Raised inside an L-BFGS closure to abandon a step with a non-finite loss or gradient."""


class TrainingStopped(RuntimeError):
    """Training could not continue (repeated non-finite losses, out of memory).

    Parameters
    ----------
    message : str
        What stopped it.
    nonfinite : bool
        Whether non-finite losses stopped it.

    Attributes
    ----------
    nonfinite : bool
        True for non-finite losses, a property of the run (a study records it and goes on);
        False for out of memory, of the machine.
    run : Run or None
        The results so far, attached by :func:`solve`.
    """

    run = None  # the results so far, attached by solve()

    def __init__(self, message: str, nonfinite: bool = False) -> None:
        super().__init__(message)
        self.nonfinite = nonfinite


class Interrupted(KeyboardInterrupt):
    """:func:`solve` stopped by Ctrl-C, SIGTERM or SIGHUP.

    Parameters
    ----------
    checkpoint, saved, finished, result, signum, run
        Stored as the attributes below, from which the message is composed.

    Attributes
    ----------
    checkpoint : Path or None
        The run's checkpoint, if it has one: ``--resume`` continues from there.
    saved : bool
        Whether the checkpoint holds the moment of the stop. A second signal stops at once,
        perhaps mid-step, and leaves the last regular checkpoint as it was.
    finished : bool
        Training was over (the stop came while the results were written).
    result : Path or None
        ``result.h5`` when it was complete before the stop (the run is done).
    signum : int
        The signal: ``SIGINT`` (Ctrl-C), ``SIGTERM`` or ``SIGHUP``.
    run : Run or None
        The run as far as it got (model, history, test errors), not written anywhere, when it
        stopped between steps: a notebook's run without ``out`` keeps its training this way.
    """

    def __init__(
        self,
        checkpoint: Path | None,
        saved: bool,
        finished: bool = False,
        result: Path | None = None,
        signum: int = signal.SIGINT,
        run: Run | None = None,
    ) -> None:
        self.checkpoint, self.saved, self.finished = checkpoint, saved, finished
        self.result, self.signum, self.run = result, int(signum), run
        try:
            name = signal.Signals(self.signum).name
        except ValueError:
            name = f"signal {self.signum}"
        if result is not None:
            text = f"{name} after training; the results are in {result}"
        else:
            step = f" at step {run.metrics['steps']}" if run is not None else ""
            text = f"training stopped by {name}{step}"
            if run is not None:
                text += "; the run so far is this exception's .run"
            if checkpoint is not None:
                moment = "this moment" if saved else "the last regular checkpoint"
                text += f"; {checkpoint} holds {moment} (resume= continues it)"
        super().__init__(text)


def _check_solve_arguments(seed, log_every, checkpoint_every, out) -> None:
    """One-line errors naming the argument, before anything is loaded or written."""
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"solve(seed={seed!r}): must be an integer from 0 to {MAX_SEED}")
    if log_every is not None and (not _is_int(log_every) or log_every < 1):
        raise ValueError(f"solve(log_every={log_every!r}): must be an integer >= 1")
    if checkpoint_every is not None and (not _is_int(checkpoint_every) or checkpoint_every < 0):
        raise ValueError(
            f"solve(checkpoint_every={checkpoint_every!r}): must be an integer >= 0 (0: none)"
        )
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"solve(out={str(out)!r}): is a file, not a directory")


def _check_start_values(unknowns, problem: Problem) -> None:
    """``solve(unknowns=...)``: a dict of finite numbers for unknowns the problem declares."""
    if not isinstance(unknowns, dict):
        raise ValueError(
            f"solve(unknowns={unknowns!r}): expected a dict of starting values such as {{'k': 1.0}}"
        )
    for name, value in unknowns.items():
        if name not in problem.unknowns:
            declared = ", ".join(map(str, problem.unknowns)) or "none"
            raise ValueError(
                f"solve(unknowns=...): {name!r} is not one of the problem's unknowns "
                f"(declared: {declared})"
            )
        why = start_value_error(value)
        if why:
            raise ValueError(f"solve(unknowns=...): {name!r} {why}")


def _check_module(net: nn.Module, problem, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a ready model that does not map the domain's points to the problem's outputs.

    A wrong number of outputs would otherwise train and broadcast against the reference in
    the metrics (a (N, 2) prediction against (N, 1) values gave rel. L2 2.48 without a word).
    """
    dim, m = problem.domain_dim, len(problem.outputs)
    x = problem.domain.sample(4, method="uniform", seed=0)
    x = torch.as_tensor(x, dtype=dtype, device=device)
    try:
        with _inspecting(net, x.device):
            u = net(x)
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - the user's module, reported in one line
        raise ValueError(
            f"solve(model=...): the model raised {type(e).__name__} on (4, {dim}) points of "
            f"problem {problem.name!r} (one column per coordinate of its domain): "
            f"{_first_line(e)}"
        ) from e
    if not any(p.requires_grad for p in net.parameters()):
        raise ValueError("solve(model=...): the model has no trainable parameters")
    if not isinstance(u, Tensor) or u.shape != (4, m):
        got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise ValueError(
            f"solve(model=...): the model maps (4, {dim}) points to {got}; problem "
            f"{problem.name!r} needs (4, {m}), one column per output ({', '.join(problem.outputs)})"
        )


# What solve() holds until it returns: the lock of its run directory (see _hold_run_directory)
_HELD: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar(
    "kanpde_held", default=None
)


def _terminable(fn: Callable) -> Callable:
    """``fn`` run under :func:`terminate_as_interrupt`, releasing on return what it took
    into ``_HELD`` (the lock of its run directory)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        single = not distributed.launched()  # torchrun's own handlers stop its ranks
        with terminate_as_interrupt(active=single), contextlib.ExitStack() as held:
            token = _HELD.set(held)
            try:
                return fn(*args, **kwargs)
            finally:
                _HELD.reset(token)

    return run


def _absent(directory: Path) -> list[Path]:
    """``directory`` and its parents that do not exist yet, deepest first (what making it
    makes, for :func:`_remove_if_empty` to take back)."""
    return [d for d in (directory, *directory.parents) if not d.exists()]


def _remove_if_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) as long as they are empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:  # not empty (the run's files), or gone
            return


def _hold_run_directory(directory: str | Path | None, resuming: bool) -> None:
    """Lock the directory a run writes into, or resumes from, until ``solve`` returns.

    Two processes training in one directory (a resume of a run that is still training, two
    new runs given the same ``out``) overwrote each other's checkpoints and results and
    cleared each other's temporary files. Under torchrun rank 0 holds the lock for all ranks,
    which share its answer. A new run's directory is made here to be locked, and removed
    again if the call leaves it empty (an error before training).

    Raises
    ------
    ValueError
        Another process holds the lock.
    """
    held = _HELD.get()
    if directory is None or held is None:
        return
    directory = Path(directory)
    refusal = f"{directory}: another process is training " + (
        "this run" if resuming else "a run in this directory"
    )
    message = None
    if distributed.rank() == 0:
        made = []
        if not resuming and not directory.exists():
            made = _absent(directory)
            try:
                directory.mkdir(parents=True)
            except OSError:  # the first write names the problem
                made = [d for d in made if os.path.isdir(d)]  # parents made before it failed
        try:
            held.enter_context(_directory_lock(directory, refusal))
        except ValueError as e:  # refused: the directory is another process's to remove
            message = str(e)
        except Exception as e:  # noqa: BLE001 - every rank must hear of it, not wait
            _remove_if_empty(made)
            text = _one_line(e)
            message = text if str(directory) in text else f"{directory}: {text}"
        else:
            if made:  # removed while still locked: another process cannot have taken it
                held.callback(_remove_if_empty, made)
    message = distributed.shared_failure(message)
    if message is not None:
        raise ValueError(message)


@contextlib.contextmanager
def _directory_lock(directory, refusal: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the directory of a run (or study) being trained or resumed:
    a second process in it at the same time would train its runs twice and clear temporary
    files the other is writing. ``refusal`` is the error message when another process holds
    it."""
    try:
        import fcntl
    except ImportError:  # not on this platform
        fcntl = None
    if fcntl is None or directory is None or not Path(directory).is_dir():
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as e:  # a directory that cannot be read: its files' writes say more
        warn(f"{directory}: not locked against a second process ({_one_line(e)})")
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                refusal or f"solve(resume={str(directory)!r}): another process is resuming this run"
            ) from None
        except OSError as e:  # a file system without locks (e.g. Lustre without flock)
            warn(f"{directory}: not locked against a second process ({_one_line(e)})")
        yield
    finally:
        os.close(fd)  # releases the lock


@_terminable
def solve(
    problem: Problem | str | Path,
    model: dict | nn.Module | None = None,
    schedule: str | dict | Sequence[Stage | dict] | None = None,
    points: dict | None = None,
    weights: dict | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    log_every: int | None = None,
    progress: bool = True,
    carry_moments: bool = True,
    callback: Callable | None = None,
    compile: bool = False,
    preset: str | None = None,
    graphs: bool | str = "auto",
    checkpoint_every: int | None = None,
    resume: str | Path | None = None,
    max_seconds: float | None = None,
    time_shares: Sequence[float] | None = None,
    penalty: Callable | None = None,
    overwrite: bool = False,
    unknowns: dict[str, float] | None = None,
) -> Run:
    """Solve ``problem`` with a physics-informed KAN (or MLP) and return the :class:`Run`.

    Parameters
    ----------
    problem : Problem, str or Path
        The problem, or the path of a problem file.
    model : dict or nn.Module, optional
        Overrides of the problem's model config (e.g. ``{"type": "mlp", "width": [...]}``), or
        a ready model: a kanpde KAN or MLP, or any module mapping ``(N, D)`` points to
        ``(N, outputs)`` — one holding the unknown coefficients of an inverse problem as extra
        parameters, say, which the PDE reads and the optimizer trains with the network. Such a
        module (without ``config()``) is saved by its state alone: rebuild it and call
        ``load_state_dict(run.state_dict())``. Grid stages apply to KANs only. A ready model
        is moved to the run's device and dtype in place.
    schedule, points, weights
        Override the problem's defaults (see :mod:`kanpde.schedule` for schedules).
    device, dtype, seed
        ``"auto"`` picks CUDA when available; the dtype defaults to the problem's.
    out : str or Path, optional
        Run directory: ``result.h5`` at the end, ``checkpoint.h5`` every ``checkpoint_every``
        steps while training (removed once the result is written). Nothing is written when
        omitted. A directory that already holds a run is refused unless ``overwrite``.
    log_every : int, optional
        Steps between history rows (default 50). Saved with the run: a resumed run uses the
        saved value unless given here.
    progress : bool
        Show a tqdm progress bar.
    carry_moments : bool
        On grid extension, carry Adam's moments onto the new coefficients (else reset them).
    callback : callable, optional
        ``callback(trainer, row)`` after every history row (``row`` a dict of its columns).
    compile : bool
        Compile the model's derivative evaluation with ``torch.compile`` (a one-off compilation
        of tens of seconds per grid size). Experimental: on the Poisson-2D CPU benchmark it is
        currently slower than the eager path, so it is off by default.
    preset : str, optional
        Use one of the problem's named presets (e.g. ``"full"``) as the defaults.
    graphs : bool or "auto"
        Replay loss+gradient evaluations as CUDA graphs (see :class:`Trainer`).
    checkpoint_every : int, optional
        Steps between checkpoints (default 100; 0: none). Saved with the run, like
        ``log_every``.
    resume : str or Path, optional
        A run directory with a checkpoint: continue that run (its configuration is used; the
        problem file must be unchanged). ``model``, ``schedule``, ``points``, ``weights``,
        ``dtype``, ``seed`` and ``preset`` are the run's: giving ``schedule``, ``points``,
        ``weights``, ``dtype`` or a ``model`` dict is an error, as are a ``seed`` other than
        0 or the run's, another ``preset`` and other ``unknowns`` (a module of the user's own
        is passed again as ``model``). ``device`` moves the run unless it is ``"auto"`` (the
        run's device).
    max_seconds : float, optional
        Training-time budget; the schedule stops early when it is spent.
    time_shares : sequence of float, optional
        Split ``max_seconds`` over the stages by these weights, one per stage (see
        :class:`Trainer`). A resumed run keeps both unless they are given; the stage it
        resumes in keeps its clock.
    penalty : callable, optional
        ``penalty(model, x) -> 0-d tensor`` added with each stage's ``sparsity`` weight (default
        :func:`kanpde.symbolic.regularization`).
    overwrite : bool
        Replace a run already in ``out`` (as re-running a notebook cell does).
    unknowns : dict, optional
        Starting values for some of the problem's unknowns, overriding the problem's (e.g.
        ``{"kappa": 2.0}``, to see that the value found does not depend on the start). They
        are recorded with the run, and ``resume`` applies them again.

    Returns
    -------
    Run
        The finished run (saved in ``out`` when given).

    Raises
    ------
    ProblemError
        A mistake in the problem (or its preset), or an exception raised by its own functions
        (``pde``, ``exact``, condition values), in one line naming the file.
    ScheduleError
        A malformed ``schedule`` (a :class:`ValueError`).
    ValueError
        Any other bad argument, before anything is trained or written.
    ResultsError
        ``resume`` names no readable run, or the results cannot be written (the trained state
        is then kept in the checkpoint, for ``resume`` to write them).
    TrainingStopped
        When training cannot go on (repeated non-finite losses, out of memory); the results so
        far are attached as ``.run`` and written to ``out``.
    Interrupted
        Ctrl-C, SIGTERM or SIGHUP (a :class:`KeyboardInterrupt`): training stopped between
        steps; ``.run`` is the run so far (in memory, with or without ``out``) and
        ``.checkpoint`` what ``resume`` continues from.
    """
    from .checkpoint import load_checkpoint
    from .problem import (
        Problem,
        ProblemError,
        apply_preset,
        check_initial,
        check_points,
        check_resampling,
        check_weights,
        data_hash,
        file_hash,
        load_problem,
    )

    _check_solve_arguments(seed, log_every, checkpoint_every, out)
    if model is not None and not isinstance(model, dict | nn.Module):
        raise ValueError(
            f"solve(model={model!r}): expected a dict of options such as {{'type': 'mlp', "
            "'width': [2, 50, 50, 1]}, or a module"
        )
    if graphs not in (True, False, "auto"):
        raise ValueError(f"solve(graphs={graphs!r}): use True, False or 'auto'")
    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    elif isinstance(problem, Problem):
        # checked again: fields set after it was built (problem.presets = {...}) were not
        problem.validate()
    else:
        raise ValueError(
            f"solve(problem=...): expected a kanpde.Problem or a problem file's path, got "
            f"{type(problem).__name__}"
        )
    if unknowns is not None:
        _check_start_values(unknowns, problem)
        unknowns = {name: float(v) for name, v in unknowns.items()}
    observed = data_hash(problem)  # the data conditions' fingerprint ('' without any)
    device = distributed.setup(device)
    _hold_run_directory(resume if resume is not None else out, resume is not None)
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        saved = json.loads(state.pop("config"))
        if saved["problem"] != problem.name or saved["problem_hash"] != file_hash(problem.source):
            what = (
                f"its name is {problem.name!r}, the run's {saved['problem']!r}"
                if saved["problem"] != problem.name
                else "the file, or a module beside it that it imports, was edited since the "
                "run; any edit counts, a comment too"
            )
            raise ProblemError(
                f"{problem.source or problem.name}: differs from the problem of the checkpoint in "
                f"{resume} ({what}); resume with the same problem file"
            )
        if "data_hash" in saved and saved["data_hash"] != observed:
            raise ProblemError(
                f"{problem.source or problem.name}: the observations of its data conditions "
                f"differ from those the run in {resume} was trained on (changed in memory, or "
                "drawn anew without a seed); resume with the same data"
            )
        # The start values the run was given override the problem's again.
        given_starts = saved.get("unknowns_given", {})
        expected = {**problem.unknowns, **given_starts}
        if saved.get("unknowns", {}) != expected:  # (the file's hash may be None)
            raise ValueError(
                f"resume={str(resume)!r}: the problem's unknowns {expected} differ from the "
                f"run's {saved.get('unknowns', {})}; resume with the problem the run was "
                "started with"
            )
        # Settings the run brings itself: a different one given too would be ignored.
        clash = [name for name, v in (("schedule", schedule), ("points", points),
                 ("weights", weights), ("dtype", dtype)) if v is not None]  # fmt: skip
        if model is not None and saved["model"].get("type") != "custom":
            clash.insert(0, "model")
        if seed != 0 and seed != saved["seed"]:
            clash.append("seed")
        if preset is not None and preset != saved.get("preset"):
            clash.append("preset")
        if unknowns is not None and dict(unknowns) != given_starts:
            clash.append("unknowns")
        unknowns = given_starts or None
        if clash:
            raise ValueError(
                f"resume={str(resume)!r}: {', '.join(clash)} cannot be given with resume (the "
                "run continues with its own settings)"
            )
        given, model, schedule = model, saved["model"], saved["schedule"]
        if model.get("type") == "custom":
            # a module of the user's own cannot be rebuilt from the checkpoint: it is given again
            name = str(model.get("class", "")).rsplit(".", 1)[-1]
            if not isinstance(given, nn.Module) or type(given).__qualname__ != name:
                raise ValueError(
                    f"resume={str(resume)!r}: the run trains a module of the user's own "
                    f"({model.get('class')}); pass a fresh one as model= to resume it"
                )
            model = given
        points, weights, seed = saved["points"], saved["weights"], saved["seed"]
        dtype, carry_moments = saved["dtype"], saved["carry_moments"]
        # "auto" continues on the run's device; torchrun's per-rank device or an explicit one
        # (a GPU run continued on a CPU) moves it.
        device = saved["device"] if str(device) == "auto" else device
        ranks = saved.get("world_size")  # None: a run from before it was recorded
        if ranks not in (None, distributed.world()) and distributed.rank() == 0:
            warn(
                f"resume={str(resume)!r}: the run trained on {ranks} process(es) and goes on "
                f"on {distributed.world()}: the sums over points are split otherwise, so it "
                "will not end bit for bit as it would have uninterrupted"
                + (f" (torchrun --nproc-per-node {ranks} continues it alike)" if ranks > 1 else "")
            )
        # The run's own logging and checkpoint intervals: other values would change its
        # history, so the resumed run would not reproduce the uninterrupted one.
        if log_every is None:
            log_every = saved.get("log_every") or _logged_interval(state["history"])
        if checkpoint_every is None:
            checkpoint_every = saved.get("checkpoint_every", 100)
        preset = saved.get("preset", preset)
        if max_seconds is None:
            max_seconds = saved.get("max_seconds")
        if time_shares is None:
            time_shares = saved.get("time_shares")
        out = out or resume
        # Temporary files of writes cut short by a kill: the renamed files are intact.
        for stale in Path(out).glob(".*.h5.*.tmp"):
            stale.unlink(missing_ok=True)
    else:
        held = [
            f
            for f in ("result.h5", "checkpoint.h5")
            if out is not None and (Path(out) / f).exists()
        ]
        if held and not overwrite:
            hint = f" (resume={str(out)!r} continues it)" if "checkpoint.h5" in held else ""
            raise ValueError(
                f"solve(out={str(out)!r}): the directory already holds a run ({held[0]}); "
                f"choose another directory or pass overwrite=True{hint}"
            )
        # Overrides get the checks a problem file's own points and weights get.
        try:
            if points is not None:
                check_points(points)
                # a whole budget (compare's) repeats the problem's own default initial count
                if points.get("initial") != problem.points.get("initial"):
                    check_initial(points, problem.domain)
            if weights is not None:
                check_weights(weights, [c.name for c in problem.conditions])
        except ValueError as e:
            raise ValueError(f"solve(): {e}") from None
    if unknowns:
        problem = dataclasses.replace(problem, unknowns={**problem.unknowns, **unknowns})
    log_every = LOG_EVERY if log_every is None else int(log_every)
    checkpoint_every = CHECKPOINT_EVERY if checkpoint_every is None else int(checkpoint_every)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype or problem.dtype)
    defaults = apply_preset(problem, preset)
    try:
        stages = parse_schedule(schedule if schedule is not None else defaults["schedule"])
    except ScheduleError as e:  # the problem's own schedule was checked when it was loaded
        raise ScheduleError(f"solve(schedule=...): {e}") from None
    pts = {**defaults["points"], **(points or {})}
    # whole floats (interior=1e4) as the integers they are checked to be
    pts = {k: int(v) if isinstance(v, float) else v for k, v in pts.items()}
    if state is None:  # a resumed run keeps the settings it ran with
        try:
            check_resampling(pts)
        except ValueError as e:
            raise ValueError(f"solve(): {e}") from None
    w = merge_weights(defaults["weights"], weights or {})
    torch.manual_seed(seed)
    if isinstance(model, nn.Module):
        net = model.to(device=dev, dtype=dt)
        _check_module(net, problem, dt, dev)
    elif state is not None:
        net = from_config(model, dtype=dt, device=dev)
    else:
        cfg = preset_model_config(problem, preset, model)
        first = stages[0].grid
        if first is not None and cfg.get("type", problem.model.get("type", "kan")) == "kan":
            given = dict(model or {}).get("grid")
            if given is not None and given != first:
                # the first stage would extend (or coarsen) it to its own grid at once
                raise ValueError(
                    f"solve(): model grid {given} conflicts with the schedule, which starts at "
                    f"grid {first}; set the grids in the schedule"
                )
            cfg.setdefault("grid", first)
        net = build_model(problem, cfg, dt, dev)
    residuals = Residuals(problem, net, pts, w, dt, dev, seed, compile=compile)
    residuals.penalty = penalty
    sparse = [i for i, st in enumerate(stages) if st.sparsity > 0]
    if sparse and penalty is None and not isinstance(net, KAN):
        # the default penalty is the KAN paper's, of a KAN's own edges
        raise ValueError(
            f"schedule: stage {sparse[0]} sets sparsity, the KAN paper's penalty on a KAN's "
            f"edges, but the model is {'an MLP' if isinstance(net, MLP) else type(net).__name__}"
            " (pass penalty= for a model of your own)"
        )
    _warn_flat_splines(net, residuals.pde.highest, problem.source or problem.name)
    _warn_unnested_extension(net, stages, problem.source or problem.name)
    _warn_coarsening(net, stages, problem.source or problem.name)
    if not any(st.steps for st in stages):  # legal (stages may only extend grids), rarely meant
        warn(
            f"{problem.source or problem.name}: the schedule has no optimizer steps; the result "
            "is the untrained network"
        )
    _warn_undetermined(problem)
    # kanpde's own KANs span the domain; a first stage that updates the grids fixes the rest
    _warn_inputs_outside_grid(
        net,
        residuals.all_points(),
        problem.source or problem.name,
        # (a resume's network is the fresh one here, its state loaded later, and its
        # schedule cannot be changed)
        hidden=state is None and not (stages and stages[0].update_grid),
        first=isinstance(model, nn.Module),
    )
    test = test_set(problem, pts.get("test"), dt, dev)
    out = Path(out) if out is not None else None
    trainer = Trainer(
        residuals,
        stages,
        test,
        log_every,
        progress,
        carry_moments,
        callback,
        graphs=graphs,
        checkpoint=out / "checkpoint.h5" if out is not None else None,
        checkpoint_every=checkpoint_every,
        max_seconds=max_seconds,
        time_shares=time_shares,
    )
    config = {
        "problem": problem.name,
        "problem_hash": file_hash(problem.source),
        "model": model_config(net),
        "schedule": [s.to_dict() for s in stages],
        "points": pts,
        "weights": w,
        "seed": seed,
        "device": str(dev),
        "dtype": str(dt).replace("torch.", ""),
        "parameters": count_parameters(net),
        "carry_moments": carry_moments,
        "compile": compile,
        "preset": preset,
        "log_every": log_every,
        "checkpoint_every": checkpoint_every,
        "max_seconds": max_seconds,
        "time_shares": trainer.time_shares,
        "world_size": distributed.world(),  # the split of the sums, for a resume to compare
    }
    if problem.unknowns:  # their starting values
        config["unknowns"] = dict(problem.unknowns)
    if unknowns:  # those given to solve, which a resume applies again
        config["unknowns_given"] = dict(unknowns)
    if observed:  # the observations, which the file's hash may not fix
        config["data_hash"] = observed
    trainer.config = config
    if state is not None:
        trainer.load_state_dict(state)
    started = trainer.started = time.time()

    def result() -> Run:
        # The model as trained: grid extension changes the grid and the parameter count. A
        # copy: trainer.config is what a checkpoint saved after this (a stop while the results
        # are assembled or written) resumes from, with the schedule's starting grid.
        final = {**config, "model": model_config(net), "parameters": count_parameters(net),
                 "world_size": distributed.world()}  # fmt: skip
        return Run.from_trainer(trainer, problem=problem, config=final, started=started)

    def finish() -> Run:
        run = result()
        if out is not None and distributed.rank() == 0:
            with signals_held():  # a stop waits for the file: then the run is done
                save_run(run, out)
        return run

    if out is not None and distributed.rank() == 0 and (overwrite or state is not None):
        # Only now that the call has been checked and set up: the old run's files (and what
        # kanpde derived from it) go before the new run writes anything. A resumed run's
        # results so far (written when training stopped) no longer describe it.
        gone = ("result.h5", "symbolic.h5", "formula.txt")
        for f in gone + (("checkpoint.h5",) if state is None else ()):
            (out / f).unlink(missing_ok=True)
    distributed.barrier()

    def stop(whole: bool, finished: bool = False, signum: int = signal.SIGINT) -> Interrupted:
        # Only a state between steps is saved: one caught mid-step (a second Ctrl-C) would
        # resume to another result, or not at all mid-extension.
        if finished and out is not None and (out / "result.h5").is_file():
            # written by this call (an older one was refused or removed above), and complete
            # (written atomically): the checkpoint is of no more use
            (out / "checkpoint.h5").unlink(missing_ok=True)
            return Interrupted(None, False, True, result=out / "result.h5", signum=signum)
        saved = False
        if whole and out is not None:
            try:
                with signals_held(deliver=False):  # stopping already: the write goes first
                    trainer.save_checkpoint()
                saved = True
            except ResultsError as e:
                warn(f"{e}; the previous checkpoint (if any) is kept")
        kept = trainer.checkpoint_path
        kept = kept if kept is not None and kept.exists() else None
        run = None
        if whole:  # the run so far, in memory (a notebook's run without out has no other)
            try:
                with signals_held(deliver=False):
                    run = result()
            except Exception as e:  # noqa: BLE001 - the stop is the news, not this
                warn(f"the run so far could not be assembled ({_one_line(e)}); stopping")
        return Interrupted(kept, saved, finished, signum=signum, run=run)

    try:
        trainer.run()
    except TrainingStopped as e:
        # marked, so that a resumed study trains the run again instead of taking its results
        trainer.history.events.append(
            {"step": trainer.step, "event": "stopped", "why": str(e), "nonfinite": e.nonfinite}
        )
        with signals_held(deliver=False):  # the error is the news; a stop waits for the file
            e.run = finish()
        raise
    except KeyboardInterrupt as e:
        raise stop(trainer.stopped_cleanly, signum=signal_of(e)) from None
    try:
        run = finish()
    except KeyboardInterrupt as e:  # training is over, so its state is whole
        raise stop(True, finished=True, signum=signal_of(e)) from None
    except ResultsError as e:
        if out is None or distributed.rank() != 0:
            raise
        try:  # the trained state, for a later try at writing the results
            with signals_held(deliver=False):
                trainer.save_checkpoint()
        except ResultsError:
            raise e from None
        file = shlex.quote(str(problem.source)) if problem.source else "PROBLEM"
        raise ResultsError(
            f"{e}; the trained model is in {trainer.checkpoint_path}: kanpde solve {file} "
            f"--resume {out} writes the results without training again"
        ) from e
    if out is not None and distributed.rank() == 0:
        (out / "checkpoint.h5").unlink(missing_ok=True)
    distributed.barrier()
    return run
