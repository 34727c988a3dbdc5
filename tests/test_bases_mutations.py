"""Mutation-guided checks of kanpde.nn.bases and kanpde.nn.fixed_points against independent
references: scipy's B-splines (including a third derivative, which exercises the general-order
``_horner``/``_scale`` path), numpy's Chebyshev series, closed forms of the dense bases, and
the sparse point operator's custom backward against a dense product and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev as C
from scipy.interpolate import BSpline as SciBSpline

from kanpde.nn import KANLayer
from kanpde.nn.fixed_points import _Product, build_operator

DT = torch.float64


def scipy_basis(t: np.ndarray, k: int, x: np.ndarray, nu: int) -> np.ndarray:
    """``(N, G + k)`` derivatives of order ``nu`` of every B-spline, zero outside its support."""
    cols = []
    for j in range(len(t) - k - 1):
        b = SciBSpline.basis_element(t[j : j + k + 2], extrapolate=False)
        cols.append(np.nan_to_num(b(x, nu=nu)))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("k", [3, 4])
def test_bspline_third_derivative_matches_scipy(k):
    # _horner carries P^(q)/q! and _scale multiplies back by q!: for q <= 2, q! == q, so only
    # an order >= 3 tells q! from q (the docstrings promise the general order).
    layer = KANLayer(1, 1, grid=5, k=k, grid_range=[(-1.0, 2.0)], dtype=DT)
    t = layer.grid_points[0].numpy()
    mids = 0.5 * (t[1:] + t[:-1])
    x = np.concatenate([mids, 0.3 * t[1:] + 0.7 * t[:-1]])
    got = layer.basis_values(torch.tensor(x[:, None], dtype=DT), order=3)[:, 0]  # (N, 4, nb)
    for nu in range(4):
        ref = scipy_basis(t, k, x, nu)
        scale = max(1.0, float(np.abs(ref).max()))
        err = float(np.abs(got[:, nu].numpy() - ref).max()) / scale
        assert err <= 1e-12, f"derivative {nu}: scaled error {err:.3e}"


def test_bspline_basis_is_exactly_zero_far_outside_all_knots():
    # Outside all knots the table is zero; the local coordinate must stay clamped to [0, 1]
    # so that 0 · s^p cannot become 0 · inf = NaN for huge inputs.
    layer = KANLayer(2, 1, grid=4, k=3, grid_range=[(-1.0, 1.0), (0.0, 3.0)], dtype=DT)
    x = torch.tensor([[1e200, -1e200], [-1e300, 1e300], [-1e120, 1e120]], dtype=DT)
    got = layer.basis_values(x, order=2)
    assert torch.isfinite(got).all()
    assert (got == 0).all()


def test_chebyshev_matches_numpy_with_tanh_squashing():
    lo, hi, G = -0.5, 2.5, 6
    layer = KANLayer(1, 1, grid=G, basis="chebyshev", grid_range=[(lo, hi)], dtype=DT)
    x = np.linspace(lo - 1.0, hi + 1.0, 41)
    got = layer.basis_values(torch.tensor(x[:, None], dtype=DT), order=2)[:, 0].numpy()
    a = 2 / (hi - lo)
    z = np.tanh((x - lo) * a - 1)
    dz = a * (1 - z * z)
    ddz = -2 * z * dz * a
    for b in range(G + 1):
        c = np.zeros(G + 1)
        c[b] = 1
        t0 = C.chebval(z, c)
        t1 = C.chebval(z, C.chebder(c))
        t2 = C.chebval(z, C.chebder(c, 2))
        np.testing.assert_allclose(got[:, 0, b], t0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[:, 1, b], t1 * dz, rtol=0, atol=1e-11)
        np.testing.assert_allclose(got[:, 2, b], t2 * dz**2 + t1 * ddz, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["rbf", "rswaf", "chebyshev", "bspline"])
def test_basis_derivatives_match_central_differences(name):
    layer = KANLayer(1, 1, grid=5, basis=name, grid_range=[(-1.0, 1.0)], dtype=DT)
    # off the knots, so the B-spline derivatives are smooth around every point
    x = torch.linspace(-1.17, 1.13, 23, dtype=DT).unsqueeze(1)
    e = 1e-5
    f = layer.basis_values(x, order=2)[:, 0]
    fp = layer.basis_values(x + e, order=1)[:, 0]
    fm = layer.basis_values(x - e, order=1)[:, 0]
    torch.testing.assert_close(f[:, 1], (fp[:, 0] - fm[:, 0]) / (2 * e), rtol=0, atol=1e-6)
    torch.testing.assert_close(f[:, 2], (fp[:, 1] - fm[:, 1]) / (2 * e), rtol=0, atol=1e-5)


def point_operator(n=9, order=2):
    torch.manual_seed(3)
    layer = KANLayer(2, 3, grid=4, k=3, grid_range=[(-1.0, 1.0), (0.0, 2.0)], dtype=DT)
    x = torch.stack([torch.rand(n, dtype=DT) * 2.4 - 1.2, torch.rand(n, dtype=DT) * 2.2], 1)
    h = x.t().contiguous()
    op = build_operator(h, layer.basis, layer.grid_points, 3, layer._aux, order, [(0, 0), (1, 1)])
    return op


def test_point_operator_backward_equals_dense_product_gradient():
    op = point_operator()
    dense = op.matrix.to_dense()
    rows, cols = dense.shape
    torch.manual_seed(4)
    theta = torch.randn(cols, 3, dtype=DT, requires_grad=True)
    w = torch.randn(op.blocks, 3, op.n_points, dtype=DT)
    y = _Product.apply(theta, op)
    y_dense = (dense @ theta).view(op.blocks, op.n_points, 3).transpose(1, 2)
    torch.testing.assert_close(y, y_dense, rtol=0, atol=1e-13)
    (g,) = torch.autograd.grad((w * y).sum(), theta)
    (g_dense,) = torch.autograd.grad((w * y_dense).sum(), theta)
    torch.testing.assert_close(g, g_dense, rtol=1e-13, atol=1e-13)
    # the adjoint product's backward is the forward product
    gy = torch.randn(op.blocks, 3, op.n_points, dtype=DT, requires_grad=True)
    v = torch.randn(cols, 3, dtype=DT)
    z = _Product.apply(gy, op, True)
    torch.testing.assert_close(z, dense.t() @ gy.transpose(1, 2).reshape(rows, 3))
    (gg,) = torch.autograd.grad((v * z).sum(), gy)
    torch.testing.assert_close(gg, (dense @ v).view(op.blocks, op.n_points, 3).transpose(1, 2))


def test_point_operator_backward_matches_finite_differences():
    # A quadratic loss: its gradient is not scale-free, so a backward off by a constant
    # factor (e.g. 2x) shows against the central difference.
    op = point_operator(n=6)
    torch.manual_seed(5)
    theta = torch.randn(op.matrix.shape[1], 2, dtype=DT, requires_grad=True)
    w = torch.randn(op.blocks, 2, op.n_points, dtype=DT)

    def loss(t):
        y = _Product.apply(t, op)
        return (w * y).sum() + 0.5 * (y * y).sum()

    (g,) = torch.autograd.grad(loss(theta), theta)
    e = 1e-6
    th = theta.detach()
    for idx in [(0, 0), (5, 1), (11, 0), (th.shape[0] - 1, 1), (th.shape[0] - 2, 0)]:
        d = torch.zeros_like(th)
        d[idx] = e
        fd = (loss(th + d) - loss(th - d)) / (2 * e)
        assert abs(float(g[idx] - fd)) <= 1e-6 * max(1.0, abs(float(fd))), idx


@pytest.mark.parametrize("basis", ["bspline", "rbf", "rswaf", "chebyshev"])
def test_a_nan_input_gives_nan_basis_values_in_every_basis(basis):
    # the B-spline path put a NaN in the outer slot, outside the kept window: a row of zeros,
    # which basis_values, spline() and a grid fit's least squares took as a real sample
    layer = KANLayer(2, 1, grid=4, basis=basis, dtype=torch.float64)
    x = torch.tensor([[0.3, float("nan")], [0.1, -0.2]], dtype=torch.float64)
    values = layer.basis_values(x, order=2)  # (N, n_in, order + 1, nb)
    assert values[0, 1].isnan().all() and values[1].isfinite().all()
    assert values[0, 0].isfinite().all()
    assert layer.spline(x)[0, 1].isnan().all() and layer.spline(x)[1].isfinite().all()
