"""Steady problems of the catalogue: fast smoke tests, and (slow) their defaults reach targets.

The smoke tests solve each problem file for a few steps on a handful of points; the slow tests
run each file's defaults on the CPU and check the relative L2 error its docstring promises.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import kanpde
from kanpde.reference import get

PROBLEMS = Path(__file__).resolve().parents[1] / "problems"
TINY = {"interior": 64, "boundary": 32, "method": "sobol", "test": 11}

# file -> {metric: bound} reached by the file's defaults (relative L2 on the test set)
TARGETS = {
    "poisson1d": {"rel_l2": 1e-4},
    "poisson2d": {"mse": 1e-8},
    "poisson3d": {"rel_l2": 1e-3},
    "poisson_lshape": {"rel_l2": 1e-2},
    "helmholtz2d": {"rel_l2": 1e-3},
    "kovasznay": {"rel_l2_u": 1e-3, "rel_l2_v": 1e-3},
    "lid_driven_cavity": {"rel_l2_u": 5e-2, "rel_l2_v": 5e-2},
}


def load(name):
    return kanpde.load_problem(PROBLEMS / f"{name}.py")


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_smoke(name):
    problem = load(name)
    run = kanpde.solve(
        problem, schedule="3:lbfgs=3", points=TINY, device="cpu", progress=False, log_every=1
    )
    loss = run.history["loss"]
    assert loss[-1] < loss[0]
    n_out = len(problem.outputs)
    pred, ref = run.solution["pred"], run.solution["ref"]
    assert pred.shape == ref.shape and pred.shape[1] == n_out
    assert run.solution["x"].shape == (pred.shape[0], problem.domain_dim)
    for key in ("mse", "rel_l2", "max_err", *TARGETS[name]):
        assert np.isfinite(run.metrics[key]), key
    assert problem.description


def test_lshape_exact_solution_is_harmonic_and_vanishes_at_the_corner_edges():
    problem = load("poisson_lshape")
    x = torch.as_tensor(problem.domain.sample(200, seed=3)).requires_grad_(True)
    u = problem.exact(x)
    assert float(kanpde.laplacian(u, x).abs().max()) < 1e-10
    for edge in ("edge0", "edge5"):  # the two edges that meet at the re-entrant corner
        b = torch.as_tensor(problem.domain.boundary(50, on=edge).points)
        assert float(problem.exact(b).abs().max()) < 1e-12


def test_cavity_reference_is_the_project_solver_with_the_problem_conditions():
    problem = load("lid_driven_cavity")
    ref = problem.reference()
    solver = get("lid_driven_cavity", re=100.0)
    assert ref.meta["re"] == 100.0 and ref.meta["solver"] == solver.meta["solver"]
    for a, b in zip(ref.axes, solver.axes, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref.values["u"], solver.values["u"])
    np.testing.assert_array_equal(ref.values["v"], solver.values["v"])
    # Same pressure up to the gauge constant; the gauge is the problem's data point.
    dp = ref.values["p"] - solver.values["p"]
    np.testing.assert_allclose(dp, dp.flat[0], atol=1e-12)
    (gauge,) = [c for c in problem.conditions if c.name == "pressure_gauge"]
    np.testing.assert_allclose(ref.interpolate(gauge.x, ["p"]), gauge.values, atol=1e-12)
    # Every Dirichlet condition prescribes what the reference has on its boundary pieces.
    for c in problem.conditions:
        if isinstance(c, kanpde.Dirichlet):
            ps = c.points(problem.domain, problem.outputs, 200, "sobol", 0, torch.float64, "cpu")
            cols = [problem.outputs[i] for i in c.columns(problem.outputs)]
            have = ref.interpolate(ps.x.numpy(), cols)
            np.testing.assert_allclose(have, ps.target.numpy(), atol=1e-6, err_msg=c.name)
    # And the reference's boundary nodes carry exactly the lid and no-slip values.
    x, _ = ref.axes
    np.testing.assert_allclose(ref.values["u"][:, -1], 4 * x * (1 - x), atol=1e-14)
    for k in ("u", "v"):
        f = ref.values[k]
        assert np.abs(np.r_[f[0], f[-1], f[:, 0]]).max() == 0
    assert np.abs(ref.values["v"][:, -1]).max() == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_defaults_reach_target(name):
    torch.set_num_threads(1)
    run = kanpde.solve(load(name), device="cpu", progress=False)
    for key, bound in TARGETS[name].items():
        assert run.metrics[key] <= bound, (key, run.metrics[key])
