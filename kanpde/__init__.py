"""kanpde: physics-informed Kolmogorov–Arnold networks for partial differential equations."""

__version__ = "0.1.0"

import importlib as _importlib
from typing import TYPE_CHECKING

from .conditions import Condition, Dirichlet, Initial, Neumann, Periodic, PointData, Robin
from .geometry import Box, Disk, Domain, Interval, Polygon, Rectangle, Time
from .nn import KAN, MLP, KANLayer, count_parameters
from .operators import d, derivatives, div, grad, hessian, laplacian, split
from .problem import KanpdeWarning, Problem, ProblemError, load_problem
from .results import ResultsError, Run, load
from .schedule import ScheduleError, Stage, parse_schedule
from .training import Interrupted, TrainingStopped, build_model, solve

__all__ = [
    "KAN",
    "MLP",
    "Box",
    "Condition",
    "Dirichlet",
    "Disk",
    "Domain",
    "Initial",
    "Interrupted",
    "Interval",
    "KANLayer",
    "KanpdeWarning",
    "Neumann",
    "Periodic",
    "PointData",
    "Polygon",
    "Problem",
    "ProblemError",
    "Rectangle",
    "ResultsError",
    "Robin",
    "Run",
    "ScheduleError",
    "Stage",
    "Time",
    "TrainingStopped",
    "__version__",
    "build_model",
    "count_parameters",
    "d",
    "derivatives",
    "div",
    "grad",
    "hessian",
    "laplacian",
    "load",
    "load_problem",
    "parse_schedule",
    "solve",
    "split",
]

# Imported on first access, so that `kanpde.compare.compare()` works after a plain
# `import kanpde` without every import paying for them (symbolic brings in sympy, ~0.7 s).
_SUBMODULES = ("compare", "plot", "reference", "symbolic")

if TYPE_CHECKING:
    from . import compare as compare
    from . import plot as plot
    from . import reference as reference
    from . import symbolic as symbolic


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
