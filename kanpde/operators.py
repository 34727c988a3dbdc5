"""Differential operators on fields evaluated at points.

``d(u, x, "x", "x")`` is ``∂²u/∂x²`` at the points ``x`` (``(N, D)``, requiring grad) for a
field ``u`` (``(N, m)``) computed from them. Derivatives come from
``torch.autograd.grad(create_graph=True)``, so residuals stay differentiable for training.

Inside the training engine a :class:`Derivatives` context is active: it knows the axis names,
which axes are spatial and the output names, caches every derivative so that one used twice in
a residual is computed once per step, and may be pre-filled with derivatives that the model
computed in closed form (see :meth:`kanpde.nn.KAN.jet`). Outside the engine the operators work
on plain tensors with integer axes.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .nn.jet import Jet

if TYPE_CHECKING:
    from .geometry import Domain
    from .problem import Problem

Axis = int | str


class Derivatives:
    """Derivative cache and naming context for one evaluation of the residuals.

    Parameters
    ----------
    names : sequence of str, optional
        Axis names of the columns of ``x`` (e.g. ``("x", "t")``).
    spatial : sequence of int, optional
        Spatial axes (all axes when omitted); ``laplacian``, ``grad`` and ``div`` use them.
    outputs : sequence of str, optional
        Output names, for ``component="v"``.
    """

    def __init__(
        self,
        names: Sequence[str] | None = None,
        spatial: Sequence[int] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> None:
        self.names = tuple(names) if names is not None else None
        self.spatial = tuple(spatial) if spatial is not None else None
        self.outputs = tuple(outputs) if outputs is not None else None
        self._fields: dict[tuple[int, int], dict] = {}
        # id(column) -> (parent, column index, the column itself: holding it keeps its id from
        # being reused by an unrelated tensor while this context lives)
        self._views: dict[int, tuple[Tensor, int, Tensor]] = {}
        # Derivatives not served by the cache's pre-filled entries, i.e. computed by autograd:
        # (key, whether of a field marked as model output). The probe plans the jets from it.
        self.misses: list[tuple[tuple[int, ...], bool]] = []
        self._roots: set[int] = set()
        # id(field) -> id(points) for the model's outputs: a derivative of one of them along
        # other points (a slice of x) would be zero, so it is refused instead.
        self._home: dict[int, int] = {}

    # -- naming -------------------------------------------------------------------------------
    def axis(self, a: Axis, dim: int) -> int:
        """Column index of axis ``a`` (a name or an integer) for points of dimension ``dim``."""
        if isinstance(a, str):
            if self.names is None:
                raise ValueError(
                    f"axis {a!r} given by name but no axis names are known here; pass an integer"
                )
            if a not in self.names:
                raise ValueError(f"unknown axis {a!r}; axes are {', '.join(self.names)}")
            return self.names.index(a)
        if not -dim <= int(a) < dim:
            raise ValueError(f"axis {a} out of range for points with {dim} coordinates")
        return int(a) % dim

    def spatial_axes(self, dim: int, operator: str = "a spatial operator") -> tuple[int, ...]:
        axes = self.spatial if self.spatial is not None else tuple(range(dim))
        if not axes:  # a sum over no axes would be the integer 0, not a field
            raise ValueError(
                f"{operator} needs spatial axes, but the domain has time only; "
                "use d(u, x, 't') for time derivatives"
            )
        return axes

    def component(self, c: int | str, m: int) -> int:
        """Column index of output ``c`` (a name or an integer) of a field with ``m`` columns."""
        if isinstance(c, str):
            if self.outputs is None or c not in self.outputs:
                known = ", ".join(self.outputs) if self.outputs else "none named"
                raise ValueError(f"unknown output {c!r}; outputs are {known}")
            c = self.outputs.index(c)
        if not 0 <= int(c) < m:
            raise ValueError(f"component {c} out of range for a field with {m} outputs")
        return int(c)

    # -- cache --------------------------------------------------------------------------------
    def _entry(self, u: Tensor, x: Tensor) -> dict:
        key = (id(u), id(x))
        entry = self._fields.get(key)
        if entry is None:
            # Keep u and x alive so that their ids cannot be reused during this evaluation.
            # "spare": the other columns of an autograd gradient, kept until asked for
            entry = self._fields[key] = {"refs": (u, x), "spare": {}, (): u}
        return entry

    def mark_root(self, u: Tensor, x: Tensor) -> None:
        """Declare ``u`` the model's output at ``x`` (its misses could be served by jets)."""
        self._entry(u, x)
        self._roots.add(id(u))
        self._home[id(u)] = id(x)

    def register(self, u: Tensor, x: Tensor, jet: Jet) -> None:
        """Pre-fill the cache with the derivatives carried by ``jet`` (``jet.value is u``)."""
        entry = self._entry(u, x)
        self._home[id(u)] = id(x)
        if jet.d1 is not None:
            for a in range(jet.d1.shape[2]):
                entry[(a,)] = jet.d1[:, :, a]
        if jet.d2 is not None:
            for p, pair in enumerate(jet.pairs):
                entry[pair] = jet.d2[:, :, p]

    def split(self, u: Tensor) -> tuple[Tensor, ...]:
        """Columns of ``u`` as ``(N, 1)`` tensors whose derivatives are looked up in ``u``'s."""
        cols = tuple(u[:, c : c + 1] for c in range(u.shape[1]))
        for c, col in enumerate(cols):
            self._views[id(col)] = (u, c, col)
        return cols

    def derivative(self, u: Tensor, x: Tensor, key: tuple[int, ...]) -> Tensor:
        """``∂^n u / ∂x_{key[0]} … ∂x_{key[-1]}`` (``key`` sorted), shape of ``u``."""
        view = self._views.get(id(u))
        if view is not None and view[2] is not u:
            view = None
        home = self._home.get(id(u if view is None else view[0]))
        if home is not None and home != id(x):
            raise ValueError(NOT_ITS_POINTS)
        entry = self._entry(u, x)
        root = id(u) in self._roots or (view is not None and id(view[0]) in self._roots)
        found = self._cached(entry, key, root)
        if found is not None:
            return found
        if view is not None:
            parent, c, _ = view
            parent_entry = self._fields.get((id(parent), id(x)))
            if parent_entry is not None:
                found = self._cached(parent_entry, key, root)
                if found is not None:
                    entry[key] = found[:, c : c + 1]
                    return entry[key]
        lower = self.derivative(u, x, key[:-1])
        for a, column in _autograd_columns(lower, x).items():
            entry["spare"].setdefault(tuple(sorted(key[:-1] + (a,))), column)
        return self._cached(entry, key, root)

    def _cached(self, entry: dict, key: tuple[int, ...], root: bool) -> Tensor | None:
        if key in entry:
            return entry[key]
        if key not in entry["spare"]:
            return None
        # Computed by autograd, now or as a by-product of a sibling derivative: a miss either
        # way, so that the probe plans for every derivative a residual uses (u_xx then u_xy
        # must both reach the jet although one autograd call yields both).
        self.misses.append((key, root))
        entry[key] = entry["spare"].pop(key)
        return entry[key]


NOT_ITS_POINTS = (
    "derivatives are taken along the points the field was computed from (the x of "
    "pde(x, u)), not along a slice such as x[:, 1:2], which is a new tensor that u does not "
    "depend on (its derivative would be 0): name the axis instead, d(u, x, 't') or d(u, x, 1)"
)


def _autograd_columns(f: Tensor, x: Tensor) -> dict[int, Tensor]:
    """All first derivatives of every column of ``f`` ``(N, m)``: ``{axis: (N, m)}``."""
    if not x.requires_grad:
        raise ValueError(
            "derivatives need points with requires_grad=True (x.requires_grad_()) from which "
            "the field was computed"
        )
    if not f.requires_grad and not torch.is_grad_enabled():
        # under no_grad every field looks constant: its derivatives would all read 0
        raise ValueError(
            "derivatives need autograd: the field was computed under torch.no_grad(); compute "
            "it (and take its derivatives) with gradients enabled"
        )
    n, dim = x.shape
    cols = []
    for c in range(f.shape[1]):
        if f.requires_grad:
            (g,) = torch.autograd.grad(f[:, c].sum(), x, create_graph=True, allow_unused=True)
            if g is None:
                if x._base is not None and x._base.requires_grad:
                    # a slice of points that f was computed from, not a zero derivative
                    raise ValueError(NOT_ITS_POINTS)
                g = torch.zeros_like(x)
        else:  # a field that does not depend on x (e.g. a constant)
            g = torch.zeros_like(x)
        cols.append(g)
    jac = torch.stack(cols, dim=1)  # (N, m, D)
    return {a: jac[:, :, a] for a in range(dim)}


_CONTEXT: contextvars.ContextVar[Derivatives | None] = contextvars.ContextVar(
    "kanpde_derivatives", default=None
)


@contextmanager
def derivatives(
    names: Problem | Domain | Sequence[str] | None = None,
    spatial: Sequence[int] | None = None,
    outputs: Sequence[str] | None = None,
) -> Iterator[Derivatives]:
    """Activate a fresh :class:`Derivatives` context (a cache for one evaluation).

    Training runs the PDE inside one. Outside training, ``laplacian``, ``grad``, ``div`` and
    ``hessian`` take every axis as spatial and axes have no names; give a problem (or a
    domain) to name them and leave time out, as training does::

        with kanpde.derivatives(problem):
            residual = problem.pde(x, model(x))

    Parameters
    ----------
    names : Problem, Domain or sequence of str, optional
        A problem (its domain's axes and its outputs), a domain (its axes), or axis names.
    spatial : sequence of int, optional
        Spatial axes, when ``names`` are names (default: all).
    outputs : sequence of str, optional
        Output names, when ``names`` is not a problem.
    """
    if hasattr(names, "domain") and hasattr(names, "outputs"):  # a Problem
        names, outputs = names.domain, tuple(names.outputs) if outputs is None else outputs
    if hasattr(names, "names") and hasattr(names, "dim"):  # a Domain
        domain = names
        names = tuple(domain.names)
        if spatial is None:
            spatial = tuple(getattr(domain, "spatial_axes", range(domain.dim)))
    ctx = Derivatives(names, spatial, outputs)
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def _context() -> Derivatives:
    ctx = _CONTEXT.get()
    return ctx if ctx is not None else Derivatives()


def _check(u: Tensor, x: Tensor) -> None:
    if not isinstance(u, Tensor) or not isinstance(x, Tensor):
        raise TypeError("operators take tensors: the field u (N, m) and the points x (N, D)")
    if x.ndim != 2:
        raise ValueError(f"points must have shape (N, D), got {tuple(x.shape)}")
    if u.ndim != 2 or u.shape[0] != x.shape[0]:
        raise ValueError(
            f"field must have shape (N, m) with N = {x.shape[0]} rows like the points, "
            f"got {tuple(u.shape)}"
        )


def d(u: Tensor, x: Tensor, *axes: Axis, component: int | str | None = None) -> Tensor:
    """Partial derivative ``∂ⁿu/∂x_{a₁}…∂x_{aₙ}``.

    Parameters
    ----------
    u : Tensor
        ``(N, m)`` field computed from ``x``.
    x : Tensor
        ``(N, D)`` points.
    *axes : int or str
        Axes to differentiate along, by index or name (``d(u, x, "x", "x")``).
    component : int or str, optional
        Differentiate only this output (by index or name); the result is then ``(N, 1)``.

    Returns
    -------
    Tensor
        ``(N, m)``, or ``(N, 1)`` with ``component``.
    """
    _check(u, x)
    ctx = _context()
    key = tuple(sorted(ctx.axis(a, x.shape[1]) for a in axes))
    out = ctx.derivative(u, x, key)
    if component is not None:
        c = ctx.component(component, u.shape[1])
        out = out[:, c : c + 1]
    return out


def grad(u: Tensor, x: Tensor) -> Tensor:
    """Spatial gradient ``∇u``.

    The spatial axes are the domain's during training and inside :func:`derivatives`; outside,
    every axis of ``x`` (time too). The same holds for :func:`div`, :func:`laplacian` and
    :func:`hessian`.

    Parameters
    ----------
    u : Tensor
        ``(N, m)`` field computed from ``x``.
    x : Tensor
        ``(N, D)`` points, with ``requires_grad=True``.

    Returns
    -------
    Tensor
        ``(N, D_s)`` for a scalar field ``(N, 1)``, ``(N, m, D_s)`` otherwise, ``D_s`` being
        the number of spatial axes.

    Raises
    ------
    TypeError
        If ``u`` or ``x`` is not a tensor.
    ValueError
        If the shapes do not match, ``x`` does not require grad, or there are no spatial axes.
    """
    _check(u, x)
    ctx = _context()
    g = torch.stack(
        [ctx.derivative(u, x, (a,)) for a in ctx.spatial_axes(x.shape[1], "grad")], dim=-1
    )
    return g[:, 0] if u.shape[1] == 1 else g


def div(v: Tensor, x: Tensor) -> Tensor:
    """Divergence ``Σ_a ∂v_a/∂x_a`` over the spatial axes.

    Parameters
    ----------
    v : Tensor
        ``(N, D_s)`` vector field computed from ``x``, one column per spatial axis.
    x : Tensor
        ``(N, D)`` points, with ``requires_grad=True``.

    Returns
    -------
    Tensor
        ``(N, 1)``.

    Raises
    ------
    TypeError
        If ``v`` or ``x`` is not a tensor.
    ValueError
        If the shapes do not match (``v`` needs ``D_s`` columns), ``x`` does not require grad,
        or there are no spatial axes.
    """
    _check(v, x)
    ctx = _context()
    axes = ctx.spatial_axes(x.shape[1], "div")
    if v.shape[1] != len(axes):
        raise ValueError(
            f"div needs a field with one column per spatial axis ({len(axes)}), got {v.shape[1]}"
        )
    return sum(ctx.derivative(v, x, (a,))[:, i : i + 1] for i, a in enumerate(axes))


def laplacian(u: Tensor, x: Tensor) -> Tensor:
    """Laplacian ``Σ_a ∂²u/∂x_a²`` over the spatial axes, for each output.

    Outside training every axis counts (time too) unless inside :func:`derivatives`.

    Parameters
    ----------
    u : Tensor
        ``(N, m)`` field computed from ``x``.
    x : Tensor
        ``(N, D)`` points, with ``requires_grad=True``.

    Returns
    -------
    Tensor
        ``(N, m)``, the shape of ``u``.

    Raises
    ------
    TypeError
        If ``u`` or ``x`` is not a tensor.
    ValueError
        If the shapes do not match, ``x`` does not require grad, or there are no spatial axes.
    """
    _check(u, x)
    ctx = _context()
    return sum(ctx.derivative(u, x, (a, a)) for a in ctx.spatial_axes(x.shape[1], "laplacian"))


def hessian(u: Tensor, x: Tensor) -> Tensor:
    """Spatial Hessian ``∂²u/∂x_a∂x_b`` of a scalar field.

    Parameters
    ----------
    u : Tensor
        ``(N, 1)`` scalar field computed from ``x``.
    x : Tensor
        ``(N, D)`` points, with ``requires_grad=True``.

    Returns
    -------
    Tensor
        ``(N, D_s, D_s)``, symmetric.

    Raises
    ------
    TypeError
        If ``u`` or ``x`` is not a tensor.
    ValueError
        If ``u`` is not ``(N, 1)``, the shapes do not match, ``x`` does not require grad, or
        there are no spatial axes.
    """
    _check(u, x)
    if u.shape[1] != 1:
        raise ValueError(f"hessian takes a scalar field (N, 1), got {tuple(u.shape)}")
    ctx = _context()
    axes = ctx.spatial_axes(x.shape[1], "hessian")
    rows = [
        torch.cat([ctx.derivative(u, x, tuple(sorted((a, b)))) for b in axes], dim=1) for a in axes
    ]
    return torch.stack(rows, dim=1)


def split(u: Tensor) -> tuple[Tensor, ...]:
    """Split a system's outputs into one column per output.

    Inside the engine the columns share the derivatives computed for ``u`` (slicing by hand
    also works, but each column's derivatives are then recomputed by autograd).

    Parameters
    ----------
    u : Tensor
        ``(N, m)`` outputs of the model.

    Returns
    -------
    tuple of Tensor
        ``m`` columns ``(N, 1)``, e.g. ``u, v, p = split(uvp)``.
    """
    return _context().split(u)
