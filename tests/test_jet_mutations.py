"""Derivative jets (kanpde.nn.jet, the fused one-output layer, the first layer's sparse operator)
and the choice between jets and autograd, checked against mathematics: nested
``torch.autograd.grad`` on the plain forward, central finite differences and closed forms.

Each test names the fact it asserts; several were written to catch a specific wrong variant of
the code that the rest of the suite let pass (see the comments).
"""

from __future__ import annotations

import pytest
import torch
from closed_form import Closed

from kanpde import Dirichlet, Interval, Periodic, Problem, Rectangle, d, laplacian
from kanpde.losses import Residuals
from kanpde.nn import KAN
from kanpde.nn.one_output import one_output_jet
from kanpde.operators import derivatives, hessian
from kanpde.training import build_model

DT = torch.float64


def _kan(width, seed=0, grid=5, k=3, bias=False):
    """A KAN whose spline and silu parts are both of order one (random coefficients)."""
    torch.manual_seed(seed)
    model = KAN(width, grid=grid, k=k, dtype=DT, bias=bias)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_()
            layer.scale_base.uniform_(-1, 1)
            if layer.bias is not None:
                layer.bias.normal_()
    return model


def _points(n, dim, seed=1, lo=-1.1, hi=1.1):
    # a little past the grid range [-1, 1], where the outer spline pieces extend
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, dim, generator=gen, dtype=DT) * (hi - lo) + lo


def _nested(model, x):
    """Value ``(N, m)``, gradient ``(N, m, D)`` and Hessian ``(N, m, D, D)`` of the plain
    forward by nested ``torch.autograd.grad`` (the reference every jet must reproduce)."""
    x = x.detach().clone().requires_grad_(True)
    u = model(x)
    n, dim = x.shape
    grads, hessians = [], []
    for c in range(u.shape[1]):
        (g,) = torch.autograd.grad(u[:, c].sum(), x, create_graph=True)
        rows = [torch.autograd.grad(g[:, a].sum(), x, retain_graph=True)[0] for a in range(dim)]
        grads.append(g.detach())
        hessians.append(torch.stack(rows, dim=1))
    return u.detach(), torch.stack(grads, 1), torch.stack(hessians, 1)


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _all_pairs(dim):
    return [(a, b) for a in range(dim) for b in range(a, dim)]


# ---------------------------------------------------------------------------------------------
# Jets against nested autograd: deeper networks, several outputs, mixed pairs, 2-D and 3-D
# ---------------------------------------------------------------------------------------------

WIDTHS = [[2, 5, 5, 1], [3, 4, 2], [3, 5, 1], [2, 3, 1, 2], [1, 4, 1]]


@pytest.mark.parametrize("width", WIDTHS, ids=[str(w) for w in WIDTHS])
@pytest.mark.parametrize("x_grad", [False, True], ids=["fixed-points", "points-with-grad"])
def test_jet_equals_nested_autograd(width, x_grad):
    """value, ∂u/∂x_a and every ∂²u/∂x_a∂x_b (mixed included) equal nested autograd of the
    forward to 1e-10 in float64, on the sparse-operator path (points without gradient) and on
    the regular first-layer path (points with gradient), with a one-output layer in the middle
    ([2, 3, 1, 2]) as well as last."""
    model = _kan(width, bias=width == [3, 4, 2])
    x = _points(60, width[0])
    if x_grad:
        x.requires_grad_(True)
    pairs = _all_pairs(width[0])
    jet = model.jet(x, 2, pairs)
    u, g, h = _nested(model, x)
    assert _rel(jet.value, u) <= 1e-12
    assert _rel(jet.d1, g) <= 1e-10
    ref = torch.stack([h[:, :, a, b] for a, b in pairs], dim=-1)
    assert _rel(jet.d2, ref) <= 1e-10
    if x_grad:  # the regular path must not take the point-fixed operator
        assert model.layers[0]._point_ops._op is None


EDGE_CASES = [([2, 5, 1], 1), ([3, 2, 1], 1), ([2, 1, 1], 7), ([1, 1, 1], 5), ([2, 1, 3], 6)]


@pytest.mark.parametrize("width,n", EDGE_CASES, ids=[f"{w}-N{n}" for w, n in EDGE_CASES])
def test_jet_and_its_gradients_on_degenerate_shapes(width, n):
    """A single point (the packed first-layer jet is then both feature- and points-major), a
    one-wide hidden layer, a point on the last knot and one far outside the grid: the jet
    equals nested autograd, and the parameter gradients of a loss on it equal those of the
    same loss by nested autograd, on both first-layer paths."""
    model = _kan(width, seed=23)
    x = _points(n, width[0], seed=24)
    x[0, 0] = model.layers[0].grid_points[0, -1]
    if n > 1:
        x[1, 0] = 5.0
    pairs = _all_pairs(width[0])
    u, g, h = _nested(model, x)
    params = list(model.parameters())
    ref = torch.autograd.grad(_nested_loss(model, x, pairs)[0], params)
    for points in (x, x.clone().requires_grad_(True)):
        jet = model.jet(points, 2, pairs)
        assert _rel(jet.value, u) <= 1e-12
        assert _rel(jet.d1, g) <= 1e-10
        assert _rel(jet.d2, torch.stack([h[:, :, a, b] for a, b in pairs], -1)) <= 1e-10
        got = torch.autograd.grad(_jet_loss(model, points, pairs), params)
        for a, b in zip(got, ref):
            assert _rel(a, b) <= 1e-10


@pytest.mark.parametrize("dim", [2, 3])
def test_laplacian_hessian_and_mixed_derivatives_from_a_registered_jet(dim):
    """Inside a derivatives context a registered jet serves Δu, the Hessian and u_xy with no
    autograd call (no misses), each equal to nested autograd (Δu = trace of the Hessian)."""
    model = _kan([dim, 5, 5, 1] if dim == 2 else [dim, 4, 1], seed=3)
    x = _points(40, dim, seed=4).requires_grad_(True)
    u_ref, _, h_ref = _nested(model, x)
    with derivatives() as ctx:
        jet = model.jet(x, 2, _all_pairs(dim))
        ctx.register(jet.value, x, jet)
        lap = laplacian(jet.value, x)
        hess = hessian(jet.value, x)
        uxy = d(jet.value, x, 1, 0)
        assert ctx.misses == []
    trace = h_ref[:, 0].diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
    assert _rel(lap, trace) <= 1e-10
    assert _rel(hess, h_ref[:, 0]) <= 1e-10
    assert _rel(uxy, h_ref[:, :, 0, 1]) <= 1e-10


def test_several_outputs_laplacian_per_component_3d():
    """Δ of each of two outputs in 3-D from the jet equals the trace of nested autograd's
    Hessian of that output."""
    model = _kan([3, 4, 2], seed=5, bias=True)
    x = _points(30, 3, seed=6).requires_grad_(True)
    _, _, h_ref = _nested(model, x)
    with derivatives() as ctx:
        jet = model.jet(x, 2, [(0, 0), (1, 1), (2, 2)])
        ctx.register(jet.value, x, jet)
        lap = laplacian(jet.value, x)
        assert ctx.misses == []
    assert _rel(lap, h_ref.diagonal(dim1=-2, dim2=-1).sum(-1)) <= 1e-10


# ---------------------------------------------------------------------------------------------
# Finite differences and a closed form
# ---------------------------------------------------------------------------------------------


def test_jet_derivatives_match_central_finite_differences():
    """(u(x + h e_a) - u(x - h e_a)) / 2h ≈ ∂_a u, and the same difference of the jet's first
    derivatives ≈ ∂_a∂_b u, mixed u_xy included (a model-independent check of the symmetry the
    jet assumes: ∂_y(u_x) and ∂_x(u_y) must both match its single (0, 1) entry). Cubic splines
    are C², so the differences err by O(h²) away from knots and O(h) at worst across one;
    with h = 1e-6 the measured error is ~1e-9 (rounding ~1e-10), so 1e-7 relative keeps a
    margin and is far below the error of a dropped or doubled term (order one)."""
    model = _kan([2, 5, 5, 1], seed=7)
    x = _points(50, 2, seed=8, lo=-0.9, hi=0.9)
    pairs = [(0, 0), (0, 1), (1, 1)]
    jet = model.jet(x, 2, pairs)
    step = 1e-6
    for a in range(2):
        e = torch.zeros(2, dtype=DT)
        e[a] = step
        plus, minus = model.jet(x + e, 1), model.jet(x - e, 1)
        du = (plus.value - minus.value) / (2 * step)
        assert _rel(jet.d1[:, :, a], du) <= 1e-7
        dd1 = (plus.d1 - minus.d1) / (2 * step)  # (N, 1, 2): ∂_a of (u_x, u_y)
        for b in range(2):
            p = pairs.index((min(a, b), max(a, b)))
            assert _rel(jet.d2[:, :, p], dd1[:, :, b]) <= 1e-7


def _silu_derivs(t):
    s = torch.sigmoid(t)
    return t * s, s * (1 + t * (1 - s)), s * (1 - s) * (2 + t * (1 - 2 * s))


@pytest.mark.parametrize("width", [[2, 3, 1], [3, 4, 2]])
def test_pure_silu_network_jet_equals_closed_form(width):
    """With all spline coefficients zero a two-layer KAN is u_c = Σ_j B_cj silu(h_j),
    h_j = Σ_i A_ji silu(x_i), so (chain rule, silu' = s(1 + x(1 - s)),
    silu'' = s(1 - s)(2 + x(1 - 2s))):
    ∂_a u_c = Σ_j B_cj silu'(h_j) A_ja silu'(x_a),
    ∂_a∂_b u_c = Σ_j B_cj [silu''(h_j) A_ja A_jb silu'(x_a) silu'(x_b)
                          + δ_ab silu'(h_j) A_ja silu''(x_a)]."""
    model = _kan(width, seed=9)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.zero_()
    a_w, b_w = model.layers[0].scale_base.detach(), model.layers[1].scale_base.detach()
    dim = width[0]
    x = _points(25, dim, seed=10)
    f0, f1, f2 = _silu_derivs(x)  # (N, D)
    h = f0 @ a_w.t()  # (N, n_hidden)
    g0, g1, g2 = _silu_derivs(h)
    value = g0 @ b_w.t()
    ja = a_w.unsqueeze(0) * f1.unsqueeze(1)  # (N, j, a): ∂h_j/∂x_a
    d1 = torch.einsum("cj,nj,nja->nca", b_w, g1, ja)
    hess = torch.einsum("cj,nj,nja,njb->ncab", b_w, g2, ja, ja)
    hess = hess + torch.diag_embed(torch.einsum("cj,nj,ja,na->nca", b_w, g1, a_w, f2))
    pairs = _all_pairs(dim)
    for points in (x, x.clone().requires_grad_(True)):
        jet = model.jet(points, 2, pairs)
        assert _rel(jet.value, value) <= 1e-13
        assert _rel(jet.d1, d1) <= 1e-13
        assert _rel(jet.d2, torch.stack([hess[:, :, i, j] for i, j in pairs], -1)) <= 1e-13


# ---------------------------------------------------------------------------------------------
# Gradients of jet-built losses (the fused one-output Function's backward)
# ---------------------------------------------------------------------------------------------


def _nested_loss(model, x, pairs):
    """Σ u² + Σ |∇u_c|² + Σ_pairs (∂_ab u_c)² over the outputs c by nested autograd (graph
    kept for a backward)."""
    x = x.detach().clone().requires_grad_(True)
    u = model(x)
    loss = (u * u).sum()
    for c in range(u.shape[1]):
        (g,) = torch.autograd.grad(u[:, c].sum(), x, create_graph=True)
        loss = loss + (g * g).sum()
        for a, b in pairs:
            (gg,) = torch.autograd.grad(g[:, a].sum(), x, create_graph=True)
            loss = loss + (gg[:, b] ** 2).sum()
    return loss, x


def _jet_loss(model, x, pairs):
    jet = model.jet(x, 2, pairs)
    return (jet.value**2).sum() + (jet.d1**2).sum() + (jet.d2**2).sum()


@pytest.mark.parametrize(
    "width,pairs", [([1, 4, 1], [(0, 0)]), ([2, 5, 1], [(1, 1)]), ([2, 4, 3, 1], [(0, 0)])]
)
def test_parameter_gradients_of_a_single_pair_loss_equal_nested_autograd(width, pairs):
    """With a single second-derivative pair (u_xx in 1-D, u_yy alone in 2-D) the parameter
    gradients of a loss on the jet equal those of the same loss by nested autograd. (The
    one-output backward once could drop the term ḡ_ab·∂_ab h of G_1 whenever only one pair was
    asked for: every earlier test used two or more pairs.)"""
    model = _kan(width, seed=11)
    x = _points(40, width[0], seed=12)
    params = list(model.parameters())
    ref_loss, _ = _nested_loss(model, x, pairs)
    ref = torch.autograd.grad(ref_loss, params)
    for points in (x, x.clone().requires_grad_(True)):
        got = torch.autograd.grad(_jet_loss(model, points, pairs), params)
        for a, b in zip(got, ref):
            assert _rel(a, b) <= 1e-10


@pytest.mark.parametrize("frozen", ["spline", "silu"])
def test_gradients_with_part_of_the_last_layer_frozen(frozen):
    """Freezing the spline part (coef, scale_spline) of the one-output layer leaves the silu
    weights' gradient exact, and freezing the silu weights leaves the spline coefficients'
    gradient exact (each compared to nested autograd): the backward must decide what to
    compute from each input's own requires_grad, not from another's."""
    model = _kan([2, 4, 1], seed=13)
    last = model.layers[-1]
    names = ["coef", "scale_spline"] if frozen == "spline" else ["scale_base"]
    for name in names:
        getattr(last, name).requires_grad_(False)
    live = [p for p in model.parameters() if p.requires_grad]
    x = _points(30, 2, seed=14)
    pairs = [(0, 0), (0, 1), (1, 1)]
    ref = torch.autograd.grad(_nested_loss(model, x, pairs)[0], live)
    got = torch.autograd.grad(_jet_loss(model, x, pairs), live)
    for a, b in zip(got, ref):
        assert _rel(a, b) <= 1e-10
    watched = last.scale_base if frozen == "spline" else last.coef
    assert any(p is watched for p in live)


@pytest.mark.parametrize("width", [[1, 4, 1], [2, 5, 5, 1]])
def test_third_derivative_through_the_jet_equals_nested_autograd(width):
    """∂_x of the jet's u_xx (autograd through the fused Function, differentiating its
    recomputation) equals u_xxx by three nested autograd calls; and the gradient wrt the
    points of a loss on the jet equals nested autograd's."""
    model = _kan(width, seed=15)
    x = _points(30, width[0], seed=16).requires_grad_(True)
    jet = model.jet(x, 2, [(0, 0)])
    (uxxx,) = torch.autograd.grad(jet.d2[:, 0, 0].sum(), x)
    xr = x.detach().clone().requires_grad_(True)
    f = model(xr)[:, 0]
    for _ in range(3):
        (gr,) = torch.autograd.grad(f.sum(), xr, create_graph=True)
        f = gr[:, 0]
    assert _rel(uxxx[:, 0], f) <= 1e-9
    pairs = [(0, 0)]
    ref_loss, xr = _nested_loss(model, x, pairs)
    (ref,) = torch.autograd.grad(ref_loss, xr)
    (got,) = torch.autograd.grad(_jet_loss(model, x, pairs), x)
    assert _rel(got, ref) <= 1e-10


def test_packed_jet_at_order_one_ignores_pairs():
    """At order 1 the one-output Function takes ``(1 + D, n_in, N)`` packed jets whatever the
    ``pairs`` argument (used at order 2 only), as it does for unpacked ones: ∂_d y =
    Σ_i ψ_i'(h_i) ∂_d h_i with ψ_i' from autograd of the layer's forward (y = Σ_i ψ_i(h_i) is
    separable, so ∂y/∂h_i = ψ_i'(h_i))."""
    model = _kan([3, 4, 1], seed=17)
    layer = model.layers[-1]
    gen = torch.Generator().manual_seed(18)
    h = torch.rand(4, 20, generator=gen, dtype=DT) * 2 - 1
    j1 = torch.randn(3, 4, 20, generator=gen, dtype=DT)
    hr = h.t().clone().requires_grad_(True)
    (psi1,) = torch.autograd.grad(layer(hr).sum(), hr)  # (N, n_in)
    ref = torch.einsum("ni,din->dn", psi1, j1).unsqueeze(1)
    aux = layer._aux
    flat = layer.basis.slots(h, layer.grid_points, aux)
    table = layer.basis.table(layer.coef, layer.scale_spline, layer.k, aux)
    packed = torch.cat([h[None], j1])
    for pairs in ((), ((0, 0), (1, 2))):
        for jet in (packed, (h, j1, None)):
            value, d1, d2 = one_output_jet(
                jet, table, layer.scale_base, aux["left"], flat, pairs, 1
            )
            assert d2 is None and d1.shape == (3, 1, 20)
            assert _rel(d1, ref) <= 1e-12


# ---------------------------------------------------------------------------------------------
# The first layer's operator cache
# ---------------------------------------------------------------------------------------------


def test_operator_cache_tells_apart_fresh_point_sets_of_one_shape():
    """Two distinct point tensors of the same shape, dtype and version (both fresh, both
    alive) get each their own operator: the second jet equals nested autograd at the second
    points, not the first points' derivatives. (A cache keyed on shape and version alone
    served the stale operator: x.clone() in the earlier test differed in version too.)"""
    model = _kan([2, 5, 1], seed=19)
    first, second = _points(30, 2, seed=20), _points(30, 2, seed=21)
    assert first._version == second._version
    pairs = [(0, 0), (0, 1), (1, 1)]
    for x in (first, second, first):
        jet = model.jet(x, 2, pairs)
        u, g, h = _nested(model, x)
        assert _rel(jet.value, u) <= 1e-12
        assert _rel(jet.d1, g) <= 1e-10
        assert _rel(jet.d2, torch.stack([h[:, :, a, b] for a, b in pairs], -1)) <= 1e-10


# ---------------------------------------------------------------------------------------------
# The residuals' choice between the shared jet evaluation and autograd
# ---------------------------------------------------------------------------------------------


def _same_terms(problem, width, points):
    torch.manual_seed(0)
    model = build_model(problem, {"width": width, "grid": 4}, DT, "cpu")
    res = Residuals(problem, model, points, {}, DT, "cpu")
    plain = Residuals(problem, Closed(model), points, {}, DT, "cpu")
    got, ref = res.terms_of(), plain.terms_of()
    assert list(got) == list(ref)
    for name in ref:
        assert float(got[name].detach()) == pytest.approx(
            float(ref[name].detach()), rel=1e-12, abs=1e-300
        ), name
    return res


def test_a_third_derivative_residual_is_not_served_by_the_jet_alone():
    """u_xxx is beyond the jet's second order: the PDE term must stay out of the shared jet
    evaluation (whose points carry no gradient) and still equal plain autograd's residual."""
    prob = Problem(
        name="third",
        domain=Interval(0, 1),
        pde=lambda x, u: d(u, x, "x", "x", "x") + u - 1.0,
        conditions=[Dirichlet(0.0)],
    )
    res = _same_terms(prob, [1, 4, 1], {"interior": 24, "boundary": 2, "method": "sobol"})
    assert not res.pde.fused and res.pde.highest == 3


def test_shared_jet_carries_every_fused_terms_pairs():
    """A condition needing a second-derivative pair the PDE does not (u_xx of a periodic
    condition, with a PDE in u_yy only) gets it from the shared jet: the jet's pairs are the
    union over all fused terms, and each term equals plain autograd's."""
    prob = Problem(
        name="periodic2",
        domain=Rectangle([0, 0], [1, 1]),
        pde=lambda x, u: d(u, x, "y", "y") - 1.0,
        conditions=[Periodic("x", derivatives=2), Dirichlet(0.0, on=["ymin", "ymax"])],
    )
    res = _same_terms(prob, [2, 4, 1], {"interior": 24, "boundary": 16, "method": "sobol"})
    assert res.fully_fused and res._pairs == ((0, 0), (1, 1))


def test_field_registers_first_derivatives_from_the_jet():
    """``Residuals.field(x, 1, ...)`` returns the model's values and registers their first
    derivatives from the jet: d(u, x, a) is then served without an autograd call (no miss)
    and equals nested autograd."""
    prob = Problem(
        name="flux",
        domain=Rectangle([0, 0], [1, 1]),
        pde=lambda x, u: d(u * u, x, "x") + d(u, x, "y") - 1.0,
        conditions=[Dirichlet(0.0)],
    )
    torch.manual_seed(0)
    model = build_model(prob, {"width": [2, 4, 1], "grid": 4}, DT, "cpu")
    points = {"interior": 24, "boundary": 16, "method": "sobol"}
    res = Residuals(prob, model, points, {}, DT, "cpu")
    assert not res.pde.fused and res.pde.order == 1  # d(u * u) needs autograd
    x = _points(20, 2, seed=22, lo=0.0, hi=1.0).requires_grad_(True)
    u_ref, g_ref, _ = _nested(model, x)
    with derivatives() as ctx:
        u = res.field(x, 1, (), ctx)
        ux, uy = d(u, x, 0), d(u, x, 1)
        assert ctx.misses == []
    assert _rel(u, u_ref) <= 1e-12
    assert _rel(torch.cat([ux, uy], 1), g_ref[:, 0]) <= 1e-10
    # and the residual built on it equals plain autograd's
    _same_terms(prob, [2, 4, 1], points)
