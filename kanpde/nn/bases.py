"""One-dimensional bases for KAN edge functions.

Every edge of a KAN layer computes ``φ(x) = w_b·silu(x) + w_s·Σ_b c_b B_b(x)``. A basis is a
small declaration: how its grid buffer is laid out, how many coefficients an edge has, and how
to evaluate the functions ``B_b`` and their first and second derivatives. The layer mechanism in
:mod:`kanpde.nn.kan` is shared by all bases.

Two evaluation strategies exist:

* *dense* bases (Gaussian RBF, reflectional switch, Chebyshev) evaluate all ``nb`` functions
  per point and contract them with the coefficients in one batched matrix product;
* the B-spline basis is *local*: at any point only ``k + 1`` of its ``G + k`` functions are
  non-zero. It converts the coefficients once per step into a piecewise-polynomial table
  (``k + 1`` monomial coefficients per knot interval), gathers one row per point and evaluates
  it by Horner's scheme, so the per-point cost does not grow with the grid size ``G``.

Tensors are *feature-major* inside (points last: layer inputs ``(n_in, N)``, edge values
``(n_out, n_in, N)``), so that elementwise work runs over long contiguous rows of points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def silu_features(h: Tensor, order: int) -> tuple[Tensor, ...]:
    """``silu`` and its first ``order`` derivatives, each shaped like ``h``."""
    s = torch.sigmoid(h)
    out = [h * s]
    if order >= 1:
        out.append(s * (1 + h * (1 - s)))
    if order >= 2:
        out.append(s * (1 - s) * (2 + h * (1 - 2 * s)))
    return tuple(out)


def _uniform_points(ranges: Tensor, grid: int) -> Tensor:
    """``grid + 1`` equispaced points per row of ``ranges`` ``(n_in, 2)``."""
    t = torch.linspace(0, 1, grid + 1, dtype=ranges.dtype, device=ranges.device)
    return ranges[:, :1] + (ranges[:, 1:] - ranges[:, :1]) * t


def _add_base(spline: Sequence[Tensor], scale_base: Tensor, silu: Tensor) -> tuple[Tensor, ...]:
    """Edge values ``spline^(q) + w_b silu^(q)`` (``w_b``: ``(n_out, n_in)``)."""
    wb = scale_base.unsqueeze(-1)
    return tuple(torch.addcmul(sp, wb, silu[q]) for q, sp in enumerate(spline))


class Basis:
    """Interface of a basis (see the module docstring)."""

    name: str = ""
    local: bool = False
    # the highest derivative ``features`` computes (None: any)
    max_order: int | None = 2

    def size(self, grid: int, k: int) -> int:
        """Number of coefficients per edge."""
        raise NotImplementedError

    def make_grid(self, points: Tensor, k: int) -> Tensor:
        """Grid buffer from ``grid + 1`` increasing points per input, ``(n_in, grid + 1)``."""
        raise NotImplementedError

    def grid_size(self, grid_buffer: Tensor, k: int) -> int:
        """The ``grid`` (number of intervals ``G``) that built ``grid_buffer``."""
        raise NotImplementedError

    def domain(self, grid_buffer: Tensor, k: int) -> Tensor:
        """``(n_in, 2)`` interval the grid was built for (the ``grid_range``)."""
        raise NotImplementedError

    def prepare(self, grid_buffer: Tensor, k: int) -> dict[str, Tensor]:
        """Tensors derived from the grid once per grid change (cached by the layer)."""
        return {}

    def features(self, h: Tensor, grid_buffer: Tensor, k: int, aux: dict, order: int) -> Tensor:
        """All basis functions and derivatives: inputs ``(n_in, N)`` → ``(Q, n_in, N, nb)``."""
        raise NotImplementedError

    def spline_edges(
        self,
        h: Tensor,
        coef: Tensor,
        scale_spline: Tensor,
        grid_buffer: Tensor,
        k: int,
        aux: dict,
        order: int,
    ) -> list[Tensor]:
        """The spline part ``w_s Σ_b c_b B_b`` of every edge and its derivatives (arguments as
        in :meth:`edges`)."""
        feats = self.features(h, grid_buffer, k, aux, order)  # (Q, n_in, N, nb)
        weights = (coef * scale_spline.unsqueeze(-1)).permute(1, 2, 0)  # (n_in, nb, n_out)
        spline = torch.matmul(feats, weights).permute(0, 3, 1, 2)  # (Q, n_out, n_in, N)
        return list(spline.unbind(0))

    def edges(
        self,
        h: Tensor,
        coef: Tensor,
        scale_base: Tensor,
        scale_spline: Tensor,
        grid_buffer: Tensor,
        k: int,
        aux: dict,
        order: int,
    ) -> tuple[Tensor, ...]:
        """Edge functions and their derivatives.

        Parameters
        ----------
        h : Tensor
            ``(n_in, N)`` layer inputs (feature-major).
        coef : Tensor
            ``(n_out, n_in, nb)`` basis coefficients ``c``.
        scale_base, scale_spline : Tensor
            ``(n_out, n_in)`` weights ``w_b`` and ``w_s``.
        grid_buffer : Tensor
            The layer's grid buffer ``(n_in, ·)``, as built by :meth:`make_grid` (knots or
            centres, depending on the basis).
        k : int
            Spline order (degree) of the layer; bases without one ignore it.
        aux : dict
            The tensors :meth:`prepare` derived from ``grid_buffer`` and ``k`` (cached by the
            layer; empty for bases that need none).
        order : int
            Highest derivative wanted (0, 1 or 2).

        Returns
        -------
        tuple of Tensor
            ``order + 1`` tensors ``(n_out, n_in, N)``: ``φ_{oi}^{(q)}(h_i)`` for q = 0, 1, ….
        """
        spline = self.spline_edges(h, coef, scale_spline, grid_buffer, k, aux, order)
        return _add_base(spline, scale_base, silu_features(h, order))


class BSpline(Basis):
    """B-splines of order ``k`` on ``G`` intervals, knots extended by ``k`` on each side.

    The grid buffer holds the ``G + 2k + 1`` knots of each input (pykan's convention). Each
    basis function is the standard B-spline on its whole support and zero outside it, so inside
    ``[t_k, t_{G+k}]`` (the grid range) the ``G + k`` functions form a partition of unity.
    """

    name = "bspline"
    local = True
    max_order = None

    def size(self, grid: int, k: int) -> int:
        return grid + k

    def make_grid(self, points: Tensor, k: int) -> Tensor:
        g = points.shape[1] - 1
        h = (points[:, -1:] - points[:, :1]) / g
        steps = torch.arange(1, k + 1, dtype=points.dtype, device=points.device)
        left = points[:, :1] - h * steps.flip(0)
        right = points[:, -1:] + h * steps
        return torch.cat([left, points, right], dim=1)

    def grid_size(self, grid_buffer: Tensor, k: int) -> int:
        return grid_buffer.shape[1] - 1 - 2 * k

    def domain(self, grid_buffer: Tensor, k: int) -> Tensor:
        return grid_buffer[:, [k, grid_buffer.shape[1] - 1 - k]]

    def prepare(self, grid_buffer: Tensor, k: int) -> dict[str, Tensor]:
        t = grid_buffer.detach().to(torch.float64)
        n_in, n_knots = t.shape
        poly = _local_polynomials(t, k)  # (n_in, n_knots - 1, k + 1, k + 1)
        zero = poly.new_zeros(n_in, 1, k + 1, k + 1)
        # Slot 0 (left of t_0) and the last slot (right of the last knot) hold no spline.
        poly = torch.cat([zero, poly, zero], dim=1)
        h = t[:, 1:] - t[:, :-1]
        one = t.new_ones(n_in, 1)
        left = torch.cat([t[:, :1], t[:, :-1], t[:, -1:]], dim=1)
        inv_h = torch.cat([one, 1 / h, one], dim=1)
        dtype = grid_buffer.dtype
        # Uniform knots (the usual case) are located by arithmetic instead of a search. Knots
        # made by linspace are off by round-off of their own size, not of the spacing's (on
        # (-1, 1) a spacing test alone took G >= 129 for non-uniform).
        tol = 64 * torch.finfo(dtype).eps
        size = torch.maximum(h[:, :1].abs(), t.abs().amax(dim=1, keepdim=True))
        uniform = bool(((h - h[:, :1]).abs() <= tol * size).all())
        powers = inv_h.unsqueeze(0) ** torch.arange(k + 1, dtype=t.dtype, device=t.device).view(
            -1, 1, 1
        )
        aux = {
            "poly": poly.to(dtype),
            "left": left.reshape(-1).to(dtype),
            "inv_h": inv_h.reshape(-1).to(dtype),
            # (1/h)^p per slot: monomials of s = δ/h become monomials of δ = x - t_j
            "inv_h_pow": powers.unsqueeze(1).to(dtype),  # (k+1, 1, n_in, n_slots)
        }
        if uniform:
            aux["t0"] = t[:, :1].to(dtype)
            aux["inv_h0"] = (1 / h[:, :1]).to(dtype)
        return aux

    def slots(self, h: Tensor, grid_buffer: Tensor, aux: dict, exact: bool = False) -> Tensor:
        """Flat slot index of inputs ``(n_in, N)`` (no gradient).

        Slot ``j + 1`` of input ``i`` is its knot interval ``[t_j, t_{j+1})`` (slots 0 and
        ``n_knots`` lie outside all knots); the flat index is ``i · (n_knots + 1) + slot``. On
        uniform knots the slot comes from arithmetic, which may place a point lying exactly on a
        knot at the end of the previous interval: the same value up to round-off, but there the
        derivatives of order ``≥ k``, which jump at knots, are the left-hand ones. ``exact``
        forces a binary search (right-hand ones).
        """
        n_knots = grid_buffer.shape[1]
        with torch.no_grad():
            if "t0" in aux and not exact:
                u = (h - aux["t0"]) * aux["inv_h0"]
                # NaN (e.g. an overflow upstream) goes to the outer slot, whose table is zero:
                # NaN then propagates, as on the searchsorted path, instead of a wild index.
                slot = (u.floor_() + 1).clamp_(0, n_knots).nan_to_num_(n_knots).long()
            else:
                slot = torch.searchsorted(grid_buffer, h.contiguous(), right=True)
            return slot + torch.arange(h.shape[0], device=h.device).unsqueeze(1) * (n_knots + 1)

    def locate(
        self, h: Tensor, grid_buffer: Tensor, k: int, aux: dict, exact: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Flat slot index (see :meth:`slots`), local coordinate ``s ∈ [0, 1]`` and ``1/h``."""
        flat = self.slots(h, grid_buffer, aux, exact)
        inv_h = aux["inv_h"][flat]
        s = (h - aux["left"][flat]) * inv_h
        return flat, s.clamp(0, 1), inv_h

    def features(self, h: Tensor, grid_buffer: Tensor, k: int, aux: dict, order: int) -> Tensor:
        flat, s, inv_h = self.locate(h, grid_buffer, k, aux, exact=True)
        n_in, n_knots = grid_buffer.shape
        eye = [torch.ones_like(s)] + [torch.zeros_like(s)] * k
        # Monomials s^p and their x-derivatives, via Horner on the unit coefficient vectors.
        mono = []
        for p in range(k + 1):
            unit = [eye[0] if j == p else eye[1] for j in range(k + 1)]
            mono.append(_scale(_horner(unit, s, order), inv_h))
        mono = torch.stack([torch.stack(m) for m in mono], dim=-1)  # (Q, n_in, N, k+1 [p])
        poly = aux["poly"].reshape(-1, k + 1, k + 1)[flat]  # (n_in, N, k+1 [r], k+1 [p])
        local = torch.einsum("qinp,inrp->qinr", mono, poly)
        # Slot j + 1 is knot interval j, whose non-zero functions are B_{j-k} .. B_j.
        slot = flat - torch.arange(n_in, device=h.device).unsqueeze(1) * (n_knots + 1)
        start = (slot - 1).clamp(min=0)  # padded index of B_{j-k} (padding by k)
        index = start.unsqueeze(-1) + torch.arange(k + 1, device=h.device)
        nb = n_knots - 1 - k
        dense = local.new_zeros(*local.shape[:3], nb + 3 * k + 1)
        dense = dense.scatter_add(-1, index.expand_as(local), local)
        # A NaN input lands in the outer slot, whose functions fall outside the kept window:
        # it would read as a row of zeros (and a fit would take it as a sample of 0).
        return dense[..., k : k + nb].masked_fill(h.isnan().unsqueeze(-1), math.nan)

    def table(self, coef: Tensor, scale_spline: Tensor, k: int, aux: dict) -> Tensor:
        """Per-slot monomial coefficients, ``(k + 1, n_out, n_in · n_slots)``.

        Entry ``[p, o, i · n_slots + slot]`` is the coefficient of ``δ^p`` of output ``o``'s
        ``w_s Σ c·B`` on that slot, where ``δ = x - t_j`` is the offset from the slot's left
        knot. Built once per step; its size does not depend on the number of points.
        """
        n_out, n_in, _ = coef.shape
        padded = F.pad(coef * scale_spline.unsqueeze(-1), (k, k))
        windows = padded.unfold(2, k + 1, 1)  # (n_out, n_in, n_intervals, k+1)
        poly = aux["poly"][:, 1:-1]  # (n_in, n_intervals, k+1, k+1)
        mono = torch.einsum("oijr,ijrp->poij", windows, poly)
        mono = F.pad(mono, (1, 1))  # exterior slots
        # In δ = x - t_j the derivatives need no per-point rescaling by 1/h.
        return (mono * aux["inv_h_pow"]).flatten(2)

    def spline_edges(self, h, coef, scale_spline, grid_buffer, k, aux, order):
        n_out = coef.shape[0]
        flat = self.slots(h, grid_buffer, aux)
        table = self.table(coef, scale_spline, k, aux)
        # One gather along the columns per coefficient lands each as a contiguous
        # (n_out, n_in, N) block, without a transposing copy; its backward scatter-adds into
        # the small table. (index_select on rows + permute, or one gather + unbind, cost several
        # times more in the backward: a transposing copy or a concatenation of N-sized blocks.)
        index = flat.reshape(1, -1).expand(n_out, -1)
        a = [torch.gather(t, 1, index).view(n_out, *flat.shape) for t in table.unbind(0)]
        # The offset from the slot's left knot; off the interval only by round-off (uniform
        # knots) or outside all knots, where the table is zero.
        delta = h - aux["left"][flat]
        spline = _horner(a, delta, order)
        if order >= 2:  # Horner carries P''/2!
            spline[2] = spline[2] * 2.0
        for q in range(3, order + 1):
            spline[q] = spline[q] * float(math.factorial(q))
        return spline


def _horner(a: Sequence[Tensor], s: Tensor, order: int) -> list[Tensor]:
    """``P(s), P'(s)/1!, …, P^(order)(s)/order!`` for ``P = Σ_p a_p s^p`` (Horner's scheme).

    Derivatives are carried along divided by their factorials, which keeps the recurrence free
    of constants.
    """
    k = len(a) - 1
    # None stands for a zero accumulator: the first update of acc[j] is then a plain copy of
    # acc[j - 1], which saves a fill and a multiply-add per derivative (and their backward).
    acc: list[Tensor | None] = [a[k]] + [None] * order
    for p in range(k - 1, -1, -1):
        for j in range(min(order, k - p), 0, -1):
            acc[j] = acc[j - 1] if acc[j] is None else torch.addcmul(acc[j - 1], acc[j], s)
        acc[0] = torch.addcmul(a[p], acc[0], s)
    return [torch.zeros_like(a[k]) if v is None else v for v in acc]


def _scale(poly: Sequence[Tensor], inv_h: Tensor) -> list[Tensor]:
    """x-derivatives from s-derivatives: ``q! · (P^(q)/q!) · (1/h)^q``."""
    out = [poly[0]]
    scale = None
    for q in range(1, len(poly)):
        scale = inv_h if scale is None else scale * inv_h
        out.append(poly[q] * (scale * math.factorial(q)))
    return out


def _local_polynomials(t: Tensor, k: int) -> Tensor:
    """Monomial coefficients of the non-zero B-splines on every knot interval.

    Parameters
    ----------
    t : Tensor
        ``(n_in, K)`` strictly increasing knots (float64).

    Returns
    -------
    Tensor
        ``(n_in, K - 1, k + 1, k + 1)``: entry ``[i, j, r, p]`` is the coefficient of ``s^p`` of
        ``B_{j-k+r,k}(t_j + s (t_{j+1} - t_j))``. Functions with an index outside ``0..K-k-2``
        are those of phantom knots added beyond the ends; they meet zero coefficients.
    """
    n_in, n_knots = t.shape
    h0 = t[:, 1:2] - t[:, :1]
    h1 = t[:, -1:] - t[:, -2:-1]
    steps = torch.arange(1, k + 1, dtype=t.dtype, device=t.device)
    tp = torch.cat([t[:, :1] - h0 * steps.flip(0), t, t[:, -1:] + h1 * steps], dim=1)
    j = torch.arange(n_knots - 1, device=t.device)

    def knot(index: Tensor) -> Tensor:
        return tp[:, index + k]

    tj = knot(j)
    h = knot(j + 1) - tj
    polys = t.new_zeros(n_in, n_knots - 1, 1, k + 1)
    polys[..., 0, 0] = 1.0

    def times_linear(c: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        # (alpha + beta s) · Σ c_p s^p
        shifted = F.pad(c[..., :-1], (1, 0))
        return alpha.unsqueeze(-1) * c + beta.unsqueeze(-1) * shifted

    for p in range(1, k + 1):
        new = t.new_zeros(n_in, n_knots - 1, p + 1, k + 1)
        for r in range(p + 1):
            i = j - p + r
            if r >= 1:  # (x - t_i) / (t_{i+p} - t_i) · B_{i,p-1}
                den = knot(i + p) - knot(i)
                new[:, :, r] += times_linear(polys[:, :, r - 1], (tj - knot(i)) / den, h / den)
            if r <= p - 1:  # (t_{i+p+1} - x) / (t_{i+p+1} - t_{i+1}) · B_{i+1,p-1}
                den = knot(i + p + 1) - knot(i + 1)
                new[:, :, r] += times_linear(polys[:, :, r], (knot(i + p + 1) - tj) / den, -h / den)
        polys = new
    return polys


class _GridPoints(Basis):
    """A basis with ``G + 1`` functions whose grid buffer is the ``G + 1`` grid points."""

    def size(self, grid: int, k: int) -> int:
        return grid + 1

    def make_grid(self, points: Tensor, k: int) -> Tensor:
        return points.clone()

    def grid_size(self, grid_buffer: Tensor, k: int) -> int:
        return grid_buffer.shape[1] - 1

    def domain(self, grid_buffer: Tensor, k: int) -> Tensor:
        return grid_buffer[:, [0, -1]]


class GaussianRBF(_GridPoints):
    """Gaussian radial basis ``exp(-((x - μ_b)/h)²)`` on ``G + 1`` centres (FastKAN).

    The grid buffer holds the centres; ``h`` is their mean spacing, (last - first) / G (the
    spacing itself on a uniform grid; one width for every centre after ``update_grid``).
    """

    name = "rbf"

    def _z(self, h: Tensor, grid_buffer: Tensor) -> tuple[Tensor, Tensor]:
        """``z = (h - μ)/width`` ``(n_in, N, nb)`` and ``1/width`` ``(n_in, 1, 1)``."""
        width = (grid_buffer[:, -1:] - grid_buffer[:, :1]) / (grid_buffer.shape[1] - 1)
        z = (h.unsqueeze(-1) - grid_buffer.unsqueeze(1)) / width.unsqueeze(-1)
        return z, (1 / width).unsqueeze(-1)

    def features(self, h, grid_buffer, k, aux, order):
        z, ih = self._z(h, grid_buffer)
        b = torch.exp(-z * z)
        out = [b]
        if order >= 1:
            out.append(-2 * z * b * ih)
        if order >= 2:
            out.append((4 * z * z - 2) * b * ih * ih)
        return torch.stack(out)


class ReflectionalSwitch(GaussianRBF):
    """Reflectional switch functions ``1 - tanh²((x - μ_b)/h)`` on ``G + 1`` centres (FasterKAN)."""

    name = "rswaf"

    def features(self, h, grid_buffer, k, aux, order):
        z, ih = self._z(h, grid_buffer)
        th = torch.tanh(z)
        b = 1 - th * th
        out = [b]
        if order >= 1:
            out.append(-2 * th * b * ih)
        if order >= 2:
            out.append(b * (6 * th * th - 2) * ih * ih)
        return torch.stack(out)


class Chebyshev(_GridPoints):
    """Chebyshev polynomials ``T_0 … T_G`` of ``z = tanh(x̂)``, where ``x̂`` maps the grid range
    affinely onto ``[-1, 1]`` (ChebyKAN's convention: ``tanh`` keeps hidden-layer inputs inside
    the interval where the polynomials are bounded). The grid buffer holds ``G + 1`` points of
    the range; only its ends are used."""

    name = "chebyshev"

    def features(self, h, grid_buffer, k, aux, order):
        lo, hi = grid_buffer[:, :1], grid_buffer[:, -1:]
        a = 2 / (hi - lo)  # (n_in, 1)
        z = torch.tanh((h - lo) * a - 1)  # (n_in, N)
        n = grid_buffer.shape[1]
        t = [z * 0 + 1, z]  # T_0 as NaN where z is, as every other basis gives
        d1 = [torch.zeros_like(z), torch.ones_like(z)]
        d2 = [torch.zeros_like(z), torch.zeros_like(z)]
        # Three-term recurrences for T_n and its z-derivatives.
        for _ in range(2, n):
            t.append(2 * z * t[-1] - t[-2])
            if order >= 1:
                d1.append(2 * t[-2] + 2 * z * d1[-1] - d1[-2])
            if order >= 2:
                d2.append(4 * d1[-2] + 2 * z * d2[-1] - d2[-2])
        out = [torch.stack(t[:n], dim=-1)]
        if order >= 1:
            dz = (a * (1 - z * z)).unsqueeze(-1)  # dz/dx
            tz1 = torch.stack(d1[:n], dim=-1)
            out.append(tz1 * dz)
        if order >= 2:
            ddz = (-2 * z * (1 - z * z) * a * a).unsqueeze(-1)  # d²z/dx²
            out.append(torch.stack(d2[:n], dim=-1) * dz * dz + tz1 * ddz)
        return torch.stack(out)


BASES: dict[str, Basis] = {
    b.name: b for b in (BSpline(), GaussianRBF(), ReflectionalSwitch(), Chebyshev())
}


def get_basis(name: str | Basis) -> Basis:
    """Look a basis up by name.

    Parameters
    ----------
    name : str or Basis
        ``bspline``, ``rbf``, ``rswaf`` or ``chebyshev``; a :class:`Basis` is returned as is.

    Returns
    -------
    Basis

    Raises
    ------
    ValueError
        If the name is unknown.
    """
    if isinstance(name, Basis):
        return name
    try:
        return BASES[name]
    except KeyError:
        raise ValueError(f"unknown basis {name!r}; choose one of {', '.join(BASES)}") from None
