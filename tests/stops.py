"""Faults for tests: a stop nothing in kanpde catches (resuming from a checkpoint) and
non-finite losses (rollbacks)."""

from kanpde import training


class Killed(BaseException):
    """Stands for SIGKILL: nothing in kanpde catches it."""


def kill_after_checkpoint(monkeypatch, step: int) -> None:
    """Make training die (:class:`Killed`) right after the first checkpoint at or past
    ``step`` is written, as a process killed there would leave it."""
    original = training.Trainer.save_checkpoint

    def save_then_die(self):
        original(self)
        if self.step >= step:
            raise Killed

    monkeypatch.setattr(training.Trainer, "save_checkpoint", save_then_die)


class Poisoned:
    """Wraps Residuals so that the evaluations numbered in ``bad`` (from 1) return a NaN loss."""

    def __init__(self, residuals, bad):
        self.residuals, self.bad, self.calls = residuals, set(bad), 0

    def __getattr__(self, name):
        return getattr(self.residuals, name)

    def __call__(self):
        loss, terms = self.residuals()
        self.calls += 1
        if self.calls in self.bad:
            loss = loss * float("nan")
        return loss, terms
