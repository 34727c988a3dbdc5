"""Shared helpers of the benchmark scripts: machine description, timing, result files."""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# KANPDE_RESULTS=DIR sends a trial run's files elsewhere, leaving the ones the README cites alone
RESULTS = Path(os.environ.get("KANPDE_RESULTS") or Path(__file__).resolve().parent / "results")


def machine(device: str) -> dict:
    """What ran the benchmark: CPU model and cores, GPU, threads, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "platform": platform.platform(),
        "device": device,
    }
    from kanpde import allocator

    info["allocator"] = (
        "freed memory kept (glibc mallopt: mmap threshold 32 MiB, trim threshold 256 MiB)"
        if allocator._applied
        else "default"
    )
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        import kanpde

        info["kanpde"] = kanpde.__version__
    except ImportError:
        pass
    info["kanpde_commit"] = _commit()
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from peers import versions

        info.update({k: v for k, v in versions().items() if k in ("pykan", "deepxde")})
    except Exception:  # noqa: BLE001 - peers are optional extras
        pass
    return info


@functools.cache
def _commit() -> str | None:
    """The measured code's git commit (``+dirty`` with uncommitted changes), or None.

    Read once, when the script starts (below): a commit made while a long benchmark runs is
    not the code it measures.

    A copy without ``.git`` (the GPU machine gets the working tree only) takes it from
    ``$KANPDE_COMMIT``, which the command that ships the copy sets.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        sha = run("rev-parse", "HEAD")
        # the results themselves do not make the measured code dirty; the problem files set
        # the workloads (weights, points, schedules), so they count as measured code
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "kanpde", "benchmarks",
                    "problems", ":(exclude)benchmarks/results")  # fmt: skip
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("KANPDE_COMMIT") or None


_commit()


def add_allocator_option(ap) -> None:
    ap.add_argument(
        "--allocator",
        choices=["kanpde", "default"],
        default="kanpde",
        help="kanpde: keep freed CPU memory for reuse, as kanpde's trainer does, for every "
        "implementation in the process (kanpde.allocator); default: glibc's own behaviour",
    )


def apply_allocator(choice: str) -> None:
    """Set the process's allocator before anything runs, so all implementations share it."""
    from kanpde.allocator import retain_freed_memory

    if choice == "kanpde":
        retain_freed_memory()
    else:
        os.environ["KANPDE_MALLOPT"] = "0"  # also for trainers started later in the process


def error_text(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters) for a results file."""
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))  # the measured GPU, not the current one


def rate(fn: Callable[[], object], device: str, seconds: float = 2.0, warmup: int = 5) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n % 5 == 0:
            sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    return n / (time.perf_counter() - t0)


_PARTIAL: set[str] = set()  # names of the partial files this process wrote


def save(name: str, payload: dict, partial: bool = False) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the date and command line added (and a copy
    to ``$OUT``, the device tool's output folder, when that is set).

    ``partial=True`` writes ``<name>-partial.json`` instead: the results so far of a run still
    going, kept if a time limit or a kill ends it, but never in place of a complete file the
    README cites. The complete file, written last, removes the partial ones.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        **({"partial": True} if partial else {}),
        **payload,
    }
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    file = f"{name}-partial.json" if partial else f"{name}.json"
    path = RESULTS / file
    path.write_text(json.dumps(payload, indent=1))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / file).write_text(path.read_text())
    if partial:
        _PARTIAL.add(file)
    else:
        for stale in _PARTIAL - {file}:
            for folder in (RESULTS, out):
                if folder is not None:
                    (folder / stale).unlink(missing_ok=True)
        _PARTIAL.clear()
    return path
