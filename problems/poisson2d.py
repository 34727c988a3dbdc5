"""2-D Poisson equation from the KAN paper.

    Δu = -2π² sin(πx) sin(πy)  on [-1, 1]²,   u = 0 on the boundary,
    exact solution u = sin(πx) sin(πy).

A [2, 10, 1] KAN refined 5 → 10 → 20 grid intervals with L-BFGS, as in the paper. The PDE
residual is weighted 0.01 against the boundary term (the residual is ~2π² times larger than
the solution), as in pykan's tutorial.
"""

import math

import torch

from kanpde import Dirichlet, Problem, Rectangle, laplacian


def exact(x):
    return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])


def pde(x, u):
    # residual of Δu = -2π² sin(πx) sin(πy)
    return laplacian(u, x) + 2 * math.pi**2 * exact(x)


problem = Problem(
    name="poisson2d",
    description="Poisson on [-1,1]^2, exact sin(pi x) sin(pi y) (KAN paper)",
    domain=Rectangle([-1, -1], [1, 1]),
    pde=pde,
    conditions=[Dirichlet(0.0)],  # whole boundary unless on= says where
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 400}, {"grid": 20, "lbfgs": 3000}],
    points={"interior": 2601, "boundary": 204, "method": "grid", "test": 101},
    weights={"pde": 0.01},
)
