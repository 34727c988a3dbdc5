"""Laplace equation on the L-shaped domain with the re-entrant corner singularity.

    Δu = 0  on Ω = (-1, 1)² minus the quadrant [0, 1] × [-1, 0],
    u = g on ∂Ω with g taken from the exact solution
    u = r^{2/3} sin(2θ/3),  θ ∈ [0, 3π/2] measured from the positive x axis.

u vanishes on the two edges that meet at the re-entrant corner (0, 0), where its gradient
blows up like r^{-1/3}: the classic test of how a method copes with a corner singularity.
"""

import math

import torch

from kanpde import Dirichlet, Polygon, Problem, laplacian


def exact(x):
    r = torch.hypot(x[:, 0:1], x[:, 1:2])
    theta = torch.atan2(x[:, 1:2], x[:, 0:1])
    theta = torch.where(theta < 0, theta + 2 * math.pi, theta)  # (π, 3π/2] below the x axis
    return r ** (2 / 3) * torch.sin(2 * theta / 3)


def pde(x, u):
    return laplacian(u, x)


problem = Problem(
    name="poisson_lshape",
    description="Laplace on the L-shape, corner singularity r^(2/3) sin(2 theta/3)",
    domain=Polygon([[0, 0], [1, 0], [1, 1], [-1, 1], [-1, -1], [0, -1]]),
    pde=pde,
    conditions=[Dirichlet(exact)],  # the exact solution's values on the whole boundary
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 2500}],
    # many points: the gradient is singular at the re-entrant corner (r^(-1/3))
    points={"interior": 6000, "boundary": 1000, "method": "sobol", "test": 101},
    # the second derivatives blow up like r^(-4/3) at the corner, so a few points there weigh
    # heavily in the PDE term: 0.1 gives rel. L2 8.5e-3, weight 1 gives 1.6e-2 (Intel Xeon)
    weights={"pde": 0.1},
)
