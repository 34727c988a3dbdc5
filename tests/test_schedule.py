"""Independent tests of schedule parsing (:mod:`kanpde.schedule`)."""

from __future__ import annotations

import pytest

from kanpde.schedule import DEFAULT_LR, ScheduleError, Stage, parse_schedule


def summary(stages):
    return [(s.optimizer, s.steps, s.grid, s.lr) for s in stages]


def test_dict_with_both_optimizers_gives_two_stages_grid_at_first():
    stages = parse_schedule([{"grid": 5, "adam": 100, "lbfgs": 10}])
    assert [s.optimizer for s in stages] == ["adam", "lbfgs"]
    assert [s.steps for s in stages] == [100, 10]
    assert stages[0].grid == 5
    # the grid changes once, at the first optimizer of the dict (as in the string form)
    assert stages[1].grid is None


def test_dict_and_string_forms_agree():
    from_dict = parse_schedule(
        [{"grid": 5, "adam": 2000, "lr": 1e-3, "lbfgs": 100}, {"grid": 10, "lbfgs": 200}]
    )
    from_text = parse_schedule("5:adam=2000@1e-3+lbfgs=100,10:lbfgs=200")
    assert summary(from_dict) == summary(from_text)


def test_list_of_dicts():
    stages = parse_schedule(
        [{"grid": 5, "adam": 1000, "lr": 1e-2}, {"grid": 10, "lbfgs": 200}, {"lbfgs": 50}]
    )
    assert summary(stages) == [
        ("adam", 1000, 5, 1e-2),
        ("lbfgs", 200, 10, 1.0),
        ("lbfgs", 50, None, 1.0),
    ]


def test_lr_of_a_two_optimizer_dict_is_adams():
    adam, lbfgs = parse_schedule({"adam": 10, "lbfgs": 5, "lr": 0.05})
    assert adam.lr == 0.05 and lbfgs.lr == DEFAULT_LR["lbfgs"] == 1.0


def test_dict_options_are_passed_on():
    (s,) = parse_schedule(
        [{"adam": 40, "lr": 0.01, "decay": 0.1, "update_grid": 5, "update_until": 30}]
    )
    assert (s.decay, s.update_grid, s.update_until) == (0.1, 5, 30)
    (s,) = parse_schedule([{"lbfgs": 40, "history": 20, "lr": 0.5}])
    assert (s.history, s.lr) == (20, 0.5)  # the lr of a one-optimizer dict is its own
    (s,) = parse_schedule([{"optimizer": "adam", "steps": 7, "grid": 3}])
    assert summary([s]) == [("adam", 7, 3, DEFAULT_LR["adam"])]
    (s,) = parse_schedule([{"adam": 10, "update_until": None}])  # None: the default
    assert s.update_grid == 0
    (s,) = parse_schedule([{"adam": 10, "update_grid": True}])
    assert s.update_grid == 11  # once, at the start
    assert s.update_until == 5  # default: half the stage


def test_options_of_a_two_optimizer_dict_go_to_their_optimizer():
    adam, lbfgs = parse_schedule({"adam": 10, "lbfgs": 5, "decay": 0.5, "history": 7})
    assert (adam.decay, lbfgs.decay) == (0.5, None)
    assert lbfgs.history == 7
    # the saved form of every stage (history and decay included) parses back as it was
    for s in (adam, lbfgs):
        assert parse_schedule([s.to_dict()]) == [s]


def test_update_grid_only_at_first_optimizer_of_a_dict():
    adam, lbfgs = parse_schedule({"grid": 5, "adam": 10, "lbfgs": 5, "update_grid": 2})
    assert adam.update_grid == 2 and lbfgs.update_grid == 0


def test_float_integers_are_accepted():
    (s,) = parse_schedule([{"grid": 5.0, "adam": 100.0}])
    assert s.grid == 5 and s.steps == 100 and isinstance(s.steps, int)


def test_string_form():
    stages = parse_schedule("5:adam=2000@1e-3+lbfgs=100,10:lbfgs=200")
    assert summary(stages) == [
        ("adam", 2000, 5, 1e-3),
        ("lbfgs", 100, None, 1.0),
        ("lbfgs", 200, 10, 1.0),
    ]


@pytest.mark.parametrize(
    "text, stages",
    [
        ("5:adam=100@1e-2+decay=0.1+update_grid=20+update_until=60",
         [{"grid": 5, "adam": 100, "lr": 1e-2, "decay": 0.1, "update_grid": 20,
           "update_until": 60}]),
        ("3:adam=50+lbfgs=30+history=7+decay=0.5+sparsity=1e-3+update_grid=10,6:lbfgs=5",
         [{"grid": 3, "adam": 50, "lbfgs": 30, "history": 7, "decay": 0.5, "sparsity": 1e-3,
           "update_grid": 10}, {"grid": 6, "lbfgs": 5}]),
        ("lbfgs=20+history=3", [{"lbfgs": 20, "history": 3}]),
    ],
)  # fmt: skip
def test_string_options_are_the_dict_keys(text, stages):
    # "5:adam=150+update_grid=30" was "unknown optimizer 'update_grid'": decay, grid updates,
    # L-BFGS memory and sparsity could be set in a problem file only
    assert parse_schedule(text) == parse_schedule(stages)
    first = parse_schedule(text)[0]
    assert first.update_grid == stages[0].get("update_grid", 0)
    assert first.decay == stages[0].get("decay")


def test_string_form_variants():
    assert summary(parse_schedule("adam=10")) == [("adam", 10, None, 1e-3)]
    assert summary(parse_schedule(" 3:lbfgs=2 , 6:ADAM=4@0.5 ")) == [
        ("lbfgs", 2, 3, 1.0),
        ("adam", 4, 6, 0.5),
    ]
    assert summary(parse_schedule("lbfgs=0")) == [("lbfgs", 0, None, 1.0)]


def test_default_learning_rates():
    assert DEFAULT_LR == {"adam": 1e-3, "lbfgs": 1.0}
    assert parse_schedule("adam=5")[0].lr == 1e-3
    assert parse_schedule("lbfgs=5")[0].lr == 1.0
    assert parse_schedule([{"adam": 5}])[0].lr == 1e-3
    assert Stage("lbfgs", 3).lr == 1.0


def test_stages_pass_through_and_round_trip():
    s = Stage("adam", 10, grid=4, lr=0.1)
    assert parse_schedule([s]) == [s]
    d = s.to_dict()
    assert d["optimizer"] == "adam" and d["steps"] == 10 and d["grid"] == 4
    assert parse_schedule([d]) == [s]


BAD = {
    "negative steps (dict)": ([{"adam": -3}], "non-negative integer"),
    "negative steps (string)": ("5:adam=-3", "non-negative integer"),
    "unknown optimizer (string)": (
        "5:sgd=10",
        "unknown optimizer or option 'sgd' in '5:sgd=10'; optimizers: adam, lbfgs; options "
        "after +: decay, update_grid, update_until, history, sparsity",
    ),
    "decay without adam (string)": ("5:lbfgs=10+decay=0.1", "decay is an option of adam"),
    "history without lbfgs (string)": ("5:adam=10+history=5", "history is an option of lbfgs"),
    "update_until alone (string)": ("adam=10+update_until=3", "update_until goes with update"),
    "option twice (string)": ("adam=10+decay=0.5+decay=0.2", "decay given twice"),
    "option not a number (string)": ("adam=10+sparsity=a", "sparsity 'a' in"),
    "options alone (string)": ("5:decay=0.5", "names no optimizer"),
    "fractional update_grid (string)": ("adam=10+update_grid=2.5", "update_grid must be an integ"),
    "unknown optimizer (dict)": ([{"optimizer": "sgd", "steps": 3}], "unknown optimizer 'sgd'"),
    "no optimizer": ([{"grid": 5}], "names no optimizer"),
    "non-integer grid (dict)": ([{"grid": 2.5, "adam": 10}], "grid must be an integer"),
    "non-integer grid (string)": ("x:adam=10", "grid size 'x'"),
    "zero grid": ([{"grid": 0, "adam": 10}], "grid must be a positive integer"),
    "non-integer steps (dict)": ([{"adam": 1.5}], "adam steps must be an integer"),
    "non-integer steps (string)": ("adam=1.5", "steps '1.5'"),
    "bool steps": ([{"adam": True}], "must be an integer"),
    "string steps": ([{"adam": "10"}], "must be an integer"),
    "empty list": ([], "schedule is empty"),
    "empty string": ("", "empty stage"),
    "empty stage": ("adam=10,,lbfgs=5", "empty stage"),
    "bad lr (string)": ("adam=10@fast", "learning rate 'fast' is not a number"),
    "negative lr": ([{"adam": 10, "lr": -1e-3}], "learning rate must be positive"),
    "zero lr (string)": ("adam=10@0", "learning rate must be positive"),
    "unknown key": ([{"adam": 10, "momentum": 0.9}], "unknown schedule key(s) momentum"),
    "missing =": ("5:adam", "must read optimizer=steps"),
    "bad decay": ([{"adam": 10, "decay": 2.0}], "decay must be in"),
    "bad history": ([{"lbfgs": 10, "history": 0}], "history must be a positive integer, got 0"),
    "fractional history": ([{"lbfgs": 10, "history": 2.5}], "history must be an integer, got 2.5"),
    "stage not a dict": ([5], "must be a dict"),
    "wrong type": (42, "must be a list of stages or a string"),
    # values of the wrong type or out of range must be ScheduleErrors too, not TypeError & co.
    "string lr (dict)": ([{"adam": 10, "lr": "1e-3"}], "learning rate"),
    "string decay (dict)": ([{"adam": 10, "decay": "0.5"}], "decay"),
    "infinite lr (string)": ("adam=10@inf", "learning rate"),
    "infinite lr (dict)": ([{"adam": 10, "lr": float("inf")}], "learning rate"),
    "NaN steps (dict)": ([{"adam": float("nan")}], "adam steps must be an integer"),
    "infinite grid (dict)": ([{"grid": float("inf"), "adam": 1}], "grid must be an integer"),
    "negative update_until": ([{"adam": 10, "update_until": -3}], "update_until"),
    # accepted once and ignored without a word
    "decay without adam": ([{"lbfgs": 20, "decay": 0.5}], "decay is an option of adam"),
    "history without lbfgs": ([{"adam": 20, "history": 5}], "history is an option of lbfgs"),
    "steps without optimizer": ([{"adam": 10, "steps": 20}], "steps goes with optimizer="),
    "optimizer twice": ([{"optimizer": "adam", "steps": 5, "lbfgs": 3}], "optimizer twice"),
    "update_until alone": ([{"lbfgs": 20, "update_until": 10}], "goes with update_grid"),
    # a bool is no number (True would pass as 1)
    "bool lr (dict)": ([{"adam": 10, "lr": True}], "learning rate must be a finite number"),
    "bool decay (dict)": ([{"adam": 10, "decay": True}], "decay must be a finite number"),
    "zero decay": ([{"adam": 10, "decay": 0}], "decay must be in (0, 1]"),
    "negative sparsity": ([{"adam": 10, "sparsity": -0.1}], "sparsity must be non-negative"),
    "negative update_grid": ([{"adam": 10, "update_grid": -1}], "update_grid must be a non-neg"),
    "fractional update_grid": (
        [{"adam": 10, "update_grid": 2.5}],
        "update_grid must be an integer",
    ),
}


def test_decay_of_one_is_accepted_and_the_dict_defaults_are_the_stages():
    # decay lies in (0, 1]: 1 (no decay) was refused by a strict upper bound
    (s,) = parse_schedule([{"adam": 10, "decay": 1}])
    assert s.decay == 1.0
    # a dict without history/sparsity gets Stage's defaults (100, 0), not another number
    (s,) = parse_schedule([{"lbfgs": 5}])
    assert (s.history, s.sparsity) == (Stage("lbfgs", 5).history, 0.0) == (100, 0.0)


def test_sparsity_of_a_dict_reaches_every_optimizer_of_it():
    # a dict's sparsity was dropped without a word (every stage trained unpenalised)
    adam, lbfgs = parse_schedule({"grid": 5, "adam": 10, "lbfgs": 4, "sparsity": 1e-3})
    assert adam.sparsity == lbfgs.sparsity == 1e-3
    assert parse_schedule([adam.to_dict()]) == [adam]


def test_whole_float_history_is_taken_as_the_integer_it_is():
    # history=10.0 was refused as "must be positive", where steps and grid take whole floats
    (stage,) = parse_schedule([{"lbfgs": 10.0, "history": 10.0, "grid": 5.0}])
    assert (stage.steps, stage.history, stage.grid) == (10, 10, 5)
    assert all(type(v) is int for v in (stage.steps, stage.history, stage.grid))


@pytest.mark.parametrize("schedule, fragment", list(BAD.values()), ids=list(BAD))
def test_malformed_schedules(schedule, fragment):
    with pytest.raises(ScheduleError) as e:
        parse_schedule(schedule)
    msg = str(e.value)
    assert fragment in msg, msg
    assert "\n" not in msg
    assert isinstance(e.value, ValueError)
