"""Shared test configuration."""

import os

import torch

# The suite runs in parallel workers (pytest -n 2) on a 2-core machine: one intra-op thread per
# worker avoids oversubscription, which slows small-tensor work by an order of magnitude.
torch.set_num_threads(int(os.environ.get("KANPDE_TEST_THREADS", "1")))
