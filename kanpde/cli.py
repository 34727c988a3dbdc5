"""Command line: ``kanpde solve | list`` (``python -m kanpde`` works too)."""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import math
import os
import secrets
import shlex
import sys
import time
import warnings
from pathlib import Path

from .problem import KanpdeWarning, ProblemError, _first_line, load_problem
from .signals import exit_status
from .training import CHECKPOINT_EVERY, LOG_EVERY, MAX_SEED, _absent, _remove_if_empty


class CLIError(ValueError):
    """A malformed command-line argument (message: one line naming the argument)."""


def parse_width(text: str, flag: str = "--width") -> list[int]:
    """``"2,10,1"`` → ``[2, 10, 1]``; ``flag`` names the option in errors."""
    try:
        width = [int(w) for w in text.split(",")]
    except ValueError:
        raise CLIError(f"{flag} {text!r}: expected comma-separated integers like 2,10,1") from None
    if len(width) < 2 or min(width) < 1:
        raise CLIError(f"{flag} {text!r}: needs at least two positive layer sizes")
    return width


def parse_points(text: str) -> dict:
    """``"interior=2601,boundary=204,method=grid"`` → a points dict (the keys and checks of a
    problem file's ``points``)."""
    from .problem import check_points

    out: dict = {}
    for item in text.split(","):
        if "=" not in item:
            raise CLIError(
                f"--points {text!r}: expected key=value pairs like interior=2000,boundary=400"
            )
        key, value = (s.strip() for s in item.split("=", 1))
        if key in out:  # the last would win
            raise CLIError(f"--points {text!r}: {key} is given twice")
        if key == "method":
            out[key] = value
        elif key == "adaptive":
            flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            if value.lower() not in flags:
                raise CLIError(f"--points adaptive={value!r}: use true or false")
            out[key] = flags[value.lower()]
        else:
            try:
                number = float(value)
            except ValueError:
                raise CLIError(f"--points {key}={value!r}: not an integer") from None
            out[key] = int(number) if number.is_integer() else number  # 1e4 is a count too
    try:
        check_points(out)
    except ValueError as e:
        raise CLIError(f"--points {text!r}: {str(e).removeprefix('points: ')}") from None
    return out


def parse_unknowns(text: str, problem) -> dict[str, float]:
    """``"kappa=0.3,c=1"`` → starting values for unknowns ``problem`` declares."""
    declared = ", ".join(problem.unknowns) or "none"
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise CLIError(f"--unknowns {text!r}: expected name=value pairs like kappa=0.3")
        if name in out:  # the last would win
            raise CLIError(f"--unknowns {text!r}: {name} is given twice")
        if name not in problem.unknowns:
            where = problem.source or f"problem {problem.name!r}"
            raise CLIError(
                f"--unknowns {name}={value}: {where} declares no unknown {name!r} (declared: "
                f"{declared})"
            )
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise CLIError(f"--unknowns {name}={value}: needs a finite number to start from")
        out[name] = number
    return out


def run_directory(base: str | Path, name: str, seed: int | None) -> Path:
    """A new, unique run directory ``base/<name>-<time>-s<seed>-<random>`` (no ``s<seed>``
    part for ``seed=None``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = "" if seed is None else f"-s{seed}"
    for _ in range(100):
        path = Path(base) / f"{name}-{stamp}{tag}-{secrets.token_hex(3)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise CLIError(f"--out {base}: cannot create a run directory ({e.strerror})") from None
    raise CLIError(f"--out {base}: could not create a unique run directory")


def new_run_directory(base: str | Path, name: str, seed: int | None) -> tuple[Path, list[Path]]:
    """:func:`run_directory` and the directories made for it, deepest first (for
    :func:`_discard` when the command fails before anything is written)."""
    if isinstance(base, str) and not base.strip():  # Path("") is the current directory
        raise CLIError("--out '': give a directory (runs go in a folder inside it)")
    parent = Path(base)
    fresh = _absent(parent)
    out = run_directory(parent, name, seed)
    return out, [out, *fresh]


# Options that define a run: --resume continues a run with its own, so they would be ignored.
RUN_OPTIONS = {
    "model": "--model",
    "width": "--width",
    "grid": "--grid",
    "k": "--k",
    "basis": "--basis",
    "activation": "--activation",
    "schedule": "--schedule",
    "points": "--points",
    "dtype": "--dtype",
    "preset": "--preset",
    "seed": "--seed",
    "out": "--out",
    "unknowns": "--unknowns",
}
RESUME_OPTIONS = ("--device", "--log-every", "--checkpoint-every", "--compile", "--graphs",
                  "--quiet")  # fmt: skip
MODEL_OPTIONS = ("model", "width", "grid", "k", "basis", "activation")


def _given(args, dests) -> list[str]:
    """``--flag value`` for each of ``dests`` given on the command line (None: not given)."""
    return [f"{RUN_OPTIONS[d]} {getattr(args, d)}" for d in dests if getattr(args, d) is not None]


def _model_overrides(args, problem, base: dict) -> dict:
    """The model options given on the command line; ``base`` is the problem's model under
    ``--preset``, whose kind the options must fit unless ``--model`` changes it."""
    kind = args.model or base.get("type", "kan")
    if args.model:
        source = "--model mlp"
    else:
        source = f"preset {args.preset!r}" if args.preset else "the problem's model"
    if kind == "mlp":
        for dest in ("grid", "k", "basis"):
            if getattr(args, dest) is not None:
                raise CLIError(
                    f"{RUN_OPTIONS[dest]} {getattr(args, dest)}: a KAN option, but the model is "
                    f"an MLP ({source})"
                )
    elif args.activation is not None:
        raise CLIError(
            f"--activation {args.activation}: an MLP option, but the model is a KAN; "
            "use it with --model mlp"
        )
    cfg: dict = {}
    if args.model:
        cfg["type"] = args.model
    if args.width is not None:
        cfg["width"] = parse_width(args.width)
    if args.grid is not None:
        if args.grid < 1:
            raise CLIError(f"--grid {args.grid}: must be a positive integer")
        cfg["grid"] = args.grid
    if args.k is not None:
        if args.k < 1:
            raise CLIError(f"--k {args.k}: must be a positive integer")
        cfg["k"] = args.k
    if args.basis is not None:
        from .nn import BASES

        if args.basis not in BASES:
            raise CLIError(f"--basis {args.basis!r}: unknown; choose one of {', '.join(BASES)}")
        cfg["basis"] = args.basis
    if args.activation is not None:
        from .nn import ACTIVATIONS

        if args.activation not in ACTIVATIONS:
            raise CLIError(
                f"--activation {args.activation!r}: unknown activation; choose one of "
                f"{', '.join(ACTIVATIONS)}"
            )
        cfg["activation"] = args.activation
    return cfg


def _check_run(args, problem, model: dict) -> None:
    """Build the model once (under the preset, which the caller has applied), so that a
    mistake is reported before a run directory exists (building is cheap next to training)."""
    from .training import build_model, preset_model_config, resolve_dtype

    try:
        cfg = preset_model_config(problem, args.preset, model)
        build_model(problem, cfg, resolve_dtype(args.dtype or problem.dtype), "cpu")
    except (ValueError, TypeError) as e:
        label = " ".join(_given(args, MODEL_OPTIONS))
        if not label:  # the problem file's model (or its preset's) is at fault
            label = problem.source or problem.name
            label += f": preset {args.preset!r}" if args.preset else ""
        raise CLIError(f"{label}: {_first_line(e)}") from None


def _discard(created: list[Path]) -> None:
    """Remove the directories this command created (deepest first) while they are empty."""
    if created and created[0].is_dir():  # with the empty folders a failed study left in it
        for sub in sorted(created[0].rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError:
                    pass
    _remove_if_empty(created)


def _run_settings(args, problem) -> tuple[dict, list | None, dict | None]:
    """Model overrides, schedule and points of a new run, checked (``CLIError`` if bad)."""
    from .problem import apply_preset
    from .schedule import ScheduleError, parse_schedule

    base = apply_preset(problem, args.preset)["model"]
    model = _model_overrides(args, problem, base)
    own_mlp = problem.model.get("type", "kan") == "mlp"
    if model.get("type") == "mlp" and base.get("type", "kan") != "mlp" and not own_mlp:
        # An MLP replacing a KAN shares nothing with its defaults but the width's ends (an MLP
        # problem's own width and activation stay the defaults, also under a KAN preset).
        width = model.get("width") or [problem.domain_dim, 50, 50, 50, len(problem.outputs)]
        model = {"type": "mlp", "width": width, "activation": model.get("activation", "tanh")}
    schedule = None
    if args.schedule is not None:
        try:
            schedule = parse_schedule(args.schedule)
        except ScheduleError as e:
            raise CLIError(f"--schedule {args.schedule!r}: {e}") from None
    if args.grid is not None and model.get("type", base.get("type", "kan")) == "kan":
        stages = schedule or parse_schedule(apply_preset(problem, args.preset)["schedule"])
        first = stages[0].grid
        if first is not None and first != args.grid:
            grids = " -> ".join(str(s.grid) for s in stages if s.grid is not None)
            raise CLIError(
                f"--grid {args.grid}: the schedule sets the grids ({grids}) and would change "
                f"it to {first} at once; give the grids in --schedule instead, e.g. "
                f"'{args.grid}:lbfgs=200'"
            )
    points = parse_points(args.points) if args.points is not None else None
    if points is not None:
        from .problem import check_initial, check_resampling

        try:  # the whole budget the run will have: the problem's (or preset's) and these
            check_resampling({**apply_preset(problem, args.preset)["points"], **points})
            check_initial(points, problem.domain)
        except ValueError as e:
            raise CLIError(f"--points {args.points!r}: {str(e).removeprefix('points: ')}") from None
    if args.dtype not in (None, "float32", "float64"):
        raise CLIError(f"--dtype {args.dtype!r}: use float32 or float64")
    return model, schedule, points


def cmd_solve(args) -> int:
    from . import distributed
    from .results import ResultsError
    from .training import TrainingStopped, resolve_device

    problem = load_problem(args.problem)
    if args.resume is not None:
        run_dir = Path(args.resume)
        if run_dir.is_file():
            raise CLIError(f"--resume {args.resume}: a file; give the run directory holding it")
        if not run_dir.is_dir():
            raise CLIError(f"--resume {args.resume}: no such run directory")
        if not (run_dir / "checkpoint.h5").exists():
            if (run_dir / "result.h5").exists():
                why = "that run has finished (result.h5); there is nothing to resume"
            elif (run_dir / "comparison.h5").exists():
                why = "a comparison study; continue it with kanpde compare PROBLEM --resume"
            elif (run_dir / "sweep.json").exists():
                why = "a grid sweep; continue it with kanpde sweep PROBLEM --resume"
            else:
                why = "no checkpoint.h5 in that run directory"
            raise CLIError(f"--resume {args.resume}: {why}")
        given = [RUN_OPTIONS[d] for d in RUN_OPTIONS if getattr(args, d) is not None]
        if given:
            raise CLIError(
                f"--resume {args.resume}: {', '.join(given)} cannot be combined with --resume "
                f"(the run continues with its own settings; only {', '.join(RESUME_OPTIONS)} "
                "may be given)"
            )
        model, schedule, points = {}, None, None  # the run's own, from its checkpoint
        unknowns = None
    else:
        model, schedule, points = _run_settings(args, problem)
        unknowns = None if args.unknowns is None else parse_unknowns(args.unknowns, problem)
    try:
        device = resolve_device(args.device)  # before any run directory exists
    except ValueError as e:
        raise CLIError(f"--device {args.device}: {e}") from None
    if args.graphs == "on" and device.type != "cuda":
        raise CLIError(f"--graphs on: CUDA graphs need a CUDA device, and the run is on {device}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise CLIError(f"--seed {args.seed}: must be an integer from 0 to {MAX_SEED}")
    if args.log_every is not None and args.log_every < 1:
        raise CLIError(f"--log-every {args.log_every}: must be >= 1")
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise CLIError(f"--checkpoint-every {args.checkpoint_every}: must be >= 0")
    created: list[Path] = []  # run directory and the parents made for it, deepest first
    if args.resume is not None:
        out = Path(args.resume)
    else:
        _check_run(args, problem, model)
        args.device = distributed.setup(args.device)  # joins torchrun's process group
        seed = 0 if args.seed is None else args.seed
        parent = "runs" if args.out is None else args.out
        out = failed = None
        if distributed.rank() == 0:
            try:
                out, created = new_run_directory(parent, problem.name, seed)
            except CLIError as e:  # every rank reports it, not only the one that found it
                failed = str(e)
        failed = distributed.shared_failure(failed)
        if failed is not None:
            raise CLIError(failed)
        out = distributed.broadcast(out)
    if not os.access(out, os.W_OK):
        _discard(created)
        option = "--out" if args.resume is None else "--resume"
        raise CLIError(f"{option} {out}: directory is not writable")
    try:
        run = _solve(args, problem, model, schedule, points, out, unknowns)
    except TrainingStopped as e:
        print(f"kanpde: error: {e}", file=sys.stderr)
        if e.run is not None and e.run.path is not None:
            print(f"results so far: {e.run.path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        if distributed.rank() == 0:
            _interrupted(args, out, created, e)
        return exit_status(e)
    except BaseException as e:
        _discard(created)  # e.g. an error in the problem's code found while setting up
        kept = out / "checkpoint.h5" if out is not None else None
        if (
            isinstance(e, ValueError)
            and not isinstance(e, ResultsError)  # it says itself how --resume writes them
            and args.resume is None
            and kept is not None
            and kept.exists()
        ):
            # found later in training: the work so far is kept, and the message says where
            raise ProblemError(
                f"{e}; the run's checkpoint stays in {kept} (--resume {out} continues it while "
                "the problem file is unchanged)"
            ) from e
        raise
    if distributed.rank() != 0:
        return 0
    m = run.metrics
    parts = [f"{problem.name}: {m['steps']} steps in {m['train_time']:.1f} s"]
    for key in ("mse", "rel_l2", "max_err"):
        if key in m:
            parts.append(f"{key} {_relative_shown(m, key)}")
    if len(problem.outputs) > 1:  # a system's joint error can hide one poor output
        parts += [f"rel_l2({o}) {_relative_shown(m, f'rel_l2_{o}')}" for o in problem.outputs
                  if f"rel_l2_{o}" in m]  # fmt: skip
    parts.append(f"parameters {m['parameters']}")
    parts += [f"{name} = {value:.8g}" for name, value in run.unknowns.items()]
    stalled = [e for e in run.events if e.get("event") == "lbfgs_converged"]
    if stalled:  # else "68 steps" alone does not say that 132 more were planned
        where = ", ".join(str(e["step"]) for e in stalled)
        parts.append(f"L-BFGS made no progress and ended its stage early at step {where}")
    recovered = [e for e in run.events if e.get("event") == "nonfinite"]
    if recovered:  # else only run.events would tell that training hit trouble
        n, action = len(recovered), recovered[-1]["action"]
        parts.append(
            f"1 non-finite loss: {action}" if n == 1 else f"{n} non-finite losses, last: {action}"
        )
    print(", ".join(parts))
    print(f"results: {run.path}")
    return 0


def _relative_shown(m: dict, key: str) -> str:
    """A metric for the summary line; a relative error against an exact solution that is zero on
    the whole test set is undefined (NaN) and says so, which a bare ``nan`` would not."""
    value = m[key]
    if key.startswith("rel_l2") and math.isnan(value) and math.isfinite(m.get("mse", math.nan)):
        what = f"output {key[len('rel_l2_') :]}" if key != "rel_l2" else "solution"
        return f"undefined (the exact {what} is zero on the test set)"
    return f"{value:.3e}"


def _interrupted(args, out: Path, created: list[Path], stop: KeyboardInterrupt) -> None:
    """Tell where the checkpoint of an interrupted run is and how to continue it."""
    from . import distributed

    if getattr(stop, "result", None) is not None:  # the stop came after the results were written
        print(f"kanpde: interrupted, but the run had finished: {stop.result}", file=sys.stderr)
        return
    checkpoint = out / "checkpoint.h5"
    if not checkpoint.exists():
        _discard(created)
        print("kanpde: interrupted before the first checkpoint; nothing to resume", file=sys.stderr)
        return
    if getattr(stop, "finished", False) and getattr(stop, "saved", False):
        print(
            f"kanpde: interrupted while writing the results; training had finished and is "
            f"saved in {checkpoint}",
            file=sys.stderr,
        )
    elif getattr(stop, "saved", False):
        print(f"kanpde: interrupted; checkpoint saved in {checkpoint}", file=sys.stderr)
    else:  # a second Ctrl-C: the state of that moment may be mid-step, so it was not saved
        print(
            f"kanpde: stopped at once; the last regular checkpoint is kept in {checkpoint}",
            file=sys.stderr,
        )
    command = f"kanpde solve {shlex.quote(str(args.problem))} --resume {shlex.quote(str(out))}"
    if distributed.world() > 1:  # as many processes, or the resumed run ends otherwise
        command = f"torchrun --nproc-per-node {distributed.world()} -m {command}"
    print(f"continue with: {command}", file=sys.stderr)
    if distributed.world() > 1:
        print("(on several machines, with torchrun's options of the first run)", file=sys.stderr)


def _solve(args, problem, model, schedule, points, out, unknowns=None):
    from .training import solve

    if args.resume is not None:
        # None: the run's own intervals (saved with it); "auto": the run's own device.
        return solve(
            problem,
            out=out,
            resume=out,
            device=args.device,
            log_every=args.log_every,
            progress=not args.quiet,
            checkpoint_every=args.checkpoint_every,
            compile=args.compile,
            graphs=_GRAPHS[args.graphs],
        )
    return solve(
        problem,
        model=model or None,
        schedule=schedule,
        points=points,
        device=args.device,
        dtype=args.dtype,
        seed=0 if args.seed is None else args.seed,
        out=out,
        log_every=args.log_every,  # None: solve()'s default, which the help text quotes
        progress=not args.quiet,
        preset=args.preset,
        compile=args.compile,
        graphs=_GRAPHS[args.graphs],
        checkpoint_every=args.checkpoint_every,
        unknowns=unknowns,
    )


_GRAPHS = {"auto": "auto", "on": True, "off": False}  # --graphs, as solve(graphs=...) takes it


# kanpde functions that train: a module-level call of one makes a file a script, not a problem
_TRAINS = frozenset({"solve", "solve_timed", "compare", "sweep", "main"})
# and those of kanpde.symbolic that train or fit (registering a function, add_function, is
# a problem file's business)
_SYMBOLIC_WORK = frozenset(
    {"train", "prune", "fit_function", "suggest_symbolic", "fix_symbolic", "auto_symbolic",
     "formula"}
)  # fmt: skip


def _kanpde_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted kanpde name, from the module's imports of kanpde."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "kanpde":
                    names[a.asname or "kanpde"] = a.name if a.asname else "kanpde"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "kanpde":
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _is_main_guard(node) -> bool:
    """``if __name__ == "__main__":`` (either way round)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    return any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and any(
        isinstance(x, ast.Constant) and x.value == "__main__" for x in sides
    )


def _training_call(tree: ast.Module):
    """A function ``calls(node) -> line`` of the first call in ``node`` (not inside lambdas or
    nested definitions) of a kanpde function that trains, or of a function of the module
    that makes one; 0 if none."""
    names = _kanpde_names(tree)

    def dotted(expr) -> str | None:
        if isinstance(expr, ast.Name):
            return names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = dotted(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    local: set[str] = set()

    def calls(node, skip=("body", "orelse", "finalbody", "handlers")) -> int:
        todo = [child for name, child in ast.iter_fields(node) if name not in skip]
        while todo:
            item = todo.pop()
            if isinstance(item, list):
                todo.extend(item)
                continue
            if not isinstance(item, ast.AST):
                continue
            if isinstance(item, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(item, ast.Call):
                name = dotted(item.func)
                module, _, last = (name or "").rpartition(".")
                if last in _TRAINS or (module == "kanpde.symbolic" and last in _SYMBOLIC_WORK):
                    return item.lineno
                if isinstance(item.func, ast.Name) and item.func.id in local:
                    return item.lineno
            todo.extend(ast.iter_child_nodes(item))
        return 0

    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    changed = True
    while changed:  # functions that train, also through each other
        changed = False
        for f in functions:
            if f.name not in local and any(calls(stmt, skip=()) for stmt in f.body):
                local.add(f.name)
                changed = True
    return calls


def _assigns_problem(path: Path) -> bool | int:
    """Whether ``path`` binds ``problem`` at module level: by assignment (also unpacked, or in
    ``if``/``try``/``with``/``for`` blocks) or import. Unparsable files, and files writing
    ``globals()``, count as yes, so that the listing reports what importing them gives. A file
    that binds it but also trains at module level (a call of kanpde's ``solve``,
    ``compare.compare``/``sweep``, of ``kanpde.symbolic``'s ``train``, ``prune``, ``formula``
    and other fitting functions, or of its own function that makes one, outside
    ``if __name__ == "__main__":``) is a script: the line of that call is returned."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return True
    if "globals()" in text:
        return True

    def binds(target) -> bool:
        if isinstance(target, ast.Name):
            return target.id == "problem"
        if isinstance(target, ast.Starred):
            return binds(target.value)
        if isinstance(target, ast.Tuple | ast.List):
            return any(binds(t) for t in target.elts)
        return False

    def module_level(nodes):
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if _is_main_guard(node):
                continue
            yield node
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from module_level(getattr(node, field, []) or [])

    trains = _training_call(tree)
    found, script = False, 0
    for node in module_level(tree.body):
        if isinstance(node, ast.Assign) and any(binds(t) for t in node.targets):
            found = True
        if isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For) and binds(node.target):
            found = True
        if isinstance(node, ast.With) and any(binds(i.optional_vars) for i in node.items):
            found = True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            (a.asname or a.name) == "problem" for a in node.names
        ):
            found = True
        script = script or trains(node)
    return (script or True) if found else False


def cmd_list(args) -> int:
    folder = Path(args.folder)
    if folder.is_file():
        raise CLIError(f"list {folder}: a file; list takes the folder of problem files")
    if not folder.is_dir():
        raise CLIError(f"list {folder}: no such folder")
    # Listing imports each file; a script beside the problems (one that trains, say) would run,
    # so only files assigning a top-level `problem` are imported, and not those that also call
    # solve() and the like.
    found = {f: _assigns_problem(f) for f in sorted(folder.glob("*.py")) if f.is_file()}
    files = [f for f, ok in found.items() if ok]
    if not files:
        raise CLIError(f"list {folder}: no problem files (*.py assigning `problem`) in that folder")
    width = max(len(f.stem) for f in files)
    for f in files:
        if found[f] is not True:
            print(f"{f.stem:<{width}}  [script, not imported: line {found[f]} runs a study]")
            continue
        try:
            p = load_problem(f)
            print(f"{f.stem:<{width}}  {p.description or p.name}")
        except ProblemError as e:
            print(f"{f.stem:<{width}}  [invalid] {e}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the one line every other kanpde error takes."""

    def error(self, message: str):
        if "expected one argument" in message:
            message += " (a value starting with '-' is written --option=VALUE)"
        print(f"kanpde: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kanpde", description="Physics-informed KANs for PDEs")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="train a KAN (or MLP) on a problem file")
    s.add_argument("problem", help="problem file, e.g. problems/poisson2d.py")
    s.add_argument(
        "--model", choices=["kan", "mlp"], help="trial function (default: the problem's)"
    )
    s.add_argument("--width", help="layer widths, e.g. 2,10,1")
    s.add_argument("--grid", type=int, help="initial grid size G")
    s.add_argument("--k", type=int, help="B-spline degree (3: cubic)")
    s.add_argument("--basis", help="bspline, rbf, rswaf or chebyshev")
    s.add_argument("--activation", help="MLP activation (tanh, sin, silu, softplus, gelu)")
    s.add_argument("--schedule", help='stages, e.g. "5:adam=2000@1e-3,10:lbfgs=200,20:lbfgs=200"')
    s.add_argument("--points", help="e.g. interior=2601,boundary=204,method=grid")
    s.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    s.add_argument("--dtype", help="float32 or float64 (default: the problem's)")
    s.add_argument("--preset", help="one of the presets the problem file defines, if any")
    s.add_argument(
        "--unknowns", help="starting values of an inverse problem's unknowns, e.g. kappa=0.3"
    )
    s.add_argument("--compile", action="store_true", help="torch.compile the derivative evaluation")
    s.add_argument(
        "--graphs",
        choices=tuple(_GRAPHS),
        default="auto",
        help="replay each evaluation as a CUDA graph: auto (default: on a GPU when the pde "
        "allows; else without), on (an error if it cannot), off",
    )
    # Defaults of None: --resume must tell an option given from one left alone.
    s.add_argument("--seed", type=int, help="random seed (default 0)")
    s.add_argument("--out", help="parent directory of the run directory (default: runs)")
    s.add_argument(
        "--log-every",
        type=int,
        help=f"steps between history rows (default {LOG_EVERY}; with --resume, the run's)",
    )
    s.add_argument(
        "--checkpoint-every",
        type=int,
        help=f"steps between checkpoints, 0: none (default {CHECKPOINT_EVERY}; with "
        "--resume, the run's)",
    )
    s.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run saved in RUN_DIR with its own settings (model, schedule, points, "
        "seed, dtype, preset, unknowns' start values, log and checkpoint intervals, device); "
        "only "
        f"{', '.join(RESUME_OPTIONS)} may be given with it (--device moves the run)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_solve)

    ls = sub.add_parser("list", help="list the problems in a folder")
    ls.add_argument("folder", nargs="?", default="problems", help="default: problems")
    ls.set_defaults(func=cmd_list)
    # Commands that live with their subject: each module defines register(subparsers).
    for name in ("compare", "plot", "symbolic"):
        if importlib.util.find_spec(f"kanpde.{name}") is not None:
            importlib.import_module(f"kanpde.{name}").register(sub)
    return parser


def _show_warning(previous, message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, KanpdeWarning):  # one line, no source location
        print(f"kanpde: warning: {message}", file=sys.stderr)
    else:  # others (torch's, a user function's) go where they went, as they looked
        previous(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for "continue with" lines
    from .distributed import launched, leave
    from .signals import terminate_as_interrupt

    try:
        # SIGTERM and SIGHUP end a command as Ctrl-C does (checkpoint, clean-up, message)
        # (not under torchrun: ranks blocked in a collective could not raise, and torchrun
        # stops them itself)
        with warnings.catch_warnings(), terminate_as_interrupt(active=not launched()):
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            if launched() and args.command != "solve":  # each rank would do all the work
                raise CLIError(
                    f"kanpde {args.command}: under torchrun only kanpde solve runs "
                    "(data-parallel); run this command without torchrun"
                )
            return args.func(args)
    except (ProblemError, CLIError, ValueError) as e:
        print(f"kanpde: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if not getattr(e, "reported", False):  # a command that said so itself, with more
            print("kanpde: interrupted", file=sys.stderr)
        return exit_status(e)
    except BrokenPipeError:  # `kanpde list | head`: the reader left; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        leave()


if __name__ == "__main__":
    sys.exit(main())
