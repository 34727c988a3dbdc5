"""1-D heat equation with an insulated end and Newton cooling at the other (Robin).

    u_t = u_xx                      on x ∈ [0, 1], t ∈ [0, 1],
    u_x(0, t) = 0                   (Neumann: insulated),
    u_x(1, t) + h u(1, t) = 0       (Robin: heat loss to a zero-temperature surrounding), h = 1,
    u(x, 0) = cos(k₁x) + ½ cos(k₂x),
    exact u = e^{-k₁² t} cos(k₁x) + ½ e^{-k₂² t} cos(k₂x),

where k₁ < k₂ are the first two roots of k tan k = h (the eigenvalues of this Robin problem).
"""

import math

import torch
from scipy.optimize import brentq

from kanpde import Initial, Interval, Neumann, Problem, Robin, Time, d

H = 1.0  # any H > 0: the exact solution's k₁, k₂ follow
# roots of k tan(k) = H in (0, π/2) and (π, 3π/2), written as k sin k - H cos k = 0 (no poles)
K1, K2 = (brentq(lambda k: k * math.sin(k) - H * math.cos(k), a, b) for a, b in
          ((0, math.pi / 2), (math.pi, 1.5 * math.pi)))  # fmt: skip


def exact(x):
    xs, t = x[:, 0:1], x[:, 1:2]
    first = torch.exp(-(K1**2) * t) * torch.cos(K1 * xs)
    second = 0.5 * torch.exp(-(K2**2) * t) * torch.cos(K2 * xs)
    return first + second


def pde(x, u):
    return d(u, x, "t") - d(u, x, "x", "x")


problem = Problem(
    name="heat_robin",
    description="Heat u_t = u_xx on [0,1]x[0,1], Neumann at x=0, Robin u_x + u = 0 at x=1",
    domain=Interval(0, 1) * Time(0, 1),
    pde=pde,
    conditions=[
        Neumann(0.0, on="left"),
        # alpha·u + beta·∂u/∂n = 0; the outward normal at x = 1 is +x
        Robin(alpha=H, beta=1.0, value=0.0, on="right"),
        Initial(exact),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 1000}],
    points={"interior": 2000, "boundary": 400, "initial": 200, "method": "sobol", "test": 101},
)
