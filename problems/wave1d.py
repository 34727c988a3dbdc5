"""1-D wave equation with two modes (PINNacle Wave1d-C).

u_tt = 4 u_xx                   on x ∈ [0, 1], t ∈ [0, 1],
u(0, t) = u(1, t) = 0,
u(x, 0) = sin(πx) + ½ sin(4πx),  u_t(x, 0) = 0,
exact u = sin(πx) cos(2πt) + ½ sin(4πx) cos(8πt).
"""

import math

import torch

from kanpde import Dirichlet, Initial, Interval, Problem, Time, d


def exact(x):
    xs, t = x[:, 0:1], x[:, 1:2]
    low = torch.sin(math.pi * xs) * torch.cos(2 * math.pi * t)
    high = 0.5 * torch.sin(4 * math.pi * xs) * torch.cos(8 * math.pi * t)
    return low + high


def pde(x, u):
    return d(u, x, "t", "t") - 4 * d(u, x, "x", "x")


problem = Problem(
    name="wave1d",
    description="Wave u_tt = 4 u_xx on [0,1]x[0,1], two modes (PINNacle Wave1d-C)",
    domain=Interval(0, 1) * Time(0, 1),
    pde=pde,
    conditions=[
        Dirichlet(0.0),
        Initial(exact),
        Initial(0.0, derivative=1),
    ],
    exact=exact,
    model={"width": [2, 10, 10, 1], "k": 3},
    schedule=[
        {"grid": 5, "lbfgs": 500},
        {"grid": 10, "lbfgs": 1000},
        {"grid": 20, "lbfgs": 1500},
        {"grid": 40, "lbfgs": 2000},
    ],
    points={"interior": 4000, "boundary": 400, "initial": 400, "method": "sobol", "test": 101},
    # |u_tt| reaches about 350 (≤ 36π²): a small PDE weight lets the initial data shape the solution
    weights={"pde": 1e-5, "initial": 10.0},
)
