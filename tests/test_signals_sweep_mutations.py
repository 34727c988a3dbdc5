"""Grid sweeps and the CPU allocator setting against their documented behaviour (mutation
audit of ``kanpde/allocator.py``, ``kanpde/signals.py`` and the sweep part of
``kanpde/compare.py``).

Each test here failed under a plausible mutation that the rest of the suite let pass; the
comments name the mutation each one catches. The sweeps use a stand-in for ``solve`` whose
runs report chosen test errors, so that the numbers checked follow from arithmetic alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kanpde
import kanpde.compare as C
from kanpde import allocator
from kanpde.cli import CLIError
from kanpde.compare import _saved_sweep_options, fitted_slope, sweep
from kanpde.results import Run, save_run

ROOT = Path(__file__).resolve().parents[1]
POISSON1D = str(ROOT / "problems" / "poisson1d.py")


def _rmse(g):
    """0.1 (G/3)⁻⁴: a test error on the cubic-spline rate, log-log slope exactly -4."""
    return 0.1 * (g / 3) ** -4.0


def _fake_sweep(monkeypatch, grids, steps, separate, model=None, **kw):
    """sweep() with solve replaced: the extension run logs one row per stage at RMSE
    ``_rmse(G)``; the run trained at G has RMSE, steps taken and whether L-BFGS reported
    convergence from ``separate[G]``."""
    import kanpde.training

    model = {"basis": "bspline", "k": 3} if model is None else model

    def fake_solve(problem, schedule, **kwargs):
        if len(schedule) > 1:
            hist = {"stage": np.arange(len(grids), dtype=float),
                    "mse": np.array([_rmse(g) ** 2 for g in grids])}  # fmt: skip
            metrics, events = {"mse": hist["mse"][-1], "steps": steps * len(grids)}, []
        else:
            err, taken, converged = separate[schedule[0].grid]
            hist = {"stage": np.zeros(1), "mse": np.array([err**2])}
            metrics = {"mse": err**2, "steps": taken}
            events = [{"step": taken, "event": "lbfgs_converged"}] if converged else []
        config = {"model": dict(model), "seed": kwargs.get("seed")}
        run = Run(config, hist, {}, metrics, {}, events)
        if kwargs.get("out") is not None:  # as solve does: the sweep then moves it in place
            save_run(run, kwargs["out"])
        return run

    monkeypatch.setattr(kanpde.training, "solve", fake_solve)
    monkeypatch.setattr(C, "_figures", lambda result, out: [])
    return sweep(POISSON1D, grids=grids, steps=steps, **{"device": "cpu", **kw})


# --------------------------------------------------------------------------- allocator


def test_a_c_library_without_mallopt_leaves_the_setting_off(monkeypatch):
    # "False off Linux/glibc": a libc without mallopt (musl) answers False, not an error
    # (catches: only OSError caught around the lookup, AttributeError let through)
    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv("KANPDE_MALLOPT", raising=False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: object())
    assert allocator.retain_freed_memory() is False


# --------------------------------------------------------------------------- sweep checks


def test_sweep_refuses_grids_that_are_not_integers_and_steps_that_are_a_bool():
    # catches: int(None)'s TypeError escaping instead of the --grids message, and steps=True
    # taken for 1 step (bool is an int subclass)
    with pytest.raises(CLIError) as e:
        sweep(POISSON1D, grids=[3, None], steps=2, device="cpu")
    assert str(e.value) == "sweep: grids '3,None': expected integers like 3,5,10,20"
    with pytest.raises(CLIError) as e:  # one number, not a list: a TypeError escaped
        sweep(POISSON1D, grids=5, steps=2, device="cpu")
    assert str(e.value) == "sweep: grids '5': expected integers like 3,5,10,20"
    with pytest.raises(CLIError, match=r"^sweep: steps True: must be at least 1"):
        sweep(POISSON1D, grids=[3, 5], steps=True, device="cpu")


def test_resuming_a_sweep_needs_its_directory(tmp_path):
    # catches: resume without out reaching `None / "sweep.json"` (a TypeError)
    with pytest.raises(CLIError) as e:
        sweep(POISSON1D, grids=[3, 5], steps=1, device="cpu", resume=True)
    assert str(e.value) == "sweep: resume: needs out, the directory of the study to continue"
    # a comparison's directory is named as one by its comparison.h5 (catches: another file
    # taken for the mark, which sent this case to the plain "no sweep.json")
    (tmp_path / "comparison.h5").write_bytes(b"")
    with pytest.raises(CLIError) as e:
        sweep(POISSON1D, grids=[3, 5], steps=1, device="cpu", out=tmp_path, resume=True)
    # the advice in Python terms too (it quoted the command line's "kanpde compare ... --resume")
    assert str(e.value) == (
        f"sweep: resume=True, out {tmp_path}: a comparison study; continue it with "
        "kanpde.compare.compare(problem, resume=True, out=...)"
    )
    (tmp_path / "comparison.h5").unlink()
    (tmp_path / "comparison.csv").write_text("")
    with pytest.raises(CLIError) as e:
        sweep(POISSON1D, grids=[3, 5], steps=1, device="cpu", out=tmp_path, resume=True)
    assert str(e.value) == (
        f"sweep: resume=True, out {tmp_path}: no sweep.json; not a sweep study directory"
    )


# --------------------------------------------------------------------------- sweep results


def test_with_one_full_run_left_the_slope_is_fitted_to_every_run(monkeypatch):
    # two of three runs trained at G stopped short: one point makes no line, so all three
    # are fitted; on the -4 law that is exactly -4 (catches: a fit kept with one run left)
    sep = {3: (_rmse(3), 10, False), 5: (_rmse(5), 8, True), 10: (_rmse(10), 4, True)}
    s = _fake_sweep(monkeypatch, [3, 5, 10], 10, sep)
    assert s.stalled == [None, (8, 20), (4, 30)]
    assert s.slope_separate == pytest.approx(-4.0, abs=1e-12)
    assert s.slope_extension == pytest.approx(-4.0, abs=1e-12)
    np.testing.assert_allclose(s.extension, [_rmse(g) for g in (3, 5, 10)], rtol=1e-14)


def test_sweep_csv_records_the_step_a_stalled_run_stopped_at(monkeypatch, tmp_path):
    # the column is "separate_stopped_at": the steps taken (13), not those planned (4 · 10)
    sep = {g: (_rmse(g), 10 * (i + 1), False) for i, g in enumerate((3, 5, 10))}
    sep[20] = (1.0, 13, True)
    s = _fake_sweep(monkeypatch, [3, 5, 10, 20], 10, sep, out=tmp_path)
    assert s.stalled == [None, None, None, (13, 40)]
    with open(tmp_path / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["separate_stopped_at"] for r in rows] == ["", "", "", "13"]
    assert [float(r["rmse_separate"]) for r in rows] == s.separate
    assert "(L-BFGS stopped at step 13 of 40)" in (tmp_path / "sweep.md").read_text()


@pytest.mark.parametrize("basis", ["rbf", "rswaf", "chebyshev"])
def test_only_b_spline_edges_have_a_theory_slope(monkeypatch, basis):
    # "None for bases without an algebraic rate (Chebyshev, rbf, rswaf)" (catches: every
    # basis but Chebyshev given the spline rate)
    sep = {3: (_rmse(3), 10, False), 5: (_rmse(5), 20, False)}
    s = _fake_sweep(monkeypatch, [3, 5], 10, sep, model={"basis": basis})
    assert s.theory is None and s.basis == basis
    assert s.markdown().rstrip().endswith(f"; no algebraic theory slope for {basis} edges")


def test_a_spline_saved_without_its_degree_has_the_cubic_rate(monkeypatch):
    # KAN's default degree is k = 3, so the theory slope is -(3 + 1) (catches: another
    # default degree)
    sep = {3: (_rmse(3), 10, False), 5: (_rmse(5), 20, False)}
    s = _fake_sweep(monkeypatch, [3, 5], 10, sep, model={"basis": "bspline"})
    assert s.theory == -4.0
    assert s.markdown().rstrip().endswith("; degree-3 spline theory: -4")


# --------------------------------------------------------------------------- sweep resume


def test_sweep_json_records_the_dtype_the_runs_used(monkeypatch, tmp_path):
    # without dtype= the runs train at the problem's float64, and sweep.json says so; a resume
    # naming float64 is the same study (catches: None recorded, and that resume refused)
    sep = {3: (_rmse(3), 10, False), 5: (_rmse(5), 20, False)}
    first = _fake_sweep(monkeypatch, [3, 5], 10, sep, out=tmp_path)
    setup = json.loads((tmp_path / "sweep.json").read_text())
    assert kanpde.load_problem(POISSON1D).dtype == "float64" == setup["dtype"]
    again = _fake_sweep(monkeypatch, [3, 5], 10, sep, out=tmp_path, dtype="float64",
                        resume=True)  # fmt: skip
    assert again.separate == first.separate
    with pytest.raises(CLIError, match=r"other settings \(dtype: float64 there, float32 here"):
        _fake_sweep(monkeypatch, [3, 5], 10, sep, out=tmp_path, dtype="float32", resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="device auto is the GPU there")
def test_a_sweep_records_the_device_auto_resolves_to(monkeypatch, tmp_path):
    # on a machine without a GPU "auto" is the CPU: a study started with either spelling
    # resumes with the other (catches: the spelling recorded, not the device)
    sep = {3: (_rmse(3), 10, False), 5: (_rmse(5), 20, False)}
    for first, then in (("auto", "cpu"), ("cpu", "auto")):
        out = tmp_path / first
        _fake_sweep(monkeypatch, [3, 5], 10, sep, out=out, device=first)
        assert json.loads((out / "sweep.json").read_text())["device"] == "cpu"
        _fake_sweep(monkeypatch, [3, 5], 10, sep, out=out, device=then, resume=True)


def test_a_cli_resume_takes_the_options_left_out_from_sweep_json(tmp_path):
    # `kanpde sweep P --resume DIR` continues the study as it was started: grids, steps,
    # seed, points, dtype and preset left out come from sweep.json; options given stay
    saved = {"grids": [3, 5, 8], "steps": 5, "seed": 2, "points": {"interior": 15},
             "dtype": "float32", "preset": "tiny"}  # fmt: skip
    (tmp_path / "sweep.json").write_text(json.dumps(saved))
    args = argparse.Namespace(
        grids="3,5,10,20,50,100",
        steps=200,
        seed=0,
        points=None,
        dtype=None,
        preset=None,
        argv=["sweep", "p.py", "--steps=7"],
    )
    _saved_sweep_options(args, tmp_path)
    assert (args.grids, args.steps, args.seed) == ("3,5,8", 200, 2)
    assert (args.points, args.dtype, args.preset) == ({"interior": 15}, "float32", "tiny")


def test_the_least_squares_slope_of_three_points_by_hand():
    # log G = 0, 1, 2 (G = 1, e, e²) and log error = 0, -1, -4: the slope is
    # Σ(x - 1)(y + 5/3) / Σ(x - 1)² = (-(5/3) + (-4 + 5/3)) / 2 = -2
    assert fitted_slope([1, math.e, math.e**2], [1, math.exp(-1), math.exp(-4)]) == (
        pytest.approx(-2.0, abs=1e-12)
    )
