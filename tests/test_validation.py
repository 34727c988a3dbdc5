"""Bad input: every mistake gives one clear line naming the file or argument (exit code 2)."""

import inspect
import os
import re
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
    "residual_empty_tuple": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return ()"),
        "pde returned no residuals (an empty tuple)",
    ),
    "residual_complex": (
        variant("return laplacian(u, x) + 2", "return laplacian(u, x) * 1j + 2"),
        "pde residual is complex",
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
        # three columns: two, x's count, would also be warned about in the pde that uses it
        variant(
            "return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])",
            "return torch.cat([x[:, :1]] * 3, 1)",
        ),
        "exact(x) returned shape (36, 3), expected (36, 1)",
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
    "outputs_a_string": (
        variant("exact=exact, **KW)", 'exact=exact, outputs="uv", **KW)'),
        "outputs must be a list of names such as ['uv'], got the string 'uv'",
    ),
    "output_name_empty": (
        variant("exact=exact, **KW)", 'exact=exact, outputs=[""], **KW)'),
        "outputs must be a non-empty list of names",
    ),
    "name_with_a_newline": (
        variant('name="t"', 'name="a\\nb"'),
        "name must be printable, without newlines",
    ),
    "initial_points_without_time": (  # taken and ignored
        variant('"test": 6}', '"test": 6, "initial": 50}'),
        "points: initial counts the points of Initial conditions, and the domain has no time",
    ),
    "one_test_point": (
        variant('"test": 6}', '"test": 1}'),
        "points: test must be at least 2 (points per axis)",
    ),
    "condition_named_pde": (
        variant("CONDITIONS = [Dirichlet(0.0)]", 'CONDITIONS = [Dirichlet(0.0, name="pde")]'),
        "condition name 'pde' is taken by the PDE residual's loss term; choose another name=",
    ),
    "condition_named_pde_k": (
        variant("CONDITIONS = [Dirichlet(0.0)]", 'CONDITIONS = [Dirichlet(0.0, name="pde[1]")]'),
        "condition name 'pde[1]' is taken by the PDE residual's loss term",
    ),
    "condition_named_sparsity": (
        variant("CONDITIONS = [Dirichlet(0.0)]", 'CONDITIONS = [Dirichlet(0.0, name="sparsity")]'),
        "condition name 'sparsity' is taken by the sparsification penalty's loss term",
    ),
    "conditions_not_a_list": (
        variant("CONDITIONS = [Dirichlet(0.0)]", "CONDITIONS = 0.0"),
        "conditions must be a list such as [Dirichlet(0.0)], got 0.0",
    ),
    "duplicate_outputs": (
        variant("exact=exact, **KW)", 'exact=exact, outputs=["u", "u"], **KW)'),
        "outputs must be distinct names; repeated: u",
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
    # exit() in a file ended kanpde with the file's status and no message
    "exit_on_import": (GOOD + "\nraise SystemExit(3)\n", "called exit(3) while importing"),
    # set after Problem(...) checked its fields: the preset was never looked at
    "preset_set_after_construction": (
        GOOD + "\nproblem.presets = {'bad': {'pointz': {}}}\n",
        "preset 'bad' may only set model, schedule, points and weights",
    ),
    "pde_returns_nothing": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return {}"),
        "pde returned no residuals (an empty dict)",
    ),
    # the name makes the run directory's name: "../t" wrote outside --out
    "name_is_a_path": (variant('name="t"', 'name="../t"'), "name must not contain '/'"),
    # N x 0: a slice past x's last column broadcasts the residual to no columns (it trained
    # until the loss was reported non-finite)
    "residual_no_columns": (
        variant("return laplacian(u, x) + 2", "return laplacian(u, x) + x[:, 2:3] + 2"),
        "pde residual has shape (8, 0), no columns: x has 2 column(s) (x, y), so a slice such "
        "as x[:, 2:3] is empty",
    ),
    "pde_arguments_swapped": (
        variant("def pde(x, u):", "def pde(u, x):"),
        # the cause leads, the error it caused follows
        ": pde(x, u) is called with the points first, but pde's parameters are named (u, x): "
        "swap them (it raised ",
    ),
    # any name for the solution, as long as the points come second
    "pde_arguments_swapped_other_names": (
        variant("def pde(x, u):", "def pde(out, x):\n    u = out"),
        "but pde's parameters are named (out, x): swap them",
    ),
    "pde_takes_autograd_grad_of_x": (
        variant(
            "return laplacian(u, x) + 2 * math.pi**2 * exact(x)",
            "return torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0][:, :1]",
        ),
        "take derivatives with kanpde's d, grad, div, laplacian or hessian, not "
        "torch.autograd.grad",
    ),
    # the test set took exact alone: the reference was silently ignored
    "exact_and_reference": (
        variant("exact=exact, **KW)", "exact=exact, reference=lambda: None, **KW)"),
        "give exact= (a closed form) or reference= (a numerical solution), not both",
    ),
    "reference_written_like_exact": (
        variant("exact=exact, **KW)", "reference=exact, **KW)"),
        "reference must be a kanpde.reference.Reference or a function of no arguments",
    ),
    "reference_returns_no_reference": (
        variant("exact=exact, **KW)", "reference=lambda: 1.0, **KW)"),
        "reference() returned float, expected a kanpde.reference.Reference",
    ),
    # a KeyError traceback from Reference._select
    "reference_of_other_outputs": (
        variant(
            "exact=exact, **KW)",
            "reference=Reference(('x', 'y'), (torch.linspace(-1, 1, 5).numpy(),) * 2, "
            "{'v': torch.zeros(5, 5).numpy()}), **KW)",
        ).replace(
            "import math, torch", "import math, torch\nfrom kanpde.reference import Reference"
        ),
        "the reference has no values for u: its outputs are v, the problem's u",
    ),
    "exact_returns_none": (
        variant("exact=exact, **KW)", "exact=lambda x: None, **KW)"),
        "exact(x) returned None (a missing return?); expected a tensor of shape (N, 1)",
    ),
    "condition_value_returns_none": (
        variant("Dirichlet(0.0)", "Dirichlet(lambda x: None)"),
        "dirichlet value function returned None (a missing return?)",
    ),
    # Python named the base class (Condition.__init__) and no keyword it takes
    "condition_keyword_typo": (
        variant("Dirichlet(0.0)", "Dirichlet(0.0, compnent=0)"),
        "TypeError: Dirichlet() has no keyword 'compnent'; did you mean 'component'? (it takes "
        "value, on, component, weight, name, n)",
    ),
    "robin_keyword_of_another_library": (
        variant("Dirichlet(0.0)", "kanpde.Robin(alpha=1.0, beta=1.0, where='left')").replace(
            "import math, torch", "import math, torch, kanpde"
        ),
        "TypeError: Robin() has no keyword 'where' (it takes alpha, beta, value, on, component, "
        "weight, name, n)",
    ),
    # Periodic sets value itself and refuses on: neither is offered (it said "did you mean
    # 'value'?", which then failed with "got multiple values for argument 'value'")
    "periodic_keyword_typo": (
        variant("Dirichlet(0.0)", "kanpde.Periodic('x', vale=0)").replace(
            "import math, torch", "import math, torch, kanpde"
        ),
        "TypeError: Periodic() has no keyword 'vale' (it takes axis, derivatives, component, "
        "weight, name, n)",
    ),
    # a class of the file's own that shares a kanpde name is not described as kanpde's
    "own_class_keyword_typo": (
        GOOD
        + "\nclass Dirichlet:\n    def __init__(self, v):\n        pass\n\nDirichlet(valu=0)\n",
        "TypeError: Dirichlet.__init__() got an unexpected keyword argument 'valu'",
    ),
    # the call that failed is named, not an earlier one with the same keyword that never ran
    "keyword_typo_in_the_failing_call": (
        variant("Dirichlet(0.0)", "kanpde.Robin(1.0, 1.0, valu=0.0)").replace(
            "import math, torch",
            "import math, torch, kanpde\n\ndef unused():\n    return kanpde.Neumann(valu=1.0)\n",
        ),
        "TypeError: Robin() has no keyword 'valu'; did you mean 'value'?",
    ),
    "problem_keyword_typo": (
        variant("conditions=CONDITIONS", "condition=CONDITIONS"),
        "TypeError: Problem() has no keyword 'condition'; did you mean 'conditions'?",
    ),
    "pde_without_return": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "laplacian(u, x)"),
        "pde(x, u) returned None (a missing return?); expected the residual tensor",
    ),
    "data_outside_domain": (
        variant("Dirichlet(0.0)]", "Dirichlet(0.0), PointData([[0.5, 0.5], [2.0, 3.0]], [1, 2])]"),
        "data: 1 of 2 points lie outside the domain, e.g. (2, 3)",
    ),
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
    "unknown_device": (["--device", "tpu"], "--device tpu: unknown device 'tpu'"),
    "negative_seed": (["--seed", "-1"], "--seed -1: must be an integer from 0 to 4294967295"),
    "unknown_dtype": (["--dtype", "float16"], "--dtype"),
    "unknown_activation": (["--model", "mlp", "--activation", "relu6"], "unknown activation"),
    "unknown_preset": (["--preset", "huge"], "unknown preset"),
    "negative_checkpoint_every": (["--checkpoint-every", "-1"], "--checkpoint-every"),
    "resume_without_checkpoint": (["--resume", "."], "no checkpoint.h5"),
    # argparse's own errors were usage plus the error, 6-9 lines
    "grid_not_an_integer": (["--grid", "a"], "kanpde solve: argument --grid: invalid int value"),
    "model_unknown": (["--model", "cnn"], "argument --model: invalid choice: 'cnn'"),
    "value_starting_with_minus": (["--schedule", "-3:adam=5"], "written --option=VALUE"),
    "seed_too_large": (["--seed", str(10**20)], "must be an integer from 0 to 4294967295"),
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


def test_a_problem_file_imports_modules_beside_it(tmp_path):
    # "from shared_bits import exact" failed with ModuleNotFoundError (python FILE finds it)
    import sys

    (tmp_path / "kanpde_test_shared_bits.py").write_text(
        "import math, torch\n\ndef exact(x):\n"
        "    return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])\n"
    )
    path = tmp_path / "p.py"
    path.write_text(
        GOOD.replace("def exact(x):", "from kanpde_test_shared_bits import exact\n\ndef _old(x):")
    )
    before = list(sys.path)
    try:
        problem = kanpde.load_problem(path)
    finally:
        sys.modules.pop("kanpde_test_shared_bits", None)
    assert problem.exact.__module__ == "kanpde_test_shared_bits"
    assert sys.path == before
    # a file in another folder importing a module of the same name gets its own
    names = []
    for folder, value in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "kanpde_test_bits.py").write_text(f"NAME = 'p{value}'\n")
        (tmp_path / folder / "p.py").write_text(
            "from kanpde_test_bits import NAME\n" + GOOD.replace('name="t"', "name=NAME")
        )
        names.append(kanpde.load_problem(tmp_path / folder / "p.py").name)
    assert names == ["p1", "p2"] and "kanpde_test_bits" not in sys.modules


def test_load_problem_error_type(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(PROBLEM_CASES["no_problem"][0])
    with pytest.raises(kanpde.ProblemError, match="defines no `problem`"):
        kanpde.load_problem(path)


# -- in-process checks (no interpreter start-up per case) ---------------------------------------

POISSON1D = str(ROOT / "problems" / "poisson1d.py")
TINY = ["--schedule", "3:adam=2", "--points", "interior=20,test=11", "--quiet", "--device", "cpu"]


def main_err(argv, capsys) -> tuple[int, str]:
    from kanpde.cli import main

    code = main(argv)
    return code, capsys.readouterr().err


def assert_one_line(code, err, fragment):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kanpde: error: "), err
    assert fragment in lines[0], err
    assert "Traceback" not in err


def leftovers(out: Path) -> list[str]:
    return sorted(str(p) for p in out.rglob("*")) if out.exists() else []


# Errors raised inside the user's functions: one line with the file, the line, the type.
USER_CODE_CASES = {
    "pde_index_error": (
        variant("return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return u[:, 5]"),
        "pde(x, u) raised IndexError: index 5 is out of bounds",
        "return u[:, 5]",
    ),
    "exact_index_error": (
        variant("exact=exact, **KW)", "exact=lambda x: x[:, 5], **KW)"),
        "exact(x) raised IndexError",
        'problem = Problem(name="t", domain=DOMAIN, pde=pde, conditions=CONDITIONS, '
        "exact=lambda x: x[:, 5], **KW)",
    ),
    "condition_value_index_error": (
        variant("CONDITIONS = [Dirichlet(0.0)]", "CONDITIONS = [Dirichlet(lambda x: x[:, 5])]"),
        "dirichlet value function raised IndexError",
        "CONDITIONS = [Dirichlet(lambda x: x[:, 5])]",
    ),
    "condition_predicate_key_error": (
        variant(
            "CONDITIONS = [Dirichlet(0.0)]", "CONDITIONS = [Dirichlet(0.0, on=lambda p: {}[1])]"
        ),
        "dirichlet: on= predicate raised KeyError (1); it gets the points as a NumPy array",
        "CONDITIONS = [Dirichlet(0.0, on=lambda p: {}[1])]",
    ),
    "pde_late_error": (  # not on the few setup points, only on the whole set (30 here)
        variant(
            "return laplacian(u, x) + 2 * math.pi**2 * exact(x)",
            'assert x.shape[0] < 20, "too many"; return laplacian(u, x)',
        ),
        "pde(x, u) raised AssertionError: too many",
        'assert x.shape[0] < 20, "too many"; return laplacian(u, x)',
    ),
    "pde_derivative_along_a_slice": (  # a DeepXDE habit: d/dy of u along x[:, 1:2] was 0
        variant(
            "return laplacian(u, x) + 2 * math.pi**2 * exact(x)",
            "from kanpde import d; return d(u, x, 0, 0) + d(u, x[:, 1:2], 0, 0)",
        ),
        "pde(x, u) raised ValueError: derivatives are taken along the points the field was",
        "from kanpde import d; return d(u, x, 0, 0) + d(u, x[:, 1:2], 0, 0)",
    ),
    "pde_zero_division": (
        variant(
            "return laplacian(u, x) + 2 * math.pi**2 * exact(x)", "return laplacian(u, x) + 1 / 0"
        ),
        "pde(x, u) raised ZeroDivisionError",
        "return laplacian(u, x) + 1 / 0",
    ),
}


@pytest.mark.parametrize("case", sorted(USER_CODE_CASES))
def test_error_in_user_code_is_one_line_with_file_and_line(case, tmp_path, capsys):
    text, fragment, source_line = USER_CODE_CASES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(text)
    lineno = [line.strip() for line in text.splitlines()].index(source_line) + 1
    out = tmp_path / "runs"
    code, err = main_err(
        ["solve", str(path), "--out", str(out), "--quiet", "--device", "cpu"], capsys
    )
    assert_one_line(code, err, fragment)
    assert err.startswith(f"kanpde: error: {path}:{lineno}: "), err
    assert leftovers(out) == []  # the run directory made for it is gone again


def test_an_error_late_in_training_says_where_the_checkpoint_is(tmp_path, capsys):
    # the checkpoint stayed behind, and the message did not say so
    text = variant(
        "def pde(x, u):\n",
        "CALLS = [0]\n\ndef pde(x, u):\n    CALLS[0] += 1\n"
        "    if CALLS[0] > 12: raise RuntimeError('late failure')\n",
    )
    path = tmp_path / "late.py"
    path.write_text(text)
    out = tmp_path / "runs"
    args = ["--schedule", "3:adam=30", "--checkpoint-every", "2"]
    code, err = main_err(["solve", str(path), "--out", str(out), "--quiet", *args], capsys)
    assert_one_line(code, err, "pde(x, u) raised RuntimeError: late failure; the run's checkpoint")
    (kept,) = out.glob("*/checkpoint.h5")
    assert f"stays in {kept} (--resume {kept.parent} continues it" in err
    # a refused --resume is no late error: no such note (it read as circular)
    path.write_text(text + "\n# fixed\n")
    code, err = main_err(["solve", str(path), "--resume", str(kept.parent), "--quiet"], capsys)
    assert_one_line(code, err, "differs from the problem of the checkpoint")
    assert (
        "(the file, or a module beside it that it imports, was edited since the run; any edit "
        "counts, a comment too)"
    ) in err
    assert "stays in" not in err


def test_error_in_user_code_keeps_the_original_exception_in_the_api(tmp_path):
    path = tmp_path / "p.py"
    path.write_text(USER_CODE_CASES["pde_index_error"][0])
    with pytest.raises(kanpde.ProblemError, match="pde\\(x, u\\) raised IndexError") as info:
        kanpde.solve(str(path), progress=False, device="cpu", checkpoint_every=0)
    assert isinstance(info.value.__cause__, IndexError)
    path.write_text(USER_CODE_CASES["exact_index_error"][0])
    with pytest.raises(kanpde.ProblemError, match="exact\\(x\\) raised IndexError") as info:
        kanpde.solve(str(path), progress=False, device="cpu", checkpoint_every=0)
    assert isinstance(info.value.__cause__, IndexError)


# Mistakes in a problem file's weights, points and presets.
SPEC_CASES = {
    "weights_unknown_key": (
        variant("**KW)", 'weights={"pdee": 0.01}, **KW)'),
        "weights: unknown key 'pdee'; valid keys: pde, pde[0], pde[1], ... or pde[<key>] (a "
        "system's residuals), dirichlet; if the PDE returns a dict with key 'pdee', weight it "
        "as 'pde[pdee]'",
    ),
    "weights_negative": (variant("**KW)", 'weights={"pde": -1}, **KW)'), "'pde' must be"),
    "weights_not_a_number": (
        variant("**KW)", 'weights={"pde": "a"}, **KW)'),
        "weights: 'pde' must be a number, got 'a'",
    ),
    "weights_unknown_in_preset": (
        variant("**KW)", 'presets={"full": {"weights": {"dirichelt": 2}}}, **KW)'),
        "preset 'full' weights: unknown key 'dirichelt'",
    ),
    "points_unknown_key": (
        variant('"test": 6}', '"test": 6, "interiour": 50}'),
        "points: unknown key 'interiour'; valid keys: adaptive, boundary, initial, interior",
    ),
    "points_not_an_integer": (
        variant('"test": 6}', '"test": "many"}'),
        "points: test must be an integer, got 'many'",
    ),
    "preset_not_a_dict": (variant("**KW)", 'presets={"full": 5}, **KW)'), "must be a dict"),
    # a TypeError from merging with the defaults ("'str' object is not a mapping"), or an
    # AttributeError for a list of presets, that named none of them
    "model_not_a_dict": (
        variant('KW = dict(model={"width": [2, 3, 1], "grid": 3}', 'KW = dict(model="mlp"'),
        "model must be a dict such as {'width': [2, 10, 1], 'grid': 5}, got str",
    ),
    "points_not_a_dict": (
        variant('points={"interior": 30, "boundary": 12, "test": 6}', "points=2000"),
        "points must be a dict such as {'interior': 2000, 'boundary': 400}, got int",
    ),
    "weights_not_a_dict": (
        variant("**KW)", "weights=[1, 10], **KW)"),
        "weights must be a dict such as {'pde': 1.0, 'dirichlet': 10.0}, got list",
    ),
    "presets_not_a_dict": (
        variant("**KW)", 'presets=["full"], **KW)'),
        "presets must be a dict such as {'fast': {'schedule': '300:adam'}}, got list",
    ),
    # accepted, and nothing was ever resampled
    "points_adaptive_without_resample": (
        variant('"test": 6}', '"test": 6, "adaptive": True}'),
        "points: adaptive=True needs resample=N",
    ),
    # a misspelt residual name was accepted and weighed nothing
    "weights_pde_term_of_no_residual": (
        variant("**KW)", 'weights={"pde[eq_w]": 100}, **KW)'),
        "weights: 'pde[eq_w]' names no residual of the PDE; its residuals: pde",
    ),
    # with "initial" in points, the count was blamed ("the domain has no time axis") and the
    # Initial condition, the actual mistake, went unnamed with its fix
    "steady_heat": (
        "from kanpde import Dirichlet, Initial, Problem, Rectangle, laplacian\n"
        "problem = Problem(name='steady_heat', domain=Rectangle([0, 0], [1, 1]),\n"
        "                  pde=lambda x, u: laplacian(u, x),\n"
        "                  conditions=[Dirichlet(0.0), Initial(0.0)],\n"
        "                  points={'interior': 100, 'initial': 300})\n",
        ": initial: an Initial condition needs a space-time domain (e.g. Interval(-1, 1) * "
        "Time(0, 1)), got Rectangle([0, 0], [1, 1])",
    ),
    # torch's "Use tensor.detach().numpy() instead" cut the derivatives and failed again
    "numpy_pde": (
        "import numpy as np\n"
        "from kanpde import Dirichlet, Interval, Problem, laplacian\n"
        "problem = Problem(name='numpy_pde', domain=Interval(0, 1),\n"
        "                  pde=lambda x, u: laplacian(u, x) - np.cos(x[:, 0:1]),\n"
        "                  conditions=[Dirichlet(0.0)])\n",
        ":4: pde(x, u) raised RuntimeError: NumPy was called on a tensor that carries "
        "derivatives; use torch functions (torch.cos, ...) in it: NumPy cannot carry them",
    ),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_weights_points_presets_in_problem_file(case, tmp_path, capsys):
    text, fragment = SPEC_CASES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(text)
    out = tmp_path / "runs"
    code, err = main_err(["solve", str(path), "--out", str(out), "--quiet"], capsys)
    assert_one_line(code, err, fragment)
    assert err.startswith(f"kanpde: error: {path}"), err
    assert not out.exists()


def test_pde_term_weights_and_condition_names_are_accepted(tmp_path):
    path = tmp_path / "p.py"
    path.write_text(variant("**KW)", 'weights={"pde": 0.1, "pde[0]": 1, "dirichlet": 0}, **KW)'))
    assert kanpde.load_problem(path).weights["dirichlet"] == 0


def test_the_one_residuals_own_weight_beats_the_pde_weight():
    # {"pde": 1, "pde[0]": 100} weighed the one residual 1, where pde[k] wins for several
    from kanpde.losses import Residuals

    problem = kanpde.load_problem(POISSON1D)
    net = kanpde.build_model(problem)
    for weights, expected in (({"pde": 1, "pde[0]": 100}, 100), ({"pde": 3}, 3), ({}, 1)):
        res = Residuals(problem, net, {"interior": 10, "boundary": 2}, weights,
                        torch.float64, "cpu")  # fmt: skip
        assert res.weight("pde") == expected, weights


def test_sparsity_needs_a_kan():
    # a 34-line TypeError from inside the first loss evaluation
    with pytest.raises(ValueError, match="schedule: stage 1 sets sparsity, .* the model is an MLP"):
        kanpde.solve(POISSON1D, model={"type": "mlp", "width": [1, 8, 1]},
                     schedule=[{"adam": 2}, {"adam": 2, "sparsity": 1e-4}], progress=False,
                     device="cpu")  # fmt: skip


def test_solve_refuses_adaptive_resampling_without_resample():
    with pytest.raises(ValueError, match=r"solve\(\): points: adaptive=True needs resample=N"):
        kanpde.solve(POISSON1D, points={"adaptive": True}, progress=False, device="cpu")
    # an explicit resample=0 switches resampling off (a problem's resample=5, adaptive=True)
    run = kanpde.solve(POISSON1D, points={"adaptive": True, "resample": 0}, schedule="lbfgs=2",
                       progress=False, device="cpu")  # fmt: skip
    assert not [e for e in run.events if e["event"] == "resample"]


def test_solve_refuses_initial_points_on_a_domain_without_time(tmp_path):
    # taken, ignored and recorded as a setting of the run (the CLI and compare refused it)
    with pytest.raises(ValueError, match=r"^solve\(\): points: initial counts the points of "
                       r"Initial conditions, and the domain has no time axis$"):  # fmt: skip
        kanpde.solve(POISSON1D, points={"initial": 10}, schedule="lbfgs=1", progress=False,
                     device="cpu", out=tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"seed": "a"}, "solve(seed='a'): must be an integer from 0 to 4294967295"),
        ({"seed": -1}, "solve(seed=-1): must be an integer from 0 to 4294967295"),
        ({"log_every": 0}, "solve(log_every=0): must be an integer >= 1"),
        ({"checkpoint_every": 2.5}, "solve(checkpoint_every=2.5): must be an integer >= 0"),
        ({"out": ROOT / "README.md"}, "README.md'): is a file, not a directory"),
        ({"model": "mlp"}, "solve(model='mlp'): expected a dict of options"),
        ({"model": torch.nn.Identity()}, "solve(model=...): the model has no trainable param"),
        ({"dtype": torch.float16}, "unsupported dtype torch.float16; use float32 or float64"),
        ({"graphs": "yes"}, "solve(graphs='yes'): use True, False or 'auto'"),
        ({"problem": None}, "solve(problem=...): expected a kanpde.Problem or a problem file"),
        ({"max_seconds": -1}, "max_seconds must be a finite number > 0, got -1"),
        # the schedule's error did not say that it came from the schedule argument
        ({"schedule": "5:sgd=3"}, "solve(schedule=...): unknown optimizer or option 'sgd'"),
        # float("a") and float(None) said nothing of time_shares
        *[({"schedule": "5:adam=2,lbfgs=2", "max_seconds": 1, "time_shares": shares},
           f"time_shares must be 2 non-negative numbers (one per stage), not all 0, got {shares!r}")
          for shares in (["a", 1], [None, 1], 3, [1], [0, 0])],
    ],
)  # fmt: skip
def test_solve_names_a_bad_argument(kwargs, fragment):
    # seed='a' raised "invalid literal for int()", out=FILE "[Errno 17] File exists", and
    # log_every=0 was taken (logging every step) where the CLI refuses it
    kwargs = {"problem": POISSON1D, **kwargs}
    with pytest.raises(ValueError) as e:
        kanpde.solve(progress=False, device="cpu", **kwargs)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_solve_rejects_unknown_override_keys():
    with pytest.raises(ValueError, match="weights: unknown key 'pdee'"):
        kanpde.solve(POISSON1D, weights={"pdee": 1.0}, progress=False, device="cpu")
    with pytest.raises(ValueError, match="points: unknown key 'interiour'"):
        kanpde.solve(POISSON1D, points={"interiour": 10}, progress=False, device="cpu")


@pytest.mark.parametrize(
    "model, fragment",
    [
        (lambda: kanpde.KAN([1, 3, 2]),
         r"maps \(4, 1\) points to \(4, 2\); problem 'poisson1d' needs \(4, 1\)"),
        (lambda: kanpde.MLP([2, 4, 1]),
         r"raised RuntimeError on \(4, 1\) points of problem 'poisson1d' \(one column"),
        (lambda: nn_returning_a_tuple(), r"maps \(4, 1\) points to tuple"),
    ],
)  # fmt: skip
def test_solve_refuses_a_ready_model_of_the_wrong_width(model, fragment, tmp_path):
    # A 2-output model on a 1-output problem trained and reported rel. L2 from broadcasting.
    with pytest.raises(ValueError, match=r"solve\(model=\.\.\.\): the model " + fragment):
        kanpde.solve(POISSON1D, model=model(), progress=False, device="cpu", out=tmp_path / "r")
    assert leftovers(tmp_path) == []


def test_inputs_that_were_accepted_before_the_checks_still_are():
    # the new checks refused numpy widths and components, and dataclasses.replace of a
    # problem whose schedule starts at another grid than 5
    import dataclasses

    import numpy as np

    assert kanpde.KAN(np.array([1, 5, 1])).width == [1, 5, 1]
    assert kanpde.MLP(torch.tensor([1, 4, 1])).width == [1, 4, 1]
    with pytest.raises(ValueError, match=r"width must list whole numbers, got \[1, 2.5, 1\]"):
        kanpde.KAN([1, 2.5, 1])
    p = kanpde.Problem(name="t", domain=kanpde.Rectangle([0, 0], [1, 1]), outputs=("u", "v"),
                       pde=lambda x, u: u, conditions=[
                           kanpde.Dirichlet(0.0, component=np.array([0, 1]), name="a"),
                           kanpde.Dirichlet(0.0, component=np.int64(1), name="b")])  # fmt: skip
    assert [c.columns(p.outputs) for c in p.conditions] == [[0, 1], [1]]
    cahn = kanpde.load_problem(ROOT / "problems" / "allen_cahn1d.py")
    assert "grid" not in cahn.model  # the schedule's first grid, 10, sets it
    again = dataclasses.replace(cahn, points={**cahn.points, "interior": 100})
    assert again.points["interior"] == 100
    assert dataclasses.replace(cahn, schedule="3:adam=1").schedule == "3:adam=1"
    with pytest.raises(kanpde.ProblemError, match="model grid 7 conflicts with the schedule"):
        dataclasses.replace(cahn, model={**cahn.model, "grid": 7})
    with pytest.raises(ValueError, match="PointData: values are complex"):
        kanpde.PointData([[0.5]], np.array([1j]))


def test_loading_a_problem_draws_no_random_numbers():
    # its model is built once at load to check its options; a seeded script's later draws
    # (e.g. build_model after torch.manual_seed) must come out as before
    torch.manual_seed(0)
    state = torch.get_rng_state()
    kanpde.load_problem(ROOT / "problems" / "kovasznay.py")
    assert torch.equal(torch.get_rng_state(), state)


def test_the_ready_model_check_leaves_the_model_and_random_state_alone():
    # it ran the module in training mode: batch-norm statistics moved and dropout drew
    # random numbers, so a seeded run came out otherwise
    from kanpde.training import _check_module

    net = torch.nn.Sequential(
        torch.nn.Linear(1, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5),
        torch.nn.Linear(8, 1),
    ).double()  # fmt: skip
    problem = kanpde.load_problem(POISSON1D)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    _check_module(net, problem, torch.float64, torch.device("cpu"))
    assert net.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def nn_returning_a_tuple():
    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = kanpde.KAN([1, 3, 1])

        def forward(self, x):
            return self.net(x), x

    return Pair()


# Arguments that used to be ignored or accepted: rejected before any run directory exists.
CLI_CASES = {
    "initial_without_time": (  # taken and ignored on the command line
        ["--points", "initial=100"],
        "--points 'initial=100': initial counts the points of",
    ),
    "boundary_beyond_memory": (
        ["--points", "boundary=1e13"],
        "condition 'dirichlet': 10000000000000 points do not fit",
    ),
    "adaptive_without_resample": (  # was labelled "solve(): points:"
        ["--points", "adaptive=true"],
        "--points 'adaptive=true': adaptive=True needs resample",
    ),
    "points_beyond_memory": (  # a traceback of numpy's 7.28 TiB allocation
        ["--points", "interior=1e12"],
        "interior=1000000000000 points do not fit in memory",
    ),
    "schedule_empty": (["--schedule", ""], "--schedule ''"),
    "points_empty": (["--points", ""], "--points ''"),
    "width_empty": (["--width", ""], "--width ''"),
    "log_every_zero": (["--log-every", "0"], "--log-every 0: must be >= 1"),
    "log_every_negative": (["--log-every", "-5"], "--log-every -5: must be >= 1"),
    "grid_with_mlp": (["--model", "mlp", "--grid", "5"], "--grid 5: a KAN option"),
    "k_with_mlp": (["--model", "mlp", "--k", "2"], "--k 2: a KAN option"),
    "activation_with_kan": (["--activation", "sin"], "--activation sin: an MLP option"),
    "width_does_not_fit": (["--width", "2,10,1"], "--width 2,10,1: model width [2, 10, 1]"),
    "unknown_activation": (["--model", "mlp", "--activation", "relu2"], "--activation 'relu2'"),
    "unknown_preset": (["--preset", "nope"], "unknown preset 'nope'"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_argument_leaves_no_run_directory(case, tmp_path, capsys):
    args, fragment = CLI_CASES[case]
    out = tmp_path / "runs"
    argv = ["solve", POISSON1D, "--out", str(out), *TINY]
    # The case's own value of an option replaces TINY's.
    for flag in ("--schedule", "--points"):
        if flag in args:
            i = argv.index(flag)
            del argv[i : i + 2]
    code, err = main_err([*argv, *args], capsys)
    assert_one_line(code, err, fragment)
    assert leftovers(out) == []


@pytest.mark.parametrize("command", [["solve"], ["compare", "--seeds", "1"], ["sweep"]])
def test_an_empty_out_is_refused(command, tmp_path, monkeypatch, capsys):
    # --out= wrote the run into the current directory
    monkeypatch.chdir(tmp_path)
    code, err = main_err([command[0], POISSON1D, *command[1:], "--out=", "--quiet"], capsys)
    assert_one_line(code, err, "--out '': give a directory")
    assert leftovers(tmp_path) == []


def test_kan_option_rejected_for_a_problem_whose_model_is_an_mlp(tmp_path, capsys):
    path = tmp_path / "p.py"
    path.write_text(variant('model={"width": [2, 3, 1], "grid": 3}', 'model={"type": "mlp"}'))
    code, err = main_err(["solve", str(path), "--grid", "5", "--out", str(tmp_path)], capsys)
    assert_one_line(code, err, "--grid 5: a KAN option, but the model is an MLP")


def test_plot_kind_of_a_table_for_a_results_file(tmp_path, capsys):
    code, err = main_err(["plot", str(tmp_path / "result.h5"), "--kind", "compare"], capsys)
    assert_one_line(code, err, "--kind 'compare' is for a comparison.csv table")
    assert "unknown" not in err
    code, err = main_err(["plot", str(tmp_path / "result.h5"), "--kind", "heat"], capsys)
    assert_one_line(code, err, "--kind 'heat': unknown")
    assert "solution, history, network, activations for a results file" in err


MLP_WITH_PRESET = """
import math, torch
from kanpde import Dirichlet, Interval, Problem, d

problem = Problem(
    name="mlp_presets", domain=Interval(-1, 1),
    pde=lambda x, u: d(u, x, "x", "x") + math.pi**2 * torch.sin(math.pi * x),
    conditions=[Dirichlet(0.0)], exact=lambda x: torch.sin(math.pi * x),
    model={"type": "mlp", "width": [1, 8, 8, 1], "activation": "tanh"},
    schedule=[{"adam": 2, "lr": 1e-3}],
    points={"interior": 20, "boundary": 2, "method": "grid", "test": 11},
    presets={"kan": {"model": {"type": "kan", "width": [1, 3, 1]}}},
)
"""


@pytest.mark.parametrize(
    "args, parameters",
    [
        ([], 97),  # [1, 8, 8, 1]
        (["--model", "mlp"], 97),  # the problem's own MLP, not the [1, 50, 50, 50, 1] default
        (["--model", "mlp", "--activation", "sin"], 97),
        (["--preset", "kan", "--grid", "4"], 54),  # a KAN option fits the preset's KAN: 6 edges x 9
        # another type than the preset's takes none of its options (the preset's KAN width and,
        # the other way round, an MLP preset's activation leaked into --model kan)
        (["--preset", "kan", "--model", "mlp"], 97),
    ],
)
def test_model_options_follow_the_problem_and_preset_model(args, parameters, tmp_path):
    path = tmp_path / "mlp_presets.py"
    path.write_text(MLP_WITH_PRESET)
    r = kanpde_cli("solve", str(path), *args, "--out", str(tmp_path / "runs"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"parameters {parameters}" in r.stdout


def test_whole_float_point_counts_are_counts():
    run = kanpde.solve(
        str(ROOT / "problems" / "poisson1d.py"),
        schedule="adam=1",
        points={"interior": 3e1, "boundary": 2, "test": 11.0},
        progress=False,
        device="cpu",
    )
    assert run.metrics["steps"] == 1
    with pytest.raises(ValueError, match="interior must be an integer, got 30.5"):
        kanpde.solve(str(ROOT / "problems" / "poisson1d.py"), points={"interior": 30.5})


# ------------------------------------------------- a new user's walkthrough (review fixes)


def test_pde_residual_broadcast_to_one_column_per_point_is_an_error(tmp_path, capsys):
    # (n,) + (n, 1) gives (n, n): it was taken as n equations and trained to rel. L2 0.98.
    path = tmp_path / "p.py"
    path.write_text(variant("+ 2 * math.pi**2 * exact(x)", "+ 2 * math.pi**2 * exact(x)[:, 0]"))
    code, err = main_err(["solve", str(path), "--out", str(tmp_path / "r"), *TINY], capsys)
    assert_one_line(code, err, "pde residual has shape (8, 8), one column per point")
    assert "x[:, 0:1]" in err and leftovers(tmp_path / "r") == []


def test_grid_option_conflicting_with_the_schedule_is_refused(tmp_path, capsys):
    # --grid 7 built G = 7, which the schedule's first stage coarsened to 5 at step 0.
    out = tmp_path / "runs"
    argv = ["solve", POISSON1D, "--out", str(out), "--quiet", "--device", "cpu"]
    code, err = main_err([*argv, "--grid", "7"], capsys)
    assert_one_line(code, err, "--grid 7: the schedule sets the grids (5 -> 10 -> 20 -> 40)")
    # a grid below the schedule's first is refused too (catches: only a larger one refused)
    code, err = main_err([*argv, "--grid", "3"], capsys)
    assert_one_line(code, err, "--grid 3: the schedule sets the grids (5 -> 10 -> 20 -> 40)")
    assert leftovers(out) == []
    with pytest.raises(ValueError, match="model grid 7 conflicts with the schedule"):
        kanpde.solve(POISSON1D, model={"grid": 7}, schedule="5:lbfgs=1", progress=False)
    # a schedule without grids, or one starting at the same grid, takes it
    run = kanpde.solve(POISSON1D, model={"grid": 7}, schedule="lbfgs=1", progress=False,
                       points={"interior": 20, "test": 11}, device="cpu")  # fmt: skip
    assert run.config["model"]["grid"] == 7


def test_solve_refuses_a_directory_that_holds_a_run(tmp_path):
    kw = dict(schedule="3:lbfgs=1", points={"interior": 20, "test": 11}, progress=False,
              device="cpu")  # fmt: skip
    first = kanpde.solve(POISSON1D, out=tmp_path, **kw)
    before = (tmp_path / "result.h5").read_bytes()
    with pytest.raises(ValueError, match="already holds a run \\(result.h5\\).*overwrite=True"):
        kanpde.solve(POISSON1D, out=tmp_path, seed=1, **kw)
    assert (tmp_path / "result.h5").read_bytes() == before and first.path is not None
    (tmp_path / "result.h5").rename(tmp_path / "checkpoint.h5")
    with pytest.raises(ValueError, match="checkpoint.h5.*resume="):
        kanpde.solve(POISSON1D, out=tmp_path, **kw)
    # asked for (a notebook cell run again): the old files go, the new run is written
    (tmp_path / "formula.txt").write_text("sin(pi*x)")  # derived from the old run
    again = kanpde.solve(POISSON1D, out=tmp_path, seed=1, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5"]
    assert kanpde.load(tmp_path).config["seed"] == 1 and again.path is not None
    # ... but only once the call is known to be good: a bad one leaves the old run alone
    bad = {**kw, "points": {"interior": -5}}
    with pytest.raises(ValueError, match="interior must be positive"):
        kanpde.solve(POISSON1D, out=tmp_path, overwrite=True, **bad)
    assert kanpde.load(tmp_path).config["seed"] == 1


def test_resume_of_a_finished_or_missing_run_says_so(tmp_path, capsys):
    code, err = main_err(["solve", POISSON1D, "--resume", str(tmp_path / "nope")], capsys)
    assert_one_line(code, err, "nope: no such run directory")
    kanpde.solve(POISSON1D, out=tmp_path, schedule="3:lbfgs=1", points={"interior": 20},
                 progress=False, device="cpu")  # fmt: skip
    code, err = main_err(["solve", POISSON1D, "--resume", str(tmp_path)], capsys)
    assert_one_line(code, err, "that run has finished (result.h5); there is nothing to resume")
    with pytest.raises(kanpde.ResultsError, match="the run has finished"):
        kanpde.solve(POISSON1D, resume=tmp_path, progress=False)


def test_compare_and_sweep_leave_no_directory_when_the_problem_code_fails(tmp_path, capsys):
    path = tmp_path / "p.py"
    path.write_text(variant("return laplacian(u, x) + 2", "return u[:, 5] + 2"))
    out = tmp_path / "studies" / "deep"
    code, err = main_err(["compare", str(path), "--out", str(out), "--seeds", "1", "--steps",
                          "2", "--quiet", "--device", "cpu"], capsys)  # fmt: skip
    assert_one_line(code, err, "pde(x, u) raised IndexError")
    code, err = main_err(["sweep", str(path), "--out", str(out), "--grids", "3,5", "--steps",
                          "2", "--quiet", "--device", "cpu"], capsys)  # fmt: skip
    assert_one_line(code, err, "pde(x, u) raised IndexError")
    assert not (tmp_path / "studies").exists()


def test_points_option_takes_what_a_problem_file_takes():
    from kanpde.cli import CLIError, parse_points

    assert parse_points("interior=1e3,resample=100,adaptive=true,method=lhs") == {
        "interior": 1000, "resample": 100, "adaptive": True, "method": "lhs",
    }  # fmt: skip
    # every spelling of a flag (catches: yes/no read the wrong way round)
    for value, flag in (("yes", True), ("1", True), ("TRUE", True), ("no", False),
                        ("0", False), ("False", False)):  # fmt: skip
        assert parse_points(f"adaptive={value},resample=5") == {"adaptive": flag, "resample": 5}
    for text, message in [
        ("interior=1.5", "interior must be an integer, got 1.5"),
        ("adaptive=maybe", "adaptive='maybe': use true or false"),
        ("inside=3", "unknown key 'inside'; valid keys: adaptive, boundary"),
    ]:
        with pytest.raises(CLIError, match=message):
            parse_points(text)


def test_list_of_a_missing_or_empty_folder_is_an_error(tmp_path, capsys):
    code, err = main_err(["list", str(tmp_path / "nope")], capsys)
    assert_one_line(code, err, "nope: no such folder")
    code, err = main_err(["list", str(tmp_path)], capsys)
    assert_one_line(code, err, "no problem files (*.py assigning `problem`) in that folder")


def test_list_imports_only_problem_files(tmp_path, capsys):
    # Listing imports each file: a script beside the problems once ran (and trained).
    (tmp_path / "a.py").write_text(GOOD)
    (tmp_path / "script.py").write_text("open('ran', 'w').close()\n")
    (tmp_path / "exits.py").write_text("problem = None\nraise SystemExit(3)\n")
    # other ways a file binds `problem` at module level are still listed
    (tmp_path / "b_if.py").write_text(
        GOOD.replace("problem = Problem(", "if True:\n    problem = Problem(")
    )
    (tmp_path / "c_tuple.py").write_text(
        GOOD.replace("problem = Problem(", "problem, _ = Problem(").replace("**KW)\n", "**KW), 0\n")
    )
    # a script that binds `problem` and trains (as the README's symbolic example does) once
    # ran too; one that trains only under a __main__ guard is a problem file
    train = "kanpde.solve(problem, out='ran_dir', progress=False)\n"
    (tmp_path / "d_script.py").write_text("import kanpde\n" + GOOD + "run = " + train)
    (tmp_path / "e_guarded.py").write_text(
        "import kanpde\n" + GOOD + "if __name__ == '__main__':\n    " + train
    )
    # a reference built with np.linalg.solve is no study; a symbolic.train call, or a local
    # function calling an aliased solve, is one
    (tmp_path / "f_numpy.py").write_text(
        "import numpy as np\n" + GOOD + "REF = np.linalg.solve(np.eye(2), np.ones(2))\n"
    )
    (tmp_path / "g_symbolic.py").write_text(
        "from kanpde import symbolic as S\n" + GOOD + "S.train(problem, None, [])\n"
    )
    # formula fits symbolic functions to a model: a study too (it ran at listing time)
    (tmp_path / "g_formula.py").write_text(
        "import kanpde.symbolic\n" + GOOD + "print(kanpde.symbolic.formula(None))\n"
    )
    (tmp_path / "h_alias.py").write_text(
        "from kanpde import solve as fit\n" + GOOD + "def go():\n    fit(problem)\n"
        "if __name__ != '__main__':\n    go()\n"
    )
    (tmp_path / "old.py").mkdir()  # a folder named like a file: IsADirectoryError
    from kanpde.cli import main

    code = main(["list", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and not (tmp_path / "ran").exists() and not Path("ran").exists()
    assert not Path("ran_dir").exists()
    lines = out.strip().splitlines()
    assert [line.split() for line in lines[:3]] == [["a", "t"], ["b_if", "t"], ["c_tuple", "t"]]
    line = GOOD.count("\n") + 2
    script = "[script, not imported: line {} runs a study]"
    assert lines[3] == f"{'d_script':<10}  " + script.format(line)
    assert lines[4].split() == ["e_guarded", "t"]
    assert lines[5].startswith(f"{'exits':<10}  [invalid]")
    assert "called exit(3) while importing" in lines[5]
    assert lines[6].split() == ["f_numpy", "t"]
    assert lines[7] == f"{'g_formula':<10}  " + script.format(line)
    assert lines[8] == "g_symbolic  " + script.format(line)
    assert lines[9] == f"{'h_alias':<10}  " + script.format(line + 3)
    assert len(lines) == 10


def test_reference_with_other_axes_than_the_domain_is_refused():
    # test_set took a reference's points as they came: one built ("t", "x") for an (x, t)
    # domain, or reaching past the domain's end, silently measured every error at wrong points.
    import numpy as np

    from kanpde import ProblemError
    from kanpde.reference import Reference, get
    from kanpde.training import test_set

    problem = kanpde.load_problem(str(ROOT / "problems" / "burgers1d.py"))
    ref = problem.reference()
    x, t = ref.axes
    problem.reference = Reference(("t", "x"), (t, x), {"u": ref.values["u"].T})
    with pytest.raises(
        ProblemError, match=r"reference's axes \(t, x\) are not the domain's \(x, t\)"
    ):
        test_set(problem)
    problem.reference = lambda: get("burgers", nu=0.01 / np.pi, t_range=(0.0, 2.0))
    with pytest.raises(
        ProblemError, match=r"reference's t runs over \[0, 2\], beyond the domain's"
    ):
        test_set(problem)
    problem.reference = ref
    xs, u = test_set(problem)
    assert xs.shape == (ref.points().shape[0], 2) and u.shape[1] == 1


def test_a_kan_asked_for_under_an_mlp_preset_takes_none_of_its_options(tmp_path):
    # The MLP preset's activation leaked into the KAN: "unknown kan option(s) activation".
    path = tmp_path / "p.py"
    path.write_text(
        variant("**KW)", 'presets={"mlp": {"model": {"type": "mlp", "width": [2, 8, 1], '
                '"activation": "sin"}}}, **KW)')
    )  # fmt: skip
    problem = kanpde.load_problem(path)
    run = kanpde.solve(problem, preset="mlp", model={"type": "kan"}, progress=False, device="cpu")
    assert run.config["model"]["type"] == "kan" and run.config["model"]["width"] == [2, 3, 1]
    mlp = kanpde.solve(problem, preset="mlp", progress=False, device="cpu")
    assert mlp.config["model"]["activation"] == "sin"


@pytest.mark.parametrize("args", [["--model", "mlp"], ["--preset", "kan", "--model", "mlp"]])
def test_model_mlp_keeps_the_problems_own_activation(args, tmp_path):
    # --model mlp set tanh over an MLP problem's own activation.
    path = tmp_path / "mlp_presets.py"
    path.write_text(MLP_WITH_PRESET.replace('"activation": "tanh"', '"activation": "sin"'))
    from kanpde.cli import main

    assert main(["solve", str(path), *args, "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    run = kanpde.load(next((tmp_path / "runs").iterdir()))
    assert run.config["model"]["activation"] == "sin" and run.config["parameters"] == 97


def test_cli_shows_other_warnings_through_the_handler_in_place(tmp_path, monkeypatch, capsys):
    # Only kanpde's own warnings become one line; a user's go to the handler installed when
    # the command runs (logging.captureWarnings, say), not to one taken at import time.
    import warnings

    from kanpde.cli import main

    user = "import warnings\nwarnings.warn('from the user', RuntimeWarning)\n"
    (tmp_path / "w.py").write_text(user + GOOD)
    seen = []
    monkeypatch.setattr(warnings, "showwarning", lambda m, c, *a, **k: seen.append((str(m), c)))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["list", str(tmp_path)]) == 0
    assert seen == [("from the user", RuntimeWarning)]
    assert "kanpde: warning" not in capsys.readouterr().err


def test_one_condition_alone_and_a_tuple_assigned_later_are_lists():
    kw = dict(name="t", domain=kanpde.Interval(0, 1), pde=lambda x, u: u, outputs=["u", "v"])
    one = kanpde.Problem(**kw, conditions=kanpde.Dirichlet(0.0))
    assert [c.name for c in one.conditions] == ["dirichlet"]
    # two defaults that clash are renamed in place: a tuple set after construction still works
    one.conditions = (kanpde.Dirichlet(0.0, component="u"), kanpde.Dirichlet(1.0, component="v"))
    one.validate()
    assert [c.name for c in one.conditions] == ["dirichlet(u)", "dirichlet(v)"]


def test_build_model_takes_dtype_and_device_as_solve_does():
    # build_model(p, dtype="float32") raised "as_tensor(): argument 'dtype' must be torch.dtype"
    problem = kanpde.load_problem(POISSON1D)
    model = kanpde.build_model(problem, {"grid": 4}, dtype="float32", device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="unknown dtype 'half'; use float32 or float64"):
        kanpde.build_model(problem, dtype="half")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        kanpde.build_model(problem, device="gpu")


# ----------------------------------------------------------- mutation-testing additions


def test_run_directories_are_named_unique_and_their_new_parents_listed(tmp_path, monkeypatch):
    # catches: the -s<seed> part dropped, an existing directory taken again, the parents made
    # for it left off the clean-up list, and an --out of blanks taken as a directory name
    from types import SimpleNamespace

    from kanpde import cli
    from kanpde.cli import CLIError, new_run_directory

    monkeypatch.setattr(cli, "time", SimpleNamespace(strftime=lambda fmt: "20240102-030405"))
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(cli.secrets, "token_hex", lambda n: next(tokens))
    parent = tmp_path / "a" / "b"
    out, created = new_run_directory(parent, "p", 3)
    assert out == parent / "p-20240102-030405-s3-aaaaaa" and out.is_dir()
    assert created == [out, parent, tmp_path / "a"]
    again, created = new_run_directory(parent, "p", 3)  # the first name is taken: the next one
    assert again == parent / "p-20240102-030405-s3-bbbbbb" and created == [again]
    monkeypatch.setattr(cli.secrets, "token_hex", lambda n: "aaaaaa")
    with pytest.raises(CLIError, match="could not create a unique run directory"):
        new_run_directory(parent, "p", 3)
    out, _ = new_run_directory(parent, "study", None)  # no seed: no s<seed> part
    assert out.name == "study-20240102-030405-aaaaaa"
    with pytest.raises(CLIError, match="--out '': give a directory"):
        new_run_directory("  ", "p", 0)


def test_an_mlp_asked_for_on_a_kan_problem_is_the_default_mlp():
    # catches: another default width or activation for --model mlp replacing a KAN
    from kanpde.cli import _run_settings, build_parser

    problem = kanpde.load_problem(POISSON1D)

    def model(*options):
        return _run_settings(build_parser().parse_args(["solve", POISSON1D, *options]), problem)[0]

    assert model("--model", "mlp") == {
        "type": "mlp", "width": [1, 50, 50, 50, 1], "activation": "tanh",
    }  # fmt: skip
    assert model("--model", "mlp", "--width", "1,7,1", "--activation", "sin") == {
        "type": "mlp", "width": [1, 7, 1], "activation": "sin",
    }  # fmt: skip


def test_solve_defaults_to_seed_0_and_takes_checkpoint_every_0(tmp_path, capsys):
    # catches: another default seed than the s0 the run directory is named with, and
    # --checkpoint-every 0 (no checkpoints, as the help says) refused
    code, err = main_err(
        ["solve", POISSON1D, "--out", str(tmp_path), *TINY, "--checkpoint-every", "0"], capsys
    )
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    assert "-s0-" in run_dir.name
    run = kanpde.load(run_dir)
    assert run.config["seed"] == 0 and run.config["checkpoint_every"] == 0


def test_list_shows_descriptions_and_takes_sweep_and_compare_calls_for_studies(tmp_path, capsys):
    # catches: the description replaced by the name, and module-level sweep() or compare()
    # calls not seen as studies (such a file was imported, and trained, by kanpde list)
    from kanpde.cli import main

    (tmp_path / "a.py").write_text(variant('name="t"', 'name="t", description="2-D Poisson"'))
    # (calls that fail at once if the file is imported after all: no study runs here)
    (tmp_path / "b.py").write_text(
        "from kanpde.compare import sweep\n" + GOOD + "sweep(problem, grids=[1])\n"
    )
    (tmp_path / "c.py").write_text(
        "import kanpde.compare as C\n" + GOOD + "C.compare(problem, seeds=0)\n"
    )
    # without description=, the first line of the file's docstring (the name was shown)
    (tmp_path / "d.py").write_text('"""Heat with a hot left end.\n\nMore."""\n' + GOOD)
    (tmp_path / "e.py").write_text(GOOD)  # neither: the name
    assert main(["list", str(tmp_path)]) == 0
    line = GOOD.count("\n") + 2
    assert capsys.readouterr().out.splitlines() == [
        "a  2-D Poisson",
        f"b  [script, not imported: line {line} runs a study]",
        f"c  [script, not imported: line {line} runs a study]",
        "d  Heat with a hot left end.",
        "e  t",
    ]


def test_a_preset_replaces_the_schedule_and_updates_model_points_and_weights():
    # catches: a preset's points or schedule ignored
    from kanpde.problem import apply_preset

    problem = kanpde.Problem(
        name="t", domain=kanpde.Interval(0, 1), pde=lambda x, u: u,
        conditions=[kanpde.Dirichlet(0.0)], schedule="3:adam=4",
        points={"interior": 30, "test": 6}, weights={"pde": 0.5},
        presets={"full": {"model": {"k": 2}, "schedule": "4:lbfgs=2",
                          "points": {"interior": 70}, "weights": {"dirichlet": 3.0}}},
    )  # fmt: skip
    full = apply_preset(problem, "full")
    assert full["schedule"] == "4:lbfgs=2"
    assert full["points"] == {**problem.points, "interior": 70} and full["points"]["test"] == 6
    assert full["weights"] == {"pde": 0.5, "dirichlet": 3.0}
    assert full["model"] == {**problem.model, "k": 2}
    assert apply_preset(problem, None)["schedule"] == "3:adam=4"
    assert problem.points["interior"] == 30 and problem.weights == {"pde": 0.5}  # unchanged


def test_adaptive_on_the_command_line_takes_the_problems_resample():
    # catches: --points adaptive=true checked alone, refused although the problem resamples
    from kanpde.cli import _run_settings, build_parser
    from kanpde.problem import check_points

    problem = kanpde.Problem(
        name="t", domain=kanpde.Interval(0, 1), pde=lambda x, u: u,
        conditions=[kanpde.Dirichlet(0.0)], points={"interior": 30, "resample": 5},
    )  # fmt: skip
    args = build_parser().parse_args(["solve", "p.py", "--points", "adaptive=true"])
    assert _run_settings(args, problem)[2] == {"adaptive": True}
    check_points({"test": 2})  # two test points per axis are the least (catches: 3 required)


def test_problem_refuses_path_names_odd_weights_and_preset_mistakes():
    # catches: a backslash or "."/".." name taken (it names run directories), an infinite, NaN
    # or boolean weight taken, a preset with a key it cannot set, and a preset's initial count
    # on a domain without time taken (it would be ignored)
    import math

    kw = dict(domain=kanpde.Interval(0, 1), pde=lambda x, u: u, conditions=[kanpde.Dirichlet(0.0)])
    for name in ("a\\b", ".", "..", " .. "):
        with pytest.raises(kanpde.ProblemError, match="name must not contain '/' or"):
            kanpde.Problem(name=name, **kw)
    for value, message in ((math.inf, "'pde' must be finite and >= 0, got inf"),
                           (math.nan, "'pde' must be finite and >= 0, got nan"),
                           (True, "'pde' must be a number, got True")):  # fmt: skip
        with pytest.raises(kanpde.ProblemError, match=f"problem 't': weights: {message}"):
            kanpde.Problem(name="t", weights={"pde": value}, **kw)
    with pytest.raises(
        kanpde.ProblemError, match="preset 'x' may only set model, schedule, points"
    ):
        kanpde.Problem(name="t", presets={"x": {"dtype": "float32"}}, **kw)
    with pytest.raises(kanpde.ProblemError, match="preset 'x' points: initial counts the points"):
        kanpde.Problem(name="t", presets={"x": {"points": {"initial": 10}}}, **kw)
    # the documented defaults of the point budget (catches: another test grid)
    assert kanpde.Problem(name="t", **kw).points == {
        "interior": 2000, "boundary": 400, "initial": 400, "method": "sobol", "test": 101,
    }  # fmt: skip
    # with three coordinates (time included) 31 per axis: 101 were a million test points,
    # evaluated at every history row and saved with the run (49 MB for a 10-step run)
    from kanpde import Box, Dirichlet, Initial, Rectangle, Time
    from kanpde.training import test_set

    cube = dict(pde=lambda x, u: u, conditions=[Dirichlet(0.0)])
    heat = kanpde.Problem(
        name="h",
        domain=Rectangle([0, 0], [1, 1]) * Time(0, 1),
        conditions=[Dirichlet(0.0), Initial(0.0)],
        pde=lambda x, u: u,
    )
    assert heat.points["test"] == 31
    assert kanpde.Problem(name="c", domain=Box([0, 0, 0], [1, 1, 1]), **cube).points["test"] == 31
    four = kanpde.Problem(name="f", domain=Box([0] * 4, [1] * 4), **cube)
    assert four.points["test"] == 11
    assert test_set(four) is None  # no exact solution: no test set
    four.exact = lambda x: x[:, :1]
    assert test_set(four)[0].shape == (11**4, 4)
    given = kanpde.Problem(name="g", domain=Box([0, 0, 0], [1, 1, 1]), points={"test": 5}, **cube)
    assert given.points["test"] == 5


def test_file_hash_is_the_sha256_of_the_file_or_empty():
    # catches: a missing file hashed as something (a resumed run compares the hashes)
    import hashlib

    from kanpde.problem import file_hash

    assert file_hash(POISSON1D) == hashlib.sha256(Path(POISSON1D).read_bytes()).hexdigest()
    assert file_hash(None) == file_hash("") == file_hash(ROOT / "no-such-file.py") == ""


def test_file_hash_covers_the_modules_beside_the_file_that_it_imports(tmp_path, capsys):
    # an edited helper module resumed a run on another PDE without a word
    import hashlib

    from kanpde.problem import file_hash, local_imports

    (tmp_path / "kanpde_test_coeffs.py").write_text("import kanpde_test_more\nK = 1.0\n")
    (tmp_path / "kanpde_test_more.py").write_text("M = 2\n")
    pkg = tmp_path / "kanpde_test_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("D = 3\n")
    (tmp_path / "unrelated.py").write_text("U = 4\n")  # beside it, not imported
    path = tmp_path / "p.py"
    path.write_text(
        "import os.path\nfrom kanpde_test_pkg.sub import deep\n"
        + GOOD.replace("def pde(x, u):", "def pde(x, u):\n    from kanpde_test_coeffs import K")
    )
    helpers = ["kanpde_test_coeffs.py", "kanpde_test_more.py", "kanpde_test_pkg/__init__.py",
               "kanpde_test_pkg/sub/__init__.py", "kanpde_test_pkg/sub/deep.py"]  # fmt: skip
    assert [f.relative_to(tmp_path.resolve()).as_posix() for f in local_imports(path)] == helpers
    own = hashlib.sha256(path.read_bytes()).hexdigest()
    before = file_hash(path)
    assert len(before) == 64 and before != own
    for name in helpers:  # any helper's edit (an indirect one too) changes the hash
        file = tmp_path / name
        text = file.read_text()
        file.write_text(text + "# edited\n")
        assert file_hash(path) != before, name
        file.write_text(text)
    assert file_hash(path) == before
    (tmp_path / "unrelated.py").write_text("U = 5\n")
    assert file_hash(path) == before
    # a resume refuses the edited helper, in one line
    out = tmp_path / "runs"
    args = ["--schedule", "3:adam=30", "--checkpoint-every", "2", "--quiet", "--out", str(out)]
    path.write_text(GOOD.replace("def pde(x, u):", "from kanpde_test_coeffs import K\n"
                                 "CALLS = [0]\n\ndef pde(x, u):\n    CALLS[0] += 1\n"
                                 "    if CALLS[0] > 12: raise RuntimeError('stop')\n"))  # fmt: skip
    code, err = main_err(["solve", str(path), *args], capsys)  # stopped, its checkpoint kept
    assert "RuntimeError: stop" in err
    (run,) = out.glob("*/checkpoint.h5")
    (tmp_path / "kanpde_test_coeffs.py").write_text("import kanpde_test_more\nK = 3.0\n")
    code, err = main_err(["solve", str(path), "--resume", str(run.parent), "--quiet"], capsys)
    assert_one_line(code, err, "differs from the problem of the checkpoint")
    assert "a module beside it that it imports, was edited since the run" in err


def test_a_run_directory_that_cannot_be_written_is_refused(tmp_path, monkeypatch, capsys):
    # catches: the writability check skipped (root writes anywhere, so the check on a
    # read-only folder above is skipped there: here the check is made to fail)
    from kanpde import cli

    real = os.access
    monkeypatch.setattr(
        cli.os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode)
    )
    out = tmp_path / "runs"
    code, err = main_err(["solve", POISSON1D, "--out", str(out), *TINY], capsys)
    assert_one_line(code, err, "directory is not writable")
    assert err.startswith(f"kanpde: error: --out {out}/")
    assert leftovers(out) == []
    # a run resumed in place names --resume, not an --out it was not given
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.h5").write_bytes(b"")
    code, err = main_err(["solve", POISSON1D, "--resume", str(tmp_path / "run")], capsys)
    assert_one_line(code, err, f"--resume {tmp_path / 'run'}: directory is not writable")


def test_options_of_a_step_that_does_not_run_are_refused(tmp_path, capsys):
    # They were silently ignored: thresholds without --prune, seconds with --no-simplify,
    # --layer with another figure than the activations.
    kanpde.solve(POISSON1D, out=tmp_path / "run", schedule="3:adam=2", points={"interior": 20},
                 progress=False, device="cpu")  # fmt: skip
    run = str(tmp_path / "run")
    for argv, fragment in [
        (["symbolic", run, "--edge-threshold", "0.5"], "--edge-threshold: only with --prune"),
        (["symbolic", run, "--node-threshold", "0.5"], "--node-threshold: only with --prune"),
        (
            ["symbolic", run, "--no-simplify", "--simplify-seconds", "5"],
            "--simplify-seconds: not with --no-simplify",
        ),
        (["plot", run, "--layer", "0"], "--layer: only with --kind activations, not the default"),
        (["plot", run, "--kind", "history", "--layer", "1"], "--layer: only with --kind activ"),
        (["plot", run, "--kind", "activations", "--layer", "2"], "--layer 2: the KAN has layers"),
    ]:
        code, err = main_err(argv, capsys)
        assert_one_line(code, err, fragment)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["result.h5"]


def test_a_path_of_another_kind_is_named_for_what_it_is(tmp_path, capsys):
    # A results file, a study or a problem file handed to a command that takes another kind
    # of path: the message says what the path is and which command takes it.
    runs = tmp_path / "runs"
    kanpde.solve(POISSON1D, out=runs / "kan", schedule="3:adam=2", points={"interior": 20},
                 progress=False, device="cpu")  # fmt: skip
    mlp_model = {"type": "mlp", "width": [1, 4, 1]}
    kanpde.solve(POISSON1D, out=runs / "mlp", model=mlp_model, schedule="adam=2",
                 points={"interior": 20}, progress=False, device="cpu")  # fmt: skip
    study = tmp_path / "study"
    study.mkdir()
    (study / "comparison.h5").write_bytes(b"")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    (tmp_path / "emptydir").mkdir()
    kan, mlp = str(runs / "kan"), str(runs / "mlp")
    for argv, fragment in [
        (["solve", POISSON1D, "--resume", kan + "/result.h5"], "a file; give the run directory"),
        (["solve", POISSON1D, "--resume", str(study)], "a comparison study; continue it with "
                                                       "kanpde compare PROBLEM --resume"),
        (["solve", POISSON1D, "--resume", str(sweep)], "a grid sweep; continue it with kanpde "
                                                       "sweep PROBLEM --resume"),
        (["compare", POISSON1D, "--resume", kan, "--seeds", "1"], "a single run, not a study"),
        (["plot", POISSON1D], "a problem file, not results; give a run directory"),
        (["symbolic", POISSON1D], "a problem file, not results"),
        (["plot", mlp, "--kind", "network"], "--kind network: " + mlp + " holds an MLP run"),
        (["plot", mlp, "--kind", "activations"], "holds an MLP run; this figure draws a KAN's"),
        (["plot", kan, "-o", str(tmp_path / "emptydir")], "emptydir: a directory; give a file"),
        (["list", POISSON1D], "a file; list takes the folder of problem files"),
    ]:  # fmt: skip
        code, err = main_err(argv, capsys)
        assert_one_line(code, err, fragment)
    with pytest.raises(kanpde.ProblemError, match="expected the path of a problem file, got int"):
        kanpde.load_problem(42)
    none = tmp_path / "none.py"
    none.write_text("problem = None\n")
    with pytest.raises(kanpde.ProblemError, match="`problem` must be a kanpde.Problem, got None"):
        kanpde.load_problem(none)


def _problem(pde, conditions, domain):
    import torch

    return kanpde.Problem(name="w", domain=domain, pde=pde, conditions=conditions,
                          exact=lambda x: torch.zeros(len(x), 1),
                          model={"width": [domain.dim, 3, 1], "grid": 3})  # fmt: skip


def test_a_residual_with_a_column_per_coordinate_and_a_time_problem_without_initial_warn():
    import torch

    from kanpde import Dirichlet, Initial, Interval, Rectangle, Time, d, laplacian

    square = Rectangle([-1, -1], [1, 1])
    opts = dict(schedule="3:adam=1", points={"interior": 20, "boundary": 8, "test": 5},
                progress=False, device="cpu")  # fmt: skip

    def broadcast(x, u):  # sin(x) for sin(x[:, 0:1]): (N, 1) + (N, 2)
        return laplacian(u, x) + torch.sin(x)

    with pytest.warns(kanpde.KanpdeWarning, match="pde residual has 2 columns, one per coord"):
        kanpde.solve(_problem(broadcast, [Dirichlet(0.0)], square), **opts)

    def system(x, u):  # the same two equations as a tuple: meant, no warning
        r = laplacian(u, x) + torch.sin(x)
        return r[:, 0:1], r[:, 1:2]

    def heat(x, u):
        return d(u, x, "t") - d(u, x, "x", "x")

    strip = Interval(0, 1) * Time(0, 1)
    with pytest.warns(kanpde.KanpdeWarning, match="the domain has a time axis but the problem "
                      "has no Initial condition"):  # fmt: skip
        kanpde.solve(_problem(heat, [Dirichlet(0.0)], strip), **opts)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        kanpde.solve(_problem(system, [Dirichlet(0.0)], square), **opts)
        kanpde.solve(_problem(heat, [Dirichlet(0.0), Initial(0.0)], strip), **opts)


def test_a_schedule_that_coarsens_the_grid_warns_once_and_a_refining_one_does_not(tmp_path):
    import warnings

    opts = dict(points={"interior": 20, "test": 11}, progress=False, device="cpu")
    with pytest.warns(kanpde.KanpdeWarning, match="schedule stage 1 coarsens the grid from 5 to 3"):
        kanpde.solve(POISSON1D, schedule="5:lbfgs=1,3:lbfgs=1,2:lbfgs=1", **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        kanpde.solve(POISSON1D, schedule="5:lbfgs=1,10:lbfgs=1", **opts)
        # a run resumed in its second stage is rebuilt at the first grid: no warning either
        out = tmp_path / "run"

        def fail_in_stage_1(trainer, row):
            if trainer.stage == 1 and trainer.i >= 2:
                raise RuntimeError("stop here")

        with pytest.raises(RuntimeError, match="stop here"):
            kanpde.solve(POISSON1D, schedule="5:adam=2,10:adam=30", out=out, log_every=1,
                         checkpoint_every=1, callback=fail_in_stage_1, **opts)  # fmt: skip
        run = kanpde.solve(POISSON1D, resume=out, progress=False)
    assert run.history["grid"][0] == 5 and run.history["grid"][-1] == 10
    assert run.metrics["steps"] == 32


def test_a_schedule_without_steps_warns_and_warnings_point_at_the_callers_line():
    import warnings

    opts = dict(points={"interior": 20, "test": 11}, progress=False, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        here = inspect.currentframe().f_lineno + 1
        run = kanpde.solve(POISSON1D, schedule="5:adam=0", **opts)
    ours = [w for w in caught if issubclass(w.category, kanpde.KanpdeWarning)]
    assert [str(w.message) for w in ours] == [
        f"{POISSON1D}: the schedule has no optimizer steps; the result is the untrained network"
    ]
    # attributed to this line, not to kanpde's internals (solve is several frames deep)
    assert (ours[0].filename, ours[0].lineno) == (__file__, here)
    assert run.metrics["steps"] == 0
    with warnings.catch_warnings():  # a zero-step stage after a training one is a grid change
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        kanpde.solve(POISSON1D, schedule="5:adam=1,10:adam=0", **opts)


def test_wrong_piece_names_and_periodic_axes_fail_when_the_problem_is_built(tmp_path):
    # They failed only once solve drew points, so `kanpde list` showed such files as valid.
    from kanpde import Dirichlet, Initial, Neumann, Periodic, Problem, Rectangle, Time

    box = Rectangle([0, 0], [1, 1]) * Time(0, 1)
    cases = [
        (Neumann(0.0, on="east"), "neumann[east]: unknown boundary piece 'east' for"),
        (Periodic("z"), "periodic[z]: unknown axis 'z'; axes are x, y, t"),
        (Periodic("t"), "periodic[t]: the time axis cannot be periodic"),
    ]
    for condition, message in cases:
        with pytest.raises(kanpde.ProblemError, match=re.escape(message)):
            Problem(name="p", domain=box, pde=lambda x, u: u, conditions=[condition, Initial(0)])
    with pytest.raises(kanpde.ProblemError, match=r"has no pair of opposite faces x = -1 and 1"):
        Problem(name="p", domain=kanpde.Disk([0, 0], 1), pde=lambda x, u: u,
                conditions=[Periodic("x")])  # fmt: skip
    (tmp_path / "east.py").write_text(
        "from kanpde import Neumann, Problem, Rectangle\n"
        "problem = Problem(name='east', domain=Rectangle([0, 0], [1, 1]), "
        "pde=lambda x, u: u, conditions=[Neumann(0.0, on='east')])\n"
    )
    out = subprocess.run([sys.executable, "-m", "kanpde", "list", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "[invalid]" in out and "unknown boundary piece 'east'" in out, out
    # a predicate and the valid names still pass, and pieces of a CSG difference by their names
    Problem(name="p", domain=box, pde=lambda x, u: u,
            conditions=[Neumann(0.0, on=lambda x: x[:, 0] < 0.5), Periodic("y", name="py"),
                        Dirichlet(0.0, on=["left", "y=1"]), Initial(0)])  # fmt: skip
    holed = Rectangle([-1, -1], [1, 1]) - kanpde.Disk([0, 0], 0.4)
    Problem(name="p", domain=holed, pde=lambda x, u: u, conditions=[Dirichlet(0.0, on="circle")])


def test_problems_without_conditions_or_with_fewer_equations_than_outputs_warn():
    import warnings

    from kanpde import Dirichlet, Interval, PointData, Problem, d, split

    opts = dict(points={"interior": 20, "test": 11}, progress=False, device="cpu",
                schedule="3:lbfgs=1")  # fmt: skip
    line = Interval(0, 1)
    bare = Problem(name="bare", domain=line, pde=lambda x, u: d(u, x, "x", "x") + 1,
                   model={"width": [1, 3, 1]})  # fmt: skip
    with pytest.warns(kanpde.KanpdeWarning, match="bare: the problem has no conditions"):
        kanpde.solve(bare, **opts)

    def one_equation(x, out):
        u, v = split(out)
        return d(u, x, "x") - v  # v' = -u forgotten

    def two_equations(x, out):
        u, v = split(out)
        return d(u, x, "x") - v, d(v, x, "x") + u

    def system(pde, conditions):
        return Problem(name="osc", domain=line, pde=pde, conditions=conditions,
                       outputs=["u", "v"], model={"width": [1, 3, 2]})  # fmt: skip

    left = [Dirichlet([0.0, 1.0], on="left")]
    with pytest.warns(kanpde.KanpdeWarning, match=re.escape(
            "problem 'osc': the PDE gives 1 residual column(s) for 2 outputs (u, v)")):  # fmt: skip
        kanpde.solve(system(one_equation, left), **opts)
    data = PointData([[0.5]], [[0.3]], component="v")
    with warnings.catch_warnings():  # two equations, or data for the missing one: no warning
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        kanpde.solve(system(two_equations, left), **opts)
        kanpde.solve(system(one_equation, [*left, data]), **opts)


def test_a_wrong_exact_shape_is_reported_as_returned():
    # (25,) was reported as (25, 1), the shape after kanpde's own reshape
    problem = kanpde.Problem(
        name="two", domain=kanpde.Interval(0, 1), pde=lambda x, u: kanpde.d(u, x, "x", "x"),
        conditions=[kanpde.Dirichlet(0.0)], outputs=["u", "v"], exact=lambda x: x[:, 0],
        points={"test": 25},
    )  # fmt: skip
    with pytest.raises(kanpde.ProblemError) as e:
        kanpde.solve(problem, schedule="3:adam=1", device="cpu", progress=False)
    assert str(e.value) == "problem 'two': exact(x) returned shape (25,), expected (25, 2)"


def test_a_problem_changed_after_construction_is_checked_again_by_solve():
    problem = kanpde.Problem(
        name="later", domain=kanpde.Interval(0, 1), pde=lambda x, u: kanpde.d(u, x, "x", "x"),
        conditions=[kanpde.Dirichlet(0.0)],
    )  # fmt: skip
    problem.weights = {"dirichlett": 2.0}
    with pytest.raises(kanpde.ProblemError, match=r"^problem 'later': weights: unknown key "):
        kanpde.solve(problem, schedule="3:adam=1", device="cpu", progress=False)
    problem.weights, problem.unknowns = {}, [("k", 1.0)]  # (an AttributeError, unchecked)
    with pytest.raises(kanpde.ProblemError) as e:
        kanpde.solve(problem, schedule="3:adam=1", device="cpu", progress=False)
    assert str(e.value) == (
        "problem 'later': unknowns must be a dict such as {'k': 1.0}, got list [('k', 1.0)]"
    )


def test_graphs_option_reaches_solve_and_on_needs_a_gpu(tmp_path, monkeypatch, capsys):
    # `kanpde solve --graphs on|off|auto` is solve(graphs=True|False|"auto"), with --resume too;
    # "on" for a CPU run is refused in one line before a run directory exists (it named the
    # Python argument, graphs=True)
    from stops import Killed, kill_after_checkpoint

    import kanpde.training
    from kanpde.cli import main

    argv = ["solve", POISSON1D, "--device", "cpu", "--schedule", "3:lbfgs=2", "--quiet"]
    assert main([*argv, "--graphs", "on", "--out", str(tmp_path / "on")]) == 2
    assert capsys.readouterr().err == (
        "kanpde: error: --graphs on: CUDA graphs need a CUDA device, and the run is on cpu\n"
    )
    assert not (tmp_path / "on").exists()
    real, given = kanpde.training.solve, []

    def solve(*args, **kwargs):
        given.append(kwargs["graphs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kanpde.training, "solve", solve)
    assert main([*argv, "--graphs", "off", "--out", str(tmp_path / "a")]) == 0
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 1)
        with pytest.raises(Killed):
            main([*argv, "--checkpoint-every", "1", "--out", str(tmp_path / "b")])
    (run,) = (tmp_path / "b").iterdir()
    resume = ["solve", POISSON1D, "--resume", str(run), "--quiet"]
    assert main([*resume, "--graphs", "off"]) == 0
    assert given == [False, "auto", False]
