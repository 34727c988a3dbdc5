"""Inverse problem: the diffusivity of a 1-D heat equation from 30 sensor readings.

    u_t = κ u_xx   on x ∈ [-1, 1], t ∈ [0, 1],   u(x, 0) = sin(πx),  u(±1, t) = 0,
    exact u = e^{-κπ²t} sin(πx)   with κ = 0.1,

which the training recovers from the readings of u at 5 positions and 6 times, starting from
κ = 0.5.
"""

import math

import numpy as np
import torch

from kanpde import Dirichlet, Initial, Interval, PointData, Problem, Time, d

KAPPA = 0.1  # the value the readings were made with; the solver is not told it


def exact(x):
    return torch.exp(-KAPPA * math.pi**2 * x[:, 1:2]) * torch.sin(math.pi * x[:, 0:1])


def pde(x, u, p):  # p["kappa"]: the unknown's current value, trained with the network
    return d(u, x, "t") - p["kappa"] * d(u, x, "x", "x")


# The sensors: 5 positions x 6 times (noise-free readings of the exact solution).
xs, ts = np.meshgrid(np.linspace(-0.8, 0.8, 5), np.linspace(0.2, 1.0, 6))
sensors = np.c_[xs.ravel(), ts.ravel()]
readings = exact(torch.as_tensor(sensors)).numpy()

problem = Problem(
    name="inverse_diffusion1d",
    description="Diffusivity kappa of u_t = kappa u_xx from 30 readings (true 0.1, start 0.5)",
    domain=Interval(-1, 1) * Time(0, 1),
    pde=pde,
    unknowns={"kappa": 0.5},
    conditions=[
        Dirichlet(0.0),  # x = ±1
        Initial(lambda x: torch.sin(math.pi * x[:, 0:1])),
        PointData(sensors, readings, name="sensors"),
    ],
    exact=exact,
    model={"width": [2, 10, 1], "k": 3},
    schedule=[{"grid": 5, "lbfgs": 300}, {"grid": 10, "lbfgs": 500}, {"grid": 20, "lbfgs": 1000}],
    points={"interior": 2000, "boundary": 200, "initial": 200, "method": "sobol", "test": 101},
)
