"""Mutation-testing additions for ``kanpde.cli``.

Most tests replace :func:`kanpde.training.solve` by a recorder, so that they check what the
command line hands the solver (values, types, precedence) and what it prints and returns, in
milliseconds; one short real run checks that the values end up in the saved run's config.
"""

import re
import shlex
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

import kanpde
from kanpde import training
from kanpde.cli import CLIError, main, parse_points, parse_unknowns
from kanpde.schedule import parse_schedule
from kanpde.training import MAX_SEED

# A 1-D inverse problem (unknown k, start 0.5) small enough to train in a fraction of a second,
# with a preset that changes the model, the points and the schedule.
PROBLEM = """
import math
import numpy as np
import torch
from kanpde import Dirichlet, Interval, PointData, Problem, d

xs = np.linspace(0.1, 0.9, 5)[:, None]


def pde(x, u, p):
    return p["k"] * d(u, x, "x", "x") + math.pi**2 * torch.sin(math.pi * x)


problem = Problem(
    name="tiny",
    domain=Interval(0, 1),
    pde=pde,
    conditions=[Dirichlet(0.0), PointData(xs, np.sin(math.pi * xs))],
    exact=lambda x: torch.sin(math.pi * x),
    unknowns={"k": 0.5},
    model={"width": [1, 3, 1], "k": 3},
    schedule=[{"grid": 3, "adam": 2}],
    points={"interior": 20, "test": 11},
    presets={
        "big": {
            "model": {"width": [1, 4, 1]},
            "points": {"interior": 30, "test": 13},
            "schedule": [{"grid": 4, "adam": 3}],
        },
        "net": {"model": {"type": "mlp", "width": [1, 6, 1], "activation": "tanh"}},
    },
)
"""

RUN_NAME = re.compile(r"^tiny-\d{8}-\d{6}-s(\d+)-[0-9a-f]{6}$")


@pytest.fixture
def problem_file(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(PROBLEM)
    return str(path)


@pytest.fixture
def recorder(monkeypatch):
    """``kanpde.training.solve`` replaced: records its arguments, returns a finished run."""
    calls = []
    run = SimpleNamespace(
        metrics={"steps": 3, "train_time": 0.25, "parameters": 7},
        unknowns={},
        events=[],
        path=None,
    )

    def solve(problem, **kw):
        calls.append(SimpleNamespace(problem=problem, **kw))
        run.path = Path(kw["out"]) / "result.h5"
        if recorder.effect is not None:
            recorder.effect(kw)
        return run

    monkeypatch.setattr(training, "solve", solve)
    recorder = SimpleNamespace(calls=calls, run=run, effect=None)
    return recorder


def one_line_error(capsys, code, fragment):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("kanpde: error: "), err
    assert fragment in err, err
    return err


# ------------------------------------------------------------- arguments reaching solve()


def test_every_option_reaches_solve_with_its_type(problem_file, tmp_path, recorder):
    # catches: an option dropped (seed, dtype, preset, points, schedule, model options,
    # unknowns, intervals) or passed with the wrong type or key on its way to solve()
    out = tmp_path / "runs"
    code = main(["solve", problem_file, "--seed", "7", "--dtype", "float32", "--preset", "big",
                 "--points", "interior=1e2,method=grid", "--schedule", "3:adam=4@1e-2",
                 "--width", "1,2,1", "--k", "2", "--basis", "rbf", "--log-every", "3",
                 "--checkpoint-every", "0", "--unknowns", "k=1.5", "--device", "cpu",
                 "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    (call,) = recorder.calls
    assert call.seed == 7 and type(call.seed) is int
    assert call.dtype == "float32" and call.preset == "big" and call.device == "cpu"
    # 1e2 is the whole number 100: a count, an int (as a problem file's points would be)
    assert call.points == {"interior": 100, "method": "grid"}
    assert type(call.points["interior"]) is int
    assert [s.to_dict() for s in call.schedule] == [
        s.to_dict() for s in parse_schedule("3:adam=4@1e-2")
    ]
    assert call.model == {"width": [1, 2, 1], "k": 2, "basis": "rbf"}
    assert call.log_every == 3 and call.checkpoint_every == 0
    assert call.unknowns == {"k": 1.5} and call.progress is False
    # the run directory: in --out, named after the problem and the seed
    (run_dir,) = out.iterdir()
    assert Path(call.out) == run_dir
    assert RUN_NAME.match(run_dir.name).group(1) == "7"


def test_without_options_solve_gets_its_own_defaults(
    problem_file, tmp_path, recorder, monkeypatch, capsys
):
    # catches: another default parent than ./runs, another default seed than 0 (the s0 of the
    # directory's name), a progress bar lost without --quiet, and defaults invented by the
    # command line where solve() (and the problem file) should decide
    monkeypatch.chdir(tmp_path)
    assert main(["solve", problem_file, "--device", "cpu"]) == 0
    (call,) = recorder.calls
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert Path(call.out).resolve() == run_dir.resolve()
    assert RUN_NAME.match(run_dir.name).group(1) == "0" and call.seed == 0
    assert call.progress is True
    assert call.model is None and call.schedule is None and call.points is None
    assert call.dtype is None and call.preset is None and call.unknowns is None
    assert call.log_every is None and call.checkpoint_every is None
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"results: {Path('runs', run_dir.name, 'result.h5')}"


def test_the_largest_seed_is_taken_and_one_more_is_refused(
    problem_file, tmp_path, recorder, capsys
):
    # catches: the range 0..MAX_SEED closed at the wrong end (MAX_SEED = 2**32 - 1 refused)
    assert MAX_SEED == 2**32 - 1
    assert main(["solve", problem_file, "--seed", str(MAX_SEED), "--out", str(tmp_path / "a"),
                 "--quiet", "--device", "cpu"]) == 0  # fmt: skip
    assert recorder.calls[0].seed == MAX_SEED
    (run_dir,) = (tmp_path / "a").iterdir()
    assert RUN_NAME.match(run_dir.name).group(1) == str(MAX_SEED)
    capsys.readouterr()
    code = main(["solve", problem_file, "--seed", str(MAX_SEED + 1), "--out",
                 str(tmp_path / "b"), "--quiet"])  # fmt: skip
    one_line_error(capsys, code, f"--seed {MAX_SEED + 1}: must be an integer from 0 to {MAX_SEED}")
    assert not (tmp_path / "b").exists() and len(recorder.calls) == 1


def test_seed_zero_may_be_given(problem_file, tmp_path, recorder):
    # catches: the range of seeds opened at 0 (--seed 0, the default, refused when given)
    assert main(["solve", problem_file, "--seed", "0", "--out", str(tmp_path), "--quiet"]) == 0
    assert recorder.calls[0].seed == 0


def test_log_every_zero_is_refused(problem_file, tmp_path, recorder, capsys):
    # catches: --log-every 0 taken (a history row every 0 steps)
    code = main(["solve", problem_file, "--log-every", "0", "--out", str(tmp_path / "r")])
    one_line_error(capsys, code, "--log-every 0: must be >= 1")
    assert not (tmp_path / "r").exists() and recorder.calls == []


# ------------------------------------------------------------------------ model options


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["--model", "mlp", "--basis", "rbf"],
            "--basis rbf: a KAN option, but the model is an MLP",
        ),
        (["--model", "mlp", "--k", "2"], "--k 2: a KAN option, but the model is an MLP"),
        (["--activation", "sin"], "--activation sin: an MLP option, but the model is a KAN"),
    ],
)
def test_options_of_the_other_kind_of_model_are_refused(
    problem_file, tmp_path, recorder, capsys, args, fragment
):
    # catches: an MLP taking --basis, or a KAN taking --activation, silently ignored
    code = main(["solve", problem_file, *args, "--out", str(tmp_path / "r"), "--quiet"])
    one_line_error(capsys, code, fragment)
    assert recorder.calls == [] and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--grid", "--k"])
def test_a_grid_or_degree_below_one_is_refused_as_such(
    problem_file, tmp_path, recorder, capsys, option
):
    # catches: only negative values refused; --grid 0 was then told it conflicts with the
    # schedule's grid 3, a wrong reason
    code = main(["solve", problem_file, option, "0", "--out", str(tmp_path / "r")])
    err = one_line_error(capsys, code, f"kanpde: error: {option} 0: must be a positive integer")
    assert recorder.calls == [] and not (tmp_path / "r").exists(), err


def test_grid_option_is_checked_against_the_schedule_that_will_run(
    problem_file, tmp_path, recorder, capsys
):
    # --grid must match the first grid of the schedule that runs: the preset's (grid 4) under
    # --preset big, the file's (grid 3) without (catches: the file's checked under a preset)
    out = ["--out", str(tmp_path / "r"), "--quiet"]
    assert main(["solve", problem_file, "--preset", "big", "--grid", "4", *out]) == 0
    assert recorder.calls[0].model == {"grid": 4} and recorder.calls[0].preset == "big"
    code = main(["solve", problem_file, "--preset", "big", "--grid", "3", *out])
    one_line_error(capsys, code, "--grid 3: the schedule sets the grids (4) and would change")
    code = main(["solve", problem_file, "--grid", "4", *out])
    one_line_error(capsys, code, "--grid 4: the schedule sets the grids (3) and would change")
    assert len(recorder.calls) == 1


def test_model_options_must_fit_the_presets_kind_of_model(problem_file, tmp_path, recorder, capsys):
    # Under an MLP preset of a KAN problem, MLP options apply and KAN options are refused
    # (catches: the kind taken from the file's model, or the model checked without the preset)
    out = ["--out", str(tmp_path / "r"), "--quiet", "--device", "cpu"]
    assert main(["solve", problem_file, "--preset", "net", "--activation", "sin", *out]) == 0
    assert recorder.calls[0].model == {"activation": "sin"}
    code = main(["solve", problem_file, "--preset", "net", "--grid", "4", *out])
    one_line_error(capsys, code, "--grid 4: a KAN option, but the model is an MLP (preset 'net')")
    assert len(recorder.calls) == 1


def test_a_model_the_problem_cannot_build_is_named_by_the_options_given(
    problem_file, tmp_path, recorder, capsys
):
    # catches: the message of a model that fails to build not naming the options responsible
    code = main(["solve", problem_file, "--width", "2,3,1", "--out", str(tmp_path / "r")])
    err = one_line_error(capsys, code, "kanpde: error: --width 2,3,1: ")
    assert recorder.calls == [] and not (tmp_path / "r").exists(), err


# -------------------------------------------------------------------- points and unknowns


def test_points_take_spaces_around_keys_and_values():
    # catches: "interior = 30" read as the key "interior " (refused as unknown)
    got = parse_points(" interior = 30 , method = grid , adaptive = yes, resample = 5")
    assert got == {"interior": 30, "method": "grid", "adaptive": True, "resample": 5}
    assert type(got["interior"]) is int and type(got["resample"]) is int


def test_adaptive_points_on_the_command_line_override_the_files_before_the_check(
    tmp_path, recorder, capsys
):
    # The budget checked is the file's with the command line's keys over it: adaptive=true
    # given over the file's adaptive=False, without resample, does nothing and is refused
    # (catches: the file's keys put over the command line's, which let it through).
    path = tmp_path / "adaptive.py"
    path.write_text(PROBLEM.replace('"test": 11}', '"test": 11, "adaptive": False}'))
    code = main(["solve", str(path), "--points", "adaptive=true", "--out", str(tmp_path / "r")])
    one_line_error(capsys, code, "--points 'adaptive=true': adaptive=True needs resample=N")
    assert recorder.calls == [] and not (tmp_path / "r").exists()
    assert main(["solve", str(path), "--points", "adaptive=true,resample=4", "--out",
                 str(tmp_path / "r"), "--quiet"]) == 0  # fmt: skip
    assert recorder.calls[0].points == {"adaptive": True, "resample": 4}


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999"])
def test_infinite_start_values_are_refused(value):
    # catches: only NaN refused (float("inf") and the overflowing 1e999 are not finite either)
    problem = kanpde.Problem(
        name="t", domain=kanpde.Interval(0, 1), pde=lambda x, u, p: p["k"] * u,
        conditions=[kanpde.Dirichlet(0.0)], unknowns={"k": 0.5},
    )  # fmt: skip
    with pytest.raises(CLIError) as e:
        parse_unknowns(f"k={value}", problem)
    assert str(e.value) == f"--unknowns k={value}: needs a finite number to start from"
    assert parse_unknowns("k=-2.5e-3", problem) == {"k": -0.0025}


# -------------------------------------------------------------------------------- resume


def make_run_dir(tmp_path, *files):
    d = tmp_path / "run dir"  # a space: the "continue with" line must quote it
    d.mkdir(exist_ok=True)
    for f in files:
        (d / f).write_bytes(b"")
    return d


@pytest.mark.parametrize(
    "extra",
    [["--unknowns", "k=1"], ["--model", "mlp"], ["--k", "2"], ["--basis", "rbf"],
     ["--activation", "sin"], ["--schedule", "adam=3"]],
)  # fmt: skip
def test_resume_refuses_every_option_that_defines_the_run(
    problem_file, tmp_path, recorder, capsys, extra
):
    # catches: an option left off the list --resume refuses (it would be silently ignored)
    d = make_run_dir(tmp_path, "checkpoint.h5")
    code = main(["solve", problem_file, "--resume", str(d), *extra])
    one_line_error(capsys, code, f"{extra[0]} cannot be combined with --resume")
    # several: all of them named (catches: only the first)
    code = main(["solve", problem_file, "--resume", str(d), "--seed", "1", *extra])
    err = one_line_error(capsys, code, " cannot be combined with --resume")
    named = err.split(f"--resume {d}: ", 1)[1].split(" cannot be combined")[0]
    assert sorted(named.split(", ")) == sorted([extra[0], "--seed"])
    assert recorder.calls == []


@pytest.mark.parametrize(
    "files, fragment",
    [
        (["result.h5"], "that run has finished (result.h5); there is nothing to resume"),
        (["comparison.h5"], "a comparison study; continue it with kanpde compare PROBLEM"),
        (["sweep.json"], "a grid sweep; continue it with kanpde sweep PROBLEM --resume"),
        ([], "no checkpoint.h5 in that run directory"),
    ],
)
def test_resume_of_a_directory_without_checkpoint_says_what_it_holds(
    problem_file, tmp_path, recorder, capsys, files, fragment
):
    # catches: a finished run or a study told only "no checkpoint.h5"
    d = make_run_dir(tmp_path, *files)
    code = main(["solve", problem_file, "--resume", str(d)])
    one_line_error(capsys, code, f"--resume {d}: {fragment}")
    assert recorder.calls == []


def test_resume_of_a_file_or_a_missing_directory(problem_file, tmp_path, recorder, capsys):
    # catches: the checkpoint file itself given to --resume told "no such run directory"
    d = make_run_dir(tmp_path, "checkpoint.h5")
    code = main(["solve", problem_file, "--resume", str(d / "checkpoint.h5")])
    one_line_error(capsys, code, "a file; give the run directory holding it")
    code = main(["solve", problem_file, "--resume", str(tmp_path / "nope")])
    one_line_error(capsys, code, f"--resume {tmp_path / 'nope'}: no such run directory")
    assert recorder.calls == []


def test_resume_continues_in_the_run_directory_with_its_own_settings(
    problem_file, tmp_path, recorder
):
    # catches: --device, --log-every or --checkpoint-every not passed on (or replaced by a
    # default, which would override the run's own), and a new run directory made
    d = make_run_dir(tmp_path, "checkpoint.h5")
    assert main(["solve", problem_file, "--resume", str(d), "--device", "cpu",
                 "--checkpoint-every", "4", "--quiet"]) == 0  # fmt: skip
    (call,) = recorder.calls
    assert Path(call.resume) == d and Path(call.out) == d
    assert call.device == "cpu" and call.checkpoint_every == 4 and call.log_every is None
    assert call.progress is False
    assert main(["solve", problem_file, "--resume", str(d), "--log-every", "6"]) == 0
    call = recorder.calls[1]
    assert call.device == "auto" and call.log_every == 6 and call.checkpoint_every is None
    assert call.progress is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run dir", "tiny.py"]


# ------------------------------------------------------------------- what solve prints


def test_the_summary_line_reports_the_metrics_and_unknowns(
    problem_file, tmp_path, recorder, capsys
):
    # catches: an error measure left out, unknowns rounded (8 significant digits are
    # promised), and the number of non-finite losses miscounted
    recorder.run.metrics.update(mse=1.5e-7, rel_l2=2.25e-4, max_err=3.125e-3)
    recorder.run.unknowns = {"k": 0.1234567891}
    recorder.run.events = [
        {"event": "nonfinite", "step": 4, "action": "rolled back"},
        {"event": "nonfinite", "step": 9, "action": "halved the learning rate"},
    ]
    assert main(["solve", problem_file, "--out", str(tmp_path), "--quiet"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        "tiny: 3 steps in 0.2 s, mse 1.500e-07, rel_l2 2.250e-04, max_err 3.125e-03, "
        "parameters 7, k = 0.12345679, 2 non-finite losses, last: halved the learning rate"
    )
    recorder.run.events = recorder.run.events[:1]
    assert main(["solve", problem_file, "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(", 1 non-finite loss: rolled back")


def test_a_stopped_training_exits_1_and_names_the_results_so_far(
    problem_file, tmp_path, recorder, capsys
):
    # catches: a stopped run reported with the exit status of a bad argument (2)
    def stop(kw):
        e = training.TrainingStopped("5 non-finite losses in a row")
        e.run = SimpleNamespace(path=Path(kw["out"]) / "result.h5")
        raise e

    recorder.effect = stop
    assert main(["solve", problem_file, "--out", str(tmp_path / "r"), "--quiet"]) == 1
    (run_dir,) = (tmp_path / "r").iterdir()
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "kanpde: error: 5 non-finite losses in a row",
        f"results so far: {run_dir / 'result.h5'}",
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_tells_a_command_that_continues_it(tmp_path, recorder, capsys, signum):
    # catches: paths with spaces not shell-quoted in the "continue with" line, and another
    # exit status than the shell's 128 + signal
    folder = tmp_path / "my problems"
    folder.mkdir()
    problem_file = folder / "tiny.py"
    problem_file.write_text(PROBLEM)
    out = tmp_path / "my runs"

    def interrupted(kw):
        (Path(kw["out"]) / "checkpoint.h5").write_bytes(b"")
        stop = KeyboardInterrupt()
        stop.signum, stop.saved = int(signum), True
        raise stop

    recorder.effect = interrupted
    assert main(["solve", str(problem_file), "--out", str(out), "--quiet"]) == 128 + signum
    (run_dir,) = out.iterdir()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"kanpde: interrupted; checkpoint saved in {run_dir / 'checkpoint.h5'}"
    command = err[1].removeprefix("continue with: ")
    assert shlex.split(command) == ["kanpde", "solve", str(problem_file), "--resume", str(run_dir)]


def test_discard_removes_the_empty_folders_made_and_keeps_any_holding_a_file(tmp_path):
    # catches: the empty folders a failed study leaves inside its directory keeping it (and
    # the parents made for it) alive
    from kanpde.cli import _discard

    parent = tmp_path / "new"
    run = parent / "run"
    (run / "separate" / "deep").mkdir(parents=True)
    (run / "seeds").mkdir()
    _discard([run, parent])
    assert list(tmp_path.iterdir()) == []
    (run / "a" / "empty").mkdir(parents=True)
    (run / "b").mkdir()
    (run / "b" / "x.h5").write_bytes(b"")
    _discard([run, parent])  # a file inside: it stays, with the folders above it
    assert sorted(p.relative_to(parent).as_posix() for p in parent.rglob("*")) == [
        "run", "run/b", "run/b/x.h5",
    ]  # fmt: skip


def test_list_takes_a_main_guard_written_either_way_round(tmp_path, capsys):
    # ``"__main__" == __name__`` is the same guard as ``__name__ == "__main__"``: a study under
    # it does not run on import (catches: only the usual order recognised, the file then
    # listed as a script although it is a problem file)
    study = "    kanpde.solve(problem)\n"
    (tmp_path / "a.py").write_text(
        "import kanpde\n" + PROBLEM + "if __name__ == '__main__':\n" + study
    )
    (tmp_path / "b.py").write_text(
        "import kanpde\n" + PROBLEM + "if '__main__' == __name__:\n" + study
    )
    assert main(["list", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["a  tiny", "b  tiny"]


def test_argparse_errors_exit_2_in_one_line(capsys):
    # catches: argparse's own errors exiting with another status than the other errors' 2
    with pytest.raises(SystemExit) as e:
        main(["solve", "p.py", "--seed", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --seed: invalid int value: 'x'" in err


# ------------------------------------------------------------- a short real run, end to end


def test_command_line_overrides_the_preset_which_overrides_the_file(problem_file, tmp_path):
    # The config of the saved run holds, key by key, the command line's value where one was
    # given, else the preset's, else the problem file's (catches: a value lost on the way).
    out = tmp_path / "runs"
    argv = ["solve", problem_file, "--preset", "big", "--points", "interior=25", "--seed", "3",
            "--dtype", "float32", "--unknowns", "k=0.75", "--log-every", "1", "--quiet",
            "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    run = kanpde.load(run_dir)
    c = run.config
    assert c["points"]["interior"] == 25  # command line over the preset's 30 and the file's 20
    assert c["points"]["test"] == 13  # the preset's over the file's 11
    assert c["model"]["width"] == [1, 4, 1]  # the preset's
    assert c["model"]["k"] == 3  # the file's (the preset does not set it)
    assert c["model"]["grid"] == 4  # the preset's schedule's, not the file's 3
    assert c["preset"] == "big" and c["seed"] == 3 and c["dtype"] == "float32"
    assert run.metrics["steps"] == 3  # the preset's schedule: 3 Adam steps, not the file's 2
    assert run.history["param_k"][0] == 0.75  # the start value given, not the file's 0.5
    assert RUN_NAME.match(run_dir.name).group(1) == "3"


ZERO = """
import torch
from kanpde import Dirichlet, Interval, Problem, d

problem = Problem(
    name="zero",
    domain=Interval(-1, 1),
    pde=lambda x, u: d(u, x, "x", "x"),
    conditions=[Dirichlet(0.0)],
    exact=lambda x: torch.zeros_like(x),
    model={"width": [1, 3, 1]},
    schedule=[{"grid": 3, "adam": 3}],
    points={"interior": 20, "boundary": 2, "test": 11},
)
"""


def test_a_zero_exact_solution_reports_an_undefined_relative_error(tmp_path, capsys):
    path = tmp_path / "zero.py"
    path.write_text(ZERO)
    assert main(["solve", str(path), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    summary = next(line for line in out.splitlines() if line.startswith("zero: 3 steps"))
    mse = float(re.search(r"mse ([0-9.e+-]+)", summary).group(1))
    assert 0 < mse < 10  # the MSE itself is a number (the net is not zero after 3 Adam steps)
    assert "rel_l2 undefined (the exact solution is zero on the test set)" in summary
    assert "nan" not in summary
