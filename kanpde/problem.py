"""The :class:`Problem` specification and problem-file loading.

A problem file is a plain Python module that defines ``problem = Problem(...)``. Loading it
validates the specification and reports any mistake as one line that names the file.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import importlib.util
import inspect
import math
import numbers
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import distributed
from .conditions import Condition, Initial
from .geometry import Domain
from .nn.kan import _whole
from .schedule import Stage

# No default grid here: the schedule's first grid sets it (the KAN's own default, 5, without
# one), and a grid in the model is then the user's, also after dataclasses.replace.
DEFAULT_MODEL = {"type": "kan", "width": None, "k": 3}
MODEL_OPTIONS = {
    "kan": {
        "width",
        "grid",
        "k",
        "grid_range",
        "input_range",
        "basis",
        "grid_eps",
        "init_scale",
        "bias",
    },
    "mlp": {"width", "activation"},
}
DEFAULT_POINTS = {"interior": 2000, "boundary": 400, "initial": 400, "method": "sobol", "test": 101}
# the default test grid's points per axis, by the number of coordinates (time included)
TEST_PER_AXIS = {1: 101, 2: 101, 3: 31}


def default_test(dim: int) -> int:
    """Points per axis of the default test grid with ``dim`` coordinates (11 beyond three)."""
    return TEST_PER_AXIS.get(dim, 11)


class ProblemError(ValueError):
    """A problem file or specification is invalid (message: one line naming the problem)."""


class KanpdeWarning(UserWarning):
    """A setting that runs but probably not as meant (the command line prints it as one line)."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = KanpdeWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside kanpde: the line of the user's
    script or notebook cell that led to it, however deep in kanpde it was raised. Under
    torchrun only the first rank warns (the ranks run the same checks: N copies said nothing
    more)."""
    # (RANK alone, without a launch of several processes, mutes nothing: launchers set it)
    if distributed.launched() and os.environ.get("RANK", "0") != "0":
        return
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# The Problem fields that are dicts, with an example of each for the error messages.
DICT_FIELDS = {
    "model": "{'width': [2, 10, 1], 'grid': 5}",
    "points": "{'interior': 2000, 'boundary': 400}",
    "weights": "{'pde': 1.0, 'dirichlet': 10.0}",
    "presets": "{'fast': {'schedule': '300:adam'}}",
    "unknowns": "{'k': 1.0}",
}


@dataclass
class Problem:
    """A PDE to solve with a physics-informed trial function.

    ``model``, ``schedule``, ``points`` and ``weights`` are defaults, which a preset and
    :func:`kanpde.solve`'s arguments override.

    Parameters
    ----------
    name : str
        Short identifier (used for run directories).
    domain : kanpde.geometry.Domain
        Where the PDE holds; time-dependent problems use a space-time domain.
    pde : callable
        ``pde(x, u)`` → the residual, built with :mod:`kanpde.operators` (``x``: ``(N, D)``
        points, ``u``: ``(N, m)`` outputs): one tensor ``(N,)``, ``(N, 1)`` or ``(N, k)``
        (loss term ``pde``), or for systems a tuple or list of them (terms ``pde[0]``,
        ``pde[1]``, ...) or a dict (terms ``pde[key]``), each weighted by that name. A problem
        with ``unknowns`` has ``pde(x, u, p)``, ``p[name]`` the unknown's current value
        (``pde(x, u)`` will do when only conditions read the unknowns).
    conditions : sequence of Condition, or one Condition
        Boundary, initial and data conditions.
    exact : callable, optional
        ``exact(x)`` → ``(N, m)`` exact solution, for test errors.
    reference : Reference or callable, optional
        A :class:`kanpde.reference.Reference` (or a function of no arguments returning one,
        called lazily) when no closed form exists; give ``exact`` or ``reference``, not both.
    outputs : sequence of str
        Names of the outputs, e.g. ``("u", "v", "p")``.
    model : dict
        Model configuration: ``type`` (``"kan"``, the default, or ``"mlp"``) and its options;
        ``width`` defaults to ``[dim, 10, outputs]``.
    schedule : str, dict or sequence of Stage or dict
        Training schedule, in any form :func:`kanpde.parse_schedule` takes.
    points : dict
        Point budget, keys ``interior``, ``boundary`` (shared by the boundary
        conditions), ``initial`` (each Initial condition's), ``test`` (points per axis of the
        test grid, default 101), ``method`` (``sobol`` (default), ``lhs``, ``uniform``,
        ``grid``), ``seed`` (of the samplers), ``resample`` (draw new interior points every N
        steps) and ``adaptive`` (draw them where the residual is large, with ``resample``).
    weights : dict
        Loss weights by term name (``pde``, a condition's name, ...).
    dtype : str
        Default floating point type, ``"float64"`` or ``"float32"``.
    presets : dict
        Named alternatives to the defaults, e.g. ``{"full": {"points": {...}, "schedule":
        [...]}}`` for a GPU-sized run (``kanpde solve --preset full``); each may set ``model``,
        ``schedule``, ``points`` and ``weights``.
    description : str
        One line for ``kanpde list`` (default: the first line of the problem file's
        docstring).
    unknowns : dict, optional
        An inverse problem's unknown coefficients with their starting values, e.g.
        ``{"k": 1.0}``: trained with the network (data conditions such as
        :class:`~kanpde.PointData` pin them down), recorded in the history as ``param_k``
        and in a run's ``unknowns``. The PDE reads them as ``p["k"]``; a condition names
        one by a string (``Robin(alpha="k", ...)``, ``Dirichlet("k")``).
    source : str, optional
        The problem file, set by :func:`load_problem` (it names the file in messages and is
        hashed into runs, so that ``--resume`` can tell a changed file).
    """

    name: str
    domain: Domain
    pde: Callable
    conditions: Sequence[Condition] | Condition = ()
    exact: Callable | None = None
    reference: object | None = None
    outputs: Sequence[str] = ("u",)
    model: dict = field(default_factory=dict)
    schedule: str | dict | Sequence[Stage | dict] = field(
        default_factory=lambda: [{"adam": 1000, "lr": 1e-2}]
    )
    points: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    dtype: str = "float64"
    presets: dict = field(default_factory=dict)
    description: str = ""
    unknowns: dict = field(default_factory=dict)
    source: str | None = None  # the problem file, set by load_problem
    _not_keywords = ("source",)  # (no field: set by load_problem, not by a problem file)

    def __post_init__(self) -> None:
        if isinstance(self.outputs, str):  # "uv" would become the outputs u and v
            raise ProblemError(
                f"problem {self.name!r}: outputs must be a list of names such as "
                f"['{self.outputs}'], got the string {self.outputs!r}"
            )
        self.outputs = tuple(self.outputs)

        def fail(msg: str):
            raise ProblemError(f"problem {self.name!r}: {msg}")

        self._check_dict_fields(fail)  # merged with defaults below: a TypeError there
        try:
            self.conditions = _condition_list(self.conditions)
        except ValueError as e:
            raise ProblemError(f"problem {self.name!r}: {e}") from None
        # The KAN default (k) is no option of an MLP: a problem's MLP gets none of them.
        kind = self.model.get("type", "kan") if isinstance(self.model, dict) else "kan"
        base = DEFAULT_MODEL if kind == "kan" else {"type": kind, "width": None}
        self.model = {**base, **self.model}
        if self.model.get("width") is None:
            self.model["width"] = [self.domain_dim, 10, len(self.outputs)]
        given = self.points if isinstance(self.points, dict) else {}
        # (a count other than the default's: dataclasses.replace passes the merged budget)
        if given.get("initial", DEFAULT_POINTS["initial"]) != DEFAULT_POINTS["initial"]:
            try:
                check_initial(given, self.domain)
            except ValueError as e:
                # an Initial condition on a domain without time is the mistake to name (its
                # check in validate() says how to add the time axis), not the count it drew
                if not any(isinstance(c, Initial) for c in self.conditions):
                    raise ProblemError(f"problem {self.name!r}: {e}") from None
        # test is per axis: 101 in 3-D (or 2-D and time) would be a million points,
        # evaluated at every history row and saved with the run
        test = {"test": default_test(self.domain_dim)}
        self.points = {**DEFAULT_POINTS, **test, **self.points}
        self.validate()

    def _check_models(self, fail: Callable[[str], None]) -> None:
        """Build the model and each preset's once (a small network, on the CPU): their options
        are checked where they are written, not when a run is started with them."""
        import torch

        from .schedule import parse_schedule
        from .training import build_model, preset_model_config

        for label, name in [("model", None)] + [
            (f"preset {n!r} model", n) for n, p in self.presets.items() if "model" in p
        ]:
            try:
                # a check only: the random numbers of its initialisation are given back, so
                # that building a Problem leaves a seeded script's draws as they were
                with torch.random.fork_rng(devices=[]):
                    build_model(self, preset_model_config(self, name, None) if name else None)
            except (ValueError, TypeError) as e:
                fail(f"{label}: {e}")
        grid, first = self.model.get("grid"), parse_schedule(self.schedule)[0].grid
        if self.model.get("type", "kan") == "kan" and None not in (grid, first) and grid != first:
            # the schedule's grid wins: the model's would be replaced before the first step
            fail(
                f"model grid {grid} conflicts with the schedule, which starts at grid {first}; "
                "set the grids in the schedule"
            )

    def _check_dict_fields(self, fail: Callable[[str], None]) -> None:
        """The fields that hold dicts (model, points, weights, presets, unknowns) are dicts."""
        for label, example in DICT_FIELDS.items():
            given = getattr(self, label)
            if not isinstance(given, dict):
                fail(
                    f"{label} must be a dict such as {example}, got {type(given).__name__} "
                    f"{given!r}"
                )

    @property
    def domain_dim(self) -> int:
        """Number of coordinates of a point of :attr:`domain` (time included)."""
        return int(getattr(self.domain, "dim", 0))

    def validate(self) -> None:
        """Check the specification; raise :class:`ProblemError` with one clear line."""
        where = self.source or f"problem {self.name!r}"

        def fail(msg: str):
            raise ProblemError(f"{where}: {msg}")

        if not isinstance(self.name, str) or not self.name.strip():
            fail("name must be a non-empty string")
        if not self.name.isprintable():  # it names run directories and printed lines
            fail(f"name must be printable, without newlines or tabs, got {self.name!r}")
        if re.search(r"[/\\\x00]", self.name) or self.name.strip() in (".", ".."):
            # it names the run directories: a path here would write outside --out
            fail("name must not contain '/' or '\\' or be '.' or '..' (it names run directories)")
        if not hasattr(self.domain, "sample") or not hasattr(self.domain, "dim"):
            fail(
                f"domain must be a kanpde geometry (Interval, Rectangle, ...), got {self.domain!r}"
            )
        if not callable(self.pde):
            fail("pde must be a function pde(x, u) returning the residual")
        self._check_dict_fields(fail)  # (again: a field may be set after construction)
        # A list the checks below may qualify in place, also after `problem.conditions = ...`.
        try:
            self.conditions = _condition_list(self.conditions)
        except ValueError as e:
            fail(str(e))
        named = set()
        for c in self.conditions:
            for what, name in c.unknown_names().items() if isinstance(c, Condition) else ():
                if name not in self.unknowns:  # (before pde's p: a typo here would read as that)
                    fail(
                        f"condition {c.name!r}: {what} {name!r} {_undeclared(name, self.unknowns)}"
                    )
                named.add(name)
        _check_unknowns(self.unknowns, self.pde, fail, named)
        # NumPy scalars (a start of data.mean()) as plain floats: the run's record is JSON
        self.unknowns = {name: float(v) for name, v in self.unknowns.items()}
        if not self.outputs or not all(isinstance(o, str) and o.strip() for o in self.outputs):
            fail(f"outputs must be a non-empty list of names, got {self.outputs!r}")
        for name in self.unknowns:  # "u = 1.94" in a run's summary would read as the solution
            if name in self.outputs or name in getattr(self.domain, "names", ()):
                kind = "an output" if name in self.outputs else "an axis"
                fail(f"unknowns: {name!r} is also the name of {kind}; choose another name")
        repeated = sorted({o for o in self.outputs if self.outputs.count(o) > 1})
        if repeated:
            # component="u" would silently mean the first of them
            fail(f"outputs must be distinct names; repeated: {', '.join(repeated)}")
        for c in self.conditions:
            if not isinstance(c, Condition):
                fail(f"conditions must be kanpde conditions (Dirichlet, ...), got {c!r}")
            try:
                c.columns(self.outputs)
            except ValueError as e:
                fail(str(e))
            try:  # Initial's time axis, piece names, Periodic axes: `kanpde list` refuses them too
                c.check(self.domain)
            except ValueError as e:
                fail(str(e))
        if self.exact is not None and not callable(self.exact):
            fail("exact must be a function exact(x) returning (N, outputs)")
        if self.exact is not None and self.reference is not None:
            # the test set would use exact alone
            fail("give exact= (a closed form) or reference= (a numerical solution), not both")
        if self.reference is not None:
            from .reference import Reference

            if not isinstance(self.reference, Reference) and (
                not callable(self.reference) or _needs_arguments(self.reference)
            ):
                fail(
                    "reference must be a kanpde.reference.Reference or a function of no "
                    "arguments returning one; for a closed form u(x) use exact="
                )
        kind = self.model.get("type", "kan")
        if kind not in MODEL_OPTIONS:
            fail(f"model type {kind!r} unknown; use kan or mlp")
        unknown = set(self.model) - MODEL_OPTIONS[kind] - {"type"}
        if unknown:
            fail(
                f"unknown {kind} option(s) {', '.join(sorted(unknown))} in model; allowed: "
                f"{', '.join(sorted(MODEL_OPTIONS[kind]))}"
            )
        from .schedule import ScheduleError, parse_schedule

        for label, sched in [("schedule", self.schedule)] + [
            (f"preset {n!r} schedule", p["schedule"])
            for n, p in self.presets.items()
            if isinstance(p, dict) and "schedule" in p
        ]:
            try:
                parse_schedule(sched)
            except ScheduleError as e:
                fail(f"{label}: {e}")
        width = self.model.get("width")
        if self.model.get("type", "kan") in ("kan", "mlp") and width is not None:
            from .nn.kan import check_width

            try:
                width = check_width(width)
            except ValueError as e:
                fail(f"model {e}")
            if width[0] != self.domain_dim:
                fail(
                    f"model width {list(width)} starts with {width[0]} inputs but the domain has "
                    f"{self.domain_dim} coordinates ({', '.join(self.domain.names)})"
                )
            if width[-1] != len(self.outputs):
                fail(
                    f"model width {list(width)} ends with {width[-1]} outputs but the problem "
                    f"has {len(self.outputs)} ({', '.join(self.outputs)})"
                )
        if self.dtype not in ("float32", "float64"):
            fail(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not isinstance(self.presets, dict):
            fail(f"presets must be a dict of named presets, got {type(self.presets).__name__}")
        for pname, preset in self.presets.items():
            # The type first: set() of a number or a string would fail or mislead.
            if not isinstance(preset, dict):
                fail(
                    f"preset {pname!r} must be a dict (keys model, schedule, points, weights), "
                    f"got {type(preset).__name__}"
                )
            if set(preset) - {"model", "schedule", "points", "weights"}:
                fail(f"preset {pname!r} may only set model, schedule, points and weights")
        self._check_models(fail)
        _qualify_clashing_names(self.conditions, self.outputs)
        names = [c.name for c in self.conditions]
        for n in names:
            if n in RESERVED_TERMS or PDE_TERM.fullmatch(n):
                what = RESERVED_TERMS.get(n, "the PDE residual")
                fail(f"condition name {n!r} is taken by {what}'s loss term; choose another name=")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            fail(f"conditions need distinct names (name=...); repeated: {', '.join(dup)}")
        for label, pts, wts in [("", self.points, self.weights)] + [
            (f"preset {n!r} ", p.get("points", {}), p.get("weights", {}))
            for n, p in self.presets.items()
        ]:
            try:
                check_points(pts)
                if label:  # a preset's own points (the problem's are checked as given)
                    check_initial(pts, self.domain)
                check_weights(wts, names)
                check_resampling({**self.points, **pts})
            except ValueError as e:
                fail(f"{label}{e}")


def _takes(fn: Callable, n: int) -> bool | None:
    """Whether ``fn`` can be called with ``n`` positional arguments (None: cannot tell)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def start_value_error(value) -> str | None:
    """Why ``value`` cannot start an unknown (``None`` when it can): a finite real number."""
    if hasattr(value, "shape") and not isinstance(value, numbers.Real):  # a tensor's repr
        return (  # reads like a number
            f"needs a number to start from, got a {type(value).__name__} (float(...) of a "
            "one-element one gives the number)"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return f"needs a finite number to start from, got {value!r}"
    return None


def _check_unknowns(
    unknowns: dict, pde: Callable, fail: Callable[[str], None], named: set[str] = frozenset()
) -> None:
    """Unknowns' names and starting values, and a ``pde`` taking ``p`` when there are
    unknowns (other than those the conditions name, ``named``), and only then."""
    for name, value in unknowns.items():
        if not isinstance(name, str) or not name.isidentifier():
            fail(
                f"unknowns: name {name!r} must be an identifier such as 'k' (p['k'] in pde, "
                "param_k in the history)"
            )
        why = start_value_error(value)
        if why:
            fail(f"unknowns: {name!r} {why}")
    unread = [name for name in unknowns if name not in named]  # which only pde can read
    if unread and _takes(pde, 3) is False:
        fail(
            f"pde must take (x, u, p) when the problem has unknowns; p[{unread[0]!r}] is the "
            f"current value of {unread[0]}"
        )
    if not unknowns and _takes(pde, 2) is False and _takes(pde, 3):
        fail(
            "pde takes a third argument, p, which holds a problem's unknowns, but the problem "
            "declares none (unknowns={'k': 1.0})"
        )


def _undeclared(name: str, unknowns: dict) -> str:
    """Why the string ``name`` does not name an unknown, with the closest declared name."""
    if not unknowns:
        return (
            f"names an unknown, but the problem declares none; add unknowns={{{name!r}: 1.0}} "
            "(its starting value)"
        )
    same_letters = [str(n) for n in unknowns if str(n).lower() == name.lower()]
    close = same_letters or difflib.get_close_matches(name, [str(n) for n in unknowns], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"is not one of the problem's unknowns ({', '.join(map(str, unknowns))}){hint}"


def _needs_arguments(fn: Callable) -> bool:
    """Whether calling ``fn()`` would miss a required argument."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return False
    return any(
        p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in sig.parameters.values()
    )


def _condition_list(conditions) -> list[Condition]:
    """``conditions`` as a new list; one condition alone is a list of one."""
    if isinstance(conditions, Condition):
        return [conditions]
    if isinstance(conditions, (str, bytes, dict)) or not isinstance(conditions, Iterable):
        raise ValueError(f"conditions must be a list such as [Dirichlet(0.0)], got {conditions!r}")
    return list(conditions)


def _qualify_clashing_names(conditions: list[Condition], outputs: Sequence[str]) -> None:
    """Give default names that clash the pieces and components that tell them apart.

    ``Dirichlet(0, component="u")`` beside ``Dirichlet(g, component="v")`` were both
    ``dirichlet``; they become ``dirichlet(u)`` and ``dirichlet(v)``. Names set by the user,
    and default names that do not clash, are left as they are.
    """
    names = [c.name for c in conditions]
    for j, c in enumerate(conditions):
        if c._name or names.count(c.name) < 2:
            continue
        name = c.name
        if isinstance(c.on, list | tuple) and c.on and all(isinstance(p, str) for p in c.on):
            name += f"[{','.join(c.on)}]"
        if c.component is not None:
            name += f"({','.join(outputs[i] for i in c.columns(outputs))})"
        if name != c.name:  # on a copy: the user's object may serve another problem too
            conditions[j] = copy.copy(c)
            conditions[j]._name = name


PDE_TERM = re.compile(r"pde\[.+\]")  # weight of one residual of a PDE returning several
# Loss terms that are not conditions: a condition of the same name would take their place.
RESERVED_TERMS = {"pde": "the PDE residual", "sparsity": "the sparsification penalty"}
POINT_COUNTS = ("interior", "boundary", "initial", "test")
POINT_KEYS = (*POINT_COUNTS, "method", "seed", "resample", "adaptive")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_points(points) -> None:
    """Check a point budget (``Problem.points`` or an override of it).

    Raises
    ------
    ValueError
        One line starting with ``points`` naming the offending key and the valid ones.
    """
    from .geometry import METHODS

    if not isinstance(points, dict):
        raise ValueError(f"points must be a dict, got {type(points).__name__}")
    for key, value in points.items():
        if key not in POINT_KEYS:
            raise ValueError(
                f"points: unknown key {key!r}; valid keys: {', '.join(sorted(POINT_KEYS))}"
            )
        if key == "method":
            if value not in METHODS:
                raise ValueError(f"points: method {value!r} unknown; use {', '.join(METHODS)}")
        elif key == "adaptive":
            if not isinstance(value, bool):
                raise ValueError(f"points: adaptive must be True or False, got {value!r}")
        elif not _whole(value):
            # whole floats such as 1e4 are counts too (solve converts them)
            raise ValueError(f"points: {key} must be an integer, got {value!r}")
        elif value < (1 if key in POINT_COUNTS else 0):
            bound = "positive" if key in POINT_COUNTS else ">= 0"
            raise ValueError(f"points: {key} must be {bound}, got {value}")
        elif key == "test" and value < 2:
            # one point per axis is the domain's centre: no error measure at all
            raise ValueError(f"points: test must be at least 2 (points per axis), got {value}")


def check_initial(points: dict, domain) -> None:
    """Refuse an ``initial`` count on a domain without time: only Initial conditions, which
    need a time axis, draw from it, so it would be ignored."""
    if points.get("initial") is not None and getattr(domain, "time_axis", None) is None:
        raise ValueError(
            "points: initial counts the points of Initial conditions, and the domain has no "
            "time axis"
        )


def check_resampling(points: dict) -> None:
    """Refuse ``adaptive`` without ``resample`` (the steps between draws): it would do nothing.

    ``points`` is a whole budget, the problem's defaults with any overrides applied. An explicit
    ``resample=0`` switches resampling off and is accepted.
    """
    if points.get("adaptive") and "resample" not in points:
        raise ValueError(
            "points: adaptive=True needs resample=N, the steps between draws of new points "
            "(without it nothing is resampled)"
        )


def check_weights(weights, conditions: Sequence[str]) -> None:
    """Check loss weights against the names they can refer to.

    A weight applies to ``"pde"`` (every PDE residual), ``"pde[k]"`` (residual ``k`` of a PDE
    returning a tuple or dict) or a condition's name, as :meth:`kanpde.losses.Residuals.weight`
    resolves them; any other key would be silently unused.

    Raises
    ------
    ValueError
        One line starting with ``weights`` naming the key and listing the valid ones.
    """
    if not isinstance(weights, dict):
        raise ValueError(f"weights must be a dict, got {type(weights).__name__}")
    for key, value in weights.items():
        is_pde = key == "pde" or (isinstance(key, str) and PDE_TERM.fullmatch(key) is not None)
        if not is_pde and key not in conditions:
            valid = ", ".join(
                ["pde", "pde[0], pde[1], ... or pde[<key>] (a system's residuals)", *conditions]
            )
            hint = ""
            if isinstance(key, str) and key.isidentifier():  # a dict residual's bare key
                hint = f"; if the PDE returns a dict with key {key!r}, weight it as 'pde[{key}]'"
            raise ValueError(f"weights: unknown key {key!r}; valid keys: {valid}{hint}")
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ValueError(f"weights: {key!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weights: {key!r} must be finite and >= 0, got {value}")


def apply_preset(problem: Problem, name: str | None) -> dict:
    """The defaults (model, schedule, points, weights) of ``problem`` under preset ``name``."""
    base = {
        "model": dict(problem.model),
        "schedule": problem.schedule,
        "points": dict(problem.points),
        "weights": dict(problem.weights),
    }
    if name is None:
        return base
    if name not in problem.presets:
        known = ", ".join(problem.presets) or "none"
        raise ProblemError(
            f"{problem.source or problem.name}: unknown preset {name!r}; known: {known}"
        )
    preset = problem.presets[name]
    for key in ("model", "points"):
        base[key].update(preset.get(key, {}))
    base["weights"] = merge_weights(base["weights"], preset.get("weights", {}))
    if "schedule" in preset:
        base["schedule"] = preset["schedule"]
    return base


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


def _near_match(path: Path, suffix: str = "") -> str:
    """``"; did you mean P?"`` for a missing ``path`` that is a typo of (or ``suffix`` short
    of) an entry beside it; ``""`` when nothing there is close."""
    if path.suffix == "" and suffix and path.with_suffix(suffix).exists():
        return f"; did you mean {path.with_suffix(suffix)}?"
    try:
        names = [e.name for _, e in zip(range(10_000), os.scandir(path.parent or "."))]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"; did you mean {path.parent / close[0]}?" if close else ""


def _one_line(exc: BaseException) -> str:
    """``exc`` as ``Type: first line of its message`` (the type alone without a message)."""
    name = type(exc).__name__
    return f"{name}: {_first_line(exc)}" if str(exc).strip() else name


def _keywords(cls: type) -> list[str]:
    """The keywords ``cls(...)`` takes, through ``**kw`` handed on to its base classes."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())
        for p in params[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                names.append(p.name)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return [n for n in names if n not in getattr(cls, "_not_keywords", ())]


def _keyword_hint(exc: BaseException, path: Path, namespace: dict, line: int = 0) -> str:
    """For a misspelt keyword of a kanpde class (``Robin(where=...)``), a line naming the
    class the file called, the closest keyword and all it takes; ``""`` for anything else.

    Python's own message names the class whose ``__init__`` refused it, which for a
    ``Dirichlet`` or ``Robin`` is their base ``Condition``, and not what the class takes.
    """
    m = re.match(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(exc))
    if not isinstance(exc, TypeError) or m is None:
        return ""

    def called(func: ast.expr) -> object:  # what the file's name for it is bound to
        if isinstance(func, ast.Name):
            return namespace.get(func.id)
        if isinstance(func, ast.Attribute):
            return getattr(called(func.value), func.attr, None)
        return None

    try:  # the file's calls that passed the keyword name the class called
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return ""
    # the calls on the failing line (``line``, from the traceback) first, then the file's in
    # order: a call of the same keyword elsewhere (in a function never called) is not blamed
    calls = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call)),
        key=lambda n: (not n.lineno <= line <= (n.end_lineno or n.lineno), n.lineno, n.col_offset),
    )
    for node in calls:
        if not any(k.arg == m[2] for k in node.keywords):
            continue
        cls = called(node.func)
        ours = isinstance(cls, type) and cls.__module__.startswith("kanpde.")
        if ours and m[2] not in (names := _keywords(cls)):
            close = difflib.get_close_matches(m[2], names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (
                f"TypeError: {cls.__name__}() has no keyword {m[2]!r}{hint} (it takes "
                f"{', '.join(names)})"
            )
    return ""


def _forget_modules_in(folder: Path, new: set[str]) -> None:
    """Drop from the module cache those of the ``new`` modules that lie in ``folder`` itself
    (modules and packages, with their submodules): a problem file in another folder that
    imports a module of the same name gets its own, not this one."""
    here = set()
    for name in new:
        file = getattr(sys.modules[name], "__file__", None)
        if file:
            file = Path(file).resolve()
            if (file.parent.parent if file.name == "__init__.py" else file.parent) == folder:
                here.add(name)
    for name in new:
        if name in here or any(name.startswith(f"{h}.") for h in here):
            del sys.modules[name]


def load_problem(path: str | Path) -> Problem:
    """Import a problem file and return its validated ``problem``.

    Parameters
    ----------
    path : str or Path
        A Python file that defines ``problem = Problem(...)``; modules beside it can be
        imported from it.

    Returns
    -------
    Problem

    Raises
    ------
    ProblemError
        With one line naming the file and what is wrong.
    """
    if not isinstance(path, str | os.PathLike):
        raise ProblemError(
            f"load_problem: expected the path of a problem file, got {type(path).__name__} {path!r}"
        )
    path = Path(path)
    if not path.exists():
        raise ProblemError(f"{path}: problem file not found{_near_match(path, '.py')}")
    if path.is_dir():
        raise ProblemError(f"{path}: is a directory, expected a problem file (.py)")
    if path.suffix != ".py":
        raise ProblemError(f"{path}: expected a Python problem file ending in .py")
    module_name = "kanpde_problem_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ProblemError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # As `python FILE` does: modules beside the problem file can be imported from it (while
    # it runs; shared helpers are imported at the top of a file).
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    known = set(sys.modules)
    try:
        spec.loader.exec_module(module)
    except ProblemError as e:
        msg = str(e)
        if not msg.startswith(str(path)):
            # a Problem checked while its file runs names itself; the file says more
            msg = f"{path}: {re.sub(r'^problem .*?: ', '', msg, count=1)}"
        raise ProblemError(msg) from None
    except SyntaxError as e:
        raise ProblemError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from None
    except SystemExit as e:  # exit() in a problem file would end the caller without a word
        raise ProblemError(f"{path}: called exit({e.code!r}) while importing") from None
    except Exception as e:  # noqa: BLE001 - any error in user code becomes one line
        line = _traceback_line(e, path)
        at = int(line[1:]) if line else 0
        said = _keyword_hint(e, path, vars(module), at) or _one_line(e)
        raise ProblemError(f"{path}{line}: error while importing: {said}") from None
    finally:
        sys.modules.pop(module_name, None)
        sys.path.remove(folder)  # the first entry equal to it: the one inserted above
        _forget_modules_in(Path(folder), set(sys.modules) - known)
    if not hasattr(module, "problem"):
        raise ProblemError(f"{path}: defines no `problem` (expected problem = Problem(...))")
    problem = module.problem
    if not isinstance(problem, Problem):
        raise ProblemError(
            f"{path}: `problem` must be a kanpde.Problem, got {type(problem).__name__}"
        )
    problem.source = str(path)
    problem.validate()  # again, naming the file: fields set after Problem(...) were not checked
    if not problem.description and (module.__doc__ or "").strip():
        # `kanpde list` shows it: the file's docstring says what the problem is
        problem.description = module.__doc__.strip().splitlines()[0]
    return problem


def user_code_error(problem: Problem, what: str, exc: BaseException) -> ProblemError:
    """The error to raise for an exception from the user's code, as one line.

    Parameters
    ----------
    problem : Problem
        The problem whose code raised (its file names the error).
    what : str
        The code that was called, e.g. ``"pde(x, u)"``.
    exc : BaseException
        The exception; raise the result ``from exc`` to keep the original traceback.

    Returns
    -------
    ProblemError
        ``FILE[:LINE]: WHAT raised TYPE: MESSAGE``; ``LINE`` is the last line of the problem
        file in the traceback (of ``exc`` or the exceptions it was raised from), when there is
        one.
    """
    where = problem.source or f"problem {problem.name!r}"
    raised = _one_line(exc)
    text = str(exc)
    if "numpy() on Tensor that requires grad" in text or (
        "device type tensor to numpy" in text  # a GPU run: torch checks the device first
    ):
        # torch's own advice (.detach().numpy(), .cpu()) cuts the derivatives and fails again
        # on the next line that mixes the array with a tensor
        raised = (
            f"{type(exc).__name__}: NumPy was called on a tensor that carries derivatives; use "
            "torch functions (torch.cos, ...) in it: NumPy cannot carry them"
        )
    return ProblemError(f"{where}{user_line(problem, exc)}: {what} raised {raised}")


def user_line(problem: Problem, exc: BaseException) -> str:
    """``":N"``: the last line of the problem file in the traceback of ``exc`` (or of the
    exceptions it was raised from, for errors re-raised by kanpde); ``""`` when there is none."""
    if not problem.source:
        return ""
    cause: BaseException | None = exc
    while cause is not None:
        line = _traceback_line(cause, Path(problem.source))
        if line:
            return line
        cause = cause.__cause__ or cause.__context__
    return ""


def _traceback_line(exc: BaseException, path: Path) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


def file_hash(path: str | Path | None) -> str:
    """SHA-256 of a problem file and of the modules beside it that it imports ('' when there
    is no file): a run records it, so that a resume can tell the problem was edited, a shared
    helper module included."""
    if not path:
        return ""
    try:
        digest = hashlib.sha256(Path(path).read_bytes())
    except OSError:
        return ""
    helpers = local_imports(path)
    if not helpers:  # the file's own SHA-256, as runs recorded before helpers were hashed
        return digest.hexdigest()
    folder = Path(path).resolve().parent
    for file in helpers:
        digest.update(b"\0" + file.relative_to(folder).as_posix().encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


def local_imports(path: str | Path) -> list[Path]:
    """The files of the modules and packages beside ``path`` that it imports, directly or
    through them (found in the source by name; an import by ``importlib`` is not seen)."""
    folder = Path(path).resolve().parent
    found: set[Path] = set()
    todo = [Path(path).resolve()]
    while todo:
        try:
            tree = ast.parse(todo.pop().read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                package = folder / top
                files = [folder / f"{top}.py"]
                if (package / "__init__.py").is_file():
                    files = sorted(package.rglob("*.py"))
                for file in files:
                    if file.is_file() and file.resolve() not in found:
                        found.add(file.resolve())
                        todo.append(file.resolve())
    found.discard(Path(path).resolve())
    return sorted(found)


def data_hash(problem: Problem) -> str:
    """SHA-256 of the observations of ``problem``'s data conditions (names, points and values
    as float64; '' when it has none): a run records it, so that a resume or a refinement
    can tell data changed in memory or drawn anew, which the file's hash cannot."""
    digest = hashlib.sha256()
    found = False
    for c in problem.conditions:
        if c.where == "data" and hasattr(c, "values"):
            found = True
            digest.update(c.name.encode())
            for a in (c.x, c.values):
                a = np.ascontiguousarray(a, dtype=np.float64)
                digest.update(repr(a.shape).encode())
                digest.update(a.tobytes())
    return digest.hexdigest() if found else ""


def merge_weights(base: dict, override: dict) -> dict:
    """``base``'s loss weights with ``override``'s on top; a ``"pde"`` override (all PDE
    residuals) replaces ``base``'s per-residual ``pde[k]`` weights, which would otherwise win."""
    merged = dict(base)
    if "pde" in override:
        merged = {k: v for k, v in merged.items() if not PDE_TERM.fullmatch(str(k))}
    return {**merged, **override}
