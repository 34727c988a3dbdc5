"""Mutation round for results files, checkpoints and process signals.

Each test here failed under a plausible mutation of ``kanpde/results.py``,
``kanpde/checkpoint.py`` or ``kanpde/signals.py`` that the rest of the suite let pass; the
comments name the mutations each one catches. Runs are built by hand around a small MLP whose
values have a closed form (``tanh`` hidden layer, linear output), so nothing here trains.
"""

from __future__ import annotations

import json
import math
import re
import signal

import h5py
import numpy as np
import pytest
import torch
from bitwise import same

from kanpde import signals
from kanpde.checkpoint import load_checkpoint, save_checkpoint
from kanpde.nn import MLP
from kanpde.results import ResultsError, Run, load, load_progress, save_run


def _mlp_run(outputs=("u", "v"), **config):
    """A run of a [2, 3, len(outputs)] tanh MLP on axes (x, y), and its state as arrays."""
    torch.manual_seed(0)
    net = MLP([2, 3, len(outputs)], activation="tanh", dtype=torch.float64)
    with torch.no_grad():  # biases away from their zero start, so that they count
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    cfg = {"model": net.config(), "dtype": "float64", **config}
    attrs = {"names": ["x", "y"], "outputs": list(outputs)}
    return Run(config=cfg, history={}, solution={}, metrics={}, attrs=attrs, state=state), state


def _mlp_formula(state, x):
    """tanh(x W0ᵀ + b0) W1ᵀ + b1, in NumPy."""
    hidden = np.tanh(x @ state["layers.0.weight"].T + state["layers.0.bias"])
    return hidden @ state["layers.1.weight"].T + state["layers.1.bias"]


# ------------------------------------------------------------------------------- Run


def test_predict_of_a_two_output_run_is_the_networks_formula_in_every_shape():
    # catches: an empty x answered as (0, 1) whatever the number of outputs
    run, state = _mlp_run()
    x = np.random.default_rng(1).uniform(-1, 1, (10, 2))
    expected = _mlp_formula(state, x)
    np.testing.assert_allclose(run.predict(x), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.predict(x, batch=3), expected, rtol=0, atol=1e-14)
    one = run.predict(x[4])
    assert one.shape == (2,)
    np.testing.assert_allclose(one, expected[4], rtol=0, atol=1e-14)
    empty = run.predict(x[:0])
    assert empty.shape == (0, 2) and empty.dtype == np.float64


def test_a_config_without_a_dtype_rebuilds_the_model_in_float64():
    # catches: the default dtype of model() taken as float32 (values then off by ~1e-8)
    run, state = _mlp_run()
    del run.config["dtype"]
    net = run.model()
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    x = np.array([[0.3, -0.7], [1.0 / 3.0, 0.125]])
    values = run.predict(x)
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, _mlp_formula(state, x), rtol=0, atol=1e-15)


def test_a_model_config_with_an_unknown_argument_is_a_one_line_results_error():
    # catches: the TypeError of an unexpected keyword let through as a traceback
    run, _ = _mlp_run()
    run.config["model"] = {**run.config["model"], "depth": 4}
    with pytest.raises(ResultsError, match=r"^the run: corrupt model config \(") as e:
        run.model()
    assert "\n" not in str(e.value) and "depth" in str(e.value)


def test_outputs_default_to_u_names_to_none_and_unknowns_drop_their_prefix():
    # catches: no default output name, "param_" kept in (or cut short of) the unknowns' names
    bare = Run(config={}, history={}, solution={}, metrics={})
    assert bare.outputs == ("u",) and bare.names == ()
    bare.metrics = {"param_k": 2.0, "param_h_0": -1.5, "mse": 0.1, "rel_l2_param": 3.0}
    assert bare.unknowns == {"k": 2.0, "h_0": -1.5}


def test_state_dict_puts_the_tensors_on_the_device_asked_for():
    # catches: the device argument ignored (a GPU user's load_state_dict then copies twice);
    # "meta" stands in for a GPU on a machine without one
    run, state = _mlp_run()
    on_cpu = run.state_dict()
    assert list(on_cpu) == list(state)
    for k, v in on_cpu.items():
        assert v.device.type == "cpu" and np.array_equal(v.numpy(), state[k])
    meta = run.state_dict("meta")
    assert {v.device.type for v in meta.values()} == {"meta"}
    assert {k: tuple(v.shape) for k, v in meta.items()} == {k: v.shape for k, v in state.items()}


# ------------------------------------------------------------------------ result.h5


def test_save_run_names_the_file_it_wrote_and_records_it_on_the_run(tmp_path):
    # catches: run.path left as it was (None, or the previous file)
    run, _ = _mlp_run()
    assert run.path is None
    first = save_run(run, tmp_path / "d")
    assert first == tmp_path / "d" / "result.h5" and run.path == first and first.is_file()
    second = save_run(run, tmp_path / "copy.h5")
    assert second == tmp_path / "copy.h5" and run.path == second
    assert load(second).path == second


def test_attributes_come_back_with_their_types_and_without_the_files_own_keys(tmp_path):
    # catches: dict attributes written as Python text, floats written as text, "format" (or
    # config, metrics, events) handed back among the attributes, arrays in metrics as text
    run, _ = _mlp_run()
    run.attrs.update({"meta": {"a": 1, "b": [1, 2]}, "scale": 0.1, "count": 3, "flag": False,
                      "label": "abc", "empty": ""})  # fmt: skip
    run.metrics = {"curve": np.array([0.5, 0.25]), "grid": np.arange(3), "mse": np.float64(0.1),
                   "steps": np.int64(40), "lr": np.float32(0.5)}  # fmt: skip
    run.events = [{"event": "resample", "step": 7}]
    back = load(save_run(run, tmp_path / "r.h5"))
    assert set(back.attrs) == set(run.attrs)
    assert back.attrs["meta"] == {"a": 1, "b": [1, 2]}
    assert type(back.attrs["scale"]) is float and back.attrs["scale"] == 0.1
    assert type(back.attrs["count"]) is int and back.attrs["count"] == 3
    assert back.attrs["flag"] is False
    assert back.attrs["label"] == "abc" and back.attrs["empty"] == ""
    assert back.names == ("x", "y") and back.outputs == ("u", "v")
    assert back.metrics == {"curve": [0.5, 0.25], "grid": [0, 1, 2], "mse": 0.1, "steps": 40,
                            "lr": 0.5}  # fmt: skip
    assert type(back.metrics["steps"]) is int
    assert back.events == [{"event": "resample", "step": 7}]
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["format"] == "kanpde-result"


def test_a_file_without_events_loads_with_none(tmp_path):
    # files are read back without their "events" attribute (older writers): no error
    # catches: the attribute required
    run, _ = _mlp_run()
    path = save_run(run, tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        del f.attrs["events"]
    assert load(path).events == []


def test_a_problem_file_given_as_results_is_named_as_such(tmp_path):
    # catches: a .py path reported as "results file not found" or "not an HDF5 file"
    for path in (tmp_path / "heat.py", tmp_path / "poisson.py"):
        with pytest.raises(ResultsError) as e:
            load(path)
        assert str(e.value) == (
            f"{path}: a problem file, not results; give a run directory or its result.h5 "
            f"(kanpde solve {path} writes one)"
        )
        path.write_text("problem = None\n")


def test_a_directory_of_a_study_or_a_sweep_is_named_as_such(tmp_path):
    # catches: either check dropped (then "results file not found"), or the sweep's message
    # without the path of its grid-extension run
    study, grids = tmp_path / "study", tmp_path / "grids"
    for d, name in ((study, "comparison.h5"), (grids, "extension.h5")):
        d.mkdir()
        (d / name).write_bytes(b"")
    with pytest.raises(ResultsError) as e:
        load(study)
    assert str(e.value) == (
        f"{study}: a comparison study, not a run; load a study with "
        "kanpde.compare.Comparison.load(path)"
    )
    with pytest.raises(ResultsError) as e:
        load(grids)
    assert str(e.value) == (
        f"{grids}: a grid sweep, not a run; its grid-extension run is "
        f"{grids / 'extension.h5'} (sweep.csv holds the table)"
    )
    # a directory that holds a run as well is the run's
    run, _ = _mlp_run()
    for d in (study, grids):
        save_run(run, d)
        assert load(d).path == d / "result.h5"


# ----------------------------------------------------------------------- load_progress


def _progress_checkpoint(path, **extra):
    config = {"problem": "inverse", "unknowns": {"k": 0.5}, "model": {"type": "custom"},
              "parameters": 7}  # fmt: skip
    logged = {"rows": [{"step": 0, "loss": 1.0}, {"step": 5, "loss": 0.5, "mse": 0.25}],
              "events": [{"event": "resample", "step": 3}]}  # fmt: skip
    state = {"config": json.dumps(config), "history": json.dumps(logged),
             "position": {"step": 6},
             "model_state": {"unknowns.k": torch.tensor(1.25, dtype=torch.float64),
                             "net.layers.0.weight": torch.ones(2, 1, dtype=torch.float64)},
             **extra}  # fmt: skip
    return save_checkpoint(path, state)


def test_progress_reads_the_checkpoints_numbers_and_strips_the_unknowns_wrapper(tmp_path):
    # catches: the unknowns' names kept with (part of) "unknowns.", the network's keys kept
    # with "net.", a missing training clock read as 0 s rather than unknown
    _progress_checkpoint(tmp_path / "checkpoint.h5")
    run = load_progress(tmp_path)
    assert run.path == tmp_path / "checkpoint.h5"
    assert run.attrs == {"problem": "inverse", "in_progress": True}
    assert run.metrics["steps"] == 6 and run.metrics["parameters"] == 7
    assert math.isnan(run.metrics["train_time"])
    assert run.unknowns == {"k": 1.25}
    assert list(run.state) == ["layers.0.weight"]
    assert run.events == [{"event": "resample", "step": 3}]
    assert run.history["step"].tolist() == [0.0, 5.0]
    np.testing.assert_array_equal(run.history["mse"], [np.nan, 0.25])
    _progress_checkpoint(tmp_path / "checkpoint.h5", counters={"train_time": 2.5})
    assert load_progress(tmp_path / "checkpoint.h5").metrics["train_time"] == 2.5


# ------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_gives_back_every_type_it_was_given(tmp_path):
    # catches: tuples read back as lists, keys such as "1" turned into integers, arrays'
    # integer or float32 dtypes widened to float64, a tensor that needs grad refused
    state = {
        "tuple": (1, 2.5, "a", None, True, -0.0),
        "nested": [[], {}, (), [(1,)]],
        "keys": {1: "int key", "1": "str key", "x": math.pi},
        "t0": torch.tensor(3.5, dtype=torch.float32),
        "ti": torch.arange(4, dtype=torch.int32).reshape(2, 2),
        "tb": torch.tensor([True, False]),
        "th": torch.tensor([0.1, -2.0], dtype=torch.float16),
        "nc": torch.arange(12.0, dtype=torch.float64).reshape(3, 4).t(),
        "ai": np.arange(5, dtype=np.int32),
        "af": np.array([1 / 3, 1e-30], dtype=np.float32),
        "s": "text",
        "n": None,
    }
    back = load_checkpoint(save_checkpoint(tmp_path / "c.h5", state))
    assert sorted(back) == sorted(state)
    for key in state:
        same(back[key], state[key], key)
    assert back["keys"][1] == "int key" and back["keys"]["1"] == "str key"
    w = torch.nn.Parameter(torch.linspace(0, 1, 5, dtype=torch.float64))
    (w**2).sum().backward()  # a leaf with a gradient, as a model's own parameter is
    saved = load_checkpoint(save_checkpoint(tmp_path / "w.h5", {"w": w}))["w"]
    assert type(saved) is torch.Tensor and not saved.requires_grad
    same(saved, w.detach().clone())


def test_an_object_a_checkpoint_cannot_hold_is_a_type_error_naming_its_type(tmp_path):
    with pytest.raises(TypeError, match="^cannot store set in a checkpoint$"):
        save_checkpoint(tmp_path / "c.h5", {"position": {"seen": {1, 2}}})
    assert not (tmp_path / "c.h5").exists()


def test_a_bad_checkpoint_is_one_line_saying_what_is_wrong(tmp_path):
    # catches: the format check dropped, a KeyError of a damaged file let through, a missing
    # run directory reported as a missing checkpoint
    d = tmp_path / "run"
    with pytest.raises(ResultsError, match=f"^{d}: no such run directory$"):
        load_checkpoint(d / "checkpoint.h5")
    d.mkdir()
    with pytest.raises(ResultsError, match=r"checkpoint.h5: no checkpoint to resume from$"):
        load_checkpoint(d)
    (d / "result.h5").write_bytes(b"")
    with pytest.raises(ResultsError, match=r"checkpoint.h5: the run has finished \(result.h5\)$"):
        load_checkpoint(d)
    ck = d / "checkpoint.h5"
    with h5py.File(ck, "w") as f:  # a kanpde-looking file of another kind
        ds = f.create_dataset("position", data=h5py.Empty("f"))
        ds.attrs["kind"], ds.attrs["value"] = "scalar", "3"
    with pytest.raises(ResultsError) as e:
        load_checkpoint(d)
    assert str(e.value) == f"{ck}: not a kanpde checkpoint"
    with h5py.File(ck, "a") as f:
        f.attrs["format"] = "kanpde-checkpoint"
    assert load_checkpoint(d) == {"position": 3}
    with h5py.File(ck, "a") as f:
        del f["position"].attrs["kind"]  # damaged by hand
    with pytest.raises(ResultsError) as e:
        load_checkpoint(d)
    assert str(e.value).startswith(f"{ck}: unreadable or corrupt checkpoint (")
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- signals


def test_exit_status_is_128_plus_the_signal_a_stop_stands_for():
    # catches: every stop reported as Ctrl-C's 130, or a plain KeyboardInterrupt as SIGTERM's
    assert signals.exit_status(signals.interrupt(signal.SIGTERM)) == 128 + 15 == 143
    assert signals.exit_status(signals.interrupt(signal.SIGHUP)) == 128 + 1 == 129
    assert signals.exit_status(KeyboardInterrupt()) == 128 + 2 == 130
    assert signals.signal_of(KeyboardInterrupt()) == signal.SIGINT
    assert signals.signal_of(signals.interrupt()) == signal.SIGINT
    with pytest.raises(KeyboardInterrupt) as e:
        signals.stop_now(signal.SIGHUP, None)
    assert signals.exit_status(e.value) == 129


def test_which_handlers_are_the_stops_kanpde_acts_on():
    # catches: kanpde's own SIGTERM/SIGHUP handler (stop_now) not counted as its stop, and
    # Ctrl-C's default handler confused with SIG_DFL
    def mine(s, f):
        return None

    stops = signals.kanpde_stops
    assert stops(signal.SIGINT, signal.default_int_handler)
    for handler in (signal.SIG_DFL, signal.SIG_IGN, signals.stop_now, mine):
        assert not stops(signal.SIGINT, handler), handler
    for sig in (signal.SIGTERM, signal.SIGHUP):
        assert stops(sig, signal.SIG_DFL) and stops(sig, signals.stop_now)
        for handler in (signal.SIG_IGN, signal.default_int_handler, mine):
            assert not stops(sig, handler), (sig, handler)


def test_terminate_as_interrupt_leaves_ctrl_c_alone_even_at_its_kernel_default(handlers_back):
    # catches: SIGINT included among the signals made a KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with signals.terminate_as_interrupt():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signals.stop_now
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_failed_block_drops_kanpdes_stops_and_delivers_the_users(handlers_back):
    # catches: a held stop raised over the block's own error (drop only with deliver=False),
    # stop_now not counted as kanpde's stop
    seen = []
    signal.signal(signal.SIGTERM, signals.stop_now)
    signal.signal(signal.SIGHUP, lambda s, f: seen.append(s))
    # (a KeyboardInterrupt is caught here too: let through, it would end the test session)
    with pytest.raises((OSError, KeyboardInterrupt)) as e:
        with signals.signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGHUP)
            raise OSError("disk full")
    assert type(e.value) is OSError and str(e.value) == "disk full"
    assert seen == [signal.SIGHUP]
    try:
        with signals.signals_held(deliver=False):  # a stopping caller: its own stop dropped
            signal.raise_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        pytest.fail("a stop held with deliver=False was raised after the block")
    with pytest.raises(KeyboardInterrupt) as e:  # delivered otherwise, as SIGTERM
        with signals.signals_held():
            signal.raise_signal(signal.SIGTERM)
    assert signals.exit_status(e.value) == 143
    assert signal.getsignal(signal.SIGTERM) is signals.stop_now


def test_held_signals_reach_the_users_handlers_in_the_order_they_came(handlers_back):
    # catches: pending signals delivered sorted by number (SIGHUP=1 before SIGTERM=15)
    seen = []

    def note(s, f):
        seen.append(s)

    signal.signal(signal.SIGTERM, note)
    signal.signal(signal.SIGHUP, note)
    with signals.signals_held():
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGTERM)
        assert seen == []
    assert seen == [signal.SIGTERM, signal.SIGHUP]
    assert signal.getsignal(signal.SIGTERM) is note and signal.getsignal(signal.SIGHUP) is note


def test_tuples_and_numpy_scalars_in_attributes_come_back_as_values(tmp_path):
    # a tuple and NumPy scalars were saved as their text: names ('x', 'y') came back as the
    # characters of "('x', 'y')", time_axis np.int64(1) as the string '1'
    run = Run(config={}, history={}, solution={}, metrics={},
              attrs={"names": ("x", "y"), "time_axis": np.int64(1), "scale": np.float32(0.5),
                     "flag": np.bool_(True)})  # fmt: skip
    back = load(save_run(run, tmp_path))
    assert back.names == ("x", "y")
    assert type(back.attrs["time_axis"]) is int and back.attrs["time_axis"] == 1
    assert type(back.attrs["scale"]) is float and back.attrs["scale"] == 0.5
    assert back.attrs["flag"] is True


@pytest.mark.parametrize("key", [True, 1.5, None, (1, 2)])
def test_a_dict_key_other_than_int_or_str_is_refused_by_a_checkpoint(tmp_path, key):
    # came back as the string 'True', '1.5', ... ({1: a, True: b} would have collided)
    with pytest.raises(
        TypeError, match=re.escape(f"cannot store a dict key {key!r} in a checkpoint")
    ):
        save_checkpoint(tmp_path / "c.h5", {"state": {key: 1.0}})
