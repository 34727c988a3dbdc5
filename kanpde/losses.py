"""Collocation points and the physics-informed loss.

:class:`Residuals` draws the points of every loss term once (interior points for the PDE,
boundary/initial points for the conditions), evaluates the trial function with the derivatives
each term needs, and returns the mean squared residual of every term.

Derivatives: before training, every term is evaluated once on a few points with plain autograd
to find out which derivatives its residual asks for. During training the model then computes
those (up to second order) in closed form with :meth:`jet`, and pre-fills the operators' cache;
anything else (third derivatives, derivatives of expressions) still falls back to autograd.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from . import operators as ops
from .conditions import Condition, Initial, PointSet
from .nn.jet import Jet
from .problem import (
    PDE_TERM,
    ProblemError,
    _first_line,
    _one_line,
    _takes,
    user_code_error,
    user_line,
    warn,
)

PROBE_POINTS = 8


# parameter names that say "the points"; pde(out, x) or pde(u, pts) has its arguments swapped
_POINT_NAMES = frozenset({"x", "xs", "X", "pts", "points", "coords", "xy", "xt", "xyt", "xyz"})


def _named_u_x(fn) -> bool:
    """Whether ``fn``'s second parameter is named like the points and its first is not:
    swapped arguments, as in ``pde(u, x)``."""
    try:
        names = list(inspect.signature(fn).parameters)[:2]
    except (TypeError, ValueError):
        return False
    return len(names) == 2 and names[1] in _POINT_NAMES and names[0] not in _POINT_NAMES


@dataclass
class Term:
    """One loss term: its points, how to compute its residual and which derivatives it needs."""

    name: str
    points: PointSet
    condition: Condition | None = None  # None: the PDE
    cols: list[int] = field(default_factory=list)
    weight: float = 1.0
    order: int = 0
    pairs: tuple = ()
    fused: bool = False  # evaluated in the shared model call
    count: int = 0  # residual rows over all ranks (the mean's denominator)
    highest: int = 0  # the highest derivative order taken (``order`` stops at the jet's 2)
    time_order: int = 0  # the highest order of time derivative taken


def point_budget(points: dict, kind: str, n_conditions: int, index: int = 0) -> int:
    """Points of the ``index``-th of ``n_conditions`` conditions of ``kind`` without own ``n``.

    The boundary budget is shared out whole: the first ``total % n_conditions`` conditions
    take one point more. Other kinds give each condition the whole budget.
    """
    total = int(points.get(kind, points.get("boundary", 0)))
    if kind != "boundary":
        return max(1, total)
    share, extra = divmod(total, max(1, n_conditions))
    return max(1, share + (index < extra))


def _warn_untrained_leaves(v: Tensor, x: Tensor, model: nn.Module, where: str, name: str) -> None:
    """Warn when a residual depends on a tensor that requires grad but is no parameter of the
    model: a DeepXDE-style unknown ``kappa = nn.Parameter(...)`` read by ``pde`` that the
    optimizer never sees, so it keeps its initial value."""
    own = {id(p) for p in model.parameters()} | {id(x)}
    seen, stack, foreign = set(), [v.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        leaf = getattr(fn, "variable", None)  # AccumulateGrad: a leaf tensor
        if leaf is not None and id(leaf) not in own:
            foreign.append(leaf)
        stack.extend(f for f, _ in fn.next_functions)
    if foreign:
        shapes = ", ".join(str(tuple(t.shape)) for t in foreign[:3])
        warn(
            f"{where}: the {name} residual depends on {len(foreign)} tensor(s) with "
            f"requires_grad that are not parameters of the model (shapes {shapes}): they are "
            "not trained; declare unknown coefficients in the problem (unknowns={'k': 1.0}) "
            "and read them in pde(x, u, p) as p['k']"
        )


class Unknowns(nn.ParameterDict):
    """``p`` of ``pde(x, u, p)``: the unknowns by name, in the order declared; read-only once
    :meth:`freeze` is called (an entry written in ``pde`` would never be trained)."""

    def freeze(self) -> None:
        self.__dict__["_frozen"] = True

    def __setitem__(self, key: str, value) -> None:
        if self.__dict__.get("_frozen"):
            raise TypeError(
                f"p is read-only: it holds the problem's unknowns; declare {key!r} in the "
                "problem's unknowns= instead"
            )
        super().__setitem__(key, value)

    def __getitem__(self, key: str) -> nn.Parameter:
        if key not in self:  # (the dict's own error is an AttributeError about its attributes)
            raise KeyError(
                f"p has no unknown {key!r}; the problem declares {', '.join(map(repr, self))}"
            )
        return super().__getitem__(key)


class WithUnknowns(nn.Module):
    """A trial function and a problem's unknown coefficients, trained together.

    The optimizer, checkpoints and the history see this module; the residuals evaluate
    ``net`` alone and pass ``unknowns`` to the PDE as its third argument ``p``.
    """

    def __init__(self, net: nn.Module, unknowns: nn.ParameterDict) -> None:
        super().__init__()
        self.net, self.unknowns = net, unknowns

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _sensitivities(v: Tensor, unknowns: nn.ParameterDict, count: int = 1) -> list[dict]:
    """How ``v`` moves with each unknown it depends on (through autograd): its derivative in
    the unknown, summed with random positive weights (``count`` draws) so that opposite signs
    cannot cancel and, over the draws, the derivatives at different points stay apart. 0 where
    it does not move at the current values, NaN or Inf where the derivative is not finite;
    unknowns ``v`` does not depend on are left out."""
    if not v.requires_grad:
        return []
    names = list(unknowns)
    generator = torch.Generator().manual_seed(0)  # (the global stream stays the run's)
    out = []
    for _ in range(count):
        weights = torch.rand(v.shape, generator=generator, dtype=v.dtype, device="cpu")
        weights = (0.5 + weights).to(v.device)
        grads = torch.autograd.grad(
            (v * weights).sum(), [unknowns[n] for n in names], retain_graph=True, allow_unused=True
        )
        out.append({n: float(g) for n, g in zip(names, grads) if g is not None})
    return out


def _entangled(rows: list[dict], names: list[str]) -> list[str]:
    """The unknowns whose effects on the residuals are linearly dependent (only a combination
    of them is determined), from :func:`_sensitivities` rows; [] when they are independent."""
    g = np.array([[r.get(n, 0.0) for n in names] for r in rows])
    size = np.linalg.norm(g, axis=0)
    if len(names) < 2 or len(rows) < len(names) or not np.all(size > 0):
        return []
    _, s, vt = np.linalg.svd(g / size)  # each unknown's column scaled: its units do not matter
    if s[-1] > 1e-9 * s[0]:
        return []
    return [n for n, c in zip(names, vt[-1]) if abs(c) > 1e-6]


class Residuals:
    """The loss terms of a problem for a given model.

    Parameters
    ----------
    problem : Problem
        The PDE, domain and conditions.
    model : nn.Module
        Trial function with ``forward`` and ``jet`` (KAN or MLP).
    points : dict
        Point budget: ``interior``, ``boundary`` (shared by the boundary conditions),
        ``initial``, ``method`` (grid, uniform, lhs, sobol) and optionally ``seed``.
    weights : dict
        Loss weight per term name (``"pde"`` for all PDE residuals).
    dtype, device
        Of the points.
    seed : int
        Seed of the random samplers.
    compile : bool
        Compile the model's derivative evaluation with ``torch.compile`` (see
        :func:`kanpde.solve`).
    unknowns : dict, optional
        Starting values of some of the problem's unknown coefficients, overriding the
        problem's; they are trained with the model (``trainable`` holds both).
    """

    def __init__(
        self,
        problem,
        model: nn.Module,
        points: dict,
        weights: dict,
        dtype,
        device,
        seed: int = 0,
        compile: bool = False,
        unknowns: dict | None = None,
    ):
        self.problem, self.model = problem, model
        # The problem's unknown coefficients (from their starting values, or ``unknowns``),
        # trained with the model: ``trainable`` holds both.
        self.unknowns, self.trainable = None, model
        if problem.unknowns:
            start = {**problem.unknowns, **(unknowns or {})}
            self.unknowns = Unknowns()
            for n, v in start.items():  # one by one: a dict given at once would be sorted
                self.unknowns[n] = nn.Parameter(torch.tensor(float(v), dtype=dtype, device=device))
            self.unknowns.freeze()
            self.trainable = WithUnknowns(model, self.unknowns)
        # (a problem whose unknowns its conditions alone read may have pde(x, u))
        self._pde_takes_p = self.unknowns is not None and _takes(problem.pde, 3) is not False
        domain = problem.domain
        method = points.get("method", "sobol")
        seed = points.get("seed", seed)
        self.seed = int(seed)
        self.dtype, self.device = dtype, device
        self.problem_points = dict(points)
        self.names = tuple(domain.names)
        self.spatial = tuple(getattr(domain, "spatial_axes", range(domain.dim)))
        where = problem.source or f"problem {problem.name!r}"
        try:
            interior = domain.sample(int(points["interior"]), method=method, seed=seed)
        except (ValueError, TypeError) as e:
            raise ProblemError(f"{where}: interior points: {e}") from None
        except MemoryError as e:  # the count asked for, not a failure of the machine's
            raise ProblemError(
                f"{where}: interior={int(points['interior'])} points do not fit in memory "
                f"({_one_line(e)})"
            ) from None
        self.interior = PointSet(torch.as_tensor(interior, dtype=dtype, device=device))
        self.terms: list[Term] = []
        self._pde_names: list[str] | None = None
        # conditions with their own n= take it as given and no share of the budget
        sharing: dict[str, list[Condition]] = {}
        for c in problem.conditions:
            if c.n is None:
                sharing.setdefault(c.where, []).append(c)
        for i, c in enumerate(problem.conditions):
            if c.n is None:
                peers = sharing[c.where]
                n = point_budget(points, c.where, len(peers), peers.index(c))
            else:
                n = c.n
            try:
                if c.n is None and c.where == "boundary":  # a share: one point per piece at least
                    n = max(n, c.min_points(domain))
                ps = c.points(domain, problem.outputs, n, method, seed + 1 + i, dtype, device)
            except MemoryError as e:  # the count asked for, as for the interior
                raise ProblemError(
                    f"{where}: condition {c.name!r}: {n} points do not fit in memory "
                    f"({_one_line(e)})"
                ) from None
            except (ProblemError, *_NOT_THE_USERS):
                raise
            except Exception as e:  # noqa: BLE001 - value functions and on= predicates are user code
                raise _condition_error(problem, c, e) from e
            if ps.x.shape[0] == 0:  # its mean would be NaN
                raise ProblemError(
                    f"{where}: condition {c.name!r} got no points (n={n}, method {method!r}); "
                    "give it more"
                )
            w = float(weights.get(c.name, c.weight))
            self.terms.append(Term(c.name, ps, c, c.columns(problem.outputs), w))
        self.weights = dict(weights)
        self.compile = compile
        # Optional regulariser penalty(model, x) -> 0-d tensor, weighted per stage (sparsity).
        self.penalty = None
        self.penalty_weight = 0.0
        self._columns_checked = False  # the residuals' column count, warned about once
        self._probe()
        self._check_pde_weights(where)
        self._full = [self.interior.x] + [t.points.x for t in self.terms]
        for term in [self.pde, *self.terms]:
            term.count = _rows(term, term.points.x.shape[0])
            term.points = _shard(term, term.points)
        self.interior = self.pde.points
        self._plan()

    # -- derivative needs ---------------------------------------------------------------------
    def context(self):
        return ops.derivatives(self.names, self.spatial, self.problem.outputs)

    def _pde_residuals(self, x: Tensor, u: Tensor) -> list[tuple[str, Tensor]]:
        # Any call of the user's pde, not only the first (an error may need the full point
        # set or a state reached in training): one line naming the file.
        try:
            r = (
                self.problem.pde(x, u, self.unknowns)
                if self._pde_takes_p
                else self.problem.pde(x, u)
            )
        except (ProblemError, *_NOT_THE_USERS):
            raise
        except Exception as e:  # noqa: BLE001 - user code
            call = "pde(x, u, p)" if self._pde_takes_p else "pde(x, u)"
            err = user_code_error(self.problem, call, e)
            if _named_u_x(self.problem.pde):
                first, second = list(inspect.signature(self.problem.pde).parameters)[:2]
                # the cause first: the error raised inside pde only follows from it
                where = self.problem.source or f"problem {self.problem.name!r}"
                err = ProblemError(
                    f"{where}{user_line(self.problem, e)}: {call} is called with the points "
                    f"first, but pde's parameters are named ({first}, {second}): swap them "
                    f"(it raised {_one_line(e)})"
                )
            elif isinstance(e, RuntimeError) and "require grad" in str(e):
                # torch.autograd.grad(u, x): the jets give u without a graph back to x
                err = ProblemError(
                    f"{err}; take derivatives with kanpde's d, grad, div, laplacian or hessian, "
                    "not torch.autograd.grad"
                )
            raise err from e
        if isinstance(r, dict):
            items = [(f"pde[{k}]", v) for k, v in r.items()]
        elif isinstance(r, list | tuple):
            items = [(f"pde[{i}]", v) for i, v in enumerate(r)] if len(r) != 1 else [("pde", r[0])]
        else:
            items = [("pde", r)]
        where = self.problem.source or f"problem {self.problem.name!r}"
        if not items:
            raise ProblemError(f"{where}: pde returned no residuals (an empty {type(r).__name__})")
        if r is None:  # as value functions say it: the likeliest cause is named
            call = "pde(x, u, p)" if self._pde_takes_p else "pde(x, u)"
            raise ProblemError(
                f"{where}: {call} returned None (a missing return?); expected the residual "
                "tensor, or a tuple, list or dict of them"
            )
        for name, v in items:
            if not isinstance(v, Tensor):
                raise ProblemError(
                    f"{where}: pde must return tensors, {name} is {type(v).__name__}"
                )
            if v.is_complex():
                raise ProblemError(
                    f"{where}: {name} residual is complex; write real and imaginary parts as "
                    "residuals of their own (a tuple)"
                )
            if v.ndim == 1:
                v = v.unsqueeze(1)
            if v.ndim != 2 or v.shape[0] != x.shape[0]:
                raise ProblemError(
                    f"{where}: {name} residual has shape {tuple(v.shape)}, expected one row "
                    f"per point of x: (N, k) for x of shape (N, {x.shape[1]}); this call's x "
                    f"has N = {x.shape[0]} points (pde is called on any number of them)"
                )
            if v.shape[1] == 0:
                axes = ", ".join(getattr(self.problem.domain, "names", ()))
                raise ProblemError(
                    f"{where}: {name} residual has shape {tuple(v.shape)}, no columns: x has "
                    f"{x.shape[1]} column(s) ({axes}), so a slice such as x[:, {x.shape[1]}:"
                    f"{x.shape[1] + 1}] is empty"
                )
            if v.shape[1] == x.shape[0] > max(1, len(self.problem.outputs)):
                # one column per point: an (n,) tensor broadcast against an (n, 1) one
                raise ProblemError(
                    f"{where}: {name} residual has shape {tuple(v.shape)}, one column per "
                    "point: an (n,) tensor (such as x[:, 0]) was combined with an (n, 1) one; "
                    "keep columns with x[:, 0:1]"
                )
        n_out = len(self.problem.outputs)
        if not self._columns_checked:
            self._columns_checked = True
            widths = [v.shape[1] if v.ndim == 2 else 1 for _, v in items]
            for (name, _), cols in zip(items, widths):
                if cols == x.shape[1] > 1 and cols != n_out:
                    warn(
                        f"{where}: {name} residual has {cols} columns, one per coordinate of x, "
                        f"for {n_out} output(s): each column is a residual of its own; if an "
                        "(N, 1) tensor was combined with one of x's (N, "
                        f"{x.shape[1]}) functions (sin(x) for sin(x[:, 0:1])), slice x's "
                        "columns; return a tuple of (N, 1) residuals to keep several equations"
                    )
            total = sum(widths)
            if total < n_out and not any(c.where == "data" for c in self.problem.conditions):
                warn(
                    f"{where}: the PDE gives {total} residual column(s) for {n_out} outputs "
                    f"({', '.join(self.problem.outputs)}): fewer equations than unknowns leave "
                    "the solution undetermined; return one residual per equation (a tuple or "
                    "a dict)"
                )
        return [(n, v if v.ndim == 2 else v.unsqueeze(1)) for n, v in items]

    def _check_pde_weights(self, where: str) -> None:
        """Refuse a ``pde[k]`` weight naming no residual (a typo would silently weigh nothing);
        the names are known only now, from what the PDE returned on the probe points."""
        names = self.pde_names()
        alias = ["pde[0]"] if names == ["pde"] else []  # a one-residual PDE's residual 0
        for key in self.weights:
            if isinstance(key, str) and key.startswith("pde[") and key not in names + alias:
                raise ProblemError(
                    f"{where}: weights: {key!r} names no residual of the PDE; its residuals: "
                    + ", ".join(names)
                )

    def _probe(self) -> None:
        """Find the derivatives each term needs, evaluating it with autograd on a few points."""
        self.pde = Term("pde", self.interior)
        moves: dict[str, list[float]] = {}  # each unknown's sensitivities, per residual
        self._rows: list[dict] = []  # all of them, for the dependence between unknowns
        with warnings.catch_warnings():
            # float(p["k"]) in pde: torch's advice (detach() first) is the wrong one; the
            # check below refuses the unknown it cuts off in its own words
            if self.unknowns is not None:
                warnings.filterwarnings("ignore", "Converting a tensor with requires_grad=True")
            for term in [self.pde, *self.terms]:
                term.order, term.pairs, term.fused = self._probe_one(term, moves)
        self._check_unknowns_move(moves)
        entangled = _entangled(self._rows, list(self.unknowns or {}))
        if entangled:
            names = ", ".join(map(repr, entangled))
            warn(
                f"{self.problem.source or f'problem {self.problem.name!r}'}: unknowns {names} "
                "change the residuals only together at their start values (their effects are "
                "proportional, as with p['a'] + p['b'] or p['a'] * p['b']): the data cannot tell "
                "them apart and only a combination of them is determined; fix all but one, or "
                "add data that separates them"
            )
        del self._rows
        if self.pde.time_order == 1 and len(self.problem.outputs) == 1:
            # u(x, 0) and a first-order PDE fix u_t(x, 0): prescribing it too over-determines
            # (in a system, u_t may stand for another output's unprescribed initial value)
            u = self.problem.outputs[0]
            for term in self.terms:
                if isinstance(term.condition, Initial) and term.condition.derivative == 1:
                    warn(
                        f"{self.problem.source or self.problem.name}: condition {term.name!r} "
                        f"prescribes {u}_t at the initial time, but the PDE is first order in "
                        f"time, so {u}_t there already follows from the PDE and the initial "
                        "value; the extra condition can only conflict with them"
                    )

    def _sense(self, v: Tensor, moves: dict[str, list[float]]) -> None:
        """Record how residual ``v`` moves with the unknowns (see :meth:`_probe`)."""
        rows = _sensitivities(v, self.unknowns, count=len(self.unknowns) + 1)
        for n, g in (rows[0] if rows else {}).items():
            moves.setdefault(n, []).append(abs(g))
        self._rows += rows

    def _start_values(self) -> str:
        """`` (with the unknowns at their start values: k = 0.5)``; ``""`` without unknowns."""
        if self.unknowns is None:
            return ""
        values = ", ".join(f"{n} = {float(p.detach()):g}" for n, p in self.unknowns.items())
        return f" (with the unknowns at their start values: {values})"

    def _check_unknowns_move(self, moves: dict[str, list[float]]) -> None:
        """Refuse an unknown no residual depends on, or whose derivative is not finite at its
        start; warn of one no residual moves with there (it would stay where it starts)."""
        where = self.problem.source or f"problem {self.problem.name!r}"
        for name in self.unknowns or {}:
            start = f"{float(self.unknowns[name].detach()):g}"
            if name not in moves:
                raise ProblemError(
                    f"{where}: unknown {name!r} reaches no residual, so it would keep its start "
                    f"value: pde never reads p[{name!r}], or cuts it off from the gradient "
                    "(float(), .item(), p.get with another name), and no condition names it"
                )
            if not all(math.isfinite(g) for g in moves[name]):
                raise ProblemError(
                    f"{where}: the residuals' derivative in unknown {name!r} is not finite at its "
                    f"start value {start} (a square root, fractional power or log of it at 0?): "
                    "start it elsewhere (the problem's unknowns=, --unknowns or "
                    "solve(unknowns=...))"
                )
            if not any(moves[name]):
                warn(
                    f"{where}: no residual changes with unknown {name!r} at its start value "
                    f"{start} (as p[{name!r}]**2, abs or relu do at 0): its gradient is zero "
                    "there and training may leave it there; start it elsewhere (the problem's "
                    "unknowns=, --unknowns or solve(unknowns=...))"
                )

    def _probe_one(self, term: Term, moves: dict[str, list[float]]) -> tuple[int, tuple, bool]:
        """The derivative needs of ``term``; adds how its residual moves with each unknown to
        ``moves``."""
        points = term.points
        n = points.x.shape[0]
        if term.condition is not None and type(term.condition).__name__ == "Periodic":
            half = min(PROBE_POINTS, n // 2)
            idx = torch.arange(half, device=points.x.device)
            idx = torch.cat([idx, n // 2 + idx])
        else:
            idx = torch.arange(min(PROBE_POINTS, n), device=points.x.device)
        sub = PointSet(
            points.x[idx],
            None if points.normals is None else points.normals[idx],
            None if points.target is None else points.target[idx],
        )
        x = sub.x.clone().requires_grad_(True)
        where = self.problem.source or f"problem {self.problem.name!r}"
        with self.context() as ctx:
            u = self.model(x)
            ctx.mark_root(u, x)
            if term.condition is None:
                items = self._pde_residuals(x, u)
                self._pde_names = [name for name, _ in items]
                for name, v in items:
                    if not bool(torch.isfinite(v).all()):
                        raise ProblemError(
                            f"{where}: {name} residual is NaN or Inf at initialisation"
                            f"{self._start_values()}"
                        )
                    # Trainable only if some parameter reaches the residual.
                    params = [p for p in self.model.parameters() if p.requires_grad]
                    depends = v.requires_grad and (
                        not params
                        or any(
                            g is not None
                            for g in torch.autograd.grad(
                                v.sum(), params, retain_graph=True, allow_unused=True
                            )
                        )
                    )
                    if not depends:
                        raise ProblemError(
                            f"{where}: {name} residual does not depend on the solution u "
                            "(no gradient path); build it from u and operators such as "
                            "laplacian(u, x)"
                        )
                    _warn_untrained_leaves(v, x, self.trainable, where, name)
                    if self.unknowns is not None:
                        self._sense(v, moves)
            else:
                v = self._condition_residual(term, x, u, sub, ctx)
                if self.unknowns is not None:
                    self._sense(v, moves)
        keys = [k for k, root in ctx.misses if root and len(k) <= 2]
        order = max((len(k) for k in keys), default=0)
        pairs = tuple(sorted({k for k in keys if len(k) == 2}))
        # A term joins the shared evaluation when the model's jet serves all its derivatives.
        fused = hasattr(self.model, "jet") and all(root and len(k) <= 2 for k, root in ctx.misses)
        term.highest = max((len(k) for k, _ in ctx.misses), default=0)
        t = getattr(self.problem.domain, "time_axis", None)
        if t is not None:
            term.time_order = max((k.count(t) for k, _ in ctx.misses), default=0)
        return order, pairs, fused

    @property
    def fully_fused(self) -> bool:
        """Every term is served by the shared jet evaluation (no autograd fallback)."""
        return all(t.fused for t in [self.pde, *self.terms])

    def _plan(self) -> None:
        """Concatenate the points of the jet-served terms for one model call per step."""
        members = [t for t in [self.pde, *self.terms] if t.fused]
        self._fused = members
        if not members:
            return
        self._order = max(t.order for t in members)
        self._pairs = tuple(sorted({p for t in members for p in t.pairs}))
        self._x = torch.cat([t.points.x for t in members])
        bounds, start = [], 0
        for t in members:
            bounds.append((start, start + t.points.x.shape[0]))
            start += t.points.x.shape[0]
        self._bounds = bounds
        self._views = [self._x[a:b] for a, b in bounds]
        jet = self.model.jet
        order, pairs = self._order, self._pairs

        def jet_fn(x):
            j = jet(x, order, pairs)
            return j.value, j.d1, j.d2

        self._jet_fn = torch.compile(jet_fn, dynamic=False) if self.compile else jet_fn

    # -- evaluation ---------------------------------------------------------------------------
    def field(self, x: Tensor, order: int, pairs: tuple, ctx) -> Tensor:
        """Model outputs at ``x`` with the derivatives ``order``/``pairs`` registered in ``ctx``."""
        if order == 0 or not hasattr(self.model, "jet"):
            return self.model(x)
        jet = self.model.jet(x, order, pairs)
        ctx.register(jet.value, x, jet)
        return jet.value

    def _residual(self, term: Term, x: Tensor, u: Tensor, ctx, out: dict) -> None:
        # Σ r² over the global row count: the mean, also when the points are sharded.
        if term.condition is None:
            for name, r in self._pde_residuals(x, u):
                out[name] = (r * r).sum() / (term.count * r.shape[1])
        else:
            r = self._condition_residual(term, x, u, term.points, ctx)
            out[term.name] = (r * r).sum() / (term.count * max(1, r.shape[1]))

    def _condition_residual(self, term: Term, x: Tensor, u: Tensor, points, ctx) -> Tensor:
        try:
            if term.condition.unknown_names():  # (custom conditions' residuals need no p)
                return term.condition.residual(x, u, points, term.cols, ctx, p=self.unknowns)
            return term.condition.residual(x, u, points, term.cols, ctx)
        except (ProblemError, *_NOT_THE_USERS):
            raise
        except Exception as e:  # noqa: BLE001 - custom conditions are user code
            raise user_code_error(self.problem, f"condition {term.name!r}", e) from e

    def terms_of(self) -> dict[str, Tensor]:
        """Mean squared residual of every term (unweighted), as 0-d tensors."""
        out: dict[str, Tensor] = {}
        with self.context() as ctx:
            if self._fused:
                value, d1, d2 = self._jet_fn(self._x)
                for term, (a, b), x in zip(self._fused, self._bounds, self._views):
                    u = value[a:b]
                    j1 = None if d1 is None else d1[a:b]
                    j2 = None if d2 is None else d2[a:b]
                    ctx.register(u, x, Jet(u, j1, j2, self._pairs))
                    self._residual(term, x, u, ctx, out)
            for term in [self.pde, *self.terms]:
                if term.fused:
                    continue
                x = term.points.x
                if term.order > 0 or not term.fused:
                    x = x.detach().requires_grad_(True)
                u = self.field(x, term.order, term.pairs, ctx)
                ctx.mark_root(u, x)
                self._residual(term, x, u, ctx, out)
        # Report the terms in a stable order: PDE residuals first, then the conditions.
        order = self.pde_names() + [t.name for t in self.terms]
        return {k: out[k] for k in order}

    def pde_names(self) -> list[str]:
        return list(self._pde_names or ["pde"])

    def weight(self, name: str) -> float:
        if name == "pde" and "pde[0]" in self.weights:  # the one residual's own, as pde[k]
            return float(self.weights["pde[0]"])
        if name in self.weights:
            return float(self.weights[name])
        if name == "pde" or PDE_TERM.fullmatch(name):  # not a condition named "pde_bc"
            return float(self.weights.get("pde", 1.0))
        for t in self.terms:
            if t.name == name:
                return t.weight
        return 1.0

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.weight(n) * v for n, v in terms.items())

    def __call__(self) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.terms_of()
        loss = self.total(terms)
        if self.penalty_weight > 0:
            # e.g. the KAN paper's sparsification (kanpde.symbolic.regularization)
            terms["sparsity"] = self.model_term(self.penalty)
            loss = loss + self.penalty_weight * terms["sparsity"]
        return loss, terms

    def model_term(self, penalty: Callable[[nn.Module, Tensor], Tensor]) -> Tensor:
        """``penalty(model, x)`` on all the interior points, as this rank's share of the loss.

        A term of the whole model (a sparsity penalty) is no sum over points: every rank takes
        it on all the points and adds ``1/world`` of it, so that the ranks' summed losses and
        gradients hold it once, not once per rank.
        """
        value = penalty(self.model, self._full[0])
        return value / distributed.world() if distributed.world() > 1 else value

    def resample(self, seed: int, adaptive: bool = False, pool: int = 10) -> None:
        """Draw new interior points (fixed count) by the points' method, or residual-weighted.

        The draw uses the run's sampling ``method`` with a new seed (a scrambled Sobol or
        Latin hypercube set, or uniform); ``grid`` draws uniformly, as a grid drawn again is
        the same grid. With ``adaptive`` (residual-based adaptive distribution, Wu et al.
        2023), a pool of ``pool × N`` candidates is drawn so and ``N`` of them are kept with
        probability proportional to ``|r| / mean|r| + 1``, where ``r`` is the PDE residual.
        ``seed`` is combined with the run's seed, so runs of different seeds draw different
        points.
        """
        if self.seed:  # seed 0 keeps the draws of earlier versions
            seed = int(
                np.random.SeedSequence([self.seed % 2**64, int(seed) % 2**64]).generate_state(1)[0]
            )
        domain = self.problem.domain
        n = self._full[0].shape[0]
        method = self.problem_points.get("method", "sobol")
        method = "uniform" if method == "grid" else method
        if not adaptive:
            x = domain.sample(n, method=method, seed=seed)
            x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        else:
            cand = domain.sample(pool * n, method=method, seed=seed)
            cand = torch.as_tensor(cand, dtype=self.dtype, device=self.device)
            weight = self._pointwise_residual(cand)
            prob = weight / weight.mean().clamp_min(1e-300) + 1
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            idx = torch.multinomial(prob.cpu(), n, replacement=False, generator=gen)
            x = cand[idx.to(cand.device)]
        self.set_interior(x)

    def set_interior(self, x: Tensor) -> None:
        """Replace the PDE's collocation points (all ranks' points; this rank keeps its shard)."""
        self._full[0] = x
        self.pde.count = _rows(self.pde, x.shape[0])  # the mean's denominator (all ranks')
        self.pde.points = self.interior = _shard(self.pde, PointSet(x))
        self._plan()

    def _pointwise_residual(self, x: Tensor, chunk: int = 16384) -> Tensor:
        """``Σ_k |r_k|`` of the PDE residuals at each point (no parameter gradients)."""
        out = []
        for i in range(0, x.shape[0], chunk):
            xc = x[i : i + chunk].detach().requires_grad_(self.pde.order > 0 or not self.pde.fused)
            with self.context() as ctx:
                u = self.field(xc, self.pde.order, self.pde.pairs, ctx)
                ctx.mark_root(u, xc)
                r = sum(v.abs().sum(1) for _, v in self._pde_residuals(xc, u))
            out.append(r.detach())
        return torch.cat(out)

    def all_points(self) -> Tensor:
        """Every collocation point (PDE and conditions, all ranks' shards), for grid changes."""
        return torch.cat([x.detach() for x in self._full])


# Failures of the machine, not of the problem: never reported as the user's mistake.
_NOT_THE_USERS = (MemoryError, torch.cuda.OutOfMemoryError)


def _condition_error(problem, condition: Condition, exc: Exception) -> ProblemError:
    """One line naming the problem file for a condition whose points or values failed."""
    if isinstance(exc, ValueError | TypeError):
        # kanpde's own checks (unknown boundary piece, value shape, a value function that
        # raised): their message already says what is wrong.
        first = _first_line(exc)
        msg = first if first.startswith(condition.name) else f"{condition.name}: {first}"
        where = problem.source or f"problem {problem.name!r}"
        return ProblemError(f"{where}{user_line(problem, exc)}: {msg}")
    return user_code_error(problem, f"condition {condition.name!r}", exc)


def _is_periodic(term: Term) -> bool:
    return term.condition is not None and type(term.condition).__name__ == "Periodic"


def _rows(term: Term, n: int) -> int:
    """Residual rows of a term with ``n`` points (a periodic term pairs its points)."""
    return n // 2 if _is_periodic(term) else n


def _shard(term: Term, points: PointSet) -> PointSet:
    """This rank's part of a term's points (all of them when not distributed)."""
    if distributed.world() == 1:
        return points
    n = points.x.shape[0]

    def take(t):
        if t is None:
            return None
        if _is_periodic(term):
            a, b = distributed.shard(n, pairs=True)
            return torch.cat([t[a], t[b]])
        return t[distributed.shard(n)]

    return PointSet(take(points.x), take(points.normals), take(points.target))


def chunked(fn, x: Tensor, chunk: int = 65536) -> Tensor:
    """Apply ``fn`` to ``x`` in row chunks (bounded memory for large evaluation sets)."""
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


def error_metrics(pred: Tensor, ref: Tensor, outputs: Sequence[str]) -> dict[str, float]:
    """Test errors ``mse``, ``rel_l2``, ``max_err`` (all outputs), per output ``rel_l2_<name>``.

    A relative error against a reference that is zero on the whole test set is undefined: NaN.
    """
    diff = pred - ref

    def relative(d: Tensor, r: Tensor) -> float:
        norm = float(r.norm())
        return float(d.norm()) / norm if norm > 0 else math.nan

    out = {
        "mse": float((diff * diff).mean()),
        "rel_l2": relative(diff, ref),
        "max_err": float(diff.abs().max()),
    }
    if len(outputs) > 1:
        for i, o in enumerate(outputs):
            out[f"rel_l2_{o}"] = relative(diff[:, i], ref[:, i])
            out[f"mse_{o}"] = float((diff[:, i] ** 2).mean())
    return out
