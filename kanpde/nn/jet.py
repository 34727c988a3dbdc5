"""Second-order Taylor jets: a value together with its input derivatives.

A trial function evaluated "in jet mode" returns, for every output, the first derivatives
along all input axes and the second derivatives for a requested list of axis pairs. The
derivatives are propagated through the layers in closed form (chain rule), so a PDE residual
needs one forward pass and one backward pass instead of nested autograd calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Pairs = tuple[tuple[int, int], ...]


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


def normalize_pairs(pairs) -> Pairs:
    """Sort each pair and remove duplicates, keeping first-seen order."""
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        p = (min(int(a), int(b)), max(int(a), int(b)))
        if p not in out:
            out.append(p)
    return tuple(out)


def first_layer_jet(phi: Sequence[Tensor], pairs: Pairs) -> Jet:
    """Jet of ``y_o = Σ_i φ_{oi}(x_i)`` when the inputs are the coordinates themselves.

    Parameters
    ----------
    phi : sequence of Tensor
        ``Q`` tensors ``(N, D, m)`` (``Q`` in 1..3): the edge functions and their first and
        second derivatives.
    pairs : tuple of (int, int)
        Second-derivative pairs wanted (used when ``Q == 3``).
    """
    value = phi[0].sum(1)
    d1 = phi[1].transpose(1, 2) if len(phi) > 1 else None
    d2 = None
    if len(phi) > 2:
        # Each edge sees a single coordinate, so mixed second derivatives vanish here.
        second = phi[2].transpose(1, 2)  # (N, m, D)
        cols = [second[:, :, a] if a == b else torch.zeros_like(second[:, :, 0]) for a, b in pairs]
        d2 = torch.stack(cols, dim=2) if cols else second[:, :, :0]
    return Jet(value, d1, d2, pairs)


def _contract(w: Tensor, j: Tensor) -> Tensor:
    """``Σ_i w[n, i, o] j[n, i, d]`` → ``(N, m, d)``."""
    if w.shape[2] * j.shape[2] <= 8:
        # Few outputs and directions: a broadcast product beats many tiny matrix products.
        return (w.unsqueeze(3) * j.unsqueeze(2)).sum(1)
    return torch.bmm(w.transpose(1, 2), j)


def chain(phi: Sequence[Tensor], jet: Jet) -> Jet:
    """Jet of ``y_o = Σ_i φ_{oi}(h_i)`` for inputs ``h`` carried by ``jet``.

    Parameters
    ----------
    phi : sequence of Tensor
        ``Q`` tensors ``(N, n_in, m)``: edge functions and derivatives at ``jet.value``.
    jet : Jet
        The inputs: value ``(N, n_in)``, ``d1`` ``(N, n_in, D)``, ``d2`` ``(N, n_in, P)``.
    """
    value = phi[0].sum(1)
    d1 = d2 = None
    if len(phi) > 1 and jet.d1 is not None:
        d1 = _contract(phi[1], jet.d1)
        if len(phi) > 2 and jet.pairs:
            a = [p[0] for p in jet.pairs]
            b = [p[1] for p in jet.pairs]
            d2 = _contract(phi[2], jet.d1[:, :, a] * jet.d1[:, :, b])
            if jet.d2 is not None:
                d2 = d2 + _contract(phi[1], jet.d2)
        elif len(phi) > 2:
            d2 = value.new_zeros(value.shape[0], value.shape[1], 0)
    return Jet(value, d1, d2, jet.pairs)


def elementwise(f0: Tensor, f1: Tensor | None, f2: Tensor | None, jet: Jet) -> Jet:
    """Jet of ``y = f(h)`` applied elementwise, given ``f(h)``, ``f'(h)``, ``f''(h)``."""
    d1 = d2 = None
    if jet.d1 is not None and f1 is not None:
        d1 = f1.unsqueeze(-1) * jet.d1
        if jet.d2 is not None and f2 is not None:
            a = [p[0] for p in jet.pairs]
            b = [p[1] for p in jet.pairs]
            d2 = f2.unsqueeze(-1) * (jet.d1[:, :, a] * jet.d1[:, :, b]) + f1.unsqueeze(-1) * jet.d2
    return Jet(f0, d1, d2, jet.pairs)


def linear(weight: Tensor, bias: Tensor | None, jet: Jet) -> Jet:
    """Jet of ``y = h Wᵀ + b`` (``weight`` is ``(m, n_in)``)."""
    value = torch.nn.functional.linear(jet.value, weight, bias)
    d1 = torch.einsum("oi,nid->nod", weight, jet.d1) if jet.d1 is not None else None
    d2 = torch.einsum("oi,nip->nop", weight, jet.d2) if jet.d2 is not None else None
    return Jet(value, d1, d2, jet.pairs)


def coordinates(x: Tensor, order: int, pairs: Pairs) -> Jet:
    """The jet of the identity map: ``d1 = I``, ``d2 = 0``."""
    n, dim = x.shape
    d1 = d2 = None
    if order >= 1:
        d1 = torch.eye(dim, dtype=x.dtype, device=x.device).expand(n, dim, dim)
    if order >= 2:
        d2 = x.new_zeros(n, dim, len(pairs))
    return Jet(x, d1, d2, pairs)
