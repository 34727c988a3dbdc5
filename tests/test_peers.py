"""Smoke tests for the peer baselines in ``benchmarks/peers.py``.

pykan and deepxde are optional extras (``pip install -e .[bench]``); every test that
needs one of them is skipped when it is not installed.  The tests are small (a few
seconds each on 2 CPU cores) and never write into the working directory.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch

_PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"


def _load_peers():
    spec = importlib.util.spec_from_file_location("kanpde_bench_peers", _PEERS)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


peers = _load_peers()

_HAS_PYKAN = importlib.util.find_spec("kan") is not None
_HAS_DDE = importlib.util.find_spec("deepxde") is not None
needs_pykan = pytest.mark.skipif(not _HAS_PYKAN, reason="pykan not installed (bench extra)")
needs_dde = pytest.mark.skipif(
    not _HAS_DDE or os.environ.get("DDE_BACKEND", "pytorch") != "pytorch",
    reason="deepxde (PyTorch backend) not installed (bench extra)",
)


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    """Run in an empty cwd and check that nothing is written there."""
    monkeypatch.chdir(tmp_path)
    dtype, device = torch.get_default_dtype(), torch.get_default_device()
    yield
    assert list(tmp_path.iterdir()) == [], "peer code wrote files into the cwd"
    assert torch.get_default_dtype() == dtype, "default dtype leaked"
    assert torch.get_default_device() == device, "default device leaked"


def test_import_has_no_peer_imports():
    import subprocess

    code = (
        "import importlib.util, sys; "
        f"s = importlib.util.spec_from_file_location('p', {str(_PEERS)!r}); "
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
        "print(any(k in sys.modules for k in ('kan', 'deepxde')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    v = peers.versions()
    assert set(v) >= {"pykan", "deepxde", "torch"}
    assert v["torch"] is not None


def test_problem_definition():
    x = peers.test_grid(101)
    assert x.shape == (101 * 101, 2)
    x_i, x_b = peers.tutorial_points(51)
    assert x_i.shape == (2601, 2) and x_b.shape == (204, 2)
    zeros = torch.zeros(204, 1, dtype=torch.float64)
    assert torch.allclose(peers.exact_solution(x_b), zeros, atol=1e-12)
    # Δu* = f, checked with autograd
    xs = x_i[:50].clone().requires_grad_(True)
    u = peers.exact_solution(xs)
    g = torch.autograd.grad(u.sum(), xs, create_graph=True)[0]
    lap = sum(torch.autograd.grad(g[:, i].sum(), xs, retain_graph=True)[0][:, i] for i in range(2))
    assert torch.allclose(lap[:, None], peers.source_term(xs.detach()), atol=1e-9)
    assert peers.test_mse(peers.exact_solution, x) == 0.0


@needs_pykan
def test_pykan_step_small():
    step = peers.pykan_poisson_step(n_side=11, grid=5, width=(2, 3, 1), dtype=torch.float64)
    a, b = step(), step()
    assert math.isfinite(a) and a > 0
    assert a == pytest.approx(b, rel=1e-10)  # no parameter update inside step()
    params = [p for p in step.model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float64 for p in params)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    # dropping the tutorial's unused first-derivative pass does not change the loss
    step2 = peers.pykan_poisson_step(
        n_side=11, grid=5, width=(2, 3, 1), dtype=torch.float64, drop_redundant_d1=True
    )
    assert step2() == pytest.approx(a, rel=1e-10)


@needs_pykan
def test_pykan_time_to_accuracy_tiny():
    r = peers.pykan_time_to_accuracy(
        target_mse=1.0,  # trivially reached
        max_seconds=120,
        width=(2, 2, 1),
        grids=(3, 5),
        steps_per_grid=1,
        n_side=11,
    )
    assert r["reached"] and r["seconds_to_target"] is not None
    assert len(r["history"]) == 2
    t, step, mse = r["history"][-1]
    assert step == 2 and t > 0 and math.isfinite(mse)
    assert "tutorial" in r["recipe"]


@needs_dde
def test_deepxde_step_small():
    step = peers.deepxde_poisson_step(
        n_interior=64, n_boundary=16, width=(2, 8, 8, 1), dtype=torch.float64
    )
    a, b = step(), step()
    assert math.isfinite(a) and a > 0
    assert a == pytest.approx(b, rel=1e-10)
    params = list(step.model.net.parameters())
    assert all(p.dtype == torch.float64 for p in params)
    assert all(p.grad is not None for p in params)


@needs_dde
def test_deepxde_time_to_accuracy_tiny():
    r = peers.deepxde_time_to_accuracy(
        target_mse=1.0,
        max_seconds=5,
        width=(2, 8, 1),
        n_interior=64,
        n_boundary=16,
        adam_iterations=20,
        check_every_adam=10,
        lbfgs_iter_per_check=5,
    )
    assert r["reached"]
    assert len(r["history"]) >= 2
    assert all(math.isfinite(h[2]) for h in r["history"])
    from deepxde.optimizers import config as lbfgs_config

    assert lbfgs_config.LBFGS_options["iter_per_step"] == min(
        1000, lbfgs_config.LBFGS_options["maxiter"]
    )  # restored


def test_cli_versions(capsys):
    assert peers._main(["versions"]) == 0
    assert "pykan" in capsys.readouterr().out
