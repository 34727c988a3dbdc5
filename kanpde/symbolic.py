"""Interpretability: sparsify, prune and turn a trained KAN into a formula.

The pipeline of the KAN paper, for physics-informed networks:

1. **Sparsify** — train with :func:`regularization` added to the loss (L1 of every edge's mean
   ``|φ|`` over the samples plus the entropy of those means, per layer), e.g. with
   :func:`train` or :class:`Penalized` around any :class:`~kanpde.losses.Residuals`.
2. **Prune** — :func:`prune` drops hidden nodes whose incoming or outgoing edges are all small
   (also when weighted by how much they move the outputs) and removes such edges; it returns
   a smaller KAN computing nearly the same function.
3. **Symbolify** — :func:`suggest_symbolic` ranks the functions of a library by the R² of the
   best affine fit ``c·f(a·x + b) + d`` to an edge; :func:`fix_symbolic` replaces one edge by
   such a function, :func:`auto_symbolic` does every edge. A symbolic edge keeps ``a, b, c, d``
   trainable and has exact first and second derivatives, so the PDE loss can refine it.
4. **Read** — :func:`formula` composes the edges into a sympy expression.

:func:`edge_values` gives every edge's values on samples, for plots of one's own.

Removed and symbolic edges are part of the model's structure (``KANLayer.set_edges``): its
``config()`` lists every edge's kind, so ``from_config`` + ``load_state_dict`` (and results
files) rebuild the edited network exactly. Removed edges own no parameters, a symbolic edge
owns four, so :func:`~kanpde.nn.count_parameters` counts what is left.

Indices follow pykan: edge ``(l, i, j)`` is the edge of layer ``l`` from its input ``i`` to its
output ``j``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy
import torch
from torch import Tensor, nn

from .nn.kan import KAN, SPLINE, KANLayer
from .problem import warn

if TYPE_CHECKING:
    from .losses import Residuals
    from .problem import Problem
    from .results import Run
    from .schedule import Stage
    from .training import Trainer

__all__ = [
    "Fit",
    "Penalized",
    "SymbolicEdges",
    "SymbolicFunction",
    "add_function",
    "auto_symbolic",
    "edge_scores",
    "edge_values",
    "fit_function",
    "fix_symbolic",
    "formula",
    "get_function",
    "is_symbolic",
    "prune",
    "regularization",
    "suggest_symbolic",
    "symmetries",
    "train",
]

# ---------------------------------------------------------------------------------------------
# Function library
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolicFunction:
    """A univariate function usable as a symbolic edge.

    Attributes
    ----------
    name : str
        Its key in the library (and in model configs).
    f, d1, d2 : callable
        ``Tensor → Tensor``: the function and its first and second derivatives (elementwise).
    expr : callable
        ``sympy.Expr → sympy.Expr``: the same function for :func:`formula`.
    complexity : int
        Used by :func:`auto_symbolic` to prefer simple functions among equally good fits.
    domain : callable, optional
        ``Tensor → bool Tensor``: where ``f`` is defined (fits must stay inside).
    canonical : callable, optional
        ``(a, b, c, d) → (a, b, c, d)`` describing the same edge in a preferred form (e.g.
        ``a > 0`` for odd and even functions, ``b = 0`` for ``exp``), for readable formulas.
    """

    name: str
    f: Callable[[Tensor], Tensor]
    d1: Callable[[Tensor], Tensor]
    d2: Callable[[Tensor], Tensor]
    expr: Callable = field(repr=False)
    complexity: int = 2
    domain: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)
    canonical: Callable | None = field(default=None, repr=False)

    def valid(self, z: Tensor) -> Tensor:
        """Where ``f`` is defined.

        Parameters
        ----------
        z : Tensor
            Arguments ``a·x + b`` of ``f``.

        Returns
        -------
        Tensor
            Bool, shaped like ``z``: :attr:`domain` at ``z``, or all true without one.
        """
        return torch.ones_like(z, dtype=torch.bool) if self.domain is None else self.domain(z)


LIBRARY: dict[str, SymbolicFunction] = {}


def add_function(
    name: str,
    f: Callable[[Tensor], Tensor],
    d1: Callable[[Tensor], Tensor],
    d2: Callable[[Tensor], Tensor],
    expr: Callable[[sympy.Symbol], sympy.Expr] | sympy.Expr,
    complexity: int = 2,
    domain: Callable[[Tensor], Tensor] | None = None,
    canonical: Callable | None = None,
    check: bool = True,
) -> SymbolicFunction:
    """Add (or replace) a function of the library.

    Parameters
    ----------
    name : str
        Library key, e.g. ``"sinh"`` (not ``"spline"`` or ``""``, which are edge kinds).
    f, d1, d2 : callable
        Torch implementations of ``f``, ``f'`` and ``f''``.
    expr : callable or sympy expression
        ``lambda z: sympy.sinh(z)``, or an expression in one symbol such as
        ``sympy.sinh(sympy.Symbol("x"))``.
    complexity : int
        1 for ``x``, 2 for ``x²``, ``sin``, ``exp`` …, 3 or more for less common functions.
    domain : callable, optional
        Where ``f`` is defined, e.g. ``lambda z: z > 0``.
    canonical : callable, optional
        Maps fitted ``(a, b, c, d)`` to an equivalent preferred form (see
        :class:`SymbolicFunction`).
    check : bool
        Compare ``d1`` and ``d2`` with autograd at a few points of the domain.

    Returns
    -------
    SymbolicFunction
        The function as stored in the library.

    Notes
    -----
    Models that use a custom function can only be rebuilt (``from_config``, ``kanpde.load``)
    after it is added again.
    """
    if not isinstance(name, str):
        raise ValueError(f"add_function: name must be a string, got {type(name).__name__}")
    if name in (SPLINE, ""):
        raise ValueError(f"{name!r} cannot name a function: it is an edge kind")
    where = f"add_function {name!r}"
    for arg, value in (("f", f), ("d1", d1), ("d2", d2)):
        if not callable(value):
            raise ValueError(f"{where}: {arg} must be a function of a torch tensor, got "
                             f"{type(value).__name__}")  # fmt: skip
    for arg, value in (("domain", domain), ("canonical", canonical)):
        if value is not None and not callable(value):
            raise ValueError(f"{where}: {arg} must be a function or None, got "
                             f"{type(value).__name__}")  # fmt: skip
    if isinstance(complexity, bool) or not isinstance(complexity, numbers.Integral):
        raise ValueError(f"{where}: complexity must be an integer, got {complexity!r}")
    if complexity < 0:
        raise ValueError(f"{where}: complexity must be >= 0, got {complexity}")
    if isinstance(expr, sympy.Expr):
        symbols = sorted(expr.free_symbols, key=str)
        if len(symbols) != 1:
            raise ValueError(f"expression {expr} of {name!r} must have exactly one symbol")
        template, (sym,) = expr, symbols
        expr = lambda z: template.subs(sym, z)  # noqa: E731
    elif not callable(expr):
        raise ValueError(f"{where}: expr must be a sympy expression in one symbol or a function "
                         f"returning one, got {type(expr).__name__}")  # fmt: skip
    fn = SymbolicFunction(name, f, d1, d2, expr, int(complexity), domain, canonical)
    if check:
        try:
            _check_derivatives(fn)
            _check_expression(fn)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's functions
            raise ValueError(
                f"{where}: calling its functions on a torch tensor raised {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''} (f, d1, d2 and domain take and "
                "return torch tensors; expr takes a sympy symbol)"
            ) from e
    LIBRARY[name] = fn
    return fn


def _check_expression(fn: SymbolicFunction, tol: float = 1e-8) -> None:
    """``expr`` must be ``f``: it is what formula() writes for the edges that compute ``f``."""
    z = torch.linspace(-3, 3, 61, dtype=torch.float64, device="cpu")
    z = z[fn.valid(z)]
    if z.numel() == 0:
        return
    sym = sympy.Symbol("z")
    e = fn.expr(sym)
    if not isinstance(e, sympy.Expr):
        raise ValueError(f"function {fn.name!r}: expr returned {type(e).__name__}, not a sympy "
                         "expression")  # fmt: skip
    with np.errstate(all="ignore"):
        try:  # scipy too: erf, Bessel functions ... have no numpy translation
            mine = np.broadcast_to(sympy.lambdify(sym, e, ["numpy", "scipy"])(z.numpy()), z.shape)
        except Exception:  # noqa: BLE001 - no array translation at all: point by point
            mine = np.array([complex(e.subs(sym, float(v)).evalf()).real for v in z[::6]])
            z = z[::6]
    ref = fn.f(z).numpy()
    ok = np.isfinite(ref)
    err = float(np.abs(mine[ok] - ref[ok]).max()) if ok.any() else 0.0
    if not err <= tol * (1 + float(np.abs(ref[ok]).max())):  # NaN counts as disagreement
        raise ValueError(f"function {fn.name!r}: expr disagrees with f ({err:.2e})")


def _check_derivatives(fn: SymbolicFunction, tol: float = 1e-8) -> None:
    z = torch.linspace(-3, 3, 61, dtype=torch.float64, device="cpu")
    z = z[fn.valid(z) & (z.abs() > 0.05)].clone().requires_grad_(True)
    if z.numel() == 0:
        return
    out = fn.f(z)
    if not isinstance(out, Tensor) or out.shape != z.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"function {fn.name!r}: f must return a tensor of its input's shape "
                         f"{tuple(z.shape)}, got {got}")  # fmt: skip
    zd = z.detach()
    if out.requires_grad:
        (g1,) = torch.autograd.grad(out.sum(), z, create_graph=True)
        g2 = torch.autograd.grad(g1.sum(), z)[0] if g1.requires_grad else torch.zeros_like(g1)
        against = "autograd"
    else:
        # no graph back to z: a constant, or a function torch cannot differentiate (e.g.
        # torch.special.bessel_j0): central differences, of f for d1 and of d1 for d2
        h = 1e-5
        both = fn.valid(zd - h) & fn.valid(zd + h)
        zd = zd[both]
        g1 = (fn.f(zd + h) - fn.f(zd - h)) / (2 * h)
        g2 = (fn.d1(zd + h) - fn.d1(zd - h)) / (2 * h)
        against, tol = "central differences", 1e-6
    for label, mine, ref in (("d1", fn.d1(zd), g1), ("d2", fn.d2(zd), g2)):
        ref = ref.detach()
        ok = torch.isfinite(ref)
        err = float((mine[ok] - ref[ok]).abs().max()) if bool(ok.any()) else 0.0
        if err > tol * (1 + float(ref[ok].abs().max())):
            raise ValueError(f"function {fn.name!r}: {label} disagrees with {against} ({err:.2e})")


def _power(n: int):
    def f(z):
        return z**n

    def d1(z):
        return n * z ** (n - 1)

    def d2(z):
        return n * (n - 1) * z ** (n - 2) if n > 1 else torch.zeros_like(z)

    return f, d1, d2


def _sympy_power(n: int):
    return lambda z: z**n


def _tan(z):
    return torch.tan(z)


def _sec2(z):
    t = torch.tan(z)
    return 1 + t * t


def _sech2(z):
    t = torch.tanh(z)
    return 1 - t * t


def _gauss(z):
    return torch.exp(-z * z)


def symmetries(
    parity: int = 0,
    degree: float | None = None,
    period: float | None = None,
    antiperiod: float | None = None,
    exp_shift: bool = False,
    log_scale: bool = False,
) -> Callable:
    """A ``canonical`` map from the symmetries of ``f``: one representative of the affine
    parameters that give the same edge.

    Parameters
    ----------
    parity : int
        +1 (even: ``f(-z) = f(z)``) or -1 (odd) makes ``a > 0``; 0: neither.
    degree : float, optional
        ``n`` with ``f(a z) = a^n f(z)`` for ``a > 0``: makes ``a = 1``.
    period : float, optional
        Brings ``b`` into ``[-period/2, period/2)``.
    antiperiod : float, optional
        ``p`` with ``f(z + p) = -f(z)``: makes ``c > 0``.
    exp_shift : bool
        ``f(z + b) = e^b f(z)``: makes ``b = 0``.
    log_scale : bool
        ``f(a z) = log a + f(z)``: makes ``a = 1``.

    Returns
    -------
    callable
        ``canonical(a, b, c, d) -> (a, b, c, d)``, as :func:`add_function` takes it.
    """

    def canonical(a: float, b: float, c: float, d: float):
        if parity and a < 0:
            a, b, c = -a, -b, (c if parity > 0 else -c)
        if antiperiod and c < 0:
            b, c = b + antiperiod, -c
        if degree is not None and a > 0:
            a, b, c = 1.0, b / a, c * a**degree
        if log_scale and a > 0:
            a, b, d = 1.0, b / a, d + c * math.log(a)
        if exp_shift:
            b, c = 0.0, c * math.exp(b)
        if period:
            b = b - period * math.floor(b / period + 0.5)
        return a, b, c, d

    return canonical


def _builtin() -> None:
    zero = torch.zeros_like
    add = lambda *a, **k: add_function(*a, check=False, **k)  # noqa: E731
    odd, even = symmetries(parity=-1), symmetries(parity=1)
    add("0", zero, zero, zero, lambda z: sympy.Integer(0), complexity=0)
    add("x", lambda z: z, torch.ones_like, zero, lambda z: z, complexity=1)
    for n, c in ((2, 2), (3, 3), (4, 3), (5, 4)):
        canon = symmetries(parity=1 if n % 2 == 0 else -1, degree=n)
        add(f"x^{n}", *_power(n), _sympy_power(n), complexity=c, canonical=canon)
    nonzero = lambda z: z.abs() > 1e-8  # noqa: E731
    positive = lambda z: z > 0  # noqa: E731
    add("1/x", lambda z: 1 / z, lambda z: -1 / (z * z), lambda z: 2 / z**3, lambda z: 1 / z,
        complexity=2, domain=nonzero, canonical=symmetries(-1, -1))  # fmt: skip
    add("1/x^2", lambda z: 1 / (z * z), lambda z: -2 / z**3, lambda z: 6 / z**4,
        lambda z: 1 / z**2, complexity=3, domain=nonzero, canonical=symmetries(1, -2))  # fmt: skip
    add("sqrt", torch.sqrt, lambda z: 0.5 / torch.sqrt(z), lambda z: -0.25 / z**1.5,
        sympy.sqrt, complexity=2, domain=positive, canonical=symmetries(degree=0.5))  # fmt: skip
    add("exp", torch.exp, torch.exp, torch.exp, sympy.exp, complexity=2,
        canonical=symmetries(exp_shift=True))  # fmt: skip
    add("log", torch.log, lambda z: 1 / z, lambda z: -1 / (z * z), sympy.log, complexity=2,
        domain=positive, canonical=symmetries(log_scale=True))  # fmt: skip
    add("sin", torch.sin, torch.cos, lambda z: -torch.sin(z), sympy.sin, complexity=2,
        canonical=symmetries(-1, period=2 * math.pi, antiperiod=math.pi))  # fmt: skip
    add("cos", torch.cos, lambda z: -torch.sin(z), lambda z: -torch.cos(z), sympy.cos,
        complexity=2, canonical=symmetries(1, period=2 * math.pi, antiperiod=math.pi))  # fmt: skip
    add("tan", _tan, _sec2, lambda z: 2 * torch.tan(z) * _sec2(z), sympy.tan, complexity=3,
        domain=lambda z: torch.cos(z).abs() > 1e-6,
        canonical=symmetries(-1, period=math.pi))  # fmt: skip
    add("tanh", torch.tanh, _sech2, lambda z: -2 * torch.tanh(z) * _sech2(z), sympy.tanh,
        complexity=3, canonical=odd)  # fmt: skip
    add("arctan", torch.atan, lambda z: 1 / (1 + z * z), lambda z: -2 * z / (1 + z * z) ** 2,
        sympy.atan, complexity=3, canonical=odd)  # fmt: skip
    add("abs", torch.abs, torch.sign, zero, sympy.Abs, complexity=3,
        canonical=symmetries(1, 1))  # fmt: skip
    add("gaussian", _gauss, lambda z: -2 * z * _gauss(z), lambda z: (4 * z * z - 2) * _gauss(z),
        lambda z: sympy.exp(-(z**2)), complexity=3, canonical=even)  # fmt: skip


_builtin()


def get_function(name: str) -> SymbolicFunction:
    """The library function called ``name``.

    Parameters
    ----------
    name : str
        Its key in the library, e.g. ``"sin"`` or ``"x^2"``.

    Returns
    -------
    SymbolicFunction

    Raises
    ------
    ValueError
        If the library has no such function (add it with :func:`add_function`).
    """
    try:
        return LIBRARY[name]
    except KeyError:
        raise ValueError(
            f"unknown symbolic function {name!r}; known: {', '.join(LIBRARY)} "
            "(add your own with kanpde.symbolic.add_function before building the model)"
        ) from None


def _library(library: Sequence[str] | None) -> list[SymbolicFunction]:
    if library is None:
        return [get_function(n) for n in LIBRARY]
    if isinstance(library, str) or not isinstance(library, Sequence) or not library:
        # a string would be read letter by letter
        raise ValueError(
            f"library must be a non-empty list of function names such as ['sin', 'x^2'], got "
            f"{library!r}"
        )
    return [get_function(n) for n in library]


# ---------------------------------------------------------------------------------------------
# Symbolic edges of a layer
# ---------------------------------------------------------------------------------------------


class SymbolicEdges(nn.Module):
    """The symbolic edges of one :class:`~kanpde.nn.KANLayer`: ``c·f(a·x_i + b) + d``.

    Built by ``KANLayer.set_edges``. Parameters: ``affine`` ``(n, 4)`` holding ``a, b, c, d``
    of each edge (rows in the order of :attr:`edges`, grouped by function).

    Parameters
    ----------
    entries : iterable of (int, int, str)
        ``(output, input, function name)`` of every symbolic edge.
    n_in : int
        Inputs of the layer.
    like : Tensor
        Dtype and device of the parameters.
    previous : SymbolicEdges, optional
        Edges found here with the same function keep their parameters.
    """

    def __init__(
        self,
        entries: Iterable[tuple[int, int, str]],
        n_in: int,
        like: Tensor,
        previous: SymbolicEdges | None = None,
    ):
        super().__init__()
        entries = sorted((str(n), int(o), int(i)) for o, i, n in entries)
        self.names = [n for n, _, _ in entries]
        self.edges = [(o, i) for _, o, i in entries]
        self.functions = [get_function(n) for n in self.names]
        self.groups: list[tuple[SymbolicFunction, int, int]] = []
        for r, fn in enumerate(self.functions):
            if self.groups and self.groups[-1][0] is fn:
                self.groups[-1] = (fn, self.groups[-1][1], r + 1)
            else:
                self.groups.append((fn, r, r + 1))
        affine = like.new_tensor([[1.0, 0.0, 1.0, 0.0]]).repeat(len(entries), 1)
        if previous is not None:
            for r, (o, i) in enumerate(self.edges):
                old = previous.row(o, i)
                if old is not None and previous.names[old] == self.names[r]:
                    affine[r] = previous.affine[old].detach()
        self.affine = nn.Parameter(affine)
        dev = like.device
        self.register_buffer(
            "inputs", torch.tensor([i for _, i in self.edges], device=dev), persistent=False
        )
        self.register_buffer(
            "flat", torch.tensor([o * n_in + i for o, i in self.edges], device=dev),
            persistent=False,
        )  # fmt: skip

    def row(self, o: int, i: int) -> int | None:
        """Row of edge ``(o, i)`` in :attr:`affine` (None when it is not symbolic)."""
        try:
            return self.edges.index((o, i))
        except ValueError:
            return None

    def forward(self, h: Tensor, order: int) -> tuple[Tensor, ...]:
        """Layer inputs ``(n_in, N)`` → ``order + 1`` tensors ``(n, N)``: values, d/dx, d²/dx²."""
        a, b, c, d = self.affine.unsqueeze(-1).unbind(1)  # (n, 1) each
        z = a * h.index_select(0, self.inputs) + b
        parts: list[list[Tensor]] = [[] for _ in range(order + 1)]
        for fn, start, stop in self.groups:
            zz = z[start:stop]
            parts[0].append(fn.f(zz))
            if order >= 1:
                parts[1].append(fn.d1(zz))
            if order >= 2:
                parts[2].append(fn.d2(zz))
        f = [p[0] if len(p) == 1 else torch.cat(p) for p in parts]
        out = [c * f[0] + d]
        if order >= 1:
            ca = c * a
            out.append(ca * f[1])
        if order >= 2:
            out.append(ca * a * f[2])
        return tuple(out)

    def extra_repr(self) -> str:
        return ", ".join(f"{o}<-{i}: {n}" for (o, i), n in zip(self.edges, self.names))


# ---------------------------------------------------------------------------------------------
# Activations, edge scores and the sparsification penalty
# ---------------------------------------------------------------------------------------------


def _check_kan(model) -> KAN:
    if not isinstance(model, KAN):
        raise TypeError(f"expected a kanpde KAN, got {type(model).__name__}")
    return model


def _points(model: KAN, x) -> Tensor:
    """The samples ``x`` as an ``(N, D)`` tensor of the model's dtype and device, ``N ≥ 1``."""
    _check_kan(model)
    p = next(model.parameters())
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64), device=p.device)
    d = model.width[0]
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] < 1:
        raise ValueError(f"samples x must be (N, {d}) points with N ≥ 1, got {tuple(x.shape)}")
    return x.detach().to(dtype=p.dtype, device=p.device)


def edge_values(model: KAN, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Every layer's inputs and edge values at the points ``x`` ``(N, D)``, without gradients.

    Parameters
    ----------
    model : KAN
        The network.
    x : Tensor
        ``(N, D)`` samples of its inputs, ``N ≥ 1``.

    Returns
    -------
    list of (Tensor, Tensor)
        Per layer ``l``: its inputs ``h`` ``(n_in, N)`` and edge values ``φ_{l,i,j}(h_i)`` as
        ``phi[j, i]`` ``(n_out, n_in, N)`` (feature-major, as the layers compute them), so that
        ``phi[j, i]`` against ``h[i]`` is edge ``(l, i, j)``'s curve on the samples.

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`.
    ValueError
        If ``x`` is not ``(N, D)`` with ``N ≥ 1``.
    """
    x = _points(model, x)  # also checks the model
    with torch.no_grad():
        return _activations(model, x)


def _activations(model: KAN, x: Tensor):
    """Per layer: inputs ``(n_in, N)`` and edge values ``(n_out, n_in, N)`` (feature-major)."""
    p = next(model.parameters())
    h = x.to(dtype=p.dtype, device=p.device).t()  # samples may come from the CPU
    out = []
    for layer in model.layers:
        phi = layer._edges(h, 0)[0]
        out.append((h, phi))
        h = phi.sum(1)
        if layer.bias is not None:
            h = h + layer.bias.unsqueeze(1)
    return out


def _output_gains(model: KAN, acts) -> list[Tensor]:
    """Per layer: ``Σ_c |∂u_c/∂y_o|`` at the samples for the nodes ``y`` it feeds, ``(n_out, N)``
    (ones for the last layer), from :func:`_activations` evaluated with a graph."""
    hidden = [h for h, _ in acts[1:]]
    last = model.layers[-1]
    out = acts[-1][1].sum(1)
    if last.bias is not None:
        out = out + last.bias.unsqueeze(1)
    gains = [torch.zeros_like(y) for y in hidden]
    for c in range(out.shape[0]):
        # each point's outputs depend on that point's nodes only; a graphless output (every
        # edge into it removed) moves with nothing
        if hidden and out.requires_grad:
            grads = torch.autograd.grad(out[c].sum(), hidden, retain_graph=True, allow_unused=True)
            for g, d in zip(gains, grads):
                if d is not None:
                    g += d.abs()
    return [g.detach() for g in gains] + [torch.ones_like(out).detach()]


def edge_scores(model: KAN, x: Tensor) -> list[Tensor]:
    """Mean ``|φ|`` of every edge over the samples ``x`` ``(N, D)``: per layer ``(n_out, n_in)``.

    These are the ``|φ|_1`` of the KAN paper; removed edges score 0.

    Parameters
    ----------
    model : KAN
        The network.
    x : Tensor
        ``(N, D)`` samples of its inputs, ``N ≥ 1``.

    Returns
    -------
    list of Tensor
        Per layer, the scores ``(n_out, n_in)``: ``scores[l][j, i]`` is edge ``(l, i, j)``'s.

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`.
    ValueError
        If ``x`` is not ``(N, D)`` with ``N ≥ 1``.
    """
    x = _points(model, x)  # also checks the model
    with torch.no_grad():
        return [phi.abs().mean(-1) for _, phi in _activations(model, x)]


def regularization(model: KAN, x: Tensor, l1: float = 1.0, entropy: float = 2.0) -> Tensor:
    """The KAN paper's sparsification penalty (differentiable, a 0-d tensor).

    ``Σ_l (l1 · |Φ_l|_1 + entropy · S(Φ_l))`` with ``|Φ_l|_1 = Σ_ij |φ_ij|_1``, the edge norms
    ``|φ_ij|_1`` = mean of ``|φ_ij|`` over the samples ``x`` ``(N, D)``, and the entropy
    ``S(Φ_l) = -Σ_ij p_ij log p_ij`` of ``p_ij = |φ_ij|_1 / |Φ_l|_1``. Add it to a loss with a
    small weight (``1e-4``…``1e-2``) while training a larger-than-needed KAN.

    The default weights ``l1 = 1, entropy = 2`` are pykan's (``lamb_l1``, ``lamb_entropy``); the
    paper's eq. 2.20 usually sets both to 1 (``entropy=1.0``).

    Parameters
    ----------
    model : KAN
        The network.
    x : Tensor
        ``(N, D)`` samples of its inputs, ``N ≥ 1``.
    l1 : float
        Weight of the edge norms ``|Φ_l|_1``.
    entropy : float
        Weight of the entropies ``S(Φ_l)`` (0: not computed).

    Returns
    -------
    Tensor
        The penalty, 0-d, differentiable with respect to the model's parameters.

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`.
    ValueError
        If ``x`` is not ``(N, D)`` with ``N ≥ 1``.
    """
    x = _points(model, x)  # also checks the model
    total = x.new_zeros((), dtype=next(model.parameters()).dtype)
    for _, phi in _activations(model, x):
        norms = phi.abs().mean(-1)
        layer_l1 = norms.sum()
        total = total + l1 * layer_l1
        if entropy:
            p = norms / layer_l1.clamp_min(1e-30)
            total = total - entropy * torch.special.xlogy(p, p).sum()
    return total


class Penalized:
    """A :class:`~kanpde.losses.Residuals` with an extra weighted penalty term.

    Usable wherever the residuals are (e.g. by :class:`~kanpde.training.Trainer`): calling it
    returns the loss plus ``weight · penalty(model, x)`` and the terms with the penalty added
    under ``name``, where ``x`` are the residuals' current interior points (all ranks' under
    torchrun, the penalty counted once). Everything else is
    delegated to the wrapped residuals.

    Parameters
    ----------
    residuals : Residuals
        The loss terms to wrap.
    weight : float
        Weight of the penalty in the loss.
    penalty : callable, optional
        ``penalty(model, x) → 0-d Tensor``; default :func:`regularization` with ``l1`` and
        ``entropy``.
    name : str
        Name of the penalty's term in the returned terms (and the history).
    l1, entropy : float
        Weights of the default penalty's two parts (ignored with ``penalty``).
    """

    def __init__(
        self,
        residuals: Residuals,
        weight: float,
        penalty: Callable | None = None,
        name: str = "sparsity",
        l1: float = 1.0,
        entropy: float = 2.0,
    ) -> None:
        self.residuals = residuals
        self.weight = float(weight)
        self.name = name
        self.penalty = penalty or (lambda m, x: regularization(m, x, l1=l1, entropy=entropy))

    def __getattr__(self, name):
        try:
            return getattr(self.__dict__["residuals"], name)
        except KeyError:
            raise AttributeError(name) from None

    def __call__(self) -> tuple[Tensor, dict[str, Tensor]]:
        loss, terms = self.residuals()
        if hasattr(self.residuals, "model_term"):  # all points, once across torchrun's ranks
            p = self.residuals.model_term(self.penalty)
        else:
            p = self.penalty(self.residuals.model, self.residuals.interior.x)
        return loss + self.weight * p, {**terms, self.name: p}


def _non_negative(where: str, value) -> None:
    """A penalty weight: a finite real number >= 0 (NaN would stop training as 'not finite')."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{where}: must be a finite number >= 0, got {value!r}")


def train(
    problem: Problem | str | Path,
    model: nn.Module,
    schedule: str | Sequence[Stage | dict],
    sparsity: float = 0.0,
    l1: float = 1.0,
    entropy: float = 2.0,
    points: dict | None = None,
    weights: dict | None = None,
    seed: int = 0,
    log_every: int = 50,
    progress: bool = False,
) -> Trainer:
    """Train ``model`` in place on ``problem`` with the sparsification penalty; returns the
    :class:`~kanpde.training.Trainer` (its ``history`` and ``metrics()``;
    :func:`kanpde.plot.history` draws it).

    The residuals, schedule format and optimizers of :func:`kanpde.solve`, plus
    ``sparsity · regularization(model, interior points)`` over the whole schedule, with the
    penalty's ``l1`` and ``entropy`` weights; ``solve`` with a stage's ``"sparsity"`` applies
    the default penalty stage by stage instead. Nothing is written.

    Parameters
    ----------
    problem : Problem, str or Path
        The problem, or the path of a problem file.
    model : nn.Module
        The network to train (in place), e.g. a :class:`~kanpde.nn.KAN`; its parameters' dtype
        and device are the training's.
    schedule : str or sequence of (Stage or dict)
        The stages (see :mod:`kanpde.schedule`).
    sparsity : float
        Weight of the penalty in the loss (0: none).
    l1, entropy : float
        The penalty's weights (see :func:`regularization`).
    points : dict, optional
        Overrides of the problem's point budget (``interior``, ``boundary``, ``test`` …).
    weights : dict, optional
        Overrides of the problem's loss weights (e.g. ``{"pde": 1.0}``).
    seed : int
        Seed of torch's generator and of the point samplers.
    log_every : int
        Steps between history rows.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Trainer
        The trainer after the schedule ran.

    Raises
    ------
    ValueError
        If ``sparsity``, ``l1`` or ``entropy`` is negative or not finite, or another argument
        is malformed (a :class:`~kanpde.schedule.ScheduleError` for the schedule).
    ProblemError
        (A ``ValueError``.) If the problem, or its file, is malformed.
    """
    from .losses import Residuals
    from .problem import apply_preset, load_problem, merge_weights
    from .schedule import parse_schedule
    from .training import Trainer, test_set

    for arg, value in (("sparsity", sparsity), ("l1", l1), ("entropy", entropy)):
        _non_negative(f"train({arg}=...)", value)
    if isinstance(problem, str | Path):
        problem = load_problem(problem)
    p = next(model.parameters())
    dtype, device = p.dtype, p.device
    defaults = apply_preset(problem, None)
    pts = {**defaults["points"], **(points or {})}
    w = merge_weights(defaults["weights"], weights or {})
    torch.manual_seed(seed)
    residuals = Residuals(problem, model, pts, w, dtype, device, seed)
    if sparsity:
        residuals = Penalized(residuals, sparsity, l1=l1, entropy=entropy)
    test = test_set(problem, pts.get("test"), dtype, device)
    trainer = Trainer(residuals, parse_schedule(schedule), test, log_every, progress, graphs=False)
    trainer.run()
    return trainer


# ---------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------


def prune(
    model: KAN,
    x: Tensor,
    edge_threshold: float = 1e-2,
    node_threshold: float = 1e-2,
) -> KAN:
    """A smaller KAN computing nearly the same function on the samples ``x`` ``(N, D)``.

    An edge's score is the larger of the KAN paper's ``|φ|_1`` (mean ``|φ|`` over ``x``) and
    its *impact* ``mean |∂u/∂y_o| · |φ_oi|``, which weights it by how strongly the node ``y_o``
    it feeds moves the outputs ``u`` (summed over outputs). With ``|φ|_1`` alone, a tiny edge
    feeding a steep edge downstream — which the paper's L1 sparsification favours — is removed
    although it matters (measured: an edge with ``|φ|_1 = 6e-3`` whose removal changed the
    output by 7e-2 RMS); taking the larger never removes an edge the paper's rule keeps.

    A hidden node is kept when both its incoming score (the largest score of the edges into
    it) and its outgoing score (the largest of the edges out of it) exceed ``node_threshold``
    (the paper's rule; the best node of a layer is always kept). Edges scoring below
    ``edge_threshold`` and those of removed nodes are removed. What a removed edge
    contributed on average (its mean value over ``x``) is added back to the node it fed — to
    the node's bias, a symbolic edge's offset ``d``, a spline edge's coefficients (B-splines
    sum to one inside the grid; Chebyshev ``T_0 = 1``; Gaussian bases by least squares) or,
    where a spline edge cannot carry it to 1e-3, a removed edge made the constant ``"0"`` edge
    (a warning says when none of these can) — so constant contributions survive.

    The result has fewer hidden nodes and packs its remaining spline edges' parameters, so
    :func:`~kanpde.nn.count_parameters` drops accordingly. ``model`` is left unchanged.

    Parameters
    ----------
    model : KAN
        The network to prune.
    x : Tensor
        ``(N, D)`` samples of its inputs, ``N ≥ 1``.
    edge_threshold : float
        Edges scoring below it are removed (finite, ``≥ 0``).
    node_threshold : float
        Hidden nodes whose incoming or outgoing score is at most this are removed, but the
        best of each layer (finite, ``≥ 0``).

    Returns
    -------
    KAN
        The pruned copy.

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`.
    ValueError
        If a threshold is negative or not finite, ``x`` is not ``(N, D)`` with ``N ≥ 1``, or
        the thresholds would remove every edge of a layer.
    """
    for name, v in (("edge_threshold", edge_threshold), ("node_threshold", node_threshold)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < math.inf:
            # NaN compares false everywhere: every node but the best one of a layer went
            raise ValueError(f"prune: {name} must be a finite number >= 0, got {v!r}")
    x = _points(model, x)  # also checks the model
    # From inputs with a gradient, so frozen parameters still leave a graph for the gains.
    with torch.enable_grad():
        acts = _activations(model, x.detach().requires_grad_())
    gains = _output_gains(model, acts)
    acts = [(h.detach(), phi.detach()) for h, phi in acts]
    means = [phi.mean(-1) for _, phi in acts]
    scores = [
        torch.maximum(phi.abs().mean(-1), (gain.unsqueeze(1) * phi.abs()).mean(-1))
        for gain, (_, phi) in zip(gains, acts)
    ]
    n_layers = len(model.layers)
    kinds = [layer.edge_kinds() for layer in model.layers]
    edge_keep = [
        (s >= edge_threshold)
        & torch.tensor([[k != "" for k in row] for row in kd], device=s.device)
        for s, kd in zip(scores, kinds)
    ]
    dev = next(model.parameters()).device
    node_keep = [torch.ones(model.width[0], dtype=torch.bool, device=dev)]
    for l in range(1, n_layers):
        inc = scores[l - 1].max(dim=1).values
        out = scores[l].max(dim=0).values
        keep = (inc > node_threshold) & (out > node_threshold)
        if not bool(keep.any()):
            keep[int(torch.minimum(inc, out).argmax())] = True
        node_keep.append(keep)
    node_keep.append(torch.ones(model.width[-1], dtype=torch.bool, device=dev))
    # A kept hidden node needs a kept edge in and a kept edge out; removing one can orphan others.
    changed = True
    while changed:
        changed = False
        for l in range(n_layers):
            edge_keep[l] &= node_keep[l + 1].unsqueeze(1) & node_keep[l].unsqueeze(0)
        for l in range(1, n_layers):
            alive = node_keep[l] & edge_keep[l - 1].any(1) & edge_keep[l].any(0)
            if bool(alive.any()) and not torch.equal(alive, node_keep[l]):
                node_keep[l] = alive
                changed = True
    for l in range(n_layers):
        if not bool(edge_keep[l].any()):  # the network would be a constant
            raise ValueError(
                f"prune: edge_threshold {edge_threshold:g} / node_threshold {node_threshold:g} "
                f"remove every edge of layer {l} (its largest score is "
                f"{float(scores[l].max()):.3g}); lower them"
            )
    width = [int(k.sum()) for k in node_keep]
    first = model.layers[0]
    p = next(model.parameters())
    new = KAN(
        width,
        grid=model.grid,
        k=first.k,
        basis=first.basis,
        grid_eps=first.grid_eps,
        init_scale=model.init_scale,
        bias=first.bias is not None,
        dtype=p.dtype,
        device=p.device,
    )
    for l, (old_layer, new_layer) in enumerate(zip(model.layers, new.layers)):
        ins = node_keep[l].nonzero().flatten()
        outs = node_keep[l + 1].nonzero().flatten()
        _copy_layer(old_layer, new_layer, ins, outs, edge_keep[l][outs][:, ins])
        # Constant contributions of the removed edges into kept nodes.
        removed = ~edge_keep[l] & node_keep[l + 1].unsqueeze(1)
        shift = (means[l] * removed).sum(1)[outs]
        h = acts[l][0][ins]
        for j in range(len(outs)):
            c = float(shift[j])
            if c != 0.0:
                _add_constant(new_layer, j, c, h)
    return new


@torch.no_grad()
def _copy_layer(old: KANLayer, new: KANLayer, ins: Tensor, outs: Tensor, keep: Tensor) -> None:
    """Copy the kept rows/columns of ``old`` into ``new`` (sizes ``len(outs) × len(ins)``)."""
    # Always: the fresh layer has the default grid range, not the old one's (the domain's box
    # for a first layer, ranges moved by update_grid or widened by grid extension).
    new.grid_points = old.grid_points[ins].clone()
    new._prepare()
    coef, scale_base, scale_spline = old.dense_parameters()
    sel = lambda t: t[outs][:, ins].detach().clone()  # noqa: E731
    new.coef = nn.Parameter(sel(coef), requires_grad=old.coef.requires_grad)
    new.scale_base = nn.Parameter(sel(scale_base), requires_grad=old.scale_base.requires_grad)
    new.scale_spline = nn.Parameter(sel(scale_spline), requires_grad=old.scale_spline.requires_grad)
    if old.bias is not None:
        new.bias.copy_(old.bias[outs])
    kinds = old.edge_kinds()
    sub = [
        [kinds[o][i] if bool(keep[a, b]) else "" for b, i in enumerate(ins.tolist())]
        for a, o in enumerate(outs.tolist())
    ]
    new.set_edges(sub)
    if new.symbolic is not None:
        for r, (a, b) in enumerate(new.symbolic.edges):
            src = old.symbolic.row(int(outs[a]), int(ins[b]))
            new.symbolic.affine[r] = old.symbolic.affine[src]


@torch.no_grad()
def _add_constant(layer: KANLayer, j: int, c: float, h: Tensor) -> str | None:
    """Add the constant ``c`` to output ``j`` of ``layer`` without changing anything else on
    the layer inputs ``h`` ``(n_in, N)``.

    Carriers in turn: the bias, a symbolic edge's offset ``d``, a spline edge whose basis sums
    to one on ``h`` (B-splines inside their grid range, Chebyshev), a spline edge whose
    coefficients' least-squares fit of ``c`` on ``h`` misses by at most 1e-3 of ``c``
    (Gaussian bases), a removed edge into ``j`` made the constant symbolic edge ``"0"``
    (``c·0 + d``, four parameters), and last the best least-squares fit, with a warning.
    Returns the carrier (``"bias"``, ``"symbolic"`` or ``"spline"``), or None (with a
    warning) when there is none.
    """
    if layer.bias is not None:
        layer.bias[j] += c
        return "bias"
    if layer.symbolic is not None:
        for r, (o, _) in enumerate(layer.symbolic.edges):
            if o == j:
                layer.symbolic.affine[r, 3] += c
                return "symbolic"
    kinds = layer.edge_kinds()
    splines = [i for i in range(layer.in_features) if kinds[j][i] == SPLINE]
    _, _, scale_spline = layer.dense_parameters()
    splines = [i for i in splines if abs(float(scale_spline[j, i])) >= 1e-12]
    coef = layer.coef.view(-1, layer.coef.shape[-1])

    def row(i: int) -> int:
        flat = j * layer.in_features + i
        return flat if layer._plain else int((layer.edge_index == flat).nonzero().flatten()[0])

    rng = layer.grid_range
    for i in splines:
        ws = float(scale_spline[j, i])
        if layer.basis.name == "chebyshev":  # T_0 = 1
            coef[row(i), 0] += c / ws
            return "spline"
        lo, hi = float(rng[i, 0]), float(rng[i, 1])
        inside = not h.shape[1] or (float(h[i].min()) >= lo and float(h[i].max()) <= hi)
        if layer.basis.name == "bspline" and inside:  # B-splines sum to one in the range
            coef[row(i)] += c / ws
            return "spline"
    fit = None  # (largest miss on h, edge, coefficient change) of the best spline edge
    if splines and h.shape[1]:
        values = layer.basis_values(h.t())[:, :, 0, :].double().cpu()  # (N, n_in, nb)
        target = torch.full((values.shape[0], 1), c, dtype=values.dtype, device="cpu")
        fits = []
        for i in splines:
            delta = torch.linalg.lstsq(values[:, i], target, driver="gelsd").solution[:, 0]
            fits.append((float((values[:, i] @ delta - c).abs().max()), i, delta))
        fit = min(fits, key=lambda f: f[0])
    removed = [i for i in range(layer.in_features) if kinds[j][i] == ""]
    if removed and (fit is None or fit[0] > 1e-3 * abs(c)):
        kinds[j][removed[0]] = "0"
        layer.set_edges(kinds)
        affine = layer.symbolic.affine
        affine[layer.symbolic.row(j, removed[0])] = affine.new_tensor([1.0, 0.0, 0.0, c])
        return "symbolic"
    if fit is not None:
        off, i, delta = fit
        coef[row(i)] += (delta / float(scale_spline[j, i])).to(coef)
        if off > 1e-3 * abs(c):
            warn(
                f"prune: a removed contribution of mean {c:.3e} to node {j} went to the "
                f"coefficients of edge ({i} → {j}), which miss it by up to {off:.2e} on the "
                "samples (no bias, symbolic or removed edge into the node to carry it exactly)"
            )
        return "spline"
    warn(
        f"prune: a removed contribution of mean {c:.3e} to node {j} has no parameter to go to "
        "(no bias, symbolic, removed or spline edge into the node); dropped"
    )
    return None


# ---------------------------------------------------------------------------------------------
# Fitting edges
# ---------------------------------------------------------------------------------------------


@dataclass
class Fit:
    """Best affine fit ``c·f(a·x + b) + d`` of a function of the library to an edge.

    Attributes
    ----------
    name : str
        The library function ``f``.
    r2 : float
        Coefficient of determination of the fit over the edge's samples.
    a, b, c, d : float
        The affine parameters.
    complexity : int
        The function's complexity, which breaks near ties (see :meth:`score`).
    """

    name: str
    r2: float
    a: float = 1.0
    b: float = 0.0
    c: float = 1.0
    d: float = 0.0
    complexity: int = 0

    @property
    def affine(self) -> tuple[float, float, float, float]:
        """The parameters ``(a, b, c, d)`` of ``c·f(a·x + b) + d``."""
        return (self.a, self.b, self.c, self.d)

    def score(self, complexity_weight: float = 1.0) -> float:
        """Lower is better: ``log10(1 - R²)`` (floored at 1e-14) plus the weighted complexity."""
        return math.log10(max(1.0 - self.r2, 1e-14)) + complexity_weight * self.complexity


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    sst = float(((y - y.mean()) ** 2).sum())
    ssr = float(((y - pred) ** 2).sum())
    # Constant data up to round-off (sst of exactly constant samples is 0 or ~1e-30 depending
    # on how the mean rounds): R² is then 1 for any fit as good as round-off, so the simplest
    # function ("0") wins on complexity instead of one fitted to the last bits.
    tol = y.size * (1e-12 * max(float(np.abs(y).max(initial=0.0)), 1e-150)) ** 2
    if sst <= tol:
        return 1.0 if ssr <= tol else 0.0
    return 1.0 - ssr / sst


def _linear(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least squares ``y ≈ c z + d`` along the last axis: ``c``, ``d`` and R²."""
    zc = z - z.mean(-1, keepdim=True)
    yc = y - y.mean()
    sxy, sxx, syy = (zc * yc).sum(-1), (zc * zc).sum(-1), (yc * yc).sum()
    ok = sxx > 1e-300 * z.shape[-1]
    c = torch.where(ok, sxy / torch.where(ok, sxx, 1.0), 0.0)
    d = y.mean() - c * z.mean(-1)
    r2 = torch.where(ok, sxy * sxy / (torch.where(ok, sxx, 1.0) * syy.clamp_min(1e-300)), 0.0)
    return c, d, r2


def fit_function(
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    fn: SymbolicFunction | str,
    a_range: tuple[float, float] = (-10.0, 10.0),
    b_range: tuple[float, float] = (-10.0, 10.0),
    grid: int = 31,
    zooms: int = 3,
    polish: bool = True,
) -> Fit:
    """Best ``c·f(a·x + b) + d`` through the samples ``(x, y)`` (1-D arrays).

    A grid search over ``(a, b)`` (refined ``zooms`` times around the best point) with ``c, d``
    by linear least squares at every grid point, then a Levenberg–Marquardt polish of all four
    on all samples (kept when it improves R² and stays in the function's domain).

    Parameters
    ----------
    x, y : array_like
        Samples of the edge, as many of each.
    fn : SymbolicFunction or str
        The function ``f``, or the name of one in the library.
    a_range, b_range : (float, float)
        Search intervals of ``a`` and ``b``, ``lo < hi``.
    grid : int
        Values of ``a`` and of ``b`` per search (at least 2).
    zooms : int
        Refinements of the search around its best point (0 or more).
    polish : bool
        Refine all four parameters by Levenberg–Marquardt afterwards.

    Returns
    -------
    Fit
        The function's name, R² on all samples and ``a, b, c, d``.
    """
    for label, value, least in (("grid", grid, 2), ("zooms", zooms, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"fit_function: {label} must be an integer ≥ {least}, got {value!r}")
    for label, (lo, hi) in (("a_range", a_range), ("b_range", b_range)):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"fit_function: {label} must be finite with lo < hi, got {(lo, hi)}")
    fn = get_function(fn) if isinstance(fn, str) else fn
    # NumPy samples, fitted on the CPU (also when torch's default device is a GPU)
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).ravel(), device="cpu")
    y = torch.as_tensor(np.asarray(y, dtype=np.float64).ravel(), device="cpu")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"fit_function: needs as many x as y samples, at least 2; got {len(x)} and {len(y)}"
        )
    yn = y.numpy()
    if fn.name == "0":
        d = float(y.mean())
        return Fit("0", _r2(np.full_like(yn, d), yn), 1.0, 0.0, 0.0, d, fn.complexity)
    if fn.name == "x":
        c, d, _ = _linear(x, y)
        c, d = float(c), float(d)
        return Fit("x", _r2(c * x.numpy() + d, yn), 1.0, 0.0, c, d, fn.complexity)
    # The grid search runs on at most 128 samples spread over the sorted inputs.
    order = torch.argsort(x)
    sub = order[torch.linspace(0, len(x) - 1, min(len(x), 128), device=x.device).round().long()]
    xs, ys = x[sub], y[sub]
    lo_a, hi_a = a_range
    lo_b, hi_b = b_range
    best = None
    for _ in range(zooms + 1):
        a = torch.linspace(lo_a, hi_a, grid, dtype=x.dtype, device=x.device)
        b = torch.linspace(lo_b, hi_b, grid, dtype=x.dtype, device=x.device)
        z = a[:, None, None] * xs + b[None, :, None]
        with torch.no_grad():
            f = fn.f(z)
        finite = torch.isfinite(f)
        ok = (finite if fn.domain is None else finite & fn.domain(z)).all(-1)
        f.masked_fill_(~finite, 0.0)
        c, _, r2 = _linear(f, ys)
        ok &= c.abs() * f.abs().amax(-1) <= CANCELLATION * (ys.abs().max() + 1e-300)
        r2 = torch.where(ok, r2, -1.0)
        k = int(r2.argmax())
        ia, ib = divmod(k, grid)
        if best is None or float(r2[ia, ib]) >= best[0]:
            best = (float(r2[ia, ib]), float(a[ia]), float(b[ib]))
        da, db = (hi_a - lo_a) / (grid - 1), (hi_b - lo_b) / (grid - 1)
        lo_a, hi_a = best[1] - da, best[1] + da
        lo_b, hi_b = best[2] - db, best[2] + db
    _, a0, b0 = best
    result = _evaluate_fit(fn, x, y, a0, b0)
    if polish and result.r2 > -1.0:
        polished = _polish(fn, x, y, result)
        if polished is not None and polished.r2 >= result.r2:
            result = polished
    if fn.canonical is not None and result.r2 > -1.0:
        result.a, result.b, result.c, result.d = (float(v) for v in fn.canonical(*result.affine))
    return result


CANCELLATION = 1e3  # largest |c|·max|f| / max|y| of an accepted fit (see _degenerate)


def _degenerate(c: float, f: np.ndarray, y: np.ndarray) -> bool:
    """``c·f`` much larger than the data: the fit mimics another function through a Taylor
    expansion cancelled by ``d`` (e.g. ``-2·10⁸ cos(10⁻⁴ x) + 2·10⁸`` for ``x²``)."""
    return abs(c) * float(np.abs(f).max()) > CANCELLATION * (float(np.abs(y).max()) + 1e-300)


def _evaluate_fit(fn: SymbolicFunction, x: Tensor, y: Tensor, a: float, b: float) -> Fit:
    z = a * x + b
    with torch.no_grad():
        f = fn.f(z)
    if not bool((fn.valid(z) & torch.isfinite(f)).all()):
        return Fit(fn.name, -1.0, a, b, 0.0, 0.0, fn.complexity)
    c, d, _ = _linear(f, y)
    c, d = float(c), float(d)
    if _degenerate(c, f.numpy(), y.numpy()):
        return Fit(fn.name, -1.0, a, b, c, d, fn.complexity)
    return Fit(fn.name, _r2((c * f + d).numpy(), y.numpy()), a, b, c, d, fn.complexity)


def _polish(fn: SymbolicFunction, x: Tensor, y: Tensor, start: Fit) -> Fit | None:
    from scipy.optimize import least_squares

    xn, yn = x.numpy(), y.numpy()

    def parts(p):
        z = torch.as_tensor(p[0] * xn + p[1], device="cpu")  # for scipy's least_squares
        with torch.no_grad():
            return z, fn.f(z).numpy(), fn.d1(z).numpy()

    # Trial parameters may overflow a function (exp of a large argument): such values are
    # replaced below, so NumPy's overflow warnings would only be noise.
    def residual(p):
        _, f, _ = parts(p)
        with np.errstate(over="ignore", invalid="ignore"):
            r = p[2] * f + p[3] - yn
        return np.where(np.isfinite(r), r, 1e10)

    def jac(p):
        _, f, g = parts(p)
        with np.errstate(over="ignore", invalid="ignore"):
            j = np.stack([p[2] * g * xn, p[2] * g, f, np.ones_like(f)], axis=1)
        return np.where(np.isfinite(j), j, 0.0)

    try:
        sol = least_squares(
            residual, np.array(start.affine), jac=jac, method="lm", xtol=1e-12, ftol=1e-12,
            gtol=1e-12, max_nfev=400,
        )  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return None
    a, b, c, d = (float(v) for v in sol.x)
    z, f, _ = parts(sol.x)
    if not (bool(fn.valid(z).all()) and np.isfinite(f).all()) or _degenerate(c, f, yn):
        return None
    return Fit(fn.name, _r2(c * f + d, yn), a, b, c, d, fn.complexity)


def _check_edge(model: KAN, l: int, i: int, j: int) -> None:
    """IndexError naming edge ``(l, i, j)`` when the model has no such edge."""
    _check_kan(model)
    for name, v in (("l", l), ("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"edge index {name} must be an integer, got {v!r}")
    if not 0 <= l < len(model.layers):
        raise IndexError(f"layer {l} out of range (the model has {len(model.layers)})")
    layer = model.layers[l]
    if not (0 <= i < layer.in_features and 0 <= j < layer.out_features):
        raise IndexError(
            f"edge ({l}, {i}, {j}) out of range: layer {l} maps {layer.in_features} inputs to "
            f"{layer.out_features} outputs"
        )


def _edge_samples(model: KAN, l: int, i: int, j: int, x: Tensor) -> tuple[np.ndarray, ...]:
    _check_edge(model, l, i, j)
    with torch.no_grad():
        h, phi = _activations(model, x.detach())[l]
    return h[i].double().cpu().numpy(), phi[j, i].double().cpu().numpy()


def suggest_symbolic(
    model: KAN,
    l: int,
    i: int,
    j: int,
    x: Tensor,
    library: Sequence[str] | None = None,
    top: int | None = 5,
    **fit_options: Any,
) -> list[Fit]:
    """Candidates for edge ``(l, i, j)`` ranked by the R² of their best affine fit.

    The samples are the edge's input and output values when the model is evaluated at ``x``
    ``(N, D)``; ``fit_options`` go to :func:`fit_function` (``a_range``, ``b_range``, ``grid``,
    ``zooms``, ``polish``).

    Parameters
    ----------
    model : KAN
        The network (not changed).
    l, i, j : int
        The edge: layer ``l``, from its input ``i`` to its output ``j``.
    x : Tensor
        ``(N, D)`` samples of the network's inputs, ``N ≥ 1``.
    library : sequence of str, optional
        Names of the candidate functions; default the whole library.
    top : int or None
        How many candidates to return (positive); ``None``: all.
    **fit_options : Any
        Keywords of :func:`fit_function`: ``a_range``, ``b_range``, ``grid``, ``zooms``,
        ``polish``.

    Returns
    -------
    list of Fit
        The best first (higher R², then lower complexity).

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`, an edge index is not an
        integer, or a fit option is not one of :func:`fit_function`'s.
    IndexError
        If the model has no edge ``(l, i, j)``.
    ValueError
        If ``x`` is not ``(N, D)`` with ``N ≥ 1``, ``top`` is not a positive integer or
        ``None``, ``library`` is not a non-empty list of known names, or a fit option is out
        of range.
    """
    x = _points(model, x)
    if top is not None and (isinstance(top, bool) or not isinstance(top, numbers.Integral)
                            or top < 1):  # fmt: skip
        raise ValueError(f"top must be a positive integer or None (all), got {top!r}")
    xs, ys = _edge_samples(model, l, i, j, x)
    fits = [fit_function(xs, ys, fn, **fit_options) for fn in _library(library)]
    fits.sort(key=_r2_key, reverse=True)
    return fits[:top] if top is not None else fits


def _r2_key(f: Fit) -> tuple[float, int]:
    return (f.r2, -f.complexity)


def _choose(fits: list[Fit], complexity_weight: float) -> Fit:
    return min(fits, key=lambda f: (f.score(complexity_weight), -f.r2))


@torch.no_grad()
def fix_symbolic(
    model: KAN,
    l: int,
    i: int,
    j: int,
    name: str,
    x: Tensor | None = None,
    affine: Sequence[float] | None = None,
    **fit_options: Any,
) -> Fit | None:
    """Make edge ``(l, i, j)`` the symbolic function ``name`` (in place).

    With samples ``x`` its ``a, b, c, d`` are fitted to the edge's current values (returns the
    :class:`Fit`); else they are ``affine`` or ``(1, 0, 1, 0)``. The name ``"0"`` removes the
    edge (its mean value over ``x`` moves to the node it fed). The layer's parameter tensors are
    replaced: build optimizers afterwards.

    Parameters
    ----------
    model : KAN
        The network, changed in place.
    l, i, j : int
        The edge: layer ``l``, from its input ``i`` to its output ``j``.
    name : str
        A function of the library, or ``"0"`` to remove the edge.
    x : Tensor, optional
        ``(N, D)`` samples of the network's inputs to fit ``a, b, c, d`` on.
    affine : sequence of float, optional
        The four parameters ``(a, b, c, d)`` (not with ``x``).
    **fit_options : Any
        Keywords of :func:`fit_function`: ``a_range``, ``b_range``, ``grid``, ``zooms``,
        ``polish``. Only with ``x``.

    Returns
    -------
    Fit or None
        The fit with ``x``, else ``None``.

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`, an edge index is not an
        integer, or a fit option is not one of :func:`fit_function`'s.
    IndexError
        If the model has no edge ``(l, i, j)``.
    ValueError
        If ``name`` is unknown, both ``x`` and ``affine`` or ``fit_options`` without ``x`` are
        given, ``affine`` is not four finite numbers, ``x`` is not ``(N, D)`` with ``N ≥ 1``,
        or a fit option is out of range.
    """
    get_function(name)
    _check_edge(model, l, i, j)
    # one source for a, b, c, d: the other would be silently dropped
    if x is not None and affine is not None:
        raise ValueError("fix_symbolic: give samples x (to fit a, b, c, d) or affine, not both")
    if x is None and fit_options:
        raise ValueError(
            f"fix_symbolic: {', '.join(sorted(fit_options))} only with samples x (nothing is "
            "fitted without them)"
        )
    if affine is not None:
        values = np.asarray(affine, dtype=float).ravel() if np.ndim(affine) else np.empty(0)
        if values.shape != (4,) or not np.isfinite(values).all():
            raise ValueError(f"affine must be four finite numbers (a, b, c, d), got {affine!r}")
    fit = None
    if x is not None:
        x = _points(model, x)
        xs, ys = _edge_samples(model, l, i, j, x)
        fit = fit_function(xs, ys, name, **fit_options)
        affine = fit.affine
    layer = model.layers[l]
    kinds = layer.edge_kinds()
    if name == "0":
        kinds[j][i] = ""
        mean = None
        if x is not None:
            h, phi = _activations(model, x.detach())[l]
            mean = float(phi[j, i].mean())
        layer.set_edges(kinds)
        if mean:
            _add_constant(layer, j, mean, h)
        return fit
    kinds[j][i] = name
    layer.set_edges(kinds)
    r = layer.symbolic.row(j, i)
    layer.symbolic.affine[r] = layer.symbolic.affine.new_tensor(
        list(affine) if affine is not None else [1.0, 0.0, 1.0, 0.0]
    )
    return fit


def auto_symbolic(
    model: KAN,
    x: Tensor,
    r2_threshold: float = 0.99,
    library: Sequence[str] | None = None,
    complexity_weight: float = 1.0,
    layers: Sequence[int] | None = None,
    verbose: bool = False,
    **fit_options: Any,
) -> dict[tuple[int, int, int], Fit]:
    """Replace every spline edge by its best library function (in place), layer by layer.

    Each edge gets the candidate with the lowest ``log10(1 - R²) + complexity_weight ·
    complexity`` (so a simpler function wins among near-perfect fits); edges whose choice has
    ``R² < r2_threshold`` stay splines. Later layers are fitted on the activations of the
    already symbolic earlier layers; ``layers`` restricts the search to some layers (e.g.
    ``auto_symbolic(model, x, library=["x"], layers=[0], r2_threshold=0)`` makes the first
    layer linear: a ridge-function ansatz). Returns the chosen fit of every edge examined.

    Parameters
    ----------
    model : KAN
        The network, changed in place.
    x : Tensor
        ``(N, D)`` samples of its inputs, ``N ≥ 1``.
    r2_threshold : float
        Least R² of a replacement (at most 1).
    library : sequence of str, optional
        Names of the candidate functions; default the whole library.
    complexity_weight : float
        Weight of the complexity in the choice (finite, ``≥ 0``).
    layers : sequence of int, optional
        The layers to examine; default all.
    verbose : bool
        Print every edge's choice.
    **fit_options : Any
        Keywords of :func:`fit_function`: ``a_range``, ``b_range``, ``grid``, ``zooms``,
        ``polish``.

    Returns
    -------
    dict of (int, int, int) to Fit
        ``{(l, i, j): fit}`` for every spline edge examined; an edge kept as a spline has its
        fit of highest R².

    Raises
    ------
    TypeError
        If ``model`` is not a kanpde :class:`~kanpde.nn.KAN`, or a fit option is not one of
        :func:`fit_function`'s.
    ValueError
        If ``x`` is not ``(N, D)`` with ``N ≥ 1``, ``r2_threshold`` is not a number at most
        1, ``complexity_weight`` is negative or not finite, an entry of ``layers`` is not a
        layer of the model, ``library`` is not a non-empty list of known names, or a fit
        option is out of range.
    """
    x = _points(model, x)  # also checks the model
    r2 = r2_threshold
    if isinstance(r2, bool) or not isinstance(r2, numbers.Real) or not r2 <= 1:
        raise ValueError(f"r2_threshold must be a number of at most 1 (R² ≤ 1), got {r2!r}")
    _non_negative("complexity_weight", complexity_weight)
    n = len(model.layers)
    for l in layers if layers is not None else ():
        if isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 0 <= l < n:
            raise ValueError(f"layers: {l!r} is not a layer of the model (0 to {n - 1})")
    functions = _library(library)  # checked before any edge changes
    chosen: dict[tuple[int, int, int], Fit] = {}
    x = x.detach()
    for l, layer in enumerate(model.layers):
        if layers is not None and l not in layers:
            continue
        kinds = layer.edge_kinds()
        with torch.no_grad():
            h, phi = _activations(model, x)[l]
        for j in range(layer.out_features):
            for i in range(layer.in_features):
                if kinds[j][i] != SPLINE:
                    continue
                xs = h[i].double().cpu().numpy()
                ys = phi[j, i].double().cpu().numpy()
                fits = [fit_function(xs, ys, fn, **fit_options) for fn in functions]
                good = [f for f in fits if f.r2 >= r2_threshold]
                best = _choose(good, complexity_weight) if good else max(fits, key=_r2_key)
                chosen[(l, i, j)] = best
                if verbose:
                    kept = "" if good else "  (kept as spline)"
                    print(f"edge ({l},{i},{j}): {best.name:<8} R² = {best.r2:.10f}{kept}")
                if not good:
                    continue
                if best.name == "0":
                    kinds[j][i] = ""
                    layer.set_edges(kinds)
                    with torch.no_grad():
                        if _add_constant(layer, j, float(phi[j, i].mean()), h) == "spline":
                            # a spline edge of this row, still to be fit, changed
                            phi = _activations(model, x)[l][1]
                    kinds = layer.edge_kinds()  # the constant may have made a "0" edge
                else:
                    kinds[j][i] = best.name
                    layer.set_edges(kinds)
                    r = layer.symbolic.row(j, i)
                    with torch.no_grad():
                        layer.symbolic.affine[r] = layer.symbolic.affine.new_tensor(best.affine)
    return chosen


def is_symbolic(model: KAN) -> bool:
    """Whether every edge is symbolic or removed (the formula has no spline parts).

    Parameters
    ----------
    model : KAN
        The network.

    Returns
    -------
    bool
    """
    return all(k != SPLINE for layer in model.layers for row in layer.edge_kinds() for k in row)


# ---------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------


PI_Q = (1, 2, 3, 4, 6, 8, 12)  # denominators of the multiples of π that formulas recognise


def _snap(v: float, digits: int) -> sympy.Expr:
    """``v`` as a simple number when one lies within ``10^-digits`` (relative to ``max(1, |v|)``):
    0, a fraction ``p/q`` with ``q ≤ 12`` or ``(p/q)·π`` with ``q`` in :data:`PI_Q`; else ``v``
    to ``digits`` significant digits."""
    tol = 10.0 ** (-digits) * max(1.0, abs(v))
    if abs(v) <= tol:
        return sympy.Integer(0)
    if abs(v) <= 1e4:
        for q in range(1, 13):  # the smallest denominator wins, then the closer of p/q, p·π/q
            found = []
            for base, unit in ((1.0, sympy.Integer(1)), (math.pi, sympy.pi)):
                p = round(v / base * q)
                err = abs(v - p * base / q)
                if p != 0 and err <= tol and (unit == 1 or q in PI_Q):
                    found.append((err, sympy.Rational(p, q) * unit))
            if found:
                return min(found, key=lambda t: t[0])[1]
    return sympy.Float(float(f"{v:.{digits}g}"), digits)


def _expand_products(expr: sympy.Expr) -> sympy.Expr:
    """Distribute products over sums and powers over products (so products of coefficients
    meet: ``c·(a·x)²`` is ``(c·a²)·x²``) without multiplying out powers of sums: the
    coefficients of an expanded ``(x - 5.23)^4`` cancel each other, and rounding them loses far
    more than ``digits``."""
    return sympy.expand(
        expr, trig=False, log=False, power_exp=False, power_base=True, multinomial=False
    )


def _tidy(expr: sympy.Expr) -> sympy.Expr:
    """Products expanded in function arguments."""
    return expr.replace(
        lambda f: isinstance(f, sympy.Function) and f.args,
        lambda f: f.func(*(_expand_products(a) for a in f.args)),
    )


def _small_numbers(expr: sympy.Expr, digits: int) -> list[float]:
    """The numbers of ``expr`` (expanded as :func:`_round_numbers` expands it) that round to 0."""
    expr = _expand_products(_tidy(expr))
    return sorted({float(f) for f in expr.atoms(sympy.Float) if _snap(float(f), digits) == 0})


def _round_numbers(expr: sympy.Expr, digits: int, keep: frozenset = frozenset()) -> sympy.Expr:
    """Expand products in and out of function arguments, then snap every number; those near
    0 become 0 unless their value is in ``keep`` (then they keep ``digits`` digits)."""

    def sig(v: float) -> sympy.Expr:
        return sympy.Float(float(f"{v:.{digits}g}"), digits)

    expr = _expand_products(_tidy(expr))
    # Numbers that round to 0 go first: they can shield others from meeting, as the 1e-13 in
    # c·(a·x + 1e-13)², whose c·a² would otherwise be rounded as c and a apart (0.499998).
    zero = {f: sympy.Integer(0) for f in expr.atoms(sympy.Float)
            if float(f) not in keep and _snap(float(f), digits) == 0}  # fmt: skip
    if zero:
        expr = _expand_products(_tidy(expr.xreplace(zero)))
    floats = {f: sig(float(f)) if float(f) in keep else _snap(float(f), digits)
              for f in expr.atoms(sympy.Float)}  # fmt: skip
    # Snapping can make new products of numbers inside functions; tidy once more.
    return _tidy(expr.xreplace(floats))


def formula(
    model: KAN | Run,
    variables: Sequence[str] | None = None,
    simplify: bool = True,
    digits: int | None = None,
    simplify_seconds: float | None = 20.0,
) -> sympy.Expr | list[sympy.Expr]:
    """The network as a sympy expression (a list for several outputs).

    Parameters
    ----------
    model : KAN or Run
        The network, or a run of one (its axis names, e.g. ``x, t``, name the inputs).
    variables : sequence of str, optional
        Names of the inputs, as many as the model has. Default: a run's axis names, else
        ``x, y`` (``x_1 … x_D`` when there are not enough).
    simplify : bool
        Apply ``sympy.simplify`` at the end.
    digits : int, optional
        Round the coefficients: numbers within ``10^-digits`` of 0, a fraction ``p/q``
        (``q ≤ 12``) or ``(p/q)·π`` (``q`` in 1, 2, 3, 4, 6, 8, 12) become exact, the rest
        keep ``digits`` significant digits.
        ``None`` keeps full floating-point precision (the expression evaluates like the model).
    simplify_seconds : float or None
        Time allowed to ``sympy.simplify`` per output, which can run for many minutes on a
        wide network's formula; past it the output is left unsimplified, with a
        :class:`~kanpde.KanpdeWarning`. ``None`` waits as long as it takes. The limit needs
        ``SIGALRM``, i.e. a Unix main thread; elsewhere there is none.

    Returns
    -------
    sympy.Expr or list of sympy.Expr
        One expression per output; a list when the model has several. Its inputs are plain
        symbols, ``sympy.Symbol("x")``, so ``expr.subs({"x": 0.3})`` and the symbols of a
        ``sympy.sympify`` of the printed formula are the same ones.

    Notes
    -----
    Edges still numeric appear as undefined functions ``phi_l_i_j(·)`` of their input.
    """
    given = variables
    if hasattr(model, "history") and callable(getattr(model, "model", None)):  # a Run
        if variables is None:
            variables = list(model.names) or None
        model = model.model()
    if variables is None:
        variables = ("x", "y")
    _check_kan(model)
    d = model.width[0]
    names = list(variables or ())
    if given is not None and (isinstance(given, str) or len(names) != d):
        raise ValueError(f"formula: variables must name the model's {d} input(s), got {given!r}")
    if len(names) < d:
        names = [f"x_{k + 1}" for k in range(d)] if d > 1 else ["x"]
    nodes: list[sympy.Expr] = list(sympy.symbols(names[:d], real=True))
    nodes_in = list(nodes)
    for l, layer in enumerate(model.layers):
        kinds = layer.edge_kinds()
        affine = layer.symbolic.affine.detach().double().cpu().tolist() if layer.symbolic else []
        out = []
        for j in range(layer.out_features):
            acc = sympy.Integer(0)
            for i in range(layer.in_features):
                kind = kinds[j][i]
                if kind == "":
                    continue
                if kind == SPLINE:
                    acc += sympy.Function(f"phi_{l}_{i}_{j}")(nodes[i])
                    continue
                a, b, c, dd = (sympy.Float(v) for v in affine[layer.symbolic.row(j, i)])
                acc += c * get_function(kind).expr(a * nodes[i] + b) + dd
            if layer.bias is not None:
                acc += sympy.Float(float(layer.bias[j].detach()))
            out.append(acc)
        nodes = out
    if digits is not None:
        if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 1:
            raise ValueError(
                f"formula: digits must be a positive integer, or None for full precision; got "
                f"{digits!r}"
            )
        samples = _samples_in(model, nodes_in)
        nodes = [_rounded(e, int(digits), samples, j) for j, e in enumerate(nodes)]
    if simplify_seconds is not None:
        ok = isinstance(simplify_seconds, int | float) and not isinstance(simplify_seconds, bool)
        if not ok or not simplify_seconds > 0:
            raise ValueError(
                f"formula: simplify_seconds must be a positive number or None (no limit), "
                f"got {simplify_seconds!r}"
            )
    if simplify:
        nodes = [_simplify(e, simplify_seconds, j) for j, e in enumerate(nodes)]
    # Real inputs let sympy simplify further; the result is handed back in plain symbols,
    # which a user's own symbols("x") and sympify("x") match (real ones silently do not).
    plain = {s: sympy.Symbol(s.name) for s in nodes_in}
    nodes = [e.xreplace(plain) for e in nodes]
    return nodes[0] if len(nodes) == 1 else nodes


def _samples_in(model: KAN, symbols: list) -> dict:
    """Points spread over the model's input range (its first layer's grid range), one array
    per input symbol, to compare a rounded formula with the exact one."""
    ranges = model.layers[0].grid_range.detach().double().cpu().numpy().reshape(-1, 2)
    rng = np.random.default_rng(0)
    n = 257
    out = {}
    for k, sym in enumerate(symbols):
        lo, hi = ranges[min(k, len(ranges) - 1)]
        out[sym] = np.concatenate([[lo, hi], rng.uniform(lo, hi, n - 2)])
    return out


def _values(expr: sympy.Expr, samples: dict) -> np.ndarray:
    """``expr`` at the sample points; a numeric edge ``phi_l_i_j(z)`` stands as ``sin(z) + z``
    (the same in both formulas compared, so only their numbers make them differ)."""
    from sympy.core.function import AppliedUndef

    while undefined := expr.atoms(AppliedUndef):  # (nested: phi_1_0_0(phi_0_0_0(x)))
        expr = expr.xreplace({f: sympy.sin(f.args[0]) + f.args[0] for f in undefined})
    with np.errstate(all="ignore"):
        v = sympy.lambdify(list(samples), expr, modules="numpy")(*samples.values())
    return np.broadcast_to(np.asarray(v, dtype=complex), next(iter(samples.values())).shape)


def _rounded(expr: sympy.Expr, digits: int, samples: dict, output: int) -> sympy.Expr:
    """``expr`` with its numbers rounded to ``digits`` (:func:`_round_numbers`), provided the
    result stays within ``min(0.1, 10^(3 - digits))`` of the formula's size over the inputs.
    A number near 0 that is a term's small factor (``c`` of ``c·exp(15x)``, 3e-7) is not
    made 0 when that breaks this; when rounding still does, the output keeps full precision
    (with a warning)."""
    exact = _values(expr, samples)
    finite = np.isfinite(exact)
    size = float(np.max(np.abs(exact[finite]))) if finite.any() else 0.0
    tol = min(0.1, 10.0 ** (3 - digits)) * size

    def error(e: sympy.Expr) -> float:
        return float(np.max(np.abs(_values(e, samples) - exact)[finite], initial=0.0))

    rounded = _round_numbers(expr, digits)
    if error(rounded) <= tol:
        return rounded
    small = frozenset(_small_numbers(expr, digits))
    keep = frozenset(v for v in small if error(_round_numbers(expr, digits, small - {v})) > tol)
    rounded = _round_numbers(expr, digits, keep)
    worst = error(rounded)
    if worst <= tol:
        return rounded
    warn(
        f"formula: rounding output {output} to {digits} digits changed it by up to "
        f"{worst:.2e} (its size {size:.2e}); it is left at full precision"
    )
    return expr


class _OutOfTime(BaseException):  # not an Exception: sympy's own handlers must not eat it
    pass


def _simplify(expr: sympy.Expr, seconds: float | None, output: int) -> sympy.Expr:
    """``sympy.simplify(expr)``, or ``expr`` itself when that takes over ``seconds``."""
    import signal
    import threading

    limited = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not limited:
        return sympy.simplify(expr)

    def out_of_time(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, out_of_time)
    started = time.monotonic()
    # a timer of the caller's (a watchdog, pytest-timeout) is put back afterwards
    pending, interval = signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        return sympy.simplify(expr)
    except _OutOfTime:
        warn(
            f"formula: sympy.simplify took over {seconds:g} s on output {output} and was "
            "stopped; that output is left unsimplified (simplify_seconds=None, or "
            "--simplify-seconds 0 on the command line, waits for it)"
        )
        return expr
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending > 0:  # what was left of it; at once if it fell due meanwhile
            left = max(pending - (time.monotonic() - started), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


# ---------------------------------------------------------------------------------------------
# Command line: kanpde symbolic RUN
# ---------------------------------------------------------------------------------------------


def register(subparsers) -> None:
    """Add ``kanpde symbolic`` to the command line."""
    s = subparsers.add_parser(
        "symbolic",
        help="formula of a trained KAN (prune, auto-symbolic, refine with the PDE loss)",
        description=(
            "Print the formula of the KAN of a results file and save it beside the file "
            "(formula.txt). A network that still has spline edges is first made symbolic "
            "(auto-symbolic on the run's evaluation points, optionally pruned first and refined "
            "with the PDE loss afterwards); that model is saved as symbolic.h5 beside the run."
        ),
    )
    s.add_argument("run", help="results file (result.h5) or run directory")
    s.add_argument("--prune", action="store_true", help="prune small edges and nodes first")
    s.add_argument(
        "--edge-threshold",
        type=float,
        help="with --prune: drop edges scoring below this (mean |φ| or impact; default 0.01)",
    )
    s.add_argument(
        "--node-threshold",
        type=float,
        help="with --prune: drop hidden nodes whose in- or outgoing score does not exceed "
        "this (default 0.01)",
    )
    s.add_argument("--library", help="comma-separated functions (default: the whole library)")
    s.add_argument("--r2", type=float, help="minimum R² to fix an edge (default 0.99)")
    s.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="L-BFGS steps with the PDE loss after auto-symbolic (needs the problem file; "
        "default 0: none)",
    )
    s.add_argument(
        "--digits", type=int, default=6, help="round coefficients (default 6; 0: do not)"
    )
    s.add_argument("--no-simplify", action="store_true", help="skip sympy's simplify")
    s.add_argument(
        "--simplify-seconds", type=float,
        help="time allowed to sympy's simplify per output before the formula is left "
        "unsimplified (default 20; 0: no limit)",
    )  # fmt: skip
    s.add_argument(
        "--problem", metavar="FILE",
        help="the problem file --refine trains with, when it is no longer where the run "
        "says (with --refine; one of another problem is refused)",
    )  # fmt: skip
    s.add_argument(
        "--out", metavar="DIR",
        help="directory for symbolic.h5 and formula.txt (default: the run's own), to keep the "
        "results of other settings apart",
    )  # fmt: skip
    s.add_argument("--quiet", action="store_true", help="print the formula only")
    s.set_defaults(func=cmd_symbolic)


def cmd_symbolic(args) -> int:
    from .results import load, save_run, write_atomic

    # Options of a step that does not run are refused: silently ignored, they would mislead.
    if not args.prune:
        for flag, value in (
            ("--edge-threshold", args.edge_threshold),
            ("--node-threshold", args.node_threshold),
        ):
            if value is not None:
                raise ValueError(f"{flag}: only with --prune (it sets what pruning removes)")
    if args.no_simplify and args.simplify_seconds is not None:
        raise ValueError("--simplify-seconds: not with --no-simplify (nothing is simplified)")
    if getattr(args, "problem", None) is not None and not args.refine > 0:
        raise ValueError("--problem: only with --refine (the file the refinement trains with)")
    if args.edge_threshold is None:
        args.edge_threshold = 1e-2
    if args.node_threshold is None:
        args.node_threshold = 1e-2
    if args.simplify_seconds is None:
        args.simplify_seconds = 20.0
    r2_given = args.r2 is not None  # (a symbolic file says it ignores it)
    if args.r2 is None:
        args.r2 = 0.99
    for flag, value, ok in (
        ("--digits", args.digits, args.digits >= 0),
        ("--r2", args.r2, 0 < args.r2 <= 1),
        ("--refine", args.refine, args.refine >= 0),
        ("--edge-threshold", args.edge_threshold, 0 <= args.edge_threshold < math.inf),
        ("--node-threshold", args.node_threshold, 0 <= args.node_threshold < math.inf),
        ("--simplify-seconds", args.simplify_seconds, args.simplify_seconds >= 0),
    ):
        if not ok:
            rule = {"--digits": ">= 0 (0: do not round)", "--r2": "in (0, 1]"}.get(
                flag, "a finite number >= 0" if "threshold" in flag else ">= 0"
            )
            raise ValueError(f"{flag} {value}: must be {rule}")
    run = load(args.run)
    model = run.model()
    if not isinstance(model, KAN):
        raise ValueError(f"{run.path}: the model is not a KAN; formulas need a KAN")
    names = list(run.names) or None
    library = [s.strip() for s in args.library.split(",")] if args.library is not None else None
    if library is not None and not all(library):
        raise ValueError(f"--library {args.library!r}: list function names, e.g. sin,x^2,exp")
    if library:
        for n in library:
            try:
                get_function(n)
            except ValueError as e:
                raise ValueError(f"--library: {e}") from None
    path = Path(run.path)
    folder = Path(args.out) if getattr(args, "out", None) else path.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder}: not a directory")
    say = (lambda *a: None) if args.quiet else print
    if args.refine > 0 and not is_symbolic(model):
        # before any fitting: a run made from a Problem object has no file
        _refine_source(run, getattr(args, "problem", None))
    # symbolic.h5 (written by this command, perhaps with spline edges left) is not fitted
    # again: that would write over the file being read, a refinement lost
    done = is_symbolic(model) or "source_run" in run.attrs
    fitting = (
        ("--prune", args.prune),
        ("--library", args.library is not None),
        ("--r2", r2_given),
        ("--refine", args.refine > 0),
    )
    if done and any(on for _, on in fitting):
        flags = ", ".join(f for f, on in fitting if on)
        say(f"{path}: already symbolic; {flags} ignored (run them on the spline run)")
    elif done and "source_run" in run.attrs and not is_symbolic(model):
        say(f"{path}: made by kanpde symbolic; its formula as it is (fit the spline run again "
            f"for others: {run.attrs['source_run']})")  # fmt: skip
    refined = None  # the refinement's run, if any
    if not done:
        if "x" not in run.solution:
            raise ValueError(f"{path}: no evaluation points stored; cannot fit the edges")
        p = next(model.parameters())
        x = torch.as_tensor(run.solution["x"], dtype=p.dtype, device=p.device)
        before = _count(model)
        if args.prune:
            try:
                model = prune(model, x, args.edge_threshold, args.node_threshold)
            except ValueError as e:  # the options' names, not the Python arguments'
                raise ValueError(
                    str(e)
                    .replace("prune: edge_threshold", "--edge-threshold")
                    .replace("node_threshold", "--node-threshold")
                ) from None
            # with its errors: pruning can cost accuracy the fit below would take the blame for
            errors = _errors(_symbolic_run(run, model, "", run.history).metrics)
            say(f"pruned: width {model.width}, parameters {before} -> {_count(model)}"
                + (f", {errors}" if errors else ""))  # fmt: skip
        fits = auto_symbolic(model, x, r2_threshold=args.r2, library=library)
        for (l, i, j), fit in fits.items():
            # auto_symbolic keeps an edge whose best fit misses the threshold as a spline
            kept = "" if fit.r2 >= args.r2 else f"  (kept as spline: R² < {args.r2:g})"
            say(f"edge ({l},{i},{j}): {fit.name:<8} R² = {fit.r2:.8f}{kept}")
        history = run.history
        if args.refine > 0:
            # what the refinement starts from: a short one can end worse (it lowers the loss)
            m = _symbolic_run(run, model, "", history).metrics
            say("fitted, before refinement: "
                + _errors(m)
                + "".join(f", {n} = {v:.6g}" for n, v in run.unknowns.items()))  # fmt: skip
            model, refined = _refine(
                run, model, args.refine, not args.quiet, getattr(args, "problem", None)
            )
            history = refined.history
        expr = formula(
            model, names, not args.no_simplify, args.digits or None, args.simplify_seconds or None
        )
        out = _symbolic_run(run, model, expr, history, refined)
        # The spline run's training figures are its own (spline_*): the symbolic model's
        # training is the refinement, or none (its history stays the spline run's).
        for key in ("loss", "steps", "evals", "train_time", "wall_time"):
            if key in run.metrics:
                out.metrics[f"spline_{key}"] = run.metrics[key]
            out.metrics.pop(key, None)
            if refined is not None and key in refined.metrics:
                out.metrics[key] = refined.metrics[key]
            elif key in ("steps", "evals", "train_time"):
                out.metrics[key] = 0
        if refined is not None:  # the unknowns as the refinement left them
            out.metrics.update({k: v for k, v in refined.metrics.items() if k.startswith("param_")})
        folder.mkdir(parents=True, exist_ok=True)
        save_run(out, folder / "symbolic.h5")
        m = out.metrics
        say(
            f"symbolic model: {m['parameters']} parameters"
            + (f", {_errors(m)}" if _errors(m) else "")
            + "".join(f", {n} = {v:.6g}" for n, v in out.unknowns.items())
        )
        say(f"saved: {folder / 'symbolic.h5'}")
    else:
        expr = formula(
            model, names, not args.no_simplify, args.digits or None, args.simplify_seconds or None
        )
    text = _named(run, expr)
    # an inverse problem's unknowns, as the refinement (or the run) left them
    found = (refined or run).unknowns
    text += "".join(f"\n{name} = {value:.6g}" for name, value in found.items())
    print(text)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "formula.txt"
    write_atomic(target, lambda tmp: Path(tmp).write_text(text + "\n"))
    say(f"formula: {target}")
    return 0


def _named(run, expr) -> str:
    """The formula as text: one line per output, named (a bare list says not which is which)."""
    if not isinstance(expr, list):
        return str(expr)
    outputs = list(run.outputs) if len(run.outputs) == len(expr) else []
    outputs = outputs or [f"u_{j}" for j in range(len(expr))]
    return "\n".join(f"{name} = {e}" for name, e in zip(outputs, expr))


def _errors(metrics: dict) -> str:
    """The test errors a line reports, e.g. ``mse 1.2e-08, rel_l2 …`` (empty without them)."""
    return ", ".join(f"{k} {metrics[k]:.3e}" for k in ("mse", "rel_l2", "max_err") if k in metrics)


def _count(model) -> int:
    from .nn import count_parameters

    return count_parameters(model)


def _refine(run, model: KAN, steps: int, progress: bool, given: str | None = None):
    """Refit the symbolic parameters with the run's PDE loss (L-BFGS)."""
    from .problem import data_hash, file_hash, load_problem
    from .training import solve

    source = _refine_source(run, given)
    if file_hash(source) != run.attrs.get("problem_hash", ""):
        warn(
            f"{source} (or a module beside it that it imports) changed since the run; "
            "refining with its current version"
        )
    cfg = run.config
    problem = load_problem(source)
    if "data_hash" in cfg and cfg["data_hash"] != data_hash(problem):
        warn(
            f"{source}: its data conditions hold other observations than those the run was "
            "trained on (data changed in memory, or drawn anew without a seed); refining with "
            "the file's"
        )
    # the unknowns go on from the values the run found
    found = {k: v for k, v in run.unknowns.items() if k in problem.unknowns}
    refined = solve(
        problem,
        unknowns=found or None,
        model=model,
        schedule=[{"lbfgs": int(steps)}],
        points=cfg.get("points"),
        weights=cfg.get("weights"),
        dtype=cfg.get("dtype"),
        seed=int(cfg.get("seed", 0)),
        device="cpu",
        progress=progress,
    )
    return model, refined


def _refine_source(run, given: str | None = None) -> str:
    """The problem file ``--refine`` needs (``given``: ``--problem``), or a one-line error."""
    if given is not None:
        if not Path(given).is_file():
            raise ValueError(f"--problem {given}: problem file not found")
        from .problem import load_problem

        # Another problem's equation would train the formula to the wrong solution, or fail
        # after all the fitting: refused now when its inputs or outputs are not the run's.
        problem = load_problem(given)
        theirs = (tuple(problem.domain.names), tuple(problem.outputs))
        ours = (tuple(run.names), tuple(run.outputs))
        if all(ours) and theirs != ours:
            raise ValueError(
                f"--problem {given}: solves for {', '.join(theirs[1])} of "
                f"{', '.join(theirs[0])}, the run for {', '.join(ours[1])} of "
                f"{', '.join(ours[0])}; give the file of the run's problem "
                f"({run.config.get('problem', '?')!r})"
            )
        return str(given)
    source = run.attrs.get("problem_file") or ""
    if not source:
        raise ValueError(
            f"{run.path}: --refine needs the run's problem file, and this run was made from a "
            "Problem object in Python; refine it there with kanpde.symbolic.train (or give "
            "--problem FILE)"
        )
    if not Path(source).exists():
        raise ValueError(
            f"{run.path}: problem file {source!r} not found; cannot --refine (give "
            "--problem FILE where it is now)"
        )
    return source


def _symbolic_run(run, model: KAN, expr, history, refined=None):
    """A copy of ``run`` holding the symbolic model, its test errors and its formula (with a
    refinement's schedule and events, the spline run's schedule kept as ``spline_schedule``)."""
    import copy

    from .losses import error_metrics
    from .training import model_config

    config = copy.deepcopy(run.config)
    config["model"] = model_config(model)
    config["parameters"] = _count(model)
    solution = dict(run.solution)
    metrics = dict(run.metrics, parameters=config["parameters"])
    if "x" in solution:
        p = next(model.parameters())
        x = torch.as_tensor(solution["x"], dtype=p.dtype, device=p.device)
        with torch.no_grad():
            pred = model(x)
        solution["pred"] = pred.cpu().numpy()
        if "ref" in solution:
            ref = torch.as_tensor(solution["ref"], dtype=pred.dtype, device=pred.device)
            solution["error"] = (pred - ref).cpu().numpy()
            metrics.update(error_metrics(pred, ref, run.outputs))
    attrs = dict(run.attrs, formula=_named(run, expr), source_run=str(run.path))
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    events = list(run.events)
    if refined is not None:  # the history is the refinement's: so are its stages and events
        config["spline_schedule"] = config.get("schedule")
        config["schedule"] = refined.config.get("schedule")
        events = list(refined.events)
    return type(run)(config, dict(history), solution, metrics, attrs, events, state)
