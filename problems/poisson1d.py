"""1-D Poisson equation, the smallest PINN test.

    u'' = -π² sin(πx)  on [-1, 1],   u(±1) = 0,
    exact solution u = sin(πx).

A [1, 5, 1] KAN: one input needs few edges. Grids 5 → 10 → 20 → 40 with L-BFGS; the residual is
weighted 0.01 because it is ~π² times larger than the solution.
"""

import math

import torch

from kanpde import Dirichlet, Interval, Problem, d


def exact(x):
    return torch.sin(math.pi * x)


def pde(x, u):
    # residual of u'' = -π² sin(πx)
    return d(u, x, "x", "x") + math.pi**2 * exact(x)


problem = Problem(
    name="poisson1d",
    description="Poisson u'' = -pi^2 sin(pi x) on [-1,1], exact sin(pi x)",
    domain=Interval(-1, 1),
    pde=pde,
    conditions=[Dirichlet(0.0)],  # both end points
    exact=exact,
    model={"width": [1, 5, 1], "k": 3},
    schedule=[
        {"grid": 5, "lbfgs": 200},
        {"grid": 10, "lbfgs": 200},
        {"grid": 20, "lbfgs": 300},
        {"grid": 40, "lbfgs": 500},
    ],
    points={"interior": 500, "boundary": 2, "method": "grid", "test": 1001},
    weights={"pde": 0.01},
)
