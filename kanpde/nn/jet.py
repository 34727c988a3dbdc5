"""Second-order Taylor jets: a value together with its input derivatives.

A trial function evaluated "in jet mode" returns, for every output, the first derivatives
along all input axes and the second derivatives for a requested list of axis pairs. The
derivatives are propagated through the layers in closed form (chain rule), so a PDE residual
needs one forward pass and one backward pass instead of nested autograd calls.
"""

from __future__ import annotations

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


def first_layer_jet(phi: Tensor, pairs: Pairs) -> Jet:
    """Jet of ``y_o = Σ_i φ_{oi}(x_i)`` when the inputs are the coordinates themselves.

    Parameters
    ----------
    phi : Tensor
        ``(N, D, Q, m)``: edge functions (q = 0) and their first (q = 1) and second (q = 2)
        derivatives, ``Q`` in 1..3.
    pairs : tuple of (int, int)
        Second-derivative pairs wanted (used when ``Q == 3``).
    """
    q = phi.shape[2]
    value = phi[:, :, 0].sum(1)
    d1 = phi[:, :, 1].transpose(1, 2) if q > 1 else None
    d2 = None
    if q > 2 and not pairs:
        d2 = phi.new_zeros(phi.shape[0], phi.shape[3], 0)
    elif q > 2:
        # Each edge sees a single coordinate, so mixed second derivatives vanish here.
        second = phi[:, :, 2].transpose(1, 2)  # (N, m, D)
        a = torch.tensor([p[0] for p in pairs], device=phi.device, dtype=torch.long)
        pure = torch.tensor([p[0] == p[1] for p in pairs], device=phi.device, dtype=phi.dtype)
        d2 = second.index_select(2, a) * pure
    return Jet(value, d1, d2, pairs)


def chain(phi: Tensor, jet: Jet) -> Jet:
    """Jet of ``y_o = Σ_i φ_{oi}(h_i)`` for inputs ``h`` carried by ``jet``.

    Parameters
    ----------
    phi : Tensor
        ``(N, n_in, Q, m)`` edge functions and derivatives evaluated at ``jet.value``.
    jet : Jet
        The inputs: value ``(N, n_in)``, ``d1`` ``(N, n_in, D)``, ``d2`` ``(N, n_in, P)``.
    """
    q = phi.shape[2]
    value = phi[:, :, 0].sum(1)
    d1 = d2 = None
    if q > 1 and jet.d1 is not None:
        p1 = phi[:, :, 1].transpose(1, 2)  # (N, m, n_in)
        d1 = torch.bmm(p1, jet.d1)
        if q > 2 and jet.pairs:
            a = [p[0] for p in jet.pairs]
            b = [p[1] for p in jet.pairs]
            jj = jet.d1[:, :, a] * jet.d1[:, :, b]  # (N, n_in, P)
            d2 = torch.bmm(phi[:, :, 2].transpose(1, 2), jj)
            if jet.d2 is not None:
                d2 = d2 + torch.bmm(p1, jet.d2)
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
