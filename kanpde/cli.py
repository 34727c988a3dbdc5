"""Command line: ``kanpde solve | list`` (``python -m kanpde`` works too)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import secrets
import sys
import time
from pathlib import Path

from .problem import ProblemError, load_problem


class CLIError(ValueError):
    """A malformed command-line argument (message: one line naming the argument)."""


def parse_width(text: str) -> list[int]:
    """``"2,10,1"`` → ``[2, 10, 1]``."""
    try:
        width = [int(w) for w in text.split(",")]
    except ValueError:
        raise CLIError(f"--width {text!r}: expected comma-separated integers like 2,10,1") from None
    if len(width) < 2 or min(width) < 1:
        raise CLIError(f"--width {text!r}: needs at least two positive layer sizes")
    return width


def parse_points(text: str) -> dict:
    """``"interior=2601,boundary=204,method=grid"`` → a points dict."""
    out: dict = {}
    for item in text.split(","):
        if "=" not in item:
            raise CLIError(
                f"--points {text!r}: expected key=value pairs like interior=2000,boundary=400"
            )
        key, value = (s.strip() for s in item.split("=", 1))
        if key == "method":
            if value not in ("grid", "uniform", "lhs", "sobol"):
                raise CLIError(f"--points method={value!r}: use grid, uniform, lhs or sobol")
            out[key] = value
            continue
        if key not in ("interior", "boundary", "initial", "test", "seed"):
            raise CLIError(
                f"--points: unknown key {key!r}; "
                "use interior, boundary, initial, test, method, seed"
            )
        try:
            n = int(value)
        except ValueError:
            raise CLIError(f"--points {key}={value!r}: not an integer") from None
        if n < (0 if key == "seed" else 1):
            raise CLIError(f"--points {key}={n}: must be positive")
        out[key] = n
    return out


def run_directory(base: str | Path, name: str, seed: int) -> Path:
    """A new, unique run directory ``base/<name>-<time>-s<seed>-<random>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = Path(base) / f"{name}-{stamp}-s{seed}-{secrets.token_hex(3)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise CLIError(f"--out {base}: cannot create a run directory ({e.strerror})") from None
    raise CLIError(f"--out {base}: could not create a unique run directory")


def _model_overrides(args) -> dict:
    cfg: dict = {}
    if args.model:
        cfg["type"] = args.model
    if args.width:
        cfg["width"] = parse_width(args.width)
    if args.grid is not None:
        if args.grid < 1:
            raise CLIError(f"--grid {args.grid}: must be a positive integer")
        cfg["grid"] = args.grid
    if args.k is not None:
        if args.k < 1:
            raise CLIError(f"--k {args.k}: must be a positive integer")
        cfg["k"] = args.k
    if args.basis:
        from .nn import BASES

        if args.basis not in BASES:
            raise CLIError(f"--basis {args.basis!r}: unknown; choose one of {', '.join(BASES)}")
        cfg["basis"] = args.basis
    if args.activation:
        cfg["activation"] = args.activation
    if cfg.get("type") == "mlp":
        cfg.setdefault("activation", "tanh")
    return cfg


def cmd_solve(args) -> int:
    from .schedule import ScheduleError, parse_schedule
    from .training import TrainingStopped

    problem = load_problem(args.problem)
    model = _model_overrides(args)
    if model.get("type") == "mlp":
        # An MLP shares nothing with the KAN defaults but the width's ends.
        width = model.get("width") or [problem.domain_dim, 50, 50, 50, len(problem.outputs)]
        model = {"type": "mlp", "width": width, "activation": model.get("activation", "tanh")}
    schedule = None
    if args.schedule:
        try:
            schedule = parse_schedule(args.schedule)
        except ScheduleError as e:
            raise CLIError(f"--schedule {args.schedule!r}: {e}") from None
    points = parse_points(args.points) if args.points else None
    if args.dtype not in (None, "float32", "float64"):
        raise CLIError(f"--dtype {args.dtype!r}: use float32 or float64")
    from .training import resolve_device

    resolve_device(args.device)  # before any run directory exists
    if args.checkpoint_every < 0:
        raise CLIError(f"--checkpoint-every {args.checkpoint_every}: must be >= 0")
    if args.resume:
        out = Path(args.resume)
        if not (out / "checkpoint.h5").exists():
            raise CLIError(f"--resume {args.resume}: no checkpoint.h5 in that run directory")
    else:
        from . import distributed

        args.device = distributed.setup(args.device)  # joins torchrun's process group
        out = run_directory(args.out, problem.name, args.seed) if distributed.rank() == 0 else None
        out = distributed.broadcast(out)
    if not os.access(out, os.W_OK):
        raise CLIError(f"--out {out}: directory is not writable")
    try:
        run = _solve(args, problem, model, schedule, points, out)
    except TrainingStopped as e:
        print(f"kanpde: error: {e}", file=sys.stderr)
        if e.run is not None and e.run.path is not None:
            print(f"results so far: {e.run.path}", file=sys.stderr)
        return 1
    from . import distributed

    if distributed.rank() != 0:
        return 0
    m = run.metrics
    parts = [f"{problem.name}: {m['steps']} steps in {m['train_time']:.1f} s"]
    for key in ("mse", "rel_l2", "max_err"):
        if key in m:
            parts.append(f"{key} {m[key]:.3e}")
    parts.append(f"parameters {m['parameters']}")
    print(", ".join(parts))
    print(f"results: {run.path}")
    return 0


def _solve(args, problem, model, schedule, points, out):
    from .training import solve

    if args.resume:
        return solve(
            problem,
            out=out,
            resume=out,
            log_every=args.log_every,
            progress=not args.quiet,
            checkpoint_every=args.checkpoint_every,
            compile=args.compile,
        )
    return solve(
        problem,
        model=model or None,
        schedule=schedule,
        points=points,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        out=out,
        log_every=args.log_every,
        progress=not args.quiet,
        preset=args.preset,
        compile=args.compile,
        checkpoint_every=args.checkpoint_every,
    )


def cmd_list(args) -> int:
    folder = Path(args.folder)
    files = sorted(folder.glob("*.py"))
    if not files:
        print(f"no problem files in {folder}")
        return 1
    width = max(len(f.stem) for f in files)
    for f in files:
        try:
            p = load_problem(f)
            print(f"{f.stem:<{width}}  {p.description or p.name}")
        except ProblemError as e:
            print(f"{f.stem:<{width}}  [invalid] {e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanpde", description="Physics-informed KANs for PDEs")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="train a KAN (or MLP) on a problem file")
    s.add_argument("problem", help="problem file, e.g. problems/poisson2d.py")
    s.add_argument(
        "--model", choices=["kan", "mlp"], help="trial function (default: the problem's)"
    )
    s.add_argument("--width", help="layer widths, e.g. 2,10,1")
    s.add_argument("--grid", type=int, help="initial grid size G")
    s.add_argument("--k", type=int, help="spline order")
    s.add_argument("--basis", help="bspline, rbf, rswaf or chebyshev")
    s.add_argument("--activation", help="MLP activation (tanh, sin, silu, softplus, gelu)")
    s.add_argument("--schedule", help='stages, e.g. "5:adam=2000@1e-3,10:lbfgs=200,20:lbfgs=200"')
    s.add_argument("--points", help="e.g. interior=2601,boundary=204,method=grid")
    s.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    s.add_argument("--dtype", help="float32 or float64 (default: the problem's)")
    s.add_argument("--preset", help="one of the problem's named presets (e.g. full)")
    s.add_argument("--compile", action="store_true", help="torch.compile the derivative evaluation")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="runs", help="parent directory of the run directory")
    s.add_argument("--log-every", type=int, default=25, help="steps between history rows")
    s.add_argument(
        "--checkpoint-every", type=int, default=100, help="steps between checkpoints (0: none)"
    )
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_solve)

    ls = sub.add_parser("list", help="list the problems in a folder")
    ls.add_argument("folder", nargs="?", default="problems")
    ls.set_defaults(func=cmd_list)
    # Commands that live with their subject: each module defines register(subparsers).
    for name in ("compare", "plot", "symbolic"):
        if importlib.util.find_spec(f"kanpde.{name}") is not None:
            importlib.import_module(f"kanpde.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ProblemError, CLIError, ValueError) as e:
        print(f"kanpde: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kanpde: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
