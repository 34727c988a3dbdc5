"""First-layer jets at fixed points as one sparse matrix product (CPU).

A KAN's first layer sees the coordinates themselves. While the collocation points stay fixed
(between resamplings and grid changes), its B-spline edges and their coordinate derivatives
are *linear* in the layer's parameters: with the per-slot polynomial table ``T[p, o, c]`` of
:meth:`~kanpde.nn.bases.BSpline.table` (coefficients of ``δ^p``, ``δ = x - t_j``) and the
silu weights ``w_b``,

    φ_oi^(q)(x_i) = Σ_p T[p, o, c(x_i)] · dq/dxq δ^p  +  w_b[o, i] · silu^(q)(x_i),

whose coefficients (``δ^p``, ``p δ^(p-1)``, …, ``silu^(q)``) depend on the points only. They
form a constant sparse matrix ``S`` (a handful of entries per row), built once per point set
and grid; the layer's whole jet is then ``S Θ`` and its backward ``Sᵀ G``, two sparse
products instead of some thirty broadcast passes over ``(n_out, n_in, N)`` and their backward.
Both products are autograd functions whose backward is the other one, so the path stays
differentiable to any order. The matrix holds about a dozen entries per coordinate value, so
point sets larger than :data:`MAX_COORDINATES` values keep the regular evaluation.
"""

from __future__ import annotations

import math
import warnings
import weakref

import torch
from torch import Tensor

from .bases import silu_features

#: Largest ``N · D`` served by a cached operator (two CSR copies of ~12 entries per value:
#: about 300 MB at the limit).
MAX_COORDINATES = 1 << 20


class PointOperator:
    """The constant sparse matrix of a first layer at fixed points (see the module docstring).

    Rows are ``b · N + n`` for block ``b`` (0: values, ``1 … D``: first derivatives along each
    coordinate, then one block per second-derivative pair) and point ``n``; columns are the
    table entries ``p · n_cols + c`` followed by one silu column per input.
    """

    def __init__(self, matrix: Tensor, blocks: int, n_points: int) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            self.matrix = _csr(matrix)
            self.adjoint_matrix = _csr(matrix.t().coalesce())
        self.blocks, self.n_points = blocks, n_points

    def apply(self, theta: Tensor, contiguous: bool = True) -> Tensor:
        """``(C, n_out)`` → ``(blocks, n_out, N)``; with ``contiguous=False`` a transposed view
        of the product's points-first memory (for consumers that take either layout)."""
        # (A column-major product that lands feature-major without the transposing copy
        # measured slower: MKL's sparse kernels favour row-major dense operands.)
        y = (self.matrix @ theta).view(self.blocks, self.n_points, -1).transpose(1, 2)
        return y.contiguous() if contiguous else y

    def adjoint(self, grad: Tensor) -> Tensor:
        """``(blocks, n_out, N)`` → ``(C, n_out)``."""
        g = grad.transpose(1, 2).reshape(self.blocks * self.n_points, -1)
        return self.adjoint_matrix @ g


def _csr(coo: Tensor) -> Tensor:
    csr = coo.to_sparse_csr()
    if csr.values().numel() < 2**31 - 1:  # 32-bit indices: MKL's faster kernels
        csr = torch.sparse_csr_tensor(
            csr.crow_indices().int(),
            csr.col_indices().int(),
            csr.values(),
            csr.shape,
            check_invariants=False,
        )
    return csr


class _Product(torch.autograd.Function):
    """``S Θ`` (or ``Sᵀ G`` with ``adjoint``); the backward of each is the other."""

    @staticmethod
    def forward(
        x: Tensor, op: PointOperator, adjoint: bool = False, contiguous: bool = True
    ) -> Tensor:
        return op.adjoint(x) if adjoint else op.apply(x, contiguous)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.op, ctx.adjoint = inputs[1], inputs[2] if len(inputs) > 2 else False

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Product.apply(grad, ctx.op, not ctx.adjoint), None, None, None


def build_operator(
    h: Tensor, basis, grid_buffer: Tensor, k: int, aux: dict, order: int, pairs
) -> PointOperator:
    """The :class:`PointOperator` of a B-spline first layer at coordinates ``h`` ``(D, N)``."""
    d, n = h.shape
    n_knots = grid_buffer.shape[1]
    n_cols = d * (n_knots + 1)  # flat slots, as in BSpline.slots
    base_col = (k + 1) * n_cols
    flat = basis.slots(h, grid_buffer, aux)  # (D, N)
    delta = h - aux["left"][flat]
    silu = silu_features(h, order)
    points = torch.arange(n, device=h.device)
    rows, cols, vals = [], [], []

    def add(block: int, axis: int, q: int) -> None:
        """Entries of the q-th derivative of the edges of input ``axis`` in ``block``."""
        r = block * n + points
        for p in range(q, k + 1):
            coeff = math.factorial(p) / math.factorial(p - q)
            rows.append(r)
            cols.append(p * n_cols + flat[axis])
            vals.append(coeff * delta[axis] ** (p - q))
        rows.append(r)
        cols.append(torch.full_like(points, base_col + axis))
        vals.append(silu[q][axis])

    for i in range(d):
        add(0, i, 0)
    if order >= 1:
        for a in range(d):
            add(1 + a, a, 1)
    if order >= 2:
        for b, (a, c) in enumerate(pairs):
            if a == c:  # each edge sees one coordinate: mixed derivatives vanish
                add(1 + d + b, a, 2)
    blocks = 1 + (d if order >= 1 else 0) + (len(pairs) if order >= 2 else 0)
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    matrix = torch.sparse_coo_tensor(
        index, torch.cat(vals), (blocks * n, base_col + d), check_invariants=False
    ).coalesce()
    return PointOperator(matrix, blocks, n)


class OperatorCache:
    """The :class:`PointOperator` of the last point set, rebuilt when it may be stale.

    Keyed on the identity and version counter of the points tensor (in-place edits by torch
    ops bump the version), the derivative order and the pairs; a grid change replaces the
    cache. Writes that bypass the version counter (through ``x.data`` or a NumPy view) go
    unnoticed: give the model a new tensor instead.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._ref = None
        self._op: PointOperator | None = None

    def get(self, x: Tensor, order: int, pairs, build) -> PointOperator:
        key = (x._version, x.dtype, x.shape, order, tuple(pairs))
        if self._op is None or self._ref() is not x or self._key != key:
            self._op = build()
            self._ref, self._key = weakref.ref(x), key
        return self._op

    def clear(self) -> None:
        self._key = self._ref = self._op = None

    # A cache is not part of a model's state: copies and pickles start empty.
    def __deepcopy__(self, memo) -> OperatorCache:
        return OperatorCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.clear()


def coordinate_jet(
    op: PointOperator, table: Tensor, scale_base: Tensor, contiguous: bool = True
) -> Tensor:
    """``(blocks, n_out, N)``: values and derivatives of ``y_o = Σ_i φ_oi(x_i)`` (with
    ``contiguous=False`` in the product's points-first memory, see :meth:`PointOperator.apply`)."""
    n_out = table.shape[1]
    theta = torch.cat([table.permute(0, 2, 1).reshape(-1, n_out), scale_base.t()])
    return _Product.apply(theta, op, False, contiguous)
