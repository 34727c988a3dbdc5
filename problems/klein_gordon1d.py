"""1-D nonlinear Klein–Gordon equation (Wang, Teng & Perdikaris 2021, "gradient pathologies").

u_tt - u_xx + u³ = f            on x ∈ [0, 1], t ∈ [0, 1],
exact u = x cos(5πt) + (xt)³,   f from the exact solution,
u(x, 0) = x,  u_t(x, 0) = 0,
u(0, t) = 0,  u(1, t) = cos(5πt) + t³.
"""

import math

import torch

from kanpde import Dirichlet, Initial, Interval, Problem, Time, d


def exact(x):
    xs, t = x[:, 0:1], x[:, 1:2]
    return xs * torch.cos(5 * math.pi * t) + (xs * t) ** 3


def source(x):
    xs, t = x[:, 0:1], x[:, 1:2]
    u_tt = -25 * math.pi**2 * xs * torch.cos(5 * math.pi * t) + 6 * xs**3 * t
    u_xx = 6 * xs * t**3
    return u_tt - u_xx + exact(x) ** 3


def pde(x, u):
    return d(u, x, "t", "t") - d(u, x, "x", "x") + u**3 - source(x)


problem = Problem(
    name="klein_gordon1d",
    description="Klein-Gordon u_tt - u_xx + u^3 = f on [0,1]^2, exact x cos(5 pi t) + (xt)^3",
    domain=Interval(0, 1) * Time(0, 1),
    pde=pde,
    conditions=[
        Dirichlet(exact),  # u(0, t) = 0 and u(1, t) = cos(5πt) + t³
        Initial(exact),
        Initial(0.0, derivative=1),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 2000}],
    points={"interior": 4000, "boundary": 400, "initial": 400, "method": "sobol", "test": 101},
    # f's mean square is about 1e4 (u_tt alone reaches 25π² ≈ 247): 1e-3 keeps the initial and
    # boundary data, of order one, from being an afterthought in the loss
    weights={"pde": 1e-3},
)
