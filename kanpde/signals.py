"""Process signals: Ctrl-C, SIGTERM and SIGHUP end a run with its work kept.

* :func:`terminate_as_interrupt` makes SIGTERM and SIGHUP (a scheduler's stop, ``timeout``,
  a closed terminal) raise ``KeyboardInterrupt`` as Ctrl-C does, instead of killing the
  process before it can save anything;
* :func:`signals_held` keeps them out of a block of writes that belong together;
* :func:`installed` sets handlers for a block and puts the old ones back.

Python runs signal handlers in the main thread only, so each of them is a no-op elsewhere.
Handlers someone else set (``nohup``'s SIG_IGN, a user's own) are left alone.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOPS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def interrupt(signum: int = signal.SIGINT) -> KeyboardInterrupt:
    """A ``KeyboardInterrupt`` that names the signal it stands for (``signum``), so that the
    command line can exit with the shell's status for it (see :func:`exit_status`)."""
    stop = KeyboardInterrupt()
    stop.signum = int(signum)
    return stop


def signal_of(stop: BaseException) -> int:
    """The signal a ``KeyboardInterrupt`` stands for (``SIGINT`` unless it names another)."""
    return int(getattr(stop, "signum", signal.SIGINT))


def exit_status(stop: BaseException) -> int:
    """128 + the signal that stopped the process: 130 for Ctrl-C, 143 for SIGTERM, 129 for
    SIGHUP, as a shell reports a process the signal killed (schedulers read it so)."""
    return 128 + signal_of(stop)


def stop_now(signum, frame) -> None:
    """SIGTERM or SIGHUP as a ``KeyboardInterrupt``, as Ctrl-C raises one."""
    raise interrupt(signum)


def kanpde_stops(sig: int, handler) -> bool:
    """Whether ``handler`` of ``sig`` stops the process the way kanpde handles: Ctrl-C's
    default, or SIGTERM/SIGHUP untouched or made a KeyboardInterrupt by kanpde."""
    if sig == signal.SIGINT:
        return handler is signal.default_int_handler
    return handler is signal.SIG_DFL or handler is stop_now


def main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def installed(handlers: dict[int, Callable]) -> Iterator[None]:
    """Set ``handlers`` (signal → handler) while the block runs; the old ones come back.

    A handler may raise between two of the calls that set or restore them (a stop arriving
    then): every old handler is put back all the same.
    """
    previous = {sig: signal.getsignal(sig) for sig in handlers}
    try:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        yield
    finally:
        _restore(list(previous.items()))


def _restore(previous: list) -> None:
    """Put each ``(signal, handler)`` back; one raising in between does not stop the rest."""
    if previous:
        try:
            signal.signal(*previous[0])
        finally:
            _restore(previous[1:])


@contextlib.contextmanager
def terminate_as_interrupt(active: bool = True) -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt`` while the block runs (where their
    handler is the default), so that a run ends with its checkpoint and clean-up."""
    own = {}
    if active and main_thread():
        own = {sig: stop_now for sig in STOPS[1:] if signal.getsignal(sig) is signal.SIG_DFL}
    with installed(own):
        yield


def _deliver(sigs: list[int]) -> None:
    """Raise each signal in turn; one whose handler raises does not keep the rest back."""
    if sigs:
        try:
            signal.raise_signal(sigs[0])
        finally:
            _deliver(sigs[1:])


@contextlib.contextmanager
def signals_held(deliver: bool = True) -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, so that files written together
    (a study's csv, md and h5) are never left disagreeing, nor one file half-written.

    Handlers that only note the signal stand in for the old ones, which get it after the
    block (a signal mask would not do: the kernel hands a process's signal to any thread that
    does not block it, such as torch's or tqdm's). A stop kanpde would act on is dropped with
    ``deliver=False`` (the caller is stopping already) and when the block failed (its error
    is the news); other handlers, a user's own, get their signals in any case.
    """
    if not main_thread():
        yield
        return
    # None: a handler set outside Python, which could not be put back
    previous = {sig: signal.getsignal(sig) for sig in STOPS}
    previous = {sig: h for sig, h in previous.items() if h is not None}
    pending: list[int] = []
    failed = False
    try:
        with installed({sig: lambda signum, frame: pending.append(signum) for sig in previous}):
            yield
    except BaseException:
        failed = True
        raise
    finally:
        drop = failed or not deliver
        _deliver([s for s in dict.fromkeys(pending) if not (drop and kanpde_stops(s, previous[s]))])
