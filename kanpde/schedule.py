"""Training schedules: a list of stages, each one optimizer run at one grid size.

In a problem file a schedule is a list of dicts::

    [{"grid": 5, "adam": 1000, "lr": 1e-2}, {"grid": 10, "lbfgs": 200}]

A dict that names both optimizers (``{"grid": 5, "adam": 500, "lbfgs": 100}``) runs Adam and
then L-BFGS at that grid; its ``lr`` and ``decay`` are Adam's (L-BFGS keeps its step length 1)
and ``history`` is L-BFGS's. On the command line the same schedule is written
``"5:adam=1000@1e-2,10:lbfgs=200"``: stages separated by commas, an optional grid size before
a colon, ``+`` between optimizers of one grid, and an optional learning rate after ``@``; the
other keys of a dict follow as ``+key=value`` (``"5:adam=1000+decay=0.1+update_grid=50"``,
``"10:lbfgs=200+history=50"``), applying to the stages of their grid as in the dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

OPTIMIZERS = ("adam", "lbfgs")
DEFAULT_LR = {"adam": 1e-3, "lbfgs": 1.0}


class ScheduleError(ValueError):
    """A malformed schedule."""


@dataclass
class Stage:
    """One optimizer run.

    Attributes
    ----------
    optimizer : str
        ``"adam"`` or ``"lbfgs"`` (strong-Wolfe line search).
    steps : int
        Optimizer steps (one L-BFGS step is one iteration with its line search).
    grid : int or None
        Grid size for this stage; a change triggers grid extension at the stage start.
    lr : float or None
        Learning rate (default 1e-3 for Adam, 1 for L-BFGS).
    decay : float or None
        Adam only: factor by which the learning rate decays (exponentially) over the stage.
    update_grid : int
        KAN only: adapt the grids to the layer inputs at the stage start (any value > 0) and
        then every ``update_grid`` steps until step ``update_until`` of the stage (pykan's
        ``update_grid`` during ``train``). ``True`` means once, at the start.
    update_until : int or None
        Last step of the stage at which grids are updated (default: half the stage).
    history : int
        L-BFGS memory.
    sparsity : float
        Weight of the sparsification penalty during the stage (KAN only; 0: none), see
        :func:`kanpde.symbolic.regularization`.
    """

    optimizer: str
    steps: int
    grid: int | None = None
    lr: float | None = None
    decay: float | None = None
    update_grid: int = 0
    update_until: int | None = None
    history: int = 100
    sparsity: float = 0.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ScheduleError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        self.steps = _int(self.steps, "steps", minimum=0)
        if self.grid is not None:
            self.grid = _int(self.grid, "grid", minimum=1)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        self.lr = _number(self.lr, "learning rate")
        if not self.lr > 0:
            raise ScheduleError(f"learning rate must be positive, got {self.lr!r}")
        if self.decay is not None:
            self.decay = _number(self.decay, "decay")
            if not 0 < self.decay <= 1:
                raise ScheduleError(f"decay must be in (0, 1], got {self.decay!r}")
        if isinstance(self.update_grid, bool):
            self.update_grid = self.steps + 1 if self.update_grid else 0
        self.update_grid = _int(self.update_grid, "update_grid", minimum=0)
        if self.update_until is None:
            self.update_until = self.steps // 2
        self.update_until = _int(self.update_until, "update_until", minimum=0)
        self.sparsity = _number(self.sparsity, "sparsity")
        if self.sparsity < 0:
            raise ScheduleError(f"sparsity must be non-negative, got {self.sparsity!r}")
        self.history = _int(self.history, "L-BFGS history", minimum=1)

    def to_dict(self) -> dict:
        """The stage as a plain dict of its attributes (the form runs are saved in).

        Returns
        -------
        dict
            ``{"optimizer": …, "steps": …, "grid": …, …}``, one key per attribute; accepted
            back by :func:`parse_schedule`.
        """
        return asdict(self)


_KEYS = {
    "grid",
    "adam",
    "lbfgs",
    "lr",
    "decay",
    "update_grid",
    "update_until",
    "history",
    "optimizer",
    "steps",
    "sparsity",
}


def _int(v, what: str, minimum: int | None = None) -> int:
    """``v`` as an int (an integral float is accepted), at least ``minimum``."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or int(v) != v:
        raise ScheduleError(f"{what} must be an integer, got {v!r}")
    if minimum is not None and v < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f">= {minimum}")
        raise ScheduleError(f"{what} must be {kind}, got {v!r}")
    return int(v)


def _number(v, what: str) -> float:
    """``v`` as a finite float."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ScheduleError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def _from_dict(d: dict) -> list[Stage]:
    unknown = set(d) - _KEYS
    if unknown:
        raise ScheduleError(
            f"unknown schedule key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_KEYS))}"
        )
    common = {
        "grid": d.get("grid"),
        "decay": d.get("decay"),
        "update_grid": d.get("update_grid", 0),
        "update_until": d.get("update_until"),
        "history": d.get("history", 100),
        "sparsity": d.get("sparsity", 0.0),
    }
    opts = [o for o in OPTIMIZERS if o in d]
    if "optimizer" in d:  # the form runs are saved in: {"optimizer": "adam", "steps": N, ...}
        if opts:
            raise ScheduleError(
                f"stage {d!r} names its optimizer twice; write adam=steps or lbfgs=steps alone"
            )
        return [Stage(d["optimizer"], d.get("steps", 0), lr=d.get("lr"), **common)]
    if "steps" in d:
        raise ScheduleError(
            f"stage {d!r}: steps goes with optimizer=...; write the steps as adam=N or lbfgs=N"
        )
    if not opts:
        raise ScheduleError(f"stage {d!r} names no optimizer (adam=steps or lbfgs=steps)")
    # options of one optimizer in a stage without it would be ignored without a word
    for key, owner in (("decay", "adam"), ("history", "lbfgs")):
        if key in d and owner not in opts:
            raise ScheduleError(
                f"stage {d!r}: {key} is an option of {owner}, which this stage does not run"
            )
    if d.get("update_until") is not None and not d.get("update_grid"):
        raise ScheduleError(f"stage {d!r}: update_until goes with update_grid, which it lacks")
    stages = []
    for i, o in enumerate(opts):
        kw = dict(common)
        if i > 0:  # the grid changes (and the grid update happens) once, at the first optimizer
            kw["update_grid"] = 0
            kw["grid"] = None
        if o != "adam":
            kw["decay"] = None
        lr = d.get("lr") if len(opts) == 1 or o == "adam" else None
        stages.append(Stage(o, _int(d[o], f"{o} steps"), lr=lr, **kw))
    return stages


def _from_string(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ScheduleError(f"empty stage in schedule {text!r}")
        grid = None
        if ":" in item:
            g, item = item.split(":", 1)
            try:
                grid = int(g)
            except ValueError:
                raise ScheduleError(f"grid size {g!r} in {text!r} is not an integer") from None
        group: list[tuple[str, int, float | None]] = []
        options: dict[str, float] = {}
        for part in item.split("+"):
            if "=" not in part:
                raise ScheduleError(f"stage {part!r} in {text!r} must read optimizer=steps")
            opt, rest = part.split("=", 1)
            opt = opt.strip().lower()
            if opt in _STRING_OPTIONS:
                if opt in options:
                    raise ScheduleError(f"{opt} given twice in stage {item!r} of {text!r}")
                try:
                    options[opt] = float(rest)
                except ValueError:
                    raise ScheduleError(f"{opt} {rest!r} in {text!r} is not a number") from None
                continue
            lr = None
            if "@" in rest:
                rest, lr_text = rest.split("@", 1)
                try:
                    lr = float(lr_text)
                except ValueError:
                    raise ScheduleError(f"learning rate {lr_text!r} is not a number") from None
            try:
                steps = int(rest)
            except ValueError:
                raise ScheduleError(f"steps {rest!r} in {text!r} is not an integer") from None
            if opt not in OPTIMIZERS:
                raise ScheduleError(
                    f"unknown optimizer or option {opt!r} in {text!r}; optimizers: "
                    f"{', '.join(OPTIMIZERS)}; options after +: {', '.join(_STRING_OPTIONS)}"
                )
            group.append((opt, steps, lr))
        stages.extend(_string_group(grid, group, options, item, text))
    return stages


# The keys of a stage dict written after "+" in the string form (lr has "@").
_STRING_OPTIONS = ("decay", "update_grid", "update_until", "history", "sparsity")


def _string_group(grid, group, options: dict, item: str, text: str) -> list[Stage]:
    """The stages of one grid of the string form: optimizers in order, with ``options``
    applied as a dict's (grid updates at the first, decay to Adam, the others to all)."""
    if not group:
        raise ScheduleError(f"stage {item!r} in {text!r} names no optimizer (adam=steps)")
    names = [opt for opt, _, _ in group]
    for key, owner in (("decay", "adam"), ("history", "lbfgs")):
        if key in options and owner not in names:
            raise ScheduleError(
                f"stage {item!r} in {text!r}: {key} is an option of {owner}, which this stage "
                "does not run"
            )
    if "update_until" in options and not options.get("update_grid"):
        raise ScheduleError(
            f"stage {item!r} in {text!r}: update_until goes with update_grid, which it lacks"
        )
    stages = []
    for j, (opt, steps, lr) in enumerate(group):
        kw = {"sparsity": options.get("sparsity", 0.0), "history": options.get("history", 100)}
        if j == 0:
            kw["grid"] = grid
            kw["update_grid"] = options.get("update_grid", 0)
            kw["update_until"] = options.get("update_until")
        if opt == "adam":
            kw["decay"] = options.get("decay")
        stages.append(Stage(opt, steps, lr=lr, **kw))
    return stages


def parse_schedule(schedule: str | dict | Sequence[Stage | dict]) -> list[Stage]:
    """Normalise a schedule (list of dicts / Stages, or the command-line string) to Stages.

    Parameters
    ----------
    schedule : str, dict or sequence of (Stage or dict)
        The command-line form (``"5:adam=1000@1e-2,10:lbfgs=200"``), one stage dict, or a
        list or tuple of stage dicts and :class:`Stage` objects (see the module docstring).
        A dict naming both optimizers becomes two stages.

    Returns
    -------
    list of Stage
        The stages in order (at least one).

    Raises
    ------
    ScheduleError
        (A ``ValueError``.) If the schedule is empty or of another type, or a stage is
        malformed (unknown key, no or two optimizers, an option of an optimizer the stage
        does not run, a bad number).
    """
    if isinstance(schedule, str):
        stages = _from_string(schedule)
    elif isinstance(schedule, dict):
        stages = _from_dict(schedule)
    elif isinstance(schedule, list | tuple):
        stages = []
        for s in schedule:
            if isinstance(s, Stage):
                stages.append(s)
            elif isinstance(s, dict):
                stages.extend(_from_dict(s))
            else:
                raise ScheduleError(f"a schedule stage must be a dict, got {s!r}")
    else:
        raise ScheduleError(f"schedule must be a list of stages or a string, got {schedule!r}")
    if not stages:
        raise ScheduleError("schedule is empty")
    return stages
