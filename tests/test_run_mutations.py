"""Studies, results files and checkpoints against independent arithmetic (mutation audit).

Each test here failed under a plausible mutation of ``kanpde/compare.py``,
``kanpde/results.py`` or ``kanpde/checkpoint.py`` (or of ``count_parameters``) that the rest
of the suite let pass; the comments name the mutation each one catches.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from bitwise import same
from stops import Killed, kill_after_checkpoint

import kanpde
from kanpde.checkpoint import load_checkpoint, save_checkpoint
from kanpde.compare import Comparison, _matching_width, _plan, compare, fitted_slope, sweep
from kanpde.nn import KAN, MLP, count_parameters
from kanpde.results import Run, load, load_progress, save_run

ROOT = Path(__file__).resolve().parents[1]
POISSON1D = str(ROOT / "problems" / "poisson1d.py")
DIFFUSION1D = str(ROOT / "problems" / "diffusion1d.py")
TABLES = ("comparison.csv", "comparison.h5", "comparison.md")


def _poisson1d(**points):
    problem = kanpde.load_problem(POISSON1D)
    problem.points = {**problem.points, "interior": 30, "boundary": 2, "method": "grid",
                      "test": 41, **points}  # fmt: skip
    return problem


@pytest.fixture(scope="module")
def study():
    """A KAN and an MLP, one seed, four steps each: enough for distinct, finite errors."""
    return compare(_poisson1d(), kans=[[1, 2, 1]], mlps=[[1, 4, 1]], seeds=1, steps=4,
                   device="cpu")  # fmt: skip


# ------------------------------------------------------------------------- comparison table


def test_table_rows_are_the_numpy_errors_of_each_runs_test_prediction(study):
    """Each row's mse, rel_l2 and max_err are mean(e²), ‖e‖₂/‖u‖₂ and max|e| of e = pred − u
    on the test set, u = sin(πx) (catches: a row's rel_l2 or max_err taken from another
    metric, its evaluations from the step count)."""
    assert len(study.rows) == 2
    for row in study.rows:
        run = study.runs[(row["model"], row["seed"])]
        x, pred, ref = (run.solution[k] for k in ("x", "pred", "ref"))
        assert x.shape == (41, 1)
        np.testing.assert_allclose(ref, np.sin(np.pi * x), rtol=0, atol=1e-15)
        # the stored prediction is the model's own at the test points
        np.testing.assert_allclose(run.predict(x), pred, rtol=0, atol=1e-14)
        e = pred - ref
        mse, rel, top = np.mean(e**2), np.linalg.norm(e) / np.linalg.norm(ref), np.abs(e).max()
        # the three differ by far more than the 1e-12 tolerance: a swap cannot pass
        assert min(abs(mse - rel), abs(rel - top), abs(mse - top)) > 1e-3
        assert row["mse"] == pytest.approx(mse, rel=1e-12)
        assert row["rel_l2"] == pytest.approx(rel, rel=1e-12)
        assert row["max_err"] == pytest.approx(top, rel=1e-12)
        # rel_l2² ‖u‖² = N mse: the relative error is the root of the summed squares
        assert row["rel_l2"] ** 2 * np.sum(ref**2) == pytest.approx(len(e) * row["mse"], rel=1e-10)
        # evaluations are counted apart from steps (L-BFGS evaluates more often than it steps)
        h = run.history
        assert row["steps"] == h["step"][-1] == 4
        assert row["evals"] == h["evals"][-1] == run.metrics["evals"] > row["steps"]


def test_saved_histories_are_each_runs_logged_columns(study, tmp_path):
    """comparison.h5 keeps every run's step, loss, mse, rel_l2 and time columns, and each
    run's last logged test MSE is its row's (catches: a column left out of the file)."""
    study.save(tmp_path)
    with h5py.File(tmp_path / "comparison.h5") as f:
        assert sorted(f["history"]) == sorted(f"{m} seed {s}" for m, s in study.runs)
        for (label, seed), run in study.runs.items():
            g = f[f"history/{label} seed {seed}"]
            assert sorted(g) == ["loss", "mse", "rel_l2", "step", "time"]
            for k in g:
                np.testing.assert_array_equal(g[k][()], run.history[k])
            row = next(r for r in study.rows if r["model"] == label)
            assert g["mse"][-1] == row["mse"] and g["rel_l2"][-1] == row["rel_l2"]
            assert np.all(np.diff(g["time"][()]) >= 0) and g["time"][-1] <= row["train_time"]


def _rows(mse):
    return [{"model": "KAN [1,2,1]", "width": "1-2-1", "grid": 5, "params": 40, "seed": 0,
             "mse": mse, "rel_l2": 0.5, "max_err": 0.75, "train_time": 1.0, "steps": 4,
             "evals": 9, "steps_per_s": 4.0}]  # fmt: skip


class _Unprintable:
    def __str__(self):
        raise _Refused("no text for this cell")


class _Refused(Exception):
    pass


def test_a_failed_table_refresh_leaves_each_previous_table_whole(tmp_path, monkeypatch):
    """A refresh that fails part-way through a table leaves that table as it was and no
    temporary file (catches: the CSV, markdown or HDF5 table written in place, not through
    a temporary file renamed over it)."""
    Comparison("p", _rows(0.25), {"seeds": 1}).save(tmp_path)
    old = {name: (tmp_path / name).read_bytes() for name in TABLES}

    def unchanged(*names):
        assert sorted(os.listdir(tmp_path)) == sorted(TABLES)  # no temporaries left
        for name in names:
            assert (tmp_path / name).read_bytes() == old[name], name

    # the CSV writer fails at its second row, after writing the header and the first one
    rows = _rows(0.5) + [{**_rows(0.5)[0], "seed": 1, "width": _Unprintable()}]
    with pytest.raises(_Refused):
        Comparison("p", rows, {"seeds": 1}).save(tmp_path)
    unchanged(*TABLES)

    # the disk fills while the markdown table is half written
    real = Path.write_text

    def half(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", half)
        with pytest.raises(kanpde.ResultsError, match="could not be written"):
            Comparison("p", _rows(0.5), {"seeds": 1}).save(tmp_path)
    unchanged("comparison.md", "comparison.h5")

    # the HDF5 writer fails after opening its file (a setup JSON cannot hold)
    with pytest.raises(TypeError):
        Comparison("p", _rows(0.75), {"seeds": 1, "bad": object()}).save(tmp_path)
    unchanged("comparison.h5")
    back = Comparison.load(tmp_path, runs=False)
    assert back.rows == _rows(0.25) and back.setup == {"seeds": 1}


def test_a_coarsening_schedule_matches_the_mlp_to_the_kans_last_grid():
    """Grid changes may coarsen: the KAN ends on the schedule's last grid, 5 here, with
    4 edges × (G + k + 2) = 40 parameters, and its MLP [1, h, h, 1] has h² + 4h + 1 ≈ 40,
    h = 5 (catches: the largest grid of the schedule taken for the final one)."""
    problem = _poisson1d()
    problem.schedule = [{"grid": 10, "lbfgs": 2}, {"grid": 5, "lbfgs": 2}]
    plan = _plan(problem, [[1, 2, 1]], None, 1, "steps", None, None, "cpu", None, "tanh")
    (matched,) = plan.setup["matched_mlps"]
    assert matched["grid"] == 5 and matched["kan_params"] == 4 * (5 + 3 + 2)
    kan = KAN([1, 2, 1], grid=5, k=3)
    assert count_parameters(kan) == 40
    assert _matching_width(40, 1, 1) == 5 and matched["mlp"] == [1, 5, 5, 1]
    # h = 5 is the nearest: 46 parameters (|46 - 40| = 6) against 33 for h = 4 (7 off)
    assert count_parameters(MLP([1, 5, 5, 1])) == 5 * 5 + 4 * 5 + 1 == 46


def test_parameter_counts_leave_out_frozen_parameters():
    """count_parameters counts what trains: a KAN [1, 2, 1] at G = 5, k = 3 has
    4 (G + k + 2) = 40 parameters; freezing the first layer's 2 × 8 spline coefficients
    leaves 24 (catches: every parameter counted, requires_grad or not)."""
    kan = KAN([1, 2, 1], grid=5, k=3)
    assert count_parameters(kan) == sum(p.numel() for p in kan.parameters()) == 40
    kan.layers[0].coef.requires_grad_(False)
    assert kan.layers[0].coef.numel() == 2 * (5 + 3)
    assert count_parameters(kan) == 40 - 16


# -------------------------------------------------------------------------------- sweeps


def _fake_sweep(monkeypatch, grids, steps, stage, mse, separate, **kw):
    """sweep() with solve replaced: the extension run logs ``stage`` and ``mse`` rows; the run
    trained at G has test MSE, steps taken and whether L-BFGS converged from ``separate[G]``."""
    import kanpde.training

    def fake_solve(problem, schedule, **kwargs):
        if len(schedule) > 1:
            hist = {"stage": np.asarray(stage, float), "mse": np.asarray(mse, float)}
            metrics, events = {"mse": mse[-1], "steps": steps * len(grids)}, []
        else:
            err, taken, converged = separate[schedule[0].grid]
            hist = {"stage": np.zeros(1), "mse": np.array([err])}
            metrics = {"mse": err, "steps": taken}
            events = [{"step": taken, "event": "lbfgs_converged"}] if converged else []
        run = Run({"model": {"basis": "bspline", "k": 3}, "seed": kwargs.get("seed")}, hist,
                  {}, metrics, {}, events)  # fmt: skip
        if kwargs.get("out") is not None:  # as solve does: the sweep then moves it in place
            save_run(run, kwargs["out"])
        return run

    monkeypatch.setattr(kanpde.training, "solve", fake_solve)
    return sweep(POISSON1D, grids=grids, steps=steps, device="cpu", **kw)


def test_sweep_reads_each_grids_error_at_the_end_of_its_stage(monkeypatch):
    """The extension RMSE at grid i is √mse of the last row logged up to the end of stage i;
    a stage without rows of its own (L-BFGS could not move) keeps its predecessor's (catches:
    the row of the next stage taken, one stage off)."""
    sep = {3: (1e-2, 10, False), 5: (1e-3, 20, False), 10: (1e-4, 30, False)}
    s = _fake_sweep(monkeypatch, [3, 5, 10], 10, [0, 0, 1, 1, 2, 2],
                    [0.9, 0.4, 0.3, 0.1, 0.05, 0.01], sep)  # fmt: skip
    np.testing.assert_allclose(s.extension, np.sqrt([0.4, 0.1, 0.01]), rtol=1e-15)
    s = _fake_sweep(monkeypatch, [3, 5, 10], 10, [0, 0, 2, 2], [0.9, 0.4, 0.05, 0.01], sep)
    np.testing.assert_allclose(s.extension, np.sqrt([0.4, 0.4, 0.01]), rtol=1e-15)
    assert s.slope_extension == pytest.approx(fitted_slope([3, 5, 10], s.extension), rel=1e-12)


def test_only_runs_lbfgs_ended_early_by_convergence_are_left_out_of_the_slope(monkeypatch):
    """A run trained at G is "stopped short" only when it took fewer steps than planned
    (10 (i + 1) for the i-th grid) and L-BFGS reported convergence. With RMSE = 0.1 (G/3)⁻⁴
    on the other runs the fitted slope is exactly -4 (catches: `or` for `and`, `<=` for `<`,
    and a fit that needs three runs left, not two)."""

    def mse(g):
        return (0.1 * (g / 3) ** -4.0) ** 2

    sep = {
        3: (mse(3), 10, True),  # converged on its last planned step: a full run
        5: (mse(5), 15, False),  # fewer steps, no convergence (it ran out of something else)
        10: (mse(10), 30, False),
        20: (1.0, 13, True),  # converged at step 13 of 40: stopped short
    }
    s = _fake_sweep(monkeypatch, [3, 5, 10, 20], 10, [0, 1, 2, 3], [1, 1, 1, 1], sep)
    assert s.stalled == [None, None, None, (13, 40)]
    assert s.slope_separate == pytest.approx(-4.0, abs=1e-12)
    np.testing.assert_allclose(s.separate, [math.sqrt(sep[g][0]) for g in (3, 5, 10, 20)])
    # two runs left of three still make a slope, theirs
    sep = {3: (mse(3), 10, False), 5: (mse(5), 20, False), 10: (1.0, 4, True)}
    s = _fake_sweep(monkeypatch, [3, 5, 10], 10, [0, 1, 2], [1, 1, 1], sep)
    assert s.stalled == [None, None, (4, 30)]
    assert s.slope_separate == pytest.approx(-4.0, abs=1e-12)


def test_a_fresh_sweep_clears_an_earlier_sweeps_runs_before_it_can_be_resumed(
    monkeypatch, tmp_path
):
    """A sweep started again in a directory removes the earlier sweep's separate runs, so
    that resuming it trains its own (catches: an earlier seed's grid-3 run taken on resume)."""
    import kanpde.compare as C
    import kanpde.training

    monkeypatch.setattr(C, "_figures", lambda result, out: [])
    sep = {3: (1e-2, 2, False), 5: (1e-3, 4, False)}
    kw = dict(stage=[0, 1], mse=[0.1, 0.01], separate=sep, out=tmp_path)
    _fake_sweep(monkeypatch, [3, 5], 2, seed=0, **kw)
    assert sorted(p.name for p in (tmp_path / "separate").iterdir()) == ["grid-3.h5", "grid-5.h5"]
    fake, calls = kanpde.training.solve, []

    def stopped(problem, schedule, **kwargs):  # Ctrl-C in the first run trained at one grid
        calls.append((schedule[-1].grid, len(schedule)))
        if len(schedule) == 1:
            raise KeyboardInterrupt
        return fake(problem, schedule, **kwargs)

    monkeypatch.setattr(kanpde.training, "solve", stopped)
    with pytest.raises(KeyboardInterrupt):
        sweep(POISSON1D, grids=[3, 5], steps=2, device="cpu", seed=1, out=tmp_path)
    assert list((tmp_path / "separate").glob("grid-*.h5")) == []
    calls.clear()
    monkeypatch.setattr(kanpde.training, "solve", lambda *a, **k: calls.append(1) or fake(*a, **k))
    sweep(POISSON1D, grids=[3, 5], steps=2, device="cpu", seed=1, out=tmp_path, resume=True)
    assert len(calls) == 2  # both separate runs trained; the extension run was kept
    for g in (3, 5):
        assert load(tmp_path / "separate" / f"grid-{g}.h5").config["seed"] == 1


# --------------------------------------------------------------------------- results files


def test_a_results_file_keeps_numbers_as_numbers(tmp_path):
    """NumPy integers and float32 values in a run's config, metrics and attributes come back
    as the same numbers, and an integer attribute as an integer (catches: NumPy scalars or
    integer attributes written as text)."""
    run = Run(
        config={"points": {"interior": np.int64(50)}, "seed": np.int32(7),
                "model": {"type": "mlp", "width": [1, 2, 1]}},
        history={"step": np.arange(3.0)},
        solution={"x": np.zeros((2, 1))},
        metrics={"mse": np.float32(0.25), "steps": np.int64(3), "grid": [np.int16(5)]},
        attrs={"time_axis": 1, "names": ["x", "t"], "flag": True},
        events=[{"step": np.int64(2), "event": "resample"}],
    )  # fmt: skip
    back = load(save_run(run, tmp_path / "r.h5"))
    assert back.config["points"]["interior"] == 50 and back.config["seed"] == 7
    assert back.metrics == {"mse": 0.25, "steps": 3, "grid": [5]}
    assert back.events == [{"step": 2, "event": "resample"}]
    assert type(back.attrs["time_axis"]) is int and back.attrs["time_axis"] == 1
    assert back.attrs["flag"] is True and back.names == ("x", "t")


def test_a_time_dependent_runs_file_names_its_time_column(tmp_path):
    """diffusion1d's points are (x, t): the file's time_axis is 1, an integer, the column
    named t (catches: the attribute written as text or as -1, steady)."""
    problem = kanpde.load_problem(DIFFUSION1D)
    run = kanpde.solve(problem, schedule="3:adam=1", progress=False, device="cpu",
                       points={"interior": 20, "boundary": 8, "initial": 8, "test": 5})  # fmt: skip
    assert run.attrs["time_axis"] == 1
    back = load(save_run(run, tmp_path / "result.h5"))
    assert type(back.attrs["time_axis"]) is int
    assert back.names[back.attrs["time_axis"]] == "t" and back.attrs["time_axis"] == 1


def test_progress_of_a_run_counts_steps_to_its_checkpoint_not_its_last_log(tmp_path, monkeypatch):
    """Checkpoints every 3 steps, logs every 5: the checkpoint of step 6 has rows of steps 0
    and 5, and load_progress reports 6 steps (catches: the steps read off the last row)."""
    kill_after_checkpoint(monkeypatch, 6)
    with pytest.raises(Killed):
        kanpde.solve(POISSON1D, schedule="3:adam=20", points={"interior": 20, "test": 5},
                     log_every=5, checkpoint_every=3, out=tmp_path, progress=False,
                     device="cpu")  # fmt: skip
    run = load_progress(tmp_path)
    assert run.history["step"].tolist() == [0.0, 5.0]
    assert run.metrics["steps"] == 6 == load_checkpoint(tmp_path)["position"]["step"]


# ----------------------------------------------------------------------------- checkpoints


def test_optimizer_states_come_back_bit_for_bit_and_continue_alike(tmp_path):
    """Adam's moments and L-BFGS's memory survive a checkpoint exactly: fresh optimizers
    loaded from it take the same next steps, to the bit (catches: float64 tensors or arrays
    stored as float32, integral floats such as a scale 1.0 restored as ints)."""
    torch.manual_seed(0)
    target = torch.randn(6, dtype=torch.float64)

    def loss_of(w):
        return ((w - target) ** 4).sum() + (w.prod() - 0.3) ** 2

    def make(kind):
        torch.manual_seed(1)
        w = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))
        if kind == "adam":
            return w, torch.optim.Adam([w], lr=0.05, betas=(0.8, 0.95))
        return w, torch.optim.LBFGS([w], lr=1, max_iter=4, history_size=3)

    def step(w, opt):
        def closure():
            opt.zero_grad()
            loss = loss_of(w)
            loss.backward()
            return loss

        return opt.step(closure)

    ws, opts = zip(*(make(k) for k in ("adam", "lbfgs")))
    for _ in range(3):
        for w, opt in zip(ws, opts):
            step(w, opt)
    state = {
        "adam": opts[0].state_dict(),
        "lbfgs": {"state": opts[1].state_dict(), "scale": 1.0},
        "weights": np.array([1 / 3, math.pi, 1e-300]),
        "position": {"decayed": 0.0, "clock": (0.5, 2.0)},
    }
    lbfgs_memory = state["lbfgs"]["state"]["state"][0]
    assert len(lbfgs_memory["old_dirs"]) == 3  # the memory is full: a real test of the lists
    back = load_checkpoint(save_checkpoint(tmp_path / "checkpoint.h5", state))
    assert set(back) == set(state)  # (HDF5 lists a file's top level by name)
    for key in state:
        same(back[key], state[key], key)
    # continuing: optimizers rebuilt from the checkpoint step exactly as the originals do
    for kind, w, opt in zip(("adam", "lbfgs"), ws, opts):
        w2, opt2 = make(kind)
        with torch.no_grad():
            w2.copy_(w)
        opt2.load_state_dict(back[kind] if kind == "adam" else back[kind]["state"])
        for _ in range(2):
            step(w, opt)
            step(w2, opt2)
        assert torch.equal(w, w2), kind


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    """A write that fails part-way (an object a checkpoint cannot hold, after a tensor)
    leaves the last checkpoint readable and unchanged (catches: writing in place)."""
    path = tmp_path / "checkpoint.h5"
    first = {"position": {"step": 5}, "w": torch.arange(3, dtype=torch.float64)}
    save_checkpoint(path, first)
    with pytest.raises(TypeError, match="cannot store object in a checkpoint"):
        save_checkpoint(path, {"position": {"step": 10}, "bad": object()})
    back = load_checkpoint(path)
    assert set(back) == set(first)
    for key in first:
        same(back[key], first[key], key)
    assert os.listdir(tmp_path) == ["checkpoint.h5"]
