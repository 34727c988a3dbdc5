"""KAN-versus-MLP studies and grid-scaling sweeps.

:func:`compare` trains several models on one problem with identical collocation points,
identical test set and an identical budget (optimizer steps, or wall-clock seconds), over
several seeds, and tabulates parameters, errors and time. :func:`sweep` measures test error
against the grid size ``G`` — from one grid-extension run and from separately trained runs —
and fits the convergence slope (spline theory for degree k: RMSE ∝ G^-(k+1), G⁻⁴ for cubics).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import json
import math
import numbers
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cli import CLIError, _discard, new_run_directory, parse_width
from .schedule import Stage, parse_schedule

if TYPE_CHECKING:
    from .problem import Problem
    from .results import Run

__all__ = [
    "Comparison",
    "Sweep",
    "compare",
    "fitted_slope",
    "mlp_schedule",
    "solve_timed",
    "stage_seconds",
    "sweep",
]

COLUMNS = [
    "model", "width", "grid", "params", "seed", "mse", "rel_l2", "max_err", "train_time",
    "steps", "evals", "steps_per_s", "loss", "nonfinite", "stopped",
]  # fmt: skip
# columns that studies written before they existed lack
_LATER_COLUMNS = ("loss", "nonfinite", "stopped")


def mlp_schedule(total_steps: int, adam_fraction: float = 0.25, lr: float = 1e-3) -> list[Stage]:
    """The MLP recipe: Adam, then L-BFGS, over ``total_steps`` optimizer steps.

    Parameters
    ----------
    total_steps : int
        Steps of both stages together.
    adam_fraction : float
        Share of the steps given to Adam (rounded; default a quarter); L-BFGS takes the rest.
    lr : float
        Adam's learning rate.

    Returns
    -------
    list of Stage
        The Adam stage (left out when it rounds to no steps) and the L-BFGS stage.
    """
    n_adam = int(round(total_steps * adam_fraction))
    stages = [Stage("adam", n_adam, lr=lr)] if n_adam else []
    return stages + [Stage("lbfgs", total_steps - n_adam)]


def _matching_width(params: int, n_in: int, n_out: int) -> int:
    """Width ``h`` of an MLP ``[n_in, h, h, n_out]`` with about ``params`` parameters.

    Its count is ``(n_in + 1) h + (h + 1) h + (h + 1) n_out = h² + (n_in + 2 + n_out) h + n_out``.
    """
    b = n_in + 2 + n_out
    return max(2, round((-b + math.sqrt(b * b + 4 * (params - n_out))) / 2))


def _label(kind: str, width) -> str:
    return f"{kind.upper()} [{','.join(str(w) for w in width)}]"


def _run_name(label: str, width: str, seed) -> str:
    """A study's run directory under ``runs/``: ``kan-2-10-1-s0`` for ``KAN [2,10,1]``, seed 0
    (where :func:`compare` writes it and :meth:`Comparison.load` finds it)."""
    return f"{label.split()[0].lower()}-{width}-s{seed}"


@dataclass
class Comparison:
    """Rows (one per model and seed) and the shared setup of a :func:`compare` study.

    Attributes
    ----------
    problem : str
        The problem's name.
    rows : list of dict
        One per run, with the columns of ``comparison.csv`` (``kanpde.compare.COLUMNS``).
    setup : dict
        What every run shared: points, test set, budget, schedules, device, dtype.
    runs : dict
        ``(label, seed) -> Run`` of each run, where it was kept.
    figures : list of Path
        ``comparison.png`` and ``curves.png``, when the study was written to a directory.
    """

    problem: str
    rows: list[dict]
    setup: dict
    runs: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path, runs: bool = True) -> Comparison:
        """A saved study: ``comparison.h5`` or the directory holding it (``kanpde compare
        --out``). Rows and setup come from the file; with ``runs``, ``runs`` holds each run's
        results (:func:`kanpde.load`) where its directory under ``runs/`` is still there."""
        import h5py

        from .results import ResultsError, load

        path = Path(path)
        if path.is_dir():
            path = path / "comparison.h5"
        if not path.is_file():
            raise ResultsError(f"{path}: comparison file not found")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != "kanpde-comparison":
                    raise ResultsError(f"{path}: not a kanpde comparison file")
                problem = str(f.attrs["problem"])
                setup = json.loads(f.attrs["setup"])
                g = f["rows"]
                columns = {
                    k: [v.decode() if isinstance(v, bytes) else v.item() for v in g[k][()]]
                    for k in json.loads(g.attrs.get("columns", json.dumps(COLUMNS)))
                    if k in g
                }
        except OSError as e:
            raise ResultsError(f"{path}: not a readable HDF5 file ({e})") from None
        n = len(next(iter(columns.values()), []))
        rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
        loaded = {}
        for r in rows if runs else []:
            run_dir = path.parent / "runs" / _run_name(str(r["model"]), r["width"], r["seed"])
            if (run_dir / "result.h5").is_file():
                loaded[(r["model"], r["seed"])] = load(run_dir)
        return cls(problem, rows, setup, loaded)

    def summary(self) -> list[dict]:
        """Median and min–max over seeds, per model (for a system also ``rel_l2_outputs``,
        each output's median relative L2 by name; for an inverse problem ``unknowns``, each
        unknown's median trained value, and ``unknowns_min`` / ``unknowns_max``), with the
        number of ``seeds``, of those ``stopped`` on non-finite losses and of those that
        ``recovered`` from them by rolling back, and under a step budget the steps of the runs
        that ended ``short`` of it."""
        out = []
        for label in dict.fromkeys(r["model"] for r in self.rows):
            rs = [r for r in self.rows if r["model"] == label]
            entry = {"model": label, "params": rs[0]["params"], "seeds": len(rs)}
            # seeds that stopped on non-finite losses, and those that recovered from them
            stopped = [_count(r.get("stopped")) > 0 for r in rs]
            entry["stopped"] = sum(stopped)
            entry["recovered"] = sum(
                _count(r.get("nonfinite")) > 0 and not s for r, s in zip(rs, stopped)
            )
            # a step budget's runs that ended before it (an L-BFGS stage that converged gives
            # its remaining steps to no other): time and steps/s then compare unequal runs
            planned = self.setup.get("steps") if self.setup.get("budget") == "steps" else None
            if planned:
                entry["short"] = [int(r["steps"]) for r, s in zip(rs, stopped)
                                  if not s and int(r.get("steps", planned)) < planned]  # fmt: skip
            for key in ("mse", "rel_l2", "max_err", "train_time", "steps_per_s", "loss"):
                # ("loss" is missing from studies written before it was a column)
                v = np.array([r.get(key, math.nan) for r in rs], dtype=float)
                entry[key] = float(np.median(v))
                entry[key + "_min"], entry[key + "_max"] = float(v.min()), float(v.max())
            outputs = [k for k in rs[0] if k.startswith("rel_l2_")]  # a system's
            if outputs:
                entry["rel_l2_outputs"] = {
                    k[len("rel_l2_") :]: float(np.median([r[k] for r in rs])) for k in outputs
                }
            found = [k for k in rs[0] if k.startswith("param_")]  # an inverse problem's
            if found:
                values = {k[len("param_") :]: np.array([r[k] for r in rs], float) for k in found}
                entry["unknowns"] = {n: float(np.median(v)) for n, v in values.items()}
                entry["unknowns_min"] = {n: float(v.min()) for n, v in values.items()}
                entry["unknowns_max"] = {n: float(v.max()) for n, v in values.items()}
            out.append(entry)
        return out

    @property
    def tested(self) -> bool:
        """Whether the rows hold test errors (False for a problem without exact solution or
        reference, whose study compares final training losses)."""
        return any(math.isfinite(float(r.get("rel_l2", math.nan))) for r in self.rows)

    def markdown(self) -> str:
        """The summary as a markdown table (median [min–max] over seeds); without test errors,
        the final training loss takes their place."""
        tested = self.tested or not self.rows
        errors = ("mse", "rel_l2", "max_err") if tested else ("loss",)
        head = (
            "| model | params | test MSE | rel. L2 | max err | train time (s) | steps/s |\n"
            "|---|---:|---|---|---|---|---:|\n"
            if tested
            else "| model | params | final loss | train time (s) | steps/s |\n"
            "|---|---:|---|---|---:|\n"
        )
        lines = []
        summary = self.summary()
        names = list(summary[0].get("unknowns", {})) if summary else []
        if names:  # an inverse problem: each unknown's median over seeds
            top, rule = head.splitlines()
            head = (
                top + "".join(f" {n} |" for n in names) + "\n" + rule + "---|" * len(names) + "\n"
            )
        for e in summary:
            cells = [f"{e['model']}", f"{e['params']}"]
            for key, fmt in [(k, ".2e") for k in errors] + [("train_time", ".1f")]:
                lo, hi = e[key + "_min"], e[key + "_max"]
                cells.append(f"{e[key]:{fmt}} [{lo:{fmt}}–{hi:{fmt}}]")
                if key == "rel_l2" and "rel_l2_outputs" in e:  # each output's median
                    each = ", ".join(f"{o} {v:.1e}" for o, v in e["rel_l2_outputs"].items())
                    cells[-1] += f" ({each})"
            cells.append(f"{e['steps_per_s']:.1f}")
            cells += [
                f"{e['unknowns'][n]:.6g} [{e['unknowns_min'][n]:.6g}–{e['unknowns_max'][n]:.6g}]"
                for n in names
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return head + "\n".join(lines) + "\n" + _irregular(summary, self.setup)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``comparison.csv``, ``comparison.h5`` and ``comparison.md`` into ``out``."""
        import h5py

        from .results import write_atomic, write_h5_atomic
        from .signals import signals_held

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / "comparison.csv", "h5": out / "comparison.h5",
                 "md": out / "comparison.md"}  # fmt: skip

        # Atomic writes: the table is refreshed after every finished run of compare(), and a
        # Ctrl-C during a refresh must leave the previous table, not half a file.
        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                columns = _columns(self.rows)
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: r.get(k, "") for k in columns})

        def write_md(tmp: str) -> None:
            Path(tmp).write_text(self.markdown())

        def fill(f: h5py.File) -> None:
            f.attrs["format"] = "kanpde-comparison"
            f.attrs["problem"] = self.problem
            f.attrs["setup"] = json.dumps(self.setup)
            g = f.create_group("rows")
            columns = _columns(self.rows)
            g.attrs["columns"] = json.dumps(columns)  # their order
            for k in columns:
                v = [r.get(k, math.nan) for r in self.rows]
                text = bool(v) and isinstance(v[0], str)
                g.create_dataset(k, data=np.array(v, dtype="S") if text else np.array(v))
            for (label, seed), run in self.runs.items():
                h = f.create_group(f"history/{label} seed {seed}")
                for k in ("step", "loss", "mse", "rel_l2", "time"):
                    if k in run.history:
                        h.create_dataset(k, data=run.history[k])
                for k in run.history:  # an inverse problem's unknowns, step by step
                    if k.startswith("param_"):
                        h.create_dataset(k, data=run.history[k])

        with signals_held():  # a Ctrl-C between two of them left tables that disagreed
            write_atomic(paths["csv"], write_csv)
            write_atomic(paths["md"], write_md)
            write_h5_atomic(paths["h5"], fill)
        return paths


# A stage run against the clock may take this many times its nominal steps: its time share,
# not its step count, ends it.
_TIME_CAP = 1000


def _scaled(stages: list[Stage], factor: float) -> list[Stage]:
    """``stages`` with their step counts scaled by ``factor`` (grid-update windows too, and
    periods such that a stage updates about as often as before).

    The counts add up to the scaled total (largest remainders get the rounding), so
    ``--steps N`` runs N steps: a stage that would get none is given one, and the steps that
    costs are taken from the stages with the smallest remainders. Only an N below the number
    of stages with steps is exceeded (each keeps one).
    """
    exact = [s.steps * factor for s in stages]
    # a stage with steps keeps at least one; the rest of the total goes by largest remainders
    counts = [max(1, math.floor(e)) if s.steps else 0 for s, e in zip(stages, exact)]
    left = round(sum(exact)) - sum(counts)
    free = [i for i, e in enumerate(exact) if stages[i].steps and counts[i] == math.floor(e)]
    for i in sorted(free, key=lambda i: round(counts[i] - exact[i], 9))[: max(0, left)]:
        counts[i] += 1
    # stages raised to their one step overspent: take steps back one at a time where the
    # count then stays closest to its share
    while left < 0 and any(n > 1 for n in counts):
        i = min((i for i, n in enumerate(counts) if n > 1), key=lambda i: exact[i] - counts[i])
        counts[i] -= 1
        left += 1
    out = []
    for s, n in zip(stages, counts):
        until = min(n, round(s.update_until * factor))
        out.append(replace(s, steps=n, update_until=until, update_grid=_period(s, n, until)))
    return out


def _updates(steps: int, period: int, until: int) -> int:
    """Grid updates of a stage: one at its start, then every ``period`` steps up to ``until``
    (the trainer's rule)."""
    return 1 + min(until, steps - 1) // period if period else 0


def _period(stage: Stage, steps: int, until: int) -> int:
    """The grid-update period that gives a stage scaled to ``steps`` (updates up to
    ``until``) about as many updates as before: once stays once."""
    if not stage.update_grid:
        return 0
    old = _updates(stage.steps, stage.update_grid, stage.update_until)
    if old <= 1 or min(until, steps - 1) < 1:
        return steps + 1
    scaled = stage.update_grid * steps / stage.steps  # among equals, the proportional period
    return min(range(1, steps), key=lambda p: (abs(_updates(steps, p, until) - old),
                                              abs(p - scaled)))  # fmt: skip


def _width(value, flag: str) -> list[int]:
    """One layer-width list from ``"2,10,1"`` or a sequence of ints; ``flag`` names it in errors."""
    if isinstance(value, str):
        return parse_width(value, flag)
    text = ",".join(map(str, value))
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        raise CLIError(f"{flag} {text}: layer sizes must be integers")
    width = [int(v) for v in value]
    if len(width) < 2 or min(width) < 1:
        raise CLIError(f"{flag} {text}: needs at least two positive layer sizes")
    return width


def _final_grid(stages: list[Stage]) -> dict:
    """The model override that builds a KAN at the grid ``stages`` end on (``{}``: its own)."""
    grids = [s.grid for s in stages if s.grid is not None]
    return {"grid": grids[-1]} if grids else {}


@dataclass
class _Plan:
    """A validated :func:`compare` study: the models with their schedules, and the setup."""

    problem: object
    models: list[tuple[str, list[int], dict, list[Stage]]]  # kind, width, config, stages
    seeds: int
    budget: str
    seconds: float | None
    points: dict
    setup: dict
    log_every: int = 50


def _plan(
    problem,
    kans,
    mlps,
    seeds: int,
    budget: str,
    seconds: float | None,
    steps: int | None,
    device: str,
    dtype: str | None,
    activation: str,
    schedule=None,
    points=None,
    log_every: int = 50,
) -> _Plan:
    """Check every argument of :func:`compare` and lay out its runs (trains nothing).

    Raises :class:`~kanpde.cli.CLIError` (one line naming the argument) before anything is
    written, so that a bad argument leaves no run directory behind.
    """
    from .nn import ACTIVATIONS, count_parameters
    from .problem import file_hash
    from .training import build_model, resolve_device

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise CLIError(f"--seeds {seeds}: must be at least 1")
    if budget not in ("steps", "seconds"):
        raise CLIError(f"--budget {budget!r}: use steps or seconds")
    if budget == "seconds":
        if seconds is None:
            raise CLIError("--budget seconds: needs --seconds S, the training time per run")
        if not (math.isfinite(seconds) and seconds > 0):
            raise CLIError(f"--seconds {seconds}: must be a positive, finite number of seconds")
    elif seconds is not None:
        raise CLIError(f"--seconds {seconds}: only used with --budget seconds")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise CLIError(f"--steps {steps}: must be at least 1")
    if dtype not in (None, "float32", "float64"):
        raise CLIError(f"--dtype {dtype!r}: use float32 or float64")
    if activation not in ACTIVATIONS:
        raise CLIError(
            f"--activation {activation!r}: unknown MLP activation; choose one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise CLIError(f"--log-every {log_every}: must be an integer of at least 1")
    try:
        resolved = _device_setting(resolve_device(device))  # a resumed study must match it
    except ValueError as e:
        raise CLIError(f"--device {device!r}: {e}") from None

    kan_stages, points = _overrides(problem, schedule, points)
    if steps is not None:
        kan_stages = _scaled(kan_stages, steps / max(1, sum(s.steps for s in kan_stages)))
    total = sum(s.steps for s in kan_stages)
    if total == 0:
        given = (
            f"--schedule {schedule!r}"
            if schedule is not None
            else (f"{problem.source or problem.name}: the problem's schedule")
        )
        raise CLIError(f"{given}: no optimizer steps; the study would compare untrained networks")
    n_in, n_out = problem.domain_dim, len(problem.outputs)
    if kans is None:  # the problem's KAN, or the default KAN of an MLP problem
        own = problem.model.get("type", "kan") == "kan" and problem.model.get("width")
        kans = [list(own) if own else [n_in, 10, n_out]]
    else:
        kans = [_width(w, "--kan") for w in kans]
    explicit = None if mlps is None else [_width(w, "--mlp") for w in mlps]
    for flag, widths in (("--kan", kans), ("--mlp", explicit or [])):
        for w in widths:
            if w[0] != n_in or w[-1] != n_out:
                raise CLIError(
                    f"{flag} {','.join(map(str, w))}: does not fit {problem.name}, "
                    f"which needs {n_in} input(s) and {n_out} output(s)"
                )
    matched = []
    if explicit is None:
        # One MLP per KAN with about its parameters as trained: every run ends on the last
        # grid of the schedule (each timed stage is given a share of the time), and grid
        # extension multiplies a KAN's parameters.
        final = _final_grid(kan_stages)
        for w in kans:
            cfg = {"type": "kan", "width": w, **final}
            n = count_parameters(build_model(problem, cfg, device="cpu"))
            h = _matching_width(n, n_in, n_out)
            matched.append({"kan": w, "kan_params": n, **final, "mlp": [n_in, h, h, n_out]})
        explicit = [m["mlp"] for m in matched] + [[n_in, 100, 100, 100, n_out]]
    kans = list(dict.fromkeys(map(tuple, kans)))
    mlps = list(dict.fromkeys(map(tuple, explicit)))
    if not kans and not mlps:
        raise CLIError("--kan/--mlp: no models to compare")
    mlp_stages = mlp_schedule(total)
    # explicit types: an MLP problem's own model must not turn the KAN runs into MLPs
    models = [("kan", list(w), {"type": "kan", "width": list(w)}, kan_stages) for w in kans]
    models += [
        ("mlp", list(w), {"type": "mlp", "width": list(w), "activation": activation}, mlp_stages)
        for w in mlps
    ]
    points.setdefault("seed", 0)  # identical collocation points for every model and seed
    setup = {
        "problem_hash": file_hash(problem.source),
        "models": [cfg for _, _, cfg, _ in models],
        "budget": budget,
        "seconds": seconds,
        "steps": total,
        "points": points,
        "kan_schedule": [s.to_dict() for s in kan_stages],
        "mlp_schedule": [s.to_dict() for s in mlp_stages],
        "matched_mlps": matched,
        "seeds": seeds,
        "device": resolved,
        "dtype": dtype or problem.dtype,
        "log_every": log_every,  # it also ends L-BFGS calls, so it shapes the results
        "runs_planned": len(models) * seeds,
        "runs_finished": 0,
    }
    if budget == "seconds":
        setup["time_split"] = "stages share the time in proportion to their steps"
    _check_problem(problem)  # warns: after the arguments, whose errors come alone
    return _Plan(problem, models, seeds, budget, seconds, points, setup, log_every)


def _overrides(problem, schedule, points) -> tuple[list[Stage], dict]:
    """A study's KAN schedule and point budget: the problem's, or ``schedule`` (a schedule
    string or list of stages) and ``points`` (a dict or ``--points`` text, laid over the
    problem's) in their place; a bad one raises a :class:`~kanpde.cli.CLIError`."""
    from .cli import parse_points
    from .problem import check_initial, check_points, check_resampling
    from .schedule import ScheduleError

    try:
        stages = parse_schedule(problem.schedule if schedule is None else schedule)
    except ScheduleError as e:  # the problem's own schedule was checked when it was loaded
        raise CLIError(f"--schedule {schedule!r}: {e}") from None
    merged = dict(problem.points)
    if points is not None:
        given = parse_points(points) if isinstance(points, str) else points
        text = points if isinstance(points, str) else repr(points)
        try:
            check_points(given)
            merged.update(given)
            check_resampling(merged)
            check_initial(given, problem.domain)
        except ValueError as e:
            raise CLIError(f"--points {text}: {str(e).removeprefix('points: ')}") from None
    return stages, merged


def solve_timed(
    problem,
    model: dict,
    stages: list[Stage],
    seconds: float,
    out: str | Path | None = None,
    **kwargs,
):
    """Train through every stage of ``stages`` within ``seconds`` of training time.

    Each stage runs on its own clock: it gets the time still left multiplied by its share of
    the remaining steps, and may take up to ``1000×`` its nominal steps in it. Time a stage
    leaves unused (L-BFGS converged) passes to the later ones, and overrun is taken from them,
    so the run ends near ``seconds`` having reached the last stage (and a KAN its last grid).
    It is one training (see ``time_shares`` of :class:`~kanpde.training.Trainer`): Adam's
    moments carry across stages as in an untimed run, and an Adam ``decay`` spreads over the
    stage's time.

    Parameters
    ----------
    problem : Problem
        The problem.
    model : dict
        Model overrides for :func:`kanpde.solve`.
    stages : list of Stage
        The schedule; its step counts set only the split of the time.
    seconds : float
        Training-time budget of the whole run.
    out : path, optional
        Run directory for ``result.h5``.
    **kwargs
        Passed to :func:`kanpde.solve` (``points``, ``device``, ``dtype``, ``seed``,
        ``progress``, ``log_every``).

    Returns
    -------
    Run
        The run; its ``stage_clock`` events hold the time each stage was given.

    Notes
    -----
    The trainer checks its clock between steps and, for L-BFGS, between calls of up to
    ``log_every`` iterations (sized to the time left), so a stage can overrun its share by
    about one call.
    """
    from .training import solve

    return solve(
        problem, model=model, schedule=[replace(s, steps=s.steps * _TIME_CAP) for s in stages],
        max_seconds=seconds, time_shares=[s.steps for s in stages], out=out, checkpoint_every=0,
        **kwargs,
    )  # fmt: skip


def stage_seconds(run: Run) -> list[float]:
    """The time each stage of a :func:`solve_timed` run was given (from its events).

    Parameters
    ----------
    run : Run
        A run of :func:`solve_timed`.

    Returns
    -------
    list of float
        Seconds per stage, in order.
    """
    return [e["seconds"] for e in run.events if e.get("event") == "stage_clock"]


def _row(kind: str, width: list[int], seed: int, run) -> dict:
    m = run.metrics
    # (test errors are NaN for a problem without exact solution or reference)
    row = {
        "model": _label(kind, width), "width": "-".join(map(str, width)),
        "grid": int(run.history["grid"][-1]) if kind == "kan" else 0,
        "params": m["parameters"], "seed": seed, "mse": m.get("mse", math.nan),
        "rel_l2": m.get("rel_l2", math.nan), "max_err": m.get("max_err", math.nan),
        "train_time": m["train_time"], "steps": m["steps"], "evals": m["evals"],
        "steps_per_s": m["steps"] / max(m["train_time"], 1e-12), "loss": m["loss"],
        # a row that did not follow the recipe says so: non-finite losses rolled back (L-BFGS
        # may have given way to Adam), or training stopped on them before its budget
        "nonfinite": sum(e.get("event") == "nonfinite" for e in run.events),
        "stopped": int(_stopped_on_nonfinite(run)),
    }  # fmt: skip
    row.update({k: v for k, v in m.items() if k.startswith("rel_l2_")})  # a system's outputs
    row.update({k: v for k, v in m.items() if k.startswith("param_")})  # trained unknowns
    return row


def _stopped_on_nonfinite(run) -> bool:
    """Whether ``run`` stopped on repeated non-finite losses (not, say, out of memory)."""
    return any(e.get("event") == "stopped" and e.get("nonfinite") for e in run.events)


def _count(value) -> int:
    """A count column's value; 0 where a row of an older study has none (NaN or blank)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0
    return int(value) if math.isfinite(value) else 0


def _irregular(summary: list[dict], setup: dict | None = None) -> str:
    """Notes under a study's table on what its medians hide: a study stopped before all its
    runs finished (a model without a finished run has no row at all), models with fewer runs
    than others, runs that stopped on non-finite losses, and runs that recovered from them by
    rolling back."""
    notes = []
    setup = setup or {}
    planned, finished = setup.get("runs_planned"), setup.get("runs_finished")
    if planned is not None and finished is not None and finished < planned:
        shown = {e["model"] for e in summary}
        absent = [
            label
            for c in setup.get("models", [])
            if isinstance(c, dict) and (label := _label(c["type"], c["width"])) not in shown
        ]
        note = f"{finished} of {planned} planned runs finished (--resume continues the study)"
        if absent:
            note += f"; no finished run yet, so no row: {', '.join(absent)}"
        notes.append(note)
    counts = {e["seeds"] for e in summary}
    if len(counts) > 1:
        each = ", ".join(f"{e['model']} {e['seeds']}" for e in summary)
        notes.append(f"runs per model differ: {each}")
    for e in summary:
        n = e["seeds"]
        if e.get("stopped"):
            notes.append(
                f"{e['model']}: {e['stopped']} of {n} runs stopped on repeated non-finite "
                "losses before their budget (their errors are those of the last good state)"
            )
        if e.get("short"):
            notes.append(
                f"{e['model']}: {len(e['short'])} of {n} runs ended before the "
                f"{setup.get('steps')}-step budget, at {', '.join(map(str, e['short']))} steps "
                "(an L-BFGS stage converged; its remaining steps went unused)"
            )
        if e.get("recovered"):
            notes.append(
                f"{e['model']}: {e['recovered']} of {n} runs recovered from non-finite losses by "
                "rolling back (an L-BFGS stage may have gone on with Adam; see each run's events)"
            )
    return "".join(f"\n{note}\n" for note in notes)


def _columns(rows: list[dict]) -> list[str]:
    """:data:`COLUMNS` and after them the per-output ``rel_l2_<name>`` columns of systems and
    the ``param_<name>`` columns of an inverse problem's trained unknowns."""
    first = rows[0] if rows else {}
    extra = [k for k in first if k.startswith("rel_l2_")] + [
        k for k in first if k.startswith("param_")
    ]
    later = {c for c in _LATER_COLUMNS if any(c in r for r in rows)}  # (a resumed old study)
    return [c for c in COLUMNS if c not in _LATER_COLUMNS or c in later] + extra


def _execute(
    plan: _Plan,
    out: Path | None,
    device: str,
    dtype: str | None,
    progress: bool,
    resume: bool = False,
) -> Comparison:
    """Train every model and seed of ``plan``; refresh the saved table after each run.

    With ``resume``, the runs the study in ``out`` finished are taken as they are, and a run
    it left with a checkpoint continues from there.
    """
    with _study_lock(out if resume else None, "compare"):
        return _execute_runs(plan, out, device, dtype, progress, resume)


def _execute_runs(plan: _Plan, out, device, dtype, progress, resume) -> Comparison:
    """The work of :func:`_execute`, under the study's lock when resuming."""
    from .problem import warn
    from .training import TrainingStopped

    problem = plan.problem
    result = Comparison(problem.name, [], plan.setup, {})
    done = _finished_runs(plan, out) if resume else {}
    if out is not None and not resume:
        # An earlier study's runs in the same place would be taken for this one's on resume.
        for kind, width, _, _ in plan.models:
            for seed in range(plan.seeds):
                name = _run_name(_label(kind, width), "-".join(map(str, width)), seed)
                for f in ("result.h5", "checkpoint.h5"):
                    (out / "runs" / name / f).unlink(missing_ok=True)
        result.save(out)  # the setup first: a study stopped in its first run can be resumed
    for kind, width, cfg, stages in plan.models:
        for seed in range(plan.seeds):
            label, widths = _label(kind, width), "-".join(map(str, width))
            run_out = out / "runs" / _run_name(label, widths, seed) if out else None
            if (label, seed) in done:
                row, run = done[label, seed]
            else:
                try:
                    run = _train_one(
                        plan, cfg, stages, seed, run_out, device, dtype, progress, resume
                    )
                except TrainingStopped as e:  # one diverged run is a row, not the study's end
                    if e.run is None or not e.nonfinite:  # out of memory ends it, as before
                        raise
                    warn(f"{label} seed {seed}: {e}; its row is marked stopped, the study goes on")
                    run = e.run
                row = _row(kind, width, seed, run)
            result.rows.append(row)
            result.runs[(label, seed)] = run
            result.setup["runs_finished"] = len(result.rows)
            if out is not None:
                # After every run, not at the end: an interrupted study keeps what it finished.
                result.save(out)
    return result


def _train_one(plan: _Plan, cfg, stages, seed, run_out, device, dtype, progress, resume):
    """One run of the study: continued from its checkpoint when resuming, else from scratch."""
    from .training import solve

    if resume and (run_out / "result.h5").is_file():
        # finished (or stopped on non-finite losses, which makes a row marked stopped; its
        # checkpoint stays), but interrupted before the table took it in (a fresh study
        # removed older studies' runs, so this one is the study's own)
        from .results import load

        run = load(run_out)
        finished = not any(e.get("event") == "stopped" for e in run.events)
        if finished or _stopped_on_nonfinite(run):
            return run
    if resume and (run_out / "checkpoint.h5").is_file():
        return solve(plan.problem, resume=run_out, out=run_out, device=device, progress=progress)
    # overwrite: the study owns its runs/ (a study written again replaces its runs)
    common = dict(points=plan.points, device=device, dtype=dtype, seed=seed, progress=progress,
                  log_every=plan.log_every, overwrite=True)  # fmt: skip
    if plan.budget == "seconds":
        return solve_timed(plan.problem, cfg, stages, plan.seconds, out=run_out, **common)
    return solve(
        plan.problem, model=cfg, schedule=stages, out=run_out, checkpoint_every=0, **common
    )


def _check_same_problem(saved: Comparison, problem, out: Path) -> None:
    if saved.problem != problem.name:
        raise CLIError(
            f"--resume {out}: the study is of problem {saved.problem!r}, not {problem.name!r}"
        )


def _finished_runs(plan: _Plan, out: Path | None) -> dict:
    """The rows and runs of the study saved in ``out``, which must have ``plan``'s settings."""
    from .results import ResultsError

    if out is None:
        raise CLIError("resume: needs out, the directory of the study to continue")
    if any((out / f).is_file() for f in ("checkpoint.h5", "result.h5")):
        raise CLIError(
            f"--resume {out}: a single run, not a study; continue it with kanpde solve PROBLEM "
            "--resume"
        )
    if (out / "sweep.json").is_file() and not (out / "comparison.h5").exists():
        raise CLIError(
            f"--resume {out}: a grid sweep; continue it with kanpde sweep PROBLEM --resume"
        )
    try:
        saved = Comparison.load(out)
    except ResultsError as e:
        raise CLIError(f"--resume {out}: {e}") from None
    _check_same_problem(saved, plan.problem, out)
    # studies saved before log_every was a setting logged every 50 steps
    _same_settings(out, {"log_every": 50, **saved.setup}, plan.setup, ignore={"runs_finished"})
    return {
        (r["model"], r["seed"]): (r, saved.runs[r["model"], r["seed"]])
        for r in saved.rows
        if (r["model"], r["seed"]) in saved.runs
    }


def compare(
    problem: Problem | str | Path,
    kans: Sequence[Sequence[int] | str] | None = None,
    mlps: Sequence[Sequence[int] | str] | None = None,
    seeds: int = 3,
    budget: str = "steps",
    seconds: float | None = None,
    steps: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    activation: str = "tanh",
    resume: bool = False,
    schedule: str | Sequence[Stage | dict] | None = None,
    points: dict | str | None = None,
    log_every: int = 50,
    preset: str | None = None,
) -> Comparison:
    """Train KANs and MLPs on the same points, test set and budget; return the table.

    Parameters
    ----------
    problem : Problem or str
        The problem (its point budget, test set and KAN schedule are used).
    kans, mlps : list of widths
        Models to train (lists of ints, or strings like ``"2,10,1"``); default: the problem's
        KAN, and for each KAN an MLP ``[n_in, h, h, n_out]`` with about as many parameters as
        that KAN at the schedule's final grid, plus a 4-layer width-100 MLP.
    seeds : int
        Seeds per model (initialisation only: the points are the same for all).
    budget : {"steps", "seconds"}
        Equal optimizer steps (the KAN schedule's total; MLPs use Adam for a quarter of them,
        then L-BFGS), or equal training time ``seconds`` per run, split over each model's
        stages in proportion to their steps (see :func:`solve_timed`).
    seconds : float, optional
        Training time per run; only with ``budget="seconds"``.
    steps : int, optional
        Override the step budget (the KAN schedule is scaled to it).
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when there is one).
    dtype : {"float32", "float64"}, optional
        Floating-point type of every run; default the problem's.
    out : path, optional
        Directory for ``comparison.{csv,h5,md}`` (rewritten after every finished run), the
        runs (``runs/``) and the figures.
    progress : bool
        Show a progress bar per run.
    activation : str
        Activation of the MLPs (``tanh``, ``sin``, ``silu``, ``softplus``, ``gelu``).
    resume : bool
        Continue the study saved in ``out`` (same problem file and arguments): its finished
        runs are kept, a run it left with a checkpoint continues, the others train.
    schedule : str or list of stages, optional
        The KAN schedule in place of the problem's (as ``kanpde solve --schedule`` takes it);
        ``steps`` scales it, and the MLPs get as many steps.
    points : dict or str, optional
        Point counts laid over the problem's (``{"interior": 4000}`` or
        ``"interior=4000"``); every run trains on the same points.
    log_every : int
        Steps between history rows (the curves figure); it also ends each L-BFGS call, so a
        resumed study needs the value it was started with.
    preset : str, optional
        One of the problem's presets: its model, schedule, points and weights replace the
        problem's defaults (as ``kanpde solve --preset``) before the other arguments apply.

    Returns
    -------
    Comparison
        One row per run (model and seed), with the setup; ``.markdown()`` is the printed table.

    Raises
    ------
    CLIError
        A bad argument, before anything is trained or written: a ``ValueError`` whose one
        line names the argument (``compare: seeds 0: must be at least 1``).
    """
    from .problem import load_problem

    _one_process("compare")
    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    with _argument_names("compare"):
        problem = _with_preset(problem, preset)
        plan = _plan(problem, kans, mlps, seeds, budget, seconds, steps, device, dtype,
                     activation, schedule, points, log_every)  # fmt: skip
    if preset is not None:  # (absent otherwise, as in studies saved before presets)
        plan.setup["preset"] = preset
    out = Path(out) if out is not None else None
    with _argument_names("compare"):
        result = _execute(plan, out, device, dtype, progress, resume=resume)
    if out is not None:
        result.figures = _figures(result, out)
    return result


@dataclass
class Sweep:
    """Test error against grid size, from one extension run and from separate runs.

    Attributes
    ----------
    problem : str
        The problem's name.
    grids : list of int
        The grid sizes G.
    extension : list of float
        RMSE at the end of each grid stage of the extension run.
    separate : list of float
        RMSE of the run trained from scratch at each G.
    slope_extension, slope_separate : float
        Least-squares slopes of log RMSE against log G (:func:`fitted_slope`).
    run : Run or None
        The extension run (its history shows the staircase).
    figures : list of Path
        ``sweep.png``, when the sweep was written to a directory.
    stalled : list
        Per G, ``(steps, planned)`` where the separate run's L-BFGS stopped short (a stalled
        line search, whose RMSE is no scaling point), else ``None``.
    theory : float or None
        The approximation theory's slope for the KAN's edges, ``-(k + 1)`` for B-splines of
        degree ``k``; ``None`` for bases without an algebraic rate (Chebyshev, rbf, rswaf).
    basis : str
        The edges' basis.
    unknowns : dict
        An inverse problem's trained unknowns at each G:
        ``{name: {"extension": [...], "separate": [...]}}``.
    """

    problem: str
    grids: list[int]
    extension: list[float]
    separate: list[float]
    slope_extension: float
    slope_separate: float
    run: object = None
    figures: list = field(default_factory=list)
    stalled: list = field(default_factory=list)
    theory: float | None = -4.0
    basis: str = "bspline"
    unknowns: dict = field(default_factory=dict)

    def markdown(self) -> str:
        head = "| G | RMSE (grid extension) | RMSE (trained at G) |"
        rule = "|---:|---|---|"
        for name in self.unknowns:
            head += f" {name} (extension) | {name} (trained at G) |"
            rule += "---|---|"
        lines = [head, rule]
        stalled = list(self.stalled) + [None] * (len(self.grids) - len(self.stalled))
        for i, (g, a, b, short) in enumerate(zip(self.grids, self.extension, self.separate,
                                                 stalled)):  # fmt: skip
            note = f" (L-BFGS stopped at step {short[0]} of {short[1]})" if short else ""
            found = "".join(
                f" {v['extension'][i]:.6g} | {v['separate'][i]:.6g} |"
                for v in self.unknowns.values()
            )
            lines.append(f"| {g} | {a:.3e} | {b:.3e}{note} |{found}")
        left_out = " without the runs that stopped short" if any(stalled) else ""
        if self.theory is not None:
            theory = f"degree-{-self.theory - 1:g} spline theory: {self.theory:g}"
        else:
            theory = f"no algebraic theory slope for {self.basis} edges"
        lines.append(
            f"\nfitted slope of log RMSE vs log G: {self.slope_extension:.2f} (extension), "
            f"{self.slope_separate:.2f} (separate{left_out}); {theory}"
        )
        return "\n".join(lines) + "\n"


def fitted_slope(grids: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of ``log(error)`` against ``log(G)``.

    Parameters
    ----------
    grids : sequence of float
        The grid sizes.
    errors : sequence of float
        The errors at them (positive).

    Returns
    -------
    float
    """
    g, e = np.log(np.asarray(grids, float)), np.log(np.asarray(errors, float))
    return float(np.polyfit(g, e, 1)[0])


def _with_preset(problem, preset: str | None):
    """``problem`` with the model, schedule, points and weights of its preset ``preset``."""
    from .problem import ProblemError, apply_preset

    if preset is None:
        return problem
    try:
        settings = apply_preset(problem, preset)
    except ProblemError as e:  # an unknown name: the message lists the file's presets
        raise CLIError(f"--preset: {e}") from None
    return replace(problem, **settings)


def _check_problem(problem, kan: bool = False) -> None:
    """A sweep needs a test solution to measure errors against, and a KAN; a comparison
    without one compares final training losses (warned about)."""
    from .problem import warn

    where = problem.source or f"problem {problem.name!r}"
    if problem.exact is None and problem.reference is None:
        if kan:
            raise CLIError(
                f"{where}: no exact solution or reference to measure test errors against; "
                "sweep needs one"
            )
        warn(
            f"{where}: no exact solution or reference, so the study compares the final "
            "training losses (and the unknowns found), not test errors"
        )
    if kan and problem.model.get("type", "kan") != "kan":
        raise CLIError(f"{where}: sweep studies a KAN's grid size, but the problem's model is "
                       f"{problem.model.get('type')!r}")  # fmt: skip


# The checks are shared with the command line and name its options; a Python caller gets
# the names of the arguments it passed instead.
_ARGUMENTS = {
    "--kan": "kans", "--mlp": "mlps", "--seeds": "seeds", "--seed": "seed", "--budget": "budget",
    "--seconds": "seconds", "--steps": "steps", "--dtype": "dtype", "--log-every": "log_every",
    "--device": "device", "--schedule": "schedule", "--points": "points", "--preset": "preset",
    "--grids": "grids", "--activation": "activation", "--resume": "resume=True, out",
    "--out": "out",
}  # fmt: skip


_COMMAND_LINE = contextvars.ContextVar("kanpde_study_from_command_line", default=False)


@contextlib.contextmanager
def _argument_names(function: str):
    """Re-raise a :class:`CLIError` of the shared checks in ``function``'s argument names
    (unless the command line, whose options they are, made the call)."""
    try:
        yield
    except CLIError as e:
        if _COMMAND_LINE.get():
            raise
        raise CLIError(_in_argument_names(function, str(e))) from None


def _in_argument_names(function: str, text: str) -> str:
    """A message naming command-line options, as ``function``'s Python call says it."""
    import re

    # the command a message advises, as the Python call that does the same
    for command, call in _CALLS.items():
        text = text.replace(command, call)
    # an option stands at the start, after a space or an opening bracket: "--out" inside
    # a directory's name ("runs--out/x") is left as it is
    option = re.compile(r"(?<![^\s(\[])--[a-z][a-z-]*")
    return f"{function}: " + option.sub(lambda m: _ARGUMENTS.get(m[0], m[0]), text)


_CALLS = {
    "kanpde solve PROBLEM --resume": "kanpde.solve(problem, resume=out)",
    "kanpde compare PROBLEM --resume": "kanpde.compare.compare(problem, resume=True, out=...)",
    "kanpde sweep PROBLEM --resume": "kanpde.compare.sweep(problem, resume=True, out=...)",
}


def _one_process(study: str) -> None:
    """Refuse a study under torchrun: every rank would train all its runs (into one directory,
    whose lock the sibling ranks then hold)."""
    from . import distributed

    if distributed.launched():
        raise CLIError(
            f"{study}: a study runs in one process; under torchrun only solve trains "
            "data-parallel (start the study without torchrun)"
        )


def _check_sweep(grids, steps) -> list[int]:
    """Grid sizes and steps of a :func:`sweep`, checked; the grid sizes as a list of ints."""
    try:  # grids=5 (not a list) is named as given
        text = grids if isinstance(grids, str) else ",".join(map(str, grids))
    except TypeError:
        text = str(grids)
    try:
        values = [int(g) for g in (grids.split(",") if isinstance(grids, str) else grids)]
    except (TypeError, ValueError):
        raise CLIError(f"--grids {text!r}: expected integers like 3,5,10,20") from None
    if len(values) < 2:
        raise CLIError(f"--grids {text}: need at least two grid sizes to fit a slope")
    if min(values) < 1 or any(b <= a for a, b in zip(values, values[1:])):
        raise CLIError(f"--grids {text}: need strictly increasing positive grid sizes")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise CLIError(f"--steps {steps}: must be at least 1 (L-BFGS steps per grid)")
    return values


def sweep(
    problem: Problem | str | Path,
    grids: Sequence[int] = (3, 5, 10, 20, 50, 100),
    steps: int = 200,
    device: str = "auto",
    dtype: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
    resume: bool = False,
    points: dict | str | None = None,
    preset: str | None = None,
) -> Sweep:
    """The KAN paper's grid-scaling study on ``problem`` with ``steps`` L-BFGS steps per grid.

    One run extends the grid through ``grids``, ``steps`` at each; a separate run per grid
    trains from scratch at that grid with the budget the extension run had spent by the end
    of it (``i · steps`` for the i-th grid, counting from 1), so that both reach a grid after
    as many steps.

    Parameters
    ----------
    problem : Problem, str or Path
        The problem (or its file); its model must be a KAN.
    grids : sequence of int
        At least two strictly increasing grid sizes.
    steps : int
        L-BFGS steps per grid.
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when there is one).
    dtype : {"float32", "float64"}, optional
        Floating-point type of every run; default the problem's.
    seed : int
        Seed of the points and of the initialisation (0 … 2**32 - 1).
    out : str or Path, optional
        Directory: each run is saved as it finishes (``extension.h5``,
        ``separate/grid-G.h5``) beside ``sweep.json`` (the settings), then ``sweep.csv``,
        ``sweep.md`` and ``sweep.png``. A run in progress keeps a checkpoint (every 100
        steps and on a stop) in ``checkpoints/extension`` or
        ``checkpoints/separate-grid-G``, which ``resume`` continues.
    progress : bool
        Show a progress bar per run.
    resume : bool
        Continue the study saved in ``out``, keeping its finished runs (and continuing an
        unfinished one from its checkpoint).
    points : dict or str, optional
        Point counts laid over the problem's for every run (``{"interior": 4000}`` or
        ``"interior=4000"``).
    preset : str, optional
        One of the problem's presets, whose model, points and weights replace the problem's
        (``points`` is laid over them).

    Returns
    -------
    Sweep

    Raises
    ------
    CLIError
        A ``ValueError`` naming the argument, before anything is written: fewer than two grid
        sizes, sizes not strictly increasing, ``steps < 1``, a seed outside 0 … 2**32 - 1, or
        a study to resume with other settings.
    """
    from .problem import file_hash, load_problem
    from .training import MAX_SEED, resolve_device

    _one_process("sweep")
    with _argument_names("sweep"):
        grids = _check_sweep(grids, steps)
        # before any directory is made (a bad seed failed in the first run's solve)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise CLIError(f"--seed {seed!r}: must be an integer from 0 to {MAX_SEED}")
        if not 0 <= seed <= MAX_SEED:
            raise CLIError(f"--seed {seed}: must be an integer from 0 to {MAX_SEED}")
        try:
            resolved = _device_setting(resolve_device(device))
        except ValueError as e:
            raise CLIError(f"--device {device!r}: {e}") from None
    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    with _argument_names("sweep"):
        problem = _with_preset(problem, preset)
        _check_problem(problem, kan=True)
        if points is not None:
            points = {k: v for k, v in _overrides(problem, None, points)[1].items()
                      if k not in problem.points or problem.points[k] != v}  # fmt: skip
    out = Path(out) if out is not None else None
    setup = {"problem": problem.name, "problem_hash": file_hash(problem.source),
             "grids": grids, "steps": steps, "points": points or None,
             "seed": seed, "device": resolved, "dtype": dtype or problem.dtype}  # fmt: skip
    if preset is not None:  # (absent otherwise, as in sweeps saved before presets)
        setup["preset"] = preset
    if resume:
        with _argument_names("sweep"):
            _check_saved_sweep(out, setup)
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
    # held by a new sweep too: its runs are not locked one by one (they are not saved as run
    # directories), so only this stops a second process training them at the same time
    with _study_lock(out, "sweep", running=not resume):
        if out is not None and not resume:
            # an earlier sweep's runs here would be taken for this one's on resume
            (out / "extension.h5").unlink(missing_ok=True)
            for old in (out / "separate").glob("grid-*.h5"):
                old.unlink()
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            (out / "sweep.json").write_text(json.dumps(setup) + "\n")
        return _sweep_runs(problem, grids, steps, device, dtype, seed, out, progress, resume,
                           points)  # fmt: skip


def _sweep_runs(problem, grids, steps, device, dtype, seed, out, progress, resume,
                points=None) -> Sweep:  # fmt: skip
    """The runs of :func:`sweep` (read back when a resumed study has them) and its result."""
    from .results import load, write_atomic
    from .signals import signals_held
    from .training import Interrupted, solve

    def run(name: str, schedule: list[Stage]):
        """A run of the study: read back when a resumed study has it, continued from its
        checkpoint when it has one, else trained. It trains in a run directory of its own
        under ``checkpoints/`` (checkpointed as :func:`solve` does by default, every 100
        steps, and on a stop), and its result then takes its place in the study."""
        if out is None:
            return solve(problem, schedule=schedule, points=points, device=device, dtype=dtype,
                         seed=seed, progress=progress, log_every=steps)  # fmt: skip
        path, rundir = out / name, _sweep_run_directory(out, name)
        if resume and path.is_file():
            return load(path)
        if resume and (rundir / "result.h5").is_file():  # finished, not yet moved
            r = load(rundir)
            if not any(e.get("event") == "stopped" for e in r.events):
                return _settle(r, rundir, path)
        try:
            if resume and (rundir / "checkpoint.h5").is_file():
                r = solve(problem, resume=rundir, out=rundir, device=device, progress=progress)
            else:
                r = solve(problem, schedule=schedule, points=points, device=device, dtype=dtype,
                          seed=seed, progress=progress, log_every=steps, out=rundir,
                          overwrite=True)  # fmt: skip
        except Interrupted as e:
            if e.finished and (rundir / "result.h5").is_file():  # stopped while it was written
                _settle(None, rundir, path, deliver=False)  # (this stop is the news)
            raise
        return _settle(r, rundir, path)

    def _settle(r, rundir: Path, path: Path, deliver: bool = True):
        """Move a finished run's ``result.h5`` to its place in the study (one rename: a stop
        finds it in one place or the other), then drop its run directory."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with signals_held(deliver=deliver):
            os.replace(rundir / "result.h5", path)
            shutil.rmtree(rundir, ignore_errors=True)
        if r is not None:
            r.path = path
        return r

    stages = [Stage("lbfgs", steps, grid=g) for g in grids]
    ext = run("extension.h5", stages)
    h = ext.history
    # The last row logged up to the end of each stage carries that stage's test error (a stage
    # whose L-BFGS could not move logs no row of its own: its predecessor's last row stands).
    ends = [int(np.nonzero(h["stage"] <= i)[0][-1]) for i in range(len(grids))]
    extension = [math.sqrt(h["mse"][j]) for j in ends]
    # an inverse problem's unknowns where each grid's stage ends, and from each separate run
    unknowns = {n: {"extension": [float(h[f"param_{n}"][j]) for j in ends], "separate": []}
                for n in ext.unknowns}  # fmt: skip
    separate, stalled = [], []
    for g in grids:
        planned = steps * (grids.index(g) + 1)
        r = run(f"separate/grid-{g}.h5", [Stage("lbfgs", planned, grid=g)])
        separate.append(math.sqrt(r.metrics["mse"]))
        for n, v in unknowns.items():
            v["separate"].append(r.unknowns[n])
        short = r.metrics["steps"] < planned and any(
            e["event"] == "lbfgs_converged" for e in r.events
        )
        stalled.append((int(r.metrics["steps"]), planned) if short else None)
    # a run that stopped short is no point of the scaling curve (if two others remain)
    fit = [(g, e) for g, e, short in zip(grids, separate, stalled) if short is None]
    fit = fit if len(fit) >= 2 else list(zip(grids, separate))
    basis = ext.config["model"].get("basis", "bspline")
    theory = -(ext.config["model"].get("k", 3) + 1.0) if basis == "bspline" else None
    result = Sweep(problem.name, grids, extension, separate, fitted_slope(grids, extension),
                   fitted_slope(*zip(*fit)), ext, stalled=stalled, theory=theory,
                   basis=basis, unknowns=unknowns)  # fmt: skip
    if out is not None:
        with contextlib.suppress(OSError):  # every run settled: nothing left to resume
            (out / "checkpoints").rmdir()

        def write_csv(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["grid", "rmse_extension", "rmse_separate", "separate_stopped_at",
                            "theory_slope"] + [f"param_{n}_{kind}" for n in unknowns
                                               for kind in ("extension", "separate")])  # fmt: skip
                stops = ["" if short is None else short[0] for short in stalled]
                slope = ["" if theory is None else theory] * len(grids)
                found = [v[kind] for v in unknowns.values() for kind in ("extension", "separate")]
                w.writerows(zip(grids, extension, separate, stops, slope, *found))

        with signals_held():  # a stop between them left a header-only or disagreeing table
            write_atomic(out / "sweep.csv", write_csv)
            write_atomic(out / "sweep.md", lambda tmp: Path(tmp).write_text(result.markdown()))
        result.figures = _figures(result, out)
    return result


def _sweep_run_directory(out: Path, name: str) -> Path:
    """Where the sweep's run saved as ``name`` trains: ``checkpoints/extension`` for
    ``extension.h5``, ``checkpoints/separate-grid-G`` for ``separate/grid-G.h5``."""
    return out / "checkpoints" / name.removesuffix(".h5").replace("/", "-")


def _study_lock(out: Path | None, study: str, running: bool = False):
    """Hold the study in ``out`` against a second process at the same time (resuming it, or
    for a sweep also running it), which would train its runs twice."""
    from .training import _directory_lock

    if running:
        refusal = f"--out {out}: another process is running or resuming the study there"
    else:
        refusal = f"--resume {out}: another process is running or resuming this study"
    if not _COMMAND_LINE.get():
        refusal = _in_argument_names(study, refusal)
    return _directory_lock(out, refusal)


def _check_saved_sweep(out: Path | None, setup: dict) -> None:
    """Refuse to resume a sweep that is not there or was started with other settings."""
    if out is None:
        raise CLIError("resume: needs out, the directory of the study to continue")
    try:
        saved = json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError):
        if (out / "comparison.h5").is_file():
            raise CLIError(
                f"--resume {out}: a comparison study; continue it with kanpde compare PROBLEM "
                "--resume"
            ) from None
        raise CLIError(f"--resume {out}: no sweep.json; not a sweep study directory") from None
    _same_settings(out, saved, setup)


def _device_setting(device) -> str:
    """The device a study runs on, one spelling for each (``auto`` and ``cuda`` name the
    GPU they resolve to, ``cuda:0``)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


# The option (or file) behind each setting of a saved study, for the resume refusal.
_SETTING_OPTIONS = {
    "problem_hash": "the problem file (or a module it imports)",
    "models": "--kan/--mlp/--activation",
    "matched_mlps": "--kan/--mlp", "runs_planned": "--kan/--mlp/--seeds",
    "kan_schedule": "--schedule/--steps", "mlp_schedule": "--schedule/--steps",
    "points": "--points", "log_every": "--log-every", "grids": "--grids",
    "problem": "the problem (another problem file)", "time_split": "--budget",
}  # fmt: skip


def _same_settings(out: Path, saved: dict, setup: dict, ignore=frozenset()) -> None:
    """Refuse to resume the study in ``out`` with settings other than its own."""
    mine = json.loads(json.dumps(setup))  # as the file holds them (lists, not tuples)
    saved = dict(saved)
    with contextlib.suppress(AssertionError, RuntimeError, TypeError, ValueError):  # "cuda"
        saved["device"] = _device_setting(saved["device"])
    keys = (mine.keys() | saved.keys()) - set(ignore)
    valued = ("budget", "device", "dtype", "preset", "seconds", "seed", "seeds", "steps")
    # the settings whose values say what differs first, then the options behind the others
    differ = sorted(
        (k for k in keys if mine.get(k) != saved.get(k)), key=lambda k: (k not in valued, k)
    )
    if not differ:
        return
    shown = [
        f"--{k}: {saved.get(k)} there, {mine.get(k)} here"
        if k in valued
        else _SETTING_OPTIONS.get(k, k)
        for k in differ
    ]
    shown = list(dict.fromkeys(shown))  # several settings may come from one option
    # an option shown with its values already (--budget) need not be named again bare
    shown = [o for o in shown if not any(v.startswith(f"{o}: ") for v in shown)]
    raise CLIError(
        f"--resume {out}: the study was started with other settings ({'; '.join(shown)}); give "
        "the problem file and options it was started with"
    )


def _figures(result, out: Path) -> list[Path]:
    """Draw the study's figures into ``out``; their paths."""
    from . import plot

    paths = []
    if isinstance(result, Comparison):
        fig = plot.compare(str(out / "comparison.csv"), "rel_l2" if result.tested else "loss")
        paths.append(out / "comparison.png")
        fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
        if result.runs:  # training histories are saved with the runs
            fig = plot.curves(str(out / "comparison.h5"))
            paths.append(out / "curves.png")
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    if isinstance(result, Sweep):
        fig = plot.sweep(str(out / "sweep.csv"))
        paths.append(out / "sweep.png")
        fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    return paths


def _report(result, out: Path) -> int:
    print(result.markdown())
    for p in result.figures:
        print(f"figure: {p}")
    print(f"results: {out}")
    return 0


def _check_common(args) -> None:
    """The arguments compare and sweep share, checked before any directory is made."""
    from .training import resolve_device

    if args.dtype not in (None, "float32", "float64"):
        raise CLIError(f"--dtype {args.dtype!r}: use float32 or float64")
    from .training import MAX_SEED

    if not 0 <= getattr(args, "seed", 0) <= MAX_SEED:
        raise CLIError(f"--seed {args.seed}: must be an integer from 0 to {MAX_SEED}")
    try:
        resolve_device(args.device)
    except ValueError as e:
        raise CLIError(f"--device {args.device!r}: {e}") from None


def _names_option(arg: str, option: str) -> bool:
    """Whether ``arg`` gives ``option`` as argparse reads it (abbreviated, or with ``=``)."""
    flag = arg.split("=", 1)[0]
    return len(flag) > 2 and flag.startswith("--") and option.startswith(flag)


def _study_directory(args, name: str, seed) -> tuple[Path, list[Path]]:
    """The study's directory: the one given to ``--resume``, or a new one under ``--out``."""
    if args.resume is None:
        return new_run_directory(args.out, name, seed)
    out = Path(args.resume)
    if any(_names_option(a, "--out") for a in getattr(args, "argv", ())):
        raise CLIError("--out: not with --resume, which names the study's directory")
    if not out.is_dir():
        raise CLIError(f"--resume {out}: no such study directory")
    return out, []


def _continue_command(args, out: Path) -> str:
    """The command line that resumes the study in ``out``."""
    argv, skip = [], False
    for a in args.argv:  # drop --out and --resume (with their values): the study names both
        if skip:
            skip = False
        elif _names_option(a, "--out") or _names_option(a, "--resume"):
            skip = "=" not in a
        else:
            argv.append(a)
    return shlex.join(["kanpde", *argv, "--resume", str(out)])


def _resumable(out: Path) -> bool:
    """Whether the study in ``out`` has a finished run or a run's checkpoint to go on from."""
    runs = out / "runs"
    return any(runs.glob("*/result.h5")) or any(runs.glob("*/checkpoint.h5"))


def _left(args, option: str) -> bool:
    """Whether ``option`` was left out of the command line."""
    return not any(_names_option(a, option) for a in getattr(args, "argv", ()))


def _take_saved(args, saved: dict, options: dict[str, str]) -> None:
    """Set each of ``options`` (command-line option: setting) left out of the command line to
    the ``saved`` study's value, where it has one."""
    for option, key in options.items():
        if _left(args, option) and key in saved:
            setattr(args, key, saved[key])


def _saved_options(args, out: Path, problem):
    """The options of ``kanpde compare --resume`` not given on the command line, taken from
    the study saved in ``out`` (as ``kanpde solve --resume`` takes a run's own); options given
    are checked against the study's as before. Returns ``problem`` under the study's preset."""
    from .results import ResultsError

    try:
        saved = Comparison.load(out, runs=False)
    except ResultsError:  # not a study: _finished_runs says so
        return _with_preset(problem, args.preset)
    _check_same_problem(saved, problem, out)  # before its options, which may not fit this one
    setup = saved.setup
    _take_saved(args, setup, {"--preset": "preset"})
    problem = _with_preset(problem, args.preset)

    models = setup.get("models", [])
    mlps = [m for m in models if m.get("type") == "mlp"]
    if _left(args, "--kan"):
        args.kan = [",".join(map(str, m["width"])) for m in models if m.get("type") == "kan"]
    if _left(args, "--mlp") and not setup.get("matched_mlps"):  # (matched ones follow the KANs)
        args.mlp = [",".join(map(str, m["width"])) for m in mlps]
    if _left(args, "--activation") and mlps:
        args.activation = mlps[0].get("activation", args.activation)
    # the KAN schedule as the study scaled it
    if _left(args, "--schedule") and _left(args, "--steps"):
        args.schedule = setup.get("kan_schedule", args.schedule)
    _take_saved(args, setup, {"--seeds": "seeds", "--budget": "budget", "--seconds": "seconds",
                              "--dtype": "dtype"})  # fmt: skip
    # the counts the study laid over the problem's
    if _left(args, "--points") and "points" in setup:
        given = {k: v for k, v in setup["points"].items() if problem.points.get(k) != v}
        args.points = given or None
    if _left(args, "--log-every"):
        args.log_every = setup.get("log_every", 50)
    return problem


def cmd_compare(args) -> int:
    from .problem import load_problem
    from .training import TrainingStopped

    problem = load_problem(args.problem)
    _check_common(args)
    if args.resume is not None and Path(args.resume).is_dir():
        problem = _saved_options(args, Path(args.resume), problem)
    else:
        problem = _with_preset(problem, args.preset)
    plan = _plan(
        problem, args.kan, args.mlp, args.seeds, args.budget, args.seconds, args.steps,
        args.device, args.dtype, args.activation, args.schedule, args.points, args.log_every,
    )  # fmt: skip
    if args.preset is not None:
        plan.setup["preset"] = args.preset
    out, created = _study_directory(args, f"compare-{problem.name}", None)
    resume = args.resume is not None
    token = _COMMAND_LINE.set(True)
    try:
        result = _execute(plan, out, args.device, args.dtype, not args.quiet, resume=resume)
        result.figures = _figures(result, out)
    except BaseException as e:
        if created and not _resumable(out):  # nothing worth keeping in a new directory
            for name in ("comparison.csv", "comparison.h5", "comparison.md"):
                (out / name).unlink(missing_ok=True)
            _discard(created)
        elif isinstance(e, KeyboardInterrupt | TrainingStopped):
            if isinstance(e, KeyboardInterrupt):  # the news first, what to do last
                _said_interrupted(e)
                for ck in sorted((out / "runs").glob("*/checkpoint.h5")):
                    print(f"checkpoint of an unfinished run: {ck}", file=sys.stderr)
            if any((out / "runs").glob("*/result.h5")):
                print(f"results of the finished runs: {out}", file=sys.stderr)
            if isinstance(e, KeyboardInterrupt):
                print(f"continue with: {_continue_command(args, out)}", file=sys.stderr)
        if isinstance(e, TrainingStopped):
            print(f"kanpde: error: {e}", file=sys.stderr)
            return 1
        raise
    finally:
        _COMMAND_LINE.reset(token)
    return _report(result, out)


def _saved_sweep_options(args, out: Path) -> None:
    """The options of ``kanpde sweep --resume`` not given, from the sweep's ``sweep.json``."""
    try:
        saved = json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError):  # not a sweep: _check_saved_sweep says so
        return
    if _left(args, "--grids") and "grids" in saved:
        args.grids = ",".join(map(str, saved["grids"]))
    _take_saved(args, saved, {"--steps": "steps", "--seed": "seed", "--points": "points",
                              "--dtype": "dtype", "--preset": "preset"})  # fmt: skip


def cmd_sweep(args) -> int:
    from .problem import load_problem

    problem = load_problem(args.problem)
    if args.resume is not None and Path(args.resume).is_dir():
        _saved_sweep_options(args, Path(args.resume))
    _check_common(args)
    grids = _check_sweep(args.grids, args.steps)
    _check_problem(_with_preset(problem, args.preset), kan=True)
    out, created = _study_directory(args, f"sweep-{problem.name}", args.seed)
    token = _COMMAND_LINE.set(True)
    try:
        result = sweep(problem, grids, steps=args.steps, device=args.device, dtype=args.dtype,
                       seed=args.seed, out=out, progress=not args.quiet,
                       resume=args.resume is not None, points=args.points,
                       preset=args.preset)  # fmt: skip
    except BaseException as e:
        checkpoints = sorted((out / "checkpoints").glob("*/checkpoint.h5"))
        stopped = isinstance(e, KeyboardInterrupt)
        if created and not (out / "extension.h5").is_file() and not (stopped and checkpoints):
            # nothing worth keeping in a new directory
            (out / "sweep.json").unlink(missing_ok=True)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            _discard(created)
        elif stopped:
            _said_interrupted(e)
            for ck in checkpoints:
                print(f"checkpoint of an unfinished run: {ck}", file=sys.stderr)
            if (out / "extension.h5").is_file():
                print(f"finished runs are kept in {out}", file=sys.stderr)
            print(f"continue with: {_continue_command(args, out)}", file=sys.stderr)
        raise
    finally:
        _COMMAND_LINE.reset(token)
    return _report(result, out)


def _said_interrupted(stop: KeyboardInterrupt) -> None:
    """Print the stop's news line now, before the lines on how to continue (the command line's
    own ``kanpde: interrupted`` would come last, after them)."""
    print("kanpde: interrupted", file=sys.stderr)
    stop.reported = True


def register(sub) -> None:
    """Add ``kanpde compare`` and ``kanpde sweep`` to the command line."""
    c = sub.add_parser("compare", help="KANs vs MLP baselines: same points, test set, budget")
    c.add_argument("problem", help="problem file, e.g. problems/poisson2d.py")
    c.add_argument("--kan", nargs="+", help="KAN widths, e.g. 2,5,1 2,10,1")
    c.add_argument(
        "--mlp",
        nargs="+",
        help="MLP widths, e.g. 2,20,20,1 2,100,100,100,1 (default: one matched to each KAN at its "
        "final grid, and 2,100,100,100,1)",
    )
    c.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3)")
    c.add_argument(
        "--budget", choices=["steps", "seconds"], default="steps",
        help="equal optimizer steps (default) or equal training time per run",
    )  # fmt: skip
    c.add_argument("--seconds", type=float, help="training time of every run with --budget seconds")
    c.add_argument(
        "--steps", type=int,
        help="total optimizer steps (default: the KAN schedule's); under --budget seconds the "
        "runs train for --seconds, and the steps only weigh the stages' shares of it",
    )  # fmt: skip
    c.add_argument(
        "--schedule",
        help="the KAN schedule in place of the problem's, as kanpde solve takes it, e.g. "
        '"5:adam=500@1e-3,10:lbfgs=200" (--steps scales it)',
    )
    c.add_argument("--points", help="point counts over the problem's, e.g. interior=4000")
    c.add_argument(
        "--activation", default="tanh",
        help="activation of the MLPs: tanh (default), sin, silu, softplus or gelu",
    )  # fmt: skip
    c.add_argument(
        "--log-every", type=int, default=50,
        help="steps between history rows of each run (default 50)",
    )  # fmt: skip
    c.add_argument(
        "--resume", metavar="STUDY_DIR",
        help="continue an interrupted study with the options it was started with (those not "
        "given are the study's own): finished runs are kept, a run stopped with a checkpoint "
        "goes on from there",
    )  # fmt: skip
    _common_arguments(c)
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="test error vs grid size G (grid-scaling study)")
    s.add_argument("problem", help="problem file (its model must be a KAN)")
    s.add_argument(
        "--grids",
        default="3,5,10,20,50,100",
        help="at least two strictly increasing sizes (default 3,5,10,20,50,100)",
    )
    s.add_argument("--steps", type=int, default=200,
                   help="L-BFGS steps per grid of the extension run; the separate run at the "
                        "i-th grid gets i times as many (default 200)")  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="seed of the initialisation (default 0)")
    s.add_argument("--points", help="point counts over the problem's, e.g. interior=4000")
    s.add_argument(
        "--resume", metavar="STUDY_DIR",
        help="continue an interrupted sweep with the options it was started with (those not "
        "given are the sweep's own), keeping its finished runs",
    )  # fmt: skip
    _common_arguments(s)
    s.set_defaults(func=cmd_sweep)


def _common_arguments(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--dtype", help="float32 or float64 (default: the problem's)")
    p.add_argument(
        "--preset", help="one of the presets the problem file defines: its model, schedule, "
        "points and weights in place of the problem's",
    )  # fmt: skip
    p.add_argument("--out", default="runs", help="parent of the study directory (default runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
