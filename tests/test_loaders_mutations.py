"""Mutation-audit additions (round 15): MLP initialisation, the published-data loaders, the
Reference grid and its cache, and the run files.

Each test pins a fact that a plausible slip got past the rest of the suite. The expected
numbers come from the mathematics (Glorot's variance, Kolmogorov-Smirnov distances, a
hand-written network, tensor-product linear interpolation by NumPy) or from small data files
written here in the published layouts, so they do not depend on the shared data folder.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat
from scipy.stats import kstest

import kanpde
from kanpde.nn import MLP
from kanpde.reference import (
    Reference,
    cache_dir,
    cache_path,
    cached,
    load_allen_cahn,
    load_burgers_shock,
    load_cavity,
)
from kanpde.results import Run, write_atomic

# ----------------------------------------------------------------------------- MLP


def test_mlp_weights_are_glorot_normal_and_biases_zero():
    # Documented: "Glorot-normal weights". Glorot's variance is 2 / (fan_in + fan_out); a
    # uniform draw of that variance (xavier_uniform_) is 0.057 away from the normal law in the
    # Kolmogorov-Smirnov distance (measured 0.059 on these 90 000 weights; the normal draw
    # 0.0021, the 99.9 % critical value is 1.95 / 300 = 0.0065). Biases start at zero.
    torch.manual_seed(0)
    model = MLP([300, 300, 1], dtype=torch.float64)
    w = model.layers[0].weight.detach().numpy().ravel()
    sigma = math.sqrt(2.0 / (300 + 300))
    assert kstest(w, "norm", args=(0.0, sigma)).statistic < 0.01
    assert abs(w.std() / sigma - 1.0) < 0.02
    last = model.layers[1].weight.detach().numpy().ravel()  # 300 draws of sd sqrt(2 / 301)
    assert abs(last.std() / math.sqrt(2.0 / 301) - 1.0) < 0.2
    for layer in model.layers:
        assert torch.count_nonzero(layer.bias) == 0


# ----------------------------------------------------------------------------- published data


def _grid_f(x, t):
    """A field odd neither in x nor in t, so that a flipped or transposed axis shows."""
    return 1.0 + x + 10.0 * t + x**2 * t


def test_allen_cahn_loader_transposes_deepxde_layout_and_takes_the_given_path(
    tmp_path, monkeypatch
):
    # DeepXDE's Allen_Cahn.mat stores x (1, nx), t (1, nt) and u[t_j, x_i]; the Reference is
    # u[x_i, t_j]. The path given is read even when the shared folder is elsewhere (here:
    # missing). An x-mirrored grid passed the data-file test (that solution is even in x).
    monkeypatch.setenv("KANPDE_SHARED_DATA", os.fspath(tmp_path / "missing"))
    x, t = np.linspace(-1.0, 1.0, 5), np.array([0.0, 0.25, 1.0])
    path = tmp_path / "ac.mat"
    savemat(path, {"x": x[None, :], "t": t[None, :], "u": _grid_f(x[None, :], t[:, None])})
    ref = load_allen_cahn(path)
    assert ref.names == ("x", "t")
    np.testing.assert_array_equal(ref.axes[0], x)
    np.testing.assert_array_equal(ref.axes[1], t)
    np.testing.assert_array_equal(ref.values["u"], _grid_f(x[:, None], t[None, :]))


def test_burgers_loader_reads_raissi_layout_from_the_given_path(tmp_path, monkeypatch):
    # Raissi's burgers_shock.mat stores x (nx, 1), t (nt, 1) and usol[x_i, t_j].
    monkeypatch.setenv("KANPDE_SHARED_DATA", os.fspath(tmp_path / "missing"))
    x, t = np.linspace(-1.0, 1.0, 6), np.array([0.0, 0.3, 0.7, 0.99])
    path = tmp_path / "b.mat"
    savemat(path, {"x": x[:, None], "t": t[:, None], "usol": _grid_f(x[:, None], t[None, :])})
    ref = load_burgers_shock(path)
    np.testing.assert_array_equal(ref.axes[0], x)
    np.testing.assert_array_equal(ref.axes[1], t)
    np.testing.assert_array_equal(ref.values["u"], _grid_f(x[:, None], t[None, :]))


CAVITY_X = np.array([0.0, 0.1, 0.35, 1.0])  # 4 nodes in x, 3 in y: not a square grid
CAVITY_Y = np.array([0.0, 0.5, 1.0])


def _cavity_fields(x, y):
    return 1.0 + x + 2.0 * y, x * y, x - 3.0 * y


def _write_cavity(path, rows):
    header = "% Model: test\n% x y u @ Re=100 v @ Re=100 p @ Re=100\n"
    body = "".join(" ".join(f"{v:.17g}" for v in r) + "\n" for r in rows)
    path.write_text(header + body)


def _cavity_rows(seed=0):
    """The 12 nodes in a scrambled order, coordinates with 1e-15 jitter (as in the file)."""
    rng = np.random.default_rng(seed)
    xx, yy = (a.ravel() for a in np.meshgrid(CAVITY_X, CAVITY_Y, indexing="ij"))
    u, v, p = _cavity_fields(xx, yy)
    jitter = rng.choice([-1e-15, 0.0, 1e-15], size=(len(xx), 2))
    rows = np.column_stack([xx + jitter[:, 0], yy + jitter[:, 1], u, v, p])
    return rows[rng.permutation(len(rows))]


def test_cavity_loader_places_scrambled_nodes_of_a_non_square_grid(tmp_path):
    # The x and y coordinates are matched against their own axes: on the published 101 x 101
    # file (the same graded grid in x and y) y matched against the x axis went unnoticed.
    path = tmp_path / "cavity.dat"
    _write_cavity(path, _cavity_rows())
    ref = load_cavity(path)
    assert ref.names == ("x", "y") and ref.shape == (4, 3)
    np.testing.assert_allclose(ref.axes[0], CAVITY_X, rtol=0, atol=2e-15)
    np.testing.assert_allclose(ref.axes[1], CAVITY_Y, rtol=0, atol=2e-15)
    xx, yy = np.meshgrid(CAVITY_X, CAVITY_Y, indexing="ij")
    for name, expected in zip("uvp", _cavity_fields(xx, yy), strict=True):
        np.testing.assert_array_equal(ref.values[name], expected)


def test_cavity_loader_refuses_a_grid_with_a_repeated_node(tmp_path):
    # Documented: "each node must occur exactly once". One node listed twice and another
    # missing keeps the row count and every coordinate value: only the node check sees it
    # (without it the missing node kept np.empty's garbage).
    rows = _cavity_rows()
    rows[1, :2] = rows[0, :2]
    path = tmp_path / "cavity.dat"
    _write_cavity(path, rows)
    with pytest.raises(ValueError, match="not a complete tensor grid"):
        load_cavity(path)


# ----------------------------------------------------------------------------- Reference


def test_reference_refuses_an_empty_axis_and_no_outputs():
    x = np.linspace(0.0, 1.0, 3)
    with pytest.raises(ValueError, match="non-empty"):
        Reference(("x", "t"), (x, np.array([])), {"u": np.zeros((3, 0))})
    with pytest.raises(ValueError, match="at least one output"):
        Reference(("x",), (x,), {})


def test_interpolate_is_linear_when_an_axis_has_fewer_than_four_points():
    # Documented default: cubic only "when every axis has at least 4 points". On a 3 x 6 grid
    # it is linear; for f = g(x) + h(y) tensor-product linear interpolation is the sum of the
    # 1-D interpolants (the bilinear weights sum to one), i.e. np.interp on each axis.
    # (Cubic on the 3-point axis is refused by SciPy.)
    x, y = np.array([0.0, 0.5, 1.0]), np.linspace(0.0, 1.0, 6)
    xx, yy = np.meshgrid(x, y, indexing="ij")
    ref = Reference(("x", "y"), (x, y), {"f": xx**2 + yy**3})
    q = np.random.default_rng(5).uniform(0.0, 1.0, (40, 2))
    expected = np.interp(q[:, 0], x, x**2) + np.interp(q[:, 1], y, y**3)
    np.testing.assert_allclose(ref.interpolate(q)[:, 0], expected, rtol=0, atol=1e-14)


def test_one_output_may_be_named_by_a_plain_string():
    # A name of several letters given as a string is one output, not a sequence of letters.
    x = np.linspace(0.0, 1.0, 5)
    ref = Reference(("x",), (x,), {"u_x": 2.0 * x, "v": x**2})
    np.testing.assert_array_equal(ref.flat("u_x")[:, 0], 2.0 * x)
    q = np.array([0.1, 0.55, 0.9])
    np.testing.assert_allclose(ref.interpolate(q, "u_x")[:, 0], 2.0 * q, rtol=0, atol=1e-14)


def _powers(n, calls):
    x = np.linspace(0.0, 1.0, 4)

    def compute():
        calls.append(n)
        return Reference(("x",), (x,), {"u": x**n})

    return compute


def test_a_cache_file_of_other_parameters_is_recomputed_not_served(monkeypatch, tmp_path):
    # Documented: "An unreadable or mismatching file is recomputed with a warning." An entry of
    # n = 1 found under the name of n = 2 (or of another solver version) must not be returned
    # as x^2: the file's header (name, params, solver version) is checked against the call.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    calls = []
    cached("pow", _powers(1, calls), n=1)
    for version, n in (("", 2), ("v2", 1)):
        shutil.copy(cache_path("pow", n=1), cache_path("pow", version, n=n))
        with pytest.warns(RuntimeWarning, match="unreadable cache file"):
            ref = cached("pow", _powers(n, calls), solver_version=version, n=n)
        np.testing.assert_array_equal(ref.values["u"], np.linspace(0.0, 1.0, 4) ** n)
    assert calls == [1, 2, 1]


def test_a_cache_hit_keeps_the_outputs_in_their_order(monkeypatch, tmp_path):
    # Documented: "a hit and a miss return equal objects". Outputs not in alphabetical order
    # ("v" before "u") must come back in that order with their own values.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    x = np.linspace(0.0, 1.0, 5)
    make = lambda: Reference(("x",), (x,), {"v": 2.0 * x, "u": x**2})
    for _ in range(2):  # a miss, then a hit
        ref = cached("order", make, n=1)
        assert list(ref.values) == ["v", "u"]
        np.testing.assert_array_equal(ref.values["v"], 2.0 * x)
        np.testing.assert_array_equal(ref.values["u"], x**2)


def test_a_cache_name_with_path_characters_stays_in_the_cache_directory(monkeypatch, tmp_path):
    # The name is the file-name stem: "../" or "/" in it must not place the file elsewhere.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path / "cache"))
    name = "../escape/toy model"
    path = cache_path(name, n=1)
    assert path.parent == cache_dir() == tmp_path / "cache"
    assert path.suffix == ".h5" and "/" not in path.name
    x = np.linspace(0.0, 1.0, 3)
    cached(name, lambda: Reference(("x",), (x,), {"u": x}), n=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert path.is_file()


# ----------------------------------------------------------------------------- results


def test_writing_a_file_leaves_the_process_umask_as_it_was(tmp_path):
    # write_atomic reads the umask (os.umask can only be read by setting it): it must put it
    # back, or every file the process creates afterwards is world-writable (umask 0).
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.h5", lambda tmp: Path(tmp).write_bytes(b"x"))
        now = os.umask(0o027)
    finally:
        os.umask(previous)
    assert now == 0o027
    assert (tmp_path / "a.h5").stat().st_mode & 0o777 == 0o640


def test_predict_of_a_run_with_two_outputs_is_the_network_written_out():
    # A run holding an MLP [2, 5, 2]: predict is W2 tanh(W1 x + b1) + b2 (NumPy), and no
    # points give (0, 2), one point (2,), as for any other number of points.
    torch.manual_seed(3)
    net = MLP([2, 5, 2], dtype=torch.float64)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.uniform_(-0.5, 0.5)  # non-zero biases: each one must be added
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    run = Run({"model": net.config(), "dtype": "float64"}, {}, {}, {},
              {"names": ["x", "y"], "outputs": ["u", "v"]}, [], state)  # fmt: skip
    x = np.random.default_rng(2).uniform(-1.0, 1.0, (7, 2))
    w1, b1, w2, b2 = (state[k] for k in ("layers.0.weight", "layers.0.bias",
                                         "layers.1.weight", "layers.1.bias"))  # fmt: skip
    expected = np.tanh(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(run.predict(x), expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(run.predict(x[4]), expected[4], rtol=1e-13, atol=1e-14)
    assert run.predict(x[:0]).shape == (0, 2)


def test_a_run_on_a_time_only_domain_records_time_as_column_zero():
    # Time(0, 1) alone: time is column 0 of x, which the file records as time_axis 0, not as
    # -1 (steady). u' = -u, u(0) = 1: the test reference is exp(-t).
    problem = kanpde.Problem(
        name="decay", domain=kanpde.Time(0, 1), pde=lambda x, u: kanpde.d(u, x, "t") + u,
        conditions=[kanpde.Initial(1.0)], exact=lambda x: torch.exp(-x),
        points={"interior": 10, "initial": 1, "test": 5},
    )  # fmt: skip
    run = kanpde.solve(problem, schedule="adam=1", progress=False, device="cpu")
    assert run.attrs["time_axis"] == 0 and run.names == ("t",)
    np.testing.assert_allclose(run.solution["ref"], np.exp(-run.solution["x"]), rtol=1e-15)


def test_a_run_against_a_reference_solution_records_it_as_such():
    # reference= (a grid solution, no closed form): the file says "reference", not "exact",
    # and the test values are the grid's, u = (1 - x^2) / 2 (which solves u'' + 1 = 0 with
    # u(+-1) = 0) at the test points.
    x = np.linspace(-1.0, 1.0, 9)
    grid = Reference(("x",), (x,), {"u": (1.0 - x**2) / 2.0})
    problem = kanpde.Problem(
        name="parabola", domain=kanpde.Interval(-1, 1),
        pde=lambda x, u: kanpde.laplacian(u, x) + 1.0, conditions=[kanpde.Dirichlet(0.0)],
        reference=grid, points={"interior": 10, "boundary": 2, "test": 7},
    )  # fmt: skip
    run = kanpde.solve(problem, schedule="adam=1", progress=False, device="cpu")
    assert run.attrs["reference"] == "reference"
    xs = run.solution["x"]
    np.testing.assert_allclose(run.solution["ref"], (1.0 - xs**2) / 2.0, rtol=0, atol=1e-14)
