"""KAN-versus-MLP studies and grid-scaling sweeps.

:func:`compare` trains several models on one problem with identical collocation points,
identical test set and an identical budget (optimizer steps, or wall-clock seconds), over
several seeds, and tabulates parameters, errors and time. :func:`sweep` measures test error
against the grid size ``G`` — from one grid-extension run and from separately trained runs —
and fits the convergence slope (cubic-spline theory: RMSE ∝ G⁻⁴).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .schedule import Stage, parse_schedule

COLUMNS = [
    "model", "width", "grid", "params", "seed", "mse", "rel_l2", "max_err", "wall_time",
    "steps", "evals", "steps_per_s",
]  # fmt: skip


def mlp_schedule(total_steps: int, adam_fraction: float = 0.25, lr: float = 1e-3) -> list[Stage]:
    """The MLP recipe: Adam (learning rate ``lr``) for a quarter of the steps, then L-BFGS."""
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


@dataclass
class Comparison:
    """Rows (one per model and seed) and the shared setup of a :func:`compare` study."""

    problem: str
    rows: list[dict]
    setup: dict
    runs: dict = field(default_factory=dict)  # (label, seed) -> Run

    def summary(self) -> list[dict]:
        """Median and min–max over seeds, per model."""
        out = []
        for label in dict.fromkeys(r["model"] for r in self.rows):
            rs = [r for r in self.rows if r["model"] == label]
            entry = {"model": label, "params": rs[0]["params"], "seeds": len(rs)}
            for key in ("mse", "rel_l2", "max_err", "wall_time", "steps_per_s"):
                v = np.array([r[key] for r in rs], dtype=float)
                entry[key] = float(np.median(v))
                entry[key + "_min"], entry[key + "_max"] = float(v.min()), float(v.max())
            out.append(entry)
        return out

    def markdown(self) -> str:
        """The summary as a markdown table (median [min–max] over seeds)."""
        head = (
            "| model | params | test MSE | rel. L2 | max err | wall time (s) | steps/s |\n"
            "|---|---:|---|---|---|---|---:|\n"
        )
        lines = []
        for e in self.summary():
            cells = [f"{e['model']}", f"{e['params']}"]
            for key, fmt in (("mse", ".2e"), ("rel_l2", ".2e"), ("max_err", ".2e"),
                             ("wall_time", ".1f")):  # fmt: skip
                lo, hi = e[key + "_min"], e[key + "_max"]
                cells.append(f"{e[key]:{fmt}} [{lo:{fmt}}–{hi:{fmt}}]")
            cells.append(f"{e['steps_per_s']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        return head + "\n".join(lines) + "\n"

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``comparison.csv``, ``comparison.h5`` and ``comparison.md`` into ``out``."""
        import h5py

        from .results import write_atomic

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / "comparison.csv", "h5": out / "comparison.h5",
                 "md": out / "comparison.md"}  # fmt: skip
        with open(paths["csv"], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: r[k] for k in COLUMNS})
        paths["md"].write_text(self.markdown())

        def write(tmp: str) -> None:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = "kanpde-comparison"
                f.attrs["problem"] = self.problem
                f.attrs["setup"] = json.dumps(self.setup)
                g = f.create_group("rows")
                for k in COLUMNS:
                    v = [r[k] for r in self.rows]
                    g.create_dataset(k, data=np.array(v, dtype="S") if isinstance(v[0], str) else v)
                for (label, seed), run in self.runs.items():
                    h = f.create_group(f"history/{label} seed {seed}")
                    for k in ("step", "loss", "mse", "rel_l2", "time"):
                        if k in run.history:
                            h.create_dataset(k, data=run.history[k])

        write_atomic(paths["h5"], write)
        return paths


def compare(
    problem,
    kans: list[list[int]] | None = None,
    mlps: list[list[int]] | None = None,
    seeds: int = 3,
    budget: str = "steps",
    seconds: float | None = None,
    steps: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    activation: str = "tanh",
) -> Comparison:
    """Train KANs and MLPs on the same points, test set and budget; return the table.

    Parameters
    ----------
    problem : Problem or str
        The problem (its point budget, test set and KAN schedule are used).
    kans, mlps : list of widths
        Models to train; default: the problem's KAN, an MLP with about as many parameters,
        and a 4-layer width-100 MLP.
    seeds : int
        Seeds per model (initialisation only: the points are the same for all).
    budget : {"steps", "seconds"}
        Equal optimizer steps (the KAN schedule's total; MLPs use Adam for a quarter of them,
        then L-BFGS), or equal training time ``seconds`` per run.
    steps : int, optional
        Override the step budget (the KAN schedule is scaled to it).
    out : path, optional
        Directory for ``comparison.{csv,h5,md}``, the runs (``runs/``) and the figures.
    """
    from .nn import count_parameters
    from .problem import load_problem
    from .training import build_model, solve

    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    if budget not in ("steps", "seconds"):
        raise ValueError(f"--budget {budget!r}: use steps or seconds")
    if budget == "seconds" and not (seconds and seconds > 0):
        raise ValueError("--budget seconds needs --seconds S (a positive wall time per run)")
    kan_stages = parse_schedule(problem.schedule)
    total = sum(s.steps for s in kan_stages)
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps {steps}: must be positive")
        factor = steps / total
        kan_stages = [
            Stage(
                s.optimizer,
                max(1, round(s.steps * factor)),
                s.grid,
                s.lr,
                s.decay,
                s.update_grid,
                None,
                s.history,
            )  # fmt: skip
            for s in kan_stages
        ]
        total = sum(s.steps for s in kan_stages)
    if budget == "seconds":
        # Time, not steps, is the budget: give every model more steps than it can take.
        kan_stages = [Stage(s.optimizer, s.steps * 1000, s.grid, s.lr, s.decay, s.update_grid,
                            s.update_until, s.history) for s in kan_stages]  # fmt: skip
    n_in, n_out = problem.domain_dim, len(problem.outputs)
    if kans is None:
        kans = [list(problem.model["width"])]
    if mlps is None:
        # Match the KAN as trained: grid extension multiplies its parameters.
        grids = [s.grid for s in kan_stages if s.grid is not None]
        final = {"grid": grids[-1]} if grids else {}
        kan_params = count_parameters(build_model(problem, final, device="cpu"))
        h = _matching_width(kan_params, n_in, n_out)
        mlps = [[n_in, h, h, n_out], [n_in, 100, 100, 100, n_out]]
    for w in [*kans, *mlps]:
        if w[0] != n_in or w[-1] != n_out:
            raise ValueError(
                f"width {w} does not fit {problem.name}: {n_in} inputs and {n_out} outputs"
            )
    models = [("kan", w, {"width": w}, kan_stages) for w in kans]
    models += [
        ("mlp", w, {"type": "mlp", "width": w, "activation": activation}, mlp_schedule(total))
        for w in mlps
    ]
    points = dict(problem.points)
    points.setdefault("seed", 0)  # identical collocation points for every model and seed
    rows, runs = [], {}
    out = Path(out) if out is not None else None
    for kind, width, cfg, stages in models:
        label = _label(kind, width)
        for seed in range(seeds):
            run_out = out / "runs" / f"{kind}-{'-'.join(map(str, width))}-s{seed}" if out else None
            run = solve(
                problem, model=cfg, schedule=stages, points=points, device=device, dtype=dtype,
                seed=seed, out=run_out, progress=progress, log_every=50,
                max_seconds=seconds if budget == "seconds" else None, checkpoint_every=0,
            )  # fmt: skip
            m = run.metrics
            rows.append({
                "model": label, "width": "-".join(map(str, width)),
                "grid": int(run.history["grid"][-1]) if kind == "kan" else 0,
                "params": m["parameters"], "seed": seed, "mse": m["mse"], "rel_l2": m["rel_l2"],
                "max_err": m["max_err"], "wall_time": m["train_time"], "steps": m["steps"],
                "evals": m["evals"], "steps_per_s": m["steps"] / max(m["train_time"], 1e-12),
            })  # fmt: skip
            runs[(label, seed)] = run
    setup = {
        "budget": budget,
        "seconds": seconds,
        "steps": total,
        "points": points,
        "kan_schedule": [s.to_dict() for s in kan_stages],
        "mlp_schedule": [s.to_dict() for s in mlp_schedule(total)],
        "seeds": seeds,
        "device": device,
        "dtype": dtype or problem.dtype,
    }
    result = Comparison(problem.name, rows, setup, runs)
    if out is not None:
        result.save(out)
    return result


@dataclass
class Sweep:
    """Test error against grid size, from one extension run and from separate runs."""

    problem: str
    grids: list[int]
    extension: list[float]  # RMSE at the end of each grid stage of the extension run
    separate: list[float]  # RMSE of a run trained from scratch at each G
    slope_extension: float
    slope_separate: float
    run: object = None  # the extension Run (its history shows the staircase)

    def markdown(self) -> str:
        lines = ["| G | RMSE (grid extension) | RMSE (trained at G) |", "|---:|---|---|"]
        for g, a, b in zip(self.grids, self.extension, self.separate):
            lines.append(f"| {g} | {a:.3e} | {b:.3e} |")
        lines.append(
            f"\nfitted slope of log RMSE vs log G: {self.slope_extension:.2f} (extension), "
            f"{self.slope_separate:.2f} (separate); cubic-spline theory: -4"
        )
        return "\n".join(lines) + "\n"


def fitted_slope(grids, errors) -> float:
    """Least-squares slope of ``log(error)`` against ``log(G)``."""
    g, e = np.log(np.asarray(grids, float)), np.log(np.asarray(errors, float))
    return float(np.polyfit(g, e, 1)[0])


def sweep(
    problem,
    grids=(3, 5, 10, 20, 50, 100),
    steps: int = 200,
    device: str = "auto",
    dtype: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
) -> Sweep:
    """The KAN paper's grid-scaling study on ``problem`` with ``steps`` L-BFGS steps per grid."""
    from .problem import load_problem
    from .training import solve

    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    grids = [int(g) for g in grids]
    if not grids or min(grids) < 1 or sorted(grids) != grids:
        raise ValueError(f"--grids {grids}: need increasing positive grid sizes")
    stages = [Stage("lbfgs", steps, grid=g) for g in grids]
    ext = solve(problem, schedule=stages, device=device, dtype=dtype, seed=seed,
                progress=progress, log_every=steps, checkpoint_every=0)  # fmt: skip
    h = ext.history
    # The row logged at the end of each stage carries that stage's test error.
    ends = [int(np.nonzero(h["stage"] == i)[0][-1]) for i in range(len(grids))]
    extension = [math.sqrt(h["mse"][j]) for j in ends]
    separate = []
    for g in grids:
        r = solve(problem, schedule=[Stage("lbfgs", steps * (grids.index(g) + 1), grid=g)],
                  device=device, dtype=dtype, seed=seed, progress=progress, log_every=steps,
                  checkpoint_every=0)  # fmt: skip
        separate.append(math.sqrt(r.metrics["mse"]))
    result = Sweep(problem.name, grids, extension, separate, fitted_slope(grids, extension),
                   fitted_slope(grids, separate), ext)  # fmt: skip
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "sweep.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["grid", "rmse_extension", "rmse_separate"])
            w.writerows(zip(grids, extension, separate))
        (out / "sweep.md").write_text(result.markdown())
        from .results import save_run

        save_run(ext, out / "extension.h5")
    return result


def _figures(result, out: Path) -> list[Path]:
    """Figures through :mod:`kanpde.plot` when it is available."""
    import importlib.util

    if importlib.util.find_spec("kanpde.plot") is None:
        return []
    from . import plot

    paths = []
    if isinstance(result, Comparison) and hasattr(plot, "compare"):
        fig = plot.compare(str(out / "comparison.csv"))
        paths.append(out / "comparison.png")
        fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
        if result.runs:  # training histories are saved with the runs
            fig = plot.curves(str(out / "comparison.h5"))
            paths.append(out / "curves.png")
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    if isinstance(result, Sweep) and hasattr(plot, "sweep"):
        fig = plot.sweep(str(out / "sweep.csv"))
        paths.append(out / "sweep.png")
        fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    return paths


def _widths(values) -> list[list[int]] | None:
    if values is None:
        return None
    from .cli import parse_width

    return [parse_width(v) for v in values]


def _report(result, out: Path) -> int:
    print(result.markdown())
    for p in _figures(result, out):
        print(f"figure: {p}")
    print(f"results: {out}")
    return 0


def cmd_compare(args) -> int:
    from .cli import run_directory
    from .problem import load_problem

    problem = load_problem(args.problem)
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: must be at least 1")
    out = run_directory(args.out, f"compare-{problem.name}", 0)
    result = compare(
        problem, kans=_widths(args.kan), mlps=_widths(args.mlp), seeds=args.seeds,
        budget=args.budget, seconds=args.seconds, steps=args.steps, device=args.device,
        dtype=args.dtype, out=out, progress=not args.quiet,
    )  # fmt: skip
    return _report(result, out)


def cmd_sweep(args) -> int:
    from .cli import run_directory
    from .problem import load_problem

    problem = load_problem(args.problem)
    try:
        grids = [int(g) for g in args.grids.split(",")]
    except ValueError:
        raise ValueError(f"--grids {args.grids!r}: expected integers like 3,5,10,20") from None
    out = run_directory(args.out, f"sweep-{problem.name}", args.seed)
    result = sweep(problem, grids, steps=args.steps, device=args.device, dtype=args.dtype,
                   seed=args.seed, out=out, progress=not args.quiet)  # fmt: skip
    return _report(result, out)


def register(sub) -> None:
    """Add ``kanpde compare`` and ``kanpde sweep`` to the command line."""
    c = sub.add_parser("compare", help="KANs vs MLP baselines: same points, test set, budget")
    c.add_argument("problem")
    c.add_argument("--kan", nargs="+", help="KAN widths, e.g. 2,5,1 2,10,1")
    c.add_argument("--mlp", nargs="+", help="MLP widths, e.g. 2,20,20,1 2,100,100,100,1")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--budget", choices=["steps", "seconds"], default="steps")
    c.add_argument("--seconds", type=float, help="training time per run with --budget seconds")
    c.add_argument("--steps", type=int, help="total optimizer steps (default: the KAN schedule's)")
    c.add_argument("--device", default="auto")
    c.add_argument("--dtype")
    c.add_argument("--out", default="runs")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="test error vs grid size G (grid-scaling study)")
    s.add_argument("problem")
    s.add_argument("--grids", default="3,5,10,20,50,100")
    s.add_argument("--steps", type=int, default=200, help="L-BFGS steps per grid")
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="runs")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sweep)
