"""kanpde.allocator, checked in fresh processes since the setting is process-wide (its effect
on speed is measured by ``benchmarks/throughput.py --allocator kanpde|default``)."""

import os
import platform
import subprocess
import sys

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def run(code, *args, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root,
        env={
            **{k: v for k, v in os.environ.items() if k != "KANPDE_MALLOPT"},
            "OMP_NUM_THREADS": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.split()


def test_applied_on_glibc_and_switched_off_by_the_environment():
    code = "from kanpde.allocator import retain_freed_memory as r; print(r(), r())"
    assert run(code) == [str(GLIBC)] * 2
    assert run(code, KANPDE_MALLOPT="0") == ["False", "False"]
