"""Allen–Cahn equation (the DeepXDE benchmark).

    u_t = 0.001 u_xx + 5 (u - u³)   on x ∈ [-1, 1], t ∈ [0, 1],
    u(x, 0) = x² cos(πx),  u(±1, t) = -1.

No closed form: the reference is kanpde's Chebyshev/ETDRK4 solution on the 201 × 101 grid of
DeepXDE's ``Allen_Cahn.mat``, computed once and cached.
"""

import math

import torch

from kanpde import Dirichlet, Initial, Interval, Problem, Time, d
from kanpde.reference import get

EPS, RATE = 1e-3, 5.0  # diffusion coefficient, reaction rate


def reference():
    return get("allen_cahn", eps=EPS, k=RATE)  # cached on disk after the first call


def pde(x, u):
    return d(u, x, "t") - EPS * d(u, x, "x", "x") - RATE * (u - u**3)


problem = Problem(
    name="allen_cahn1d",
    description="Allen-Cahn u_t = 0.001 u_xx + 5(u - u^3) on [-1,1]x[0,1] (DeepXDE data)",
    domain=Interval(-1, 1) * Time(0, 1),
    pde=pde,
    conditions=[
        Dirichlet(-1.0),
        Initial(lambda x: x[:, 0:1] ** 2 * torch.cos(math.pi * x[:, 0:1])),
    ],
    reference=reference,
    model={"width": [2, 16, 1], "k": 3},
    schedule=[
        # adapt the grids to the layer inputs while the first stage settles
        {"grid": 10, "lbfgs": 500, "update_grid": 100, "update_until": 300},
        {"grid": 20, "lbfgs": 1000},
        # the error still falls late: seed 0 is at rel. L2 4.3e-3 after 1500 steps (4.9e-3 on
        # another CPU) and 2.0e-3 after 5000 (seed 1: 7.4e-3 and 3.7e-3); the final figures
        # are in benchmarks/results/catalogue*.json, the others from those runs' histories
        {"grid": 40, "lbfgs": 5000},
    ],
    points={"interior": 8000, "boundary": 200, "initial": 400, "method": "sobol"},
    # u ≡ -1 satisfies the PDE and the boundary condition: weight the initial data so it wins
    weights={"initial": 100},
)
