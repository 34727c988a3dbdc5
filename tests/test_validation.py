"""Bad input: every mistake gives one clear line naming the file or argument (exit code 2)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kanpde

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
import math, torch
from kanpde import Dirichlet, Initial, Interval, PointData, Problem, Rectangle, Time, laplacian

def exact(x):
    return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])

def pde(x, u):
    return laplacian(u, x) + 2 * math.pi**2 * exact(x)

DOMAIN = Rectangle([-1, -1], [1, 1])
CONDITIONS = [Dirichlet(0.0)]
KW = dict(model={"width": [2, 3, 1], "grid": 3}, schedule="3:lbfgs=2",
          points={"interior": 30, "boundary": 12, "test": 6})
problem = Problem(name="t", domain=DOMAIN, pde=pde, conditions=CONDITIONS, exact=exact, **KW)
"""


def variant(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


# (problem file text, expected fragment of the message)
PROBLEM_CASES = {
    "raises_on_import": (GOOD + "\nraise RuntimeError('boom')\n", "RuntimeError: boom"),
    "syntax_error": (GOOD + "\ndef broken(:\n", "not valid Python"),
    "no_problem": (GOOD.replace("problem = Problem(", "other = Problem("), "defines no `problem`"),
    "wrong_type": (GOOD + "\nproblem = 42\n", "must be a kanpde.Problem, got int"),
    "residual_shape": (
        variant("return laplacian(u, x) + 2", "return (laplacian(u, x) + 2").replace(
            "exact(x)\n\nDOMAIN", "exact(x)).reshape(-1, 2)\n\nDOMAIN"
        ),
        "residual has shape",
    ),
    "residual_not_tensor": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return 1.0"),
        "pde must return tensors",
    ),
    "residual_no_gradient_path": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return exact(x)"),
        "does not depend on the solution",
    ),
    "residual_nan": (
        variant("return laplacian(u, x) + 2", "return laplacian(u, x) * float('nan') + 2"),
        "NaN or Inf at initialisation",
    ),
    "exact_shape": (
        variant(
            "return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])", "return x"
        ),
        "exact(x) returned shape",
    ),
    "exact_nan": (
        variant(
            "return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])",
            "return x[:, :1] * float('nan')",
        ),
        "NaN",
    ),
    "width_vs_domain": (
        variant('"width": [2, 3, 1]', '"width": [3, 3, 1]'),
        "domain has 2 coordinates",
    ),
    "width_vs_outputs": (variant('"width": [2, 3, 1]', '"width": [2, 3, 2]'), "problem has 1"),
    "unknown_boundary_name": (
        variant("Dirichlet(0.0)", "Dirichlet(0.0, on='lft')"),
        "unknown boundary piece 'lft'",
    ),
    "component_out_of_range": (
        variant("Dirichlet(0.0)", "Dirichlet(0.0, component=3)"),
        "out of range",
    ),
    "unknown_component_name": (
        variant("Dirichlet(0.0)", "Dirichlet(0.0, component='v')"),
        "unknown component 'v'",
    ),
    "initial_without_time": (
        variant("Dirichlet(0.0)", "Initial(0.0)"),
        "needs a space-time domain",
    ),
    "not_a_condition": (variant("Dirichlet(0.0)", "'u=0'"), "conditions must be kanpde conditions"),
    "duplicate_condition_names": (
        variant("Dirichlet(0.0)", "Dirichlet(0.0), Dirichlet(1.0)"),
        "distinct names",
    ),
    "domain_not_geometry": (
        variant("DOMAIN = Rectangle([-1, -1], [1, 1])", "DOMAIN = [-1, 1]"),
        "domain must be a kanpde geometry",
    ),
    "bad_rectangle": (
        variant("Rectangle([-1, -1], [1, 1])", "Rectangle([1, -1], [-1, 1])"),
        "error while importing",
    ),
    "pde_not_callable": (variant("pde=pde,", "pde=3,"), "pde must be a function"),
    "unknown_model_option": (variant('"grid": 3}', '"grid": 3, "grdi": 5}'), "unknown kan option"),
    "unknown_schedule_key": (
        variant('schedule="3:lbfgs=2"', 'schedule=[{"lbfgs": 2, "stpes": 3}]'),
        "unknown schedule key",
    ),
    "unknown_sampler": (variant('"test": 6}', '"test": 6, "method": "halton"}'), "method"),
    "condition_value_shape": (
        variant("Dirichlet(0.0)", "Dirichlet(lambda x: x)"),
        "value has shape",
    ),
    "pointdata_dimension": (
        variant("Dirichlet(0.0)", "PointData([[0.0, 0.0, 0.0]], [1.0])"),
        "points have 3 coordinates",
    ),
    "bad_dtype_in_file": (variant("**KW)", "dtype='float16', **KW)"), "dtype must be"),
}


def kanpde_cli(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "kanpde", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_one_line(result, fragment, names=None):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kanpde: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    if names:
        assert names in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", sorted(PROBLEM_CASES))
def test_bad_problem_file(case, tmp_path):
    text, fragment = PROBLEM_CASES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(text)
    r = kanpde_cli(
        "solve", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--device", "cpu"
    )
    check_one_line(r, fragment, names=str(path))


def test_good_problem_file_runs(tmp_path):
    path = tmp_path / "good.py"
    path.write_text(GOOD)
    r = kanpde_cli(
        "solve", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--device", "cpu"
    )
    assert r.returncode == 0, r.stderr
    assert "results:" in r.stdout


PATH_CASES = {
    "missing_file": ("nope.py", "problem file not found"),
    "not_python": ("notes.txt", "expected a Python problem file"),
    "directory": (".", "is a directory"),
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_bad_problem_path(case, tmp_path):
    name, fragment = PATH_CASES[case]
    (tmp_path / "notes.txt").write_text("hello")
    r = kanpde_cli("solve", str(tmp_path / name), "--out", str(tmp_path / "runs"))
    check_one_line(r, fragment)


ARG_CASES = {
    "width_letters": (["--width", "2,x,1"], "--width"),
    "width_single": (["--width", "2"], "--width"),
    "width_zero": (["--width", "2,0,1"], "--width"),
    "schedule_negative": (["--schedule", "5:adam=-3"], "--schedule"),
    "schedule_unknown_optimizer": (["--schedule", "5:sgd=10"], "unknown optimizer"),
    "schedule_bad_grid": (["--schedule", "x:adam=10"], "--schedule"),
    "schedule_bad_lr": (["--schedule", "5:adam=10@fast"], "learning rate"),
    "schedule_empty_stage": (["--schedule", "5:adam=10,,10:lbfgs=3"], "empty stage"),
    "points_garbage": (["--points", "foo"], "--points"),
    "points_unknown_key": (["--points", "inside=10"], "unknown key"),
    "points_negative": (["--points", "interior=-5"], "must be positive"),
    "points_bad_method": (["--points", "method=random"], "method"),
    "grid_zero": (["--grid", "0"], "--grid"),
    "k_zero": (["--k", "0"], "--k"),
    "unknown_basis": (["--basis", "nope"], "--basis"),
    "unknown_device": (["--device", "tpu"], "device"),
    "unknown_dtype": (["--dtype", "float16"], "--dtype"),
    "unknown_activation": (["--model", "mlp", "--activation", "relu6"], "unknown activation"),
    "unknown_preset": (["--preset", "huge"], "unknown preset"),
    "negative_checkpoint_every": (["--checkpoint-every", "-1"], "--checkpoint-every"),
    "resume_without_checkpoint": (["--resume", "."], "no checkpoint.h5"),
}


@pytest.mark.parametrize("case", sorted(ARG_CASES))
def test_bad_argument(case, tmp_path):
    args, fragment = ARG_CASES[case]
    r = kanpde_cli(
        "solve", "problems/poisson2d.py", "--out", str(tmp_path / "runs"), "--quiet", *args
    )
    check_one_line(r, fragment)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_gpu(tmp_path):
    r = kanpde_cli("solve", "problems/poisson2d.py", "--device", "cuda", "--out", str(tmp_path))
    check_one_line(r, "no CUDA GPU is available")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_directory_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    r = kanpde_cli("solve", "problems/poisson2d.py", "--out", str(locked / "runs"))
    check_one_line(r, "--out")


def test_output_directory_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = kanpde_cli("solve", "problems/poisson2d.py", "--out", str(blocker / "runs"), "--quiet")
    check_one_line(r, "--out")


def test_load_problem_error_type(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(PROBLEM_CASES["no_problem"][0])
    with pytest.raises(kanpde.ProblemError, match="defines no `problem`"):
        kanpde.load_problem(path)
