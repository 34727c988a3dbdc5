"""Boundary, initial and data conditions.

A condition knows where its points lie (:meth:`Condition.sample`) and what residual the trial
function must drive to zero there (:meth:`Condition.residual`). Values are constants or
callables of the points, ``g(x)``, or on the boundary of the points and the outward unit
normals, ``g(x, n)``; they are evaluated once per point set, not at every step. In an
inverse problem a constant value, and a Robin coefficient, may instead name one of the
problem's unknowns (``Robin(alpha="h", beta=1.0)``): it is then trained with the network.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import operators as ops
from .geometry import Domain, Selection

# a constant (one number, or one per component), g(x) / g(x, n) evaluated at the points, or
# the name of one of the problem's unknowns
Value = (
    float | Sequence[float] | np.ndarray | Tensor | str | Callable[..., Tensor | np.ndarray | float]
)
Component = int | str | Sequence[int | str] | None


@dataclass
class PointSet:
    """Points of one loss term, with what its residual needs besides the field.

    Attributes
    ----------
    x : Tensor
        ``(n, D)`` points.
    normals : Tensor or None
        ``(n, D)`` outward unit normals (boundary terms).
    target : Tensor or None
        ``(n, c)`` values the condition prescribes.
    """

    x: Tensor
    normals: Tensor | None = None
    target: Tensor | None = None

    def to(self, **kw: Any) -> PointSet:
        """A copy with every tensor moved or cast by ``Tensor.to``.

        Parameters
        ----------
        **kw
            Keyword arguments of :meth:`torch.Tensor.to` (``device=``, ``dtype=``).

        Returns
        -------
        PointSet
        """
        f = lambda t: None if t is None else t.to(**kw)
        return PointSet(f(self.x), f(self.normals), f(self.target))


def _takes_normals(f: Callable) -> bool:
    """``f`` has two required positional parameters: it is ``g(x, n)``."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: g(x)
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds and p.default is p.empty for p in params) >= 2


def _is_complex(value) -> bool:
    return value.is_complex() if isinstance(value, Tensor) else bool(np.iscomplexobj(value))


def _shown(value: Any) -> str:
    """``value`` for a one-line message: arrays by type and shape (their repr spans lines)."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _value(
    value: Value,
    x: Tensor,
    n_cols: int,
    what: str,
    normals: Tensor | None = None,
    per_point: bool = False,
) -> Tensor:
    """Evaluate a condition value at ``x`` (and ``normals`` for ``g(x, n)``) as an
    ``(n, n_cols)`` tensor on ``x``'s device.

    Value functions get CPU tensors (they run once, at setup): one written with NumPy then
    works on a GPU run too.
    """
    if callable(value):
        args = (x.cpu(),)
        if _takes_normals(value):
            if normals is None:
                raise ValueError(
                    f"{what} value function takes two arguments (x, n), but its points have no "
                    "normals (only boundary conditions have them); use g(x)"
                )
            args = (x.cpu(), normals.cpu())
        from .problem import _one_line  # not at the top: problem imports this module

        try:
            v = value(*args)
        except (MemoryError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - user code: name it, keep the cause chained
            raise ValueError(f"{what} value function raised {_one_line(e)}") from e
        if v is None:
            raise ValueError(
                f"{what} value function returned None (a missing return?); expected a tensor "
                f"of shape (N, {n_cols})"
            )
        try:
            if not isinstance(v, Tensor):
                v = torch.as_tensor(np.asarray(v), dtype=x.dtype, device="cpu")
        except (MemoryError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - what the user's function returned
            raise ValueError(
                f"{what} value function returned {type(v).__name__} that is not numeric "
                f"({_one_line(e)})"
            ) from e
    else:
        if _is_complex(value):
            raise ValueError(f"{what} value is complex; conditions take real values")
        v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        if v.ndim == 0:
            v = v.expand(x.shape[0], n_cols)
        elif v.ndim == 1 and v.shape[0] == n_cols:
            v = v.expand(x.shape[0], n_cols)
        elif not per_point:
            # [1.0, 2.0] on a one-output problem with two boundary points was taken as one
            # value per point
            raise ValueError(
                f"{what} value {_shown(value)} must be a number or a list of {n_cols} (one per "
                "component); values that vary along the boundary are written as a function g(x)"
            )
    if v.is_complex():  # .to(float) would drop the imaginary part with only torch's warning
        raise ValueError(f"{what} value is complex; conditions take real values")
    v = v.to(dtype=x.dtype, device=x.device)
    if v.ndim == 0:  # g(x) returning one number, e.g. lambda x: 0: the same at every point
        v = v.expand(x.shape[0], n_cols)
    if v.ndim == 1 and v.shape[0] == x.shape[0]:
        v = v.unsqueeze(1)
    if v.shape != (x.shape[0], n_cols):
        raise ValueError(
            f"{what} value has shape {tuple(v.shape)}; expected ({x.shape[0]}, {n_cols}) "
            f"for {x.shape[0]} points and {n_cols} component(s)"
        )
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{what} value is not finite (NaN or Inf) at some points")
    return v.detach()


def _check_unknown_name(name: str, what: str) -> None:
    if not name.isidentifier():
        raise ValueError(
            f"{what} {name!r} is a string, which names one of the problem's unknowns; an "
            "unknown's name is an identifier such as 'h'"
        )


def take(t: Tensor, cols: list[int]) -> Tensor:
    """Columns ``cols`` of ``t`` by slicing (no index tensor: safe inside CUDA-graph capture)."""
    if cols == list(range(cols[0], cols[-1] + 1)):
        return t[:, cols[0] : cols[-1] + 1]
    return torch.cat([t[:, c : c + 1] for c in cols], dim=1)


class Condition:
    """Base class. Subclasses set :attr:`where` and implement :meth:`lhs`.

    The parameters below are those of every condition (``Dirichlet``, ``Neumann``, ``Robin``,
    ``Initial``; ``Initial`` takes no ``on``, and ``Periodic`` and ``PointData`` take their
    own first arguments instead of ``value`` and ``on``).

    Parameters
    ----------
    value : float, list of float, callable or str
        The prescribed value: a number, one number per component, or a function ``g(x)``
        (``(n, D)`` points → ``(n,)`` or ``(n, components)``) evaluated once at the points
        (or ``g(x, n)``, see Notes); or the name of one of the problem's ``unknowns``, a
        constant found by training (an unknown boundary temperature, ``value="T0"``).
    on : None, str, list of str or callable, optional
        Boundary conditions only. The boundary pieces: None for the whole boundary, piece
        names or aliases
        (``"left"``, ``"x=-1"``; :meth:`kanpde.Domain.piece_names`), or a predicate
        ``f(points) -> bool mask`` (see :meth:`kanpde.Domain.boundary`).
    component : int, str or sequence, optional
        Outputs the condition applies to (index or name); all outputs when omitted.
    weight : float
        Loss weight of the term (the problem's ``weights`` may override it by name).
    name : str, optional
        Name of the loss term (its key in the problem's ``weights``). Defaults to the class
        name in lower case, with a string ``on`` in brackets (``dirichlet[left]``);
        ``Initial`` with a derivative is ``initial_dt``, ``Periodic`` is ``periodic[axis]``
        and ``PointData`` is ``data``. Default names that clash within a problem get the
        pieces and components that tell them apart (``dirichlet(u)``, ``dirichlet(v)``).
    n : int, optional
        Number of points. By default the boundary conditions without ``n`` share the
        problem's ``boundary`` budget (each gets at least a point on every piece it covers)
        and each ``Initial`` takes the whole ``initial`` budget.

    Notes
    -----
    A callable ``value`` of a boundary condition may take the outward unit normals as a second
    argument, ``g(x, n)`` (``n`` shaped like ``x``, zero along time): a Neumann flux written as
    ``∇u·n`` then holds at corners, which grid boundaries repeat once per face.
    """

    where = "boundary"  # "boundary", "initial" or "data": which point budget it draws from
    # keywords of Condition that a subclass sets itself or refuses: a misspelt keyword's
    # message lists what the subclass takes
    _not_keywords: tuple[str, ...] = ()

    def __init__(
        self,
        value: Value = 0.0,
        on: Selection = None,
        component: Component = None,
        weight: float = 1.0,
        name: str | None = None,
        n: int | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(
                f"{type(self).__name__.lower()}: name must be a non-empty string, got {name!r}"
            )
        self.value, self.on, self.component = value, on, component
        self._name = name
        label = name or type(self).__name__.lower()  # subclasses' names may need more state
        if isinstance(value, str):
            _check_unknown_name(value, f"{label}: value")
        elif not callable(value) and not isinstance(value, Tensor):
            try:
                constant = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{label}: value must be a number, a list of numbers (one per "
                    f"component) or a function of the points, got {_shown(value)}"
                ) from None
            if not np.isfinite(constant).all():
                raise ValueError(f"{label}: value is not finite, got {_shown(value)}")
        ok = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
        if not ok or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{label}: weight must be a non-negative number, got {weight!r}")
        ok = isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
        if n is not None and not ok:
            raise ValueError(f"{label}: n must be a positive integer (points), got {n!r}")
        self.weight, self.n = float(weight), n

    @property
    def name(self) -> str:
        """Name of the loss term: ``name`` if given, else the default (see :class:`Condition`)."""
        if self._name:
            return self._name
        base = type(self).__name__.lower()
        if isinstance(self.on, str):
            return f"{base}[{self.on}]"
        return base

    def unknown_names(self) -> dict[str, str]:
        """The problem's unknowns this condition reads, ``{parameter: unknown name}``."""
        return {"value": self.value} if isinstance(self.value, str) else {}

    def columns(self, outputs: Sequence[str]) -> list[int]:
        """Output columns this condition constrains."""
        comps = self.component
        if comps is None:
            return list(range(len(outputs)))
        if hasattr(comps, "tolist"):  # a numpy or torch index (array)
            comps = comps.tolist()
        if isinstance(comps, numbers.Integral | str):
            comps = [comps]
        if not isinstance(comps, Sequence) or not comps:
            raise ValueError(
                f"{self.name}: component must be an output (name or index) or a non-empty list "
                f"of them, got {self.component!r}"
            )
        cols = []
        for c in comps:
            if isinstance(c, bool) or not isinstance(c, str | numbers.Integral):
                raise ValueError(
                    f"{self.name}: component {c!r} is neither an output name nor an index"
                )
            if isinstance(c, str):
                if c not in outputs:
                    raise ValueError(
                        f"{self.name}: unknown component {c!r}; outputs are {', '.join(outputs)}"
                    )
                cols.append(list(outputs).index(c))
            else:
                if not 0 <= int(c) < len(outputs):
                    raise ValueError(
                        f"{self.name}: component {c} out of range for {len(outputs)} output(s)"
                    )
                cols.append(int(c))
        repeated = sorted({outputs[c] for c in cols if cols.count(c) > 1})
        if repeated:  # it would count that output's misfit twice
            raise ValueError(
                f"{self.name}: component names {', '.join(map(repr, repeated))} more than once "
                f"(as {self.component!r})"
            )
        return cols

    def check(self, domain: Domain) -> None:
        """Raise ``ValueError`` (naming this condition) when it cannot apply to ``domain``:
        run as the problem is built, so that a wrong piece name fails before any training."""
        select = getattr(domain, "_select", None)  # kanpde's domains; others are trusted
        if self.where == "boundary" and select is not None and not callable(self.on):
            try:
                select(self.on)
            except ValueError as e:
                raise ValueError(f"{self.name}: {e}") from None

    def sample(
        self, domain: Domain, n: int, method: str, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Points ``(n, D)`` and normals (or None) for this condition."""
        b = domain.boundary(n, on=self.on, method=method, seed=seed)
        return b.points, b.normals

    def min_points(self, domain: Domain) -> int:
        """Fewest points a share of the boundary budget may give this condition: one on each
        piece it covers (without this minimum, two conditions sharing ``"boundary": 2`` on an
        interval would constrain one end each)."""
        return domain.boundary_pieces(self.on)

    def points(
        self,
        domain: Domain,
        outputs: Sequence[str],
        n: int,
        method: str,
        seed: int | None,
        dtype: torch.dtype,
        device: str | torch.device,
    ) -> PointSet:
        """Sample points and evaluate the prescribed values once."""
        x, normals = self.sample(domain, n, method, seed)
        x = torch.as_tensor(x, dtype=dtype, device=device)
        nt = None if normals is None else torch.as_tensor(normals, dtype=dtype, device=device)
        if isinstance(self.value, str):  # an unknown: read from p at every evaluation
            return PointSet(x, nt, None)
        target = _value(self.value, x, len(self.columns(outputs)), self.name, nt)
        return PointSet(x, nt, target)

    def lhs(
        self, x: Tensor, u: Tensor, points: PointSet, cols: list[int], ctx: ops.Derivatives
    ) -> Tensor:
        """The constrained quantity at the points, ``(n, len(cols))``."""
        raise NotImplementedError

    def residual(
        self,
        x: Tensor,
        u: Tensor,
        points: PointSet,
        cols: list[int],
        ctx: ops.Derivatives,
        p: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``lhs - target``, ``(n, len(cols))``; ``p`` holds the problem's unknowns (given
        when :meth:`unknown_names` is not empty)."""
        return self.lhs(x, u, points, cols, ctx) - self._target(points, p)

    def _target(self, points: PointSet, p: Mapping[str, Tensor] | None) -> Tensor:
        return p[self.value] if isinstance(self.value, str) else points.target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _normal_derivative(
    x: Tensor, u: Tensor, normals: Tensor, cols: list[int], ctx: ops.Derivatives
) -> Tensor:
    axes = ctx.spatial_axes(x.shape[1])
    dn = sum(ops.d(u, x, a) * normals[:, a : a + 1] for a in axes)
    return take(dn, cols)


class Dirichlet(Condition):
    """``u = value`` on the boundary (or the pieces selected by ``on=``).

    Parameters
    ----------
    value, on, component, weight, name, n
        As for :class:`Condition`.

    Raises
    ------
    ValueError
        If ``value``, ``weight``, ``name`` or ``n`` is invalid (``on`` and ``component`` are
        checked against the domain and outputs when the problem is built).
    """

    def lhs(
        self, x: Tensor, u: Tensor, points: PointSet, cols: list[int], ctx: ops.Derivatives
    ) -> Tensor:
        return take(u, cols)


class Neumann(Condition):
    """``∂u/∂n = value``: outward normal derivative over the spatial axes.

    A flux known from a solution's gradient is best given as ``value=lambda x, n: ...``
    (see :class:`Condition`): ``g(x)`` alone cannot tell a corner's two faces apart.

    Parameters
    ----------
    value, on, component, weight, name, n
        As for :class:`Condition`.

    Raises
    ------
    ValueError
        If ``value``, ``weight``, ``name`` or ``n`` is invalid (``on`` and ``component`` are
        checked against the domain and outputs when the problem is built).
    """

    def lhs(
        self, x: Tensor, u: Tensor, points: PointSet, cols: list[int], ctx: ops.Derivatives
    ) -> Tensor:
        return _normal_derivative(x, u, points.normals, cols, ctx)


class Robin(Condition):
    """``alpha·u + beta·∂u/∂n = value``.

    Parameters
    ----------
    alpha, beta : float or str
        Finite numbers, not both 0, or names of the problem's unknowns:
        ``Robin(alpha="h", beta=1.0)`` finds a heat transfer coefficient.
    value, on, component, weight, name, n
        As for :class:`Condition` (all but ``value`` by keyword).

    Raises
    ------
    ValueError
        If ``alpha`` or ``beta`` is neither a finite number nor an identifier, both are 0, or
        ``value``, ``weight``, ``name`` or ``n`` is invalid.
    """

    def __init__(
        self, alpha: float | str, beta: float | str, value: Value = 0.0, **kw: Any
    ) -> None:
        super().__init__(value, **kw)
        for what, v in (("alpha", alpha), ("beta", beta)):
            if isinstance(v, str):
                _check_unknown_name(v, f"{self.name}: {what}")
            elif isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(
                    f"{self.name}: {what} must be a finite number or an unknown's name, got {v!r}"
                )
        if alpha == 0 and beta == 0:
            raise ValueError(f"{self.name}: alpha and beta are both 0, so u is not constrained")
        self.alpha = alpha if isinstance(alpha, str) else float(alpha)
        self.beta = beta if isinstance(beta, str) else float(beta)

    def unknown_names(self) -> dict[str, str]:
        coefficients = {"alpha": self.alpha, "beta": self.beta}
        named = {k: v for k, v in coefficients.items() if isinstance(v, str)}
        return {**named, **super().unknown_names()}

    def lhs(
        self,
        x: Tensor,
        u: Tensor,
        points: PointSet,
        cols: list[int],
        ctx: ops.Derivatives,
        p: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        alpha, beta = (p[c] if isinstance(c, str) else c for c in (self.alpha, self.beta))
        return alpha * take(u, cols) + beta * _normal_derivative(x, u, points.normals, cols, ctx)

    def residual(
        self,
        x: Tensor,
        u: Tensor,
        points: PointSet,
        cols: list[int],
        ctx: ops.Derivatives,
        p: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        return self.lhs(x, u, points, cols, ctx, p) - self._target(points, p)


class Periodic(Condition):
    """``u`` (and its first ``derivatives`` derivatives along ``axis``) equal on opposite faces.

    Parameters
    ----------
    axis : str or int
        The periodic axis; points are drawn on its lower face and paired with the upper face.
    derivatives : int
        Also match derivatives along the axis up to this order (0, 1 or 2).
    component, weight, name, n
        As for :class:`Condition`.
    """

    _not_keywords = ("value", "on")

    def __init__(self, axis: str | int = "x", derivatives: int = 1, **kw: Any) -> None:
        if kw.get("on") is not None:
            raise ValueError("Periodic: on= is not supported (the faces are the axis' min and max)")
        super().__init__(0.0, **kw)
        if isinstance(axis, bool) or not isinstance(axis, str | int):
            raise ValueError(f"Periodic: axis must be a name or an index, got {axis!r}")
        self.axis = axis
        if isinstance(derivatives, bool) or derivatives not in (0, 1, 2):
            raise ValueError(f"{self.name}: derivatives must be 0, 1 or 2, got {derivatives!r}")
        self.derivatives = int(derivatives)

    @property
    def name(self) -> str:
        return self._name or f"periodic[{self.axis}]"

    def min_points(self, domain: Domain) -> int:
        return 1  # n points on each of the two faces

    def check(self, domain: Domain) -> None:
        self._faces(domain)

    def _faces(self, domain: Domain) -> tuple[int, str]:
        """The axis index and name, checked to have a min and a max face."""
        a = self._index(domain)
        name = domain.names[a]
        faces = set(domain.piece_names())
        if f"{name}min" not in faces or f"{name}max" not in faces:  # a disk, a polygon
            lo, hi = domain.bounds[0][a], domain.bounds[1][a]
            raise ValueError(
                f"{self.name}: {domain!r} has no pair of opposite faces {name} = {lo:g} and "
                f"{hi:g} to make periodic"
            )
        return a, name

    def sample(
        self, domain: Domain, n: int, method: str, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        a, name = self._faces(domain)
        lo, hi = domain.bounds[0][a], domain.bounds[1][a]
        face = domain.boundary(n, on=f"{name}min", method=method, seed=seed).points
        upper = domain.boundary(n, on=f"{name}max", method=method, seed=seed).points
        partner, mirror = face.copy(), upper.copy()
        partner[:, a], mirror[:, a] = hi, lo
        tol = 1e-9 * max(1.0, float(hi - lo))
        # Only a domain whose lower and upper faces are the planes lo and hi and mirror each
        # other (a box, or a box times time) has faces that pair up.
        flat = (np.abs(face[:, a] - lo) <= tol).all() and (np.abs(upper[:, a] - hi) <= tol).all()
        if not flat or not (
            domain.contains(partner, tol).all() and domain.contains(mirror, tol).all()
        ):
            raise ValueError(
                f"{self.name}: {domain!r} has no pair of opposite faces "
                f"{domain.names[a]} = {lo:g} and {hi:g} to make periodic"
            )
        face[:, a] = lo
        return np.concatenate([face, partner]), None

    def _index(self, domain: Domain) -> int:
        """The axis as a column index of ``domain``, checked."""
        names = domain.names
        if isinstance(self.axis, str):
            if self.axis not in names:
                raise ValueError(
                    f"{self.name}: unknown axis {self.axis!r}; axes are {', '.join(names)}"
                )
            a = names.index(self.axis)
        elif -domain.dim <= self.axis < domain.dim:
            a = self.axis % domain.dim
        else:
            raise ValueError(
                f"{self.name}: axis {self.axis} out of range for {domain.dim} coordinates"
            )
        if domain.time_axis is not None and a == domain.time_axis:
            raise ValueError(f"{self.name}: the time axis cannot be periodic")
        return a

    def points(
        self,
        domain: Domain,
        outputs: Sequence[str],
        n: int,
        method: str,
        seed: int | None,
        dtype: torch.dtype,
        device: str | torch.device,
    ) -> PointSet:
        x, _ = self.sample(domain, n, method, seed)
        x = torch.as_tensor(x, dtype=dtype, device=device)
        return PointSet(x, None, None)

    def residual(
        self,
        x: Tensor,
        u: Tensor,
        points: PointSet,
        cols: list[int],
        ctx: ops.Derivatives,
        p: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        a = ctx.axis(self.axis, x.shape[1])
        n = x.shape[0] // 2
        parts = [take(u, cols)]
        for order in range(1, self.derivatives + 1):
            parts.append(take(ops.d(u, x, *([a] * order)), cols))
        f = torch.cat(parts, dim=1)
        return f[:n] - f[n:]


class Initial(Condition):
    """``u(x, t0) = value`` or, with ``derivative=1``, ``∂u/∂t(x, t0) = value``.

    The points cover the domain at the initial time.

    Parameters
    ----------
    value : float, list of float, callable or str
        As for :class:`Condition`.
    derivative : int
        0 to prescribe ``u``, 1 to prescribe ``∂u/∂t``.
    component, weight, name, n
        As for :class:`Condition` (by keyword).

    Raises
    ------
    ValueError
        If ``on`` is given, ``derivative`` is not 0 or 1, or ``value``, ``weight``, ``name``
        or ``n`` is invalid.
    """

    where = "initial"

    _not_keywords = ("on",)

    def __init__(self, value: Value = 0.0, derivative: int = 0, **kw: Any) -> None:
        if kw.get("on") is not None:
            raise ValueError("Initial: on= is not supported (the points cover the domain at t0)")
        super().__init__(value, **kw)
        if isinstance(derivative, bool) or derivative not in (0, 1):
            raise ValueError(f"Initial: derivative must be 0 or 1, got {derivative!r}")
        self.derivative = derivative

    @property
    def name(self) -> str:
        return self._name or ("initial" if self.derivative == 0 else "initial_dt")

    def check(self, domain: Domain) -> None:
        if getattr(domain, "time_axis", None) is None:
            raise ValueError(
                f"{self.name}: an Initial condition needs a space-time domain "
                f"(e.g. Interval(-1, 1) * Time(0, 1)), got {domain!r}"
            )

    def sample(
        self, domain: Domain, n: int, method: str, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.check(domain)
        return domain.initial(n, method=method, seed=seed), None

    def lhs(
        self, x: Tensor, u: Tensor, points: PointSet, cols: list[int], ctx: ops.Derivatives
    ) -> Tensor:
        if self.derivative == 0:
            return take(u, cols)
        return take(ops.d(u, x, x.shape[1] - 1), cols)


class PointData(Condition):
    """Observations ``u(x_i) = values_i`` at given points (data-assisted or inverse problems).

    Parameters
    ----------
    x : array-like
        ``(n, D)`` observation points (``(n,)`` on a 1-D domain).
    values : array-like
        ``(n, c)`` observed values of the selected components (``(n,)`` for one).
    component, weight, name
        As for :class:`Condition`.
    """

    where = "data"
    _not_keywords = ("value", "on", "n")

    def __init__(
        self, x: np.ndarray | Tensor | Sequence, values: np.ndarray | Tensor | Sequence, **kw: Any
    ) -> None:
        for key in ("on", "n"):
            if kw.get(key) is not None:  # the points are the data's own
                raise ValueError(f"PointData: {key}= is not supported (the points are x)")
        super().__init__(0.0, **kw)
        if callable(values) or callable(x):
            raise ValueError(
                "PointData: x and values are arrays of the observations, not functions (a "
                "function of the points is a Dirichlet value)"
            )
        if _is_complex(values):  # the cast below would drop the imaginary part
            raise ValueError("PointData: values are complex; conditions take real values")
        try:
            self.x = np.asarray(x, dtype=np.float64)
            self.values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"PointData: x and values must be numeric arrays ({e})") from None
        if self.values.ndim == 0:
            raise ValueError(
                "PointData: values must hold one observation per point, (n,) or (n, c), got "
                "a single number"
            )
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if self.x.ndim == 1 and len(self.x) == len(self.values):  # n points of a 1-D domain
            self.x = self.x[:, None]
        if self.x.ndim != 2 or self.values.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"PointData: x must be (n, D) and values (n, c) with the same n; got "
                f"{self.x.shape} and {self.values.shape}"
            )
        if self.x.shape[0] == 0:
            raise ValueError("PointData: no observation points (x is empty)")
        if not np.isfinite(self.x).all():
            raise ValueError("PointData: x is not finite (NaN or Inf) at some points")

    @property
    def name(self) -> str:
        return self._name or "data"

    def points(
        self,
        domain: Domain,
        outputs: Sequence[str],
        n: int,
        method: str,
        seed: int | None,
        dtype: torch.dtype,
        device: str | torch.device,
    ) -> PointSet:
        if self.x.shape[1] != domain.dim:
            raise ValueError(
                f"{self.name}: points have {self.x.shape[1]} coordinates, the domain has "
                f"{domain.dim}"
            )
        lo, hi = domain.bounds
        # Data on the boundary often come in float32 or rounded to a few digits: a point off
        # by a millionth of the domain's size is on it; further out it is a typo or another
        # problem's data.
        outside = ~domain.contains(self.x, 1e-6 * float(np.linalg.norm(hi - lo)))
        if outside.any():
            first = ", ".join(f"{v:.9g}" for v in self.x[outside][0])
            raise ValueError(
                f"{self.name}: {int(outside.sum())} of {len(self.x)} points lie outside the "
                f"domain, e.g. ({first})"
            )
        x = torch.as_tensor(self.x, dtype=dtype, device=device)
        target = _value(
            torch.as_tensor(self.values, device=x.device),
            x,
            len(self.columns(outputs)),
            self.name,
            per_point=True,
        )
        return PointSet(x, None, target)

    def lhs(
        self, x: Tensor, u: Tensor, points: PointSet, cols: list[int], ctx: ops.Derivatives
    ) -> Tensor:
        return take(u, cols)
