"""Unknowns named in conditions: ``Robin(alpha="h", ...)`` and ``Dirichlet(value="T0")``.

The residuals are checked against closed forms on u = x² + y over the unit square, whose
right face (x = 1, outward normal +x) has u = 1 + y and ∂u/∂n = 2; their gradients with respect
to the unknowns against the same closed forms and against finite differences.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from closed_form import Closed

import kanpde
from kanpde import (
    Dirichlet,
    Interval,
    Neumann,
    PointData,
    Problem,
    ProblemError,
    Rectangle,
    Robin,
    d,
    laplacian,
)
from kanpde.losses import Residuals

DT = torch.float64
SQUARE = Rectangle([0, 0], [1, 1])
POINTS = {"interior": 16, "boundary": 40, "method": "sobol"}


def field(x):
    return x[:, 0:1] ** 2 + x[:, 1:2]


def pde(x, u, p):  # exact for `field`, and reads no unknown: the conditions do
    return laplacian(u, x) - 2.0 + 0 * u


def build(conditions, unknowns, start=None):
    problem = Problem(name="c", domain=SQUARE, pde=pde, conditions=conditions, unknowns=unknowns)
    return Residuals(problem, Closed(field), POINTS, {}, DT, "cpu", unknowns=start)


def raw(res: Residuals, name: str) -> torch.Tensor:
    """The residual of condition ``name`` with the graph to the unknowns kept."""
    term = next(t for t in res.terms if t.name == name)
    with res.context() as ctx:
        x = term.points.x.detach().requires_grad_(True)
        return res._condition_residual(term, x, res.model(x), term.points, ctx)


def test_robin_coefficients_named_as_unknowns():
    conds = [
        Robin(alpha="h", beta=3.0, value=1.0, on="right"),
        Robin(alpha=2.0, beta="b", value=0.0, on="top"),  # top: u = x² + 1, ∂u/∂n = 1
    ]
    res = build(conds, {"h": 2.5, "b": -4.0})
    h, b = res.unknowns["h"], res.unknowns["b"]
    right = raw(res, "robin[right]")
    y = next(t for t in res.terms if t.name == "robin[right]").points.x[:, 1:2]
    assert torch.allclose(right, 2.5 * (1 + y) + 3.0 * 2 - 1.0, atol=1e-12, rtol=0)
    (dh,) = torch.autograd.grad(right.sum(), h)  # ∂r/∂h = u at each point
    assert math.isclose(float(dh), float((1 + y).sum()), rel_tol=1e-12)
    top = raw(res, "robin[top]")
    xt = next(t for t in res.terms if t.name == "robin[top]").points.x[:, 0:1]
    assert torch.allclose(top, 2.0 * (xt**2 + 1) - 4.0, atol=1e-12, rtol=0)
    (db,) = torch.autograd.grad(top.sum(), b)  # ∂r/∂b = ∂u/∂n = 1 at each point
    assert float(db) == pytest.approx(len(xt), rel=1e-12)


def test_a_value_named_as_an_unknown_is_a_trained_constant():
    res = build([Dirichlet("T0", on="left"), Neumann(2.0, on="right")], {"T0": 0.25})
    r = raw(res, "dirichlet[left]")  # left: u = y, so r = y - T0
    y = next(t for t in res.terms if t.name == "dirichlet[left]").points.x[:, 1:2]
    assert torch.allclose(r, y - 0.25, atol=1e-14, rtol=0)
    (g,) = torch.autograd.grad(r.sum(), res.unknowns["T0"])
    assert float(g) == -len(y)


def test_the_loss_gradient_in_an_unknown_matches_finite_differences():
    conds = [Robin(alpha="h", beta=1.0, value=0.5, on="right"), Dirichlet("T0", on="left")]

    def loss(h: float, t0: float) -> torch.Tensor:
        return build(conds, {"h": 1.0, "T0": 0.0}, start={"h": h, "T0": t0})()[0]

    res = build(conds, {"h": 1.0, "T0": 0.0}, start={"h": 0.7, "T0": 0.3})
    grads = torch.autograd.grad(res()[0], [res.unknowns["h"], res.unknowns["T0"]])
    eps = 1e-6
    for g, (plus, minus) in zip(
        grads, [((0.7 + eps, 0.3), (0.7 - eps, 0.3)), ((0.7, 0.3 + eps), (0.7, 0.3 - eps))]
    ):
        fd = float((loss(*plus) - loss(*minus)).detach()) / (2 * eps)
        assert float(g) == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize(
    "unknowns, message",
    [
        (
            {"hh": 1.0, "c": 2.0},
            "condition 'robin[right]': alpha 'h' is not one of the problem's unknowns (hh, c) "
            "(did you mean 'hh'?)",
        ),
        (
            {},
            "condition 'robin[right]': alpha 'h' names an unknown, but the problem declares "
            "none; add unknowns={'h': 1.0} (its starting value)",
        ),
    ],
)
def test_an_undeclared_unknown_in_a_condition_is_refused(unknowns, message):
    def pde2(x, u, *p):
        return laplacian(u, x)

    with pytest.raises(ProblemError) as e:
        Problem(
            name="c",
            domain=SQUARE,
            pde=pde2,
            conditions=[Robin(alpha="h", beta=1.0, on="right")],
            unknowns=unknowns,
        )
    assert str(e.value) == f"problem 'c': {message}"


def test_a_heat_transfer_coefficient_is_recovered():
    # -u'' = -2 on [0, 1] (u = x² + c x) with u(0) = 0 and h u + u' = 5 at x = 1: the data
    # u = x² fix c = 0, so h·1 + 2 = 5 gives h = 3; the PDE never reads h.
    xs = np.linspace(0.1, 0.9, 9)[:, None]
    problem = Problem(
        name="robin_h",
        domain=Interval(0, 1),
        pde=lambda x, u, p: d(u, x, "x", "x") - 2.0,
        conditions=[
            Dirichlet(0.0, on="left"),
            Robin(alpha="h", beta=1.0, value=5.0, on="right"),
            PointData(xs, xs**2),
        ],
        exact=lambda x: x**2,
        unknowns={"h": 0.5},
        model={"width": [1, 5, 1], "grid": 5},
        schedule=[{"lbfgs": 400}],
        points={"interior": 100, "test": 41},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        run = kanpde.solve(problem, device="cpu", progress=False)
    assert run.history["param_h"][0] == 0.5
    assert abs(run.unknowns["h"] - 3.0) < 1e-3 and run.metrics["rel_l2"] < 1e-3


def test_a_pde_may_leave_out_p_when_the_conditions_read_every_unknown():
    def plain(x, u):
        return laplacian(u, x) - 2.0 + 0 * u

    conds = [Dirichlet("T0", on="left"), Neumann(2.0, on="right")]
    problem = Problem(name="c", domain=SQUARE, pde=plain, unknowns={"T0": 0.25}, conditions=conds)
    res = Residuals(problem, Closed(field), POINTS, {}, DT, "cpu")
    terms = {k: v.detach() for k, v in res.terms_of().items()}
    assert float(terms["pde"]) < 1e-20  # the exact field: pde(x, u) was called
    y = next(t for t in res.terms if t.name == "dirichlet[left]").points.x[:, 1:2]
    assert float(terms["dirichlet[left]"]) == pytest.approx(float(((y - 0.25) ** 2).mean()))
    with pytest.raises(ProblemError, match=r"pde must take \(x, u, p\) when the problem has "
                       r"unknowns; p\['k'\] is the current value of k"):  # fmt: skip
        Problem(name="c", domain=SQUARE, pde=plain, unknowns={"T0": 0.25, "k": 1.0},
                conditions=[Dirichlet("T0", on="left")])  # fmt: skip


def test_a_name_differing_in_case_is_suggested_before_pde_is_blamed():
    with pytest.raises(ProblemError) as e:
        Problem(name="c", domain=SQUARE, pde=lambda x, u: laplacian(u, x),
                conditions=[Dirichlet("t0")], unknowns={"T0": 1.0})  # fmt: skip
    assert str(e.value) == (
        "problem 'c': condition 'dirichlet': value 't0' is not one of the problem's unknowns "
        "(T0) (did you mean 'T0'?)"
    )


@pytest.mark.parametrize(
    "x, values, message",
    [
        ([[0.5], [0.7]], 0.5, "values must hold one observation per point, (n,) or (n, c), got"),
        ([[0.5]], lambda x: x, "x and values are arrays of the observations, not functions"),
        ([["a"]], [1.0], "x and values must be numeric arrays"),
    ],
)
def test_point_data_of_the_wrong_kind_is_refused_in_one_line(x, values, message):
    with pytest.raises(
        ValueError, match=r"^PointData: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        PointData(x, values)


def test_point_data_on_a_line_may_give_x_as_a_vector():
    xs = np.linspace(0.1, 0.9, 5)
    data = PointData(xs, xs**2)
    assert data.x.shape == (5, 1) and data.values.shape == (5, 1)
    np.testing.assert_array_equal(data.x[:, 0], xs)
