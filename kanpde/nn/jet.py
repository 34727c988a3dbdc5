"""Second-order Taylor jets: a value together with its input derivatives.

A trial function evaluated "in jet mode" returns, for every output, the first derivatives
along all input axes and the second derivatives for a requested list of axis pairs. The
derivatives are propagated through the layers in closed form (chain rule), so a PDE residual
needs one forward pass and one backward pass instead of nested autograd calls.

Inside a KAN the jet is kept feature-major (points last): value ``(m, N)``, first derivatives
``(D, m, N)``, second derivatives ``(P, m, N)``; :class:`Jet` is the point-major public form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Pairs = tuple[tuple[int, int], ...]
Inner = tuple[Tensor, Tensor | None, Tensor | None]  # feature-major (value, d1, d2)


@dataclass
class Jet:
    """Value and derivatives of a vector field at a batch of points.

    Attributes
    ----------
    value : Tensor
        ``(N, m)`` field values.
    d1 : Tensor or None
        ``(N, m, D)`` first derivatives ``d1[n, c, a] = ∂u_c/∂x_a``.
    d2 : Tensor or None
        ``(N, m, P)`` second derivatives for ``pairs``: ``d2[n, c, p] = ∂²u_c/∂x_a∂x_b``
        with ``(a, b) = pairs[p]``.
    pairs : tuple of (int, int)
        The axis pairs of ``d2``, each with ``a <= b``.
    """

    value: Tensor
    d1: Tensor | None = None
    d2: Tensor | None = None
    pairs: Pairs = ()


def check_order(order, what: str = "jet order") -> int:
    """``order`` of a jet (0, 1 or 2), or a one-line error naming it as ``what``."""
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 2:
        raise ValueError(f"{what} must be 0, 1 or 2, got {order!r}")
    return order


def normalize_pairs(pairs, dim: int) -> Pairs:
    """Sort each pair and remove duplicates, keeping first-seen order (axes ``0 … dim - 1``)."""
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        if not (0 <= int(a) < dim and 0 <= int(b) < dim):
            raise ValueError(f"axis pair ({a}, {b}) out of range for points with {dim} coordinates")
        p = (min(int(a), int(b)), max(int(a), int(b)))
        if p not in out:
            out.append(p)
    return tuple(out)


def public(inner: Inner, pairs: Pairs) -> Jet:
    """Point-major :class:`Jet` from a feature-major ``(value, d1, d2)``."""
    value, d1, d2 = inner
    return Jet(
        value.t(),
        None if d1 is None else d1.permute(2, 1, 0),
        None if d2 is None else d2.permute(2, 1, 0),
        pairs,
    )


def first_layer(phi: Sequence[Tensor], pairs: Pairs) -> Inner:
    """Jet of ``y_o = Σ_i φ_{oi}(x_i)`` when the inputs are the coordinates themselves.

    Parameters
    ----------
    phi : sequence of Tensor
        ``Q`` tensors ``(m, D, N)`` (``Q`` in 1..3): the edge functions and their first and
        second derivatives.
    pairs : tuple of (int, int)
        Second-derivative pairs wanted (used when ``Q == 3``).
    """
    value = phi[0].sum(1)
    d1 = phi[1].transpose(0, 1) if len(phi) > 1 else None
    d2 = None
    if len(phi) > 2:
        # Each edge sees a single coordinate, so mixed second derivatives vanish here.
        zero = None
        rows = []
        # unbind once: its backward is one stack, where each select's would fill a zero tensor
        second = phi[2].unbind(1)
        for a, b in pairs:
            if a == b:
                rows.append(second[a])
            else:
                zero = torch.zeros_like(value) if zero is None else zero
                rows.append(zero)
        d2 = torch.stack(rows) if rows else value.new_zeros(0, *value.shape)
    return value, d1, d2


def _contract(w: Tensor, j: Tensor, w2: Tensor | None = None, j2: Tensor | None = None) -> Tensor:
    """``Σ_i w[o, i, n] j[d, i, n]`` (``+ w2[o, i, n] j2[d, i, n]``) → ``(d, o, N)``."""
    if w.is_cuda and w.shape[0] * j.shape[0] > 8:
        out = torch.einsum("oin,din->don", w, j)
        return out if w2 is None else out + torch.einsum("oin,din->don", w2, j2)
    if w.shape[0] == 1:  # a scalar output: one broadcast product and reduction in all
        prod = w * j if w2 is None else torch.addcmul(w * j, w2, j2)
        return prod.sum(1, keepdim=True)
    # On the CPU einsum becomes a batched product of N tiny matrices (2-3x slower measured on
    # [10, 10] layers); one elementwise product and reduction per direction keeps the
    # intermediate the size of w.
    out = torch.stack([(w * jd).sum(1) for jd in j.unbind(0)])
    return out if w2 is None else out + _contract(w2, j2)


def _mix(w: Tensor, t: Tensor) -> Tensor:
    """``Σ_i w[o, i] t[d, i, n]`` → ``(d, o, N)``.

    ``w @ t`` would fold ``t`` into a ``(d·N, n_in)`` matrix: a transposing copy in the forward
    and gradients laid out points-first, which slow every elementwise op of the backward; a
    batched product over ``d`` keeps all three tensors points-last.
    """
    return torch.bmm(w.expand(t.shape[0], -1, -1), t)


def chain(
    phi: Sequence[Tensor],
    inner: Inner,
    pairs: Pairs,
    base: tuple[Tensor, Sequence[Tensor]] | None = None,
) -> Inner:
    """Jet of ``y_o = Σ_i φ_{oi}(h_i)`` for inputs ``h`` carried by ``inner``.

    Parameters
    ----------
    phi : sequence of Tensor
        ``Q`` tensors ``(m, n_in, N)``: edge functions and derivatives at the inputs.
    inner : (Tensor, Tensor, Tensor)
        The inputs: value ``(n_in, N)``, ``d1`` ``(D, n_in, N)``, ``d2`` ``(P, n_in, N)``.
    base : (Tensor, sequence of Tensor), optional
        A part ``Σ_i W_{oi} σ(h_i)`` shared by all edges but for its weight: ``W`` ``(m, n_in)``
        and ``σ, σ', σ''`` ``(n_in, N)``. It enters by matrix products instead of per edge.
    """
    _, j1, j2 = inner
    value = phi[0].sum(1)
    if base is not None:
        w, sig = base
        value = value + w @ sig[0]
    d1 = d2 = None
    if len(phi) > 1 and j1 is not None:
        d1 = _contract(phi[1], j1)
        if base is not None:
            d1 = d1 + _mix(w, sig[1] * j1)
        if len(phi) > 2 and pairs:
            # Basic indexing only: no index tensors built from Python lists (a host-to-device
            # copy would break CUDA-graph capture).
            rows = j1.unbind(0)  # one stack in the backward instead of a zero fill per select
            jj = torch.stack([rows[a] * rows[b] for a, b in pairs])
            d2 = _contract(phi[2], jj) if j2 is None else _contract(phi[2], jj, phi[1], j2)
            if base is not None:
                lin = sig[2] * jj if j2 is None else torch.addcmul(sig[2] * jj, sig[1], j2)
                d2 = d2 + _mix(w, lin)
        elif len(phi) > 2:
            d2 = value.new_zeros(0, *value.shape)
    return value, d1, d2
