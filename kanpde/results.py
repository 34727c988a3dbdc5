"""Self-describing HDF5 results files.

Layout of ``result.h5``:

* root attributes: ``format`` (``"kanpde-result"``, which :func:`load` requires),
  ``kanpde_version``, ``torch_version``, ``problem``, ``problem_file``, ``problem_hash``,
  ``created``, ``finished``, ``names`` and ``outputs`` (JSON lists), ``time_axis`` (-1 without
  time), ``reference`` (``exact``, or ``reference`` for a reference solution), ``config``,
  ``metrics`` and ``events`` (JSON);
* ``history/<column>``: one dataset per logged column (step, stage, grid, evals, loss terms,
  test errors, and ``time``, the training clock: wall time is ``metrics["wall_time"]``);
* ``solution/``: ``x`` (evaluation points), ``pred``, ``ref`` (exact/reference) and ``error``
  (signed, ``pred - ref``), with attributes ``names`` (axes) and ``outputs``;
* ``model/``: attribute ``config`` (JSON) and ``state/<name>`` datasets — enough to rebuild the
  model without pickle.

Files are written atomically: to a temporary file in the same directory, flushed and fsynced,
then renamed over the target.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch
from torch import nn

from .nn import from_config
from .problem import _first_line, _near_match, _one_line

if TYPE_CHECKING:  # training imports this module
    from .problem import Problem
    from .training import Trainer

# Nodes per axis of the grid a run without a reference solution stores its prediction on.
EVAL_GRID = {1: 201, 2: 101, 3: 31}


class ResultsError(ValueError):
    """A results file is missing, truncated, corrupt or not a kanpde results file."""


def _version() -> str:
    from . import __version__

    return __version__


@dataclass
class Run:
    """A finished (or interrupted) run: configuration, history, solution and model state.

    Runs come from :func:`kanpde.solve` and :func:`load`; the properties :attr:`names` and
    :attr:`outputs` give the axis and output names.

    Attributes
    ----------
    config : dict
        Problem name, model config, schedule, points, weights, seed, device, dtype, parameters.
    history : dict of str → ndarray
        Logged columns (``step``, ``loss``, ``loss_<term>``, ``mse``, ``rel_l2``, ``time``, ...).
    solution : dict of str → ndarray
        ``x`` ``(N, D)``, ``pred``, ``ref`` and ``error`` (``pred - ref``) ``(N, outputs)`` on
        the evaluation set; without an exact or reference solution only ``x`` and ``pred``, on
        the domain's grid.
    metrics : dict
        Final test errors, wall time, steps.
    attrs : dict
        Versions, problem file and hash, timestamps.
    events : list of dict
        Grid extensions and updates (step, grid, loss before/after), resampling, non-finite
        steps, time-budget ends.
    state : dict of str → ndarray
        The model's state dict (see :meth:`model`).
    path : Path or None
        Where the run was saved or loaded from.
    """

    config: dict = field(repr=False)
    history: dict = field(repr=False)
    solution: dict = field(repr=False)
    metrics: dict
    attrs: dict = field(default_factory=dict, repr=False)
    events: list = field(default_factory=list, repr=False)
    state: dict = field(default_factory=dict, repr=False)
    path: Path | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Axis names of the points, in column order (time last); empty if not recorded."""
        return tuple(self.attrs.get("names", ()))

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output names, in column order (``("u",)`` if not recorded)."""
        return tuple(self.attrs.get("outputs", ("u",)))

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The trained model, rebuilt from the stored config and state, in eval mode.

        Parameters
        ----------
        device : str or torch.device
            Where to build it.

        Returns
        -------
        nn.Module
            A KAN or MLP in the run's dtype.

        Raises
        ------
        ResultsError
            If the stored config is corrupt or the state does not fit it.
        ValueError
            If the model's type is unknown, or is ``"custom"``: a module of the user's own,
            which cannot be rebuilt (build it and load :meth:`state_dict` into it).
        """
        cfg = self.config["model"]
        dtype = {"float32": torch.float32, "float64": torch.float64}[
            self.config.get("dtype", "float64")
        ]
        where = self.path if self.path is not None else "the run"
        try:
            net = from_config(cfg, dtype=dtype, device=device)
        except (KeyError, TypeError) as e:  # (its ValueErrors say what to do: a custom module)
            raise ResultsError(f"{where}: corrupt model config ({_first_line(e)})") from None
        state = self.state_dict(device)
        try:
            net.load_state_dict(state)
        except (KeyError, RuntimeError) as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            # a file edited or damaged by hand (truncated ones fail to load before this)
            raise ResultsError(
                f"{where}: its model state does not fit its model config ({_first_line(e)})"
            ) from None
        net.eval()
        return net

    def predict(self, x: np.ndarray | Sequence[float], batch: int = 65536) -> np.ndarray:
        """The trained model's values at the points ``x`` (NumPy in, NumPy out, on the CPU).

        Parameters
        ----------
        x : array_like
            ``(N, D)`` points, or one point ``(D,)``, with the problem's axes in order (time
            last), any float or integer type. On a 1-D domain ``(N,)`` is N points (as from
            ``np.linspace``) and a number one point.
        batch : int
            Points per model call (bounds the memory of a large ``x``).

        Returns
        -------
        ndarray
            ``(N, outputs)`` values in the run's dtype; ``(outputs,)`` for one point ``(D,)``
            or a number.
        """
        if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
            raise ValueError(f"predict: batch must be a positive integer, got {batch!r}")
        batch = int(batch)
        net = self.__dict__.get("_net")
        if net is None:  # rebuilt once per run, not once per call
            if self.config.get("model", {}).get("type") == "custom":
                raise ValueError(
                    "predict: this run trained a module of your own, which kanpde cannot "
                    "rebuild; build it again, load run.state_dict() and call it on the points"
                )
            net = self.__dict__["_net"] = self.model()
        dtype = next(net.parameters()).dtype
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if np.iscomplexobj(x):
            raise ValueError("predict: x is complex; points are real")
        pts = np.ascontiguousarray(x, dtype=np.float64)  # also a flipped view (negative strides)
        dim = len(self.names) or (pts.shape[-1] if np.ndim(x) else 1)
        one = np.ndim(x) == 0 or (pts.ndim == 1 and dim > 1)  # (ascontiguousarray is ≥ 1-d)
        if pts.ndim < 2:  # one point, or N points of a 1-D domain
            pts = pts.reshape(1, -1) if dim > 1 else pts.reshape(-1, 1)
        if pts.ndim != 2 or pts.shape[1] != dim:
            axes = f" ({', '.join(self.names)})" if self.names else ""
            raise ValueError(
                f"predict: x must be (N, {dim}) points{axes} or one point ({dim},), "
                f"got shape {np.shape(x)}"
                + (" (a 0-d value is a point of a 1-D domain)" if np.ndim(x) == 0 else "")
            )
        with torch.no_grad():
            t = torch.as_tensor(pts, dtype=dtype, device="cpu")
            parts = [net(t[i : i + batch]) for i in range(0, len(t), batch)]
            out = torch.cat(parts) if parts else t.new_zeros(0, len(self.outputs))
        values = out.numpy()
        return values[0] if one else values

    @property
    def unknowns(self) -> dict[str, float]:
        """The trained values of the unknown coefficients (``Problem.unknowns``, and the
        one-number parameters of a module of the user's own), by name; empty if none."""
        return {k[6:]: v for k, v in self.metrics.items() if k.startswith("param_")}

    def state_dict(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The trained parameters and buffers as tensors, for ``module.load_state_dict``.

        Parameters
        ----------
        device : str or torch.device
            Where to put the tensors.

        Returns
        -------
        dict of str → Tensor
        """
        return {k: torch.as_tensor(v, device=device) for k, v in self.state.items()}

    @classmethod
    def from_trainer(cls, trainer: Trainer, problem: Problem, config: dict, started: float) -> Run:
        """The run a trainer has made so far: its history, test-set (or grid) solution,
        metrics and model state.

        Parameters
        ----------
        trainer : Trainer
            The trainer, after (or during) training.
        problem : Problem
            The problem it solves.
        config : dict
            The run's configuration (stored as :attr:`config`).
        started : float
            When the run started (``time.time()``), for ``created`` and the wall time.

        Returns
        -------
        Run
            Not yet saved (``path`` is None).
        """
        hist = trainer.history.columns()
        solution: dict = {}
        metrics: dict = {
            "steps": trainer.step,
            "evals": trainer.evals,
            "train_time": trainer.train_time,
            # with the time of the processes a resumed run ran in before
            "wall_time": getattr(trainer, "wall_before", 0.0) + time.time() - started,
            "parameters": config.get("parameters"),
        }
        if trainer.test is not None:
            x, ref = trainer.test
            pred = trainer.predict(x)
            solution = {
                "x": x.cpu().numpy(),
                "pred": pred.cpu().numpy(),
                "ref": ref.cpu().numpy(),
                "error": (pred - ref).cpu().numpy(),
            }
            metrics.update(trainer.metrics())
        else:  # no reference: the prediction alone, on the domain's grid, for plots
            p = next(trainer.model.parameters())
            n = EVAL_GRID.get(problem.domain.dim, 11)
            x = torch.as_tensor(problem.domain.grid(n).points, dtype=p.dtype, device=p.device)
            solution = {"x": x.cpu().numpy(), "pred": trainer.predict(x).cpu().numpy()}
        metrics["loss"] = trainer.history.last("loss")
        from .problem import file_hash

        attrs = {
            "kanpde_version": _version(),
            "torch_version": str(torch.__version__),
            "problem": problem.name,
            # absolute: a run is often read from another directory (notebooks, plots)
            "problem_file": str(Path(problem.source).resolve()) if problem.source else "",
            "problem_hash": file_hash(problem.source),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "names": list(problem.domain.names),
            "outputs": list(problem.outputs),
            # -1: steady; otherwise the column of x that is time
            "time_axis": -1 if problem.domain.time_axis is None else problem.domain.time_axis,
            "reference": "exact" if problem.exact is not None else "reference",
        }
        # the rows each loss term trained on (config["points"] holds the counts asked for: a
        # grid rounds them, and a steady domain draws no initial points)
        res = trainer.residuals
        if hasattr(res, "interior") and hasattr(res, "terms"):
            # all processes' points (_full), not this rank's shard: the run's, on any rank
            full = getattr(res, "_full", None) or [res.interior.x] + [t.points.x for t in res.terms]
            drawn = {"pde": int(full[0].shape[0])}
            drawn.update({t.name: int(x.shape[0]) for t, x in zip(res.terms, full[1:])})
            attrs["points_drawn"] = drawn
            from . import distributed

            if distributed.active():  # each process trains on its own shard of the points
                attrs["points_drawn_of"] = (
                    f"all {distributed.world()} processes; each trained on its shard"
                )
        # the network's state (what model() rebuilds); the unknowns' values are in metrics
        net = trainer.residuals.model
        state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        metrics.update(trainer.param_values())
        return cls(config, hist, solution, metrics, attrs, list(trainer.history.events), state)


def _json(obj) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(obj, default=default)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path`` (never a half-written file).

    Raises
    ------
    ResultsError
        One line naming ``path`` when the file system refuses (no space, no permission).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are to share
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ResultsError(f"{path}: could not be written ({_one_line(e)})") from e
        raise
    try:  # make the rename itself durable; not possible on every platform
        dirfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dirfd)
    except OSError:
        pass
    finally:
        os.close(dirfd)


def write_h5_atomic(path: Path, fill: Callable[[h5py.File], None]) -> None:
    """Build an HDF5 file in memory with ``fill(file)``, then write it as :func:`write_atomic`.

    HDF5 writing to disk itself fails badly on a full disk: objects it cannot close print
    a traceback each (a thousand lines per checkpoint) and later crash the interpreter. Built
    in memory, the bytes reach the disk by Python's own write, whose failure is one OSError.
    The price is a second copy of the file in memory while it is written: a checkpoint holds
    the parameters, Adam's two moments, L-BFGS's history (two vectors per remembered step) and
    the points, a few MB for kanpde's PINNs.

    Raises
    ------
    ResultsError
        One line naming ``path`` when the file system refuses (no space, no permission).
    """
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    data = buf.getbuffer()
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def save_run(run: Run, out: str | Path) -> Path:
    """Write ``run`` to ``out/result.h5`` (or to ``out`` if it ends in ``.h5``); return the path."""
    out = Path(out)
    path = out if out.suffix == ".h5" else out / "result.h5"

    def fill(f: h5py.File) -> None:
        for k, v in run.attrs.items():
            if isinstance(v, np.generic):  # np.int64(1) would be saved as the text '1'
                v = v.item()
            if isinstance(v, list | tuple | dict):  # a tuple's text read back as characters
                v = _json(v)
            elif not isinstance(v, bool | int | float):
                v = str(v)  # e.g. torch's version object
            f.attrs[k] = v
        f.attrs["format"] = "kanpde-result"
        f.attrs["config"] = _json(run.config)
        f.attrs["metrics"] = _json(run.metrics)
        f.attrs["events"] = _json(run.events)
        h = f.create_group("history")
        for k, v in run.history.items():
            h.create_dataset(k, data=np.asarray(v))
        s = f.create_group("solution")
        for k, v in run.solution.items():
            s.create_dataset(k, data=np.asarray(v))
        s.attrs["names"] = _json(list(run.names))
        s.attrs["outputs"] = _json(list(run.outputs))
        m = f.create_group("model")
        m.attrs["config"] = _json(run.config.get("model", {}))
        st = m.create_group("state")
        for k, v in run.state.items():
            st.create_dataset(k, data=np.asarray(v))

    write_h5_atomic(path, fill)
    run.path = path
    return path


def load_progress(path: str | Path) -> Run:
    """The run so far of one still training or interrupted, from its ``checkpoint.h5``.

    Its history, events, configuration and model state as of the last checkpoint, for
    :func:`kanpde.plot.history`; no solution or test metrics (``metrics`` holds ``steps``,
    ``train_time`` and ``parameters``, and ``attrs["in_progress"]`` is True).

    Raises
    ------
    ResultsError
        One line naming the file when there is no readable checkpoint.
    """
    from .checkpoint import load_checkpoint
    from .training import History

    path = Path(path)
    state = load_checkpoint(path)
    path = path / "checkpoint.h5" if path.is_dir() else path
    config = json.loads(state["config"])
    logged = json.loads(state["history"])
    history = History()
    history.rows = logged.get("rows", [])
    counters = state.get("counters", {})
    metrics = {
        "steps": int(state["position"]["step"]),
        "train_time": float(counters.get("train_time", np.nan)),
        "parameters": config.get("parameters"),
    }
    attrs = {"problem": config.get("problem", ""), "in_progress": True}
    model_state = dict(state.get("model_state", {}))
    if config.get("unknowns"):  # trained as losses.WithUnknowns: the network is its .net
        metrics.update({f"param_{k[9:]}": float(v) for k, v in model_state.items()
                        if k.startswith("unknowns.")})  # fmt: skip
        model_state = {k[4:]: v for k, v in model_state.items() if k.startswith("net.")}
    run = Run(config, history.columns(), {}, metrics, attrs, logged.get("events", []),
              model_state, path)  # fmt: skip
    if config.get("model", {}).get("type") in ("kan", "mlp"):
        # The config is the run's start: a grid extended since then is the state's.
        from .nn import count_parameters
        from .training import model_config

        net = run.model()
        now = model_config(net)
        if now != config["model"]:
            config["model"] = now
            config["parameters"] = metrics["parameters"] = count_parameters(net)
    return run


def load(path: str | Path) -> Run:
    """Load a results file written by :func:`save_run`, or a run directory's ``result.h5``.

    Parameters
    ----------
    path : str or Path
        A run directory or its ``result.h5``.

    Returns
    -------
    Run

    Raises
    ------
    ResultsError
        One line naming the file when it is missing, truncated, corrupt or of another kind.
    """
    path, given = Path(path), Path(path)
    if path.suffix == ".py":
        raise ResultsError(
            f"{path}: a problem file, not results; give a run directory or its result.h5 "
            f"(kanpde solve {path} writes one)"
        )
    study = "load a study with kanpde.compare.Comparison.load(path)"
    if path.is_dir():
        if (path / "comparison.h5").exists() and not (path / "result.h5").exists():
            raise ResultsError(f"{path}: a comparison study, not a run; {study}")
        if (path / "extension.h5").exists() and not (path / "result.h5").exists():
            raise ResultsError(
                f"{path}: a grid sweep, not a run; its grid-extension run is "
                f"{path / 'extension.h5'} (sweep.csv holds the table)"
            )
        path = path / "result.h5"
    if not path.exists():
        if (path.parent / "checkpoint.h5").exists():
            raise ResultsError(
                f"{path}: not written yet; the run is training or was interrupted (its "
                f"checkpoint.h5 is there): kanpde plot {path.parent} --kind history shows its "
                f"progress, kanpde solve PROBLEM --resume {path.parent} continues it"
            )
        hint = _near_match(given) if not given.exists() else ""
        raise ResultsError(f"{path}: results file not found{hint}")
    if not h5py.is_hdf5(path):
        raise ResultsError(
            f"{path}: not an HDF5 file (empty, cut short or of another format); kanpde's results "
            "are the result.h5 of a run directory"
        )
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == "kanpde-comparison":
                raise ResultsError(f"{path}: a comparison study, not a run; {study}")
            if f.attrs.get("format") != "kanpde-result":
                raise ResultsError(f"{path}: not a kanpde results file")
            attrs = {}
            for k, v in f.attrs.items():
                if k in ("config", "metrics", "events", "format"):
                    continue
                if isinstance(v, str) and v[:1] in "[{":
                    try:
                        v = json.loads(v)
                    except json.JSONDecodeError:
                        pass
                attrs[k] = v.item() if isinstance(v, np.generic) else v
            config = json.loads(f.attrs["config"])
            metrics = json.loads(f.attrs["metrics"])
            events = json.loads(f.attrs.get("events", "[]"))
            history = {k: f["history"][k][()] for k in f["history"]}
            solution = {k: f["solution"][k][()] for k in f["solution"]}
            state = {k: f["model/state"][k][()] for k in f["model/state"]}
    except ResultsError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise ResultsError(
            f"{path}: unreadable or corrupt results file ({_first_line(e)})"
        ) from None
    shapes = [(config, dict, "config"), (metrics, dict, "metrics"), (events, list, "events")]
    if isinstance(config, dict) and "model" in config:  # (a Run of one's own may have none)
        shapes.append((config["model"], dict, "config's model"))
    if isinstance(events, list):
        shapes += [(e, dict, "event") for e in events]
    for value, kind, name in shapes:
        if not isinstance(value, kind):
            raise ResultsError(
                f"{path}: corrupt results file (its {name} is of type {type(value).__name__}, "
                f"not {kind.__name__})"
            )
    return Run(config, history, solution, metrics, attrs, events, state, path)
