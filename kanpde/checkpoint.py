"""Checkpoints: the whole training state in one HDF5 file, written atomically.

A checkpoint holds the run configuration, the model state, the optimizer state (Adam moments or
the L-BFGS memory), the random number generator states, the collocation points and the trainer's
position and history, so that ``kanpde solve PROBLEM --resume RUN_DIR`` continues a killed run
exactly where its last checkpoint left it. Nested Python containers of tensors (optimizer
``state_dict()`` s) are stored as HDF5 groups; nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from .problem import _first_line
from .results import ResultsError, write_h5_atomic

FORMAT = "kanpde-checkpoint"


def _write(group: h5py.Group, key: str, obj) -> None:
    """Store ``obj`` (tensor, array, scalar, str, None, list/tuple/dict of those) under ``key``."""
    if isinstance(obj, torch.Tensor):
        data = obj.detach().cpu()
        ds = group.create_dataset(key, data=data.numpy() if data.ndim else data.numpy()[()])
        ds.attrs["kind"] = "tensor"
        ds.attrs["dtype"] = str(data.dtype).replace("torch.", "")
    elif isinstance(obj, np.ndarray):
        group.create_dataset(key, data=obj).attrs["kind"] = "array"
    elif isinstance(obj, dict):
        odd = [k for k in obj if type(k) not in (int, str)]  # bool too: True and 1 would collide
        if odd:
            raise TypeError(f"cannot store a dict key {odd[0]!r} in a checkpoint (int or str only)")
        sub = group.create_group(key)
        sub.attrs["kind"] = "dict"
        sub.attrs["keys"] = json.dumps([[type(k).__name__, str(k)] for k in obj])
        for i, value in enumerate(obj.values()):
            _write(sub, str(i), value)
    elif isinstance(obj, list | tuple):
        sub = group.create_group(key)
        sub.attrs["kind"] = "list" if isinstance(obj, list) else "tuple"
        sub.attrs["length"] = len(obj)
        for i, value in enumerate(obj):
            _write(sub, str(i), value)
    elif obj is None or isinstance(obj, bool | int | float | str):
        ds = group.create_dataset(key, data=h5py.Empty("f"))
        ds.attrs["kind"] = "scalar"
        ds.attrs["value"] = json.dumps(obj)
    else:
        raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _read(node):
    kind = node.attrs["kind"]
    if kind == "tensor":
        value = node[()]
        dtype = getattr(torch, node.attrs["dtype"])
        # load_state_dict copies the values into the model's own device
        return torch.as_tensor(np.asarray(value), dtype=dtype, device="cpu")
    if kind == "array":
        return node[()]
    if kind == "scalar":
        return json.loads(node.attrs["value"])
    if kind == "dict":
        keys = json.loads(node.attrs["keys"])
        out = {}
        for i, (typ, k) in enumerate(keys):
            out[int(k) if typ == "int" else k] = _read(node[str(i)])
        return out
    items = [_read(node[str(i)]) for i in range(int(node.attrs["length"]))]
    return items if kind == "list" else tuple(items)


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (a dict of storable objects, see :func:`_write`) atomically to ``path``."""
    path = Path(path)

    def fill(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        for key, value in state.items():
            _write(f, key, value)

    write_h5_atomic(path, fill)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    ResultsError
        One line naming the file when it is missing, truncated or not a kanpde checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.h5"
    if not path.parent.is_dir():
        raise ResultsError(f"{path.parent}: no such run directory")
    if not path.exists():
        done = (path.parent / "result.h5").exists()
        why = "the run has finished (result.h5)" if done else "no checkpoint to resume from"
        raise ResultsError(f"{path}: {why}")
    if not h5py.is_hdf5(path):
        raise ResultsError(f"{path}: not an HDF5 file (empty, cut short or of another format)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ResultsError(f"{path}: not a kanpde checkpoint")
            return {key: _read(f[key]) for key in f}
    except ResultsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise ResultsError(f"{path}: unreadable or corrupt checkpoint ({_first_line(e)})") from None
