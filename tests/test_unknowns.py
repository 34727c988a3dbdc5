"""Inverse problems: a problem's ``unknowns`` train with the network and are recorded.

The test problem is k u'' = -2π² sin(πx) on [-1, 1] with u = 0 at both ends and nine data
points of u = sin(πx): the PDE holds only for k = 2, which the training must recover.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from stops import Killed, kill_after_checkpoint

import kanpde
from kanpde import Dirichlet, Interval, PointData, Problem, ProblemError, d
from kanpde.losses import Residuals

XS = np.linspace(-0.9, 0.9, 9)[:, None]


def pde(x, u, p):
    return p["k"] * d(u, x, "x", "x") + 2 * math.pi**2 * torch.sin(math.pi * x)


def inverse(**changes) -> Problem:
    spec = dict(
        name="inverse",
        domain=Interval(-1, 1),
        pde=pde,
        conditions=[Dirichlet(0.0), PointData(XS, np.sin(math.pi * XS))],
        exact=lambda x: torch.sin(math.pi * x),
        points={"interior": 100, "test": 41},
        unknowns={"k": 0.5},
        model={"width": [1, 5, 1], "grid": 5},
        schedule=[{"lbfgs": 200}],
    )
    return Problem(**{**spec, **changes})


# a short run of the file below: two Adam steps of a small KAN
SHORT = "points={'interior': 50}, model={'width': [1, 3, 1]}, schedule=[{'adam': 2}]"


def inverse_file(folder, settings: str = SHORT):
    """A problem file of the test problem (unknown k from 0.5) with these ``Problem`` keywords."""
    file = folder / "inverse_k.py"
    file.write_text(
        "import math\n"
        "import numpy as np\n"
        "import torch\n"
        "from kanpde import Dirichlet, Interval, PointData, Problem, d\n"
        "xs = np.linspace(-0.9, 0.9, 9)[:, None]\n"
        "def pde(x, u, p):\n"
        "    return p['k'] * d(u, x, 'x', 'x') + 2 * math.pi**2 * torch.sin(math.pi * x)\n"
        "problem = Problem(name='inverse_k', domain=Interval(-1, 1), pde=pde,\n"
        "    conditions=[Dirichlet(0.0), PointData(xs, np.sin(math.pi * xs))],\n"
        f"    unknowns={{'k': 0.5}}, {settings})\n"
    )
    return file


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    out = tmp_path_factory.mktemp("inverse")
    with warnings.catch_warnings():  # the unknown is a parameter: no "not trained" warning
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        run = kanpde.solve(inverse(), device="cpu", progress=False, out=out)
    return run, out


def test_the_unknown_is_recovered_and_recorded(recovered):
    run, out = recovered
    k = run.history["param_k"]
    assert k[0] == 0.5  # logged at step 0, before the first step: its starting value
    assert abs(k[-1] - 2.0) < 0.02 and run.metrics["rel_l2"] < 0.01
    assert run.unknowns == {"k": k[-1]} and run.metrics["param_k"] == k[-1]
    assert run.config["unknowns"] == {"k": 0.5}
    loaded = kanpde.load(out)
    assert loaded.unknowns == run.unknowns
    # the saved state is the network's alone: the model rebuilds and predicts as trained
    assert not any(key.startswith(("net.", "unknowns.")) for key in loaded.state)
    np.testing.assert_array_equal(loaded.predict(run.solution["x"]), run.solution["pred"])
    # the unknown is not one of the trial function's parameters
    assert run.config["parameters"] == kanpde.count_parameters(loaded.model())
    # the solution figure's title gives the trained value
    from kanpde import plot

    title = plot.solution(loaded)._suptitle.get_text()
    assert title.endswith(f"; k = {k[-1]:.6g}"), title


def test_the_gradient_of_the_pde_loss_in_the_unknown_is_its_closed_form():
    # loss = mean((k u'' + f)²), so d loss / dk = 2 mean((k u'' + f) u''); u'' here by plain
    # nested autograd, independent of the residual path (jets) that training uses
    problem = inverse(unknowns={"k": 1.3})
    torch.manual_seed(0)
    net = kanpde.build_model(problem, device="cpu")
    res = Residuals(problem, net, {**problem.points, "method": "sobol"}, {}, torch.float64, "cpu")
    _, terms = res()
    (got,) = torch.autograd.grad(terms["pde"], [res.unknowns["k"]])
    x = res.interior.x.detach().clone().requires_grad_(True)
    u = net(x)
    (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    (d2u,) = torch.autograd.grad(du.sum(), x)
    r = 1.3 * d2u + 2 * math.pi**2 * torch.sin(math.pi * x)
    expected = 2 * (r * d2u).mean()
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
    assert abs(float(expected.detach())) > 0.05  # a gradient that can be told from zero


def test_every_solve_starts_the_unknown_from_its_starting_value():
    problem = inverse(schedule=[{"adam": 5, "lr": 0.05}])
    runs = [kanpde.solve(problem, device="cpu", progress=False) for _ in range(2)]
    assert [r.history["param_k"][0] for r in runs] == [0.5, 0.5]
    assert runs[0].unknowns == runs[1].unknowns and runs[0].unknowns["k"] != 0.5


def test_an_interrupted_inverse_run_resumes_to_the_uninterrupted_unknown(tmp_path, monkeypatch):
    from kanpde.results import load_progress

    problem = inverse(schedule=[{"adam": 30, "lr": 0.02}])
    kw = dict(device="cpu", progress=False, log_every=10, checkpoint_every=10)
    full = kanpde.solve(problem, out=tmp_path / "full", **kw)
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            kanpde.solve(problem, out=tmp_path / "cut", **kw)
    progress = load_progress(tmp_path / "cut")  # the run so far, for plots
    assert progress.unknowns == {"k": progress.history["param_k"][-1]}
    assert progress.unknowns["k"] == full.history["param_k"][2]  # at step 20
    assert set(progress.state) == set(full.state)  # the network's keys, not the wrapper's
    resumed = kanpde.solve(problem, resume=tmp_path / "cut", progress=False)
    np.testing.assert_array_equal(resumed.history["param_k"], full.history["param_k"])
    assert resumed.unknowns == full.unknowns


def test_mlps_train_the_unknown_too_and_compare_tabulates_it(tmp_path):
    from kanpde.compare import compare

    result = compare(inverse(), kans=[[1, 5, 1]], mlps=[[1, 8, 8, 1]], seeds=1, steps=40,
                     device="cpu", out=tmp_path)  # fmt: skip
    for row in result.rows:
        run = result.runs[row["model"], 0]
        assert row["param_k"] == run.unknowns["k"] != 0.5
    header = result.markdown().splitlines()[0]
    assert header.endswith("| steps/s | k |")
    kan_line = result.markdown().splitlines()[2]
    k = result.rows[0]["param_k"]  # one seed: median, min and max are its value
    assert kan_line.endswith(f"| {k:.6g} [{k:.6g}–{k:.6g}] |")
    with open(tmp_path / "comparison.csv") as f:
        assert f.readline().rstrip().endswith(",param_k")


def test_float32_unknowns_follow_the_runs_dtype():
    run = kanpde.solve(inverse(schedule=[{"adam": 3}]), dtype="float32", device="cpu",
                       progress=False)  # fmt: skip
    assert run.history["param_k"].shape == (2,)
    problem = inverse()
    net = kanpde.build_model(problem, dtype=torch.float32, device="cpu")
    res = Residuals(problem, net, problem.points, {}, torch.float32, "cpu")
    assert res.unknowns["k"].dtype == torch.float32 and float(res.unknowns["k"].detach()) == 0.5


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"unknowns": {"k k": 1.0}}, "unknowns: name 'k k' must be an identifier such as 'k'"),
        ({"unknowns": {"k": math.nan}}, "unknowns: 'k' needs a finite number to start from"),
        ({"unknowns": {"k": True}}, "unknowns: 'k' needs a finite number to start from"),
        # tensor(0.5000) in the message read as a finite number
        (
            {"unknowns": {"k": torch.tensor(0.5)}},
            "unknowns: 'k' needs a number to start from, got a Tensor (float(...) of a "
            "one-element one gives the number)",
        ),
        ({"unknowns": [("k", 1.0)]}, "unknowns must be a dict such as {'k': 1.0}"),
        (
            {"pde": lambda x, u: d(u, x, "x", "x")},
            "pde must take (x, u, p) when the problem has unknowns; p['k'] is the current",
        ),
        ({"unknowns": {}}, "pde takes a third argument, p, which holds a problem's unknowns"),
        ({"unknowns": {"u": 1.0}}, "unknowns: 'u' is also the name of an output; choose another"),
        ({"unknowns": {"x": 1.0}}, "unknowns: 'x' is also the name of an axis; choose another"),
    ],
)
def test_bad_unknowns_are_one_line_errors(changes, message):
    with pytest.raises(ProblemError) as e:
        inverse(**changes)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_kanpde_solve_prints_the_unknown_and_symbolic_refines_it(tmp_path, capsys):
    from kanpde.cli import main

    file = inverse_file(
        tmp_path,
        "exact=lambda x: torch.sin(math.pi * x), points={'interior': 100, 'test': 41}, "
        "model={'width': [1, 5, 1], 'grid': 5}, schedule=[{'lbfgs': 200}]",
    )
    assert main(["solve", str(file), "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    k = float(line.rsplit("k = ", 1)[1])
    assert abs(k - 2.0) < 0.02
    (run_dir,) = tmp_path.glob("inverse_k-*")
    assert kanpde.load(run_dir).unknowns["k"] == pytest.approx(k, rel=1e-5)
    # the refinement of the formula trains k on from the value the run found
    assert main(["symbolic", str(run_dir), "--refine", "5", "--quiet"]) == 0
    refined = kanpde.load(run_dir / "symbolic.h5")
    assert refined.history["param_k"][0] == kanpde.load(run_dir).unknowns["k"]
    assert refined.unknowns["k"] == refined.history["param_k"][-1]
    # the formula file ends with the unknown as the refinement left it
    last = (run_dir / "formula.txt").read_text().splitlines()[-1]
    assert last == f"k = {refined.unknowns['k']:.6g}"


@pytest.mark.parametrize(
    "reads, missed",
    [
        (lambda p: p.get("kappa", 1.0), "k"),  # another name, with a default
        (lambda p: float(p["k"]), "k"),  # detached
        (lambda p: p["k"] + 0 * p["c"].item(), "c"),  # one of two detached
    ],
)
def test_an_unknown_the_pde_does_not_reach_is_refused(reads, missed):
    # each kept its start value and was printed as the value found
    unknowns = {"k": 0.5, "c": 1.0} if missed == "c" else {"k": 0.5}

    def pde(x, u, p):
        return reads(p) * d(u, x, "x", "x") + 2 * math.pi**2 * torch.sin(math.pi * x)

    with pytest.raises(ProblemError) as e, warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torch: float() of a parameter; not shown
        kanpde.solve(inverse(pde=pde, unknowns=unknowns), device="cpu", progress=False)
    assert str(e.value) == (
        f"problem 'inverse': unknown {missed!r} reaches no residual, so it would keep its "
        f"start value: pde never reads p[{missed!r}], or cuts it off from the gradient "
        "(float(), .item(), p.get with another name), and no condition names it"
    )


def test_a_misspelled_unknown_names_the_declared_ones():
    def pde(x, u, p):
        return p["kapa"] * d(u, x, "x", "x")

    with pytest.raises(ProblemError, match=r"KeyError: \"p has no unknown 'kapa'; the problem "
                       r"declares 'kappa', 'c'\""):  # fmt: skip
        kanpde.solve(inverse(pde=pde, unknowns={"kappa": 1.0, "c": 2.0}), progress=False)


def test_writing_into_p_is_refused_in_one_line():
    # p["z"] = ... in pde failed deep in torch (expected Tensor as element 7 ... NoneType)
    def pde(x, u, p):
        p["z"] = torch.nn.Parameter(torch.tensor(1.0, dtype=x.dtype))
        return p["k"] * d(u, x, "x", "x")

    with pytest.raises(ProblemError) as e:
        kanpde.solve(inverse(pde=pde), device="cpu", progress=False)
    assert str(e.value).endswith(
        "pde(x, u, p) raised TypeError: p is read-only: it holds the problem's unknowns; "
        "declare 'z' in the problem's unknowns= instead"
    ), str(e.value)


def test_unknowns_keep_their_declared_order():
    # a dict given to the ParameterDict at once was sorted: z came after a
    def pde(x, u, p):
        return (
            p["z"] * d(u, x, "x", "x")
            + (p["a"] - 0.5) * u
            + 2 * math.pi**2 * torch.sin(math.pi * x)
        )

    run = kanpde.solve(inverse(pde=pde, unknowns={"z": 1.0, "a": 0.5}, schedule=[{"adam": 2}]),
                       device="cpu", progress=False)  # fmt: skip
    assert list(run.unknowns) == ["z", "a"]
    assert [k for k in run.history if k.startswith("param_")] == ["param_z", "param_a"]
    from kanpde import plot

    (panel,) = [a for a in plot.history(run).axes if a.get_label() == "unknowns"]
    assert [line.get_label()[0] for line in panel.get_lines()] == ["z", "a"]


def test_resuming_with_other_unknowns_is_refused(tmp_path, monkeypatch):
    # accepted: the result recorded the new start value, its history the old one
    import dataclasses

    problem = inverse(schedule=[{"adam": 30}])
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 10)
        with pytest.raises(Killed):
            kanpde.solve(problem, out=tmp_path, progress=False, checkpoint_every=10)
    # (another name is refused first, and the message says which changed)
    with pytest.raises(ProblemError, match=r"\(its name is 'other', the run's 'inverse'\)"):
        kanpde.solve(dataclasses.replace(problem, name="other"), resume=tmp_path, progress=False)
    for other in ({"k": 5.0}, {"k": 0.5, "c": 1.0}):
        edited = dataclasses.replace(problem, unknowns=other)
        with pytest.raises(ValueError) as e:
            kanpde.solve(edited, resume=tmp_path, progress=False)
        assert str(e.value) == (
            f"resume={str(tmp_path)!r}: the problem's unknowns {other} differ from the run's "
            "{'k': 0.5}; resume with the problem the run was started with"
        )


def test_unknowns_without_data_are_warned_about():
    problem = inverse(conditions=[Dirichlet(0.0)], schedule=[{"adam": 1}])
    with pytest.warns(kanpde.KanpdeWarning, match=r"inverse: the problem has unknowns "
                      r"\(k\) but no data condition \(PointData\)"):  # fmt: skip
        kanpde.solve(problem, device="cpu", progress=False)


def test_a_study_of_a_schedule_without_steps_is_refused(tmp_path):
    from kanpde.cli import CLIError
    from kanpde.compare import compare

    with pytest.raises(
        CLIError, match=r"^compare: schedule '5:adam=0': no optimizer steps; the study"
    ):
        compare(inverse(), schedule="5:adam=0", seeds=1, device="cpu", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_tabulates_the_unknown_at_every_grid(tmp_path):
    # sweep.csv and sweep.md had no unknowns although every run trained them
    import csv

    from kanpde.compare import sweep

    s = sweep(inverse(), grids=[3, 6], steps=10, device="cpu", out=tmp_path)
    h = s.run.history
    ends = [int(np.nonzero(h["stage"] <= i)[0][-1]) for i in range(2)]  # each grid's last row
    assert s.unknowns["k"]["extension"] == [h["param_k"][j] for j in ends]
    separate = [kanpde.load(tmp_path / "separate" / f"grid-{g}.h5").unknowns["k"] for g in (3, 6)]
    assert s.unknowns["k"]["separate"] == separate
    assert s.unknowns["k"]["extension"][-1] == s.run.unknowns["k"] != 0.5
    with open(tmp_path / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["param_k_extension"]) for r in rows] == s.unknowns["k"]["extension"]
    assert [float(r["param_k_separate"]) for r in rows] == separate
    assert s.markdown().splitlines()[0].endswith("| k (extension) | k (trained at G) |")


def test_start_values_given_to_solve_are_recorded_and_resumed(tmp_path, monkeypatch):
    problem = inverse(schedule=[{"adam": 30, "lr": 0.02}])
    kw = dict(device="cpu", progress=False, log_every=10, checkpoint_every=10)
    full = kanpde.solve(problem, out=tmp_path / "full", unknowns={"k": 1.5}, **kw)
    assert full.history["param_k"][0] == 1.5 and problem.unknowns == {"k": 0.5}
    assert full.config["unknowns"] == full.config["unknowns_given"] == {"k": 1.5}
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            kanpde.solve(problem, out=tmp_path / "cut", unknowns={"k": 1.5}, **kw)
    # the resume starts from the checkpoint's k with the run's record of its start
    resumed = kanpde.solve(problem, resume=tmp_path / "cut", progress=False)
    np.testing.assert_array_equal(resumed.history["param_k"], full.history["param_k"])
    assert resumed.config["unknowns"] == {"k": 1.5}
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            kanpde.solve(problem, out=tmp_path / "cut2", unknowns={"k": 1.5}, **kw)
    with pytest.raises(ValueError, match=r": unknowns cannot be given with resume"):
        kanpde.solve(problem, resume=tmp_path / "cut2", unknowns={"k": 2.0}, progress=False)


@pytest.mark.parametrize(
    "unknowns, message",
    [
        ({"c": 1.0}, "solve(unknowns=...): 'c' is not one of the problem's unknowns (declared: k)"),
        ({"k": math.inf}, "solve(unknowns=...): 'k' needs a finite number to start from, got inf"),
        ({"k": "1"}, "solve(unknowns=...): 'k' needs a finite number to start from, got '1'"),
        (
            {"k": np.array([2.0])},
            "solve(unknowns=...): 'k' needs a number to start from, got a ndarray (float(...) of "
            "a one-element one gives the number)",
        ),
        ([1.0], "solve(unknowns=[1.0]): expected a dict of starting values such as {'k': 1.0}"),
    ],
)
def test_bad_start_values_given_to_solve(unknowns, message):
    with pytest.raises(ValueError) as e:
        kanpde.solve(inverse(), unknowns=unknowns, progress=False)
    assert str(e.value) == message


def test_the_command_line_takes_start_values(tmp_path, capsys):
    from kanpde.cli import CLIError, main, parse_unknowns

    problem = inverse(unknowns={"k": 0.5, "c": 1.0})
    problem.pde = lambda x, u, p: pde(x, u, p) + 0 * p["c"] * u
    assert parse_unknowns("k=2, c = -1e-3", problem) == {"k": 2.0, "c": -0.001}
    for text, message in [
        (
            "k=2,kk=1",
            "--unknowns kk=1: problem 'inverse' declares no unknown 'kk' (declared: k, c)",
        ),
        ("k=nan", "--unknowns k=nan: needs a finite number to start from"),
        ("k=two", "--unknowns k=two: needs a finite number to start from"),
        ("k", "--unknowns 'k': expected name=value pairs like kappa=0.3"),
    ]:
        with pytest.raises(CLIError) as e:
            parse_unknowns(text, problem)
        assert str(e.value) == message
    file = inverse_file(tmp_path)
    args = ["solve", str(file), "--out", str(tmp_path), "--device", "cpu", "--quiet"]
    assert main([*args, "--unknowns", "k=3"]) == 0
    (run_dir,) = tmp_path.glob("inverse_k-*")
    assert kanpde.load(run_dir).history["param_k"][0] == 3.0


def test_a_study_without_a_test_solution_compares_final_losses_and_unknowns(tmp_path):
    # real inverse problems have data, not a solution: compare once refused them
    from kanpde import plot
    from kanpde.compare import Comparison, compare

    problem = inverse(exact=None)
    with pytest.warns(kanpde.KanpdeWarning, match=r"compares the final training losses"):
        result = compare(problem, kans=[[1, 5, 1]], mlps=[[1, 8, 8, 1]], seeds=1, steps=40,
                         device="cpu", out=tmp_path)  # fmt: skip
    assert not result.tested
    for row in result.rows:
        run = result.runs[row["model"], 0]
        assert row["loss"] == run.metrics["loss"] == run.history["loss"][-1]
        assert math.isnan(row["rel_l2"]) and math.isnan(row["mse"])
    lines = result.markdown().splitlines()
    assert lines[0] == "| model | params | final loss | train time (s) | steps/s | k |"
    loss, k = result.rows[0]["loss"], result.rows[0]["param_k"]
    assert lines[2].startswith(f"| KAN [1,5,1] | 100 | {loss:.2e} [{loss:.2e}–{loss:.2e}] |")
    # the saved study plots the loss by default, and each model's k against the step
    fig = plot.compare(tmp_path)
    assert fig.axes[0].get_ylabel() == "final training loss (weighted)"
    y = fig.axes[0].get_lines()[0].get_ydata()  # the KAN's median (one seed: its value)
    assert float(y[0]) == loss
    with pytest.raises(ValueError, match=r"compare\(\): column 'rel_l2' has no finite values"):
        plot.compare(tmp_path, "rel_l2")
    fig = plot.curves(tmp_path)
    (panel,) = [a for a in fig.axes if a.get_label() == "curves param_k"]
    kan_line = panel.get_lines()[0]
    np.testing.assert_array_equal(
        kan_line.get_ydata(), result.runs["KAN [1,5,1]", 0].history["param_k"]
    )
    assert kan_line.get_ydata()[-1] == k
    assert [a.get_label() for a in fig.axes] == ["curves loss", "curves param_k"]
    assert Comparison.load(tmp_path).markdown() == result.markdown()


def test_a_numpy_scalar_start_value_is_kept_as_a_float(tmp_path):
    # np.float32 passed the checks, then broke the checkpoint's JSON at step 100
    problem = inverse(unknowns={"k": np.float32(0.5)}, schedule=[{"adam": 2}])
    assert type(problem.unknowns["k"]) is float and problem.unknowns["k"] == 0.5
    run = kanpde.solve(problem, device="cpu", progress=False, out=tmp_path, checkpoint_every=1)
    assert kanpde.load(tmp_path).config["unknowns"] == {"k": 0.5} == run.config["unknowns"]


@pytest.mark.parametrize(
    "reads, start",
    [
        (lambda p: p["k"] ** 2, 0.0),  # d(k²)/dk = 0 at 0
        (lambda p: torch.relu(p["k"]), -1.0),  # relu is flat below 0
        (lambda p: p["k"].abs(), 0.0),  # torch's abs has derivative 0 at 0
    ],
)
def test_an_unknown_stuck_at_its_start_is_warned_about(reads, start):
    def pde(x, u, p):
        return reads(p) * d(u, x, "x", "x") + 2 * math.pi**2 * torch.sin(math.pi * x)

    problem = inverse(pde=pde, unknowns={"k": start}, schedule=[{"adam": 3}])
    with pytest.warns(kanpde.KanpdeWarning) as record:
        run = kanpde.solve(problem, device="cpu", progress=False)
    assert str(record[0].message) == (
        f"problem 'inverse': no residual changes with unknown 'k' at its start value {start:g} "
        "(as p['k']**2, abs or relu do at 0): its gradient is zero there and training may "
        "leave it there; start it elsewhere (the problem's unknowns=, --unknowns or "
        "solve(unknowns=...))"
    )
    assert run.unknowns["k"] == start  # indeed stuck
    # from another start it moves, and nothing is said
    with warnings.catch_warnings():
        warnings.simplefilter("error", kanpde.KanpdeWarning)
        moved = kanpde.solve(problem, device="cpu", progress=False, unknowns={"k": 1.0})
    assert moved.unknowns["k"] != 1.0


def test_an_unknown_whose_derivative_is_not_finite_at_its_start_is_refused():
    def pde(x, u, p):
        return torch.sqrt(p["k"]) * d(u, x, "x", "x") + 2 * math.pi**2 * torch.sin(math.pi * x)

    with pytest.raises(ProblemError) as e:
        kanpde.solve(inverse(pde=pde, unknowns={"k": 0.0}), device="cpu", progress=False)
    assert str(e.value) == (
        "problem 'inverse': the residuals' derivative in unknown 'k' is not finite at its start "
        "value 0 (a square root, fractional power or log of it at 0?): start it elsewhere (the "
        "problem's unknowns=, --unknowns or solve(unknowns=...))"
    )

    def log_pde(x, u, p):
        return torch.log(p["k"]) * d(u, x, "x", "x")

    with pytest.raises(ProblemError) as e:
        kanpde.solve(inverse(pde=log_pde, unknowns={"k": 0.0}), device="cpu", progress=False)
    assert str(e.value) == (
        "problem 'inverse': pde residual is NaN or Inf at initialisation (with the unknowns at "
        "their start values: k = 0)"
    )


def test_duplicate_keys_on_the_command_line_are_refused():
    from kanpde.cli import CLIError, parse_points, parse_unknowns

    with pytest.raises(CLIError, match=r"^--unknowns 'k=2,k=3': k is given twice$"):
        parse_unknowns("k=2,k=3", inverse())
    with pytest.raises(CLIError, match=r"^--points 'interior=100,interior=300': interior is given"):
        parse_points("interior=100,interior=300")


def test_data_changed_in_memory_is_told_on_resume_and_refinement(tmp_path, monkeypatch):
    # the file's hash cannot see data built in memory (noise added in a notebook, say)
    import dataclasses

    from kanpde.problem import data_hash

    problem = inverse(schedule=[{"adam": 30}])
    noisy = dataclasses.replace(
        problem, conditions=[Dirichlet(0.0), PointData(XS, 1.01 * np.sin(math.pi * XS))]
    )
    assert data_hash(problem) != data_hash(noisy) != ""
    assert data_hash(inverse()) == data_hash(problem)  # the same observations, rebuilt
    assert data_hash(inverse(conditions=[Dirichlet(0.0)])) == ""
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 10)
        with pytest.raises(Killed):
            kanpde.solve(noisy, out=tmp_path, progress=False, checkpoint_every=10)
    with pytest.raises(ProblemError) as e:
        kanpde.solve(problem, resume=tmp_path, progress=False)
    assert str(e.value) == (
        "inverse: the observations of its data conditions differ from those the run in "
        f"{tmp_path} was trained on (changed in memory, or drawn anew without a seed); resume "
        "with the same data"
    )
    resumed = kanpde.solve(noisy, resume=tmp_path, progress=False)
    assert resumed.config["data_hash"] == data_hash(noisy)


def test_refining_a_run_trained_on_other_data_than_its_files_is_warned_about(tmp_path, capsys):
    import dataclasses

    from kanpde.cli import main

    file = inverse_file(tmp_path)
    problem = kanpde.load_problem(file)
    data = problem.conditions[1]
    noisy = dataclasses.replace(
        problem, conditions=[problem.conditions[0], PointData(data.x, 2 * data.values)]
    )
    kanpde.solve(noisy, device="cpu", progress=False, out=tmp_path / "run")
    capsys.readouterr()
    assert main(["symbolic", str(tmp_path / "run"), "--refine", "2", "--quiet"]) == 0
    assert (
        f"kanpde: warning: {file}: its data conditions hold other observations than those the "
        "run was trained on (data changed in memory, or drawn anew without a seed); refining "
        "with the file's\n"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    "reads, entangled",
    [
        (lambda p, uxx, u: (p["a"] + p["b"]) * uxx, "'a', 'b'"),  # only a + b is determined
        (lambda p, uxx, u: p["a"] * p["b"] * uxx, "'a', 'b'"),  # only a·b
        (lambda p, uxx, u: p["a"] * uxx + (p["b"] + p["c"]) * u, "'b', 'c'"),  # a is not
        (lambda p, uxx, u: p["a"] * uxx + p["b"] * u, None),  # u'' and u vary apart: fine
    ],
)
def test_unknowns_only_a_combination_of_which_is_determined_are_warned_about(reads, entangled):
    def pde(x, u, p):
        return reads(p, d(u, x, "x", "x"), u) + 2 * math.pi**2 * torch.sin(math.pi * x)

    start = {"a": 1.0, "b": 0.5, "c": 0.1} if "'c'" in str(entangled) else {"a": 1.0, "b": 0.5}
    problem = inverse(pde=pde, unknowns=start, schedule=[{"adam": 1}])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        kanpde.solve(problem, device="cpu", progress=False)
    said = [str(w.message) for w in record if "only together" in str(w.message)]
    if entangled is None:
        assert said == []
    else:
        assert said == [
            f"problem 'inverse': unknowns {entangled} change the residuals only together at "
            "their start values (their effects are proportional, as with p['a'] + p['b'] or "
            "p['a'] * p['b']): the data cannot tell them apart and only a combination of them "
            "is determined; fix all but one, or add data that separates them"
        ]
