"""Test-session settings."""

import os
from pathlib import Path

import pytest
import torch

# Folder datasets cache their decoded images (data/cache.py): a test session never writes into ~/.cache.
if "CNNZOO_CACHE" not in os.environ:
    import tempfile

    os.environ["CNNZOO_CACHE"] = tempfile.mkdtemp(prefix="cnnzoo-test-cache-")

# pytest-xdist runs one worker per core: one intra-op thread each, or they oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Debian's dataset-fashion-mnist: the tests on the real files skip with this reason where it is absent.
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION_DIR.is_dir(),
                                   reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
