"""Lid-driven cavity: steady incompressible Navier–Stokes at Re = 100 (PINNacle NS2d-C).

    u·∇u + ∇p - (1/Re) Δu = 0,   ∇·u = 0   on [0, 1]²,
    lid u = 4x(1 - x), v = 0 on y = 1;   u = v = 0 on the other walls.

No closed form: the reference is kanpde's own streamfunction–vorticity finite-difference
solver (:func:`kanpde.reference.lid_driven_cavity`, Richardson-extrapolated), on the
101 × 101 graded grid of the PINNacle data; it is computed on first use and then read from
the on-disk cache. The pressure is defined only up to a constant: both the PINN (one data
point) and the reference use the gauge p = 0 at the centre of the cavity.
"""

import torch

from kanpde import Dirichlet, PointData, Problem, Rectangle, d, laplacian, split
from kanpde.reference import Reference, get

RE = 100.0
CENTRE = (0.5, 0.5)  # a node of the reference grid


def reference():
    ref = get("lid_driven_cavity", re=RE)  # cached after the first call
    x, y = ref.axes
    i, j = list(x).index(CENTRE[0]), list(y).index(CENTRE[1])
    values = dict(ref.values, p=ref.values["p"] - ref.values["p"][i, j])
    return Reference(ref.names, ref.axes, values, {**ref.meta, "pressure": "p = 0 at the centre"})


def lid(x):
    u = 4 * x[:, 0:1] * (1 - x[:, 0:1])
    return torch.cat([u, torch.zeros_like(u)], dim=1)


def pde(x, out):
    u, v, p = split(out)
    mom_x = u * d(u, x, "x") + v * d(u, x, "y") + d(p, x, "x") - laplacian(u, x) / RE
    mom_y = u * d(v, x, "x") + v * d(v, x, "y") + d(p, x, "y") - laplacian(v, x) / RE
    mass = d(u, x, "x") + d(v, x, "y")
    return {"momentum_x": mom_x, "momentum_y": mom_y, "continuity": mass}


problem = Problem(
    name="lid_driven_cavity",
    description="Lid-driven cavity, steady Navier-Stokes at Re=100 (lid 4x(1-x); u, v, p)",
    domain=Rectangle([0, 0], [1, 1]),
    pde=pde,
    conditions=[
        Dirichlet(lid, on="top", component=["u", "v"], name="lid"),
        Dirichlet(0.0, on=["left", "right", "bottom"], component=["u", "v"], name="walls"),
        PointData([CENTRE], [[0.0]], component="p", name="pressure_gauge"),
    ],
    reference=reference,
    outputs=["u", "v", "p"],
    model={"width": [2, 10, 10, 3], "k": 3},
    # Adam first, then L-BFGS: with L-BFGS alone for the same 1100 steps u and v end at
    # rel. L2 1.7e-2 and 2.6e-2 instead of 1.2e-2 and 1.7e-2 (Intel Xeon)
    schedule=[{"grid": 5, "adam": 500, "lr": 1e-2, "lbfgs": 300}, {"grid": 10, "lbfgs": 300}],
    points={"interior": 3000, "boundary": 800, "method": "sobol"},
)
