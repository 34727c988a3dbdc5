"""Every tensor the library creates lands on the device of the data it meets.

On CUDA an op refuses a CPU operand that is not a 0-d scalar, so a factory call without
``device=`` (``torch.arange(k + 1)`` next to a grid buffer) breaks every GPU run while every
CPU test passes: exactly such a call, in the spline tables, once slipped through. This machine
has no GPU, so the check is static: each torch factory call in ``kanpde/`` names its device
(``device=`` or a ``**factory`` of keyword arguments). Tensors meant for the CPU (NumPy fits,
checkpoint reads) say ``device="cpu"``: without it they would follow
``torch.set_default_device``, which some libraries (DeepXDE) set to the GPU on import.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kanpde"
FACTORIES = {
    "arange", "as_tensor", "empty", "eye", "full", "linspace", "logspace", "ones", "rand",
    "randint", "randn", "tensor", "zeros", "from_numpy",
}  # fmt: skip


def _unplaced(source: str) -> list[tuple[int, str]]:
    """``(line, call)`` of the torch factory calls in ``source`` that name no device."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        f = node.func
        if not (isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in FACTORIES):
            continue
        if any(k.arg in ("device", None) for k in node.keywords):  # None: **kwargs
            continue
        found.append((node.lineno, f"torch.{f.attr}"))
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_factory_calls_name_their_device(path):
    bad = _unplaced(path.read_text())
    assert not bad, f"{path.relative_to(PACKAGE.parent)}: " + ", ".join(
        f"line {n}: {call}(...) without device=" for n, call in bad
    )


def test_the_check_catches_the_call_that_broke_cuda():
    # The spline-table line before its fix, and the forms the check lets through.
    broken = "powers = inv_h ** torch.arange(k + 1, dtype=t.dtype).view(-1, 1, 1)\n"
    assert _unplaced(broken) == [(1, "torch.arange")]
    fixed = "powers = inv_h ** torch.arange(k + 1, dtype=t.dtype, device=t.device)\n"
    assert _unplaced(fixed) == []
    assert _unplaced("w = torch.zeros(3, **factory)\n") == []
    assert _unplaced("z = torch.zeros(3, device='cpu')\n") == []
    assert _unplaced("z = h.new_zeros(3)\n") == []
