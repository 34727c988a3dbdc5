"""Independent tests of the PINN engine: problem loading, residual checks, training stages,
grid extension, jet-served loss terms and the command line."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from closed_form import Closed

import kanpde
from kanpde import Dirichlet, Interval, Problem, ProblemError, Rectangle, d, laplacian
from kanpde.cli import main
from kanpde.losses import Residuals
from kanpde.schedule import parse_schedule
from kanpde.training import Trainer, build_model

ROOT = Path(__file__).resolve().parents[1]
POISSON = ROOT / "problems" / "poisson2d.py"
DT = torch.float64


@pytest.fixture
def one_thread():
    """Grid extension calls torch.linalg.lstsq, very slow multi-threaded on a loaded box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def poisson():
    return kanpde.load_problem(POISSON)


# -- load_problem -----------------------------------------------------------------------------

GOOD = """
import math, torch
from kanpde import Dirichlet, Problem, Rectangle, laplacian

def exact(x):
    return torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])

def pde(x, u):
    return laplacian(u, x) + 2 * math.pi**2 * exact(x)

problem = Problem(
    name="good",
    domain=Rectangle([-1, -1], [1, 1]),
    pde=pde,
    conditions=[Dirichlet(0.0)],
    exact=exact,
    model={"width": [2, 3, 1], "grid": 3},
)
"""


def _variant(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


LOAD_CASES = {
    "syntax_error": (GOOD + "\ndef broken(:\n    pass\n", r"not valid Python"),
    "raises_on_import": (GOOD + "\nraise RuntimeError('boom')\n", r"RuntimeError: boom"),
    "no_problem": (_variant("problem = Problem(", "other = Problem("), r"defines no `problem`"),
    "wrong_type": (GOOD + "\nproblem = 'poisson'\n", r"must be a kanpde.Problem, got str"),
    "width_mismatch": (
        _variant('"width": [2, 3, 1]', '"width": [3, 3, 1]'),
        r"model width \[3, 3, 1\] starts with 3 inputs but the domain has 2 coordinates",
    ),
    "width_outputs": (
        _variant('"width": [2, 3, 1]', '"width": [2, 3, 2]'),
        r"ends with 2 outputs but the problem has 1",
    ),
    "unknown_model_option": (
        _variant('"grid": 3', '"grid": 3, "depth": 4'),
        r"unknown kan option\(s\) depth",
    ),
    "bad_schedule": (
        _variant('"grid": 3},', '"grid": 3}, schedule="3:adam=-1",'),
        r"schedule: steps must be a non-negative integer",
    ),
    "bad_dtype": (_variant('"grid": 3},', '"grid": 3}, dtype="float16",'), r"dtype must be"),
    "not_a_domain": (
        _variant("domain=Rectangle([-1, -1], [1, 1])", "domain=[[-1, -1], [1, 1]]"),
        r"domain must be a kanpde geometry",
    ),
}


@pytest.mark.parametrize("text, fragment", list(LOAD_CASES.values()), ids=list(LOAD_CASES))
def test_load_problem_errors_are_one_line_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "case.py"
    path.write_text(text)
    with pytest.raises(ProblemError, match=fragment) as e:
        kanpde.load_problem(path)
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg
    assert e.value.__suppress_context__ or e.value.__cause__ is None


def test_load_problem_line_numbers(tmp_path):
    path = tmp_path / "case.py"
    lines = GOOD.count("\n")
    path.write_text(GOOD + "\nraise RuntimeError('boom')\n")
    with pytest.raises(ProblemError, match=rf"^{path}:{lines + 2}: error while importing"):
        kanpde.load_problem(path)
    path.write_text(GOOD + "\ndef broken(:\n    pass\n")
    with pytest.raises(ProblemError, match=rf"^{path}:{lines + 2}: not valid Python"):
        kanpde.load_problem(path)


def test_load_problem_file_errors(tmp_path):
    with pytest.raises(ProblemError, match=r"problem file not found") as e:
        kanpde.load_problem(tmp_path / "missing.py")
    assert str(e.value).startswith(str(tmp_path / "missing.py"))
    txt = tmp_path / "problem.txt"
    txt.write_text(GOOD)
    with pytest.raises(ProblemError, match=r"ending in .py") as e:
        kanpde.load_problem(txt)
    assert str(e.value).startswith(str(txt))
    with pytest.raises(ProblemError, match=r"is a directory"):
        kanpde.load_problem(tmp_path)


def test_load_problem_good_file(tmp_path):
    path = tmp_path / "good.py"
    path.write_text(GOOD)
    p = kanpde.load_problem(path)
    assert isinstance(p, Problem) and p.name == "good" and p.source == str(path)
    assert p.model["width"] == [2, 3, 1] and p.model["k"] == 3  # defaults filled in
    q = kanpde.load_problem(POISSON)
    assert q.name == "poisson2d" and q.weights == {"pde": 0.01}


# -- residual checks at initialisation --------------------------------------------------------


def _residuals(pde, model_cfg=None):
    p = Problem(
        name="bad",
        domain=Rectangle([-1, -1], [1, 1]),
        pde=pde,
        conditions=[Dirichlet(0.0)],
        model={"width": [2, 3, 1], "grid": 3},
    )
    torch.manual_seed(0)
    m = build_model(p, model_cfg, DT)
    return Residuals(p, m, {"interior": 20, "boundary": 8, "method": "sobol"}, {}, DT, "cpu")


RESIDUAL_CASES = {
    "wrong_shape": (
        lambda x, u: laplacian(u, x).reshape(-1, 2),
        r"pde residual has shape \(4, 2\), expected one row per point of x: \(N, k\) for x of "
        r"shape \(N, 2\); this call's x has N = 8 points \(pde is called on any number",
    ),
    "three_dims": (lambda x, u: laplacian(u, x).unsqueeze(-1), r"residual has shape \(8, 1, 1\)"),
    "not_a_tensor": (lambda x, u: 0.0, r"pde must return tensors, pde is float"),
    "numpy": (lambda x, u: laplacian(u, x).detach().numpy(), r"pde is ndarray"),
    "nan_at_init": (lambda x, u: laplacian(u, x) * float("nan"), r"pde residual is NaN or Inf"),
    "inf_at_init": (lambda x, u: laplacian(u, x) / 0.0, r"NaN or Inf at initialisation"),
    "no_u": (lambda x, u: torch.sin(x[:, 0:1]) + 1, r"does not depend on the solution u"),
    "constant": (lambda x, u: torch.zeros(x.shape[0], 1, dtype=DT), r"does not depend"),
    "detached": (lambda x, u: laplacian(u, x).detach(), r"does not depend"),
    "system_entry": (
        lambda x, u: (laplacian(u, x), x[:, 0:1] * 2),
        r"pde\[1\] residual does not depend",
    ),
}


@pytest.mark.parametrize("pde, fragment", list(RESIDUAL_CASES.values()), ids=list(RESIDUAL_CASES))
def test_residual_errors_are_clear(pde, fragment):
    with pytest.raises(ValueError, match=fragment) as e:
        _residuals(pde)
    msg = str(e.value)
    assert msg.startswith("problem 'bad': ") and "\n" not in msg


def test_residual_names_of_systems():
    r = _residuals(lambda x, u: {"mass": laplacian(u, x), "energy": u})
    assert list(r.terms_of()) == ["pde[mass]", "pde[energy]", "dirichlet"]
    r = _residuals(lambda x, u: (laplacian(u, x), u))
    assert list(r.terms_of()) == ["pde[0]", "pde[1]", "dirichlet"]
    r = _residuals(lambda x, u: laplacian(u, x)[:, 0])  # (N,) is accepted as (N, 1)
    assert list(r.terms_of()) == ["pde", "dirichlet"]


# -- jets versus plain autograd ---------------------------------------------------------------


def _autograd_laplacian(u, x):
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = 0
    for a in range(x.shape[1]):
        (h,) = torch.autograd.grad(g[:, a].sum(), x, create_graph=True)
        lap = lap + h[:, a : a + 1]
    return lap


@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_jet_loss_terms_equal_autograd(poisson, kind):
    cfg = {"grid": 5} if kind == "kan" else {"type": "mlp", "width": [2, 16, 16, 1]}
    torch.manual_seed(1)
    model = build_model(poisson, cfg, DT)
    if kind == "kan":
        with torch.no_grad():
            for layer in model.layers:
                layer.coef.normal_(0, 0.5)
    res = Residuals(
        poisson,
        model,
        {"interior": 60, "boundary": 24, "method": "sobol"},
        poisson.weights,
        DT,
        "cpu",
    )
    assert res.fully_fused, "poisson2d should be served by the model's jets"
    assert res.pde.order == 2 and res.pde.pairs == ((0, 0), (1, 1))
    assert res.terms[0].order == 0
    terms = {k: v.detach() for k, v in res.terms_of().items()}
    # by hand: mean squared residuals with nested autograd
    x = res.pde.points.x.detach().clone().requires_grad_(True)
    u = model(x)
    r = _autograd_laplacian(u, x) + 2 * math.pi**2 * torch.sin(math.pi * x[:, 0:1]) * torch.sin(
        math.pi * x[:, 1:2]
    )
    pde_ref = (r**2).mean()
    xb = res.terms[0].points.x
    bc_ref = (model(xb) ** 2).mean()
    p_ref, b_ref = float(pde_ref.detach()), float(bc_ref.detach())
    assert abs(float(terms["pde"]) - p_ref) <= 1e-10 * p_ref
    assert abs(float(terms["dirichlet"]) - b_ref) <= 1e-10 * b_ref
    loss, _ = res()
    assert abs(float(loss.detach()) - (0.01 * p_ref + b_ref)) <= 1e-10 * (0.01 * p_ref + b_ref)
    # parameter gradients agree too
    g_jet = torch.autograd.grad(loss, list(model.parameters()))
    g_ref = torch.autograd.grad(0.01 * pde_ref + bc_ref, list(model.parameters()))
    for a, b in zip(g_jet, g_ref):
        assert float((a - b).abs().max()) <= 1e-10 * max(1.0, float(b.abs().max()))


def test_boundary_points_and_budget(poisson):
    torch.manual_seed(0)
    model = build_model(poisson, {"grid": 3}, DT)
    res = Residuals(
        poisson, model, {"interior": 50, "boundary": 40, "method": "sobol"}, {}, DT, "cpu"
    )
    assert res.pde.points.x.shape == (50, 2)
    xb = res.terms[0].points.x
    assert xb.shape == (40, 2)
    assert bool((xb.abs().max(dim=1).values == 1).all()), "boundary points must be on the boundary"


# -- training ---------------------------------------------------------------------------------


def _trainer(problem, stages, grid, points, log_every=1, seed=0, width=None, **kw):
    torch.manual_seed(seed)
    model = build_model(problem, {"grid": grid, **({"width": width} if width else {})}, DT)
    res = Residuals(problem, model, points, problem.weights, DT, "cpu")
    return Trainer(res, parse_schedule(stages), progress=False, log_every=log_every, **kw)


SOBOL = {"interior": 100, "boundary": 40, "method": "sobol"}


def test_adam_lowers_the_loss(poisson, one_thread):
    t = _trainer(poisson, [{"grid": 5, "adam": 25, "lr": 1e-2}], 5, SOBOL, log_every=5)
    h = t.run().columns()
    assert list(h["step"]) == [0, 5, 10, 15, 20, 25]
    assert h["loss"][-1] < 0.8 * h["loss"][0]
    assert t.step == 25 and t.evals == 25
    # the logged loss is the weighted sum of the logged terms
    torch.testing.assert_close(
        torch.as_tensor(h["loss"]),
        torch.as_tensor(0.01 * h["loss_pde"] + h["loss_dirichlet"]),
        rtol=1e-12,
        atol=0,
    )


@pytest.mark.parametrize("g0, g1", [(3, 6), (5, 10)])
def test_loss_is_continuous_at_grid_extension(poisson, one_thread, g0, g1):
    stages = [{"grid": g0, "adam": 15, "lr": 1e-2}, {"grid": g1, "lbfgs": 2}]
    t = _trainer(poisson, stages, g0, SOBOL, log_every=5)
    t.run()
    ext = [e for e in t.history.events if e["event"] == "extend_grid"]
    assert len(ext) == 1
    e = ext[0]
    assert e["grid"] == g1 and e["step"] == 15 and t.model.grid == g1
    # a nested refinement represents the same function: measured jumps 0 to 8e-15 (a 1%
    # tolerance let parameters scaled by 1.0005 at each change pass)
    assert abs(e["loss_after"] - e["loss_before"]) <= 1e-10 * e["loss_before"], e
    # the loss before extension is the loss logged at the end of the first stage
    h = t.history.columns()
    assert e["loss_before"] == pytest.approx(h["loss"][list(h["step"]).index(15)], rel=1e-12)


def test_loss_is_continuous_at_grid_extension_on_grid_points(poisson, one_thread):
    """poisson2d's own point method (grid) with a small budget: 10x10 interior points and
    10 per edge give 20 distinct values per coordinate, fewer than the 23 cubic B-splines of
    G = 20. The refinement 10 -> 20 is nested (exactly representable), so the loss must not
    jump."""
    points = {"interior": 100, "boundary": 40, "method": "grid"}
    stages = [{"grid": 10, "adam": 20, "lr": 1e-2}, {"grid": 20, "adam": 0}]
    t = _trainer(poisson, stages, 10, points, log_every=20)
    t.run()
    (e,) = [e for e in t.history.events if e["event"] == "extend_grid"]
    assert abs(e["loss_after"] - e["loss_before"]) <= 1e-10 * e["loss_before"], e


def test_adam_decay_brings_the_learning_rate_down_by_its_factor(poisson, one_thread):
    # decay was only parsed in tests (and checked with a time budget): ignoring it passed
    t = _trainer(poisson, [{"grid": 3, "adam": 20, "lr": 1e-2, "decay": 0.1}], 3, SOBOL)
    t.run()
    assert t._adam.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-12)
    t = _trainer(poisson, [{"grid": 3, "adam": 20, "lr": 1e-2}], 3, SOBOL)
    t.run()
    assert t._adam.param_groups[0]["lr"] == 1e-2


def test_lbfgs_stage_options_reach_the_optimizer(poisson, one_thread, monkeypatch):
    # lr and history of an L-BFGS stage were only parsed in tests
    made, real = [], torch.optim.LBFGS

    def lbfgs(params, **kwargs):
        made.append(kwargs)
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "LBFGS", lbfgs)
    _trainer(poisson, [{"grid": 3, "lbfgs": 3, "lr": 0.5, "history": 7}], 3, SOBOL).run()
    assert made and all(k["lr"] == 0.5 and k["history_size"] == 7 for k in made)


def test_resampling_every_n_steps_draws_new_interior_points(poisson, one_thread):
    # "resample": N was never run with N > 0
    pts = {**SOBOL, "resample": 4}
    t = _trainer(poisson, [{"grid": 3, "adam": 10, "lr": 1e-2}], 3, pts)
    first = t.residuals.interior.x.clone()
    drawn = []
    real = t.residuals.set_interior

    def set_interior(x):
        drawn.append(x.clone())
        real(x)

    t.residuals.set_interior = set_interior
    t.run()
    assert [e["step"] for e in t.history.events if e["event"] == "resample"] == [4, 8]
    assert len(drawn) == 2 and not torch.equal(drawn[0], first)
    assert not torch.equal(drawn[0], drawn[1]) and drawn[0].shape == first.shape
    assert torch.equal(t.residuals.interior.x, drawn[1])


def test_adaptive_resampling_favours_points_of_large_residual():
    # the residual is 0 left of x = 0.5 and 1 right of it: keep probabilities |r| / mean|r| + 1
    # are 1 and 3, so about 3/4 of the kept points lie right (uniform weights passed before)
    prob = Problem(
        name="step",
        domain=Rectangle([0, 0], [1, 1]),
        pde=lambda x, u: (x[:, 0:1] > 0.5).to(u.dtype) + 0 * u,
        conditions=[Dirichlet(0.0)],
    )
    torch.manual_seed(0)
    model = build_model(prob, {"width": [2, 3, 1], "grid": 3}, DT, "cpu")
    res = Residuals(prob, model, {"interior": 400, "boundary": 16}, {}, DT, "cpu")
    res.resample(seed=5, adaptive=True, pool=10)
    right = float((res.interior.x[:, 0] > 0.5).double().mean())
    assert 0.68 < right < 0.82, right
    res.resample(seed=5, adaptive=False)
    assert 0.4 < float((res.interior.x[:, 0] > 0.5).double().mean()) < 0.6


def test_no_extension_when_the_grid_does_not_change(poisson, one_thread):
    t = _trainer(poisson, [{"grid": 4, "adam": 2}, {"grid": 4, "adam": 2}], 4, SOBOL)
    t.run()
    assert [e for e in t.history.events if e["event"] == "extend_grid"] == []


def test_adam_moments_carried_across_grid_extension(poisson, one_thread):
    saved = {}

    def callback(trainer, row):
        if row["step"] == 4:  # end of the first stage, before the extension
            saved["model"] = copy.deepcopy(trainer.model)
            saved["adam"] = {
                name: {
                    k: (v.clone() if torch.is_tensor(v) else v)
                    for k, v in trainer._adam.state[p].items()
                }
                for name, p in trainer.model.named_parameters()
            }

    stages = [{"grid": 3, "adam": 4, "lr": 1e-2}, {"grid": 6, "adam": 0}]
    t = _trainer(poisson, stages, 3, SOBOL, callback=callback)
    t.run()
    assert t.model.grid == 6
    old_model, old_state = saved["model"], saved["adam"]
    state = t._adam.state
    for name, p in t.model.named_parameters():
        assert p in state, f"no Adam state for {name}"
        s = state[p]
        assert s["exp_avg"].shape == p.shape, name
        assert s["exp_avg_sq"].shape == p.shape, name
        assert bool((s["exp_avg_sq"] >= 0).all()), name
        assert float(s["step"]) == float(old_state[name]["step"]) == 4.0
        if name.endswith("coef"):
            assert p.shape[-1] == 6 + 3  # G + k cubic B-splines
        else:  # scales are untouched by the grid
            torch.testing.assert_close(s["exp_avg"], old_state[name]["exp_avg"], rtol=0, atol=0)
    # The first layer's grids are nested (3 -> 6 over the same range): the moment of every edge,
    # seen as a spline, is the same function before and after the extension.
    x = t.residuals.all_points()
    old_layer, new_layer = old_model.layers[0], t.model.layers[0]
    for key in ("exp_avg", "exp_avg_sq"):
        before = torch.einsum(
            "nib,oib->nio", old_layer.basis_values(x)[:, :, 0], old_state["layers.0.coef"][key]
        )
        after = torch.einsum(
            "nib,oib->nio", new_layer.basis_values(x)[:, :, 0], state[new_layer.coef][key]
        )
        scale = float(before.abs().max())
        assert scale > 0
        assert float((after - before).abs().max()) <= 1e-10 * scale, key
    # Adam keeps going with the carried moments
    assert t._adam.param_groups[0]["params"][0] is next(iter(t.model.parameters()))


def test_adam_moments_reset_without_carry(poisson, one_thread):
    stages = [{"grid": 3, "adam": 3, "lr": 1e-2}, {"grid": 6, "adam": 0}]
    t = _trainer(poisson, stages, 3, SOBOL, carry_moments=False)
    t.run()
    assert len(t._adam.state) == 0
    assert all(p.shape[-1] == 9 for n, p in t.model.named_parameters() if n.endswith("coef"))


def test_adam_continues_after_extension(poisson, one_thread):
    stages = [{"grid": 3, "adam": 5, "lr": 1e-2}, {"grid": 6, "adam": 5, "lr": 1e-2}]
    t = _trainer(poisson, stages, 3, SOBOL, log_every=5)
    h = t.run().columns()
    assert list(h["grid"]) == [3, 3, 6]
    assert h["loss"][-1] < h["loss"][1] < h["loss"][0]


# -- command line -----------------------------------------------------------------------------


def test_cli_solve(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "kanpde",
        "solve",
        str(POISSON),
        "--schedule",
        "3:lbfgs=2",
        "--points",
        "interior=100,boundary=40,test=11",
        "--out",
        str(tmp_path),
        "--quiet",
        "--device",
        "cpu",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("poisson2d-")
    assert (runs[0] / "result.h5").is_file()
    assert f"results: {runs[0] / 'result.h5'}" in p.stdout
    r = kanpde.load(runs[0])
    assert r.config["model"]["grid"] == 3 and 1 <= r.metrics["steps"] <= 2
    assert r.config["points"]["interior"] == 100


BAD_ARGS = {
    "width": (["--width", "2,x,1"], "--width '2,x,1'"),
    "width_too_short": (["--width", "2"], "at least two"),
    "schedule": (["--schedule", "5:adam=-3"], "--schedule '5:adam=-3'"),
    "points": (["--points", "foo"], "--points 'foo'"),
    "points_key": (["--points", "inner=5"], "unknown key 'inner'"),
    "points_value": (["--points", "interior=-5"], "must be positive"),
    "dtype": (["--dtype", "float16"], "--dtype 'float16'"),
    "basis": (["--basis", "nope"], "--basis 'nope'"),
    "grid": (["--grid", "0"], "--grid 0"),
    "device_cuda": (["--device", "cuda"], "no CUDA GPU is available"),
    "device_unknown": (["--device", "tpu"], "device"),
}


@pytest.mark.parametrize("args, fragment", list(BAD_ARGS.values()), ids=list(BAD_ARGS))
def test_cli_bad_arguments(tmp_path, capsys, args, fragment):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    argv = ["solve", str(POISSON), "--out", str(tmp_path), "--quiet", *args]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kanpde: error: "), err
    assert fragment in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("device", ["cuda", "tpu"])
def test_cli_rejected_device_leaves_no_run_directory(tmp_path, capsys, device):
    """Like every other rejected argument, a bad --device must not leave an empty run
    directory behind in --out."""
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    out = tmp_path / "runs"
    code = main(["solve", str(POISSON), "--out", str(out), "--quiet", "--device", device])
    capsys.readouterr()
    assert code == 2
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], f"empty run directories left behind: {left}"


def test_cli_bad_problem_file(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(GOOD + "\nraise RuntimeError('boom')\n")
    code = main(["solve", str(bad), "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"kanpde: error: {bad}:") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_cli_list(capsys):
    code = main(["list", str(ROOT / "problems")])
    out = capsys.readouterr().out
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("poisson2d"))
    assert "Poisson" in line and "[invalid]" not in line


def test_loss_weights_by_term_name():
    p = Problem(
        name="w",
        domain=Rectangle([-1, -1], [1, 1]),
        pde=lambda x, u: (laplacian(u, x), u - 1),
        conditions=[
            Dirichlet(0.0, on="left"),
            Dirichlet(1.0, on="right", weight=7.0),
            # its own weight, not the PDE's: the name only starts like "pde"
            Dirichlet(2.0, on="top", weight=5.0, name="pde_top"),
        ],
        model={"width": [2, 3, 1], "grid": 3},
    )
    torch.manual_seed(0)
    m = build_model(p, None, DT)
    weights = {"pde": 0.5, "pde[1]": 2.0, "dirichlet[left]": 3.0}
    res = Residuals(p, m, {"interior": 20, "boundary": 16, "method": "sobol"}, weights, DT, "cpu")
    loss, terms = res()
    t = {k: float(v.detach()) for k, v in terms.items()}
    assert list(t) == ["pde[0]", "pde[1]", "dirichlet[left]", "dirichlet[right]", "pde_top"]
    expected = 0.5 * t["pde[0]"] + 2.0 * t["pde[1]"] + 3.0 * t["dirichlet[left]"]
    expected += 7.0 * t["dirichlet[right]"] + 5.0 * t["pde_top"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-14)


def test_a_pde_weight_given_to_solve_or_a_preset_overrides_the_problems_per_residual_ones():
    # the problem's pde[0]/pde[1] used to win over a caller's "pde", which config recorded
    def pde(x, out):
        return d(out[:, :1], x, "x", "x") + 1.0, d(out[:, 1:], x, "x", "x") - 2.0

    p = Problem(name="w", domain=Interval(-1, 1), pde=pde, conditions=[Dirichlet(0.0)],
                outputs=["u", "v"], model={"width": [1, 3, 2]}, schedule="3:lbfgs=1",
                points={"interior": 20}, weights={"pde[0]": 1.0, "pde[1]": 4.0, "dirichlet": 2.0},
                presets={"soft": {"weights": {"pde": 1e-3}}})  # fmt: skip
    kw = dict(device="cpu", progress=False, log_every=1)
    for run in (kanpde.solve(p, weights={"pde": 1e-3}, **kw), kanpde.solve(p, preset="soft", **kw)):
        h = {k: v[0] for k, v in run.history.items()}  # step 0: the same initial network
        expected = 1e-3 * (h["loss_pde[0]"] + h["loss_pde[1]"]) + 2.0 * h["loss_dirichlet"]
        assert h["loss"] == pytest.approx(expected, rel=1e-12)
        assert run.config["weights"] == {"dirichlet": 2.0, "pde": 1e-3}
    # a per-residual override still refines the problem's own
    run = kanpde.solve(p, weights={"pde[1]": 0.5}, **kw)
    h = {k: v[0] for k, v in run.history.items()}
    expected = h["loss_pde[0]"] + 0.5 * h["loss_pde[1]"] + 2.0 * h["loss_dirichlet"]
    assert h["loss"] == pytest.approx(expected, rel=1e-12)


def test_preset_replaces_the_defaults_it_names(one_thread):
    p = Problem(
        name="presets",
        domain=Rectangle([-1, -1], [1, 1]),
        pde=lambda x, u: laplacian(u, x) + 1.0,
        conditions=[Dirichlet(0.0)],
        model={"width": [2, 3, 1], "grid": 3},
        schedule=[{"lbfgs": 2}],
        points={"interior": 30, "boundary": 12, "method": "sobol", "test": 5},
        weights={"pde": 0.5},
        presets={
            "full": {
                "model": {"width": [2, 4, 1]},
                "schedule": [{"grid": 4, "lbfgs": 3}],
                "points": {"interior": 50},
                "weights": {"dirichlet": 2.0},
            }
        },
    )
    plain = kanpde.solve(p, progress=False, checkpoint_every=0)
    full = kanpde.solve(p, preset="full", progress=False, checkpoint_every=0)
    assert plain.config["model"]["width"] == [2, 3, 1] and plain.config["model"]["grid"] == 3
    assert full.config["model"]["width"] == [2, 4, 1] and full.config["model"]["grid"] == 4
    # points and weights are merged key by key: unnamed keys keep the problem's defaults
    assert full.config["points"]["interior"] == 50 and full.config["points"]["boundary"] == 12
    assert full.config["weights"] == {"pde": 0.5, "dirichlet": 2.0}
    assert plain.config["weights"] == {"pde": 0.5}
    assert full.history["step"][-1] == 3 and plain.history["step"][-1] == 2
    with pytest.raises(ProblemError, match="unknown preset 'huge'; known: full"):
        kanpde.solve(p, preset="huge", progress=False, checkpoint_every=0)


@pytest.mark.parametrize("kind", ["mixed", "hessian"])
def test_pure_and_mixed_second_derivatives_reach_the_jet(kind):
    # u_xx and u_xy come from one autograd call in the probe; both must be planned for.
    from kanpde import d, hessian

    def pde(x, u):
        if kind == "mixed":
            return d(u, x, "x", "x") + d(u, x, "x", "y") - 1.0
        h = hessian(u, x)
        return h[:, 0, 0:1] + h[:, 0, 1:2] + h[:, 1, 1:2] - 1.0

    prob = Problem(
        name=kind, domain=Rectangle([0, 0], [1, 1]), pde=pde, conditions=[Dirichlet(0.0)]
    )
    pts = {"interior": 32, "boundary": 16, "method": "sobol"}
    for cfg in ({"width": [2, 4, 1], "grid": 4}, {"type": "mlp", "width": [2, 8, 1]}):
        torch.manual_seed(0)
        model = build_model(prob, cfg, DT, "cpu")
        res = Residuals(prob, model, pts, {}, DT, "cpu")
        assert res.pde.fused and res.pde.pairs == ((0, 0), (0, 1), (1, 1))[: 2 + (kind != "mixed")]
        plain = Residuals(prob, Closed(model), pts, {}, DT, "cpu")
        assert not plain.pde.fused
        fused_pde, plain_pde = res.terms_of()["pde"].detach(), plain.terms_of()["pde"].detach()
        assert float(fused_pde) == pytest.approx(float(plain_pde), rel=1e-12)


def test_adaptive_resampling_when_the_pde_differentiates_an_expression_of_u():
    from kanpde import d

    prob = Problem(
        name="flux",
        domain=Rectangle([0, 0], [1, 1]),
        pde=lambda x, u: d(u * u, x, "x") - 1.0,
        conditions=[Dirichlet(0.0)],
    )
    torch.manual_seed(0)
    model = build_model(prob, {"width": [2, 4, 1], "grid": 4}, DT, "cpu")
    res = Residuals(prob, model, {"interior": 40, "boundary": 16, "method": "sobol"}, {}, DT, "cpu")
    assert res.pde.order == 0 and not res.pde.fused
    before = res.interior.x.clone()
    res.resample(seed=3, adaptive=True, pool=4)
    assert res.interior.x.shape == before.shape and not torch.equal(res.interior.x, before)
    # the residual that weighted the draw: |2 u u_x - 1| at the kept points, by autograd
    x = res.interior.x.detach().clone().requires_grad_(True)
    u = model(x)
    (g,) = torch.autograd.grad((u * u).sum(), x)
    direct = (g[:, :1] - 1.0).abs().squeeze(1)
    assert torch.allclose(res._pointwise_residual(res.interior.x), direct, rtol=1e-12)


def test_weight_of_residual_0_of_a_one_residual_pde(poisson):
    # "pde[0]" on a PDE returning one residual (alone or in a 1-tuple) was silently unused.
    import dataclasses

    for pde in (poisson.pde, lambda x, u: (poisson.pde(x, u),)):
        p = dataclasses.replace(poisson, pde=pde)
        res = Residuals(p, build_model(p, {"grid": 3}, DT), {"interior": 20, "boundary": 8},
                        {"pde[0]": 7.0}, DT, "cpu")  # fmt: skip
        assert res.pde_names() == ["pde"] and res.weight("pde") == 7.0
        terms = {k: v.detach() for k, v in res.terms_of().items()}
        assert float(res.total(terms)) == pytest.approx(
            7 * float(terms["pde"]) + float(terms["dirichlet"])
        )


@pytest.mark.parametrize("basis", ["rswaf", "chebyshev"])
def test_adam_moments_survive_grid_updates_of_signed_transfer_bases(poisson, one_thread, basis):
    # Their update_grid maps have negative entries; mapping Adam's second moments through them
    # left v' ~ 0 beside m' != 0 and the next steps exploded (rswaf: loss 0.53 -> 387).
    run = kanpde.solve(poisson, model={"basis": basis}, points={"interior": 200, "boundary": 40},
                       schedule=[{"grid": 5, "adam": 40, "lr": 1e-2, "update_grid": 10,
                                  "update_until": 30}],
                       progress=False, log_every=2, device="cpu")  # fmt: skip
    loss = run.history["loss"]
    assert [e["step"] for e in run.events if e["event"] == "update_grid"] == [0, 10, 20, 30]
    assert loss[5:].max() < 1.5 * loss[:6].max(), loss
    assert loss[-1] < 0.2 * loss[0]


def test_resampling_follows_the_run_seed(poisson):
    # Every seed drew the same resampled points (the draw was seeded by the step alone), so
    # multi-seed studies with resampling shared their collocation sets.
    pts = {"interior": 50, "boundary": 20}
    draws = []
    for seed in (0, 1):
        res = Residuals(poisson, build_model(poisson, {"grid": 3}, DT), pts, {}, DT, "cpu", seed)
        res.resample(seed=1005)
        draws.append(res.interior.x.numpy().copy())
    assert not np.allclose(draws[0], draws[1])
    # seed 0 draws with the step's seed alone, by the points' method (Sobol by default;
    # uniform draws before, whatever the method)
    np.testing.assert_array_equal(draws[0], poisson.domain.sample(50, method="sobol", seed=1005))
    for method, drawn in (("lhs", "lhs"), ("uniform", "uniform"), ("grid", "uniform")):
        res = Residuals(poisson, build_model(poisson, {"grid": 3}, DT),
                        {**pts, "method": method}, {}, DT, "cpu", 0)  # fmt: skip
        res.resample(seed=7)
        expected = poisson.domain.sample(res.interior.x.shape[0], method=drawn, seed=7)
        np.testing.assert_array_equal(res.interior.x.numpy(), expected)


def test_splines_too_flat_for_the_pde_are_warned_about(poisson, capsys, tmp_path):
    # k=1 B-splines are piecewise linear: zero u'' inside every interval, and poisson2d trained
    # to rel. L2 ~1.8 without a word.
    import warnings

    kw = dict(schedule="3:lbfgs=2", points={"interior": 40, "boundary": 16}, progress=False,
              device="cpu")  # fmt: skip
    with pytest.warns(UserWarning, match=r"degree k=1 have no derivative of order 2 .* k >= 3"):
        kanpde.solve(poisson, model={"k": 1}, **kw)
    # k=2: u'' piecewise constant, jumping as hidden inputs cross knots; poisson1d's L-BFGS
    # stopped after 68 of 200 steps at rel. L2 0.27 without a word. A single layer's inputs
    # are the fixed points: no jumps, no warning.
    with pytest.warns(kanpde.KanpdeWarning, match=r"k=2 have a derivative of order 2 that jumps"):
        kanpde.solve(poisson, model={"k": 2}, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanpde.solve(poisson, model={"k": 2, "width": [2, 1]}, **kw)
        kanpde.solve(poisson, model={"k": 3}, **kw)
        kanpde.solve(poisson, model={"type": "mlp", "width": [2, 8, 1]}, **kw)
    # the command line prints it as one line of its own
    args = ["--k", "1", "--schedule", "3:lbfgs=2", "--points", "interior=40,boundary=16"]
    assert main(["solve", str(POISSON), *args, "--quiet", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kanpde: warning: ") and "k=1" in err[0], err


def test_resampling_with_a_huge_seed(poisson):
    # 1000 + step + 1_000_003 * seed overflowed torch's generator for seeds above ~1.8e13.
    pts = {"interior": 30, "boundary": 12}
    draws = []
    for seed in (1, 2**60):
        res = Residuals(poisson, build_model(poisson, {"grid": 3}, DT), pts, {}, DT, "cpu", seed)
        res.resample(seed=1002, adaptive=True, pool=2)
        draws.append(res.interior.x.numpy().copy())
    assert not np.allclose(draws[0], draws[1])


def test_flat_spline_warning_finds_wrapped_kans_and_fourth_derivatives(poisson):
    import warnings

    class Wrapper(torch.nn.Module):
        layers = 2  # not a list of layers: the check once iterated it

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    kw = dict(schedule="lbfgs=1", points={"interior": 40, "boundary": 16}, progress=False,
              device="cpu")  # fmt: skip
    with pytest.warns(kanpde.KanpdeWarning, match="k=1"):
        kanpde.solve(poisson, model=Wrapper(build_model(poisson, {"k": 1}, DT)), **kw)
    with pytest.warns(kanpde.KanpdeWarning, match="k=2 have a derivative of order 2 that jumps"):
        kanpde.solve(poisson, model=Wrapper(build_model(poisson, {"k": 2}, DT)), **kw)

    class Sum(torch.nn.Module):  # two one-layer KANs: each layer sees the fixed points
        def __init__(self):
            super().__init__()
            self.a = build_model(poisson, {"k": 2, "width": [2, 1]}, DT)
            self.b = build_model(poisson, {"k": 2, "width": [2, 1]}, DT)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanpde.solve(poisson, model=Sum(), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanpde.solve(poisson, model=Wrapper(build_model(poisson, {"k": 3}, DT)), **kw)
    beam = Problem(name="beam", domain=kanpde.Interval(0, 1),
                   pde=lambda x, u: kanpde.d(u, x, "x", "x", "x", "x") - 1.0,
                   conditions=[Dirichlet(0.0)])  # fmt: skip
    with pytest.warns(kanpde.KanpdeWarning, match="k=3 have no derivative of order 4"):
        kanpde.solve(beam, model={"k": 3}, **kw)


# -- grid changes of a KAN inside a module of the user's own ----------------------------------
class _Wrapped(torch.nn.Module):
    """An inverse problem's wrapper: a KAN and an unknown coefficient; ``scale`` maps the
    points into the KAN's inputs (the KAN sees 2x there)."""

    def __init__(self, net, scale=1.0):
        super().__init__()
        self.net, self.scale = net, scale
        self.k = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x):
        return self.net(self.scale * x)


def _poisson1d_problem():
    from kanpde import Interval, d

    return Problem(
        name="p1", domain=Interval(-1, 1), conditions=[Dirichlet(0.0)],
        pde=lambda x, u: d(u, x, "x", "x") + math.pi**2 * torch.sin(math.pi * x),
        exact=lambda x: torch.sin(math.pi * x), points={"interior": 60, "test": 21},
    )  # fmt: skip


def test_a_wrapped_kan_gets_the_schedules_grid_changes(one_thread):
    # The trainer looked for extend_grid on the model itself: a wrapper's KAN stayed at G=5
    # through a "grid": 10 stage and every update_grid, without a word.
    problem = _poisson1d_problem()
    torch.manual_seed(0)
    net = build_model(problem, {"width": [1, 4, 1], "grid": 5, "input_range": [[-2, 2]]}, DT)
    model = _Wrapped(net, scale=2.0)
    schedule = [{"grid": 5, "adam": 20, "lr": 1e-2}, {"grid": 10, "adam": 5},
                {"adam": 5, "update_grid": True}]  # fmt: skip
    run = kanpde.solve(problem, model=model, schedule=schedule, progress=False, device="cpu")
    events = [e for e in run.events if e["event"] in ("extend_grid", "update_grid")]
    assert [(e["event"], e["grid"]) for e in events] == [("extend_grid", 10), ("update_grid", 10)]
    assert net.grid == 10 and run.history["grid"][-1] == 10
    assert run.metrics["parameters"] == kanpde.count_parameters(model)
    # update_grid fitted the first layer to what the KAN sees, 2x on [-2, 2], not x
    lo, hi = net.layers[0].grid_range[0].tolist()
    assert lo == pytest.approx(-2.0) and hi == pytest.approx(2.0)


def test_a_kan_fed_inputs_outside_its_grid_range_is_warned_of():
    # A wrapper feeding its KAN 3x trained on inputs where the splines have no support:
    # rel. L2 0.125 against 0.004, without a word.
    import warnings

    problem = _poisson1d_problem()
    kw = dict(schedule="adam=1", progress=False, device="cpu", points={"interior": 40})

    def kan(**options):
        return kanpde.KAN([1, 3, 1], grid=5, dtype=DT, **options)

    with pytest.warns(kanpde.KanpdeWarning, match=r"the KAN in _Wrapped's input 0 lie outside "
                      r"its grid range \[-1, 1\] \(they reach \[-3, 3\]\)"):  # fmt: skip
        kanpde.solve(problem, model=_Wrapped(kan(), scale=3.0), **kw)
    with pytest.warns(kanpde.KanpdeWarning, match=r"of the model's input 0 lie outside its grid "
                      r"range \[0, 3\]"):  # fmt: skip
        kanpde.solve(problem, model=kan(input_range=[[0, 3]]), **kw)
    with warnings.catch_warnings():  # inputs inside the range (or 5 % past it): no warning
        warnings.simplefilter("error")
        kanpde.solve(problem, model=_Wrapped(kan(input_range=[[-3, 3]]), scale=3.0), **kw)
        kanpde.solve(problem, model=_Wrapped(kan(), scale=1.04), **kw)
        kanpde.solve(problem, model=kan(), **kw)


def test_hidden_inputs_far_outside_their_grid_are_warned_of():
    # On [0, L] the first layer's silu part hands the next layer inputs of order L, while its
    # grid stays at [-1, 1]: on [0, 100] L-BFGS alone ended at rel. L2 0.92, without a word.
    # Here the hidden input is silu(x) exactly (spline part 0, silu weight 1): it passes the
    # allowed four grid widths, |h| <= 9, where x > 9.0011, since silu(9) = 8.9989.
    import warnings

    def solve_on(length, schedule="adam=1"):
        problem = _poisson1d_problem()
        problem.domain = kanpde.Interval(0, length)
        net = kanpde.KAN([1, 1, 1], grid=5, input_range=[[0, length]], dtype=DT)
        with torch.no_grad():
            net.layers[0].coef.zero_()
            net.layers[0].scale_base.fill_(1.0)
        kanpde.solve(problem, model=net, schedule=schedule, progress=False, device="cpu",
                     points={"interior": 200, "method": "grid", "test": 5})  # fmt: skip

    with pytest.warns(kanpde.KanpdeWarning, match=r"at the start \d+% of the inputs of the "
                      r"model's layer 1 \(input 0\) lie far outside its grid range \[-1, 1\] "
                      r"\(they reach \[0, 100\]: .*add \"update_grid\": True to the first "
                      r"stage"):  # fmt: skip
        solve_on(100.0)
    with pytest.warns(kanpde.KanpdeWarning, match=r"layer 1 .*they reach \[0, 10.4997\]"):
        solve_on(10.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve_on(9.0)  # silu(9) < 9: inside the allowance
        solve_on(100.0, [{"adam": 1, "update_grid": True}])  # the first stage fixes it


@pytest.mark.slow
def test_a_grid_update_at_the_start_rescues_a_large_domain(one_thread):
    # What the warning above is for, and its advice: sin(pi x / 60) on [0, 30], a [1, 5, 1]
    # KAN and 300 L-BFGS steps ended at rel. L2 0.2 with the hidden grid at [-1, 1] and
    # hidden inputs reaching -20, and at 6e-4 after one grid update at the start.
    import warnings

    length = 30.0
    w = math.pi / (2 * length)
    problem = Problem(
        name="long", domain=kanpde.Interval(0, length),
        pde=lambda x, u: kanpde.d(u, x, "x", "x") / w**2 + torch.sin(w * x),
        conditions=[Dirichlet(0.0, on="left"), kanpde.Neumann(0.0, on="right", weight=1 / w**2)],
        exact=lambda x: torch.sin(w * x), model={"width": [1, 5, 1]},
        points={"interior": 60},
    )  # fmt: skip
    errors = []
    for update in (0, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = kanpde.solve(problem, schedule=[{"grid": 5, "lbfgs": 300, "update_grid": update}],
                               progress=False, device="cpu", seed=0)  # fmt: skip
        errors.append(run.metrics["rel_l2"])
    print(errors)
    assert errors[0] > 0.05 and errors[1] < 5e-3, errors


def test_two_kans_in_a_wrapper_refuse_a_grid_change():
    problem = _poisson1d_problem()

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = build_model(problem, {"width": [1, 2, 1], "grid": 5}, DT)
            self.b = build_model(problem, {"width": [1, 2, 1], "grid": 5}, DT)

        def forward(self, x):
            return self.a(x) + self.b(x)

    kw = dict(progress=False, device="cpu", points={"interior": 20, "test": 5})
    kanpde.solve(problem, model=Two(), schedule="5:adam=2", **kw)  # their own grid: fine
    with pytest.raises(ValueError, match="stage 1 changes the grid, but the model holds 2 KANs"):
        kanpde.solve(problem, model=Two(), schedule="5:adam=2,10:adam=2", **kw)


def test_update_grid_takes_distinct_points(one_thread):
    # 400 boundary points of an interval sit on its two ends; as quantiles they pulled 8 of 11
    # knots to within 0.012 of them, and the loss went from 5e-4 to 2e5
    problem = _poisson1d_problem()
    problem.points = {"interior": 100, "boundary": 400, "method": "grid", "test": 21}
    torch.manual_seed(0)
    run = kanpde.solve(problem, model={"width": [1, 4, 1]}, schedule=[
        {"grid": 10, "lbfgs": 1, "update_grid": True}], progress=False, device="cpu")  # fmt: skip
    knots = run.model().layers[0].grid_points[0, 3:14]
    assert float(knots.diff().min()) > 0.1, knots  # interior grid points: spacing ~0.2
    # in 2-D the points are distinct but the boundary's repeat each face's coordinate (6 of
    # 11 knots per input sat within 0.008 of ±1)
    square = kanpde.load_problem(POISSON)
    square.points = {"interior": 100, "boundary": 400, "test": 11}
    run = kanpde.solve(square, model={"width": [2, 3, 1]}, schedule=[
        {"grid": 10, "lbfgs": 1, "update_grid": True}], progress=False, device="cpu")  # fmt: skip
    knots = run.model().layers[0].grid_points[:, 3:14]
    assert float(knots.diff(dim=1).min()) > 0.05, knots


def test_a_wrapper_calling_its_kan_by_keyword_or_not_at_all():
    problem = _poisson1d_problem()
    net = build_model(problem, {"width": [1, 3, 1], "grid": 5}, DT)

    class ByKeyword(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x=x)

    class Around(ByKeyword):  # runs the KAN's layers itself: its grid cannot be sampled
        def forward(self, x):
            for layer in self.net.layers:
                x = layer(x)
            return x

    kw = dict(schedule="5:adam=2,10:adam=2", progress=False, device="cpu",
              points={"interior": 20, "test": 5})  # fmt: skip
    kanpde.solve(problem, model=ByKeyword(), **kw)  # an IndexError
    assert net.grid == 10
    with pytest.raises(ValueError, match="its forward does not call that KAN"):
        kanpde.solve(problem, model=Around(), schedule="10:adam=2,20:adam=2",
                     progress=False, device="cpu", points={"interior": 20, "test": 5})  # fmt: skip


def test_cli_summary_says_when_lbfgs_ended_a_stage_early(tmp_path, capsys):
    # "68 steps" alone did not say that 200 were planned and L-BFGS stalled twice
    poisson1d = str(Path(__file__).resolve().parents[1] / "problems" / "poisson1d.py")
    args = ["--k", "2", "--schedule", "5:lbfgs=100,10:lbfgs=100", "--quiet"]
    assert main(["solve", poisson1d, *args, "--out", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    run = kanpde.load(next(tmp_path.glob("*/result.h5")))
    stops = [e["step"] for e in run.events if e["event"] == "lbfgs_converged"]
    assert stops and run.metrics["steps"] < 200
    tail = "L-BFGS made no progress and ended its stage early at step "
    assert line.endswith(tail + ", ".join(map(str, stops))), line


def test_cli_summary_of_a_system_gives_each_outputs_relative_l2(tmp_path, capsys):
    # only the joint rel_l2 was printed; kanpde compare tabulates each output's
    args = ["--schedule", "3:adam=3", "--points", "interior=30,boundary=20,test=6", "--quiet"]
    assert main(["solve", str(ROOT / "problems" / "kovasznay.py"), *args, "--out",
                 str(tmp_path)]) == 0  # fmt: skip
    line = capsys.readouterr().out.splitlines()[0]
    run = kanpde.load(next(tmp_path.glob("*/result.h5")))
    pred, ref = run.solution["pred"], run.solution["ref"]
    for i, name in enumerate(("u", "v", "p")):
        rel = np.linalg.norm(pred[:, i] - ref[:, i]) / np.linalg.norm(ref[:, i])
        assert rel == pytest.approx(run.metrics[f"rel_l2_{name}"], rel=1e-12)
        assert f"rel_l2({name}) {rel:.3e}" in line, line
    assert line.index("max_err") < line.index("rel_l2(u)") < line.index("rel_l2(p)")


def test_extending_gaussian_edges_is_warned_about(poisson):
    # rbf G = 5 -> 10: the loss jumped 3e4x at the extension without a word (the README says
    # to give these bases one grid)
    import warnings

    kw = dict(points={"interior": 40, "boundary": 16}, progress=False, device="cpu")
    with pytest.warns(kanpde.KanpdeWarning, match="changes the grid of rbf edges"):
        kanpde.solve(poisson, model={"basis": "rbf"}, schedule="5:lbfgs=1,10:lbfgs=1", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanpde.solve(poisson, model={"basis": "rbf"}, schedule="5:lbfgs=1", **kw)
        kanpde.solve(poisson, schedule="5:lbfgs=1,10:lbfgs=1", **kw)  # B-splines nest


def test_an_extension_that_raises_the_loss_is_warned_of(monkeypatch):
    # a hidden layer's inputs beyond its range made an extension refit: the loss rose 74x
    # at 5 -> 10 without a word
    import warnings

    problem = _poisson1d_problem()
    kw = dict(points={"interior": 40, "test": 11}, progress=False, device="cpu")
    with warnings.catch_warnings():  # an exact extension: no warning
        warnings.simplefilter("error")
        kanpde.solve(problem, model={"width": [1, 4, 1]}, schedule="5:lbfgs=20,10:adam=1", **kw)
    original = kanpde.KAN.extend_grid

    def inexact(self, new_grid, x):
        out = original(self, new_grid, x)
        with torch.no_grad():
            self.layers[-1].coef.mul_(0.0)  # as a refit that misses the old function would
        return out

    monkeypatch.setattr(kanpde.KAN, "extend_grid", inexact)
    # 10 is a multiple of 5 and the edges are B-splines: the remedy for spilled inputs
    remedy = (
        r"a hidden layer's inputs left its grid range; training usually recovers, and an "
        r"update_grid in the stage before .* though it can also cost accuracy: compare both"
    )
    with pytest.warns(kanpde.KanpdeWarning, match=rf"grid extension 5 -> 10 raised the .*{remedy}"):
        run = kanpde.solve(problem, model={"width": [1, 4, 1]}, schedule="5:lbfgs=20,10:adam=1",
                           **kw)  # fmt: skip
    (event,) = [e for e in run.events if e["event"] == "extend_grid"]
    assert event["loss_after"] > 2 * event["loss_before"]

    def spoiled(self, new_grid, x):
        out = original(self, new_grid, x)
        with torch.no_grad():
            self.layers[-1].coef.add_(10.0)  # far off, whatever the loss before was
        return out

    monkeypatch.setattr(kanpde.KAN, "extend_grid", spoiled)
    # the stage before updated its grid, but only until its update_until (default: half way)
    remedy = r"after the stage before stopped updating it at its step 10 of 20; .update_until.: 20"
    with pytest.warns(kanpde.KanpdeWarning, match=remedy):
        kanpde.solve(problem, model={"width": [1, 4, 1]},
                     schedule="5:lbfgs=20+update_grid=5,10:adam=1", **kw)  # fmt: skip
    # updated once only, at its start (update_grid=True, or more steps than the stage has):
    # update_until would add nothing
    remedy = r"updated it at its start only; an update_grid there smaller than its 20 steps"
    once = [{"grid": 5, "lbfgs": 20, "update_grid": True}, {"grid": 10, "adam": 1}]
    for schedule in ("5:lbfgs=20+update_grid=100,10:adam=1", once):
        with pytest.warns(kanpde.KanpdeWarning, match=remedy):
            kanpde.solve(problem, model={"width": [1, 4, 1]}, schedule=schedule, **kw)
    # ... and up to its last step: updates more often follow the inputs closer
    remedy = r"between the stage before's updates; a smaller update_grid there"
    with pytest.warns(kanpde.KanpdeWarning, match=remedy):
        schedule = "5:lbfgs=20+update_grid=5+update_until=20,10:adam=1"
        kanpde.solve(problem, model={"width": [1, 4, 1]}, schedule=schedule, **kw)


def test_an_unknown_outside_the_model_is_reported_as_not_trained():
    # DeepXDE style: a free-standing parameter read by pde() never reaches the optimizer.
    kappa = torch.nn.Parameter(torch.tensor(1.0, dtype=DT))
    p = Problem(
        name="inverse",
        domain=Interval(0, 1),
        pde=lambda x, u: d(u, x, "x", "x") + kappa * u,
        conditions=[Dirichlet(0.0)],
        model={"width": [1, 3, 1], "grid": 3},
    )
    torch.manual_seed(0)
    with pytest.warns(kanpde.KanpdeWarning, match=r"depends on 1 tensor\(s\) with requires_grad"):
        Residuals(p, build_model(p, None, DT), p.points, p.weights, DT, "cpu")

    class Wrapped(torch.nn.Module):  # a module of the user's own (the README's other way): fine
        def __init__(self):
            super().__init__()
            self.net, self.kappa = build_model(p, None, DT), kappa

        def forward(self, x):
            return self.net(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Residuals(p, Wrapped(), p.points, p.weights, DT, "cpu")


def test_the_unknowns_recorded_are_the_users_own_one_number_parameters():
    from kanpde.training import _unknowns

    class Inverse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = kanpde.KAN([1, 3, 1], dtype=DT)
            self.k = torch.nn.Parameter(torch.tensor(1.0, dtype=DT))
            self.head = torch.nn.Linear(3, 1)  # a layer's bias is no unknown
            self.more = torch.nn.ParameterDict({"c": torch.nn.Parameter(torch.tensor(2.0))})
            self.field = torch.nn.Parameter(torch.ones(4))  # not one number

    assert [name for name, _ in _unknowns(Inverse())] == ["k", "more.c"]
    assert _unknowns(kanpde.KAN([1, 1, 1])) == [] and _unknowns(kanpde.MLP([1, 1, 1])) == []


# -- the trainer's bookkeeping on a tiny problem (found by mutation testing) --------------------

POISSON1D = ROOT / "problems" / "poisson1d.py"
TINY = {"interior": 20, "boundary": 2, "method": "grid", "test": 11}


def _tiny(stages, log_every=1, **kw):
    """A [1, 3, 1] KAN on poisson1d with 20 points: a training run of a few milliseconds."""
    problem = kanpde.load_problem(POISSON1D)
    return _trainer(problem, stages, 3, TINY, log_every, width=[1, 3, 1], **kw)


def test_history_columns_fill_missing_entries_with_nan_and_last_is_the_latest():
    # missing entries once read 0 (a perfect error), and last() returned the first row's value
    from kanpde.training import History

    h = History()
    h.append({"step": 0, "loss": 1.0})
    h.append({"step": 5, "loss": 0.5, "rel_l2": 0.1})
    h.append({"step": 7, "loss": 0.25})
    cols = h.columns()
    assert list(cols) == ["step", "loss", "rel_l2"]
    np.testing.assert_array_equal(cols["step"], [0, 5, 7])
    assert np.isnan(cols["rel_l2"][[0, 2]]).all() and cols["rel_l2"][1] == 0.1
    assert h.last("loss") == 0.25 and h.last("rel_l2") == 0.1
    assert math.isnan(h.last("mse")) and h.last("mse", -1) == -1


def test_each_adam_stage_starts_at_its_own_rate_and_carry_moments_false_resets_them():
    # a second Adam stage kept the first stage's rate, and without carry_moments its moments
    stages = [{"grid": 3, "adam": 3, "lr": 1e-2}, {"adam": 2, "lr": 1e-3}]
    for carry, steps in ((True, 5.0), (False, 2.0)):
        t = _tiny(stages, carry_moments=carry)
        t.run()
        assert t._adam.param_groups[0]["lr"] == 1e-3
        assert {float(s["step"]) for s in t._adam.state.values()} == {steps}, carry


def test_lbfgs_calls_end_at_the_log_steps_whatever_the_stage_start():
    # calls of log_every iterations from step 7 logged 12 instead of 10
    t = _tiny([{"grid": 3, "adam": 7, "lr": 1e-2}, {"lbfgs": 6}], log_every=5)
    h = t.run().columns()
    assert h["step"].astype(int).tolist() == [0, 5, 7, 10, 13]
    assert h["stage"].astype(int).tolist() == [0, 0, 0, 1, 1]


def test_lbfgs_minimises_the_loss_relative_to_its_value_at_the_call_start(monkeypatch):
    # torch's absolute tolerances need a loss of order 1: the loss was not scaled
    starts = []

    class Spy(torch.optim.LBFGS):
        def step(self, closure):
            if not getattr(self, "started", False):  # its first call: the objective there
                self.started = True
                starts.append(float(closure().detach()))
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "LBFGS", Spy)
    t = _tiny([{"grid": 3, "lbfgs": 4}, {"grid": 6, "lbfgs": 1}], log_every=10)
    h = t.run().columns()
    assert h["loss"][0] != pytest.approx(1.0, rel=1e-3)
    # the objective at the first iterate of each optimizer (each grid) is 1
    assert starts == [pytest.approx(1.0, rel=1e-12)] * 2


def test_a_stages_sparsity_weights_the_penalty_in_its_loss_and_only_there():
    # the stage's sparsity never reached the loss (the penalty weight stayed 0)
    stages = [{"grid": 3, "adam": 2, "lr": 1e-2, "sparsity": 0.1}, {"adam": 2}]
    t = _tiny(stages)
    h = t.run().columns()
    assert h["stage"].astype(int).tolist() == [0, 0, 0, 1, 1]
    pen = h["loss_sparsity"]
    # step 0's row is of the first stage's loss: its penalty too
    assert np.isnan(pen[[3, 4]]).all() and (pen[0:3] > 0).all()
    plain = 0.01 * h["loss_pde"] + h["loss_dirichlet"]
    np.testing.assert_allclose(h["loss"], plain + 0.1 * np.nan_to_num(pen), rtol=1e-12)
    assert t.residuals.penalty_weight == 0.0


def test_each_timed_stage_gets_its_weights_share_of_the_time_left():
    # shares were once taken of all weights, or of the whole budget instead of what is left
    t = _tiny([{"grid": 3, "adam": 1}] * 3, max_seconds=10.0, time_shares=[1, 2, 1])
    t.train_time, t._decayed = 2.0, 0.5  # stage 0 ended halfway through its decay
    t._start_clock(1)  # 8 s left, 2 of the 3 remaining weights
    assert t._decayed == 0.0  # the new stage decays from its own start
    assert t._clock == (2.0, pytest.approx(2.0 + 8.0 * 2 / 3, rel=1e-12))
    t.train_time = 12.0  # overrun: nothing left for the last stage
    t._start_clock(2)
    assert t._clock == (12.0, 12.0)
    assert [e["seconds"] for e in t.history.events] == [pytest.approx(16 / 3), 0.0]


def test_logged_test_metrics_are_the_errors_of_the_prediction_against_the_exact_values():
    # checked against numpy by hand: the errors of u against the prediction (rel_l2 over the
    # prediction's norm), a signed max_err or a summed mse passed
    from kanpde.training import test_set

    problem = kanpde.load_problem(POISSON1D)
    preds = []

    def keep(trainer, row):
        with torch.no_grad():
            preds.append(trainer.model(trainer.test[0]).numpy())

    t = _tiny([{"grid": 3, "adam": 4, "lr": 0.1}], log_every=2, callback=keep)
    t.test = test_set(problem, 11, DT)
    x, u = (v.numpy() for v in t.test)
    assert x.shape == (11, 1) and np.allclose(u, np.sin(np.pi * x), rtol=0, atol=1e-15)
    h = t.run().columns()
    signs = set()
    for i, pred in enumerate(preds):
        diff = pred - u
        assert h["mse"][i] == pytest.approx(np.mean(diff**2), rel=1e-12)
        assert h["rel_l2"][i] == pytest.approx(np.linalg.norm(diff) / np.linalg.norm(u), rel=1e-12)
        assert h["max_err"][i] == pytest.approx(np.abs(diff).max(), rel=1e-12)
        signs.add(bool(diff.max() > -diff.min()))
    assert len(preds) == 3 and signs == {True, False}  # largest errors of either sign


def test_frozen_parameters_are_left_alone():
    # every parameter went to the optimizer, requires_grad=False or not
    t = _tiny([{"grid": 3, "adam": 3, "lr": 1e-2}])
    frozen = t.model.layers[0].coef
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    other = t.model.layers[1].coef.detach().clone()
    t.run()
    assert torch.equal(frozen, before) and not torch.equal(t.model.layers[1].coef, other)


def test_built_kans_span_the_domain_and_widths_must_fit_the_problem():
    # the first layer's grid range came from the KAN's default [-1, 1], not the domain; a
    # width with the wrong number of outputs was accepted
    problem = Problem(name="t", domain=Interval(0, 2), pde=lambda x, u: d(u, x, "x", "x"),
                      conditions=[Dirichlet(0.0)])  # fmt: skip
    model = build_model(problem, {"width": [1, 3, 1], "grid": 4}, DT)
    assert model.layers[0].grid_range.tolist() == [[0.0, 2.0]]
    for width in ([1, 3, 2], [2, 3, 1]):
        with pytest.raises(ValueError, match="does not fit the problem"):
            build_model(problem, {"width": width}, DT)


def test_lbfgs_calls_end_at_checkpoints_and_resamplings_which_are_adaptive_if_asked(tmp_path):
    # one call ran from step 0 to the stage end at 10, past the checkpoint at 5 and the
    # resamplings at 4 and 8; the adaptive option was dropped on the way to resample(); and
    # none is written at a stage's end (the next stage's or the run's results follow)
    problem = kanpde.load_problem(POISSON1D)
    torch.manual_seed(0)
    model = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
    pts = {"interior": 20, "boundary": 2, "method": "uniform", "resample": 4, "adaptive": True}
    res = Residuals(problem, model, pts, problem.weights, DT, "cpu")
    t = Trainer(res, parse_schedule("lbfgs=10"), progress=False, log_every=50,
                checkpoint=tmp_path / "checkpoint.h5", checkpoint_every=5)  # fmt: skip
    saved, drawn, save, resample = [], [], t.save_checkpoint, res.resample
    t.save_checkpoint = lambda: (saved.append(t.step), save())

    def watched(seed, adaptive):
        drawn.append((t.step, adaptive))
        resample(seed, adaptive)

    res.resample = watched
    h = t.run().columns()
    assert saved == [5] and drawn == [(4, True), (8, True)]
    assert h["step"].astype(int).tolist() == [0, 10]
    # the last row's counters are the run's: L-BFGS evaluates more often than it steps
    assert (h["evals"][-1], h["time"][-1]) == (t.evals, t.train_time) and t.evals > 10


def test_timed_lbfgs_calls_are_sized_to_the_time_left():
    # a call cannot be cut short: at ~1.5 evaluations per iteration, 8 s left at 1 s per
    # evaluation fit 8 iterations of the 50 to the next log (0.15 per evaluation gave 50)
    t = _tiny("lbfgs=100", log_every=50, max_seconds=10.0)
    stage = t.stages[0]
    assert t._chunk(stage) == 1  # no evaluation timed yet: one iteration measures them
    t.evals, t.train_time = 3, 2.0
    assert t._chunk(stage) == 8
    t.train_time = 9.9  # too little for one: still one
    assert t._chunk(stage) == 1


def test_lbfgs_calls_are_cut_at_grid_updates_only_until_update_until():
    # past update_until no update is due, yet calls still ended every update_grid steps
    t = _tiny([{"grid": 3, "lbfgs": 20, "update_grid": 5, "update_until": 5}], log_every=50)
    stage = t.stages[0]
    assert t._chunk(stage) == 5  # to the update at step 5
    t.i = t.step = 5
    assert t._chunk(stage) == 15  # to the stage end


def test_lbfgs_that_cannot_move_ends_its_stages_without_logging_a_step_twice():
    # u = 0 solves u'' = 0, u(±1) = 0 exactly: loss and gradient 0, no iteration possible.
    # The stop logs the step it stopped at only if no row holds it yet (twice before).
    problem = Problem(name="zero", domain=Interval(-1, 1), pde=lambda x, u: d(u, x, "x", "x"),
                      conditions=[Dirichlet(0.0)])  # fmt: skip
    torch.manual_seed(0)
    model = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    res = Residuals(problem, model, TINY, {}, DT, "cpu")
    t = Trainer(res, parse_schedule("lbfgs=5,lbfgs=5"), progress=False, log_every=1)
    h = t.run().columns()
    assert h["step"].tolist() == [0] and h["loss"].tolist() == [0.0]
    assert [(e["event"], e["step"]) for e in t.history.events] == [("lbfgs_converged", 0)] * 2


def test_the_history_records_the_users_unknowns_at_every_row():
    # the param_ columns of an inverse problem's unknowns were left out
    problem = kanpde.load_problem(POISSON1D)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
            self.k = torch.nn.Parameter(torch.tensor(1.5, dtype=DT))

        def forward(self, x):
            return self.k * self.net(x)

    torch.manual_seed(0)
    model = Scaled()
    values = []
    res = Residuals(problem, model, TINY, problem.weights, DT, "cpu")
    t = Trainer(res, parse_schedule("adam=3@0.1"), progress=False, log_every=1,
                callback=lambda trainer, row: values.append(float(model.k.detach())))  # fmt: skip
    h = t.run().columns()
    assert h["param_k"].tolist() == values and values[0] == 1.5 and len(set(values)) == 4


def test_lbfgs_stopping_between_logs_logs_the_step_it_stopped_at():
    # the stop left no row: the history ended at the last log, not at the trained state
    t = _tiny("lbfgs=300", log_every=1000)
    h = t.run().columns()
    (stop,) = [e["step"] for e in t.history.events if e["event"] == "lbfgs_converged"]
    assert 0 < stop == t.step < 300
    assert h["step"].tolist() == [0, stop]
    assert h["loss"][-1] == pytest.approx(t._evaluate()[0], rel=1e-12)


def test_a_coarsening_that_raised_the_loss_says_why_in_its_own_words():
    # it read "grid change 10 -> 5 ... (5 is no multiple of 10; a multiple keeps the knots)"
    with pytest.warns(kanpde.KanpdeWarning) as caught:
        kanpde.solve(str(ROOT / "problems" / "poisson1d.py"), schedule="10:lbfgs=40,5:adam=1",
                     points={"interior": 50, "test": 11}, progress=False, device="cpu")  # fmt: skip
    (raised,) = [str(w.message) for w in caught if "raised the loss" in str(w.message)]
    assert raised.startswith("grid change 10 -> 5 raised the loss ")
    assert "(a coarser grid can only approximate a finer spline)" in raised
