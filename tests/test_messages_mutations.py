"""Mutation-testing round on the messages and checks added with the keyword hints, the study
argument names, the reference argument checks, the benchmarks' partial files and the symbolic
output names: each test pins behaviour that a surviving mutation changed unnoticed."""

import fcntl
import importlib.util
import inspect
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import kanpde
from kanpde.cli import CLIError
from kanpde.compare import compare, sweep
from kanpde.problem import ProblemError, load_problem
from kanpde.reference import Reference
from kanpde.reference.core import _check_int, _check_number
from kanpde.symbolic import _named, _refine_source
from kanpde.training import MAX_SEED

ROOT = Path(__file__).resolve().parents[1]
POISSON1D = str(ROOT / "problems" / "poisson1d.py")

HEAD = """
from kanpde import Dirichlet, Initial, Interval, Neumann, PointData, Problem, Time

def pde(x, u):
    return u
"""


def _import_error(tmp_path, body: str) -> str:
    """What load_problem says of a problem file that fails while importing."""
    path = tmp_path / "p.py"
    path.write_text(HEAD + body)
    with pytest.raises(ProblemError) as e:
        load_problem(path)
    return str(e.value).split("error while importing: ", 1)[1]


# ------------------------------------------------------------------ misspelt keywords


def test_keyword_hint_leaves_out_what_initial_and_point_data_refuse(tmp_path):
    # Initial refuses on=, PointData on=, value= and n=: offering them led to a second error
    said = _import_error(tmp_path, "Initial(0.0, derivativ=1)\n")
    assert said == (
        "TypeError: Initial() has no keyword 'derivativ'; did you mean 'derivative'? "
        "(it takes value, derivative, component, weight, name, n)"
    )
    said = _import_error(tmp_path, "PointData([[0.0]], [0.0], valus=1)\n")
    assert said == (
        "TypeError: PointData() has no keyword 'valus'; did you mean 'values'? "
        "(it takes x, values, component, weight, name)"
    )


def test_keyword_hint_of_problem_lists_its_fields_but_not_source(tmp_path):
    # source is set by load_problem; a problem file passing it is not what it takes
    said = _import_error(tmp_path, "Problem(nam='p', domain=Interval(0, 1), pde=pde)\n")
    fields = [n for n in inspect.signature(kanpde.Problem).parameters if n != "source"]
    assert said == (
        f"TypeError: Problem() has no keyword 'nam'; did you mean 'name'? "
        f"(it takes {', '.join(fields)})"
    )
    assert "source" not in said


def test_keyword_hint_names_the_first_call_in_the_file(tmp_path):
    # the first call (the one that raised) is named, not a later one deeper in the tree walk
    said = _import_error(tmp_path, "C = [Dirichlet(0.0, compnent=0)]\nNeumann(0.0, compnent=0)\n")
    assert said.startswith("TypeError: Dirichlet() has no keyword 'compnent'")


def test_a_kanpde_call_that_takes_the_keyword_is_not_blamed(tmp_path):
    # Dirichlet takes weight=: the refusal came from the file's own class, which Python names
    said = _import_error(
        tmp_path,
        "C = [Dirichlet(0.0, weight=2.0)]\n"
        "class Source:\n    def __init__(self):\n        pass\n\nSource(weight=2.0)\n",
    )
    assert said == "TypeError: Source.__init__() got an unexpected keyword argument 'weight'"


# ------------------------------------------------------------------ study argument names


def test_sweep_takes_the_largest_seed(tmp_path):
    # the range is 0 … 2**32 - 1 inclusive: MAX_SEED passes the seed check (and the call
    # stops at the next one, the device, before anything is made)
    with pytest.raises(CLIError) as e:
        sweep(POISSON1D, grids=[3, 5], seed=MAX_SEED, device="bogus", out=tmp_path / "sw")
    assert str(e.value).startswith("sweep: device 'bogus': unknown device")
    assert not (tmp_path / "sw").exists()


def test_a_python_compare_resumed_while_held_is_refused_in_its_arguments(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)  # as a first resume of this study holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(ValueError) as e:
            compare(POISSON1D, kans=[[1, 3, 1]], mlps=[[1, 4, 1]], seeds=1, steps=2,
                    device="cpu", out=tmp_path, resume=True, progress=False)  # fmt: skip
    finally:
        os.close(fd)
    assert str(e.value) == (
        f"compare: resume=True, out {tmp_path}: another process is running or resuming this study"
    )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ reference checks


def test_check_number_takes_zero_d_arrays_and_the_at_least_bound():
    # documented: the value is only checked; a 0-d NumPy number is a number
    _check_number("f", "eps", np.array(0.5), above=0)
    _check_number("f", "eps", np.float32(2.0), above=0)
    _check_number("f", "eps", 0.0, at_least=0)  # ">= 0" takes 0
    _check_number("f", "eps", np.array(0), at_least=0)
    with pytest.raises(ValueError, match=r"^f: eps must be a finite number >= 0, got -1\.0$"):
        _check_number("f", "eps", np.array(-1.0), at_least=0)


def test_checks_refuse_booleans():
    # True is an int to Python, but no number or count a caller means
    with pytest.raises(ValueError, match=r"^f: nu must be a finite number > 0, got True$"):
        _check_number("f", "nu", True, above=0)
    with pytest.raises(ValueError, match=r"^f: n must be an integer >= 1, got True$"):
        _check_int("f", "n", True, 1)
    _check_int("f", "n", 1, 1)  # the minimum itself is taken
    _check_int("f", "n", np.int64(8), 8, multiple=4)


def test_check_number_shows_numpy_values_plainly():
    # a NumPy scalar is shown as its number, not as np.float64(nan)
    with pytest.raises(ValueError, match=r"^f: nu must be a finite number > 0, got nan$"):
        _check_number("f", "nu", np.float64("nan"), above=0)
    with pytest.raises(ValueError, match=r"^f: n must be an even integer >= 4, got 5$"):
        _check_int("f", "n", np.int64(5), 4, multiple=2)


def test_interpolate_names_the_point_and_axis_of_the_first_point_outside():
    ref = Reference(
        ("x", "t"), (np.linspace(-1.0, 1.0, 5), np.linspace(0.0, 1.0, 5)), {"u": np.zeros((5, 5))}
    )
    # point 0 is outside along t (axis 1), point 2 along x: the first in point order
    pts = np.array([[0.0, 2.0], [0.0, 0.5], [3.0, 0.5]])
    msg = "Reference.interpolate: t = 2.0 outside the reference's range [0.0, 1.0] (point 0 of 3)"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        ref.interpolate(pts)


# ------------------------------------------------------------------ benchmark result files


@pytest.fixture
def common(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "kanpde_bench_common", ROOT / "benchmarks" / "common.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "_PARTIAL", set())
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    return mod


def test_a_partial_save_never_replaces_the_complete_file(common, tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    results.mkdir()
    (results / "tta.json").write_text("cited")  # a complete file the README cites
    path = common.save("tta", {"rows": [1]}, partial=True)
    assert path == results / "tta-partial.json"
    saved = json.loads(path.read_text())
    assert saved["partial"] is True and saved["rows"] == [1]
    assert (out / "tta-partial.json").read_text() == path.read_text()
    assert (results / "tta.json").read_text() == "cited"
    # the complete file, written last, removes the partial one here and in $OUT
    path = common.save("tta", {"rows": [1, 2]})
    assert path == results / "tta.json"
    saved = json.loads(path.read_text())
    assert saved["rows"] == [1, 2] and "partial" not in saved
    assert (out / "tta.json").read_text() == path.read_text()
    assert sorted(p.name for p in results.iterdir()) == ["tta.json"]
    assert sorted(p.name for p in out.iterdir()) == ["tta.json"]


def test_scaling_names_its_file_by_the_settings_that_differ_from_the_defaults(common):
    # a trial with other points, grids or dtype overwrote scaling-cpu.json, which the README
    # cites; the documented commands (the README's CPU one, gpu_all.sh's CUDA one) keep it
    import sys

    sys.modules["common"] = common  # scaling.py imports it by that name
    spec = importlib.util.spec_from_file_location(
        "kanpde_bench_scaling", ROOT / "benchmarks" / "scaling.py"
    )
    scaling = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(scaling)
    finally:
        del sys.modules["common"]

    def name(**given):
        args = SimpleNamespace(**{"device": "cpu", "dtype": "float64", "threads": 1, "n": None,
                                  "grids": "5,10,20,50,100", "n_for_grids": 2601,
                                  "allocator": "kanpde", "tag": None, **given})  # fmt: skip
        args.n = args.n or scaling.DEFAULT_N[args.device.split(":")[0]]
        return scaling.results_name(args)

    assert name(n="1000,3000,10000,30000,100000") == "scaling-cpu"
    assert name(device="cuda", n="1000,10000,100000,300000,1000000") == "scaling-cuda"
    assert name(device="cuda:1") == "scaling-cuda"
    assert name(n="1000,3000") == "scaling-cpu-n1000_3000"
    assert name(grids="5,50") == "scaling-cpu-g5_50"
    assert name(dtype="float32", n_for_grids=900) == "scaling-cpu-float32-ng900"
    assert name(allocator="default", tag="xeon") == "scaling-cpu-default-allocator-xeon"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # the threads the run had: without --threads, torch's own count
        assert name(threads=2) == name(threads=None) == "scaling-cpu-2threads"
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------ symbolic output names


def test_named_formula_falls_back_to_numbered_outputs():
    # names that do not match the outputs one for one say nothing of which is which
    run = SimpleNamespace(outputs=("u",))
    assert _named(run, ["x + 1", "2*x"]) == "u_0 = x + 1\nu_1 = 2*x"
    assert _named(SimpleNamespace(outputs=("u", "v")), ["x", "y"]) == "u = x\nv = y"
    assert _named(run, "x + 1") == "x + 1"


def test_refine_refuses_a_problem_with_the_runs_inputs_but_other_outputs():
    # poisson1d solves for u of x; a run for v of x is another problem's
    run = SimpleNamespace(names=("x",), outputs=("v",), config={"problem": "p"})
    with pytest.raises(ValueError) as e:
        _refine_source(run, POISSON1D)
    assert str(e.value) == (
        f"--problem {POISSON1D}: solves for u of x, the run for v of x; give the file of the "
        "run's problem ('p')"
    )
    ok = SimpleNamespace(names=("x",), outputs=("u",), config={"problem": "poisson1d"})
    assert _refine_source(ok, POISSON1D) == POISSON1D
