"""KAN-vs-MLP comparisons and grid sweeps: same points, same budget, consistent outputs."""

import csv
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import kanpde
from kanpde.cli import CLIError
from kanpde.compare import (
    Comparison,
    _columns,
    _matching_width,
    compare,
    fitted_slope,
    mlp_schedule,
    stage_seconds,
    sweep,
)
from kanpde.nn import MLP, count_parameters

ROOT = Path(__file__).resolve().parents[1]
POISSON = str(ROOT / "problems" / "poisson2d.py")
SMALL = {"interior": 120, "boundary": 40, "method": "sobol", "test": 11}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    problem = kanpde.load_problem(POISSON)
    problem.points = {**problem.points, **SMALL}
    out = tmp_path_factory.mktemp("cmp")
    result = compare(
        problem, kans=[[2, 3, 1]], mlps=[[2, 8, 1]], seeds=2, steps=12, device="cpu", out=out
    )
    return problem, result, out


def test_same_points_budget_and_counts(study):
    problem, result, out = study
    runs = result.runs
    assert len(result.rows) == 4
    # Every run trained on the same collocation points with the same step budget.
    points = {json for json in (str(r.config["points"]) for r in runs.values())}
    assert len(points) == 1
    assert {r["steps"] for r in result.rows} == {12}
    # The reported parameter counts are count_parameters of the trained models.
    for (label, _), run in runs.items():
        row = next(r for r in result.rows if r["model"] == label)
        assert row["params"] == count_parameters(run.model())
    assert result.setup["mlp_schedule"][0]["optimizer"] == "adam"
    assert sum(s["steps"] for s in result.setup["mlp_schedule"]) == 12
    # a KAN's row has the grid it ended on, an MLP's 0 (catches: another value for MLPs)
    for row in result.rows:
        run = runs[(row["model"], row["seed"])]
        assert row["grid"] == (run.config["model"]["grid"] if row["model"][:3] == "KAN" else 0)


def test_every_run_of_a_study_trains_on_the_same_points(monkeypatch):
    # the configs alone were compared: runs drawing their own points per seed passed
    from kanpde import losses

    drawn, real = [], losses.Residuals.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        drawn.append([self.interior.x.clone()] + [t.points.x.clone() for t in self.terms])

    monkeypatch.setattr(losses.Residuals, "__init__", init)
    problem = kanpde.load_problem(POISSON)
    problem.points = {**problem.points, **SMALL}
    compare(problem, kans=[[2, 3, 1]], mlps=[[2, 8, 1]], seeds=2, steps=2, device="cpu")
    assert len(drawn) == 4 and len(drawn[0]) >= 2
    for other in drawn[1:]:
        assert all(torch.equal(a, b) for a, b in zip(drawn[0], other, strict=True))


def test_table_matches_saved_files(study):
    _, result, out = study
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.rows)
    for saved, row in zip(rows, result.rows):
        assert saved["model"] == row["model"]
        assert float(saved["mse"]) == pytest.approx(row["mse"], rel=1e-12)
    with h5py.File(out / "comparison.h5") as f:
        np.testing.assert_allclose(f["rows/mse"][()], [r["mse"] for r in result.rows], rtol=0)
    md = (out / "comparison.md").read_text()
    for e in result.summary():
        assert f"{e['mse']:.2e}" in md and e["model"] in md


def test_same_seeds_reproduce(study):
    problem, result, _ = study
    again = compare(problem, kans=[[2, 3, 1]], mlps=[[2, 8, 1]], seeds=2, steps=12, device="cpu")
    assert [r["mse"] for r in again.rows] == [r["mse"] for r in result.rows]


def test_median_and_range(study):
    _, result, _ = study
    for e in result.summary():
        v = [r["mse"] for r in result.rows if r["model"] == e["model"]]
        assert e["mse"] == pytest.approx(float(np.median(v)))
        assert e["mse_min"] == min(v) and e["mse_max"] == max(v)
    # the rows report steps per second of training (catches: evaluations per second)
    for row in result.rows:
        assert row["steps_per_s"] == pytest.approx(row["steps"] / row["train_time"], rel=1e-12)


def test_summary_and_markdown_of_three_seeds():
    # with two seeds median and mean agree; three tell them apart (catches: mean for median,
    # the seed count, the range written max-min, another column for steps/s)
    rows = [
        {"model": "KAN [1,3,1]", "params": 54, "mse": mse, "rel_l2": rel, "max_err": err,
         "train_time": t, "steps_per_s": sps}
        for mse, rel, err, t, sps in ((1e-4, 1e-2, 3e-2, 1.0, 10.0), (9e-4, 3e-2, 9e-2, 6.0, 60.0),
                                      (4e-4, 2e-2, 6e-2, 2.0, 20.0))
    ] + [{"model": "MLP [1,8,1]", "params": 33, "mse": 0.5, "rel_l2": 0.25, "max_err": 1.0,
          "train_time": 0.5, "steps_per_s": 7.0}]  # fmt: skip
    kan, mlp = Comparison("p", rows, {}).summary()
    assert (kan["model"], kan["params"], kan["seeds"], mlp["seeds"]) == ("KAN [1,3,1]", 54, 3, 1)
    assert (kan["mse"], kan["mse_min"], kan["mse_max"]) == (4e-4, 1e-4, 9e-4)
    assert (kan["train_time"], kan["steps_per_s"], kan["steps_per_s_max"]) == (2.0, 20.0, 60.0)
    lines = Comparison("p", rows, {}).markdown().splitlines()
    assert lines[2] == (
        "| KAN [1,3,1] | 54 | 4.00e-04 [1.00e-04–9.00e-04] | 2.00e-02 [1.00e-02–3.00e-02] | "
        "6.00e-02 [3.00e-02–9.00e-02] | 2.0 [1.0–6.0] | 20.0 |"
    )
    assert lines[3] == (
        "| MLP [1,8,1] | 33 | 5.00e-01 [5.00e-01–5.00e-01] | 2.50e-01 [2.50e-01–2.50e-01] | "
        "1.00e+00 [1.00e+00–1.00e+00] | 0.5 [0.5–0.5] | 7.0 |"
    )


def test_matching_width_has_about_as_many_parameters():
    # the nearest width: a bound of 2h + 4 let a width one off pass
    for n_in, n_out in ((2, 1), (3, 3)):
        for params in (300, 750, 2000, 2047, 10_000):
            h = _matching_width(params, n_in, n_out)
            miss = [
                abs(count_parameters(MLP([n_in, w, w, n_out])) - params) for w in (h - 1, h, h + 1)
            ]
            assert miss[1] == min(miss), (params, h, miss)

    # every count, against the closed form (catches: the root of h² + bh + n_out = params
    # taken without its n_out, one width off at e.g. 27 parameters of a [1, h, h, 1] MLP)
    def count(n_in, h, n_out):
        return (n_in + 1) * h + (h + 1) * h + (h + 1) * n_out

    assert count(2, 7, 3) == count_parameters(MLP([2, 7, 7, 3]))
    for n_in, n_out in ((1, 1), (2, 1), (3, 3)):
        for params in range(20, 1500):
            h = _matching_width(params, n_in, n_out)
            miss = [abs(count(n_in, w, n_out) - params) for w in (h - 1, h, h + 1)]
            assert miss[1] == min(miss), (params, n_in, n_out, h, miss)


def test_mlp_recipe_splits_steps():
    stages = mlp_schedule(400)
    assert [(s.optimizer, s.steps) for s in stages] == [("adam", 100), ("lbfgs", 300)]
    # catches: another default learning rate for the Adam part
    assert stages[0].lr == 1e-3
    # a quarter rounded to the nearest step (catches: truncation, 3 -> no Adam, 7 -> 1), and
    # no empty Adam stage when the quarter rounds to none (catches: an Adam stage of 0 steps)
    for total, expected in ((1, [("lbfgs", 1)]), (3, [("adam", 1), ("lbfgs", 2)]),
                            (7, [("adam", 2), ("lbfgs", 5)])):  # fmt: skip
        assert [(s.optimizer, s.steps) for s in mlp_schedule(total)] == expected, total


def test_fitted_slope_recovers_power_law():
    g = np.array([3, 5, 10, 20, 50])
    assert fitted_slope(g, 7.0 * g**-4.0) == pytest.approx(-4.0, abs=1e-12)
    # off the line, the least-squares slope of the logs (-4.07, not the end points' -4.04):
    # sum((X - mean X)(Y - mean Y)) / sum((X - mean X)^2), worked out in full here
    errors = 7.0 * g**-4.0 * np.array([1.0, 1.5, 0.8, 1.2, 0.9])
    x, y = np.log(g), np.log(errors)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert fitted_slope(g, errors) == pytest.approx(slope, rel=1e-12)
    assert abs(slope - (y[-1] - y[0]) / (x[-1] - x[0])) > 0.03


def test_sweep_staircase_and_slope(tmp_path):
    problem = kanpde.load_problem(POISSON)
    problem.points = {**problem.points, **SMALL}
    torch.manual_seed(0)
    s = sweep(problem, grids=[3, 6], steps=8, device="cpu", out=tmp_path)
    assert len(s.extension) == len(s.separate) == 2
    assert all(math.isfinite(v) and v > 0 for v in s.extension + s.separate)
    assert s.slope_extension == pytest.approx(fitted_slope([3, 6], s.extension))
    assert (tmp_path / "sweep.csv").exists() and (tmp_path / "extension.h5").exists()
    for table in (tmp_path / "sweep.csv", tmp_path):  # sweep.png was drawn without the name
        title = kanpde.plot.sweep(table).axes[0].get_title()
        assert title == "poisson2d: test RMSE vs grid size"
    with pytest.raises(kanpde.ResultsError, match="a grid sweep, not a run; its grid-extension"):
        kanpde.load(tmp_path)
    assert kanpde.load(tmp_path / "extension.h5").history["grid"][-1] == 6
    # the errors are RMSEs, the square roots of the runs' test MSEs (catches: the MSE itself)
    assert s.extension[-1] == pytest.approx(math.sqrt(s.run.metrics["mse"]), rel=1e-12)
    for g, rmse in zip([3, 6], s.separate):
        run = kanpde.load(tmp_path / "separate" / f"grid-{g}.h5")
        assert rmse == pytest.approx(math.sqrt(run.metrics["mse"]), rel=1e-12)
    # sweep.csv holds each column under its own name (catches: the two series swapped)
    with open(tmp_path / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["grid"]) for r in table] == [3, 6]
    assert [float(r["rmse_extension"]) for r in table] == s.extension
    assert [float(r["rmse_separate"]) for r in table] == s.separate
    grids = set(s.run.history["grid"].tolist())
    assert grids == {3.0, 6.0}
    assert len(s.stalled) == 2 and all(v is None or v[0] < v[1] for v in s.stalled)


@pytest.mark.parametrize(
    "model, said, drawn",
    [
        ({"k": 2}, "; degree-2 spline theory: -3", "theory: $G^{-3}$"),
        ({"k": 3}, "; degree-3 spline theory: -4", "theory: $G^{-4}$"),
        ({"basis": "chebyshev"}, "; no algebraic theory slope for chebyshev edges", None),
    ],
)
def test_sweep_theory_slope_follows_the_kans_edges(model, said, drawn, tmp_path):
    # a k = 2 sweep printed "cubic-spline theory: -4" and drew G^-4
    from kanpde import plot

    problem = kanpde.load_problem(POISSON1D)
    problem.model = {**problem.model, **model}
    problem.points = {**problem.points, "interior": 20, "test": 11}
    s = sweep(problem, grids=[3, 6], steps=2, device="cpu", out=tmp_path)
    assert s.markdown().rstrip().endswith(said)
    with open(tmp_path / "sweep.csv", newline="") as f:
        slopes = {r["theory_slope"] for r in csv.DictReader(f)}
    assert slopes == {"" if drawn is None else str(-(model.get("k", 3) + 1.0))}
    for source in (s, tmp_path / "sweep.csv"):
        texts = [t.get_text() for t in plot.sweep(source).axes[0].get_legend().get_texts()]
        assert [t for t in texts if t.startswith("theory")] == ([drawn] if drawn else [])


def test_sweep_table_marks_runs_whose_lbfgs_stopped_short():
    # exp1d at G=20 stopped at step 133 of 1200 with loss 2.4; its RMSE made a slope of +5.4
    # in the table without a word
    from kanpde.compare import Sweep

    s = Sweep("p", [3, 20], [1e-2, 1e-4], [1e-2, 0.92], -2.3, 5.4, stalled=[None, (133, 1200)])
    lines = s.markdown().splitlines()
    assert lines[2] == "| 3 | 1.000e-02 | 1.000e-02 |"
    assert lines[3] == "| 20 | 1.000e-04 | 9.200e-01 (L-BFGS stopped at step 133 of 1200) |"
    assert "(separate without the runs that stopped short)" in lines[-1]
    # a sweep whose from-scratch run stalls leaves it out of the fitted slope
    from kanpde import compare as C

    planned = {}

    class Run:
        def __init__(self, g, steps):
            self.metrics = {"mse": {3: 1e-4, 5: 1e-6, 10: 1e-7, 20: 1.0}[g],
                            "steps": steps if g != 20 else 13}  # fmt: skip
            self.events = [{"event": "lbfgs_converged"}] if g == 20 else []
            self.history = {"stage": np.arange(4), "mse": np.array([1e-4, 1e-6, 1e-7, 1e-8])}
            self.config = {"model": {"basis": "bspline", "k": 3}}
            self.unknowns = {}  # (no inverse problem)

    def fake_solve(problem, schedule, **kw):
        stages = schedule if isinstance(schedule, list) else []
        if len(stages) > 1:  # the extension run
            return Run(3, 0)
        planned[stages[0].grid] = stages[0].steps
        return Run(stages[0].grid, stages[0].steps)

    import kanpde.training as T

    orig = T.solve
    T.solve = fake_solve
    try:
        s = C.sweep(POISSON1D, grids=[3, 5, 10, 20], steps=10)
    finally:
        T.solve = orig
    assert planned[20] == 40
    assert s.stalled == [None, None, None, (13, 40)]
    assert s.slope_separate == pytest.approx(fitted_slope([3, 5, 10], [1e-2, 1e-3, 10**-3.5]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        compare(POISSON, budget="epochs")
    # catches: an infinite or NaN time budget accepted (a run that never ends)
    for seconds in (math.inf, math.nan):
        with pytest.raises(
            CLIError, match=f"^compare: seconds {seconds}: must be a positive, finite"
        ):
            compare(POISSON, budget="seconds", seconds=seconds)
    # in the Python arguments' names (it said "--budget seconds: needs --seconds S")
    with pytest.raises(ValueError, match="^compare: budget seconds: needs seconds S, the"):
        compare(POISSON, budget="seconds")
    with pytest.raises(ValueError, match="does not fit"):
        compare(POISSON, kans=[[3, 5, 1]], mlps=[], seeds=1, steps=1)
    with pytest.raises(ValueError, match="increasing"):
        sweep(POISSON, grids=[10, 5])


def test_sweep_refuses_a_bad_seed_before_making_its_directory(tmp_path):
    # it made the directory and failed in the first run's solve, naming solve(seed=-1)
    for seed, shown in ((-1, "-1"), (2**32, str(2**32)), (1.5, "1.5"), (True, "True")):
        with pytest.raises(CLIError) as e:
            sweep(POISSON1D, grids=[3, 5], seed=seed, out=tmp_path / "sw")
        assert str(e.value) == f"sweep: seed {shown}: must be an integer from 0 to {2**32 - 1}"
    assert not (tmp_path / "sw").exists()


def test_unknown_mlp_activation_refused_before_anything_trains(tmp_path):
    with pytest.raises(
        CLIError, match="^compare: activation 'relu': unknown MLP activation; choose one"
    ):
        compare(POISSON, seeds=1, steps=1, activation="relu", out=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_training_curves_from_the_saved_file(study):
    from kanpde import plot
    from kanpde.compare import _figures

    problem, result, out = study
    fig = plot.curves(out / "comparison.h5")
    loss_ax, err_ax = fig.axes[:2]
    # one line per model and seed, each the saved history of that run
    assert len(loss_ax.lines) == len(err_ax.lines) == len(result.rows) == 4
    run = result.runs[("KAN [2,3,1]", 0)]
    (line,) = [ln for ln in loss_ax.lines if ln.get_label() == "KAN [2,3,1]"]
    np.testing.assert_array_equal(line.get_ydata(), run.history["loss"])
    assert loss_ax.get_yscale() == "log" and err_ax.get_xlabel() == "optimizer step"
    # the same figure from the in-memory comparison
    assert len(plot.curves(result).axes[0].lines) == 4
    paths = _figures(result, out)
    assert [p.name for p in paths] == ["comparison.png", "curves.png"]
    with pytest.raises(ValueError, match="file not found"):
        plot.curves(out / "nope.h5")


def test_a_saved_study_loads_back_and_plots_from_its_directory(study, tmp_path):
    # kanpde.load(comparison.h5) said "not a kanpde results file", plot.compare read the .h5 as
    # CSV (UnicodeDecodeError), and `kanpde plot STUDY_DIR` looked for result.h5
    from kanpde import plot
    from kanpde.cli import main
    from kanpde.compare import Comparison

    _, result, out = study
    for where in (out, out / "comparison.h5"):
        loaded = Comparison.load(where)
        assert loaded.problem == result.problem and loaded.setup == result.setup
        assert loaded.rows == result.rows  # the same values and types as the in-memory study
        assert set(loaded.runs) == set(result.runs)
        run = loaded.runs[("MLP [2,8,1]", 1)]
        np.testing.assert_array_equal(
            run.history["loss"], result.runs[("MLP [2,8,1]", 1)].history["loss"]
        )
        assert loaded.markdown() == result.markdown()
        with pytest.raises(
            kanpde.ResultsError, match="a comparison study, not a run; load a study"
        ):
            kanpde.load(where)
    for where in (out, out / "comparison.h5", out / "comparison.csv"):
        fig = plot.compare(where)
        assert [len(ax.lines) for ax in fig.axes] == [
            len(ax.lines) for ax in plot.compare(result).axes
        ]
        # the CSV's figure (comparison.png) too is titled with the problem (it had no name)
        assert fig._suptitle.get_text().startswith("poisson2d: test relative L2 error vs cost")
    assert main(["plot", str(out), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(
        ValueError,
        match=r"--kind sweep: .*comparison.csv is a comparison table; use --kind compare",
    ):
        plot.figure_for(out / "comparison.csv", "sweep")
    # a run's kind for a study names the table it found, and an unknown kind as unknown (it
    # said "a CSV table is plotted ..." of the directory given); the study's h5 for a run's
    # kind gets command-line advice, not Comparison.load
    table = out / "comparison.csv"
    for kind, what in (("history", "for a run's results"), ("bogus", "unknown")):
        with pytest.raises(ValueError) as e:
            plot.figure_for(out, kind)
        assert str(e.value) == (f"--kind {kind!r}: {what}; {table} is a table, plotted with "
                                "--kind compare or sweep (or no --kind)")  # fmt: skip
    with pytest.raises(ValueError) as e:
        plot.figure_for(out / "comparison.h5", "history")
    assert str(e.value) == (f"--kind history: {out / 'comparison.h5'} is a comparison study, "
                            "not a run; plot it with --kind compare (or no --kind)")  # fmt: skip
    with pytest.raises(kanpde.ResultsError, match="not a kanpde comparison file"):
        Comparison.load(next(out.glob("runs/*/result.h5")))
    # the table alone: without the CSV, with a run deleted
    import shutil

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "comparison.h5", alone)
    assert Comparison.load(alone).runs == {} and len(Comparison.load(alone).rows) == 4
    assert main(["plot", str(alone), "-o", str(tmp_path / "d.png")]) == 0
    assert len(plot.compare(alone).axes) == 2


# ----------------------------------------------------------------- regressions (review fixes)
POISSON1D = str(ROOT / "problems" / "poisson1d.py")
SMALL1D = {"interior": 40, "boundary": 2, "method": "grid", "test": 101}


def _poisson1d():
    problem = kanpde.load_problem(POISSON1D)
    problem.points = {**problem.points, **SMALL1D}
    return problem


def test_seconds_budget_is_the_same_for_every_model_and_spans_the_kan_schedule(tmp_path):
    problem = _poisson1d()  # schedule: grids 5, 10, 20, 40 with 200, 200, 300, 500 L-BFGS steps
    # More points than the 270 parameters at G = 40: with 40, a fast CPU reached loss 2e-24
    # within the budget and L-BFGS stopped converged at 0.38 s of 0.4.
    problem.points = {**problem.points, "interior": 400}
    budget = 0.4
    result = compare(
        problem, kans=[[1, 3, 1]], mlps=[[1, 8, 1]], seeds=1, budget="seconds",
        seconds=budget, steps=12, device="cpu", out=tmp_path,
    )  # fmt: skip
    # Every model trained for the whole budget (the trainer stops once it is spent, at most a
    # few dozen cheap L-BFGS iterations later), not until a step count ran out.
    for row in result.rows:
        assert budget <= row["train_time"] <= budget + 0.3, row
    kan = result.runs[("KAN [1,3,1]", 0)]
    assert result.rows[0]["grid"] == 40  # the final grid of the schedule was reached
    assert result.rows[0]["params"] == count_parameters(kan.model()) == 3 * 2 * (40 + 3 + 2)
    # The time was split over the stages in proportion to their (scaled) steps: 2, 2, 3, 5.
    shares = stage_seconds(kan)
    assert shares[0] == pytest.approx(budget * 2 / 12, rel=1e-9)
    assert sum(shares) == pytest.approx(budget, abs=0.1)
    h = kan.history
    stage_end = [h["time"][np.nonzero(h["stage"] == i)[0][-1]] for i in range(4)]
    np.testing.assert_allclose(stage_end, np.cumsum([2, 2, 3, 5]) / 12 * budget, atol=0.15)
    # The joined history counts steps and time from the run's start, like one training.
    assert np.all(np.diff(h["step"]) > 0) and np.all(np.diff(h["time"]) >= 0)
    assert h["step"][-1] == kan.metrics["steps"] == result.rows[0]["steps"]
    assert [int(g) for g in dict.fromkeys(h["grid"])] == [5, 10, 20, 40]
    # The MLP's recipe is timed too: Adam for a quarter of the time, then L-BFGS.
    mlp = result.runs[("MLP [1,8,1]", 0)]
    assert stage_seconds(mlp)[0] == pytest.approx(budget / 4, rel=1e-9)
    assert (tmp_path / "runs" / "kan-1-3-1-s0" / "result.h5").exists()
    # compare(out=...) draws the figures its docstring promises (only the CLI did)
    assert [p.name for p in result.figures] == ["comparison.png", "curves.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.figures)


def test_matched_mlp_follows_the_given_kan_at_its_final_grid():
    problem = _poisson1d()
    result = compare(problem, kans=[[1, 2, 1]], seeds=1, steps=4, device="cpu")
    models = [r["model"] for r in result.rows]
    kan = result.rows[0]
    assert kan["model"] == "KAN [1,2,1]" and kan["grid"] == 40
    assert kan["params"] == 2 * 2 * (40 + 3 + 2) == 180
    h = _matching_width(180, 1, 1)
    assert models == ["KAN [1,2,1]", f"MLP [1,{h},{h},1]", "MLP [1,100,100,100,1]"]
    matched = result.rows[1]["params"]
    assert abs(matched - kan["params"]) <= 2 * h + 4  # 193 vs 180, not 438 (the default KAN)
    assert result.setup["matched_mlps"][0]["kan_params"] == 180


def test_interrupted_compare_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    import kanpde.training
    from kanpde.cli import main

    real, calls = kanpde.training.solve, []

    def solve(*args, **kwargs):  # Ctrl-C during the third run
        calls.append(kwargs.get("seed"))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kanpde.training, "solve", solve)
    argv = ["compare", POISSON1D, "--kan", "1,3,1", "--mlp", "1,8,1", "--seeds", "2",
            "--steps", "6", "--device", "cpu", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert main(argv) == 130
    (out,) = tmp_path.iterdir()
    err = capsys.readouterr().err.splitlines()
    # the news once and first, how to continue last (it came after that line)
    assert err[0] == "kanpde: interrupted" and err[1] == f"results of the finished runs: {out}"
    assert err[2].startswith("continue with: kanpde compare ") and len(err) == 3
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["seed"]) for r in rows] == [("KAN [1,3,1]", "0"), ("KAN [1,3,1]", "1")]
    for r in rows:
        run = kanpde.load(out / "runs" / f"kan-1-3-1-s{r['seed']}")
        assert float(r["mse"]) == pytest.approx(run.metrics["mse"], rel=1e-12)
    with h5py.File(out / "comparison.h5") as f:
        assert len(f["rows/mse"]) == 2 and len(f["history"]) == 2
        assert '"runs_finished": 2' in f.attrs["setup"]
    md = (out / "comparison.md").read_text()
    assert "KAN [1,3,1]" in md and "| MLP" not in md
    # the MLP with no finished run had no row and nothing said it was missing
    assert (
        "\n2 of 4 planned runs finished (--resume continues the study); no finished run yet, "
        "so no row: MLP [1,8,1]\n"
    ) in md


@pytest.fixture
def terminal_sigint():
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupted_compare_resumes_to_the_uninterrupted_table(
    tmp_path, monkeypatch, capsys, terminal_sigint
):
    # a rerun made a new study and trained every run again; the stopped run was lost
    import shlex
    import signal

    from kanpde import training
    from kanpde.cli import main

    original, trainers = training.Trainer._grad, []

    def grad(self):  # Ctrl-C at the 5th evaluation of the second run (the MLP's)
        if self not in trainers:
            trainers.append(self)
        if len(trainers) == 2 and self.evals == 4:
            signal.raise_signal(signal.SIGINT)
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", grad)
    argv = ["compare", POISSON1D, "--kan", "1,3,1", "--mlp", "1,8,1", "--seeds", "1",
            "--steps", "20", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    (out,) = (tmp_path / "cut").iterdir()
    err = capsys.readouterr().err
    assert (out / "runs" / "mlp-1-8-1-s0" / "checkpoint.h5").is_file()
    ck = out / "runs" / "mlp-1-8-1-s0" / "checkpoint.h5"
    assert err.splitlines()[:2] == ["kanpde: interrupted", f"checkpoint of an unfinished run: {ck}"]
    command = err.split("continue with: ")[1].splitlines()[0]
    assert command == shlex.join(["kanpde", *argv, "--resume", str(out)])
    monkeypatch.setattr(training.Trainer, "_grad", original)
    trained = []
    monkeypatch.setattr(training.Trainer, "run", _counting(training.Trainer.run, trained))
    # other settings than the study's are refused, named by their options
    assert main([*shlex.split(command)[1:], "--seeds", "2"]) == 2
    assert (
        "the study was started with other settings (--seeds: 1 there, 2 here; --kan/--mlp/--seeds)"
        in capsys.readouterr().err
    )
    # options not given are the study's own: the problem file and the directory suffice
    assert main(["compare", POISSON1D, "--device", "cpu", "--quiet", "--resume", str(out)]) == 0
    assert len(trained) == 1  # the MLP's run went on; the KAN's was kept as it was
    assert main(shlex.split(command)[1:]) == 0  # the full command: nothing left to train
    assert len(trained) == 1
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    (full,) = (tmp_path / "full").iterdir()
    resumed, whole = Comparison.load(out), Comparison.load(full)
    assert [r["model"] for r in resumed.rows] == ["KAN [1,3,1]", "MLP [1,8,1]"]
    for a, b in zip(resumed.rows, whole.rows):
        assert (a["mse"], a["steps"]) == (b["mse"], b["steps"])
    assert "planned runs finished" not in (out / "comparison.md").read_text()  # all done


def test_an_interrupted_sweep_keeps_its_runs_and_resumes(tmp_path, monkeypatch, capsys):
    # it wrote nothing until the end, and the study directory was removed on Ctrl-C
    import shlex

    import kanpde.training
    from kanpde.cli import main

    real, calls = kanpde.training.solve, []

    def solve(*args, **kwargs):  # Ctrl-C in the third run: the second separate one
        calls.append(kwargs["schedule"][-1].grid)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kanpde.training, "solve", solve)
    argv = ["sweep", POISSON1D, "--grids", "3,5,8", "--steps", "5", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    (out,) = (tmp_path / "cut").iterdir()
    assert sorted(p.name for p in (out / "separate").iterdir()) == ["grid-3.h5"]
    assert (out / "extension.h5").is_file() and not (out / "sweep.csv").exists()
    command = capsys.readouterr().err.split("continue with: ")[1].splitlines()[0]
    calls.clear()
    assert main([*shlex.split(command)[1:], "--steps", "6"]) == 2  # other settings: refused
    assert "other settings (--steps: 5 there, 6 here)" in capsys.readouterr().err
    # options left out are the sweep's own (grids 3,5,8 and 5 steps, not the defaults)
    assert main(["sweep", POISSON1D, "--device", "cpu", "--quiet", "--resume", str(out)]) == 0
    assert calls == [5, 8]  # only the runs it had not finished
    monkeypatch.setattr(kanpde.training, "solve", real)
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    (full,) = (tmp_path / "full").iterdir()
    assert (out / "sweep.csv").read_text() == (full / "sweep.csv").read_text()


def test_a_killed_sweep_resumes_its_run_from_the_checkpoint(tmp_path, monkeypatch):
    # a sweep's runs kept no checkpoint: a kill in the extension run (the longest) lost all
    # of it, and a resume trained it again from the start
    from stops import Killed, kill_after_checkpoint

    from kanpde import training
    from kanpde.compare import sweep

    # a checkpoint every 4 steps (not 100): at 4, 8 and 12 of the 15 (none falls at a
    # stage's end, where none is written); they leave the results as they are
    monkeypatch.setattr(training, "CHECKPOINT_EVERY", 4)
    kw = dict(grids=[3, 5, 8], steps=5, device="cpu")
    whole = sweep(_poisson1d(), out=tmp_path / "whole", **kw)
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 8)  # at step 8, in grid 5's stage
        with pytest.raises(Killed):
            sweep(_poisson1d(), out=tmp_path / "cut", **kw)
    cut = tmp_path / "cut"
    assert (cut / "checkpoints" / "extension" / "checkpoint.h5").is_file()
    assert not (cut / "extension.h5").exists()
    resumed, trained = [], []
    load_state = _counting(training.Trainer.load_state_dict, resumed)
    monkeypatch.setattr(training.Trainer, "load_state_dict", load_state)
    monkeypatch.setattr(training.Trainer, "run", _counting(training.Trainer.run, trained))
    again = sweep(_poisson1d(), out=cut, resume=True, **kw)
    assert len(resumed) == 1 and len(trained) == 4  # the extension run went on, 3 separate
    assert kanpde.load(cut / "extension.h5").metrics["steps"] == 15
    assert not (cut / "checkpoints").exists()
    assert again.extension == whole.extension and again.separate == whole.separate
    assert (cut / "sweep.csv").read_text() == (tmp_path / "whole" / "sweep.csv").read_text()


def test_a_sweep_stopped_in_its_first_run_keeps_the_new_directory(
    tmp_path, monkeypatch, capsys, terminal_sigint
):
    # its directory was removed with the run's checkpoint unless extension.h5 was there
    import shlex
    import signal

    from kanpde import training
    from kanpde.cli import main

    original = training.Trainer._grad

    def grad(self):  # Ctrl-C in the extension run's first stage
        if self.evals == 3:
            signal.raise_signal(signal.SIGINT)
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", grad)
    argv = ["sweep", POISSON1D, "--grids", "3,5", "--steps", "6", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", str(tmp_path)]) == 130
    (out,) = tmp_path.iterdir()
    err = capsys.readouterr().err.splitlines()
    ck = out / "checkpoints" / "extension" / "checkpoint.h5"
    assert err[:2] == ["kanpde: interrupted", f"checkpoint of an unfinished run: {ck}"]
    assert ck.is_file() and not (out / "extension.h5").exists()
    monkeypatch.setattr(training.Trainer, "_grad", original)
    command = err[-1].split("continue with: ")[1]
    assert main(shlex.split(command)[1:]) == 0
    assert (out / "extension.h5").is_file() and (out / "sweep.csv").is_file()
    assert not ck.exists()


@pytest.mark.parametrize("writer", ["save_run", "write_atomic"])
def test_a_stop_while_a_sweep_writes_waits_for_the_file(
    writer, tmp_path, monkeypatch, capsys, terminal_sigint
):
    # a Ctrl-C during the write of a finished run cancelled it (the run was lost, and with it
    # the study directory); one during sweep.csv left a header-only table
    import signal

    import kanpde.results
    import kanpde.training
    from kanpde.cli import main

    real, stops = getattr(kanpde.results, writer), []
    # the extension run writes its result.h5 in its own directory, then moves it in place
    target = {"save_run": "extension", "write_atomic": "sweep.csv"}[writer]

    def interrupted(*args, **kwargs):
        path = Path(args[1] if writer == "save_run" else args[0])
        if path.name == target and not stops:
            stops.append(path)
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(kanpde.results, writer, interrupted)
    if writer == "save_run":  # solve writes it
        monkeypatch.setattr(kanpde.training, writer, interrupted)
    argv = ["sweep", POISSON1D, "--grids", "3,5", "--steps", "4", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", str(tmp_path)]) == 130
    (out,) = tmp_path.iterdir()
    if writer == "save_run":  # the first run's file, whole and in its place
        assert stops == [out / "checkpoints" / "extension"]
        assert kanpde.load(out / "extension.h5").config["model"]["grid"] == 5
        assert not (out / "checkpoints" / "extension").exists()
    else:  # every row of the table, and its markdown twin
        assert stops == [out / "sweep.csv"]
        rows = list(csv.DictReader(open(out / "sweep.csv")))
        assert [r["grid"] for r in rows] == ["3", "5"]
        assert "| 5 |" in (out / "sweep.md").read_text()


def test_a_sweep_running_in_a_directory_holds_it(tmp_path):
    # a resume (or another sweep) started while the first still ran trained every run twice
    import fcntl

    from kanpde.compare import sweep

    fd = os.open(tmp_path, os.O_RDONLY)  # as the running sweep does
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(ValueError) as e:
            sweep(_poisson1d(), grids=[3, 5], steps=2, device="cpu", out=tmp_path)
        # in the call's own terms (it said --out, an option of the command line)
        assert str(e.value) == (
            f"sweep: out {tmp_path}: another process is running or resuming the study there"
        )
        assert list(tmp_path.iterdir()) == []  # nothing written by the refused sweep
    finally:
        os.close(fd)
    assert sweep(_poisson1d(), grids=[3, 5], steps=2, device="cpu", out=tmp_path).grids == [3, 5]


def test_resuming_a_study_with_the_other_command_says_which_to_use(tmp_path, capsys):
    from kanpde.cli import main

    common = [POISSON1D, "--device", "cpu", "--quiet"]
    made = {"compare": ["--kan", "1,3,1", "--seeds", "1", "--steps", "2", "--mlp", "1,4,1"],
            "sweep": ["--grids", "3,5", "--steps", "2"]}  # fmt: skip
    for kind, options in made.items():
        assert main([kind, *common, *options, "--out", str(tmp_path / kind)]) == 0
    capsys.readouterr()
    for kind, other in (("compare", "sweep"), ("sweep", "compare")):
        (study,) = (tmp_path / kind).iterdir()
        assert main([other, *common, "--resume", str(study)]) == 2
        what = "a comparison study" if kind == "compare" else "a grid sweep"
        assert capsys.readouterr().err == (
            f"kanpde: error: --resume {study}: {what}; continue it with kanpde {kind} PROBLEM "
            "--resume\n"
        )


def test_python_calls_get_the_advice_and_names_in_python_terms(tmp_path):
    # From Python, a wrong kind of directory is named by the arguments given and the advice
    # is the call to make (it quoted "kanpde solve PROBLEM --resume"); a directory whose name
    # holds "--out" is kept as it is (it became "aout").
    from kanpde import solve
    from kanpde.compare import compare, sweep

    run = tmp_path / "a--out"
    solve(_poisson1d(), schedule=[{"optimizer": "adam", "steps": 2}], device="cpu", out=run,
          progress=False)  # fmt: skip
    with pytest.raises(ValueError) as e:
        compare(_poisson1d(), kans=[[1, 3, 1]], mlps=[], seeds=1, steps=2, device="cpu",
                out=run, resume=True)  # fmt: skip
    assert str(e.value) == (
        f"compare: resume=True, out {run}: a single run, not a study; continue it with "
        "kanpde.solve(problem, resume=out)"
    )
    with pytest.raises(ValueError) as e:
        sweep(_poisson1d(), grids=[3, 5], steps=2, device="cpu", out=run, resume=True)
    assert str(e.value) == (
        f"sweep: resume=True, out {run}: no sweep.json; not a sweep study directory"
    )


def _counting(method, calls):
    def counted(self, *args, **kwargs):
        calls.append(self)
        return method(self, *args, **kwargs)

    return counted


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--grids", "3,5", "--steps", "0"], "--steps 0: must be at least 1"),
        (["sweep", "--grids", "5,5", "--steps", "1"], "--grids 5,5: need strictly increasing"),
        (["sweep", "--grids", "3", "--steps", "1"], "--grids 3: need at least two grid sizes"),
        (["sweep", "--grids", "3,x"], "--grids '3,x': expected integers"),
        (["compare", "--kan", "1,x"], "--kan '1,x': expected comma-separated integers"),
        (["compare", "--mlp", "1,0,1"], "--mlp '1,0,1': needs at least two positive"),
        (["compare", "--kan", "2,3,1"], "--kan 2,3,1: does not fit poisson1d"),
        (["compare", "--steps", "0"], "--steps 0: must be at least 1"),
        (["compare", "--budget", "seconds"], "--budget seconds: needs --seconds"),
        (["compare", "--budget", "seconds", "--seconds", "-1"], "--seconds -1.0: must be a"),
        (["compare", "--seconds", "2"], "--seconds 2.0: only used with --budget seconds"),
        (["compare", "--seeds", "0"], "--seeds 0: must be at least 1"),
        (["compare", "--dtype", "float16"], "--dtype 'float16': use float32 or float64"),
        (["sweep", "--seed", "-1"], "--seed -1: must be an integer from 0 to 4294967295"),
        (["compare", "--schedule", "3:sgd=5"], "--schedule '3:sgd=5': unknown optimizer or option"),
        (["compare", "--points", "interior=-4"], "--points 'interior=-4': interior must be"),
        (["compare", "--points", "initial=9"], "--points initial=9: initial counts the points"),
        (["compare", "--points", "adaptive=1"], "--points adaptive=1: adaptive=True needs"),
        (["compare", "--log-every", "0"], "--log-every 0: must be an integer of at least 1"),
        (["compare", "--activation", "relu"], "--activation 'relu': unknown MLP activation"),
        (["sweep", "--points", "interior"], "--points 'interior': expected key=value pairs"),
        (["sweep", "--points", "boundary=0"], "--points 'boundary=0': boundary must be"),
    ],
)
def test_bad_command_line_arguments_leave_no_directory(argv, message, tmp_path, capsys):
    from kanpde.cli import main

    cmd, *rest = argv
    code = main([cmd, POISSON1D, *rest, "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"kanpde: error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing created before the check


def test_sweep_rejects_bad_grids_and_steps():
    with pytest.raises(ValueError, match="at least two grid sizes"):
        sweep(POISSON1D, grids=[5])
    # catches: increasing grids starting at 0 or below accepted
    with pytest.raises(ValueError, match="^sweep: grids 0,5: need strictly increasing positive"):
        sweep(POISSON1D, grids=[0, 5])
    with pytest.raises(ValueError, match="strictly increasing"):
        sweep(POISSON1D, grids=[3, 5, 5])
    with pytest.raises(ValueError, match="^sweep: steps 0"):
        sweep(POISSON1D, grids=[3, 5], steps=0)


MLP1D = """
import math, torch
from kanpde import Dirichlet, Interval, Problem, d

def pde(x, u):
    return d(u, x, "x", "x") + math.pi**2 * torch.sin(math.pi * x)

problem = Problem(
    name="mlp1d", domain=Interval(-1, 1), pde=pde, conditions=[Dirichlet(0.0)],
    exact={exact},
    model={{"type": "mlp", "width": [1, 8, 8, 1], "activation": "tanh"}},
    schedule=[{{"grid": 3, "lbfgs": 2}}, {{"grid": 6, "lbfgs": 2}}],
    points={{"interior": 30, "boundary": 2, "method": "grid", "test": 21}},
)
"""


def test_compare_on_an_mlp_problem_trains_kans_as_kans(tmp_path):
    # The KAN runs once inherited the problem's MLP (and its grid stages failed on it).
    path = tmp_path / "mlp1d.py"
    path.write_text(MLP1D.format(exact="lambda x: torch.sin(math.pi * x)"))
    result = compare(str(path), seeds=1, device="cpu", out=tmp_path / "study")
    kan = [run for (label, _), run in result.runs.items() if label.startswith("KAN")]
    assert [r.config["model"]["type"] for r in kan] == ["kan"]
    assert kan[0].config["model"]["width"] == [1, 10, 1] and kan[0].config["model"]["grid"] == 6
    with pytest.raises(ValueError, match="sweep studies a KAN's grid size"):
        sweep(str(path), grids=[3, 5], steps=1)


def test_a_sweep_needs_a_test_solution(tmp_path, capsys):
    # (a comparison without one compares final losses: tests/test_unknowns.py)
    from kanpde.cli import main

    path = tmp_path / "noexact.py"
    path.write_text(MLP1D.format(exact="None"))
    code = main(["sweep", str(path), "--device", "cpu", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err == (
        f"kanpde: error: {path}: no exact solution or reference to measure test errors "
        "against; sweep needs one\n"
    )
    assert not (tmp_path / "o").exists()


def test_a_study_written_again_to_its_directory_replaces_its_runs(tmp_path):
    # solve() refuses a directory that holds a run; a study owns its runs/ and replaces them
    # (a notebook cell run twice), as it replaces its tables.
    problem = _poisson1d()
    kw = dict(kans=[[1, 2, 1]], mlps=[[1, 4, 1]], seeds=1, steps=4, device="cpu", out=tmp_path)
    first = compare(problem, **kw)
    second = compare(problem, **kw)
    assert [r["mse"] for r in second.rows] == [r["mse"] for r in first.rows]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["kan-1-2-1-s0", "mlp-1-4-1-s0"]


@pytest.mark.parametrize(
    "name, steps, expected",
    [
        ("poisson2d", 40, [3, 4, 33]),
        ("poisson1d", 40, [7, 7, 10, 16]),
        ("poisson1d", 2, [1, 1, 1, 1]),
    ],
)
def test_steps_option_runs_that_many_steps(name, steps, expected):
    # (see also test_steps_apportioned_exactly_around_one_step_stages)
    # Each stage was rounded on its own: --steps 40 gave 39 steps on poisson2d, 41 on poisson1d.
    from kanpde.compare import _scaled
    from kanpde.schedule import parse_schedule

    stages = parse_schedule(kanpde.load_problem(ROOT / "problems" / f"{name}.py").schedule)
    scaled = _scaled(stages, steps / sum(s.steps for s in stages))
    assert [s.steps for s in scaled] == expected  # the last: every stage keeps one step


@pytest.mark.parametrize(
    "steps, n, expected",
    [([100, 3, 1, 333], 233, [53, 2, 1, 177]), ([3, 2, 0, 1000, 2000], 922, [1, 1, 0, 307, 613])],
)
def test_steps_apportioned_exactly_around_one_step_stages(steps, n, expected):
    # A stage raised to its one step took a remainder too: 234 and 923 steps.
    from kanpde.compare import _scaled
    from kanpde.schedule import parse_schedule

    scaled = _scaled(parse_schedule([{"lbfgs": s} for s in steps]), n / sum(steps))
    assert [s.steps for s in scaled] == expected and sum(expected) == n


def test_scaled_stages_update_their_grids_as_often_as_before():
    # A once-only update (update_grid=True: steps + 1) became a periodic one when a stage grew.
    from kanpde.compare import _scaled
    from kanpde.schedule import parse_schedule

    stages = parse_schedule([{"grid": 5, "lbfgs": 500, "update_grid": 100, "update_until": 300},
                             {"grid": 10, "adam": 100, "update_grid": True}])  # fmt: skip
    for factor in (0.1, 10):
        a, b = _scaled(stages, factor)
        assert (a.update_grid, a.update_until) == (round(100 * factor), round(300 * factor))
        assert b.update_grid == b.steps + 1  # still once, at the start
    # a period as long as the stage is once too; rounded periods keep the number of updates
    from kanpde.compare import _updates

    (a,) = _scaled(parse_schedule([{"lbfgs": 3, "update_grid": 3, "update_until": 3}]), 5 / 3)
    assert a.steps == 5 and _updates(a.steps, a.update_grid, a.update_until) == 1
    (a,) = _scaled(parse_schedule([{"lbfgs": 50, "update_grid": 7, "update_until": 35}]), 0.4)
    # 6 updates before; 5 is as close as an integer period allows here (2: 8 updates)
    assert (a.steps, a.update_grid, _updates(a.steps, a.update_grid, a.update_until)) == (20, 3, 5)
    (a,) = _scaled(parse_schedule([{"lbfgs": 50, "update_grid": 7, "update_until": 35}]), 2)
    assert _updates(a.steps, a.update_grid, a.update_until) == 6


def test_a_systems_table_has_each_outputs_relative_l2(tmp_path):
    # comparison.csv gave only the joint rel. L2 of u, v and p, which differ in scale
    problem = kanpde.load_problem(str(ROOT / "problems" / "kovasznay.py"))
    problem.points = {**problem.points, "interior": 60, "boundary": 40, "test": 7}
    result = compare(problem, kans=[[2, 3, 3]], mlps=[[2, 6, 3]], seeds=1, steps=2,
                     device="cpu", out=tmp_path)  # fmt: skip
    with open(tmp_path / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-3:] == ["rel_l2_u", "rel_l2_v", "rel_l2_p"]  # the problem's order
    for row, (label, seed) in zip(rows, result.runs):
        m = result.runs[(label, seed)].metrics
        assert [float(row[f"rel_l2_{o}"]) for o in "uvp"] == [m[f"rel_l2_{o}"] for o in "uvp"]
    again = Comparison.load(tmp_path, runs=False)
    assert list(again.rows[0])[-3:] == ["rel_l2_u", "rel_l2_v", "rel_l2_p"]
    assert again.rows[0]["rel_l2_v"] == result.rows[0]["rel_l2_v"]
    # the printed table too, after the joint figure: "(u 1.2e-01, v 3.4e-01, p 5.6e-01)"
    for entry, line in zip(result.summary(), result.markdown().splitlines()[2:]):
        (row,) = [r for r in result.rows if r["model"] == entry["model"]]
        each = ", ".join(f"{o} {row[f'rel_l2_{o}']:.1e}" for o in "uvp")
        assert f" ({each}) |" in line, line


def test_a_study_with_no_finished_run_plots_as_one_clear_line(tmp_path):
    # a study stopped in its first run has its setup saved (to resume it), and no rows yet
    from kanpde import plot

    Comparison("p", [], {"seeds": 1}).save(tmp_path)
    for table in ("comparison.csv", "comparison.h5"):
        with pytest.raises(ValueError, match="no rows \\(no run of the study has finished yet\\)"):
            plot.compare(tmp_path / table)


def test_a_study_records_the_device_auto_chose():
    # "auto" matched on a resume on another machine, mixing GPU and CPU runs in one table
    from kanpde.compare import _plan

    problem = kanpde.load_problem(POISSON1D)
    plan = _plan(problem, None, None, 1, "steps", None, 4, "auto", None, "tanh")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert plan.setup["device"].split(":")[0] == expected


def test_resume_takes_a_run_that_finished_before_the_table_took_it_in(tmp_path, monkeypatch):
    # it trained that run again (overwrite=True deleted its result)
    import kanpde.compare as C

    real_row, rows = C._row, []

    def row(*args):  # stopped right after the second run finished
        rows.append(args)
        if len(rows) == 2:
            raise KeyboardInterrupt
        return real_row(*args)

    monkeypatch.setattr(C, "_row", row)
    kw = dict(kans=[[1, 3, 1]], mlps=[[1, 4, 1]], seeds=1, steps=6, device="cpu", out=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        compare(POISSON1D, **kw)
    monkeypatch.setattr(C, "_row", real_row)
    assert (tmp_path / "runs" / "mlp-1-4-1-s0" / "result.h5").is_file()
    import kanpde.training

    real_solve, trained = kanpde.training.solve, []
    monkeypatch.setattr(
        kanpde.training, "solve", lambda *a, **k: trained.append(k) or real_solve(*a, **k)
    )
    resumed = compare(POISSON1D, resume=True, **kw)
    assert trained == [] and [r["model"] for r in resumed.rows] == ["KAN [1,3,1]", "MLP [1,4,1]"]


def test_a_fresh_study_clears_an_earlier_ones_runs_and_resume_checks_the_problem(
    tmp_path, monkeypatch
):
    # an earlier study's checkpoint in the same directory was continued as this study's run
    stale = tmp_path / "runs" / "kan-1-3-1-s0"
    stale.mkdir(parents=True)
    (stale / "checkpoint.h5").write_bytes(b"an older study's")
    import kanpde.training

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kanpde.training, "solve", stopped)
    kw = dict(kans=[[1, 3, 1]], mlps=[], seeds=1, steps=6, device="cpu", out=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        compare(POISSON1D, **kw)
    assert not (stale / "checkpoint.h5").exists()
    other = kanpde.load_problem(POISSON1D)
    other.name = "another"
    with pytest.raises(CLIError, match="the study is of problem 'poisson1d', not 'another'"):
        compare(other, resume=True, **kw)


def test_a_study_resumed_with_another_problem_file_names_the_problems(tmp_path, capsys):
    # its saved --kan 1,3,1 was taken first and refused as not fitting the 2-D problem,
    # an option the user never gave
    from kanpde.cli import main

    argv = ["compare", POISSON1D, "--kan", "1,3,1", "--mlp", "1,4,1", "--seeds", "1",
            "--steps", "4", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (study,) = tmp_path.iterdir()
    capsys.readouterr()
    heat = str(ROOT / "problems" / "heat_robin.py")
    assert main(["compare", heat, "--resume", str(study), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"kanpde: error: --resume {study}: the study is of problem 'poisson1d', not 'heat_robin'"
    )


def test_a_bad_argument_of_a_study_without_test_errors_is_its_one_line(tmp_path, capsys):
    # the warning that such a study compares losses came first, before the argument's error
    from kanpde.cli import main

    source = Path(POISSON1D).read_text().replace("exact=exact,", "")
    assert source != Path(POISSON1D).read_text()
    (tmp_path / "noexact.py").write_text(source)
    for bad in (["--seeds", "0"], ["--steps", "-1"], ["--budget", "seconds"]):
        assert main(["compare", str(tmp_path / "noexact.py"), *bad, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"kanpde: error: {bad[0]}"), err


def test_the_continue_command_drops_out_and_resume_however_written():
    from types import SimpleNamespace

    from kanpde.compare import _continue_command

    args = SimpleNamespace(argv=["compare", "p.py", "--ou", "D", "--seeds", "1", "--resume=X",
                                 "--quiet", "--out=E"])  # fmt: skip
    assert _continue_command(args, Path("S")) == "kanpde compare p.py --seeds 1 --quiet --resume S"


def test_a_run_stopped_on_non_finite_losses_is_a_marked_row_and_the_study_goes_on(
    tmp_path, monkeypatch
):
    # One diverged run ended the whole study (the other models never trained), and its
    # resume trained that run again, which stopped again: the study could never finish.
    # Runs that recovered from a non-finite loss (an L-BFGS stage going on with Adam) were
    # indistinguishable in the table from runs that followed the recipe.
    from kanpde import training
    from kanpde.training import TrainingStopped

    original, trainers = training.Trainer._grad, []
    real_call = training.Residuals.__call__

    def failing(self):  # the first KAN seed stops; the second has one NaN loss at its 3rd call
        if self not in trainers:
            trainers.append(self)
            self.calls = 0
        self.calls += 1
        if len(trainers) == 1:
            raise TrainingStopped("5 non-finite losses in a row", nonfinite=True)
        return original(self)

    def nan_once(self):
        loss, terms = real_call(self)
        if len(trainers) == 2 and trainers[1].calls == 3:
            loss = loss * float("nan")
        return loss, terms

    monkeypatch.setattr(training.Trainer, "_grad", failing)
    monkeypatch.setattr(training.Residuals, "__call__", nan_once)
    kw = dict(kans=[[1, 3, 1]], mlps=[[1, 4, 1]], seeds=2, steps=6, device="cpu", out=tmp_path)
    with pytest.warns(kanpde.KanpdeWarning, match=r"^KAN \[1,3,1\] seed 0: 5 non-finite losses "
                      r"in a row; its row is marked stopped, the study goes on$"):  # fmt: skip
        result = compare(POISSON1D, **kw)
    marks = [(r["model"].split()[0], r["seed"], r["stopped"], r["nonfinite"]) for r in result.rows]
    assert marks == [("KAN", 0, 1, 0), ("KAN", 1, 0, 1), ("MLP", 0, 0, 0), ("MLP", 1, 0, 0)]
    assert [r["steps"] for r in result.rows][1:] == [6, 6, 6]  # the rest trained in full
    table = (tmp_path / "comparison.md").read_text()
    assert table.endswith(
        "\nKAN [1,3,1]: 1 of 2 runs stopped on repeated non-finite losses before their budget "
        "(their errors are those of the last good state)\n"
        "\nKAN [1,3,1]: 1 of 2 runs recovered from non-finite losses by rolling back (an L-BFGS "
        "stage may have gone on with Adam; see each run's events)\n"
    )
    saved = Comparison.load(tmp_path)
    assert [(r["stopped"], r["nonfinite"]) for r in saved.rows] == [(1, 0), (0, 1), (0, 0), (0, 0)]
    with open(tmp_path / "comparison.csv") as f:
        assert f.readline().strip().endswith(",loss,nonfinite,stopped")
    # a resume takes the stopped run as it is, as the uninterrupted study did, also when the
    # study was stopped before its table took the runs in (the runs' own files are read, the
    # stopped one's checkpoint notwithstanding)
    monkeypatch.setattr(training.Trainer, "_grad", original)
    monkeypatch.setattr(training.Residuals, "__call__", real_call)
    resumed = compare(POISSON1D, resume=True, **kw)
    assert resumed.rows == result.rows
    Comparison(saved.problem, [], saved.setup).save(tmp_path)
    resumed = compare(POISSON1D, resume=True, **kw)
    assert [{**r, "train_time": 0} for r in resumed.rows] == [
        {**r, "train_time": 0} for r in result.rows
    ]


def test_out_of_memory_ends_a_study_and_its_resume_trains_the_run_again(tmp_path, monkeypatch):
    # out of memory is the machine's, not the run's: the study stops as before (its next runs
    # of that size would fail alike), and a resume trains the run again
    from kanpde import training
    from kanpde.training import TrainingStopped

    original, trainers = training.Trainer._grad, []

    def failing(self):  # the second run (the MLP's) runs out of memory
        if self not in trainers:
            trainers.append(self)
        if len(trainers) == 2:
            raise TrainingStopped("CUDA out of memory at step 0")
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", failing)
    kw = dict(kans=[[1, 3, 1]], mlps=[[1, 4, 1]], seeds=1, steps=6, device="cpu", out=tmp_path)
    with pytest.raises(TrainingStopped, match="out of memory"):
        compare(POISSON1D, **kw)
    assert (tmp_path / "runs" / "mlp-1-4-1-s0" / "result.h5").is_file()  # results so far
    monkeypatch.setattr(training.Trainer, "_grad", original)
    resumed = compare(POISSON1D, resume=True, **kw)
    assert resumed.rows[1]["steps"] == 6 and resumed.rows[1]["stopped"] == 0


def test_a_resumed_older_study_keeps_the_new_rows_marks():
    # the columns came from the first row alone: an older study's first row (no nonfinite,
    # stopped) dropped the marks of the rows trained on resume, and the NaN an older row got
    # in a newer file's column broke the summary
    old = {"model": "KAN [1,3,1]", "params": 10, "seed": 0, "mse": 1.0, "rel_l2": 1.0,
           "max_err": 1.0, "train_time": 1.0, "steps_per_s": 1.0}  # fmt: skip
    new = {**old, "seed": 1, "loss": 1.0, "nonfinite": 2, "stopped": 1}
    columns = _columns([old, new])
    assert columns[-3:] == ["loss", "nonfinite", "stopped"]
    (entry,) = Comparison("p", [{**old, "nonfinite": math.nan, "stopped": math.nan}, new],
                          {}).summary()  # fmt: skip
    assert (entry["stopped"], entry["recovered"]) == (1, 0)


def test_a_table_says_when_its_models_have_different_numbers_of_runs():
    rows = [
        {"model": m, "params": 10, "seed": s, "mse": 1.0, "rel_l2": 1.0, "max_err": 1.0,
         "train_time": 1.0, "steps_per_s": 1.0, "loss": 1.0}
        for m, n in (("KAN [1,3,1]", 3), ("MLP [1,4,1]", 1)) for s in range(n)
    ]  # fmt: skip
    table = Comparison("p", rows, {}).markdown()
    assert table.endswith("\nruns per model differ: KAN [1,3,1] 3, MLP [1,4,1] 1\n")
    assert Comparison("p", rows[:3], {}).markdown().endswith(" |\n")  # one model: no note


@pytest.mark.parametrize("kind", ["compare", "sweep"])
def test_a_study_resumed_twice_at_once_is_refused(kind, tmp_path, capsys):
    # both resumes trained the study's unfinished runs, each over the other's files
    import fcntl

    from kanpde.cli import main

    argv = {
        "compare": ["compare", POISSON1D, "--kan", "1,3,1", "--mlp", "1,4,1", "--seeds", "1",
                    "--steps", "4"],
        "sweep": ["sweep", POISSON1D, "--grids", "3,5", "--steps", "2"],
    }[kind] + ["--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (study,) = tmp_path.iterdir()
    fd = os.open(study, os.O_RDONLY)  # as a first `--resume` of this study holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert main([*argv, "--resume", str(study)]) == 2
        err = capsys.readouterr().err
        assert (
            err.strip()
            == f"kanpde: error: --resume {study}: another process is running or resuming this study"
        )
    finally:
        os.close(fd)
    assert main([*argv, "--resume", str(study)]) == 0  # free again


def test_compare_takes_a_schedule_points_activation_and_log_interval(tmp_path, capsys):
    # compare had only --steps: a study at other point counts or another KAN schedule needed
    # an edited copy of the problem file
    from kanpde.cli import main

    argv = ["compare", POISSON1D, "--kan", "1,3,1", "--mlp", "1,6,1", "--seeds", "1",
            "--schedule", "4:lbfgs=3,6:lbfgs=3", "--points", "interior=17,test=13",
            "--activation", "sin", "--log-every", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.iterdir()
    study = Comparison.load(out)
    kan, mlp = (study.runs[label, 0] for label in ("KAN [1,3,1]", "MLP [1,6,1]"))
    for run in (kan, mlp):
        assert run.config["points"]["interior"] == 17 and run.config["points"]["test"] == 13
        assert run.solution["x"].shape[0] == 13  # the test set has the given size
    # a row every 2 steps and at the end of each stage (the KAN's first ends at step 3, the
    # MLP's Adam stage at 2)
    assert kan.history["step"].tolist() == [0, 2, 3, 4, 6]
    assert mlp.history["step"].tolist() == [0, 2, 4, 6]
    assert [(s["grid"], s["steps"]) for s in study.setup["kan_schedule"]] == [(4, 3), (6, 3)]
    assert kan.history["grid"].tolist() == [4, 4, 4, 6, 6]
    assert mlp.config["model"]["activation"] == "sin"
    assert sum(s["steps"] for s in study.setup["mlp_schedule"]) == 6  # the KAN schedule's total
    # the study goes on only with the options it was started with
    for other, named in ((["--points", "interior=18,test=13"], "--points"),
                         (["--log-every", "3"], "--log-every"),
                         (["--schedule", "4:lbfgs=3,7:lbfgs=3"], "--schedule/"),
                         ):  # fmt: skip
        args = [*argv, *other] if other[0] != "--schedule" else [*argv[:8], *other, *argv[10:]]
        assert main([*args, "--resume", str(out)]) == 2
        assert f"other settings ({named}" in capsys.readouterr().err
    # without options the study's own are taken: the finished study is read back as it was
    table = (out / "comparison.csv").read_text()
    assert main(["compare", POISSON1D, "--device", "cpu", "--quiet", "--resume", str(out)]) == 0
    assert (out / "comparison.csv").read_text() == table


def test_a_study_saved_before_log_every_was_recorded_resumes(tmp_path):
    import json

    problem = kanpde.load_problem(POISSON1D)
    common = dict(kans=[[1, 3, 1]], mlps=[[1, 6, 1]], seeds=1, steps=3, device="cpu")
    compare(problem, out=tmp_path, **common)
    with h5py.File(tmp_path / "comparison.h5", "r+") as f:
        setup = json.loads(f.attrs["setup"])
        del setup["log_every"]
        f.attrs["setup"] = json.dumps(setup)
    assert len(compare(problem, out=tmp_path, resume=True, **common).rows) == 2
    with pytest.raises(CLIError, match=r"^compare: resume=True, out .*other settings \(log_every"):
        compare(problem, out=tmp_path, resume=True, log_every=7, **common)


def test_sweep_trains_every_run_on_the_given_points(tmp_path):
    s = sweep(POISSON1D, grids=[3, 5], steps=2, device="cpu", out=tmp_path,
              points={"interior": 15, "test": 9})  # fmt: skip
    runs = [s.run] + [kanpde.load(tmp_path / "separate" / f"grid-{g}.h5") for g in (3, 5)]
    for run in runs:
        assert (run.config["points"]["interior"], run.solution["x"].shape[0]) == (15, 9)
    with pytest.raises(CLIError, match=r"other settings \(points\)"):
        sweep(POISSON1D, grids=[3, 5], steps=2, device="cpu", out=tmp_path, resume=True)


def test_compare_and_sweep_take_a_preset_of_the_problem(tmp_path, capsys):
    # "kanpde compare FILE --preset quick" was an unrecognized argument: a problem keeping its
    # study-sized settings in a preset could not be compared at them
    from kanpde.cli import main

    text = Path(POISSON1D).read_text()
    assert text.rstrip().endswith(")")  # the Problem(...) call ends the file
    preset = ('{"tiny": {"model": {"width": [1, 3, 1]}, "schedule": "4:lbfgs=3,6:lbfgs=2", '
              '"points": {"interior": 17, "test": 13}, "weights": {"pde": 0.5}}}')  # fmt: skip
    path = tmp_path / "preset1d.py"
    path.write_text(text.rstrip()[:-1] + f"    presets={preset},\n)\n")
    common = ["--mlp", "1,6,1", "--seeds", "1", "--device", "cpu", "--quiet"]
    assert main(["compare", str(path), "--preset", "tiny", *common, "--out", str(tmp_path)]) == 0
    (out,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    study = Comparison.load(out)
    assert study.setup["preset"] == "tiny"
    assert [(s["grid"], s["steps"]) for s in study.setup["kan_schedule"]] == [(4, 3), (6, 2)]
    kan, mlp = (study.runs[label, 0] for label in ("KAN [1,3,1]", "MLP [1,6,1]"))
    for run in (kan, mlp):
        assert run.config["points"]["interior"] == 17 and run.solution["x"].shape[0] == 13
        assert run.config["weights"]["pde"] == 0.5
    assert sum(s["steps"] for s in study.setup["mlp_schedule"]) == 5
    # a resume takes the study's preset; another one is refused, naming both
    table = (out / "comparison.csv").read_text()
    assert main(["compare", str(path), "--device", "cpu", "--quiet", "--resume", str(out)]) == 0
    assert (out / "comparison.csv").read_text() == table
    capsys.readouterr()
    argv = ["compare", str(path), "--device", "cpu", "--quiet", "--resume", str(out)]
    assert main([*argv, "--preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert f"--preset: {path}: unknown preset 'nope'; known: tiny" in err
    # the Python API: the same runs, and without the preset the problem's own settings
    same = compare(str(path), preset="tiny", mlps=[[1, 6, 1]], seeds=1, device="cpu")
    assert [r["mse"] for r in same.rows] == [r["mse"] for r in study.rows]
    plain = compare(str(path), mlps=[[1, 6, 1]], seeds=1, steps=2, device="cpu")
    (own,) = [run for (label, _), run in plain.runs.items() if label.startswith("KAN")]
    assert "preset" not in plain.setup and own.config["points"]["interior"] != 17
    assert own.config["weights"]["pde"] == kanpde.load_problem(POISSON1D).weights["pde"] != 0.5
    # a sweep: the preset's points and weights in every run, recorded for its resume
    s = sweep(str(path), grids=[3, 5], steps=2, device="cpu", out=tmp_path / "sw", preset="tiny")
    assert s.run.config["points"]["interior"] == 17 and s.run.config["weights"]["pde"] == 0.5
    with pytest.raises(CLIError, match=r"other settings \(preset: tiny there, None here\)"):
        sweep(str(path), grids=[3, 5], steps=2, device="cpu", out=tmp_path / "sw", resume=True)
    assert main(["sweep", str(path), "--grids", "3,5", "--steps", "2", "--device", "cpu",
                 "--quiet", "--resume", str(tmp_path / "sw")]) == 0  # fmt: skip
