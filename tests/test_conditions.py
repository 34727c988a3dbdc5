"""Independent tests of the boundary, initial and data conditions.

For every condition type a small problem is built whose exact solution satisfies it; the
"model" is that closed form (a tiny ``nn.Module``), so the condition's residual, computed by
:class:`kanpde.losses.Residuals`, must vanish to round-off, while a perturbed solution must
give a clearly non-zero residual.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from closed_form import Closed

from kanpde import (
    Dirichlet,
    Disk,
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
    d,
    laplacian,
    split,
)
from kanpde.losses import Residuals

DT = torch.float64
POINTS = {"interior": 16, "boundary": 48, "initial": 24, "method": "sobol"}


def pde(x, u):
    # "+ u": a residual that reaches u even for linear closed forms (which have no parameters)
    return laplacian(u, x) + u


def build(domain, conditions, f, outputs=("u",), points=None):
    problem = Problem(name="t", domain=domain, pde=pde, conditions=conditions, outputs=outputs)
    return Residuals(problem, Closed(f), points or POINTS, {}, DT, "cpu")


def residual(res: Residuals, name: str) -> torch.Tensor:
    """The raw residual of the condition term ``name`` (evaluated with the engine's context)."""
    term = next(t for t in res.terms if t.name == name)
    with res.context() as ctx:
        x = term.points.x.detach().requires_grad_(True)
        u = res.model(x)
        r = term.condition.residual(x, u, term.points, term.cols, ctx)
    return r.detach()


def check(domain, conditions, exact, perturbed, outputs=("u",), min_bad=1e-3):
    """Residuals vanish for ``exact`` and not for ``perturbed``; return the residual objects."""
    good = build(domain, conditions, exact, outputs)
    bad = build(domain, conditions, perturbed, outputs)
    terms_good, terms_bad = good.terms_of(), bad.terms_of()
    for c in conditions:
        r = residual(good, c.name)
        assert r.shape[0] > 0
        assert float(r.abs().max()) <= 1e-10, f"{c.name}: {float(r.abs().max()):.3e}"
        assert float(terms_good[c.name].detach()) <= 1e-20, c.name
        rb = residual(bad, c.name)
        assert float(rb.abs().max()) >= min_bad, f"{c.name}: perturbation not seen"
        assert float(terms_bad[c.name].detach()) >= min_bad**2 / 100, c.name
    return good, bad


SQUARE = Rectangle([0, 0], [1, 1])


def quad(x):  # u = x² + y
    return x[:, 0:1] ** 2 + x[:, 1:2]


def quad_perturbed(x):
    return quad(x) + 0.1 * x[:, 0:1] * x[:, 1:2]


# -- Dirichlet --------------------------------------------------------------------------------


def test_dirichlet_whole_boundary_callable():
    check(SQUARE, [Dirichlet(quad)], quad, quad_perturbed)


def test_dirichlet_whole_boundary_constant():
    def f(x):  # zero on the whole boundary of the unit square
        return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])

    good, _ = check(SQUARE, [Dirichlet(0.0)], f, lambda x: f(x) + 0.1 * x[:, 0:1])
    pts = good.terms[0].points.x
    on_boundary = (pts == 0) | (pts == 1)
    assert bool(on_boundary.any(dim=1).all()), "Dirichlet points must lie on the boundary"


def test_dirichlet_on_pieces():
    # left (x = 0): u = y; right (x = 1): u = 1 + y; bottom (y = 0): u = x²; top: x² + 1
    conds = [
        Dirichlet(lambda x: x[:, 1:2], on="left"),
        Dirichlet(lambda x: 1 + x[:, 1:2], on="right"),
        Dirichlet(lambda x: x[:, 0:1] ** 2, on="bottom"),
        Dirichlet(lambda x: x[:, 0:1] ** 2 + 1, on="top"),
    ]
    good, _ = check(SQUARE, conds, quad, lambda x: quad(x) + 0.1 * (1 + x[:, 0:1] * x[:, 1:2]))
    xs = {t.name: t.points.x for t in good.terms}
    assert set(xs) == {"dirichlet[left]", "dirichlet[right]", "dirichlet[bottom]", "dirichlet[top]"}
    assert bool((xs["dirichlet[left]"][:, 0] == 0).all())
    assert bool((xs["dirichlet[right]"][:, 0] == 1).all())
    assert bool((xs["dirichlet[bottom]"][:, 1] == 0).all())
    assert bool((xs["dirichlet[top]"][:, 1] == 1).all())


def test_dirichlet_constant_on_two_sides():
    def f(x):  # zero at x = 0 and x = 1
        return x[:, 0:1] * (1 - x[:, 0:1]) * (1 + x[:, 1:2])

    check(SQUARE, [Dirichlet(0.0, on=["left", "right"])], f, lambda x: f(x) + 0.1 * x[:, 1:2])


def _system(x):  # u = x² + y, v = x·y
    return torch.cat([quad(x), x[:, 0:1] * x[:, 1:2]], dim=1)


def test_dirichlet_component_by_name_and_index():
    conds = [
        Dirichlet(lambda x: x[:, 0:1] * x[:, 1:2], component="v", name="dv"),
        Dirichlet(quad, component=0, name="du"),
        # a swapped selection: columns (v, u) must be compared with values (v, u)
        Dirichlet(
            lambda x: torch.cat([x[:, 0:1] * x[:, 1:2], quad(x)], dim=1),
            component=["v", "u"],
            name="dvu",
        ),
        Dirichlet([0.0, 1.0], on="left", component=["v", "u"], name="left_const"),
    ]

    def bad(x):  # only v is perturbed
        return _system(x) + torch.cat([0 * x[:, 0:1], 0.1 + 0 * x[:, 0:1]], dim=1)

    good = build(SQUARE, conds[:3], _system, ("u", "v"))
    for name in ("dv", "du", "dvu"):
        assert float(residual(good, name).abs().max()) <= 1e-12
    assert residual(good, "dvu").shape[1] == 2
    badres = build(SQUARE, conds[:3], bad, ("u", "v"))
    assert float(residual(badres, "du").abs().max()) <= 1e-12  # u untouched
    assert float(residual(badres, "dv").abs().min()) >= 0.1 - 1e-12
    r = residual(badres, "dvu")
    assert float(r[:, 0].abs().min()) >= 0.1 - 1e-12 and float(r[:, 1].abs().max()) <= 1e-12

    def left_field(x):  # v = 0 and u = 1 on x = 0
        return torch.cat([1 + x[:, 0:1] * x[:, 1:2], x[:, 0:1] * 3], dim=1)

    res = build(SQUARE, conds[3:], left_field, ("u", "v"))
    assert float(residual(res, "left_const").abs().max()) <= 1e-12
    res = build(SQUARE, conds[3:], lambda x: left_field(x).flip(1), ("u", "v"))
    assert float(residual(res, "left_const").abs().min()) >= 1 - 1e-12


# -- Neumann and Robin ------------------------------------------------------------------------


def test_neumann_outward_normals_per_side():
    # u = x² + y: ∂u/∂n = -2x = 0 (left), 2x = 2 (right), -1 (bottom), +1 (top)
    conds = [
        Neumann(0.0, on="left"),
        Neumann(2.0, on="right"),
        Neumann(-1.0, on="bottom"),
        Neumann(1.0, on="top"),
    ]
    good, _ = check(SQUARE, conds, quad, quad_perturbed)
    for t in good.terms:
        n = t.points.normals
        assert n is not None and n.shape == t.points.x.shape
        assert torch.allclose(n.norm(dim=1), torch.ones(n.shape[0], dtype=DT))


def test_neumann_sign_error_is_seen():
    """Inward normals would give -2 on the right side: the residual must be 4 there."""
    res = build(SQUARE, [Neumann(-2.0, on="right")], quad)
    assert torch.allclose(residual(res, "neumann[right]"), torch.tensor(4.0, dtype=DT))


def test_neumann_whole_boundary_callable():
    def flux(x):  # ∂(x² + y)/∂n on each side of the unit square (no corners with sobol)
        X, Y = x[:, 0:1], x[:, 1:2]
        return torch.where(
            X == 1, 2.0, torch.where(X == 0, 0.0, torch.where(Y == 0, -1.0, 1.0))
        ).to(DT)

    check(SQUARE, [Neumann(flux)], quad, quad_perturbed)


def test_neumann_space_time_ignores_time():
    domain = Interval(0, 1) * Time(0, 1)

    def f(x):  # u = x² t + t²: ∂u/∂x = 2 x t, ∂u/∂t = x² + 2t
        return x[:, 0:1] ** 2 * x[:, 1:2] + x[:, 1:2] ** 2

    conds = [Neumann(lambda x: 2 * x[:, 1:2], on="right"), Neumann(0.0, on="left")]
    check(domain, conds, f, lambda x: f(x) + 0.1 * x[:, 0:1] * (1 + x[:, 1:2]))


def test_robin():
    # 2u + 3 ∂u/∂n on the right (x = 1): 2(1 + y) + 6; on the top (y = 1): 2(x² + 1) + 3
    conds = [
        Robin(2.0, 3.0, lambda x: 8 + 2 * x[:, 1:2], on="right"),
        Robin(2.0, 3.0, lambda x: 2 * x[:, 0:1] ** 2 + 5, on="top"),
        Robin(1.0, 0.5, lambda x: x[:, 1:2], on="left"),  # u - 0.5·2x = y at x = 0
    ]
    check(SQUARE, conds, quad, lambda x: 1.1 * quad(x))
    assert conds[0].name == "robin[right]"


def test_robin_with_zero_beta_is_dirichlet():
    res = build(SQUARE, [Robin(1.0, 0.0, quad)], quad_perturbed)
    ref = build(SQUARE, [Dirichlet(quad)], quad_perturbed)
    assert torch.allclose(residual(res, "robin"), residual(ref, "dirichlet"), atol=1e-14)


# -- Periodic ---------------------------------------------------------------------------------

SPACETIME = Interval(0, 1) * Time(0, 1)


def wave(x):  # sin(2πx)·t: periodic in x with period 1, with all x-derivatives
    return torch.sin(2 * math.pi * x[:, 0:1]) * x[:, 1:2]


def test_periodic_values_and_derivative():
    cond = Periodic("x", derivatives=1)
    good, _ = check(SPACETIME, [cond], wave, lambda x: wave(x) + 0.1 * x[:, 0:1])
    term = good.terms[0]
    x = term.points.x
    n = x.shape[0] // 2
    assert bool((x[:n, 0] == 0).all()) and bool((x[n:, 0] == 1).all())
    assert torch.equal(x[:n, 1], x[n:, 1]), "paired points must share the other coordinates"
    assert residual(good, "periodic[x]").shape == (n, 2)  # value and ∂/∂x


def test_periodic_checks_the_derivative():
    # equal values at x = 0 and 1 (both 0) but ∂/∂x = +0.1 vs -0.1
    def bad(x):
        return wave(x) + 0.1 * x[:, 0:1] * (1 - x[:, 0:1])

    res0 = build(SPACETIME, [Periodic("x", derivatives=0)], bad)
    assert float(residual(res0, "periodic[x]").abs().max()) <= 1e-12
    res1 = build(SPACETIME, [Periodic("x", derivatives=1)], bad)
    r = residual(res1, "periodic[x]")
    assert float(r[:, 0].abs().max()) <= 1e-12
    assert torch.allclose(r[:, 1], torch.tensor(0.2, dtype=DT), atol=1e-12)
    res2 = build(SPACETIME, [Periodic("x", derivatives=2)], wave)
    assert residual(res2, "periodic[x]").shape[1] == 3
    assert float(residual(res2, "periodic[x]").abs().max()) <= 1e-10


def test_periodic_second_axis():
    domain = Rectangle([0, 0], [1, 2])

    def f(x):  # period 2 in y
        return torch.cos(math.pi * x[:, 1:2]) * (1 + x[:, 0:1]) + x[:, 0:1] ** 2

    good, _ = check(domain, [Periodic("y", derivatives=2)], f, lambda x: f(x) + 0.1 * x[:, 1:2])
    x = good.terms[0].points.x
    n = x.shape[0] // 2
    assert bool((x[:n, 1] == 0).all()) and bool((x[n:, 1] == 2).all())


# Bug caught: a term's loss summing its residual columns instead of averaging them.
def test_a_terms_loss_is_the_mean_over_points_and_columns():
    # u = sin(2πx)·t + 0.3·x(1 - x): equal values and second derivatives at x = 0 and 1, but
    # ∂u/∂x = 0.3 vs -0.3 (a difference of 0.6); v = x·t + 1, which the Dirichlet value misses
    # by exactly 0.2 everywhere.
    def f(x):
        X, T = x[:, 0:1], x[:, 1:2]
        return torch.cat([wave(x) + 0.3 * X * (1 - X), X * T + 1], dim=1)

    def target(x):  # u exact, v - 0.2
        return f(x) - torch.tensor([[0.0, 0.2]], dtype=DT)

    conds = [
        Dirichlet(target, name="both"),  # columns (0, 0.2)
        Dirichlet(lambda x: target(x)[:, 1:2], component="v", name="v_only"),  # (0.2,)
        Periodic("x", derivatives=1, component="u", name="p1"),  # (0, 0.6)
        Periodic("x", derivatives=2, component="u", name="p2"),  # (0, 0.6, 0)
    ]
    res = build(SPACETIME, conds, f, ("u", "v"))
    terms = {k: float(v.detach()) for k, v in res.terms_of().items()}
    expected = {
        "both": (0.0 + 0.2**2) / 2,  # 0.02
        "v_only": 0.2**2,  # 0.04
        "p1": (0.0 + 0.6**2) / 2,  # 0.18
        "p2": (0.0 + 0.6**2 + 0.0) / 3,  # 0.12
    }
    for name, value in expected.items():
        r = residual(res, name)
        assert r.shape[1] == {"both": 2, "v_only": 1, "p1": 2, "p2": 3}[name]
        assert abs(terms[name] - value) <= 1e-12 * value, (name, terms[name], value)
        # the same as the mean of the squares of the raw residual over points and columns
        assert abs(terms[name] - float((r * r).mean())) <= 1e-12 * value, name


# Bug caught: Periodic(derivatives=2) computing its last column as a first derivative.
@pytest.mark.parametrize("domain", [Interval(0, 1), SPACETIME], ids=["interval", "spacetime"])
def test_periodic_second_derivative_column(domain):
    # u = x³(1 - x)²·(1 + t): u and ∂u/∂x vanish at x = 0 and 1, ∂²u/∂x² = 0 at x = 0 and
    # 2·(1 + t) at x = 1, so the pairs (x = 0) - (x = 1) differ by -2·(1 + t) there only.
    def time(x):
        return x[:, 1:2] if x.shape[1] > 1 else torch.zeros_like(x[:, 0:1])

    def f(x):
        X = x[:, 0:1]
        return X**3 * (1 - X) ** 2 * (1 + time(x))

    res = build(domain, [Periodic("x", derivatives=2)], f)
    term = res.terms[0]
    n = term.points.x.shape[0] // 2
    r = residual(res, "periodic[x]")
    assert r.shape == (n, 3)
    assert float(r[:, :2].abs().max()) <= 1e-12  # value and first derivative match
    want = -2 * (1 + time(term.points.x[:n]))
    assert float((r[:, 2:3] - want).abs().max()) <= 1e-12, (r[:3, 2], want[:3, 0])
    loss = float(res.terms_of()["periodic[x]"].detach())
    exact = float((want**2).sum()) / (3 * n)
    assert abs(loss - exact) <= 1e-12 * exact, (loss, exact)


def test_periodic_time_axis_is_rejected():
    with pytest.raises(ProblemError, match="time axis cannot be periodic"):
        build(SPACETIME, [Periodic("t")], wave)


def test_periodic_unknown_axis_is_rejected():
    with pytest.raises(ProblemError, match="unknown axis 'z'"):
        build(SPACETIME, [Periodic("z")], wave)


def test_numpy_numbers_are_numbers():
    from kanpde.conditions import Condition

    c = Dirichlet(0, weight=np.float32(2), n=np.int64(3))
    assert c.weight == 2.0 and c.n == 3 and isinstance(c, Condition)
    assert Robin(np.float32(1), 1.0).alpha == 1.0


def test_periodic_needs_a_pair_of_opposite_faces():
    # Points were moved onto the bounding box (x = -1, outside the domain) or paired with
    # points outside it.
    notched = Rectangle([0, 0], [2, 1]) | Rectangle([-1, 0.25], [0, 0.75])
    lshape = Rectangle([-1, -1], [1, 1]) - Rectangle([0, 0], [1, 1])
    for domain in (notched, lshape):
        with pytest.raises(ProblemError, match="no pair of opposite faces x = -1"):
            build(domain, [Periodic("x")], quad)
    # a notch in either face: only the upper one was checked
    from kanpde import Disk

    for y in (0.0, 1.0):
        with pytest.raises(ProblemError, match="no pair of opposite faces y = 0 and 1"):
            build(Rectangle([0, 0], [2, 1]) - Disk([1, y], 0.3), [Periodic("y")], quad)
    # a domain without faces at all said "unknown boundary piece 'xmin'"
    with pytest.raises(ProblemError, match="no pair of opposite faces x = -1 and 1"):
        build(Disk([0, 0], 1.0), [Periodic("x")], quad)


@pytest.mark.parametrize(
    "axis, message",
    [(-1, "time axis cannot be periodic"), (5, "axis 5 out of range for 2 coordinates")],
)
def test_periodic_axis_index_is_checked(axis, message):
    with pytest.raises(ProblemError, match=message):
        build(SPACETIME, [Periodic(axis)], wave)


def test_periodic_negative_axis_counts_from_the_end():
    good, _ = check(SPACETIME, [Periodic(-2)], wave, lambda x: wave(x) + 0.1 * x[:, 0:1])
    assert good.terms[0].name == "periodic[-2]"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Dirichlet(0.0, n=0), "n must be a positive integer"),
        (lambda: Dirichlet(0.0, weight=-1.0), "weight must be a non-negative number"),
        (lambda: Neumann(0.0, weight=float("nan")), "weight must be a non-negative number"),
        (lambda: Robin(float("nan"), 1.0), "alpha must be a finite number"),
        (lambda: Robin(1.0, None), "beta must be a finite number or an unknown's name"),
        (lambda: Robin(1.0, "1"), "beta '1' is a string, which names one of the problem's"),
        (lambda: Dirichlet("1.0"), "value '1.0' is a string, which names one of the problem's"),
        (lambda: Robin(0.0, 0.0, 1.0), "alpha and beta are both 0"),
        (lambda: Periodic(derivatives=3), "derivatives must be 0, 1 or 2"),
        (lambda: Periodic(on="left"), "on= is not supported"),
        (lambda: Initial(0.0, on="left"), "on= is not supported"),
        (lambda: PointData(np.zeros((0, 2)), np.zeros((0, 1))), "no observation points"),
        (lambda: PointData([[np.nan, 0.5]], [1.0]), "x is not finite"),
        # subclasses whose name needs state set after the base class (was AttributeError)
        (lambda: Periodic("x", weight=-1), "periodic: weight must be"),
        (lambda: Periodic("x", n=0), "periodic: n must be"),
        (lambda: Initial(weight=float("nan")), "initial: weight must be"),
    ],
)
def test_condition_arguments_are_checked(make, message):
    # each of these gave a NaN loss or was silently ignored
    with pytest.raises(ValueError, match=message):
        make()


def test_condition_without_points_is_an_error():
    class Nowhere(Dirichlet):  # a user's own condition whose sampler finds nothing
        def sample(self, domain, n, method, seed):
            return np.empty((0, domain.dim)), np.empty((0, domain.dim))

    with pytest.raises(ProblemError, match="condition 'nowhere' got no points"):
        build(SQUARE, [Nowhere(0.0)], quad)  # its mean square would be NaN


def test_flux_of_points_and_normals_holds_at_grid_corners():
    # A grid boundary repeats each corner once per face; g(x) cannot tell the two apart, g(x, n)
    # can: ∂(x² + y)/∂n = ∇u·n with ∇u = (2x, 1).
    def flux(x, n):
        return 2 * x[:, 0:1] * n[:, 0:1] + n[:, 1:2]

    grid = {**POINTS, "method": "grid"}
    res = build(SQUARE, [Neumann(flux)], quad, points=grid)
    x = res.terms[0].points.x
    corners = ((x == 0) | (x == 1)).all(dim=1)
    assert int(corners.sum()) == 8  # four corners, twice each
    assert float(residual(res, "neumann").abs().max()) <= 1e-12
    bad = build(SQUARE, [Neumann(flux)], quad_perturbed, points=grid)
    assert float(residual(bad, "neumann").abs().max()) >= 1e-3
    robin = build(
        SQUARE, [Robin(1.0, 2.0, lambda x, n: quad(x) + 2 * flux(x, n))], quad, points=grid
    )
    assert float(residual(robin, "robin").abs().max()) <= 1e-12
    with pytest.raises(ProblemError, match=r"takes two arguments \(x, n\).*no normals"):
        build(SPACETIME, [Initial(lambda x, n: x[:, :1])], wave)


# -- Initial ----------------------------------------------------------------------------------


def test_initial_value_and_time_derivative():
    domain = Interval(0, 1) * Time(0.25, 1)
    t0 = 0.25

    def f(x):  # u = sin(πx)(1 + 2t) + t²
        return torch.sin(math.pi * x[:, 0:1]) * (1 + 2 * x[:, 1:2]) + x[:, 1:2] ** 2

    conds = [
        Initial(lambda x: torch.sin(math.pi * x[:, 0:1]) * (1 + 2 * t0) + t0**2),
        Initial(lambda x: 2 * torch.sin(math.pi * x[:, 0:1]) + 2 * t0, derivative=1),
    ]
    good = build(domain, conds, f)
    assert {t.name for t in good.terms} == {"initial", "initial_dt"}
    for t in good.terms:
        assert bool((t.points.x[:, 1] == t0).all()), "initial points must lie at t0"
        assert t.points.x.shape[0] == POINTS["initial"]
        assert float(residual(good, t.name).abs().max()) <= 1e-12
    # + 0.1·x·(t - t0): same values at t0, different ∂/∂t
    bad = build(domain, conds, lambda x: f(x) + 0.1 * x[:, 0:1] * (x[:, 1:2] - t0))
    assert float(residual(bad, "initial").abs().max()) <= 1e-12
    assert float(residual(bad, "initial_dt").abs().max()) >= 0.05
    # + 0.1·x: different values, same ∂/∂t
    bad = build(domain, conds, lambda x: f(x) + 0.1 * x[:, 0:1])
    assert float(residual(bad, "initial").abs().max()) >= 0.05
    assert float(residual(bad, "initial_dt").abs().max()) <= 1e-12


def test_initial_derivative_is_along_time_in_2d_space():
    domain = Rectangle([0, 0], [1, 1]) * Time(0, 1)

    def f(x):  # ∂u/∂t = 3x at t = 0, while ∂u/∂x = 1 + 3t and ∂u/∂y = 2
        return x[:, 0:1] + 2 * x[:, 1:2] + 3 * x[:, 2:3] * x[:, 0:1]

    conds = [Initial(lambda x: 3 * x[:, 0:1], derivative=1)]
    check(domain, conds, f, lambda x: f(x) + 0.2 * x[:, 2:3] * x[:, 1:2])


def test_initial_on_steady_domain_is_a_problem_error():
    with pytest.raises(ProblemError, match="space-time domain"):
        Problem(name="t", domain=SQUARE, pde=pde, conditions=[Initial(0.0)])


@pytest.mark.parametrize(
    "equation, outputs, warned",
    [
        (lambda x, u: d(u, x, "t") - laplacian(u, x), ("u",), True),  # heat: first order
        (lambda x, u: d(u, x, "t", "t") - laplacian(u, x) + u, ("u",), False),  # Klein-Gordon
        (lambda x, u: d(u, x, "t") + u * d(u, x, "x"), ("h",), True),  # named by its output
        # a first-order system: u_t(x, 0) = v(x, 0) may be how v's initial value is given
        (
            lambda x, u: (
                d(u[:, :1], x, "t") - u[:, 1:],
                d(u[:, 1:], x, "t") - d(u[:, :1], x, "x", "x"),
            ),
            ("u", "v"),
            False,
        ),  # fmt: skip
    ],
)
def test_a_time_derivative_initial_on_a_first_order_pde_is_warned_about(equation, outputs, warned):
    # Initial(derivative=1) on the heat equation was accepted without a word
    domain = Interval(0, 1) * Time(0, 1)
    conds = [Initial(0.0, component=outputs[0]), Initial(1.0, derivative=1, component=outputs[0])]
    problem = Problem(name="t", domain=domain, pde=equation, conditions=conds, outputs=outputs)
    f = lambda x: x[:, :1].repeat(1, len(outputs)) * x[:, 1:]  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Residuals(problem, Closed(f), POINTS, {}, DT, "cpu")
    said = [str(w.message) for w in caught if "prescribes" in str(w.message)]
    name = outputs[0]
    expected = [
        f"t: condition 'initial_dt' prescribes {name}_t at the initial time, but the PDE is first "
        f"order in time, so {name}_t there already follows from the PDE and the initial value; "
        "the extra condition can only conflict with them"
    ]
    assert said == (expected if warned else [])


def test_initial_derivative_order_is_checked():
    with pytest.raises(ValueError, match="derivative must be 0 or 1"):
        Initial(0.0, derivative=2)


# -- PointData --------------------------------------------------------------------------------


def test_point_data():
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (12, 2))
    values = xs[:, 0] ** 2 + xs[:, 1]  # 1-D values are accepted
    good, _ = check(SQUARE, [PointData(xs, values)], quad, quad_perturbed)
    assert torch.equal(good.terms[0].points.x, torch.as_tensor(xs))


def test_point_data_component():
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 1, (10, 2))
    v = (xs[:, 0] * xs[:, 1])[:, None]
    conds = [PointData(xs, v, component="v")]

    def bad(x):
        return _system(x) * torch.tensor([[1.0, 1.2]], dtype=DT)

    check(SQUARE, conds, _system, bad, outputs=("u", "v"), min_bad=1e-4)


def test_point_data_shape_errors():
    with pytest.raises(ValueError, match="same n"):
        PointData(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ProblemError, match="points have 3 coordinates, the domain has 2"):
        build(SQUARE, [PointData(np.zeros((4, 3)), np.zeros(4))], quad)


# -- configuration errors ---------------------------------------------------------------------


def test_unknown_component_name():
    with pytest.raises(ProblemError, match="unknown component 'w'"):
        Problem(
            name="t",
            domain=SQUARE,
            pde=pde,
            conditions=[Dirichlet(0.0, component="w")],
            outputs=("u", "v"),
        )
    with pytest.raises(ProblemError, match="component 2 out of range"):
        Problem(
            name="t",
            domain=SQUARE,
            pde=pde,
            conditions=[Dirichlet(0.0, component=2)],
            outputs=("u", "v"),
        )


def test_default_names_that_clash_take_their_pieces_and_components():
    # Dirichlet(0, component="u") beside Dirichlet(g, component="v", ...) were both
    # "dirichlet", and the problem was refused for it.
    conds = [
        Dirichlet(0.0, component="u"),
        Dirichlet(1.0, component="v", on=["left", "right"]),
        Dirichlet(2.0, component="v", on="top"),  # no clash: keeps its default
        Neumann(0.0, component=["v", "u"], on="bottom"),
        Neumann(0.0, component="u", on="bottom", name="mine"),  # the user's name stands
        Robin(1.0, 1.0, 0.0, component="u", on="right"),
        Robin(1.0, 1.0, 0.0, component="v", on="right"),
    ]
    p = Problem(name="t", domain=SQUARE, pde=pde, conditions=conds, outputs=("u", "v"))
    assert [c.name for c in p.conditions] == [
        "dirichlet(u)", "dirichlet[left,right](v)", "dirichlet[top]", "neumann[bottom]", "mine",
        "robin[right](u)", "robin[right](v)",
    ]  # fmt: skip
    # the user's own objects keep their defaults: reused alone, the name is the plain one
    assert conds[0].name == "dirichlet" and conds[0] is not p.conditions[0]
    alone = Problem(name="t", domain=SQUARE, pde=pde, conditions=conds[:1], outputs=("u", "v"))
    assert [c.name for c in alone.conditions] == ["dirichlet"]
    # what still clashes is refused, naming the name
    for conds in (
        [Dirichlet(0.0), Dirichlet(1.0)],
        [Dirichlet(0.0, component="u"), Dirichlet(1.0, component=0)],
        [Neumann(0.0, on="left", component="u"), Neumann(1.0, on="left", component=0)],
    ):
        with pytest.raises(ProblemError, match="conditions need distinct names"):
            Problem(name="t", domain=SQUARE, pde=pde, conditions=conds, outputs=("u", "v"))


@pytest.mark.parametrize("component", [[], (), 1.5, [None]])
def test_a_component_that_names_no_output_is_refused(component):
    # component=[] ended in "condition 'dirichlet' raised IndexError"
    with pytest.raises(ProblemError, match="dirichlet: component"):
        Problem(name="t", domain=SQUARE, pde=pde, outputs=("u", "v"),
                conditions=[Dirichlet(0.0, component=component)])  # fmt: skip


def test_unknown_boundary_name():
    with pytest.raises(ProblemError) as e:
        build(SQUARE, [Dirichlet(0.0, on="north")], quad)
    msg = str(e.value)
    assert "north" in msg and "left" in msg and "\n" not in msg


def test_value_of_wrong_shape():
    with pytest.raises(ProblemError, match="expected"):
        build(SQUARE, [Dirichlet(lambda x: x)], quad)  # (n, 2) values for one output


def test_a_value_function_returning_one_number_holds_at_every_point():
    # lambda x: 2 was refused ("value has shape ()") while the constant 2.0 was taken
    line = Interval(-1, 1)
    res = build(line, [Dirichlet(lambda x: 2), Dirichlet(np.float64(3.0), name="c")], lambda x: x)
    targets = {t.name: t.points.target for t in res.terms}
    for name, value in (("dirichlet", 2.0), ("c", 3.0)):
        t = targets[name]
        assert t.ndim == 2 and t.shape[1] == 1 and t.shape[0] >= 2
        assert bool((t == value).all())


def test_a_constant_list_is_one_value_per_component_and_values_are_real():
    # [1.0, 2.0] on one output with two boundary points was taken as u(-1) = 1, u(1) = 2
    line = Interval(-1, 1)
    with pytest.raises(ProblemError, match=r"must be a number or a list of 1 \(one per comp"):
        build(line, [Dirichlet([1.0, 2.0], n=2)], lambda x: x**2)
    with pytest.raises(ProblemError, match="dirichlet value is complex"):
        build(line, [Dirichlet(lambda x: x.to(torch.complex128))], lambda x: x**2)
    with pytest.raises(ValueError, match="name must be a non-empty string, got 5"):
        Dirichlet(0.0, name=5)


def test_an_array_value_is_named_by_its_shape_in_one_line():
    # numpy and torch print a long array over several lines, and the message was cut at the
    # first of them, before it said what was wrong
    line = Interval(-1, 1)
    for value, shown in ((np.zeros(40), "ndarray of shape (40,)"), (torch.zeros(50), "Tensor")):
        with pytest.raises(ProblemError) as info:
            build(line, [Dirichlet(value)], lambda x: x**2)
        text = str(info.value)
        assert "\n" not in text and text.endswith("written as a function g(x)")
        assert f"dirichlet value {shown}" in text and "must be a number or a list of 1" in text
    with pytest.raises(ValueError) as info:
        Dirichlet(np.full(30, np.nan))
    assert str(info.value) == "dirichlet: value is not finite, got ndarray of shape (30,)"
    with pytest.raises(ValueError) as info:
        Dirichlet([float("nan")] * 40)  # a long list: one line, cut with an ellipsis
    assert str(info.value) == "dirichlet: value is not finite, got [" + "nan, " * 15 + "n..."


def test_options_a_condition_would_ignore_are_refused():
    # PointData(..., on="left", n=3) used all its points; Initial(derivative=True) passed
    with pytest.raises(ValueError, match="PointData: on= is not supported"):
        PointData([[0.5]], [1.0], on="left")
    with pytest.raises(ValueError, match="PointData: n= is not supported"):
        PointData([[0.5]], [1.0], n=3)
    with pytest.raises(ValueError, match="derivative must be 0 or 1, got True"):
        Initial(0.0, derivative=True)


def test_non_finite_value():
    with pytest.raises(ValueError, match="dirichlet: value is not finite, got nan"):
        Dirichlet(float("nan"))  # a constant is checked at once
    with pytest.raises(ProblemError, match="not finite"):
        build(SQUARE, [Dirichlet(lambda x: x[:, :1] / 0 * 0)], quad)  # a function when evaluated
    with pytest.raises(ValueError, match="value must be a number, a list of numbers"):
        Dirichlet(["zero", "one"])
    # a string names an unknown, which this problem does not declare
    with pytest.raises(ProblemError, match="value 'zero' names an unknown, but the problem"):
        build(SQUARE, [Dirichlet("zero")], quad)


def test_duplicate_condition_names():
    with pytest.raises(ProblemError, match="distinct names"):
        Problem(name="t", domain=SQUARE, pde=pde, conditions=[Dirichlet(0.0), Dirichlet(1.0)])


# -- the engine's jet-served terms equal plain autograd ---------------------------------------


def _heat(x, u):
    return d(u, x, "t") - 0.1 * laplacian(u, x)


def _system_pde(x, u):
    a, b = split(u)
    # a third derivative and a derivative of an expression: served by autograd, not the jet
    return d(a, x, "t") - laplacian(a, x) + a * b, d(b * b, x, "x") - d(b, x, "y", "y", "y")


CUBE = Rectangle([0, 0], [1, 1]) * Time(0, 1)
DATA_X = np.random.default_rng(0).uniform(0, 1, (7, 3))
JET_CASES = {
    "scalar": (
        _heat,
        ("u",),
        [
            Neumann(0.3, on="left"),
            Robin(1.0, 2.0, 0.1, on="right"),
            Periodic("y", derivatives=2),
            Initial(lambda x: torch.sin(math.pi * x[:, 0:1])),
            Initial(0.5, derivative=1),
            PointData(DATA_X, np.ones(7)),
        ],
        True,
    ),
    "system": (
        _system_pde,
        ("u", "v"),
        [
            Dirichlet(0.2, component="v", on="bottom"),
            Neumann(0.1, component="u", on="top"),
            Periodic("x", derivatives=1, component=["v", "u"]),
            Initial([0.1, -0.2], derivative=1),
            PointData(DATA_X, np.ones((7, 1)), component=1),
        ],
        False,
    ),
}


# the scalar case puts every condition on one heat equation, u_t's Initial too (warned about)
@pytest.mark.filterwarnings("ignore:.*condition 'initial_dt' prescribes u_t")
@pytest.mark.parametrize("kind", ["kan", "mlp"])
@pytest.mark.parametrize("case", list(JET_CASES))
def test_jet_served_terms_equal_autograd(kind, case):
    from kanpde.training import build_model

    pde_fn, outputs, conds, fused = JET_CASES[case]
    m = len(outputs)
    problem = Problem(name="t", domain=CUBE, pde=pde_fn, conditions=conds, outputs=outputs)
    torch.manual_seed(0)
    cfg = {"grid": 4, "width": [3, 4, m]} if kind == "kan" else {"type": "mlp", "width": [3, 8, m]}
    model = build_model(problem, cfg, DT)
    pts = {"interior": 30, "boundary": 30, "initial": 10, "method": "sobol"}
    with_jet = Residuals(problem, model, pts, {}, DT, "cpu")
    plain = Residuals(problem, Closed(model), pts, {}, DT, "cpu")
    assert with_jet.pde.fused is fused
    assert all(t.fused for t in with_jet.terms), [(t.name, t.fused) for t in with_jet.terms]
    a = {k: float(v.detach()) for k, v in with_jet.terms_of().items()}
    b = {k: float(v.detach()) for k, v in plain.terms_of().items()}
    assert list(a) == list(b)
    for k in a:
        assert b[k] > 0
        assert abs(a[k] - b[k]) <= 1e-10 * b[k], (k, a[k], b[k])


@pytest.mark.parametrize(
    "domain, point, off",
    [
        (Interval(0, 0.3), np.float32(0.3), 1.01),  # float32 data on the end
        (Disk([0, 0], 1), np.round(np.array([np.cos(1.0), np.sin(1.0)]), 6), 1.01),  # 6 digits
        (Rectangle([-1, -1], [1, 1]) - Disk([0, 0], 0.5),
         np.array([0.5 * np.cos(0.3), 0.5 * np.sin(0.3)], dtype=np.float32), 0.99),  # the hole
        (Interval(-1, 1) * Time(0, 0.99), np.array([0.25, 0.99], dtype=np.float32), 1.01),
    ],
)  # fmt: skip
def test_point_data_on_the_boundary_is_accepted_in_float32_and_rounded(domain, point, off):
    # The first check allowed 1e-9 of the domain's size: float32 or 6-digit data were refused.
    x = np.asarray(point, dtype=np.float64).reshape(1, -1)
    ps = PointData(x, [[1.0]]).points(domain, ["u"], None, "grid", 0, torch.float64, "cpu")
    assert ps.x.shape == (1, domain.dim)
    with pytest.raises(ValueError, match=r"1 of 1 points lie outside the domain, e\.g\. \("):
        PointData(x * off, [[1.0]]).points(domain, ["u"], None, "grid", 0, torch.float64, "cpu")


def test_conditions_sharing_a_small_budget_still_cover_their_pieces():
    # Two Dirichlet conditions (one per output) share boundary=2: each got one point, at
    # x = 0, so u(1) and v(1) went unconstrained and a solve "converged" to rel. L2 0.3.
    problem = Problem(
        name="coupled",
        domain=Interval(0, 1),
        outputs=("u", "v"),
        pde=lambda x, u: (
            d(u, x, "x", "x", component=0) - u[:, 1:2],
            d(u, x, "x", "x", component=1),
        ),
        conditions=[
            Dirichlet(0.0, component="u", name="bu"),
            Dirichlet(0.0, component="v", name="bv"),
        ],
    )
    res = Residuals(
        problem,
        Closed(lambda x: torch.cat([torch.sin(x), torch.cos(x)], 1)),
        {"interior": 10, "boundary": 2},
        {},
        DT,
        "cpu",
    )
    for term in res.terms:
        assert sorted(term.points.x[:, 0].tolist()) == [0.0, 1.0], term.name
    # a condition's own n is taken as given: one point, on the square's boundary
    conditions = [Dirichlet(0.0, n=1), Dirichlet(0.0, on="top", name="top")]
    problem = Problem(name="n1", domain=Rectangle([0, 0], [1, 1]),
                      pde=lambda x, u: laplacian(u, x), conditions=conditions)  # fmt: skip
    res = Residuals(problem, Closed(lambda x: torch.sin(x[:, :1] + x[:, 1:])),
                    {"interior": 10, "boundary": 1}, {}, DT, "cpu")  # fmt: skip
    assert [t.points.x.shape[0] for t in res.terms] == [1, 1]


def test_the_boundary_budget_is_shared_by_the_conditions_without_their_own_n():
    # boundary=10 over Dirichlet, Robin and a Neumann with n=7 gave Dirichlet and Robin 3
    # each: the Neumann counted in the division, and the remainder was dropped.
    conditions = [
        Dirichlet(0.0, on=["left", "right"]),
        Neumann(0.0, on="bottom", n=7),
        Robin(1.0, 1.0, 0.0, on="top"),
    ]
    problem = Problem(name="share", domain=Rectangle([0, 0], [1, 1]),
                      pde=lambda x, u: laplacian(u, x), conditions=conditions)  # fmt: skip
    field = Closed(lambda x: torch.sin(x[:, :1] + x[:, 1:]))
    for total, counts in [(10, [5, 7, 5]), (11, [6, 7, 5])]:
        res = Residuals(problem, field, {"interior": 10, "boundary": total, "method": "uniform"},
                        {}, DT, "cpu")  # fmt: skip
        assert [t.points.x.shape[0] for t in res.terms] == counts, total


# -- mutation-testing additions ---------------------------------------------------------------


# Bug caught: a value function returning one value per point, shape (n,), refused for its shape.
def test_a_value_function_may_return_a_flat_array():
    res = build(SQUARE, [Dirichlet(lambda x: x[:, 0] ** 2 + x[:, 1])], quad)
    target = res.terms[0].points.target
    assert target.shape == (res.terms[0].points.x.shape[0], 1)
    assert float(residual(res, "dirichlet").abs().max()) <= 1e-12


# Bug caught: weight=0 (documented as allowed: non-negative) refused.
def test_a_zero_weight_is_allowed_and_weighs_nothing():
    res = build(SQUARE, [Dirichlet(0.0, weight=0.0)], quad)
    assert res.weight("dirichlet") == 0.0
    terms = res.terms_of()
    assert float(terms["dirichlet"].detach()) > 0
    assert float(res.total(terms).detach()) == float(terms["pde"].detach())


# Bug caught: a negative component index accepted (it selected no column at all).
def test_a_negative_component_index_is_refused():
    with pytest.raises(ProblemError, match="component -1 out of range for 2 output"):
        Problem(name="t", domain=SQUARE, pde=pde, outputs=("u", "v"),
                conditions=[Dirichlet(0.0, component=-1)])  # fmt: skip


# Bug caught: an output named twice (by name, or by name and index) was accepted and its
# misfit counted twice.
@pytest.mark.parametrize("component", [["u", "u"], ["v", 1, "u"]])
def test_a_component_named_twice_is_refused(component):
    twice = "'u'" if component[0] == "u" else "'v'"
    with pytest.raises(ProblemError, match=f"component names {twice} more than once"):
        Problem(name="t", domain=SQUARE, pde=pde, outputs=("u", "v"),
                conditions=[Dirichlet(0.0, component=component)])  # fmt: skip


# Bug caught: complex PointData values silently cast to real (imaginary part dropped).
def test_complex_point_data_values_are_refused():
    with pytest.raises(ValueError, match="PointData: values are complex"):
        PointData([[0.5, 0.5]], [1.0 + 2.0j])


# -- the loss terms of Residuals (mutation-testing additions) ----------------------------------


def _residuals(conditions, pde_fn):
    """Residuals of u = x² + y on the unit square for the PDE ``pde_fn``."""
    problem = Problem(name="t", domain=SQUARE, pde=pde_fn, conditions=conditions)
    return Residuals(problem, Closed(quad), POINTS, {}, DT, "cpu")


# Bugs caught: Initial conditions without an "initial" budget not taking the boundary budget;
# a budget of 0 giving a condition no point (at least one).
def test_initial_points_fall_back_to_the_boundary_budget():
    from kanpde.losses import point_budget

    res = build(SPACETIME, [Initial(0.0)], wave, points={"interior": 8, "boundary": 13})
    assert res.terms[0].points.x.shape[0] == 13
    assert point_budget({"boundary": 7}, "initial", 3) == 7
    assert point_budget({"initial": 0, "boundary": 7}, "initial", 2) == 1
    assert [point_budget({"boundary": 7}, "boundary", 3, i) for i in range(3)] == [3, 2, 2]


# Bug caught: a PDE residual of several columns summed over them instead of averaged.
def test_a_pde_residual_with_several_columns_is_averaged_over_them():
    # three columns: two, one per coordinate, would be warned about as a likely broadcast
    def cols(x, u):  # quad: Δu = 2, so the columns are 1, 3 and 2 everywhere
        lap = laplacian(u, x)
        return torch.cat([lap - 1.0, lap + 1.0, lap], dim=1)

    terms = _residuals([], cols).terms_of()
    assert abs(float(terms["pde"].detach()) - (1.0 + 9.0 + 4.0) / 3) <= 1e-12


# Bug caught: an (n,) residual combined with an (n, 1) one, (n, n), accepted as n columns.
def test_a_residual_with_one_column_per_point_is_refused():
    with pytest.raises(ProblemError, match="one column per point"):
        _residuals([], lambda x, u: x[:, 0] * laplacian(u, x))


# Bug caught: the shared jet evaluation computing only the first fused term's second
# derivative pairs (the PDE's u_xx) and not a later term's (a periodic condition's u_yy).
def test_fused_terms_get_every_pair_they_need():
    from kanpde.training import build_model

    problem = Problem(name="t", domain=SQUARE, pde=lambda x, u: d(u, x, "x", "x") + u,
                      conditions=[Periodic("y", derivatives=2)])  # fmt: skip
    torch.manual_seed(0)
    model = build_model(problem, {"grid": 4, "width": [2, 3, 1]}, DT)
    pts = {"interior": 12, "boundary": 12, "method": "sobol"}
    fused = Residuals(problem, model, pts, {}, DT, "cpu")
    plain = Residuals(problem, Closed(model), pts, {}, DT, "cpu")
    assert fused.fully_fused and fused.pde.pairs == ((0, 0),)
    a = {k: float(v.detach()) for k, v in fused.terms_of().items()}
    b = {k: float(v.detach()) for k, v in plain.terms_of().items()}
    for k in b:
        assert b[k] > 0 and abs(a[k] - b[k]) <= 1e-10 * b[k], (k, a[k], b[k])


# Bug caught: the probe of a periodic term with few points indexing past its point pairs.
def test_periodic_condition_with_few_points():
    res = build(SPACETIME, [Periodic("x", n=3)], wave)
    assert res.terms[0].points.x.shape[0] == 6
    assert float(res.terms_of()["periodic[x]"].detach()) <= 1e-20


# Bug caught: set_interior not updating the points all_points() reports (grid updates).
def test_set_interior_and_resample_update_all_points():
    res = build(SQUARE, [Dirichlet(quad)], quad)
    new = torch.rand(16, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    res.set_interior(new)
    assert torch.equal(res.interior.x, new)
    assert torch.equal(res.all_points()[:16], new)
    assert res.all_points().shape[0] == 16 + res.terms[0].points.x.shape[0]
    res.resample(seed=3)
    assert torch.equal(res.all_points()[:16], res.interior.x)


# Bugs caught: the adaptive draw's probability missing its "+ 1" (|r|/mean|r| + 1, mean 2);
# the pointwise residual that weighs it signed instead of absolute.
def test_adaptive_resampling_probabilities(monkeypatch):
    res = _residuals([Dirichlet(quad)], lambda x, u: laplacian(u, x) + u - 2.5)
    x = res.interior.x
    r = x[:, 0] ** 2 + x[:, 1] - 0.5  # Δu + u - 2.5 for u = x² + y: changes sign
    assert float(r.min()) < 0 < float(r.max())
    assert torch.allclose(res._pointwise_residual(x), r.abs(), rtol=0, atol=1e-12)
    seen = []
    real = torch.multinomial

    def spy(prob, n, **kw):
        seen.append(prob)
        return real(prob, n, **kw)

    monkeypatch.setattr(torch, "multinomial", spy)
    res = build(SQUARE, [Dirichlet(quad)], lambda x: torch.sin(3 * x[:, :1]) * x[:, 1:])
    res.resample(seed=2, adaptive=True, pool=4)
    (prob,) = seen
    assert prob.shape == (64,) and float(prob.min()) >= 1.0
    assert abs(float(prob.mean()) - 2.0) <= 1e-12
    assert torch.unique(res.interior.x, dim=0).shape[0] == 16  # drawn without replacement


# Bug caught: the regulariser's stage weight ignored in the loss.
def test_penalty_is_weighted():
    res = build(SQUARE, [Dirichlet(quad)], quad_perturbed)
    res.penalty = lambda model, x: torch.tensor(2.0, dtype=DT)
    res.penalty_weight = 0.25
    loss, terms = res()
    assert float(terms["sparsity"]) == 2.0
    rest = float(res.total({k: v for k, v in terms.items() if k != "sparsity"}).detach())
    assert abs(float(loss.detach()) - (rest + 0.5)) <= 1e-12


# Bugs caught: test errors relative to the prediction, a signed max error, per-output MSE
# summed, per-output errors missing for two outputs.
def test_error_metrics_closed_form():
    from kanpde.losses import error_metrics

    ref = torch.tensor([[3.0, 1.0], [4.0, 0.0], [0.0, 2.0], [0.0, 2.0]], dtype=DT)
    diff = torch.tensor([[0.3, -0.5], [0.0, 0.0], [-0.4, 0.0], [0.0, 0.1]], dtype=DT)
    m = error_metrics(ref + diff, ref, ["u", "v"])
    assert m["mse"] == pytest.approx((0.09 + 0.25 + 0.16 + 0.01) / 8, rel=1e-12)
    assert m["rel_l2"] == pytest.approx(0.51**0.5 / 34**0.5, rel=1e-12)
    assert m["max_err"] == pytest.approx(0.5, rel=1e-12)
    assert m["rel_l2_u"] == pytest.approx(0.5 / 5.0, rel=1e-12)
    assert m["rel_l2_v"] == pytest.approx(0.26**0.5 / 3.0, rel=1e-12)
    assert m["mse_u"] == pytest.approx(0.25 / 4, rel=1e-12)
    assert m["mse_v"] == pytest.approx(0.26 / 4, rel=1e-12)
    one = error_metrics(ref[:, :1] + diff[:, :1], ref[:, :1], ["u"])
    assert set(one) == {"mse", "rel_l2", "max_err"} and one["max_err"] == pytest.approx(0.4)


# Bug caught: derivatives of split() columns not counted as the model's, so a PDE written on
# split columns left the shared jet evaluation.
def test_a_pde_on_split_columns_is_jet_served():
    from kanpde.training import build_model

    def on_columns(x, u):
        a, b = split(u)
        return laplacian(a, x) + b, d(b, x, "x") - a

    problem = Problem(name="t", domain=SQUARE, pde=on_columns, conditions=[Dirichlet(0.0)],
                      outputs=("u", "v"))  # fmt: skip
    torch.manual_seed(0)
    model = build_model(problem, {"grid": 4, "width": [2, 3, 2]}, DT)
    pts = {"interior": 12, "boundary": 8, "method": "sobol"}
    fused = Residuals(problem, model, pts, {}, DT, "cpu")
    assert fused.pde.fused and fused.fully_fused
    a = {k: float(v.detach()) for k, v in fused.terms_of().items()}
    b = {k: float(v.detach()) for k, v in Residuals(problem, Closed(model), pts, {}, DT, "cpu")
         .terms_of().items()}  # fmt: skip
    for k in b:
        assert b[k] > 0 and abs(a[k] - b[k]) <= 1e-10 * b[k], (k, a[k], b[k])


# Bug caught: a flat (n,) PDE residual refused instead of taken as one column.
def test_a_flat_pde_residual_is_one_column():
    terms = _residuals([], lambda x, u: (laplacian(u, x) - 1.0)[:, 0]).terms_of()
    assert abs(float(terms["pde"].detach()) - 1.0) <= 1e-12


# Bug caught: a value function's keyword parameter with a default taken for the normals.
def test_a_value_function_with_a_default_argument_takes_the_points_only():
    def g(x, c=2.0):
        return c * x[:, 0:1]

    res = build(SQUARE, [Dirichlet(g)], lambda x: 2 * x[:, 0:1])
    assert float(residual(res, "dirichlet").abs().max()) <= 1e-12
    res = build(SPACETIME, [Initial(g)], lambda x: 2 * x[:, 0:1] + x[:, 1:2])  # no normals
    assert float(residual(res, "initial").abs().max()) <= 1e-12


# Bugs caught: an array component (numpy) refused; a constant broadcast to one column only
# on a condition of several outputs.
def test_array_components_and_a_constant_for_several_outputs():
    assert Dirichlet(0.0, component=np.array([1, 0])).columns(("u", "v")) == [1, 0]
    assert Dirichlet(0.0, component=torch.tensor(1)).columns(("u", "v")) == [1]
    res = build(SQUARE, [Dirichlet(1.5)], lambda x: 1.5 + 0 * x, outputs=("u", "v"))
    target = res.terms[0].points.target
    assert target.shape == (res.terms[0].points.x.shape[0], 2) and bool((target == 1.5).all())
    assert float(residual(res, "dirichlet").abs().max()) == 0.0


# Bug caught: the highest derivative order taken (for the flat-spline warning) counting only
# derivatives of the model's outputs, not of expressions of them.
def test_highest_derivative_order_counts_derivatives_of_expressions():
    assert _residuals([], lambda x, u: d(u * u, x, "x", "x") + u).pde.highest == 2
    assert _residuals([], lambda x, u: d(u, x, "x", "x", "y") + u).pde.highest == 3
    assert _residuals([], lambda x, u: u - 1.0).pde.highest == 0


# Bug caught: a condition's value-function error named the condition twice ("dirichlet:
# dirichlet value function raised ...").
def test_a_failing_value_function_is_named_once():
    with pytest.raises(ProblemError) as e:
        build(SQUARE, [Dirichlet(lambda x: x[:, 5])], quad)
    msg = str(e.value)
    assert "dirichlet value function raised IndexError" in msg
    assert "dirichlet: dirichlet" not in msg and "\n" not in msg
