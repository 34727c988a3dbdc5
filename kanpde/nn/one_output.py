"""The jet through a B-spline layer with one output, as a single autograd Function.

A layer with one output (a network's last, for a scalar field) computes ``y = Σ_i ψ_i(h_i)``
with ``ψ = w_s·spline + w_b·silu``. Given its inputs' jet ``(h, ∂h, ∂²h)`` it returns

    y,    ∂_d y = Σ_i ψ'_i ∂_d h_i,    ∂_ab y = Σ_i ψ''_i ∂_a h_i ∂_b h_i + ψ'_i ∂_ab h_i.

Recorded by plain autograd, this is some forty broadcast operations whose backward replays each
of them through the Horner recurrence. Written out, the backward is short. With ``G_q`` the
gradient reaching ``ψ^(q)`` (``G_0 = ḡ_y``, ``G_1 = Σ_d ḡ_d ∂_d h + Σ_ab ḡ_ab ∂_ab h``,
``G_2 = Σ_ab ḡ_ab ∂_a h ∂_b h``):

    ∂L/∂h         = Σ_q G_q ψ^(q+1)                 (the next derivative, not the recurrence)
    ∂L/∂w_b       = Σ_n Σ_q G_q silu^(q)
    ∂L/∂T[p, c]   = Σ_{n in slot c} Σ_q G_q · p!/(p-q)! · δ^(p-q)      (one scatter)

where ``T`` is the per-slot polynomial table of :meth:`~kanpde.nn.bases.BSpline.table` and
``δ`` the offset from the slot's left knot. Measured on the [2, 10, 1] Poisson-2D step
(2805 points, float64, one thread of a 2-core VM): the layer's forward and backward take
2.1 ms instead of 3.2 ms. The first layer may hand its jet over packed in one tensor in its
sparse product's points-first memory (see :meth:`KANLayer._jet <kanpde.nn.kan.KANLayer._jet>`):
no transposing copy either way and no concatenation in the backward. The whole step: 5.0 ms
with plain autograd, 3.6 ms fused, 3.3 ms fused and packed (``benchmarks/ablation.py``).

Under ``create_graph`` (a derivative of a gradient) the backward recomputes the layer by plain
differentiable operations and differentiates those, so the Function is differentiable to any
order and gives the plain path's higher derivatives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .bases import _horner
from .jet import Inner, Pairs

_LANES = 8  # partial tables of the gradient scatter (see _table_gradient)


def silu_scaled(h: Tensor, order: int) -> list[Tensor]:
    """``silu^(q)(h) / q!`` for ``q = 0 … order`` (``order ≤ 3``), each shaped like ``h``.

    With ``s = sigmoid(h)``, ``r = s (1 - s)`` and ``c = 1/2 - s`` the scaled derivatives are
    ``s + h r``, ``r + h r c`` and ``r (c + (2/3) h (c² - r/2))``: few passes over ``h``.
    """
    s = torch.sigmoid(h)
    out = [h * s]
    if order >= 1:
        r = s * (1 - s)
        hr = h * r
        out.append(s + hr)
    if order >= 2:
        c = 0.5 - s
        out.append(torch.addcmul(r, hr, c))
    if order >= 3:
        u = torch.sub(c * c, r, alpha=0.5)
        out.append(r * torch.addcmul(c, h, u, value=2 / 3))
    return out


class _Layout:
    """How ``(n_in, N)`` tensors lie in memory: points last (feature-major, the usual case) or
    points first (a transposed view, as the first layer's sparse operator produces them).
    Flattening and scattering follow the memory order, so neither layout is copied."""

    def __init__(self, h: Tensor) -> None:
        self.shape = tuple(h.shape)
        self.points_first = h.shape[1] > 1 and h.stride(1) != 1

    def flatten(self, x: Tensor) -> Tensor:
        return (x.t() if self.points_first else x).reshape(-1)

    def unflatten(self, v: Tensor) -> Tensor:
        n_in, n = self.shape
        return v.view(n, n_in).t() if self.points_first else v.view(n_in, n)


def _edges(
    h: Tensor, table: Tensor, scale_base: Tensor, left: Tensor, flat: Tensor, order: int
) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """``ψ^(q)/q!`` and ``silu^(q)/q!`` for ``q ≤ order`` ``(n_in, N)``, and the offsets ``δ``."""
    layout = _Layout(h)
    k1 = table.shape[0]
    index = layout.flatten(flat)
    a = torch.gather(table.reshape(k1, -1), 1, index.unsqueeze(0).expand(k1, -1))
    delta = h - layout.unflatten(left.index_select(0, index))
    spline = _horner([layout.unflatten(r) for r in a.unbind(0)], delta, order)  # P^(q)/q!
    sig = silu_scaled(h, order)
    wb = scale_base.reshape(-1, 1)
    return [torch.addcmul(p, wb, s) for p, s in zip(spline, sig)], sig, delta


def _split(jet: Tensor, pairs: Pairs, order: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """Views ``h``, ``∂h``, ``∂²h`` of a packed ``(1 + D + P, n_in, N)`` jet."""
    p = len(pairs) if order >= 2 else 0
    d = jet.shape[0] - 1 - p
    return jet[0], jet[1 : 1 + d], jet[1 + d :] if order >= 2 else None


def _outputs(psi: list[Tensor], j1: Tensor, j2: Tensor | None, pairs: Pairs, order: int):
    """``(y, ∂y[, ∂²y])`` ``(1, N)``, ``(D, 1, N)``, ``(P, 1, N)`` from the scaled edge
    derivatives ``psi`` and the inputs' jet ``j1`` ``(D, n_in, N)``, ``j2`` ``(P, n_in, N)``."""
    value = psi[0].sum(0, keepdim=True)
    d1 = torch.stack([(psi[1] * jd).sum(0, keepdim=True) for jd in j1.unbind(0)])
    if order < 2:
        return value, d1
    rows = []
    for p, (a, b) in enumerate(pairs):
        curv = psi[2] * j1[a]  # ψ'' = 2·psi[2]: the factor rides on the multiply-add
        if j2 is None:
            rows.append((curv * j1[b]).sum(0, keepdim=True) * 2)
        else:
            rows.append(torch.addcmul(psi[1] * j2[p], curv, j1[b], value=2).sum(0, keepdim=True))
    d2 = torch.stack(rows) if rows else value.new_zeros(0, *value.shape)
    return value, d1, d2


def _falling(p: int, q: int) -> float:
    """``p! / (p - q)!``."""
    return float(math.perm(p, q))


class _OneOutputJet(torch.autograd.Function):
    """See the module docstring. Inputs: the jet, either packed ``(1 + D + P, n_in, N)`` or as
    ``h`` ``(n_in, N)``, ``j1`` ``(D, n_in, N)``, ``j2`` ``(P, n_in, N)`` (or None); the
    table ``(k + 1, 1, n_in · n_slots)``, ``w_b`` ``(1, n_in)``, the slots' left knots, the
    points' flat slot indices ``(n_in, N)``, ``pairs`` and ``order`` (1 or 2)."""

    @staticmethod
    def forward(ctx, packed, h, j1, j2, table, scale_base, left, flat, pairs, order):
        ctx.save_for_backward(packed, h, j1, j2, table, scale_base, left, flat)
        if packed is not None:
            h, j1, j2 = _split(packed, pairs, order)
        # One derivative more than the outputs need: ∂L/∂h takes ψ^(order+1).
        psi, sig, delta = _edges(h, table, scale_base, left, flat, order + 1)
        ctx.psi, ctx.sig, ctx.delta = psi, sig, delta
        ctx.pairs, ctx.order = pairs, order
        return _outputs(psi, j1, j2, pairs, order)

    @staticmethod
    def backward(ctx, *grads):
        packed, h, j1, j2, table, scale_base, left, flat = ctx.saved_tensors
        pairs, order = ctx.pairs, ctx.order
        if torch.is_grad_enabled():  # create_graph: differentiate the plain operations
            return _recompute_backward(ctx, grads)
        if packed is not None:
            h, j1, j2 = _split(packed, pairs, order)
        need = ctx.needs_input_grad
        psi, sig, delta = ctx.psi, ctx.sig, ctx.delta
        gv, g1 = grads[0], grads[1].unbind(0)  # (1, N), D × (1, N)
        g2 = grads[2].unbind(0) if order >= 2 else ()
        rows = j1.unbind(0)
        # G_1 and G_2: the gradients reaching ψ' and ψ''
        G1 = g1[0] * rows[0]
        for gd, jd in zip(g1[1:], rows[1:]):
            G1 = torch.addcmul(G1, gd, jd)
        G2 = None
        if j2 is not None:
            for gp, jp in zip(g2, j2.unbind(0)):
                G1 = torch.addcmul(G1, gp, jp)
        for gp, (a, b) in zip(g2, pairs):
            jj = rows[a] * rows[b]
            G2 = gp * jj if G2 is None else torch.addcmul(G2, gp, jj)
        G = [gv, G1] + ([] if G2 is None else [G2])

        # The input gradients are written into buffers: one in the packed jet's layout (no
        # concatenation, no transpose), or one per tensor.
        grad_packed = grad_table = grad_wb = None
        if need[0]:
            grad_packed = torch.empty_like(packed)
            out_h, out_j1, out_j2 = _split(grad_packed, pairs, order)
        else:
            out_h = h.new_empty(h.shape) if need[1] else None
            out_j1 = j1.new_empty(j1.shape) if need[2] else None
            out_j2 = j2.new_empty(j2.shape) if need[3] and j2 is not None else None
        if out_h is not None:  # Σ_q G_q ψ^(q+1), from the stored ψ^(q)/q!
            acc = gv * psi[1]
            for q in range(1, len(G)):
                dest = {"out": out_h} if q == len(G) - 1 else {}
                scale = float(math.factorial(q + 1))
                acc = torch.addcmul(acc, G[q], psi[q + 1], value=scale, **dest)
        if out_j1 is not None:
            for gd, out in zip(g1, out_j1.unbind(0)):
                torch.mul(gd, psi[1], out=out)
            for gp, (a, b) in zip(g2, pairs):
                curv = psi[2] * gp  # ψ''·ḡ_ab / 2
                if a == b:
                    out_j1[a].addcmul_(curv, rows[a], value=4.0)
                else:
                    out_j1[a].addcmul_(curv, rows[b], value=2.0)
                    out_j1[b].addcmul_(curv, rows[a], value=2.0)
        if out_j2 is not None:
            torch.mul(grads[2], psi[1], out=out_j2)  # (P, 1, N) · (n_in, N)
        loose = (None, None, None) if need[0] else (out_h, out_j1, out_j2)
        if need[5]:
            acc = G[1] * sig[1]
            if G2 is not None:
                acc = torch.addcmul(acc, G2, sig[2], value=2.0)
            grad_wb = torch.addmv(acc.sum(1), sig[0], gv[0]).unsqueeze(0)
        if need[4]:
            grad_table = _table_gradient(G, delta, flat, table)
        return (grad_packed, *loose, grad_table, grad_wb) + (None,) * 4


def _table_gradient(G: list[Tensor], delta: Tensor, flat: Tensor, table: Tensor) -> Tensor:
    """``∂L/∂T[p, c] = Σ_{n in slot c} Σ_q G_q · p!/(p-q)! · δ^(p-q)``, one scatter for all p."""
    layout = _Layout(delta)
    k1, cols = table.shape[0], table[0].numel()
    buffer = delta.new_empty(k1, delta.numel())  # memory order, as the index
    rows = [layout.unflatten(r) for r in buffer.unbind(0)]
    rows[0].copy_(G[0].expand(delta.shape))
    g0d = G[0] * delta
    for p in range(1, k1):
        # Horner in δ: ((G_0 δ + c_1 G_1) δ + c_2 G_2) δ …, then the remaining powers of δ
        top = min(p, len(G) - 1)
        e = g0d if top == 0 else torch.add(g0d, G[1], alpha=_falling(p, 1))
        for q in range(2, top + 1):
            e = torch.add(e * delta, G[q], alpha=_falling(p, q))
        for _ in range(p - max(top, 1)):
            e = e * delta
        rows[p].copy_(e)
    index = layout.flatten(flat)
    lanes = 1
    if not layout.points_first:
        # Neighbouring points mostly share a slot, and a scatter-add into one address waits
        # for the previous add to land; spreading consecutive points over copies of the table
        # breaks those chains (2.5x faster measured on a hidden layer's inputs). Points-first
        # memory interleaves the inputs, whose slots differ, already.
        lanes = _LANES
        lane = torch.arange(flat.shape[1], device=flat.device).remainder_(lanes).mul_(cols)
        index = layout.flatten(flat + lane)
    grad = table.new_zeros(k1, lanes * cols)
    grad.scatter_add_(1, index.unsqueeze(0).expand(k1, -1), buffer)
    return grad.view(k1, lanes, cols).sum(1).view_as(table)


def _recompute_backward(ctx, grads):
    """The backward through plain differentiable operations (for ``create_graph``)."""
    packed, h, j1, j2, table, scale_base, left, flat = ctx.saved_tensors
    inputs = (packed, h, j1, j2, table, scale_base)
    with torch.enable_grad():
        if packed is not None:
            h, j1, j2 = _split(packed, ctx.pairs, ctx.order)
        psi, _, _ = _edges(h, table, scale_base, left, flat, ctx.order)
        outs = _outputs(psi, j1, j2, ctx.pairs, ctx.order)
    wanted = [i for i, t in enumerate(inputs) if ctx.needs_input_grad[i] and t is not None]
    live = [(o, g) for o, g in zip(outs, grads) if o.requires_grad]  # d2 of no pairs has none
    found = torch.autograd.grad(
        [o for o, _ in live],
        [inputs[i] for i in wanted],
        [g for _, g in live],
        create_graph=True,
        allow_unused=True,
    )
    result: list[Tensor | None] = [None] * 10
    for i, g in zip(wanted, found):
        result[i] = g
    return tuple(result)


def one_output_jet(
    jet: Inner | Tensor,
    table: Tensor,
    scale_base: Tensor,
    left: Tensor,
    flat: Tensor,
    pairs: Pairs,
    order: int,
) -> Inner:
    """Feature-major jet ``(y, ∂y, ∂²y)`` of a one-output B-spline layer (see the module
    docstring).

    Parameters
    ----------
    jet : (Tensor, Tensor, Tensor or None) or Tensor
        The inputs' jet ``h`` ``(n_in, N)``, ``∂h`` ``(D, n_in, N)``, ``∂²h`` ``(P, n_in, N)``,
        or the three packed in one ``(1 + D + P, n_in, N)`` tensor.
    table : Tensor
        ``(k + 1, 1, n_in · n_slots)`` per-slot polynomial table of the layer.
    scale_base : Tensor
        ``(1, n_in)`` silu weights.
    left, flat : Tensor
        The slots' left knots and the inputs' flat slot indices (see ``BSpline.slots``).
    order : int
        1 or 2; ``∂²y`` is None for 1.
    """
    if isinstance(jet, Tensor):
        args = (jet, None, None, None)
    else:
        args = (None, jet[0], jet[1], jet[2] if order >= 2 else None)
    out = _OneOutputJet.apply(*args, table, scale_base, left, flat, pairs, order)
    return out[0], out[1], out[2] if order >= 2 else None
