"""Shared test helpers: kernel sets, the PyTorch reference, tolerances, ``check``, Hypothesis.

Two things must be present for the suite to mean what it says, and their absence is an error,
never a skip:

* PyTorch (the ``test`` extra pins it): every layer, loss and optimizer is compared with it;
  likewise Pillow, for the image-folder datasets.
* the compiled kernel sets (Cython and Numba): the tests run every layer under every set, and a
  set that silently fell back to the NumPy reference would be tested as the reference twice.
  On an installation without a C compiler or Numba, ``NANOGAN_ALLOW_FALLBACK=1`` runs the suite
  on what is there (the pytest header says which sets ran). ``NANOGAN_REQUIRE_COMPILED=1`` (set
  by ``.ci/run``) makes the fallback an error even when it is allowed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

# The tests multiply small matrices: one BLAS thread is fastest, and a BLAS thread pool spinning
# against the other core's test work can slow a run many times over. Set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from nanogan import _kernels, backend  # noqa: E402
from nanogan.backend import to_numpy  # noqa: E402
from nanogan.gradcheck import rel_error  # noqa: E402

settings.register_profile(
    "default", max_examples=int(os.environ.get("NANOGAN_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
)
settings.load_profile("default")

KERNEL_SETS = _kernels.available()
COMPILED_SETS = ("cython", "numba")

#: Relative-error tolerances of the comparisons with PyTorch, by dtype.
TOL = {np.float64: 1e-8, np.float32: 1e-4}
#: The largest relative error each ``check`` name has seen in this run (for inspection).
MAX_ERR: dict[str, float] = {}

#: The device backend of the backend tests: the session's own when it is not NumPy (``cupy``
#: under ``NANOGAN_BACKEND=cupy``, as ``benchmarks/gpu_check.sh`` runs them), else the strict
#: test backend.
DEVICE_BACKEND = backend.get_backend() if backend.get_backend() != "numpy" else "strict"
#: Tolerances of the device backend's results against the NumPy backend's on CuPy, by dtype:
#: ``(rtol, atol relative to the largest reference value)``. CuPy runs other kernels, cuBLAS
#: products and reductions in another order; the strict backend runs NumPy's reference kernels
#: on the same numbers, so its results are compared exactly (or to the tolerance a test gives).
DEVICE_TOL = {np.dtype(np.float64): (1e-9, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}

__all__ = ["COMPILED_SETS", "DEVICE_BACKEND", "DEVICE_TOL", "KERNEL_SETS", "MAX_ERR", "TOL",
           "assert_backend_close", "check", "on_backend", "rel_error"]


def check(name: str, a, b, tol: float) -> None:
    """Assert ``rel_error(a, b) < tol`` (same shapes; a NaN fails), naming ``name`` if not."""
    err = rel_error(np.asarray(a), np.asarray(b))
    key = f"{name} [{'float64' if tol < 1e-6 else 'float32'}]"
    MAX_ERR[key] = max(MAX_ERR.get(key, 0.0), err)
    assert err < tol, f"{name}: relative error {err:.3e} >= {tol:.0e}"


@contextmanager
def on_backend(name: str, kernels: str | None = None) -> Iterator[str]:
    """Run a block on array backend ``name`` (with NumPy's kernel set ``kernels``, e.g.
    ``"reference"``, the kernels the device backends are checked against); the previous backend,
    and NumPy's kernel set, are restored afterwards. Yields ``name``."""
    previous = backend.get_backend()
    backend.set_backend("numpy")
    numpy_set = _kernels.get_backend()
    try:
        if name == "numpy" and kernels is not None:
            _kernels.set_backend(kernels)
        backend.set_backend(name)
        yield name
    finally:
        backend.set_backend("numpy")
        _kernels.set_backend(numpy_set)
        backend.set_backend(previous)


def assert_backend_close(got, want, what: str = "", tol: float = 0.0, *,
                         rtol: float | None = None, device: str | None = None) -> None:
    """Assert that ``got``, a result of the device backend (an array of any backend, or a Python
    number), agrees with ``want``, the NumPy backend's (same shape and dtype).

    On the strict backend (the same reference kernels on the same numbers): exactly, or with
    ``tol`` > 0 to ``tol`` times the largest ``|want|`` (at least 1). On CuPy: to
    :data:`DEVICE_TOL` of the dtype (float64 for Python floats), never tighter than ``tol``.
    ``rtol`` replaces the dtype's relative tolerance on CuPy (not on strict): results of several
    optimizer steps need more, as Adam's ``m / sqrt(v)`` magnifies the rounding differences of
    small gradients. Integers, booleans, strings and None are always compared exactly; NaNs
    match NaNs.
    ``device`` names the backend ``got`` came from (default :data:`DEVICE_BACKEND`: the
    comparison usually runs after the device block has ended)."""
    device = DEVICE_BACKEND if device is None else device
    if isinstance(want, bool | int | str | type(None)):
        assert got == want, f"{what}: {got!r} != {want!r}"
        return
    if isinstance(want, float):
        assert isinstance(got, float), f"{what}: a {type(got).__name__}, not a float"
    got, want = np.asarray(to_numpy(got)), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    exact = device == "strict" and tol == 0.0
    if exact or not np.issubdtype(want.dtype, np.inexact):
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    finite = np.abs(want[np.isfinite(want)])
    scale = max(float(finite.max(initial=0.0)), 1.0)
    if device == "strict":
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale, err_msg=what)
        return
    dtype_rtol, atol = DEVICE_TOL.get(want.dtype, DEVICE_TOL[np.dtype(np.float32)])
    rtol = dtype_rtol if rtol is None else rtol
    np.testing.assert_allclose(got, want, rtol=max(rtol, tol), atol=max(atol, tol) * scale,
                               err_msg=what)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def missing_kernel_sets() -> dict[str, str]:
    """The compiled kernel sets that did not load, with the reason."""
    return {name: str(_kernels.why_unavailable(name)) for name in COMPILED_SETS
            if name not in KERNEL_SETS}


def pytest_configure(config: pytest.Config) -> None:
    problems = []
    if importlib.util.find_spec("torch") is None:
        problems.append("PyTorch is not installed; the tests compare every layer, loss and "
                        "optimizer with it. Install the test extra: pip install -e \".[test]\"")
    if importlib.util.find_spec("PIL") is None:
        problems.append("Pillow is not installed; the image-folder tests need it. Install the "
                        "test extra: pip install -e \".[test]\"")
    missing = missing_kernel_sets()
    if missing and (_flag("NANOGAN_REQUIRE_COMPILED") or not _flag("NANOGAN_ALLOW_FALLBACK")):
        problems.append(
            "compiled kernel sets unavailable: "
            + "; ".join(f"{k}: {v}" for k, v in missing.items())
            + ". Build them (pip install -e . with a C compiler; numba installed) or run on the "
            "NumPy reference alone with NANOGAN_ALLOW_FALLBACK=1")
    if problems:
        raise pytest.UsageError("nanogan tests cannot run as configured:\n  "
                                + "\n  ".join(problems))


def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = missing_kernel_sets()
    line = f"nanogan kernel sets under test: {', '.join(KERNEL_SETS)}"
    if missing:
        line += f"  (FALLBACK: {', '.join(missing)} unavailable, allowed by NANOGAN_ALLOW_FALLBACK)"
    return [line]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    missing = missing_kernel_sets()
    if missing:
        terminalreporter.write_sep(
            "!", f"compiled kernels NOT tested ({', '.join(missing)} unavailable, "
                 "NANOGAN_ALLOW_FALLBACK=1): the kernel tests ran on the NumPy reference only",
            red=True)


@pytest.fixture(params=KERNEL_SETS)
def kernel_set(request):
    """Run the test under each available kernel set (cython, numba, reference)."""
    previous = _kernels.get_backend()
    _kernels.set_backend(request.param)
    yield request.param
    _kernels.set_backend(previous)


@pytest.fixture(scope="session")
def torch():
    """PyTorch in float64 on one thread: the reference implementation for the comparisons.

    A missing or broken PyTorch fails the tests that need it (it never skips them)."""
    try:
        import torch as t
    except Exception as exc:  # pragma: no cover - pytest_configure catches the usual case
        pytest.fail(f"PyTorch failed to import ({type(exc).__name__}: {exc}); it is a test "
                    "dependency (pip install -e \".[test]\")", pytrace=False)
    t.set_num_threads(1)
    return t


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def device_backend():
    """A device array backend for one test: the session's own when it is not NumPy
    (``NANOGAN_BACKEND=cupy`` on a GPU, as ``benchmarks/gpu_check.sh`` runs the backend tests),
    else the strict test backend; the previous backend is restored afterwards. Yields its name."""
    with on_backend(DEVICE_BACKEND) as name:
        yield name
