"""Mutation-testing additions for :mod:`kanpde.conditions`.

Each test pins behaviour that a plausible bug in ``conditions.py`` changed without the rest of
the suite noticing. Fields are given in closed form (``Closed``: every derivative by autograd),
and the expected residuals are worked out by hand on each face (and, for derivatives, also by
central finite differences of the same closed form), never copied from the code's output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from closed_form import Closed

from kanpde import (
    Dirichlet,
    Initial,
    Interval,
    Neumann,
    Periodic,
    PointData,
    Problem,
    ProblemError,
    Rectangle,
    Robin,
    Time,
    laplacian,
)
from kanpde.losses import Residuals

DT = torch.float64
POINTS = {"interior": 16, "boundary": 48, "initial": 24, "method": "sobol"}
SQUARE = Rectangle([0, 0], [1, 1])


def pde(x, u):
    return laplacian(u, x) + u


def build(domain, conditions, f, outputs=("u",), points=None, dtype=DT):
    problem = Problem(name="m", domain=domain, pde=pde, conditions=conditions, outputs=outputs)
    return Residuals(problem, Closed(f), points or POINTS, {}, dtype, "cpu")


def term(res: Residuals, name: str):
    return next(t for t in res.terms if t.name == name)


def residual(res: Residuals, name: str) -> torch.Tensor:
    """The raw residual of condition ``name``, evaluated with the engine's context."""
    t = term(res, name)
    with res.context() as ctx:
        x = t.points.x.detach().requires_grad_(True)
        r = t.condition.residual(x, res.model(x), t.points, t.cols, ctx)
    return r.detach()


def system(x):
    """u = x² + y, v = x·y on the unit square."""
    X, Y = x[:, 0:1], x[:, 1:2]
    return torch.cat([X**2 + Y, X * Y], dim=1)


def fd_normal_derivative(f, x, n, h=1e-5):
    """Central difference of ``f`` along the unit normal ``n``: ∂f/∂n + O(h²)."""
    return (f(x + h * n) - f(x - h * n)) / (2 * h)


# -- component selection of the derivative conditions ------------------------------------------


# Mutation caught: the normal derivative returning the first len(cols) columns instead of the
# selected ones (Neumann(component="v") constrained ∂u/∂n).
def test_neumann_constrains_the_normal_derivative_of_the_selected_component():
    # right (x = 1, n = +x): ∂u/∂n = 2x = 2, ∂v/∂n = y; top (y = 1, n = +y): ∂u/∂n = 1,
    # ∂v/∂n = x. With value 0 the residual is the normal derivative itself.
    conds = [
        Neumann(0.0, component="v", on="right", name="v_right"),
        Neumann(0.0, component=["v", "u"], on="top", name="vu_top"),
    ]
    res = build(SQUARE, conds, system, ("u", "v"))
    y = term(res, "v_right").points.x[:, 1:2]
    assert torch.allclose(residual(res, "v_right"), y, rtol=0, atol=1e-12)
    t = term(res, "vu_top")
    x = t.points.x[:, 0:1]
    want = torch.cat([x, torch.ones_like(x)], dim=1)
    assert torch.allclose(residual(res, "vu_top"), want, rtol=0, atol=1e-12)
    # the same by finite differences of the closed form along the sampled normals
    fd = fd_normal_derivative(system, t.points.x, t.points.normals)[:, [1, 0]]
    assert torch.allclose(residual(res, "vu_top"), fd, rtol=0, atol=1e-8)


# Mutation caught: Robin's alpha·u term using the first len(cols) columns of u instead of the
# selected ones.
def test_robin_on_a_selected_component():
    # 2·w + 3·∂w/∂n: top (y = 1): v = x, ∂v/∂n = x → 5x; right (x = 1): (v, u) = (y, 1 + y),
    # (∂v/∂n, ∂u/∂n) = (y, 2) → (5y, 2(1 + y) + 6).
    conds = [
        Robin(2.0, 3.0, 0.0, component="v", on="top", name="v_top"),
        Robin(2.0, 3.0, 0.0, component=["v", "u"], on="right", name="vu_right"),
    ]
    res = build(SQUARE, conds, system, ("u", "v"))
    x = term(res, "v_top").points.x[:, 0:1]
    assert torch.allclose(residual(res, "v_top"), 5 * x, rtol=0, atol=1e-12)
    y = term(res, "vu_right").points.x[:, 1:2]
    want = torch.cat([5 * y, 2 * (1 + y) + 6], dim=1)
    assert torch.allclose(residual(res, "vu_right"), want, rtol=0, atol=1e-12)


# Mutation caught: Initial(derivative=1) returning ∂/∂t of the first len(cols) columns instead
# of the selected ones.
def test_initial_time_derivative_of_a_selected_component():
    t0 = 0.5
    domain = Interval(0, 1) * Time(t0, 1)

    def f(x):  # u = sin(πx) + t², v = x·t + cos t: u_t = 2t = 1, v_t = x - sin t at t0
        X, T = x[:, 0:1], x[:, 1:2]
        return torch.cat([torch.sin(math.pi * X) + T**2, X * T + torch.cos(T)], dim=1)

    conds = [
        Initial(0.0, derivative=1, component="v", name="v_t"),
        Initial(0.0, derivative=1, component=["v", "u"], name="vu_t"),
    ]
    res = build(domain, conds, f, ("u", "v"))
    x = term(res, "v_t").points.x
    assert bool((x[:, 1] == t0).all())
    want_v = x[:, 0:1] - math.sin(t0)
    assert torch.allclose(residual(res, "v_t"), want_v, rtol=0, atol=1e-12)
    x = term(res, "vu_t").points.x  # each term samples its own points
    want_v = x[:, 0:1] - math.sin(t0)
    want = torch.cat([want_v, torch.ones_like(want_v)], dim=1)
    assert torch.allclose(residual(res, "vu_t"), want, rtol=0, atol=1e-12)
    # and by a central difference in t
    e_t = torch.tensor([[0.0, 1.0]], dtype=DT)
    fd = fd_normal_derivative(f, x, e_t)[:, [1, 0]]
    assert torch.allclose(residual(res, "vu_t"), fd, rtol=0, atol=1e-8)


def _u_v_periodic(x):
    """u = 0.3·x(1 - x): equal values at x = 0 and 1 but ∂u/∂x = 0.3 vs -0.3;
    v = sin(2πx)·(1 + y): periodic in x with every x-derivative."""
    X, Y = x[:, 0:1], x[:, 1:2]
    return torch.cat([0.3 * X * (1 - X), torch.sin(2 * math.pi * X) * (1 + Y)], dim=1)


# Mutation caught: Periodic's derivative columns taken from the first len(cols) outputs instead
# of the selected ones.
def test_periodic_derivatives_of_a_selected_component():
    conds = [
        Periodic("x", derivatives=2, component="v", name="pv"),
        Periodic("x", derivatives=1, component="u", name="pu"),
        Periodic("x", derivatives=1, component=["v", "u"], name="pvu"),
    ]
    res = build(SQUARE, conds, _u_v_periodic, ("u", "v"))
    r = residual(res, "pv")  # v, v_x, v_xx all periodic
    assert r.shape[1] == 3 and float(r.abs().max()) <= 1e-10
    r = residual(res, "pu")  # u(0) - u(1) = 0, u_x(0) - u_x(1) = 0.3 - (-0.3)
    assert float(r[:, 0].abs().max()) <= 1e-12
    assert torch.allclose(r[:, 1], torch.tensor(0.6, dtype=DT), rtol=0, atol=1e-12)
    # columns (v, u, v_x, u_x): only u_x differs across the faces
    r = residual(res, "pvu")
    assert r.shape[1] == 4
    assert float(r[:, :3].abs().max()) <= 1e-10
    assert torch.allclose(r[:, 3], torch.tensor(0.6, dtype=DT), rtol=0, atol=1e-12)


# Mutation caught: Periodic differentiating along the first axis whatever its own axis is (a
# field whose faces y = 0 and 2 agree has equal x-derivatives there, so only a mismatch in the
# y-derivatives shows it).
def test_periodic_derivatives_are_along_its_own_axis():
    domain = Rectangle([0, 0], [1, 2])

    def first(x):  # 0.1·y(2 - y)(1 + x): 0 on both faces; f_y = ±0.2(1 + x); f_x = 0
        X, Y = x[:, 0:1], x[:, 1:2]
        return 0.1 * Y * (2 - Y) * (1 + X)

    def g(y):  # y³(2 - y)²: g = g' = g'' = 0 at y = 0; g = g' = 0, g'' = 2·2³ = 16 at y = 2
        return y**3 * (2 - y) ** 2

    def second(x):
        return g(x[:, 1:2]) * (1 + x[:, 0:1])

    res = build(domain, [Periodic("y", derivatives=1)], first)
    t = term(res, "periodic[y]")
    n = t.points.x.shape[0] // 2
    xs = t.points.x[:n, 0:1]
    r = residual(res, "periodic[y]")
    assert float(r[:, 0].abs().max()) <= 1e-12
    assert torch.allclose(r[:, 1:2], 0.4 * (1 + xs), rtol=0, atol=1e-12)

    # the hand value g''(2) = 16 agrees with a second difference
    h = 1e-4
    g2 = (g(2.0 + h) - 2 * g(2.0) + g(2.0 - h)) / h**2
    assert abs(g2 - 16.0) <= 1e-6
    res = build(domain, [Periodic("y", derivatives=2)], second)
    r = residual(res, "periodic[y]")
    xs = term(res, "periodic[y]").points.x[:n, 0:1]
    assert float(r[:, :2].abs().max()) <= 1e-12
    assert torch.allclose(r[:, 2:3], -16.0 * (1 + xs), rtol=0, atol=1e-10)


# -- unknowns in Robin -------------------------------------------------------------------------


# Mutations caught: Robin.unknown_names forgetting a value that names an unknown; Robin's
# residual subtracting the (absent) sampled target instead of the unknown.
def test_a_robin_value_naming_an_unknown_is_read_from_the_unknowns():
    assert Robin(1.0, 1.0, value="T0").unknown_names() == {"value": "T0"}
    assert Robin("h", 1.0, value="T0").unknown_names() == {"alpha": "h", "value": "T0"}

    def pde_p(x, u, p):  # exact for u = x² + y
        return laplacian(u, x) - 2.0 + 0 * u

    conds = [Robin(1.0, 1.0, value="T0", on="right")]
    problem = Problem(name="m", domain=SQUARE, pde=pde_p, conditions=conds, unknowns={"T0": 0.25})
    res = Residuals(problem, Closed(lambda x: x[:, 0:1] ** 2 + x[:, 1:2]), POINTS, {}, DT, "cpu")
    t = term(res, "robin[right]")
    with res.context() as ctx:
        x = t.points.x.detach().requires_grad_(True)
        r = res._condition_residual(t, x, res.model(x), t.points, ctx)
    # right face: u = 1 + y, ∂u/∂n = 2, so r = (1 + y) + 2 - T0
    y = t.points.x[:, 1:2]
    assert torch.allclose(r.detach(), 3 + y - 0.25, rtol=0, atol=1e-12)
    (g,) = torch.autograd.grad(r.sum(), res.unknowns["T0"])  # ∂r/∂T0 = -1 at every point
    assert float(g) == -len(y)


# -- values ------------------------------------------------------------------------------------


# Mutation caught: g(x, n, /) (positional-only parameters) not recognised as taking normals.
def test_a_positional_only_value_function_gets_the_normals():
    def flux(x, n, /):  # ∂(x² + y)/∂n = ∇u·n with ∇u = (2x, 1): holds at corners too
        return 2 * x[:, 0:1] * n[:, 0:1] + n[:, 1:2]

    grid = {**POINTS, "method": "grid"}
    res = build(SQUARE, [Neumann(flux)], lambda x: x[:, 0:1] ** 2 + x[:, 1:2], points=grid)
    assert float(residual(res, "neumann").abs().max()) <= 1e-12


# Mutation caught: a one-element list on a one-output problem refused instead of taken as its
# one per-component value.
@pytest.mark.parametrize("value", [[2.0], np.array([2.0]), (2.0,)])
def test_a_one_element_list_is_the_value_of_the_one_component(value):
    res = build(Interval(-1, 1), [Dirichlet(value)], lambda x: 2.0 + x * (1 - x**2))
    target = term(res, "dirichlet").points.target
    assert target.shape == (term(res, "dirichlet").points.x.shape[0], 1)
    assert bool((target == 2.0).all())
    assert float(residual(res, "dirichlet").abs().max()) <= 1e-14  # u(±1) = 2


# Mutation caught: the finiteness check of evaluated values seeing NaN only (an Inf passed).
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_an_infinite_value_is_refused(sign):
    def g(x):
        return torch.where(x[:, 0:1] > 0.5, sign * math.inf, 0.0)

    with pytest.raises(ProblemError, match="dirichlet value is not finite"):
        build(SQUARE, [Dirichlet(g)], lambda x: x[:, 0:1])
    with pytest.raises(ProblemError, match="data value is not finite"):
        build(SQUARE, [PointData([[0.5, 0.5]], [sign * math.inf])], lambda x: x[:, 0:1])


# Mutation caught: a complex tensor constant cast to real (imaginary part silently dropped).
@pytest.mark.parametrize(
    "value", [torch.tensor(1.0 + 2.0j), torch.tensor([1.0 + 0.0j, 2.0 - 1.0j])]
)
def test_a_complex_tensor_constant_is_refused(value):
    with pytest.raises(ProblemError, match="dirichlet value is complex"):
        build(SQUARE, [Dirichlet(value)], lambda x: x, outputs=("u", "v"))


# Mutation caught: a tensor returned by g(x) kept in its own dtype instead of the run's.
@pytest.mark.parametrize("run, returned", [(DT, torch.float32), (torch.float32, DT)])
def test_values_take_the_runs_dtype(run, returned):
    def g(x):  # 1/3 is not a float32: a float64 target would not be the float32 one
        return torch.full((x.shape[0], 1), 1.0 / 3.0, dtype=returned)

    res = build(SQUARE, [Dirichlet(g)], lambda x: x[:, 0:1], dtype=run)
    target = term(res, "dirichlet").points.target
    assert target.dtype == run
    assert bool((target == torch.tensor(1.0 / 3.0, dtype=returned).to(run)).all())


# -- argument checks ---------------------------------------------------------------------------


# Mutations caught: True/False taken as Robin coefficients 1/0, as Periodic's order or axis 1,
# as a weight 1, as component 1; a fractional point count; a blank name.
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Robin(True, 1.0), "alpha must be a finite number or an unknown's name, got True"),
        (lambda: Robin(1.0, False), "beta must be a finite number or an unknown's name, got False"),
        (lambda: Periodic("x", derivatives=True), "derivatives must be 0, 1 or 2, got True"),
        (lambda: Periodic(True), "axis must be a name or an index, got True"),
        (lambda: Dirichlet(0.0, weight=True), "weight must be a non-negative number, got True"),
        (lambda: Dirichlet(0.0, n=2.5), "n must be a positive integer \\(points\\), got 2.5"),
        (lambda: Dirichlet(0.0, n=True), "n must be a positive integer \\(points\\), got True"),
        (lambda: Dirichlet(0.0, name="  "), "name must be a non-empty string, got '  '"),
        (
            lambda: Dirichlet(0.0, component=True).columns(("u", "v")),
            "component True is neither an output name nor an index",
        ),
    ],
)
def test_booleans_fractions_and_blanks_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# Mutation caught: PointData's tolerance for points outside the domain widened from a millionth
# of the domain's size (1e-6·diagonal) to 1e-4.
def test_point_data_outside_by_more_than_a_millionth_of_the_size_is_refused():
    domain = Rectangle([0, 0], [3, 4])  # diagonal 5: the tolerance is 5e-6

    def points(x):
        return PointData([x], [1.0]).points(domain, ["u"], None, "grid", 0, DT, "cpu")

    assert points([3.0 + 4.6e-6, 2.0]).x.shape == (1, 2)  # within 5e-6 (beyond 1e-6·max side)
    for x in ([3.0 + 5e-5, 2.0], [1.0, -1e-5]):  # 10× and 2× the tolerance out
        with pytest.raises(ValueError, match=r"1 of 1 points lie outside the domain"):
            points(x)


# Mutation caught: the check that a value function returned something dropped (None then ended
# in a "not numeric" error that did not point at the missing return).
def test_a_value_function_without_a_return_is_named_as_such():
    def g(x):
        x[:, 0:1] ** 2  # noqa: B018 - the forgotten return

    with pytest.raises(ProblemError, match=r"returned None \(a missing return\?\); expected a "):
        build(SQUARE, [Dirichlet(g)], lambda x: x[:, 0:1])


# Mutation caught: values evaluated once at setup kept the autograd graph of the function that
# computed them (a previous model used as boundary data would be trained through the target).
def test_values_are_detached_from_the_function_that_computed_them():
    lin = torch.nn.Linear(2, 1).to(DT)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 1.0]]))
        lin.bias.fill_(0.5)
    res = build(SQUARE, [Dirichlet(lin)], lambda x: 2 * x[:, 0:1] + x[:, 1:2] + 0.5)
    t = term(res, "dirichlet")
    assert not t.points.target.requires_grad
    want = 2 * t.points.x[:, 0:1] + t.points.x[:, 1:2] + 0.5  # the same affine map by hand
    assert torch.allclose(t.points.target, want, rtol=0, atol=1e-14)


# Mutation caught: a Periodic share of the boundary budget raised to at least two pairs (the
# share counts pairs: n points on each face).
@pytest.mark.parametrize("budget", [1, 3])
def test_a_periodic_share_is_a_number_of_pairs(budget):
    res = build(SQUARE, [Periodic("y")], lambda x: x[:, 0:1], points={**POINTS, "boundary": budget})
    x = term(res, "periodic[y]").points.x
    assert x.shape == (2 * budget, 2)
    assert bool((x[:budget, 1] == 0).all()) and bool((x[budget:, 1] == 1).all())


# Mutation caught: only the lower face checked to lie on its plane. Here the upper face "xmax"
# is x = 2 while the bounding box (and the pairing) reaches x = 3.
def test_periodic_refuses_an_upper_face_off_the_bounding_plane():
    gapped = Rectangle([0, 0], [2, 1]) | Rectangle([2.5, 0], [3, 1])
    with pytest.raises(ProblemError, match="no pair of opposite faces x = 0 and 3"):
        build(gapped, [Periodic("x")], lambda x: x[:, 1:2])


# Mutations caught: Initial and PointData ignoring a name (the user's, or the one the problem
# gives clashing defaults), so weights by name missed them and clashes were refused.
def test_initial_and_data_names_and_their_disambiguation():
    domain = Interval(0, 1) * Time(0, 1)
    data = np.array([[0.5, 0.5]])
    conds = [
        Initial(0.0, component="u"),
        Initial(0.0, component="v"),
        Initial(0.0, derivative=1, name="ic_dt"),
        PointData(data, [1.0], component="u"),
        PointData(data, [2.0], component="v"),
        PointData(data, [[1.0, 2.0]], name="obs"),
    ]
    problem = Problem(name="m", domain=domain, pde=pde, conditions=conds, outputs=("u", "v"))
    assert [c.name for c in problem.conditions] == [
        "initial(u)", "initial(v)", "ic_dt", "data(u)", "data(v)", "obs",
    ]  # fmt: skip
    assert conds[2].name == "ic_dt" and conds[5].name == "obs"
