"""Shared fixtures: kernel sets, the PyTorch reference, Hypothesis profile."""

from __future__ import annotations

import os

# The tests multiply small matrices: one BLAS thread is fastest, and a BLAS thread pool spinning
# against the other core's test work can slow a run many times over. Set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from nanogan import _kernels  # noqa: E402

settings.register_profile(
    "default", max_examples=int(os.environ.get("NANOGAN_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
)
settings.load_profile("default")

KERNEL_SETS = _kernels.available()


@pytest.fixture(params=KERNEL_SETS)
def kernel_set(request):
    """Run the test under each available kernel set (reference, numba, cython)."""
    previous = _kernels.get_backend()
    _kernels.set_backend(request.param)
    yield request.param
    _kernels.set_backend(previous)


@pytest.fixture(scope="session")
def torch():
    """PyTorch in float64 on one thread: the reference implementation for the comparisons."""
    t = pytest.importorskip("torch")
    t.set_num_threads(1)
    return t


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
