"""Negative controls for the checkers the suite trusts: ``rel_error``, ``numerical_gradient``,
``gradcheck`` and the shared ``check``. Each must report agreement for a right answer and a large
error (or a failure) for a wrong one; a NaN never passes for agreement."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COMPILED_SETS, KERNEL_SETS, TOL, check
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nanogan import (
    Dense,
    LeakyReLU,
    Sequential,
    _kernels,
    gradcheck,
    kernel_backend,
    numerical_gradient,
    rel_error,
)

ROOT = Path(__file__).resolve().parents[1]
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------------- rel_error
def test_rel_error_is_the_library_one():
    assert rel_error is importlib.import_module("nanogan.gradcheck").rel_error


@given(a=arrays(np.float64, st.integers(1, 20), elements=finite))
def test_rel_error_of_equal_arrays_is_zero(a):
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(a.astype(np.float32), a.astype(np.float32)) == 0.0


@given(a=arrays(np.float64, st.integers(1, 20), elements=finite))
def test_rel_error_of_a_sign_flip_or_a_zeroed_array_is_large(a):
    if not np.any(a):
        return
    assert rel_error(a, -a) == pytest.approx(1.0)
    assert rel_error(a, np.zeros_like(a)) == pytest.approx(1.0)
    assert rel_error(a, 2 * a) == pytest.approx(1 / 3)


def test_rel_error_values():
    assert rel_error(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(2**-0.5)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.ones(3), np.ones(3) * (1 + 1e-9)) == pytest.approx(5e-10, rel=1e-3)
    # one wrong entry among many is still seen
    a = np.ones(1000)
    b = a.copy()
    b[17] = -1.0
    assert rel_error(a, b) > 1e-3
    # scale-free, and neither overflows nor underflows
    for s in (1e-300, 1e-150, 1.0, 1e150, 1e300):
        assert rel_error(a * s, b * s) == pytest.approx(rel_error(a, b))
    assert rel_error(np.array([5e-324]), np.array([0.0])) == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rel_error_never_agrees_with_a_non_finite_value(bad):
    a = np.array([1.0, 2.0, 3.0])
    b = a.copy()
    b[1] = bad
    for x, y in ((a, b), (b, a)):
        err = rel_error(x, y)
        assert not err < 1e300, err  # a NaN would compare False here too: it must be inf
        assert err == np.inf
    if np.isnan(bad):
        assert rel_error(b, b.copy()) == np.inf  # NaN against NaN: no agreement either
    assert rel_error(np.full(3, np.nan), np.zeros(3)) == np.inf


def test_rel_error_of_equal_infinities_compares_the_rest():
    a = np.array([np.inf, -np.inf, 1.0, 2.0])
    assert rel_error(a, a.copy()) == 0.0
    b = a.copy()
    b[3] = -2.0
    assert rel_error(a, b) == pytest.approx(rel_error(a[2:], b[2:]))
    assert rel_error(a, -a) == np.inf


def test_rel_error_rejects_different_shapes():
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones((3, 1)), np.ones(3))
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones(3), np.ones(4))


def test_check_fails_for_different_arrays_and_nan():
    check("same", np.ones(4), np.ones(4), TOL[np.float64])
    with pytest.raises(AssertionError, match="relative error"):
        check("sign", np.ones(4), -np.ones(4), TOL[np.float32])
    with pytest.raises(AssertionError, match="relative error"):
        check("1e-6 off", np.ones(4), np.ones(4) * (1 + 1e-6), TOL[np.float64])
    with pytest.raises(AssertionError):
        check("nan", np.array([1.0, np.nan]), np.array([1.0, np.nan]), TOL[np.float32])
    with pytest.raises(ValueError):
        check("shape", np.ones((2, 1)), np.ones(2), TOL[np.float64])


# ---------------------------------------------------------------------------- numerical_gradient
def test_numerical_gradient_of_known_functions():
    x = np.array([[0.3, -1.2, 2.0], [0.0, 0.7, -0.4]])
    x0 = x.copy()
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * x0**2, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(x, x0)  # restored
    g = numerical_gradient(lambda: float(np.sum(np.sin(x) * np.arange(6).reshape(2, 3))), x)
    np.testing.assert_allclose(g, np.cos(x0) * np.arange(6).reshape(2, 3), rtol=1e-6, atol=1e-9)
    assert rel_error(numerical_gradient(lambda: float(np.sum(x**3)), x), -3 * x0**2) > 0.99


def test_numerical_gradient_sees_every_entry_and_nan():
    x = np.zeros(5)
    g = numerical_gradient(lambda: float(x[3] * 7.0), x)
    np.testing.assert_allclose(g, [0, 0, 0, 7.0, 0], atol=1e-8)
    with np.errstate(invalid="ignore"):
        g = numerical_gradient(lambda: float(np.sqrt(x[0] - 1.0)), x)
    assert np.isnan(g[0]) and rel_error(g, np.zeros(5)) == np.inf


def test_numerical_gradient_refuses_a_copy():
    x = np.ones((4, 4))[::2, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: float(np.sum(x)), x)


# ---------------------------------------------------------------------------- gradcheck
class WrongInputGrad(Dense):
    """A Dense layer whose input gradient has the wrong sign."""

    def backward(self, dy, cache, *, param_grads=True, input_grad=True):
        dx = super().backward(dy, cache, input_grad=input_grad, param_grads=param_grads)
        return -dx


class SlightlyOffInputGrad(Dense):
    """A Dense layer whose input gradient is 0.1% too large: a small error gradcheck must see."""

    def backward(self, dy, cache, *, param_grads=True, input_grad=True):
        return super().backward(dy, cache, input_grad=input_grad, param_grads=param_grads) * 1.001


class NoBiasGrad(Dense):
    """A Dense layer that drops its bias gradient."""

    def backward(self, dy, cache, *, param_grads=True, input_grad=True):
        before = self.grads["bias"].copy()
        dx = super().backward(dy, cache, input_grad=input_grad, param_grads=param_grads)
        self.grads["bias"][...] = before
        return dx


class HalfWeightGrad(Dense):
    """A Dense layer whose weight gradient is half the true one."""

    def backward(self, dy, cache, *, param_grads=True, input_grad=True):
        before = self.grads["weight"].copy()
        dx = super().backward(dy, cache, input_grad=input_grad, param_grads=param_grads)
        self.grads["weight"][...] = before + 0.5 * (self.grads["weight"] - before)
        return dx


def _x(rng=0):
    return np.random.default_rng(rng).standard_normal((4, 3))


def test_gradcheck_passes_a_right_layer():
    errs = gradcheck(Dense(3, 2, dtype=np.float64, rng=0), _x())
    assert set(errs) == {"x", "weight", "bias"}
    assert max(errs.values()) < 1e-8


@pytest.mark.parametrize(("cls", "key", "least"), [
    (WrongInputGrad, "x", 0.99), (SlightlyOffInputGrad, "x", 4e-4), (NoBiasGrad, "bias", 0.99),
    (HalfWeightGrad, "weight", 0.3)])
def test_gradcheck_reports_a_wrong_backward(cls, key, least):
    errs = gradcheck(cls(3, 2, dtype=np.float64, rng=0), _x())
    assert errs[key] > least, errs
    others = {k: v for k, v in errs.items() if k != key}
    assert max(others.values()) < 1e-8, errs  # and names the one that is wrong


def test_gradcheck_sees_a_wrong_layer_inside_a_network():
    net = Sequential(Dense(3, 5, dtype=np.float64, rng=0), LeakyReLU(0.2),
                     NoBiasGrad(5, 2, dtype=np.float64, rng=1))
    errs = gradcheck(net, _x(1))
    assert errs["2.bias"] > 0.99 and errs["0.bias"] < 1e-8 and errs["x"] < 1e-8


def test_gradcheck_reports_nan_as_failure():
    class NanGrad(Dense):
        def backward(self, dy, cache, *, param_grads=True, input_grad=True):
            dx = super().backward(dy, cache, input_grad=input_grad, param_grads=param_grads)
            return dx * np.nan

    errs = gradcheck(NanGrad(3, 2, dtype=np.float64, rng=0), _x())
    assert errs["x"] == np.inf


# ---------------------------------------------------------------------------- the fixtures
def test_kernel_set_fixture_switches_the_kernels(kernel_set):
    """``kernel_set`` really runs a test under each set: the layers' op table is that set's."""
    assert _kernels.get_backend() == kernel_set == kernel_backend()
    assert _kernels.ops.im2col is _kernels.load(kernel_set).im2col


def test_every_compiled_set_is_under_test():
    """The compiled sets are in the fixture's list unless the fallback was allowed explicitly."""
    allowed = os.environ.get("NANOGAN_ALLOW_FALLBACK", "").strip().lower() in ("1", "true", "yes")
    if not allowed or os.environ.get("NANOGAN_REQUIRE_COMPILED") == "1":
        assert set(KERNEL_SETS) == {"reference", *COMPILED_SETS}


# ---------------------------------------------------------------- nothing skips silently
PLUGINS = {
    # the compiled kernel sets did not build
    "no_compiled_plugin": "from nanogan import _kernels\n"
                          "_kernels.available = lambda: ['reference']\n"
                          "_kernels.why_unavailable = lambda name: 'simulated: not built'\n",
    # PyTorch is not installed
    "no_torch_plugin": "import sys\nsys.modules['torch'] = None\n",
}


def _pytest_with(plugin: str, tmp_path, **env) -> tuple[int, str]:
    (tmp_path / f"{plugin}.py").write_text(PLUGINS[plugin])
    full = {k: v for k, v in os.environ.items()
            if k not in ("NANOGAN_ALLOW_FALLBACK", "NANOGAN_REQUIRE_COMPILED")}
    full.update(env, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", plugin, "-q", "-p", "no:cacheprovider",
         "tests/test_checkers.py::test_rel_error_values"],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_missing_compiled_kernels_fail_the_run_unless_allowed(tmp_path):
    rc, out = _pytest_with("no_compiled_plugin", tmp_path)
    assert rc != 0 and "compiled kernel sets unavailable" in out and "simulated" in out, out
    rc, out = _pytest_with("no_compiled_plugin", tmp_path, NANOGAN_ALLOW_FALLBACK="1")
    assert rc == 0, out
    assert "compiled kernels NOT tested" in out, out  # in the summary, even with -q
    rc, out = _pytest_with("no_compiled_plugin", tmp_path, NANOGAN_ALLOW_FALLBACK="1",
                           NANOGAN_REQUIRE_COMPILED="1")
    assert rc != 0 and "compiled kernel sets unavailable" in out, out


def test_missing_torch_fails_the_run(tmp_path):
    rc, out = _pytest_with("no_torch_plugin", tmp_path)
    assert rc != 0 and "PyTorch is not installed" in out, out
