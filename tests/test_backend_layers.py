"""Every layer and the fast path on a device array backend (:mod:`nanogan.backend`).

The device backend is the session's own when it is not NumPy (CuPy under
``NANOGAN_BACKEND=cupy``, as ``benchmarks/gpu_check.sh`` runs these tests), else the ``strict``
test backend, whose arrays refuse NumPy's functions and NumPy operands, as CuPy's do: a layer that
still calls ``np.<function>`` on an array, or mixes a host array into device arithmetic, raises
``TypeError`` here. Each test builds its modules after switching (parameters are drawn on the
host with the same seeds, so both backends start from the same values), runs them on the device
arrays, and compares every array that comes out (output, input gradient, parameter gradients,
buffers, the second-order ``jvp`` / ``backward_jvp`` results) with the numpy backend running the
reference kernels (the kernels the strict backend runs), in float64: to 1e-12 of the scale on
strict, to ``conftest.DEVICE_TOL`` on CuPy (``assert_backend_close``). The tests of the harness
itself (that a stray NumPy call fails) run on the strict backend by name.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DEVICE_BACKEND, assert_backend_close, on_backend
from hypothesis import given, settings
from hypothesis import strategies as st

import nanogan
from nanogan import backend
from nanogan._strict import StrictArray
from nanogan.backend import asarray, to_numpy
from nanogan.fast import compile as compile_plan
from nanogan.layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Flatten,
    GradientReversal,
    LayerNorm,
    LeakyReLU,
    Maxout,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    conv_naive,
    dcgan_init,
)

F64 = np.float64
TOL = 1e-12
FEW = settings(max_examples=8, deadline=None)


@contextmanager
def active(name: str) -> Iterator[None]:
    """Run a block on array backend ``name`` (the numpy one with the reference kernels, the
    kernels the strict backend runs); the previous backend and kernel set are restored."""
    with on_backend(name, kernels="reference" if name == "numpy" else None):
        yield


@pytest.fixture
def strict() -> Iterator[None]:
    """The strict backend by name (for the tests of the strict harness itself, on any session);
    the previous backend afterwards."""
    with on_backend("strict"):
        yield


def on_device(value: Any) -> bool:
    """Whether ``value`` is an array of the active backend and that backend is a device one."""
    return backend.get_backend() != "numpy" and backend.is_array(value)


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def snapshot(out: dict[str, Any], key: str, value: Any) -> None:
    """Record a copy of ``value`` (an array of the active backend, or None)."""
    if value is None:
        out[key] = None
        return
    assert backend.is_array(value), f"{key}: a {type(value).__name__}, not a backend array"
    out[key] = value.copy()


def exercise(make: Callable[[], Any], x: np.ndarray, *, modes: tuple[bool, ...] = (True,),
             second_order: bool = False, seed: int = 100) -> dict[str, Any]:
    """Build ``make()`` on the active backend, run a forward and backward pass per entry of
    ``modes`` (train or eval), and, with ``second_order``, ``jvp`` and ``backward_jvp`` at the
    last point; return every array produced, by name, and the state dict."""
    m = make()
    out: dict[str, Any] = {}
    for i, train in enumerate(modes):
        y, cache = m.forward(asarray(x), train)
        snapshot(out, f"y{i}", y)
        dy = rand(seed + i, *y.shape)
        snapshot(out, f"dx{i}", m.backward(asarray(dy), cache))
    for k, v in m.grads.items():
        snapshot(out, f"grad {k}", v)
    for k, v in m.buffers.items():
        snapshot(out, f"buffer {k}", v)
    if second_order:
        y_dot, tcache = m.jvp(asarray(rand(seed + 50, *x.shape)), cache)
        snapshot(out, "y_dot", y_dot)
        m.zero_grad()
        dx, dx_dot = m.backward_jvp(asarray(dy), asarray(rand(seed + 51, *y.shape)), cache,
                                    tcache)
        snapshot(out, "jvp dx", dx)
        snapshot(out, "jvp dx_dot", dx_dot)
        for k, v in m.grads.items():
            snapshot(out, f"grad_dot {k}", v)
    out["state_dict"] = m.state_dict()
    return out


def assert_close(got: Any, want: Any, what: str, tol: float = TOL) -> None:
    """A device backend result against the numpy backend's: to ``tol`` of the scale on strict,
    to the device tolerance on CuPy."""
    assert_backend_close(to_numpy(got), np.asarray(want), what, tol)


def compare(make: Callable[[], Any], x: np.ndarray, tol: float = TOL, **kw: Any
            ) -> dict[str, Any]:
    """``exercise`` on the numpy and on the device backend; every result must agree (to ``tol``
    of its scale on strict), those of the device run must be device arrays, and its state dict
    NumPy arrays."""
    with active("numpy"):
        want = exercise(make, x, **kw)
    with active(DEVICE_BACKEND):
        got = exercise(make, x, **kw)
        for key, value in got.items():
            if key != "state_dict" and value is not None:
                assert on_device(value), f"{key}: {type(value).__name__}"
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key == "state_dict":
            continue
        if value is None:
            assert got[key] is None, key
            continue
        assert_close(got[key], value, key, tol)
    state, ref = got["state_dict"], want["state_dict"]
    assert list(state) == list(ref)
    for key, value in state.items():
        assert type(value) is np.ndarray, f"state_dict[{key!r}] is a {type(value).__name__}"
        assert_backend_close(value, ref[key], f"state_dict[{key!r}]")
    return got


# --------------------------------------------------------------------------- the harness itself
def test_strict_arrays_refuse_numpy_functions(strict):
    a = asarray(rand(0, 3))
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.where(a > 0, a, 0)
    with pytest.raises(TypeError):
        a + np.ones(3)  # a host operand, as CuPy refuses it
    assert type(backend.xp.exp(a)) is StrictArray


def test_a_stray_numpy_call_in_a_layer_fails(strict, monkeypatch):
    """The comparisons below can fail: a layer module whose ``xp`` is NumPy again (a stray
    ``np.sqrt`` on the eval path of BatchNorm) raises on the strict backend."""
    from nanogan.layers import batchnorm

    bn = BatchNorm2d(3, dtype=F64)
    x = asarray(rand(0, 2, 3, 4, 4))
    bn.forward(x, False)  # as converted: fine
    monkeypatch.setattr(batchnorm, "xp", np)
    with pytest.raises(TypeError):
        bn.forward(x, False)


def test_a_host_mask_in_dropout_fails(strict, monkeypatch):
    """Dropout draws its mask on the host and must move it; without the move the strict arrays
    refuse the host operand."""
    from nanogan.layers import dropout

    monkeypatch.setattr(dropout, "asarray", lambda a: a)
    with pytest.raises(TypeError):
        Dropout(0.5, rng=0).forward(asarray(rand(0, 4, 5)), True)


def test_a_stray_numpy_call_in_the_fast_path_fails(strict, monkeypatch):
    from nanogan.fast import steps

    plan = compile_plan(Sequential(Conv2d(1, 2, 3, padding=1, rng=0, dtype=F64), LeakyReLU(0.2)))
    x = asarray(rand(0, 2, 1, 5, 5))
    plan.forward(x, True)
    monkeypatch.setattr(steps, "xp", np)
    with pytest.raises(TypeError):
        plan.forward(x, True)


def test_the_comparison_is_exact_on_strict_and_tolerant_on_cupy():
    """``assert_backend_close``: bit equality on strict (or the tolerance a test gives), the
    dtype's device tolerance on CuPy; shapes, dtypes and integers always exact."""
    want = rand(0, 3, 4)
    near, far = want * (1 + 1e-12), want * (1 + 1e-7)
    assert_backend_close(want.copy(), want, device="strict")
    with pytest.raises(AssertionError):
        assert_backend_close(near, want, device="strict")
    assert_backend_close(near, want, tol=1e-10, device="strict")
    assert_backend_close(near, want, device="cupy")
    with pytest.raises(AssertionError):
        assert_backend_close(far, want, device="cupy")
    f32 = want.astype(np.float32)
    assert_backend_close(f32 * np.float32(1 + 1e-6), f32, device="cupy")
    with pytest.raises(AssertionError):
        assert_backend_close(f32 * np.float32(1 + 1e-3), f32, device="cupy")
    for device in ("strict", "cupy"):
        with pytest.raises(AssertionError, match="dtype"):
            assert_backend_close(f32, want, device=device)
        with pytest.raises(AssertionError, match="shape"):
            assert_backend_close(want[:2], want, device=device)
        with pytest.raises(AssertionError):
            assert_backend_close(np.arange(3) + 1, np.arange(3), device=device)
        with pytest.raises(AssertionError):
            assert_backend_close(2, 3, device=device)
        assert_backend_close(float("nan"), float("nan"), device=device)
    with pytest.raises(AssertionError):
        assert_backend_close(1.0 + 1e-12, 1.0, device="strict")
    assert_backend_close(1.0 + 1e-12, 1.0, device="cupy")


def test_switching_back_restores_the_previous_backend_and_kernels():
    previous, kernels = backend.get_backend(), nanogan.kernel_backend()
    with active("numpy"):
        assert nanogan.kernel_backend() == "reference"
        numpy_weight = Dense(2, 3, rng=0).weight
        assert type(numpy_weight) is np.ndarray
    with active(DEVICE_BACKEND):
        assert backend.get_backend() == DEVICE_BACKEND
        assert on_device(Dense(2, 3, rng=0).weight)
        assert not backend.is_array(numpy_weight)
    assert backend.get_backend() == previous and nanogan.kernel_backend() == kernels
    if previous == "numpy":
        assert type(Dense(2, 3, rng=0).weight) is np.ndarray


# --------------------------------------------------------------------------- dense layers
@pytest.mark.parametrize("bias", [True, False])
def test_dense(bias):
    compare(lambda: Dense(5, 4, bias, rng=1, dtype=F64), rand(0, 3, 5), second_order=True)


def test_maxout():
    compare(lambda: Maxout(5, 3, 4, rng=1, dtype=F64), rand(0, 6, 5), second_order=True)


@pytest.mark.parametrize("make", [lambda: LeakyReLU(0.2), ReLU, Tanh, Sigmoid],
                         ids=["LeakyReLU", "ReLU", "Tanh", "Sigmoid"])
def test_activations(make):
    compare(make, rand(0, 3, 4, 2), second_order=True)


# --------------------------------------------------------------------------- convolutions
@st.composite
def conv_cases(draw: Any) -> tuple[dict[str, Any], tuple[int, ...]]:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    H = draw(st.integers(max(kh - 2 * ph, 1), 6))
    W = draw(st.integers(max(kw - 2 * pw, 1), 6))
    args = dict(in_channels=draw(st.integers(1, 3)), out_channels=draw(st.integers(1, 3)),
                kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                bias=draw(st.booleans()))
    return args, (draw(st.integers(1, 3)), args["in_channels"], H, W)


@FEW
@given(conv_cases())
def test_conv2d(case):
    args, shape = case
    compare(lambda: Conv2d(**args, rng=1, dtype=F64), rand(0, *shape), second_order=True)


@st.composite
def conv_transpose_cases(draw: Any) -> tuple[dict[str, Any], tuple[int, ...]]:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if (H - 1) * sh - 2 * ph + kh + oph < 1 or (W - 1) * sw - 2 * pw + kw + opw < 1:
        ph = pw = 0
    args = dict(in_channels=draw(st.integers(1, 3)), out_channels=draw(st.integers(1, 3)),
                kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                output_padding=(oph, opw), bias=draw(st.booleans()))
    return args, (N, args["in_channels"], H, W)


@FEW
@given(conv_transpose_cases())
def test_conv_transpose2d(case):
    args, shape = case
    compare(lambda: ConvTranspose2d(**args, rng=1, dtype=F64), rand(0, *shape),
            second_order=True)


def test_naive_convolutions():
    """The loop definitions the fast layers are checked against run on the backend too."""
    x, w, b = rand(0, 2, 2, 5, 4), rand(1, 3, 2, 3, 2), rand(2, 3)
    wt = rand(3, 2, 3, 3, 2)
    results = {}
    for name in ("numpy", DEVICE_BACKEND):
        with active(name):
            X, Wc, B, Wt = (asarray(a) for a in (x, w, b, wt))
            y = conv_naive.conv2d_naive(X, Wc, B, (2, 1), (1, 0))
            dy = asarray(rand(4, *y.shape))
            grads = conv_naive.conv2d_naive_backward(dy, X, Wc, (2, 1), (1, 0))
            yt = conv_naive.conv_transpose2d_naive(X, Wt, B, (2, 1), (1, 0), (1, 0))
            results[name] = [y, *grads, yt]
            assert all(backend.is_array(r) for r in results[name])
    assert len(results[DEVICE_BACKEND]) == len(results["numpy"]) == 5
    for got, want in zip(results[DEVICE_BACKEND], results["numpy"]):
        assert_close(got, want, "naive convolution")


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("make, shape", [
    (lambda: BatchNorm1d(4, dtype=F64), (6, 4)),
    (lambda: BatchNorm1d(3, momentum=None, dtype=F64), (4, 3, 5)),
    (lambda: BatchNorm2d(3, dtype=F64), (2, 3, 4, 4)),
    (lambda: BatchNorm2d(3, affine=False, dtype=F64), (2, 3, 3, 2)),
], ids=["1d", "1d-cumulative", "2d", "2d-no-affine"])
def test_batchnorm_train_then_eval(make, shape):
    """Two training steps (batch statistics, running buffers updated) and one evaluation step
    (the running buffers used)."""
    got = compare(make, rand(0, *shape), modes=(True, True, False))
    assert int(got["buffer num_batches_tracked"]) == 2


@pytest.mark.parametrize("normalized_shape, shape, affine", [
    (4, (3, 4), True), ((3, 4), (2, 3, 4), True), ((2, 2), (2, 3, 2, 2), False)])
def test_layernorm(normalized_shape, shape, affine):
    compare(lambda: LayerNorm(normalized_shape, elementwise_affine=affine, dtype=F64),
            rand(0, *shape), second_order=True)


# --------------------------------------------------------------------------- the rest
@pytest.mark.parametrize("p", [0.0, 0.4, 1.0])
def test_dropout_draws_the_same_host_masks(p):
    """The masks come from the layer's NumPy generator on the host, so both backends drop the
    same values (two training calls, then an evaluation call)."""
    compare(lambda: Dropout(p, rng=3), rand(0, 4, 5), modes=(True, True, False),
            second_order=True)


@pytest.mark.parametrize("make, shape", [
    (Flatten, (2, 3, 2, 2)), (lambda: Reshape(3, 2, 2), (2, 12)), (lambda: Reshape(6), (3, 2, 3))],
    ids=["Flatten", "Reshape", "Reshape-flat"])
def test_shape_layers(make, shape):
    compare(make, rand(0, *shape), second_order=True)


def test_gradient_reversal():
    got = compare(lambda: GradientReversal(0.7), rand(0, 3, 4))
    assert_close(got["dx0"], -0.7 * rand(100, 3, 4), "dx = -lambda dy")


def test_sequential_second_order():
    """A critic with every first- and second-order layer kind, through ``Sequential``."""
    def make():
        return Sequential(Conv2d(2, 3, 3, stride=2, padding=1, rng=1, dtype=F64),
                          LeakyReLU(0.2), Flatten(), Dense(12, 6, rng=2, dtype=F64),
                          LayerNorm(6, dtype=F64), Tanh(), Dropout(0.3, rng=4),
                          Maxout(6, 3, 2, rng=3, dtype=F64), Sigmoid())
    compare(make, rand(0, 2, 2, 4, 4), modes=(True, True), second_order=True)


@FEW
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans())
def test_sequential_mlp(n, d_in, d_hidden, train):
    compare(lambda: Sequential(Dense(d_in, d_hidden, rng=1, dtype=F64), BatchNorm1d(
        d_hidden, dtype=F64), ReLU(), Dense(d_hidden, 2, rng=2, dtype=F64)),
        rand(0, n + 1, d_in), modes=(train, False))


def test_float32_keeps_its_dtype_on_the_device_backend():
    """The default float32 layers: the device run stays in float32 and agrees with numpy's (to
    1e-6 of the scale on strict, the float32 device tolerance on CuPy)."""
    def make():
        return Sequential(Conv2d(1, 3, 3, stride=2, padding=1, rng=1), LeakyReLU(0.2),
                          Flatten(), Dense(12, 4, rng=2), LayerNorm(4), Tanh())
    got = compare(make, rand(0, 2, 1, 4, 4).astype(np.float32), tol=1e-6, second_order=True)
    assert all(v.dtype == np.float32 for k, v in got.items() if k != "state_dict")
    got = compare(lambda: Sequential(BatchNorm2d(3), ReLU()),
                  rand(1, 2, 3, 2, 2).astype(np.float32), tol=1e-6, modes=(True, False))
    assert got["y1"].dtype == got["buffer 0.running_var"].dtype == np.float32


def test_dcgan_init_moves_its_host_draws():
    params = {}
    for name in ("numpy", DEVICE_BACKEND):
        with active(name):
            net = Sequential(Conv2d(1, 2, 3, rng=0, dtype=F64), BatchNorm2d(2, dtype=F64),
                             Dense(3, 2, rng=1, dtype=F64))
            dcgan_init(net, rng=7)
            assert all(backend.is_array(p) for p in net.params.values())
            params[name] = {k: to_numpy(v) for k, v in net.params.items()}
    assert params[DEVICE_BACKEND].keys() == params["numpy"].keys()
    for k, v in params["numpy"].items():
        assert_backend_close(params[DEVICE_BACKEND][k], v, k)
    assert np.all(params["numpy"]["0.bias"] == 0) and np.all(params["numpy"]["2.bias"] == 0)


def test_load_state_dict_moves_host_values(device_backend):
    net = Sequential(Dense(3, 2, rng=0, dtype=F64), BatchNorm1d(2, dtype=F64))
    state = {k: v + 1 for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    for k, v in net.params.items():
        assert on_device(v), k
        np.testing.assert_array_equal(to_numpy(v), state[k])  # a copy: exact on every backend
    assert on_device(net.buffers["1.running_mean"])


# --------------------------------------------------------------------------- the fast path
def dcgan_g() -> Sequential:
    """A DCGAN-like generator: a fused Dense, a 1 x 1-input transposed convolution, BatchNorm +
    ReLU fused, a strided transposed convolution, Tanh."""
    return Sequential(
        Dense(8, 16, rng=1, dtype=F64), BatchNorm1d(16, dtype=F64), ReLU(), Reshape(16, 1, 1),
        ConvTranspose2d(16, 6, 4, rng=2, dtype=F64), BatchNorm2d(6, dtype=F64), ReLU(),
        ConvTranspose2d(6, 1, 4, stride=2, padding=1, rng=3, dtype=F64), Tanh())


def dcgan_d() -> Sequential:
    """A DCGAN-like discriminator: a convolution with its LeakyReLU fused, BatchNorm + LeakyReLU
    fused, a whole-window convolution and a lone LeakyReLU, a fused Dense."""
    return Sequential(
        Conv2d(1, 4, 4, stride=2, padding=1, rng=4, dtype=F64), LeakyReLU(0.2),
        Conv2d(4, 6, 3, stride=2, padding=1, bias=False, rng=5, dtype=F64),
        BatchNorm2d(6, dtype=F64), LeakyReLU(0.2),
        Conv2d(6, 8, 2, bias=False, rng=6, dtype=F64), LeakyReLU(0.2), Flatten(),
        Dense(8, 4, rng=7, dtype=F64), LeakyReLU(0.2), Dense(4, 1, rng=8, dtype=F64))


def run_gan_nets(fast: bool) -> dict[str, Any]:
    """G and D (DCGAN-initialised) forward and backward in training and evaluation, as the
    plain layers or as plans; every array produced, as NumPy."""
    G, D = dcgan_init(dcgan_g(), rng=11), dcgan_init(dcgan_d(), rng=12)
    if fast:
        G, D = compile_plan(G), compile_plan(D)
    out: dict[str, Any] = {}
    for i, train in enumerate((True, False)):
        z = asarray(rand(20 + i, 3, 8))
        fake, gc = G.forward(z, train)
        score, dc = D.forward(fake, train)
        out[f"fake{i}"], out[f"score{i}"] = fake, score
        dfake = D.backward(asarray(rand(30 + i, *score.shape)), dc, param_grads=i == 0)
        out[f"dfake{i}"] = dfake
        out[f"G dz{i}"] = G.backward(dfake, gc, input_grad=i == 1)
        real = asarray(rand(40 + i, 3, 1, 8, 8))
        _, rc = D.forward(real, train)
        out[f"D dreal{i}"] = D.backward(asarray(rand(50 + i, 3, 1)), rc, input_grad=False)
    for name, net in (("G", G), ("D", D)):
        out.update({f"{name} grad {k}": v.copy() for k, v in net.grads.items()})
        out.update({f"{name} buffer {k}": v.copy() for k, v in net.buffers.items()})
    for key, value in out.items():
        assert value is None or backend.is_array(value), key
    return {k: (None if v is None else to_numpy(v)) for k, v in out.items()}


def test_fast_plan_on_the_device_matches_plain_layers_on_numpy():
    """A DCGAN-like G and D compiled into plans on the device backend give the plain layers'
    results on the numpy backend (the plan sums in another order: 1e-12 of the scale on
    strict)."""
    with active("numpy"):
        want = run_gan_nets(fast=False)
    with active(DEVICE_BACKEND):
        got = run_gan_nets(fast=True)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert_close(got[key], value, key)


def test_fast_plan_outputs_are_device_arrays(device_backend):
    plan = compile_plan(dcgan_d())
    y, cache = plan.forward(asarray(rand(0, 2, 1, 8, 8)), True)
    dx = plan.backward(asarray(rand(1, 2, 1)), cache)
    assert on_device(y) and on_device(dx)
    assert all(type(v) is np.ndarray for v in plan.state_dict().values())


# --------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    (lambda: Dense(5, 4, rng=0, dtype=F64), (3, 6)),
    (lambda: Conv2d(2, 3, 3, rng=0, dtype=F64), (2, 3, 5, 5)),
    (lambda: Conv2d(2, 3, 5, rng=0, dtype=F64), (2, 2, 3, 3)),
    (lambda: ConvTranspose2d(2, 3, 3, rng=0, dtype=F64), (2, 2, 4)),
    (lambda: BatchNorm2d(3, dtype=F64), (2, 4, 3, 3)),
    (lambda: BatchNorm1d(3, dtype=F64), (1, 3)),
    (lambda: LayerNorm((3, 4), dtype=F64), (2, 4, 3)),
    (lambda: Maxout(5, 3, 2, rng=0, dtype=F64), (3, 4)),
    (lambda: Reshape(3, 2), (2, 5)),
    (lambda: compile_plan(dcgan_d()), (2, 2, 8, 8)),
]


def error_of(make: Callable[[], Any], x: np.ndarray) -> str:
    with pytest.raises(ValueError) as info:
        make().forward(asarray(x), True)
    return str(info.value)


@pytest.mark.parametrize("make, shape", BAD_INPUTS)
def test_bad_input_raises_the_same_clear_error(make, shape):
    with active("numpy"):
        want = error_of(make, rand(0, *shape))
    with active(DEVICE_BACKEND):
        got = error_of(make, rand(0, *shape))
    assert got == want
    assert "expected" in got and "got" in got


def test_bad_gradient_shape_raises_on_the_device_backend(device_backend):
    conv = Conv2d(2, 3, 3, rng=0, dtype=F64)
    _, cache = conv.forward(asarray(rand(0, 2, 2, 5, 5)))
    with pytest.raises(ValueError, match="argument 'dy' expected shape"):
        conv.backward(asarray(rand(1, 2, 3, 2, 2)), cache)


# --------------------------------------------------------------------------- a static guard
ROOT = Path(__file__).resolve().parents[1]

#: NumPy functions the layers may call: on host values only (shapes, dtypes, Python scalars,
#: seeds, lists handed to load_state_dict), never on backend arrays.
HOST_CALLS = {"dtype", "prod", "result_type", "isfinite", "random.default_rng"}
#: Host arrays a constructor creates and hands straight to add_param / add_buffer (which move
#: them to the backend).
HOST_INITIAL = {"ones", "zeros", "array"}


def numpy_calls(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, dotted name, enclosing call)`` of every ``np.<name>(...)`` call in ``path``."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        parts, f = [], node.func
        while isinstance(f, ast.Attribute):
            parts.append(f.attr)
            f = f.value
        if not (isinstance(f, ast.Name) and f.id == "np" and parts):
            continue
        outer = parents.get(node)
        outer_name = (outer.func.attr if isinstance(outer, ast.Call)
                      and isinstance(outer.func, ast.Attribute) else None)
        found.append((node.lineno, ".".join(reversed(parts)), outer_name))
    return found


def test_layers_and_fast_path_call_no_numpy_function_on_arrays():
    """Every ``np.<function>(...)`` left in nanogan/layers and nanogan/fast works on host values
    (the dynamic tests above cannot reach every error branch)."""
    files = sorted((ROOT / "nanogan" / "layers").glob("*.py")) + sorted(
        (ROOT / "nanogan" / "fast").glob("*.py"))
    stray = []
    for path in files:
        for line, name, outer in numpy_calls(path):
            if name in HOST_CALLS:
                continue
            if name in HOST_INITIAL and outer in ("add_param", "add_buffer"):
                continue
            if name == "asarray" and path.name == "checks.py":
                continue  # state-dict entries given as Python lists, on the host
            stray.append(f"{path.relative_to(ROOT)}:{line}: np.{name}")
    assert not stray, "NumPy functions on backend arrays (use xp):\n" + "\n".join(stray)


def test_the_static_guard_finds_a_stray_call(tmp_path):
    src = tmp_path / "layer.py"
    src.write_text("import numpy as np\n\ndef f(x):\n    return np.exp(x) + np.prod((2, 3))\n")
    assert [(line, name) for line, name, _ in numpy_calls(src)] == [(4, "exp"), (4, "prod")]
