"""A stop that nothing in kanpde catches, for tests of resuming from a checkpoint."""

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
