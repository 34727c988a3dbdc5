"""Mutation round for problem checks, signals, the allocator and data parallelism.

Each test pins behaviour that a plausible mutation of ``kanpde/problem.py``,
``kanpde/signals.py``, ``kanpde/allocator.py`` or ``kanpde/distributed.py`` changed while
the rest of the suite still passed. The expected values come from the documented rules
(contiguous shards, sums and maxima over ranks, glibc's ``mallopt`` parameter numbers,
POSIX signal semantics), not from the code's own output.

Data parallelism is checked in one process: ``rank``/``world`` and the ``torch.distributed``
collectives are replaced by fakes that act as the named number of ranks would.
"""

import signal
import threading

import pytest
import torch
import torch.distributed as dist

import kanpde
from kanpde import allocator, distributed, signals

# --------------------------------------------------------------------------- distributed


def _as_rank(monkeypatch, r, w):
    monkeypatch.setattr(distributed, "rank", lambda: r)
    monkeypatch.setattr(distributed, "world", lambda: w)


def test_shards_are_contiguous_near_equal_parts_that_cover_every_point(monkeypatch):
    # rank r of w keeps [floor(n r / w), floor(n (r + 1) / w)): the parts tile 0..n-1 in order
    # and their sizes differ by at most one, so no point is dropped (n not divisible by w)
    for w in range(1, 6):
        for n in range(0, 23):
            parts = []
            for r in range(w):
                _as_rank(monkeypatch, r, w)
                s = distributed.shard(n)
                parts.append(list(range(n))[s])
            assert sum(parts, []) == list(range(n)), (n, w)
            sizes = [len(p) for p in parts]
            assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n


def test_paired_shards_keep_each_pair_and_cover_both_halves(monkeypatch):
    # a periodic term's points are x_0..x_{h-1} then their partners x_h..x_{2h-1}: a rank
    # keeps i and i + h together, and the ranks' first halves tile 0..h-1
    for w in range(1, 5):
        for n in range(0, 30, 2):
            half = n // 2
            firsts, seconds = [], []
            for r in range(w):
                _as_rank(monkeypatch, r, w)
                a, b = distributed.shard(n, pairs=True)
                ia, ib = list(range(n))[a], list(range(n))[b]
                assert ib == [i + half for i in ia], (n, w, r)
                firsts += ia
                seconds += ib
            assert firsts == list(range(half)) and seconds == list(range(half, n))


def _fake_ranks(monkeypatch, others):
    """Make this process rank 0 of ``1 + len(others)`` ranks whose other ranks hold
    ``others`` (each a callable giving that rank's tensor for one of ours)."""
    monkeypatch.setattr(distributed, "active", lambda: True)

    def all_reduce(t, op=dist.ReduceOp.SUM):
        values = [t.clone()] + [o(t) for o in others]
        if op == dist.ReduceOp.MAX:
            t.copy_(torch.stack(values).amax(0))
        else:
            t.copy_(torch.stack(values).sum(0))

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")


def test_all_reduce_sums_each_tensor_over_the_ranks_in_place(monkeypatch):
    # three ranks, the others holding 2x and -0.5x ours: every tensor, whatever its shape and
    # place in the flat buffer, becomes (1 + 2 - 0.5) = 2.5 times itself
    _fake_ranks(monkeypatch, [lambda t: 2 * t, lambda t: -0.5 * t])
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(2, 3, generator=g, dtype=torch.float64), torch.tensor(1.5),
               torch.randn(4, generator=g, dtype=torch.float64)]  # fmt: skip
    expected = [2.5 * t for t in tensors]
    distributed.all_reduce_(tensors)
    for t, e in zip(tensors, expected):
        torch.testing.assert_close(t, e, rtol=0, atol=1e-15)


def test_collectives_are_identities_in_a_single_process():
    # one rank: the sum over ranks is the tensor, the maximum the value, rank 0's object the
    # object; nothing may call torch.distributed (no process group exists)
    assert not distributed.active()
    t = torch.tensor([1.0, -2.0])
    distributed.all_reduce_([t])
    assert t.tolist() == [1.0, -2.0]
    assert distributed.max_over_ranks(0.25) == 0.25
    obj = {"out": "runs/x"}
    assert distributed.broadcast(obj) is obj
    distributed.barrier()
    assert (distributed.rank(), distributed.world()) == (0, 1)


def test_max_over_ranks_is_the_largest_value_not_the_sum(monkeypatch):
    # elapsed times 0.5 (ours), 2.0 and 1.25 on three ranks: they share the clock of the
    # slowest, max = 2.0 (a sum, 3.75, would spend the budget early)
    _fake_ranks(
        monkeypatch, [lambda t: torch.full_like(t, 2.0), lambda t: torch.full_like(t, 1.25)]
    )
    assert distributed.max_over_ranks(0.5) == 2.0


def test_broadcast_gives_every_rank_rank_0s_object(monkeypatch):
    # as rank 1 of 2: the run directory rank 0 created comes back, not our own
    monkeypatch.setattr(distributed, "active", lambda: True)
    held = {0: "runs/made-by-rank-0", 1: "runs/made-by-rank-1"}

    def broadcast_object_list(box, src=0):
        box[0] = held[src]

    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    assert distributed.broadcast("runs/made-by-rank-1") == "runs/made-by-rank-0"


def test_a_world_size_of_one_is_not_a_launch(monkeypatch):
    # torchrun --nproc-per-node 1 sets WORLD_SIZE=1: a single process, no process group
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched()
    assert distributed.setup("cpu") == "cpu"  # joins nothing
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched()


def test_setup_picks_the_backend_and_this_ranks_gpu(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(backend))
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("gpu", i)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)  # a GPU for each local rank
    assert distributed.setup("auto") == "cpu" and calls == ["gloo"]  # no GPU: gloo on the CPU
    calls.clear()
    # one GPU per rank: local rank 3 takes cuda:3, and NCCL joins them
    assert distributed.setup("cuda") == "cuda:3" and calls == [("gpu", 3), "nccl"]
    calls.clear()
    monkeypatch.setattr(distributed, "active", lambda: True)  # joined already: not again
    assert distributed.setup("cuda") == "cuda" and calls == []


def test_a_one_process_group_is_not_data_parallel():
    # a process group of one rank (world size 1) shards nothing and reduces nothing
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already in use")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert not distributed.active() and distributed.world() == 1
        assert distributed.shard(7) == slice(0, 7)
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------- allocator

# glibc's <malloc.h>: M_TRIM_THRESHOLD is -1 and M_MMAP_THRESHOLD is -3; mallopt returns 1
# on success and 0 on error.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


class _FakeLibc:
    def __init__(self, results):
        self.calls, self.results = [], list(results)

        def mallopt(param, value):
            self.calls.append((param, value))
            return self.results.pop(0)

        self.mallopt = mallopt


def _fake_libc(monkeypatch, results):
    libc = _FakeLibc(results)
    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv("KANPDE_MALLOPT", raising=False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    return libc


def test_mallopt_sets_the_mmap_then_the_trim_threshold_once(monkeypatch):
    # the documented defaults: 32 MiB (glibc's largest mmap threshold) and 256 MiB; the
    # setting is process-wide, so a second call changes nothing more
    libc = _fake_libc(monkeypatch, [1, 1])
    assert allocator.retain_freed_memory() is True
    assert libc.calls == [(M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 256 * 2**20)]
    assert allocator.retain_freed_memory() is True and len(libc.calls) == 2


def test_mallopt_both_or_neither(monkeypatch):
    # a refused mmap threshold: the trim threshold is left alone (either one alone is slower)
    libc = _fake_libc(monkeypatch, [0])
    assert allocator.retain_freed_memory(1 << 20, 2 << 20) is False
    assert libc.calls == [(M_MMAP_THRESHOLD, 1 << 20)]
    # a refused trim threshold: not in effect, and tried again next time
    libc = _fake_libc(monkeypatch, [1, 0, 1, 1])
    assert allocator.retain_freed_memory(1 << 20, 2 << 20) is False
    assert allocator.retain_freed_memory(1 << 20, 2 << 20) is True and len(libc.calls) == 4


def test_mallopt_is_not_called_off_linux_or_when_switched_off(monkeypatch):
    libc = _fake_libc(monkeypatch, [1, 1])
    monkeypatch.setenv("KANPDE_MALLOPT", "0")
    assert allocator.retain_freed_memory() is False
    monkeypatch.setenv("KANPDE_MALLOPT", "1")  # any other value keeps it on
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.retain_freed_memory() is False and libc.calls == []


# --------------------------------------------------------------------------- signals


def test_terminate_as_interrupt_leaves_ignored_and_users_handlers_alone(handlers_back):
    # nohup's SIG_IGN on SIGHUP must survive (the run outlives its terminal), a user's SIGTERM
    # handler must keep its signal; only default (killing) handlers become KeyboardInterrupt
    def mine(s, f):
        return None

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, mine)
    with signals.terminate_as_interrupt():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is mine
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with signals.terminate_as_interrupt():
        assert signal.getsignal(signal.SIGHUP) is signals.stop_now
        assert signal.getsignal(signal.SIGTERM) is signals.stop_now
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_terminate_as_interrupt_inactive_or_off_the_main_thread_changes_nothing(handlers_back):
    # under torchrun (active=False) and in a worker thread, SIGTERM keeps its default
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with signals.terminate_as_interrupt(active=False):
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen, errors = [], []

    def work():
        try:
            with signals.terminate_as_interrupt(), signals.signals_held():
                seen.append(signal.getsignal(signal.SIGTERM))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and seen == [signal.SIG_DFL]


def test_a_signal_held_twice_is_delivered_once(handlers_back):
    # POSIX does not queue standard signals: two SIGTERMs pending are one; the handler put
    # back after the block sees it once, as the kernel would have delivered it
    seen = []
    signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    with signals.signals_held():
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        assert seen == []  # held while the block runs
    assert seen == [signal.SIGTERM]


# --------------------------------------------------------------------------- Problem checks


def _problem(**kw):
    base = dict(name="t", domain=kanpde.Interval(0, 1), pde=lambda x, u: u,
                conditions=[kanpde.Dirichlet(0.0)])  # fmt: skip
    return kanpde.Problem(**{**base, **kw})


def test_the_default_width_is_d_inputs_10_hidden_and_one_output_per_name():
    # the KAN paper's [2, 10, 1] for the 2-D Poisson problem: D inputs, 10 hidden, m outputs;
    # build_model falls back on the same width for a model given without one
    assert _problem().model["width"] == [1, 10, 1]
    square = kanpde.Rectangle([0, 0], [1, 1])
    p = _problem(domain=square, outputs=("u", "v", "p"), model={"type": "mlp"})
    assert p.model["width"] == [2, 10, 3]


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(name="   "), "name must be a non-empty string"),
        (dict(outputs=("u", " ")), "outputs must be a non-empty list of names"),
        (dict(points={"interior": 0}), "points: interior must be positive, got 0"),
        (dict(points={"boundary": 0}), "points: boundary must be positive, got 0"),
        # a dict of conditions is no list (its keys are not conditions)
        (dict(conditions={"wall": kanpde.Dirichlet(0.0)}), "conditions must be a list such as"),
        # a weight for "pde[0]" followed by more text names no residual: it would be unused
        (dict(weights={"pde[0]x": 1.0}), "weights: unknown key 'pde[0]x'"),
    ],
)
def test_problem_refuses_blank_names_empty_counts_and_unknown_terms(kw, fragment):
    with pytest.raises(kanpde.ProblemError, match=fragment.replace("[", r"\[")):
        _problem(**kw)


def test_names_only_starting_like_a_pde_term_are_condition_names():
    # "pde[k]" is reserved only as a whole name: "pde[0]_wall" is an ordinary condition name,
    # and its weight is accepted
    p = _problem(conditions=[kanpde.Dirichlet(0.0, name="pde[0]_wall")],
                 weights={"pde[0]_wall": 2.0, "pde[1]": 3.0})  # fmt: skip
    assert [c.name for c in p.conditions] == ["pde[0]_wall"]


def test_a_preset_may_switch_adaptive_on_over_the_problems_resample():
    # the preset's points are checked merged over the problem's: resample=5 comes from the
    # problem, so adaptive=True in a preset resamples and is accepted
    p = _problem(points={"interior": 30, "resample": 5},
                 presets={"ad": {"points": {"adaptive": True}}})  # fmt: skip
    assert p.presets["ad"]["points"] == {"adaptive": True}
    with pytest.raises(kanpde.ProblemError, match="preset 'ad' points: adaptive=True needs"):
        _problem(points={"interior": 30}, presets={"ad": {"points": {"adaptive": True}}})


def test_users_own_clashing_names_are_refused_not_qualified():
    # only default names are told apart by their components; two conditions the user named
    # alike are a mistake to report
    square = kanpde.Rectangle([0, 0], [1, 1])
    conds = [kanpde.Dirichlet(0.0, component="u", name="wall"),
             kanpde.Dirichlet(0.0, component="v", name="wall")]  # fmt: skip
    with pytest.raises(kanpde.ProblemError, match="conditions need distinct names.*wall"):
        _problem(domain=square, outputs=("u", "v"), conditions=conds)


# --------------------------------------------------------------------------- problem files

FILE = """
import torch
from kanpde import Dirichlet, Interval, Problem

def helper(x):
    raise ValueError(MESSAGE)  # LINE-B

def pde(x, u):
    return helper(x) + u  # LINE-A

problem = Problem(name=NAME, domain=Interval(0, 1), pde=pde, conditions=[Dirichlet(0.0)],
                  model={"width": [1, 2, 1]}, schedule="3:adam=1")
"""


def _write(path, name="'t'", message="'first line\\nsecond line'", head=""):
    text = head + FILE.replace("NAME", name).replace("MESSAGE", message)
    path.write_text(text)
    lines = text.splitlines()
    return {
        tag: 1 + next(i for i, s in enumerate(lines) if tag in s) for tag in ("LINE-A", "LINE-B")
    }


def test_user_code_errors_name_the_innermost_line_and_the_first_message_line(tmp_path):
    # FILE:LINE is the last frame of the problem file (where helper raised, not where pde
    # called it); a message of two lines gives its first; one without a message its type
    from kanpde.problem import user_code_error, user_line

    path = tmp_path / "p.py"
    line = _write(path)
    problem = kanpde.load_problem(path)
    x = torch.zeros(3, 1)
    with pytest.raises(ValueError) as e:
        problem.pde(x, x)
    assert str(user_code_error(problem, "pde(x, u)", e.value)) == (
        f"{path}:{line['LINE-B']}: pde(x, u) raised ValueError: first line"
    )
    # an error kanpde raised while handling it (implicit chaining, __context__) still
    # points at the user's line
    try:
        try:
            problem.pde(x, x)
        except ValueError:
            raise RuntimeError("while checking the residual")  # noqa: B904 - chained implicitly
    except RuntimeError as wrapped:
        assert wrapped.__cause__ is None and wrapped.__context__ is not None
        assert user_line(problem, wrapped) == f":{line['LINE-B']}"
    _write(path, message="")
    problem = kanpde.load_problem(path)
    with pytest.raises(ValueError) as e:
        problem.pde(x, x)
    assert str(user_code_error(problem, "pde(x, u)", e.value)).endswith(
        ": pde(x, u) raised ValueError"
    )


def test_a_problem_refused_while_its_file_runs_is_named_by_the_file_once(tmp_path):
    # the Problem's own prefix ("problem 'a/b': ") gives way to the file's path
    path = tmp_path / "p.py"
    _write(path, name="'a/b'")
    with pytest.raises(kanpde.ProblemError) as e:
        kanpde.load_problem(path)
    assert str(e.value).startswith(f"{path}: name must not contain '/'"), str(e.value)


def test_packages_beside_a_problem_file_are_its_own(tmp_path, monkeypatch):
    # each file gets the package (and its submodule) beside it, not the one a file in
    # another folder imported first; a module from elsewhere whose name merely starts like
    # theirs stays imported
    import sys

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "kanpde_test_pkgx.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(lib))
    head = ("from kanpde_test_pkg.sub import NAME as PKG_NAME\n"
            "import kanpde_test_pkgx\n")  # fmt: skip
    names = []
    try:
        for folder in ("a", "b"):
            pkg = tmp_path / folder / "kanpde_test_pkg"
            pkg.mkdir(parents=True)
            (pkg / "__init__.py").write_text("")
            (pkg / "sub.py").write_text(f"NAME = 'from-{folder}'\n")
            _write(tmp_path / folder / "p.py", name="PKG_NAME", head=head)
            names.append(kanpde.load_problem(tmp_path / folder / "p.py").name)
        assert names == ["from-a", "from-b"]
        assert not [m for m in sys.modules if m.startswith("kanpde_test_pkg.")]
        assert "kanpde_test_pkg" not in sys.modules and "kanpde_test_pkgx" in sys.modules
    finally:
        for m in [m for m in sys.modules if m.startswith("kanpde_test_pkg")]:
            del sys.modules[m]
