"""1-D periodic advection ("convection" of Krishnapriyan et al. 2021, failure modes of PINNs).

u_t + β u_x = 0                 on x ∈ [0, 2π], t ∈ [0, 1],  β = 10,
u(x, 0) = sin(x),  u periodic in x,
exact u = sin(x - βt)           (the profile carried along the characteristics).
"""

import math

import torch

from kanpde import Initial, Interval, Periodic, Problem, Time, d

BETA = 10.0


def exact(x):
    return torch.sin(x[:, 0:1] - BETA * x[:, 1:2])


def pde(x, u):
    return d(u, x, "t") + BETA * d(u, x, "x")


problem = Problem(
    name="advection1d",
    description="Advection u_t + 10 u_x = 0 on [0,2pi]x[0,1], periodic, exact sin(x - 10t)",
    domain=Interval(0, 2 * math.pi) * Time(0, 1),
    pde=pde,
    conditions=[
        Periodic("x", derivatives=0),  # u(0, t) = u(2π, t): all a first-order PDE needs
        Initial(lambda x: torch.sin(x[:, 0:1])),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 2000}],
    points={"interior": 2000, "boundary": 200, "initial": 200, "method": "sobol", "test": 101},
)
