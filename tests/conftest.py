"""Test-session settings."""

import os

import torch

# pytest-xdist runs one worker per core: one intra-op thread each, or they oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
