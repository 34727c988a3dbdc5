"""Schedules and checkpoints against their documented grammar and exact round trips
(mutation audit).

Most tests pin a behaviour of ``kanpde/schedule.py``, ``kanpde/checkpoint.py`` or of the
trainer's reading of a stage (``kanpde/training.py``) that a plausible one-line change left the
rest of the suite passing; the others pin the documented failure modes of checkpoint files. The
expected values come from the module docstrings (the schedule grammar, "default: half the
stage", Adam's exponential decay over the stage) or from exactness (a checkpoint gives back
every bit, dtype, shape, type and order it was given; a resumed run ends where the uninterrupted
one does), never from the code's own output.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from bitwise import same
from torch.optim.optimizer import register_optimizer_step_pre_hook

import kanpde
from kanpde import checkpoint as ckpt
from kanpde.checkpoint import load_checkpoint, save_checkpoint
from kanpde.losses import Residuals
from kanpde.results import ResultsError
from kanpde.schedule import ScheduleError, Stage, parse_schedule
from kanpde.training import Trainer, build_model

# ------------------------------------------------------------------------------- schedules


def test_default_update_until_is_the_last_step_in_the_first_half_of_the_stage():
    """``update_until`` defaults to half the stage: the largest whole step u with
    u <= steps / 2, i.e. 2u <= steps < 2u + 2 (catches: rounding an odd stage's half up, which
    updates the grid once past the half)."""
    for steps in range(0, 24):
        (s,) = parse_schedule([{"adam": steps, "update_grid": 1}])
        u = s.update_until
        assert 2 * u <= steps < 2 * u + 2, (steps, u)
        assert Stage("lbfgs", steps).update_until == u


def test_a_tuple_of_stages_parses_as_the_list_of_them():
    """``parse_schedule`` takes any sequence of stages (``Sequence[Stage | dict]``): a tuple
    reads as the same list (catches: only ``list`` accepted)."""
    stages = ({"grid": 5, "adam": 100, "lr": 1e-2}, Stage("lbfgs", 20, grid=10))
    assert parse_schedule(stages) == parse_schedule(list(stages))
    assert [(s.optimizer, s.steps, s.grid, s.lr) for s in parse_schedule(stages)] == [
        ("adam", 100, 5, 1e-2),
        ("lbfgs", 20, 10, 1.0),
    ]


@pytest.mark.parametrize("text", ["adam=10, ", " ,adam=10", "adam=10,  ,lbfgs=5", "   "])
def test_a_blank_stage_of_the_string_form_is_an_empty_stage(text):
    """Stages are separated by commas; one of only blanks is an empty stage and is said to be
    (catches: blanks kept, which reported "' ' must read optimizer=steps")."""
    with pytest.raises(ScheduleError, match="empty stage"):
        parse_schedule(text)


def test_a_colon_with_no_grid_before_it_is_refused():
    """The grid size before a colon is optional only together with its colon: ``":adam=5"``
    names an empty grid size, not a stage on the current grid (catches: an empty grid size
    read as none)."""
    with pytest.raises(ScheduleError, match="grid size '' in ':adam=5' is not an integer"):
        parse_schedule(":adam=5")
    with pytest.raises(ScheduleError, match="grid size '' in 'adam=5, :lbfgs=2'"):
        parse_schedule("adam=5, :lbfgs=2")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1e-3", True], ids=repr)
def test_sparsity_must_be_a_finite_number(value):
    """A stage's sparsity is a finite non-negative weight; NaN (which passes ``< 0``), inf, a
    string, a bool or None are refused naming the sparsity (catches: only the sign checked,
    which let NaN into the loss and raised TypeError for a string)."""
    with pytest.raises(ScheduleError, match="sparsity must be a finite number"):
        parse_schedule([{"adam": 10, "sparsity": value}])


@pytest.mark.parametrize("value", [2.5, "3", float("nan"), True])
def test_update_until_must_be_an_integer(value):
    """``update_until`` is a step number: a fraction, a string, NaN or a bool is refused
    naming it (catches: ``int()`` truncating 2.5 to 2 without a word)."""
    with pytest.raises(ScheduleError, match="update_until must be an integer"):
        parse_schedule([{"adam": 10, "update_grid": 2, "update_until": value}])


def test_update_grid_false_means_never_and_true_once_at_the_start():
    """``update_grid`` > 0 adapts the grids at the stage start and then every that many steps;
    ``True`` means once at the start (every steps + 1 steps, which never comes round) and
    ``False`` never, as 0 does (catches: False read as 1, a grid update at every step)."""
    for steps in (0, 1, 7):
        (never,) = parse_schedule([{"adam": steps, "update_grid": False}])
        (once,) = parse_schedule([{"adam": steps, "update_grid": True}])
        assert never.update_grid == 0 and type(never.update_grid) is int
        assert once.update_grid == steps + 1 > steps


@pytest.mark.parametrize("off", [0, False])
def test_update_until_with_the_grid_update_turned_off_is_refused(off):
    """``update_until`` bounds the grid updates of ``update_grid``; with ``update_grid`` 0 or
    False there are none, so the option would be ignored without a word (catches: only an
    absent ``update_grid`` key refused)."""
    with pytest.raises(ScheduleError, match="update_until goes with update_grid"):
        parse_schedule([{"adam": 10, "update_grid": off, "update_until": 5}])


# ------------------------------------------------- how the trainer reads a schedule's stages

ROOT = Path(__file__).resolve().parents[1]
TINY = {"interior": 20, "boundary": 2, "method": "grid", "test": 11}


def _tiny_trainer(schedule, grid, **kw):
    """A [1, 3, 1] KAN of the given grid on poisson1d with 20 points (milliseconds a step)."""
    problem = kanpde.load_problem(ROOT / "problems" / "poisson1d.py")
    torch.manual_seed(0)
    model = build_model(problem, {"grid": grid, "width": [1, 3, 1]}, torch.float64)
    res = Residuals(problem, model, TINY, problem.weights, torch.float64, "cpu")
    return Trainer(res, parse_schedule(schedule), log_every=kw.pop("log_every", 2), **kw), model


def test_a_stage_with_a_coarser_grid_trains_on_that_grid():
    """A stage's ``grid`` is the grid it trains on, finer or coarser than the one before
    ("a change triggers grid extension at the stage start"); a coarser one is warned about
    but still applied (catches: only refinements applied, a G = 3 stage silently left at
    G = 6)."""
    t, model = _tiny_trainer([{"adam": 2, "lr": 1e-2}, {"grid": 3, "adam": 2}], grid=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the coarser fit may raise the loss: warned of
        t.run()
    assert model.grid == 3
    ext = [e for e in t.history.events if e["event"] == "extend_grid"]
    assert [(e["step"], e["grid"]) for e in ext] == [(2, 3)]


def test_adam_decays_geometrically_from_the_stages_rate_and_lbfgs_keeps_its_own():
    """A dict naming both optimizers runs Adam then L-BFGS; its lr and decay are Adam's: step
    k of N Adam steps takes lr * decay**(k / N) (the first the stage's rate, the rate after the
    last lr * decay), and the L-BFGS steps take step length 1 and the default memory of 100
    (catches: the decay applied before each step, lr or decay reaching L-BFGS)."""
    seen = []

    def hook(opt, args, kwargs):
        g = opt.param_groups[0]
        seen.append((type(opt).__name__, g["lr"], g.get("history_size")))

    schedule = [{"grid": 3, "adam": 8, "lbfgs": 2, "lr": 0.02, "decay": 0.25}, {"adam": 3}]
    t, _ = _tiny_trainer(schedule, grid=3, progress=False)
    handle = register_optimizer_step_pre_hook(hook)
    try:
        t.run()
    finally:
        handle.remove()
    adam = [lr for name, lr, _ in seen if name == "Adam"]
    lbfgs = [(lr, h) for name, lr, h in seen if name == "LBFGS"]
    expected = [0.02 * 0.25 ** (k / 8) for k in range(8)] + [1e-3] * 3  # then Adam's default
    assert adam == pytest.approx(expected, rel=1e-12, abs=0)
    assert lbfgs and set(lbfgs) == {(1.0, 100)}
    assert [name for name, *_ in seen][:8] == ["Adam"] * 8


def test_a_run_resumed_mid_stage_keeps_the_stages_sparsity(tmp_path):
    """Resuming inside a stage continues it as it was, its sparsity penalty included: the
    resumed run ends on the uninterrupted run's parameters, bit for bit (catches: the
    penalty weight set only when a stage begins, so the resumed steps trained unpenalised)."""
    schedule = [{"grid": 3, "adam": 4, "lr": 1e-2, "sparsity": 0.05}]
    path = tmp_path / "checkpoint.h5"
    whole, model = _tiny_trainer(schedule, 3, progress=False, checkpoint=path, checkpoint_every=2)
    whole.run()
    saved = load_checkpoint(path)
    assert (saved["position"]["stage"], saved["position"]["i"]) == (0, 2)  # mid-stage
    resumed, model2 = _tiny_trainer(schedule, 3, progress=False)
    resumed.load_state_dict(saved)
    resumed.run()
    assert resumed.residuals.penalty_weight == 0.05
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_progress_bar_counts_the_steps_of_every_stage(monkeypatch):
    """The progress bar's total is the sum of the stages' steps (3 + 2 + 4, the last stage
    on a finer grid) and it ends full (catches: a stage left out of the total)."""
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, total=None, initial=0, **kw):
            self.total, self.n, self.closed = total, initial, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def set_postfix(self, *a, **kw):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    schedule = "3:adam=3@1e-2+lbfgs=2,6:adam=4"
    t, _ = _tiny_trainer(schedule, grid=3, progress=True)
    t.run()
    (bar,) = bars
    assert bar.total == 3 + 2 + 4 == t.step
    assert bar.n == bar.total and bar.closed


# ----------------------------------------------------------------------------- checkpoints


def _tensors():
    """Tensors of every dtype a training state holds or might, of 0 to 3 dimensions, empty and
    non-contiguous ones included."""
    g = torch.Generator().manual_seed(3)
    f64 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    return {
        "f64_3d": f64,
        "f32_2d": torch.randn(5, 2, generator=g),
        "f16": torch.randn(4, generator=g).half(),
        "i64": torch.tensor([-(2**62), 0, 2**62 + 1]),
        "i32_2d": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "u8": torch.arange(250, 256, dtype=torch.uint8),  # as the RNG's state
        "bool": torch.tensor([[True, False], [False, True]]),
        "c64": torch.tensor([1 + 2j, -0.5j], dtype=torch.complex64),
        "scalar": torch.tensor(7.0),  # 0-d, as Adam's step
        "scalar_i64": torch.tensor(3),
        "empty": torch.empty(0, 3, dtype=torch.float64),
        "transposed": f64[0].t(),  # non-contiguous (3, 2)
        "needs_grad": torch.linspace(0, 1, 3, dtype=torch.float64).requires_grad_(),
    }


def test_a_checkpoint_gives_back_exactly_what_it_was_given(tmp_path):
    """Save then load is the identity on nested dicts/lists/tuples of tensors, arrays, numbers,
    strings, bools and None: same types, key order, dtypes, shapes and bits (catches: shapes
    flattened, arrays' dtypes changed, lists of more than ten items read back in the order of
    their names "0", "1", "10", "11", "2", ..., floats rounded, bools or ints retyped, dict
    values matched to keys in another order)."""
    floats = [math.pi, 1 / 3, 1e-300, 5e-324, -0.0, float("inf"), -float("inf"), 0.1 + 0.2]
    state = {
        "tensors": _tensors(),
        "arrays": {
            "f32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
            "i32": np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
            "u32": np.arange(624, dtype=np.uint32),  # numpy's MT19937 key
            "bool": np.array([True, False, True]),
            "f64_1d": np.array([1 / 7, -np.pi]),
        },
        # twelve items: the eleventh and twelfth sort between the second and third by name
        "long_list": [torch.full((1,), float(i)) for i in range(12)],
        "long_tuple": tuple(range(12)),
        "floats": floats,
        "nan": float("nan"),
        "ints": [0, -1, 2**53 + 1, 2**70],  # past float64's exact integers: kept as ints
        "bools": (True, False, 1, 0),  # bools stay bools and ints ints
        "strings": ["", "é ∂ ü", "a/b", "{not json}", '"quoted"'],
        "none": None,
        # keys out of sorted order, int keys (Adam's per-parameter state) and keys that would
        # be HDF5 paths if used as names
        "dict": {"z": 1, 3: [None], "a/b": (2,), 0: {}, ".": [], "": "empty key", 10: 2.5},
        "empties": ([], (), {}, ""),
    }
    back = load_checkpoint(save_checkpoint(tmp_path / "checkpoint.h5", state))
    assert set(back) == set(state)  # (the top level comes back in HDF5's order, by name)
    for key in state:
        if key == "nan":
            assert isinstance(back[key], float) and math.isnan(back[key])
        else:
            same(state[key], back[key], key)
    # the tensors come back on the CPU and detached from any graph
    for t in back["tensors"].values():
        assert t.device.type == "cpu" and not t.requires_grad


def test_a_long_list_of_tensors_keeps_its_order_in_the_optimizer_memory(tmp_path):
    """L-BFGS's memory is lists of history_size (default 100) tensors: item i comes back as
    item i (catches: items read in the order HDF5 lists their names)."""
    memory = {"old_dirs": [torch.full((2,), float(i)) for i in range(100)]}
    back = load_checkpoint(save_checkpoint(tmp_path / "c.h5", {"m": memory}))["m"]
    assert [t[0].item() for t in back["old_dirs"]] == list(range(100))


def test_an_interrupted_write_leaves_the_previous_checkpoint_and_no_temporary_file(
    tmp_path, monkeypatch
):
    """A Ctrl-C (KeyboardInterrupt, not an Exception) in the middle of a write leaves the
    previous checkpoint whole and readable and no temporary file behind (catches: writing the
    file in place, a clean-up only for Exceptions)."""
    path = tmp_path / "checkpoint.h5"
    first = {"position": {"step": 5}, "w": torch.arange(6, dtype=torch.float64).reshape(2, 3)}
    save_checkpoint(path, first)
    before = path.read_bytes()
    real = ckpt._write

    def interrupted(group, key, obj):
        if key == "late":
            raise KeyboardInterrupt
        real(group, key, obj)

    monkeypatch.setattr(ckpt, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"position": {"step": 10}, "w": torch.zeros(9), "late": 1})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.h5"]
    back = load_checkpoint(path)
    for key in first:
        same(first[key], back[key], key)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint\n", b"\x89PNG\r\n\x1a\n" + bytes(64), b"{}"],
    ids=["empty", "text", "png", "json"],
)
def test_a_file_that_is_not_hdf5_is_named_as_such(tmp_path, content):
    """A file of another format, given by its name or by its run directory, is refused with
    one line naming the file and saying it is no HDF5 file (catches: h5py's own OSError, or a
    vaguer 'corrupt checkpoint')."""
    path = tmp_path / "checkpoint.h5"
    path.write_bytes(content)
    for given in (path, tmp_path):
        with pytest.raises(ResultsError) as e:
            load_checkpoint(given)
        msg = str(e.value)
        assert msg.startswith(f"{path}: not an HDF5 file"), msg
        assert "\n" not in msg


def test_an_hdf5_file_of_another_kind_is_not_a_checkpoint(tmp_path):
    """An HDF5 file without the checkpoint's format mark (a results file, say) is refused by
    name, not read as a state of whatever datasets it holds."""
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("position", data=np.arange(3))
    with pytest.raises(ResultsError, match=r"other\.h5: not a kanpde checkpoint$"):
        load_checkpoint(path)
