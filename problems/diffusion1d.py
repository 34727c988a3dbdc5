"""1-D diffusion with a source (jaxKAN benchmark).

u_t = u_xx + e^{-t} (π² - 1) sin(πx)   on x ∈ [-1, 1], t ∈ [0, 1],
u(x, 0) = sin(πx),  u(±1, t) = 0,      exact u = e^{-t} sin(πx).
"""

import math

import torch

from kanpde import Dirichlet, Initial, Interval, Problem, Time, d


def exact(x):
    return torch.exp(-x[:, 1:2]) * torch.sin(math.pi * x[:, 0:1])


def pde(x, u):
    source = (math.pi**2 - 1) * exact(x)
    return d(u, x, "t") - d(u, x, "x", "x") - source


problem = Problem(
    name="diffusion1d",
    description="Diffusion u_t = u_xx + f on [-1,1]x[0,1], exact exp(-t) sin(pi x)",
    domain=Interval(-1, 1) * Time(0, 1),
    pde=pde,
    conditions=[
        Dirichlet(0.0),  # x = ±1 (the lateral boundary of the space-time domain)
        Initial(lambda x: torch.sin(math.pi * x[:, 0:1])),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 1500}],
    points={"interior": 2000, "boundary": 200, "initial": 200, "method": "sobol", "test": 101},
    weights={"pde": 0.1},  # |u_t - u_xx| is ~10x the field; balance it against the boundary
)
