"""Shared test configuration."""

import os
import signal

import pytest
import torch

# The suite runs in parallel workers (pytest -n 2) on a 2-core machine: one intra-op thread per
# worker avoids oversubscription, which slows small-tensor work by an order of magnitude.
torch.set_num_threads(int(os.environ.get("KANPDE_TEST_THREADS", "1")))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture
def handlers_back():
    """Put the three stop signals' handlers back as they were (for tests that change them)."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)
