"""Tests that pin behaviour of :mod:`kanpde.nn.kan` and the B-spline basis left open elsewhere.

Each test was written against a code mutation that the rest of the suite let pass. The
references are mathematical: closed forms of ``silu`` and its derivatives where every B-spline
vanishes, SciPy's B-splines for one-sided derivatives at knots, exact nesting of spline spaces,
symmetry of sample quantiles and the documented constructor/config contracts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline as SciBSpline
from scipy.special import expit

from kanpde.nn import KAN, KANLayer, from_config

DT = torch.float64


def silu_derivs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``silu(x) = x σ(x)`` and its first two derivatives, in closed form:
    ``silu' = σ + x σ (1 - σ)``, ``silu'' = σ (1 - σ) (2 + x (1 - 2σ))``."""
    s = expit(x)
    return x * s, s + x * s * (1 - s), s * (1 - s) * (2 + x * (1 - 2 * s))


def randomise(model: KAN, seed: int = 0) -> KAN:
    """O(1) random parameters (and biases), so that every term of an edge matters."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(0.0, 0.5)
            layer.scale_base.uniform_(-0.8, 0.8)
            layer.scale_spline.uniform_(0.5, 1.0)
            if layer.bias is not None:
                layer.bias.uniform_(-0.5, 0.5)
    return model


# ---------------------------------------------------------------------------------------------
# 1. Beyond all knots every B-spline vanishes: an edge is exactly w_b · silu(x)
# ---------------------------------------------------------------------------------------------


def test_single_layer_beyond_all_knots_is_the_silu_part_only():
    """Left of ``t_0`` and right of ``t_{G+2k}`` no B-spline is supported, so
    ``y_o = Σ_i w_b[o, i] silu(x_i) + b_o`` and its jet follows from ``silu'``, ``silu''``.

    The spline part must be exactly zero there, not an extrapolated end polynomial (a slot
    clamped onto the first or last knot interval gives values of order 1 at 0.5 past the ends).
    """
    model = randomise(KAN([2, 3], grid=4, k=3, bias=True, dtype=DT))
    layer = model.layers[0]
    t = layer.grid_points  # uniform knots: the forward pass locates points by arithmetic
    lo, hi = t[:, 0], t[:, -1]
    offs = torch.tensor([1e-3, 0.1, 0.5, 3.0], dtype=DT)
    left = lo - offs[:, None]
    right = hi + offs[:, None]
    x = torch.cat([left, right, torch.stack([left[:, 0], right[:, 1]], 1)])  # (12, 2)
    assert bool(((x < t[:, 0]) | (x > t[:, -1])).all())
    xn = x.numpy()
    s0, s1, s2 = silu_derivs(xn)
    wb = layer.scale_base.detach().numpy()  # (n_out, n_in)
    bias = layer.bias.detach().numpy()
    ref = s0 @ wb.T + bias
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ref, rtol=1e-14, atol=1e-14)
        edges = layer.edges(x, order=2)  # (N, n_in, n_out) each
    for q, sq in enumerate((s0, s1, s2)):
        np.testing.assert_allclose(
            edges[q].numpy(), sq[:, :, None] * wb.T[None], rtol=1e-14, atol=1e-14
        )
    pairs = [(0, 0), (0, 1), (1, 1)]
    jet = model.jet(x, 2, pairs)  # first layer: the sparse fixed-point operator on the CPU
    np.testing.assert_allclose(jet.value.detach().numpy(), ref, rtol=1e-14, atol=1e-14)
    d1 = s1[:, None, :] * wb[None]  # ∂y_o/∂x_a = w_b[o, a] silu'(x_a)
    np.testing.assert_allclose(jet.d1.detach().numpy(), d1, rtol=1e-14, atol=1e-14)
    d2 = np.zeros((x.shape[0], 3, 3))
    d2[:, :, 0] = s2[:, None, 0] * wb[None, :, 0]  # mixed derivatives of a sum of
    d2[:, :, 2] = s2[:, None, 1] * wb[None, :, 1]  # univariate edges vanish
    np.testing.assert_allclose(jet.d2.detach().numpy(), d2, rtol=1e-14, atol=1e-14)


def test_two_layer_jet_beyond_all_knots_matches_the_chain_rule():
    """Inputs and hidden values all beyond their layers' knots: ``u = Σ_j v_j silu(h_j) + c``
    with ``h_j = Σ_i w_{ji} silu(x_i) + b_j``; value, gradient and Hessian by the chain rule.

    The output layer has one output, so its jet goes through the one-output Function; hidden
    nodes of both signs put hidden values beyond both ends of the hidden knots.
    """
    model = KAN([2, 3, 1], grid=5, k=3, bias=True, dtype=DT)
    randomise(model, seed=3)
    first, second = model.layers
    with torch.no_grad():
        first.scale_base.copy_(torch.tensor([[9.0, 7.0], [-8.0, -6.5], [3.0, 3.0]], dtype=DT))
    torch.manual_seed(5)
    right = 3.0 + torch.rand(20, 2, dtype=DT)  # silu(x) ≈ x: hidden values far out
    left = -4.5 - torch.rand(20, 2, dtype=DT)  # silu(x) ≈ -0.05
    x = torch.cat(
        [
            right,
            torch.stack([left[:, 0], right[:, 1]], 1),
            torch.stack([right[:, 0], left[:, 1]], 1),
        ]
    )
    t0, t1 = first.grid_points, second.grid_points
    assert bool(((x < t0[:, 0]) | (x > t0[:, -1])).all())
    xn = x.numpy()
    w, b = first.scale_base.detach().numpy(), first.bias.detach().numpy()
    v, c = second.scale_base.detach().numpy()[0], second.bias.detach().numpy()
    s0, s1, s2 = silu_derivs(xn)
    h = s0 @ w.T + b  # (N, 3)
    below, above = h < t1[:, 0].numpy(), h > t1[:, -1].numpy()
    assert bool((below | above).all()) and below.any() and above.any()
    g0, g1, g2 = silu_derivs(h)
    u = g0 @ v + c
    dh = w[None] * s1[:, None, :]  # (N, j, a): ∂h_j/∂x_a
    d1 = np.einsum("j,nj,nja->na", v, g1, dh)
    pairs = [(0, 0), (0, 1), (1, 1)]
    d2 = np.zeros((x.shape[0], 3))
    for p, (a, bb) in enumerate(pairs):
        d2[:, p] = np.einsum("j,nj,nj,nj->n", v, g2, dh[:, :, a], dh[:, :, bb])
        if a == bb:
            d2[:, p] += np.einsum("j,nj,j,n->n", v, g1, w[:, a], s2[:, a])
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy()[:, 0], u, rtol=1e-13, atol=1e-13)
    jet = model.jet(x, 2, pairs)
    np.testing.assert_allclose(jet.value.detach().numpy()[:, 0], u, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jet.d1.detach().numpy()[:, 0], d1, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(jet.d2.detach().numpy()[:, 0], d2, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# 2. At a knot, derivatives that jump there are the right-hand ones
# ---------------------------------------------------------------------------------------------


def adapted_layer(k: int, G: int = 5) -> KANLayer:
    """One input on [-1, 1] with strongly non-uniform knots (knots at skewed sample quantiles):
    the layer then locates points by binary search, not arithmetic."""
    torch.manual_seed(11)
    layer = KANLayer(1, 2, grid=G, k=k, dtype=DT)
    u = torch.rand(400, dtype=DT)
    xs = torch.cat([-1 + 2 * u**3, torch.tensor([-1.0, 1.0], dtype=DT)]).unsqueeze(1)
    layer.update_grid(xs)
    hk = torch.diff(layer.grid_points[0])
    assert float(hk.max() / hk.min()) > 2
    with torch.no_grad():
        layer.coef.normal_(0.0, 1.0)
        layer.scale_spline.uniform_(0.5, 1.0)
    return layer


def right_of(t: np.ndarray, k: int, x: np.ndarray, nu: int) -> np.ndarray:
    """``(len(x), nb)``: SciPy's ``nu``-th derivative of every B-spline of the knots ``t``, each
    on its own support, just right of ``x`` (``x + 1e-9 h_min``)."""
    x = x + 1e-9 * np.diff(t).min()
    nb = len(t) - k - 1
    out = np.zeros((len(x), nb))
    for b in range(nb):
        el = SciBSpline.basis_element(t[b : b + k + 2], extrapolate=False).derivative(nu)
        out[:, b] = np.nan_to_num(el(x), nan=0.0)
    return out


@pytest.mark.parametrize("uniform", [True, False], ids=["uniform", "adapted"])
@pytest.mark.parametrize("k", [1, 2])
def test_basis_derivative_of_order_k_at_a_knot_is_the_right_hand_limit(k, uniform):
    """``B^(k)`` is piecewise constant and jumps at knots; at a knot ``t_j`` the basis
    derivatives are those of the interval ``[t_j, t_{j+1})``: the value of SciPy's B-spline
    derivative just right of the knot (``t_j + 1e-9 h``, still on the same constant piece)."""
    if uniform:
        layer = KANLayer(1, 1, grid=5, k=k, dtype=DT)
    else:
        layer = adapted_layer(k)
    t = layer.grid_points[0].numpy()
    knots = t[1:-1]  # the last knot is the end of every support: nothing to its right
    got = layer.basis_values(torch.tensor(knots, dtype=DT).unsqueeze(1), order=k)[:, 0, k]
    ref = right_of(t, k, knots, k)
    # |B^(k)| ~ 1/h^k; the values are exact up to rounding.
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_edge_first_derivative_at_knots_is_right_hand_on_adapted_knots():
    """Piecewise-linear edges (k = 1) on non-uniform knots: ``φ'(t_j) = w_b silu'(t_j) +
    w_s Σ c_b B_b'(t_j⁺)``, the slope of the piece to the right of the knot."""
    layer = adapted_layer(1)
    t = layer.grid_points[0].numpy()
    knots = t[1:-1]
    x = torch.tensor(knots, dtype=DT).unsqueeze(1)
    with torch.no_grad():
        got = layer.edges(x, order=1)[1][:, 0, :].numpy()  # (N, n_out)
    _, s1, _ = silu_derivs(knots)
    coef = layer.coef.detach().numpy()[:, 0]  # (n_out, nb)
    wb, ws = layer.scale_base.detach().numpy()[:, 0], layer.scale_spline.detach().numpy()[:, 0]
    db = right_of(t, 1, knots, 1)
    for o in range(2):
        ref = wb[o] * s1 + ws[o] * (db @ coef[o])
        np.testing.assert_allclose(got[:, o], ref, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# 3. Grid extension and grid update
# ---------------------------------------------------------------------------------------------


def test_extend_grid_from_few_samples_is_exact_on_the_whole_range():
    """Refining G → 2G nests the old spline space in the new one, so the refit is exact on
    the whole grid range even from 3 samples (fewer than the G + k coefficients): the fit
    must be pinned down between the samples, not be a minimum-norm solution through them."""
    torch.manual_seed(2)
    layer = KANLayer(1, 2, grid=4, k=3, dtype=DT)
    with torch.no_grad():
        layer.coef.normal_(0.0, 1.0)
    x = torch.tensor([[-0.7], [0.1], [0.6]], dtype=DT)
    dense = torch.linspace(-1, 1, 401, dtype=DT).unsqueeze(1)
    with torch.no_grad():
        y0 = layer(dense)
    layer.extend_grid(8, x)
    assert layer.grid == 8
    with torch.no_grad():
        err = float((layer(dense) - y0).abs().max() / y0.abs().max())
    assert err <= 1e-10, err


def test_update_grid_margin_widens_the_range_on_both_sides():
    """``margin`` extends the samples' range outwards: ``[min - m, max + m]``; with
    ``grid_eps = 1`` the knots are uniform on it."""
    G, k, m = 6, 3, 0.15
    layer = KANLayer(2, 1, grid=G, k=k, dtype=DT)
    torch.manual_seed(4)
    x = torch.rand(200, 2, dtype=DT) * torch.tensor([1.4, 2.0], dtype=DT) - 0.8
    lo, hi = x.min(0).values, x.max(0).values
    layer.update_grid(x, grid_eps=1.0, margin=m)
    want = torch.stack([lo - m, hi + m], 1)
    torch.testing.assert_close(layer.grid_range, want, rtol=0, atol=1e-14)
    step = (hi - lo + 2 * m) / G
    uniform = (lo - m)[:, None] + step[:, None] * torch.arange(-k, G + k + 1, dtype=DT)
    torch.testing.assert_close(layer.grid_points, uniform, rtol=0, atol=1e-14)


def test_update_grid_quantile_knots_commute_with_reflection():
    """Sample quantiles are reflection-equivariant: the knots fitted to ``-x`` are the knots
    fitted to ``x``, negated and in reverse order (``grid_eps = 0``: pure quantiles; 100
    distinct values and G = 7, so no quantile index falls half-way between two samples)."""
    G, k = 7, 3
    torch.manual_seed(8)
    x = (torch.rand(100, 1, dtype=DT) ** 2) * 2 - 1  # skewed, distinct
    a, b = KANLayer(1, 1, grid=G, k=k, dtype=DT), KANLayer(1, 1, grid=G, k=k, dtype=DT)
    a.update_grid(x, grid_eps=0.0)
    b.update_grid(-x, grid_eps=0.0)
    ta, tb = a.grid_points[0, k : G + k + 1], b.grid_points[0, k : G + k + 1]
    assert float(ta.diff().max() / ta.diff().min()) > 2  # really quantiles, not uniform
    torch.testing.assert_close(tb, -ta.flip(0), rtol=0, atol=1e-15)
    # Each knot is a sample value (an order statistic), and the ends are the min and max.
    assert all(bool((x[:, 0] == v).any()) for v in ta)
    assert float(ta[0]) == float(x.min()) and float(ta[-1]) == float(x.max())


def test_constant_hidden_node_gets_uniform_knots_on_its_current_range():
    """A hidden node with no incoming edges is constant; ``update_grid`` gives it ``G``
    uniform intervals over the range it had (here the hidden range [-2, 3])."""
    G, k = 5, 3
    torch.manual_seed(16)
    model = KAN([2, 3, 1], grid=G, k=k, grid_range=(-2.0, 3.0), dtype=DT)
    x = torch.rand(200, 2, dtype=DT) * 2 - 1
    model.layers[0].set_edges([["spline", "spline"], ["", ""], ["spline", "spline"]])
    model.update_grid(x)
    t = model.layers[1].grid_points[1]
    want = -2.0 + 1.0 * torch.arange(-k, G + k + 1, dtype=DT)  # spacing 5 / G = 1
    torch.testing.assert_close(t, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("factor", [2, 3])
def test_extend_grid_splits_adapted_intervals_into_equal_parts(factor):
    """Refining non-uniform knots to ``factor · G`` intervals splits each old interval into
    ``factor`` equal parts: the new knots are ``t_j + (r / factor)(t_{j+1} - t_j)``."""
    G, k = 5, 3
    layer = adapted_layer(k, G)
    old = layer.grid_points[0, k : G + k + 1].clone()
    torch.manual_seed(1)
    x = torch.rand(300, 1, dtype=DT) * 2 - 1
    layer.extend_grid(factor * G, x)
    new = layer.grid_points[0, k : factor * G + k + 1]
    r = torch.arange(factor, dtype=DT) / factor
    want = torch.cat([(old[:-1, None] + old.diff()[:, None] * r).flatten(), old[-1:]])
    torch.testing.assert_close(new, want, rtol=0, atol=1e-15)


def test_extend_grid_widens_an_adapted_grid_to_a_sample_just_past_one_end():
    """Samples past the range widen it, however little (here 5e-4), and on one side only; an
    adapted grid is not split over its old range then, which would leave the sample out."""
    G, k = 5, 3
    layer = adapted_layer(k, G)
    lo, hi = (float(v) for v in layer.grid_range[0])
    torch.manual_seed(1)
    x = torch.cat(
        [lo + (hi - lo) * torch.rand(300, 1, dtype=DT), torch.tensor([[hi + 5e-4]], dtype=DT)]
    )
    layer.extend_grid(2 * G, x)
    assert float(layer.grid_range[0, 0]) == pytest.approx(lo, abs=1e-14)  # (rounding of
    assert float(layer.grid_range[0, 1]) == pytest.approx(float(x.max()), abs=1e-14)  # lo + Δ)


# ---------------------------------------------------------------------------------------------
# 4. Configs round-trip the constructor arguments; re-enabled edges start as documented
# ---------------------------------------------------------------------------------------------


def test_network_config_round_trips_non_default_arguments():
    """``from_config(model.config())`` is the constructor call again: same attributes, and with
    the same seed the same initial parameters (``init_scale`` scales the coefficients)."""
    kw = dict(grid=4, k=2, basis="rbf", grid_eps=0.3, init_scale=0.7, bias=True)
    torch.manual_seed(21)
    model = KAN([2, 3, 1], dtype=DT, **kw)
    cfg = model.config()
    torch.manual_seed(21)
    clone = from_config(cfg, dtype=DT)
    assert clone.config() == cfg
    assert clone.init_scale == 0.7
    for a, b in zip(model.layers, clone.layers, strict=True):
        assert a.grid_eps == b.grid_eps == 0.3 and a.k == b.k == 2 and b.grid == 4
        assert a.basis.name == b.basis.name == "rbf" and b.bias is not None
    for p, q in zip(model.state_dict().values(), clone.state_dict().values(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("basis", ["bspline", "rbf", "chebyshev"])
def test_layer_config_round_trips_its_arguments(basis):
    layer = KANLayer(3, 2, grid=6, k=2, basis=basis, grid_eps=0.4, bias=True, dtype=DT)
    cfg = layer.config()
    again = KANLayer(**cfg, dtype=DT)
    assert again.config() == cfg
    assert again.basis.name == basis and again.grid_eps == 0.4 and again.bias is not None
    assert again.grid == 6 and again.k == 2


def test_a_re_enabled_spline_edge_starts_as_the_zero_function_with_the_init_scale():
    """An edge turned back into a spline edge is the zero function, with the constructor's
    spline scale ``1/√n_in`` (so that it can learn: the coefficient gradient is non-zero)."""
    torch.manual_seed(6)
    layer = KANLayer(3, 2, grid=4, k=3, dtype=DT)
    kinds = [["spline"] * 3, ["spline"] * 3]
    kinds[0][1] = ""
    layer.set_edges(kinds)
    layer.set_edges([["spline"] * 3, ["spline"] * 3])
    assert float(layer.scale_spline.detach()[0, 1]) == pytest.approx(1 / math.sqrt(3), abs=1e-15)
    assert float(layer.scale_base.detach()[0, 1]) == 0.0
    x = torch.rand(50, 3, dtype=DT) * 2 - 1
    assert bool((layer.edges(x)[0][:, 1, 0] == 0).all())
    layer(x)[:, 0].sum().backward()
    assert float(layer.coef.grad[0, 1].abs().max()) > 0
