"""Inverse problem: the heat transfer coefficient of a cooled end from 25 sensor readings.

    u_t = u_xx                      on x ∈ [0, 1], t ∈ [0, 1],
    u_x(0, t) = 0                   (insulated),
    h u(1, t) + u_x(1, t) = 0       (Newton cooling, h unknown: true 1, start 0.3),
    u(x, 0) = cos(k₁x) + ½ cos(k₂x),

exact u = e^{-k₁² t} cos(k₁x) + ½ e^{-k₂² t} cos(k₂x), with k₁ < k₂ the first two roots of
k tan k = h (heat_robin.py's forward problem). The unknown is read by the Robin condition, not
by the PDE, which therefore needs no p.
"""

import numpy as np
import torch

from kanpde import Initial, Interval, Neumann, PointData, Problem, Robin, Time, d

# roots of k tan(k) = 1 (the true h) in (0, π/2) and (π, 3π/2), to double precision
K1, K2 = 0.8603335890193797, 3.4256184594817283


def exact(x):
    xs, t = x[:, 0:1], x[:, 1:2]
    return torch.exp(-(K1**2) * t) * torch.cos(K1 * xs) + 0.5 * torch.exp(-(K2**2) * t) * torch.cos(
        K2 * xs
    )


def pde(x, u):
    return d(u, x, "t") - d(u, x, "x", "x")


# The sensors: 5 positions x 5 times (noise-free readings of the exact solution).
xs, ts = np.meshgrid(np.linspace(0.2, 1.0, 5), np.linspace(0.2, 1.0, 5))
sensors = np.c_[xs.ravel(), ts.ravel()]
readings = exact(torch.as_tensor(sensors)).numpy()

problem = Problem(
    name="inverse_robin",
    description="Heat transfer coefficient h of h u + u_x = 0 from 25 readings (true 1, start 0.3)",
    domain=Interval(0, 1) * Time(0, 1),
    pde=pde,
    unknowns={"h": 0.3},
    conditions=[
        Neumann(0.0, on="left"),
        # alpha·u + beta·∂u/∂n = 0 with alpha the unknown h; the outward normal at x = 1 is +x
        Robin(alpha="h", beta=1.0, value=0.0, on="right"),
        Initial(exact),
        PointData(sensors, readings, name="sensors"),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 1000}],
    points={"interior": 2000, "boundary": 400, "initial": 200, "method": "sobol", "test": 101},
)
