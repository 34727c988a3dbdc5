"""The public API's documentation: submodules reachable from ``import kanpde``, and every
Parameters section naming exactly the parameters of its callable."""

import dataclasses
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

import kanpde

SUBMODULES = ("compare", "plot", "reference", "symbolic")


def test_submodules_resolve_after_plain_import_without_matplotlib():
    # a fresh interpreter: this one may have imported them (and matplotlib) already
    code = (
        "import sys, kanpde\n"
        "assert 'matplotlib' not in sys.modules, 'import kanpde imported matplotlib'\n"
        f"for name in {SUBMODULES!r}:\n"
        "    assert getattr(kanpde, name).__name__ == 'kanpde.' + name, name\n"
        "assert 'kanpde.compare' in sys.modules\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        kanpde.no_such_thing  # noqa: B018
    assert not hasattr(kanpde, "no_such_thing")


_HEADER = re.compile(r"^(\w[\w ]*)\n-+$", re.MULTILINE)


def documented(doc: str, section: str = "Parameters") -> list[str] | None:
    """Names in the docstring's ``section``, in order (None without one).

    Entries are the unindented lines of the section, ``name : type`` or ``a, b``; ``*args``
    keeps its stars."""
    headers = list(_HEADER.finditer(doc))
    found = [i for i, m in enumerate(headers) if m.group(1) == section]
    if not found:
        return None
    i = found[0]
    end = headers[i + 1].start() if i + 1 < len(headers) else len(doc)
    names = []
    for line in doc[headers[i].end() : end].splitlines():
        if line.strip() and not line[0].isspace():
            names += [n.strip() for n in line.split(" : ")[0].split(",")]
    return names


def signature(obj) -> inspect.Signature | None:
    """What a caller passes; None for a class whose constructor is a builtin's (an exception
    taking a message, a warning)."""
    if inspect.isclass(obj) and not (
        inspect.isfunction(obj.__init__) or inspect.isfunction(obj.__new__)
    ):
        return None
    return inspect.signature(obj)


def forwarded(obj) -> set[str]:
    """Keywords a class's ``**kwargs`` may carry: its bases' constructor parameters."""
    if not inspect.isclass(obj):
        return set()
    names = set()
    for base in obj.__mro__[1:]:
        if inspect.isfunction(base.__dict__.get("__init__")):
            names |= set(inspect.signature(base.__init__).parameters) - {"self"}
    return names


def check(name: str, obj) -> None:
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert doc, f"{name} has no docstring"
    sig = signature(obj)
    if sig is None or not sig.parameters:
        return
    params = list(sig.parameters.values())
    entries = documented(doc)
    if entries is None and dataclasses.is_dataclass(obj):  # its fields, documented once
        entries = documented(doc, "Attributes")
    assert entries is not None, f"{name} takes {list(sig.parameters)} but has no Parameters"
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    star = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    expected = [star.get(p.kind, "") + p.name for p in params]
    kwargs = next((p for p in params if p.kind == p.VAR_KEYWORD), None)
    if kwargs is not None and f"**{kwargs.name}" not in entries:
        # the keywords it forwards, named one by one after the others
        expected.remove(f"**{kwargs.name}")
        extra = entries[len(expected) :]
        unknown = set(extra) - (forwarded(obj) - set(named))
        assert not unknown, f"{name}: documents {sorted(unknown)}, which it does not take"
        expected += extra
    assert entries == expected, f"{name}: documented {entries}, signature {expected}"


PUBLIC = sorted(
    name
    for name in kanpde.__all__
    if inspect.isclass(getattr(kanpde, name)) or inspect.isfunction(getattr(kanpde, name))
)


@pytest.mark.parametrize("name", PUBLIC)
def test_parameters_section_names_the_signature(name):
    check(name, getattr(kanpde, name))


def _module_public(module: str) -> list[str]:
    """The public functions and classes a submodule defines (its ``__all__`` when it has one)."""
    mod = importlib.import_module(f"kanpde.{module}")
    names = getattr(mod, "__all__", None) or [
        n
        for n, v in vars(mod).items()
        if not n.startswith("_") and getattr(v, "__module__", "") == mod.__name__
    ]
    return sorted(
        f"{module}.{n}"
        for n in names
        if inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n))
    )


# the submodules the README sends users to, beyond the names kanpde re-exports
SUBMODULE_PUBLIC = [
    name for m in ("symbolic", "reference", "plot", "compare", "nn") for name in _module_public(m)
]


@pytest.mark.parametrize("name", SUBMODULE_PUBLIC)
def test_submodule_parameters_sections_name_the_signature(name):
    module, attr = name.rsplit(".", 1)
    check(name, getattr(importlib.import_module(f"kanpde.{module}"), attr))


def test_check_reads_grouped_starred_and_forwarded_entries():
    def f(a, b, *axes, c=1):
        """S.

        Parameters
        ----------
        a, b : int
            x.
        *axes : int
            y.
        c : int
            z.

        Returns
        -------
        int
        """

    check("f", f)
    f.__doc__ = f.__doc__.replace("c : int", "d : int")
    with pytest.raises(AssertionError, match="documented"):
        check("f", f)

    class Base:
        def __init__(self, value=0, weight=1.0):
            pass

    class Sub(Base):
        """S.

        Parameters
        ----------
        axis : int
            x.
        weight
            As for Base.
        """

        def __init__(self, axis=0, **kw):
            super().__init__(**kw)

    check("Sub", Sub)
    Sub.__doc__ = Sub.__doc__.replace("weight", "wieght")
    with pytest.raises(AssertionError, match="does not take"):
        check("Sub", Sub)


# documented classes the engine's users reach for, outside kanpde.__all__
ENGINE = ["training.Trainer", "losses.Residuals"]


@pytest.mark.parametrize("name", ENGINE)
def test_engine_parameters_sections_name_the_signature(name):
    module, attr = name.rsplit(".", 1)
    check(name, getattr(importlib.import_module(f"kanpde.{module}"), attr))
