"""The step a CUDA graph captures must not synchronise with the host.

On a GPU the trainer records one loss+gradient evaluation as a CUDA graph
(``training._CapturedGradient``); an op that reads a value back to the host (``.item()``,
``bool(tensor)``, boolean-mask indexing, ``nonzero``) or copies host data in (``torch.tensor``
of Python numbers) makes the capture fail. This machine has no GPU, so the same evaluation runs
on the CPU with the CPU-only fast paths (first layer's sparse operator, one-output Function)
switched off, as they are on CUDA, while a dispatch mode records every aten op.
"""

from pathlib import Path

import pytest
import torch
from closed_form import Closed
from torch.utils._python_dispatch import TorchDispatchMode

import kanpde
from kanpde.losses import Residuals
from kanpde.nn.bases import BSpline
from kanpde.nn.kan import KANLayer
from kanpde.symbolic import fix_symbolic, prune, regularization
from kanpde.training import _CapturedGradient, build_model

PROBLEMS = Path(__file__).resolve().parents[1] / "problems"
NAMES = sorted(p.stem for p in PROBLEMS.glob("*.py"))
POINTS = {"interior": 120, "boundary": 40, "initial": 40}
DT = torch.float64

# Ops that read device memory on the host or copy host memory to the device mid-stream.
SYNCING = {
    "_local_scalar_dense",  # .item(), bool(), float() of a tensor
    "is_nonzero",
    "nonzero",
    "masked_select",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "repeat_interleave",
    "equal",
    "lift_fresh",  # torch.tensor(<Python data>)
}


class SyncRecorder(TorchDispatchMode):
    """Records the syncing aten ops (and boolean-mask indexing) run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if name in SYNCING:
            self.hits.append(name)
        elif name.startswith("index") and len(args) > 1 and isinstance(args[1], (list, tuple)):
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
                self.hits.append(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def cuda_paths(monkeypatch):
    """Take the code paths a CUDA model takes (the CPU-only fast paths off)."""
    monkeypatch.setattr(KANLayer, "_fixed_points", lambda self, points: False)
    monkeypatch.setattr(KANLayer, "_one_output", lambda self, order, device: False)


def _hits(residuals: Residuals) -> list[str]:
    """The syncing ops of the step the trainer captures; its gradients are checked against
    those of the plain path (the same loss, every derivative by nested autograd)."""
    # the network's parameters and an inverse problem's unknowns, as the trainer steps them
    params = [p for p in residuals.trainable.parameters() if p.requires_grad]
    plain = Residuals(residuals.problem, Closed(residuals.model), POINTS,
                      residuals.problem.weights, DT, "cpu")  # fmt: skip
    plain.unknowns = residuals.unknowns  # the same tensors, for their gradients
    if residuals.penalty is not None:
        plain.penalty_weight = residuals.penalty_weight
        plain.penalty = lambda wrapped, x: residuals.penalty(wrapped.f, x)
    for p in params:
        p.grad = None  # an earlier call's would add up
    plain()[0].backward(inputs=params)
    # (zeros for parameters the loss does not reach, as the step makes them)
    expected = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    loss, _ = residuals()  # lazy caches are built outside the capture too (warm-up)
    loss.backward(inputs=params)
    for p in params:
        p.grad = None  # as before the capture
    with SyncRecorder() as rec:
        _CapturedGradient.step(residuals, params)
    assert all(p.grad is not None and p.grad.is_contiguous() for p in params)
    # the captured step's gradients are the loss's (not only present): to round-off
    scale = max(float(g.abs().max()) for g in expected if g.numel())
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-11 * scale)
    return sorted(set(rec.hits))


def _residuals(name: str, model_cfg: dict | None = None, model=None) -> Residuals:
    problem = kanpde.load_problem(PROBLEMS / f"{name}.py")
    torch.manual_seed(0)
    if model is None:
        model = build_model(problem, model_cfg or {}, DT, "cpu")
    return Residuals(problem, model, POINTS, problem.weights, DT, "cpu")


def test_the_recorder_sees_each_kind_of_sync():
    a = torch.linspace(-1, 1, 5, dtype=DT)
    with SyncRecorder() as rec:
        a.sum().item()
        bool((a > 0).any())
        _ = a[a > 0]
        torch.tensor([1.0, 2.0])
        a.nonzero()
    assert rec.hits == [
        "_local_scalar_dense",
        "_local_scalar_dense",
        "index with a boolean mask",
        "lift_fresh",
        "nonzero",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_step_is_capturable(name, cuda_paths):
    residuals = _residuals(name)
    assert residuals.fully_fused  # what makes the trainer capture it on CUDA
    assert _hits(residuals) == []


@pytest.mark.parametrize(
    "cfg",
    [{"type": "mlp"}, {"basis": "chebyshev"}, {"width": [2, 5, 5, 1], "grid": 7, "k": 2}],
    ids=["mlp", "chebyshev", "deep-k2"],
)
def test_other_models_are_capturable(cfg, cuda_paths):
    assert _hits(_residuals("poisson2d", cfg)) == []


def test_sparsity_penalty_is_capturable(cuda_paths):
    residuals = _residuals("poisson2d", {"width": [2, 5, 5, 1]})
    residuals.penalty, residuals.penalty_weight = regularization, 1e-3
    assert _hits(residuals) == []


def test_edited_kans_are_capturable(cuda_paths):
    problem = kanpde.load_problem(PROBLEMS / "poisson2d.py")
    torch.manual_seed(0)
    model = build_model(problem, {"width": [2, 5, 5, 1]}, DT, "cpu")
    x = torch.rand(300, 2, dtype=DT) * 2 - 1
    fix_symbolic(model, 0, 0, 0, "sin")
    fix_symbolic(model, 1, 1, 2, "0", x=x)
    assert not model.layers[0]._plain
    assert _hits(_residuals("poisson2d", model=model)) == []
    pruned = prune(model, x, edge_threshold=0.02, node_threshold=0.0)
    assert _hits(_residuals("poisson2d", model=pruned)) == []
    # A layer with no spline edge left keeps empty spline parameters the loss does not reach:
    # the capture read their (None) gradients (notebook 05's symbolic model on a GPU).
    for j in range(5):
        fix_symbolic(model, 2, j, 0, "x")
    assert model.layers[2].coef.numel() == 0
    assert _hits(_residuals("poisson2d", model=model)) == []


def test_a_sync_inside_the_step_is_caught(cuda_paths, monkeypatch):
    # e.g. clamping the slot lookup with a range read back to the host
    slots = BSpline.slots

    def syncing_slots(self, h, grid_buffer, aux):
        float(h.detach().max())
        return slots(self, h, grid_buffer, aux)

    monkeypatch.setattr(BSpline, "slots", syncing_slots)
    assert _hits(_residuals("poisson2d")) == ["_local_scalar_dense"]


def test_a_failed_automatic_capture_falls_back_to_plain_evaluations(monkeypatch):
    # A user's pde that reads a value to the host runs on the CPU but fails to be captured on
    # a GPU: with graphs="auto" the run went down with a bare capture error. On this CPU the
    # capture is made to fail as it would there, on a trainer told it chose graphs itself.
    from kanpde import training
    from kanpde.schedule import parse_schedule

    problem = kanpde.load_problem(PROBLEMS / "poisson1d.py")

    def trainer() -> training.Trainer:
        torch.manual_seed(0)
        model = build_model(problem, {"grid": 5}, DT)
        res = Residuals(problem, model, {"interior": 40, "boundary": 2}, problem.weights, DT, "cpu")
        return training.Trainer(res, parse_schedule("adam=5@1e-2,lbfgs=5"), progress=False)

    plain = trainer()
    plain.run()

    def refuse(self, residuals, params, warmup=2):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(training._CapturedGradient, "__init__", refuse)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    t = trainer()
    t.graphs = True  # as graphs="auto" decides on a GPU
    with pytest.warns(kanpde.KanpdeWarning, match=r"CUDA graph capture failed \(RuntimeError: "):
        t.run()
    assert t.graphs is False and t.evals == plain.evals
    for a, b in zip(t.model.parameters(), plain.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the same run as without graphs, bit for bit
    # graphs asked for explicitly: the error is the user's to see
    t = trainer()
    t.graphs, t._graphs_auto = True, False
    with pytest.raises(RuntimeError, match="stream is capturing"):
        t.run()


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's stream, graph and sync-debug calls stubbed, so that a capture runs on the
    CPU (the graph records nothing; a replay returns the captured tensors). Yields the log of
    sync-debug modes set and streams restored."""
    import contextlib

    class Stub:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def wait_stream(self, stream) -> None:
            pass

        def replay(self) -> None:
            pass

    log: dict[str, list] = {"modes": [], "set_stream": []}
    mode = ["default"]

    def set_mode(m):
        mode[0] = m
        log["modes"].append(m)

    nothing = lambda *args, **kwargs: contextlib.nullcontext()  # noqa: E731
    for name, value in (("device", nothing), ("stream", nothing), ("graph", nothing),
                        ("Stream", Stub), ("CUDAGraph", Stub),
                        ("current_stream", lambda *a, **k: Stub()),
                        ("get_sync_debug_mode", lambda: mode[0]),
                        ("set_sync_debug_mode", set_mode),
                        ("set_stream", log["set_stream"].append)):  # fmt: skip
        monkeypatch.setattr(torch.cuda, name, value)
    log["mode"] = mode
    return log


def _poisson1d_residuals():
    problem = kanpde.load_problem(PROBLEMS / "poisson1d.py")
    model = build_model(problem, {"grid": 5}, DT)
    res = Residuals(problem, model, {"interior": 40, "boundary": 2}, problem.weights, DT, "cpu")
    return model, res


def test_a_capture_keeps_what_its_graph_reads_alive(fake_cuda):
    # A CUDA graph holds no reference to the memory it reads: the throughput benchmark kept
    # only .replay of a capture, and the points and the model's buffers (grid, basis tables)
    # were freed under it.
    import gc
    import weakref

    model, res = _poisson1d_residuals()
    replay = _CapturedGradient(res, list(model.parameters())).replay
    alive = [weakref.ref(res), weakref.ref(model), weakref.ref(res.terms[0].points.x)]
    del res, model
    gc.collect()
    assert all(ref() is not None for ref in alive)
    loss, _ = replay()
    assert torch.isfinite(loss)
    # the last warm-up ran with host syncs refused, and the mode was put back
    assert fake_cuda["modes"] == ["error", "default"] and fake_cuda["mode"] == ["default"]


def test_a_step_that_waits_for_the_gpu_is_refused_before_any_capture(fake_cuda, monkeypatch):
    # A pde with .item() made the capture itself fail, leaving torch's capture stream current
    # and its allocator mid-capture; now the last warm-up, run with torch raising on host
    # syncs, refuses it first (torch's "called a synchronizing CUDA operation" simulated).
    model, res = _poisson1d_residuals()
    call = Residuals.__call__

    def syncing(self, *args, **kwargs):
        if fake_cuda["mode"][0] == "error":
            raise RuntimeError("called a synchronizing CUDA operation")
        return call(self, *args, **kwargs)

    monkeypatch.setattr(Residuals, "__call__", syncing)
    with pytest.raises(RuntimeError, match=r"^the evaluation waits for the GPU \(RuntimeError: "):
        _CapturedGradient(res, list(model.parameters()))
    assert fake_cuda["mode"] == ["default"]  # restored
    assert fake_cuda["set_stream"] == []  # no capture was begun, so nothing to undo

    # another error of the warm-up (out of memory) is not taken for a sync
    def out_of_memory(self, *args, **kwargs):
        if fake_cuda["mode"][0] == "error":  # in the checked warm-up
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return call(self, *args, **kwargs)

    monkeypatch.setattr(Residuals, "__call__", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="^CUDA out of memory$"):
        _CapturedGradient(res, list(model.parameters()))


def _deferred_on_cpu(monkeypatch) -> None:
    """Make every trainer check Adam's steps as it does on a GPU (fused Adam skips a flagged
    step, the flags are read at the logs); CPU fused Adam honours the flag as CUDA's does."""
    from kanpde import training

    init = training.Trainer.__init__

    def deferred(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._defer_checks = True

    monkeypatch.setattr(training.Trainer, "__init__", deferred)


def test_deferred_checks_train_as_the_checked_steps_across_a_grid_change(monkeypatch):
    # GPU-only until now: fused Adam needs the new coefficients and the carried moments laid
    # out as their gradients after an extension, which no CPU test reached
    problem = kanpde.load_problem(PROBLEMS / "poisson2d.py")

    def losses():
        torch.manual_seed(0)
        schedule = [{"grid": 3, "adam": 20, "lr": 1e-2}, {"grid": 6, "adam": 20, "lr": 1e-2}]
        run = kanpde.solve(problem, schedule=schedule, device="cpu", dtype="float64",
                           points={"interior": 100, "boundary": 40, "method": "grid",
                                   "test": 11}, progress=False, log_every=10)  # fmt: skip
        return run.history["loss"]

    checked = losses()
    _deferred_on_cpu(monkeypatch)
    deferred = losses()
    assert len(deferred) == len(checked) == 5
    # fused and per-parameter Adam sum in another order: round-off only
    assert max(abs(a - b) / b for a, b in zip(deferred, checked, strict=True)) < 1e-10


def test_deferred_checks_roll_back_nonfinite_steps_and_finish_finite(monkeypatch):
    # sqrt(1 - u) turns NaN once u > 1 at learning rate 0.5: flagged steps must be undone on
    # the device and rolled back at the logs, as the checked ones are
    import math
    import re

    from kanpde import Dirichlet, Interval, Problem, d

    nan_prone = Problem(
        name="nan_prone", domain=Interval(-1, 1), conditions=[Dirichlet(0.0)],
        pde=lambda x, u: d(u, x, "x", "x") + 10 * torch.sqrt(1 - u),
        exact=lambda x: torch.sin(math.pi * x),
    )  # fmt: skip
    _deferred_on_cpu(monkeypatch)
    torch.manual_seed(0)
    run = kanpde.solve(nan_prone, schedule="adam=200@0.5", device="cpu", dtype="float64",
                       points={"interior": 60, "boundary": 2, "test": 21},
                       progress=False, log_every=5)  # fmt: skip
    actions = [e["action"] for e in run.events if e["event"] == "nonfinite"]
    # the checked path rolls back 4 times, lowering the rate tenfold each (0.5 -> 5e-05);
    # the deferred one says how many flagged steps fused Adam skipped before each look
    assert len(actions) == 4 and actions[-1].endswith("Adam learning rate now 5.0e-05")
    assert all(re.search(r"\(\d+ non-finite steps? skipped\)", a) for a in actions), actions
    assert run.metrics["steps"] == 200 and all(math.isfinite(v) for v in run.history["loss"])
    assert all(torch.isfinite(p).all() for p in run.model().parameters())


def test_a_failed_capture_puts_the_stream_back(fake_cuda, monkeypatch):
    # torch.cuda.graph's exit restores the stream only after capture_end, which raises when
    # the capture failed: the rest of the run went on on the capture's side stream
    import contextlib

    @contextlib.contextmanager
    def failing(graph, stream=None):
        yield
        raise RuntimeError("operation failed due to a previous error during capture")

    monkeypatch.setattr(torch.cuda, "graph", failing)
    model, res = _poisson1d_residuals()
    with pytest.raises(RuntimeError, match="previous error during capture"):
        _CapturedGradient(res, list(model.parameters()))
    assert len(fake_cuda["set_stream"]) == 1  # the stream current before the capture
