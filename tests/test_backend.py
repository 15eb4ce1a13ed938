"""The array backends (nanogan.backend): the strict test arrays, switching, the device kernel sets.

The ``strict`` backend is the CPU stand-in for CuPy: its arrays refuse what CuPy's refuse (NumPy's
functions, implicit conversion to NumPy, NumPy arrays as operands) and allow what they allow.
These tests pin both lists, the errors of ``set_backend``, the kernel set that goes with each
backend, and the index arithmetic of the CUDA im2col/col2im kernels (transcribed to Python, so it
is checked here although CUDA cannot run).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanogan
from nanogan import _kernels, backend
from nanogan._kernels import device, reference
from nanogan._strict import StrictArray, namespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def strict():
    """The strict backend for one test; the previous backend afterwards."""
    previous = backend.get_backend()
    backend.set_backend("strict")
    yield namespace
    backend.set_backend(previous)


def S(a) -> StrictArray:
    return namespace.asarray(np.asarray(a, dtype=np.float64))


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, cwd=ROOT, timeout=300)


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("call", [
    lambda a: np.exp(a),                      # a ufunc
    lambda a: np.add(a, 1.0),
    lambda a: np.maximum(a, 0.0),
    lambda a: np.where(a > 0, a, 0.0),        # array functions
    lambda a: np.concatenate([a, a]),
    lambda a: np.sum(a),
    lambda a: np.clip(a, 0, 1),
    lambda a: np.zeros_like(a),
    lambda a: np.asarray(a),                  # implicit conversion
    lambda a: np.array(a),
    lambda a: np.ascontiguousarray(a),
    lambda a: np.float64(1.0) + np.asarray(a),
], ids=["exp", "add", "maximum", "where", "concatenate", "sum", "clip", "zeros_like",
        "asarray", "array", "ascontiguousarray", "scalar+asarray"])
def test_numpy_functions_refused(call):
    with pytest.raises(TypeError):
        call(S([1.0, -2.0, 3.0]))


def test_refusal_messages_say_what_to_use():
    a = S([1.0, 2.0])
    with pytest.raises(TypeError, match=r"numpy.where called on a strict-backend array.*xp"):
        np.where(a > 0, a, a)
    with pytest.raises(TypeError, match=r"implicit conversion.*to_numpy"):
        np.asarray(a)
    with pytest.raises(TypeError, match=r"NumPy array of shape \(2,\).*asarray"):
        a + np.ones(2)


@pytest.mark.parametrize("call", [
    lambda a, h: a + h, lambda a, h: h + a, lambda a, h: a * h, lambda a, h: h - a,
    lambda a, h: a @ h.reshape(3, 1), lambda a, h: a < h, lambda a, h: a == h,
    lambda a, h: namespace.exp(h), lambda a, h: namespace.where(a > 0, h, a),
    lambda a, h: namespace.concatenate([a, h]), lambda a, h: a.__setitem__(slice(None), h),
    lambda a, h: a[np.array([0, 1])],
], ids=["add", "radd", "mul", "rsub", "matmul", "lt", "eq", "ns.exp", "ns.where",
        "ns.concatenate", "setitem", "index"])
def test_numpy_operands_refused(call):
    """A NumPy array must be moved with asarray first, as with CuPy."""
    with pytest.raises(TypeError):
        call(S([1.0, -2.0, 3.0]), np.ones(3))


def test_in_place_with_numpy_operand_refused_and_array_unchanged():
    a = S([1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        a += np.ones(3)
    assert a.get().tolist() == [1.0, 2.0, 3.0]


def test_pickling_refused_but_copies_allowed():
    a = S([1.0, 2.0])
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(a)
    for c in (copy.copy(a), copy.deepcopy(a)):
        assert isinstance(c, StrictArray) and c is not a
        c[0] = 9.0
        assert a.get()[0] == 1.0


def test_strict_array_wraps_numpy_only():
    with pytest.raises(TypeError, match=r"wraps a numpy\.ndarray"):
        StrictArray([1.0, 2.0])


# ---------------------------------------------------------------------------- what is allowed
def test_operators_keep_strict_arrays():
    h = np.array([[1.0, -2.0], [3.0, 4.0]])
    a = S(h)
    cases = {
        "a + a": (a + a, h + h), "a - 1": (a - 1, h - 1), "2 * a": (2 * a, 2 * h),
        "a / 4": (a / 4, h / 4), "a ** 2": (a ** 2, h ** 2), "-a": (-a, -h),
        "abs": (abs(a), abs(h)),
        "a @ a": (a @ a, h @ h), "a.T": (a.T, h.T), "a > 0": (a > 0, h > 0),
        "f64 * a": (np.float64(0.5) * a, 0.5 * h), "a // 2": (a // 2, h // 2),
        "(a > 0) & (a < 4)": ((a > 0) & (a < 4), (h > 0) & (h < 4)),
    }
    for name, (got, want) in cases.items():
        assert isinstance(got, StrictArray), name
        np.testing.assert_array_equal(got.get(), want, err_msg=name)


def test_in_place_operators_update_the_same_array():
    a = S([1.0, 2.0])
    ref = a
    a += S([1.0, 1.0])
    a *= 3.0
    assert a is ref
    assert a.get().tolist() == [6.0, 9.0]


def test_indexing_and_assignment():
    h = np.arange(24.0).reshape(2, 3, 4)
    a = S(h)
    np.testing.assert_array_equal(a[1, :, ::2].get(), h[1, :, ::2])
    np.testing.assert_array_equal(a[..., None].get(), h[..., None])
    idx = namespace.asarray(np.array([2, 0]))
    np.testing.assert_array_equal(a[:, idx].get(), h[:, [2, 0]])
    np.testing.assert_array_equal(a[a > 10].get(), h[h > 10])
    a[0, 0] = 100.0
    a[1] = S(np.zeros((3, 4)))
    assert a.get()[0, 0, 0] == 100.0 and not a.get()[1].any()
    assert len(a) == 2 and [r.shape for r in a] == [(3, 4), (3, 4)]


def test_methods_attributes_and_host_transfer():
    h = np.arange(6.0).reshape(2, 3)
    a = S(h)
    assert (a.shape, a.ndim, a.size, a.dtype, a.nbytes) == ((2, 3), 2, 6, np.float64, 48)
    for name, args in [("sum", ()), ("mean", (0,)), ("max", ()), ("reshape", (3, 2)),
                       ("transpose", ()), ("astype", (np.float32,)), ("copy", ()),
                       ("ravel", ()), ("argmax", ()), ("clip", (1, 4)), ("std", ())]:
        got = getattr(a, name)(*args)
        assert isinstance(got, StrictArray), name
        np.testing.assert_array_equal(got.get(), getattr(h, name)(*args), err_msg=name)
        assert got.get().dtype == np.asarray(getattr(h, name)(*args)).dtype, name
    assert float(a.sum()) == 15.0 and int(a.max()) == 5 and a[1, 2].item() == 5.0
    assert a.tolist() == h.tolist()
    assert bool(a[0, 1] > 0)
    host = a.get()
    assert type(host) is np.ndarray and np.array_equal(host, h)
    host[0, 0] = -1.0  # .get() is a copy
    assert a.get()[0, 0] == 0.0
    assert type(backend.to_numpy(a)) is np.ndarray


def test_reductions_and_elements_are_0d_arrays_as_on_cupy():
    """A full reduction stays on the device (a 0-d array, not a NumPy scalar), so mixing it
    with a host array fails here as it does on CuPy."""
    a = S([1.0, 2.0, 4.0])
    for r in (a.sum(), a.max(), a[0], namespace.sum(a), namespace.mean(a), (a * a).sum() / 2,
              next(iter(a))):
        assert isinstance(r, StrictArray) and r.shape == (), r
    with pytest.raises(TypeError):
        a.sum() + np.ones(2)
    assert f"{a.sum():.2f}" == "7.00" and float(a.mean()) == 7 / 3
    assert a[int(a.argmax())].item() == 4.0
    assert namespace.float32(2.0) == np.float32(2.0)  # dtypes are NumPy's


def test_namespace_functions_unwrap_and_wrap():
    a = S([[1.0, -2.0], [3.0, -4.0]])
    out = namespace.where(a > 0, a, namespace.zeros_like(a))
    assert isinstance(out, StrictArray)
    assert out.get().tolist() == [[1.0, 0.0], [3.0, 0.0]]
    q, r = namespace.linalg.qr(a)
    assert isinstance(q, StrictArray) and isinstance(r, StrictArray)
    assert namespace.float32 is np.float32 and namespace.pi == np.pi
    assert not hasattr(namespace, "random")  # random numbers are drawn on the host
    assert isinstance(namespace.asarray([1, 2]), StrictArray)
    b = namespace.array(a)
    b[0, 0] = 7.0
    assert a.get()[0, 0] == 1.0


# ---------------------------------------------------------------------------- set_backend
def test_public_api():
    assert nanogan.set_backend is backend.set_backend
    assert nanogan.get_backend is backend.get_backend
    assert {"set_backend", "get_backend"} <= set(nanogan.__all__)
    assert backend.get_backend() in backend.BACKENDS


def test_strict_backend_switches_namespace_and_kernels(strict):
    assert backend.get_backend() == "strict" == nanogan.get_backend()
    assert backend.xp.exp is namespace.exp
    assert _kernels.get_backend() == "strict"
    a = backend.asarray(np.ones(3))
    assert isinstance(a, StrictArray) and backend.is_array(a)
    assert backend.asarray(a) is a
    assert not backend.is_array(np.ones(3))
    assert isinstance(_kernels.ops.leaky_relu(a, 0.2), StrictArray)
    assert isinstance(_kernels.matmul(backend.asarray(np.ones((2, 3))),
                                      backend.asarray(np.ones((3, 2)))), StrictArray)
    assert backend.array_namespace(a) is backend.xp
    assert backend.array_namespace(np.ones(2)) is np
    assert "strict" in backend.describe()
    backend.synchronize()  # a no-op off the GPU


def test_device_matmul_into_a_column_slice(strict):
    """The device sets' matmul writes a product into a column slice of a larger array (the
    plans' convolution tiles) through a copy, the rest of the array untouched."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    big = backend.asarray(np.full((4, 9), np.nan))
    view = big[:, 2:7]
    assert _kernels.matmul(backend.asarray(a), backend.asarray(b), out=view) is view
    host = backend.to_numpy(big)
    np.testing.assert_allclose(host[:, 2:7], a @ b, rtol=1e-12)
    assert np.isnan(host[:, :2]).all() and np.isnan(host[:, 7:]).all()


def test_back_to_numpy_restores_the_numpy_kernel_set():
    previous = backend.get_backend()
    try:
        backend.set_backend("numpy")
        numpy_set = _kernels.get_backend()
        assert numpy_set in _kernels.PREFERENCE
        backend.set_backend("strict")
        backend.set_backend("numpy")
        assert _kernels.get_backend() == numpy_set
        assert backend.xp.exp is np.exp
        assert _kernels.ops.matmul is _kernels._threads.matmul
        assert "numpy" in backend.describe()
    finally:
        backend.set_backend(previous)


def test_unknown_backend_is_a_value_error_and_changes_nothing(strict):
    with pytest.raises(ValueError, match=r"unknown backend 'torch'.*numpy.*cupy.*strict"):
        backend.set_backend("torch")
    assert backend.get_backend() == "strict" and _kernels.get_backend() == "strict"
    assert backend.xp.exp is namespace.exp


def test_cupy_missing_is_a_runtime_error_with_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` fails, GPU or not
    before, kernels_before = backend.get_backend(), _kernels.get_backend()
    hint = r"'cupy' is not available.*pip install -e \"\.\[gpu\]\""
    with pytest.raises(RuntimeError, match=hint):
        backend.set_backend("cupy")
    assert backend.get_backend() == before and _kernels.get_backend() == kernels_before


def test_names_are_normalised():
    previous = backend.get_backend()
    try:
        backend.set_backend("  Strict ")
        assert backend.get_backend() == "strict"
        backend.set_backend("NUMPY")
        assert backend.get_backend() == "numpy"
    finally:
        backend.set_backend(previous)


def test_kernel_set_switch_refused_on_the_strict_backend(strict):
    with pytest.raises(RuntimeError, match=r"needs the numpy array backend.*'strict'"):
        nanogan.set_kernel_backend("reference")
    assert _kernels.get_backend() == "strict"


def test_environment_variable_selects_the_backend():
    code = ("import nanogan; from nanogan import _kernels; "
            "print(nanogan.get_backend(), _kernels.get_backend(), type(nanogan.backend.xp.ones(1))"
            ".__name__)")
    res = run_python(code, NANOGAN_BACKEND="strict")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["strict", "strict", "StrictArray"]


@pytest.mark.parametrize("value, fragment", [
    ("bogus", "unknown backend 'bogus'"),
    ("cupy", "'cupy' is not available"),
])
def test_bad_environment_value_warns_and_keeps_numpy(value, fragment):
    code = ("import sys; sys.modules['cupy'] = None; import warnings; "
            "warnings.simplefilter('always'); import nanogan; print(nanogan.get_backend())")
    res = run_python(code, NANOGAN_BACKEND=value)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["numpy"]
    assert "NANOGAN_BACKEND" in res.stderr and fragment in res.stderr
    assert "using numpy" in res.stderr


def test_cpu_install_never_imports_cupy():
    """Importing nanogan and training one step never imports CuPy (only NANOGAN_BACKEND=cupy or
    set_backend('cupy') do)."""
    code = """
import sys
import numpy as np
import nanogan
from nanogan import Dense, LeakyReLU, Sequential
rng = np.random.default_rng(0)
G = Sequential(Dense(4, 8, rng=rng), LeakyReLU(0.2), Dense(8, 6, rng=rng))
D = Sequential(Dense(6, 8, rng=rng), LeakyReLU(0.2), Dense(8, 1, rng=rng))
gan = nanogan.GAN(G, D)
stats = gan.step([rng.standard_normal((5, 6)).astype(np.float32)], rng)
import nanogan.__main__, nanogan.metrics, nanogan.plot
nanogan.__main__.main(["info"])
assert np.isfinite(stats["d_loss"]), stats
print("cupy imported" if "cupy" in sys.modules else "no cupy")
"""
    env = {k: "" for k in ("NANOGAN_BACKEND",)}
    res = run_python(code, **env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "no cupy"


def test_cupy_is_an_optional_extra():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert any(d.startswith("cupy-cuda12x") for d in project["optional-dependencies"]["gpu"])
    assert not any("cupy" in d for d in project["dependencies"])


# ---------------------------------------------------------------------------- kernel sets
def test_strict_kernel_set_equals_the_reference_on_every_op():
    """Every op of the table on the strict arrays: results on the backend, equal to the
    reference (the same NumPy code, so exactly)."""
    mod = device.strict_set()
    for dtype in ("float64", "float32"):
        errors = device.compare_with_reference(mod, dtype, seed=1)
        assert set(errors) == set(_kernels.OP_NAMES)
        assert max(errors.values()) == 0.0, errors


def test_compare_with_reference_detects_a_wrong_op():
    mod = device.strict_set()
    good_col2im = mod.col2im

    def shifted(cols, x_shape, *geom):
        return good_col2im(cols, x_shape, *geom) * 1.001

    mod.col2im = shifted
    errors = device.compare_with_reference(mod)
    assert errors["col2im"] > 5e-4 and errors["im2col"] == 0.0
    mod.col2im = lambda cols, x_shape, *geom: good_col2im(cols, x_shape, *geom).get()
    with pytest.raises(TypeError, match="returned a NumPy array"):
        device.compare_with_reference(mod)


def test_strict_set_refuses_numpy_inputs():
    mod = device.strict_set()
    with pytest.raises(TypeError):
        mod.sigmoid(np.ones(3))


@st.composite
def conv_case(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    return (n, c, h, w), (kh, kw, sh, sw, ph, pw), draw(st.integers(0, 2**31 - 1))


@settings(max_examples=20, deadline=None)
@given(conv_case())
def test_strict_im2col_col2im_equal_the_reference(case):
    shape, geom, seed = case
    rng = np.random.default_rng(seed)
    mod = device.strict_set()
    x = rng.standard_normal(shape)
    cols = mod.im2col(namespace.asarray(x), *geom)
    assert isinstance(cols, StrictArray)
    np.testing.assert_array_equal(cols.get(), reference.im2col(x, *geom))
    c = rng.standard_normal(cols.shape)
    back = mod.col2im(namespace.asarray(c), shape, *geom)
    assert isinstance(back, StrictArray)
    np.testing.assert_array_equal(back.get(), reference.col2im(c, shape, *geom))
    # a strided (non-contiguous) input view
    xs = rng.standard_normal((*shape[:3], 2 * shape[3]))
    np.testing.assert_array_equal(mod.im2col(namespace.asarray(xs)[..., ::2], *geom).get(),
                                  reference.im2col(xs[..., ::2], *geom))


# ---------------------------------------------------------------------------- CUDA index math
def cdiv(a: int, b: int) -> int:
    """C's integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def cmod(a: int, b: int) -> int:
    """C's ``%`` (the sign of the dividend)."""
    return a - b * cdiv(a, b)


def cuda_im2col(x: np.ndarray, kh, kw, sh, sw, ph, pw) -> np.ndarray:
    """device._IM2COL line by line: thread ``i`` writes ``cols[i]`` (flat)."""
    N, C, H, W = x.shape
    OH, OW = reference.conv_output_size(H, kh, sh, ph), reference.conv_output_size(W, kw, sw, pw)
    xf = np.ascontiguousarray(x).ravel()
    cols = np.empty(C * kh * kw * N * OH * OW, dtype=x.dtype)
    Q = N * OH * OW
    for i in range(cols.size):
        r, q = cdiv(i, Q), cmod(i, Q)
        kj, ki, c = cmod(r, kw), cmod(cdiv(r, kw), kh), cdiv(r, kw * kh)
        ow, oh, n = cmod(q, OW), cmod(cdiv(q, OW), OH), cdiv(q, OW * OH)
        h, w = oh * sh - ph + ki, ow * sw - pw + kj
        cols[i] = (xf[((n * C + c) * H + h) * W + w] if (h >= 0 and h < H and w >= 0 and w < W)
                   else 0)
    return cols.reshape(C * kh * kw, Q)


def cuda_col2im(cols: np.ndarray, x_shape, kh, kw, sh, sw, ph, pw) -> np.ndarray:
    """device._COL2IM line by line: thread ``i`` gathers ``x[i]`` (flat), no atomics."""
    N, C, H, W = x_shape
    OH, OW = reference.conv_output_size(H, kh, sh, ph), reference.conv_output_size(W, kw, sw, pw)
    cf = np.ascontiguousarray(cols).ravel()
    x = np.empty(N * C * H * W, dtype=cols.dtype)
    Q = N * OH * OW
    for i in range(x.size):
        w, h, c = cmod(i, W), cmod(cdiv(i, W), H), cmod(cdiv(i, W * H), C)
        n = cdiv(i, W * H * C)
        acc = 0.0
        for ki in range(kh):
            th = h + ph - ki
            if th < 0 or cmod(th, sh) != 0 or cdiv(th, sh) >= OH:
                continue
            oh = cdiv(th, sh)
            for kj in range(kw):
                tw = w + pw - kj
                if tw < 0 or cmod(tw, sw) != 0 or cdiv(tw, sw) >= OW:
                    continue
                ow = cdiv(tw, sw)
                r = (c * kh + ki) * kw + kj
                acc += cf[r * Q + (n * OH + oh) * OW + ow]
        x[i] = acc
    return x.reshape(N, C, H, W)


def _normalise(src: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\(long long\)", "", src))


def test_transcription_follows_the_cuda_source():
    """The lines transcribed above are the kernels' own (a change there must be made here)."""
    im2col, col2im = _normalise(device._IM2COL), _normalise(device._COL2IM)
    for line in ["const long long Q = N * OH * OW;", "const long long r = i / Q, q = i % Q;",
                 "const int kj = r % kw, ki = (r / kw) % kh, c = r / (kw * kh);",
                 "const int ow = q % OW, oh = (q / OW) % OH, n = q / (OW * OH);",
                 "const int h = oh * sh - ph + ki, w = ow * sw - pw + kj;",
                 "cols = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w]"
                 " : (T)0;"]:
        assert line in im2col, line
    for line in ["const int w = i % W, h = (i / W) % H, c = (i / (W * H)) % C;",
                 "const int n = i / (W * H * C);", "const int th = h + ph - ki;",
                 "if (th < 0 || th % sh != 0 || th / sh >= OH) continue;",
                 "const int oh = th / sh;", "const int tw = w + pw - kj;",
                 "if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;",
                 "const int ow = tw / sw;", "const long long r = (c * kh + ki) * kw + kj;",
                 "acc += cols[r * Q + (n * OH + oh) * OW + ow];", "x = acc;"]:
        assert line in col2im, line


@settings(max_examples=15, deadline=None)
@given(conv_case())
def test_cuda_index_formulas_equal_the_reference(case):
    shape, geom, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(cuda_im2col(x, *geom), reference.im2col(x, *geom))
    cols = rng.standard_normal(reference.im2col(x, *geom).shape)
    np.testing.assert_allclose(cuda_col2im(cols, shape, *geom),
                               reference.col2im(cols, shape, *geom), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, k, s, p", [(g[0], g[1], g[2], g[3])
                                            for g in device.CHECK_GEOMETRIES[2:]])
def test_cuda_index_formulas_on_the_check_geometries(shape, k, s, p):
    rng = np.random.default_rng(3)
    geom = (*k, *s, *p)
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(cuda_im2col(x, *geom), reference.im2col(x, *geom))
    cols = rng.standard_normal(reference.im2col(x, *geom).shape)
    np.testing.assert_allclose(cuda_col2im(cols, shape, *geom),
                               reference.col2im(cols, shape, *geom), rtol=1e-12, atol=1e-12)


def test_transcription_catches_a_wrong_formula():
    """The check can fail: col2im with the padding sign flipped disagrees with the reference."""
    geom = (3, 3, 2, 2, 1, 1)
    shape = (1, 2, 5, 5)
    cols = np.random.default_rng(0).standard_normal(reference.im2col(np.zeros(shape),
                                                                     *geom).shape)
    wrong = cuda_col2im(cols, shape, 3, 3, 2, 2, -1, -1)
    assert not np.allclose(wrong, reference.col2im(cols, shape, *geom))


def cuda_adam(p, g, m, v, lr, beta1, beta2, eps, wd, step) -> None:
    """device._ADAM (and the arguments cupy_set passes it) in NumPy, in place, all elements at
    once, every operation in the parameter's dtype."""
    t = p.dtype.type
    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    lr_bc1, sqrt_bc2 = t(lr / bc1), t(np.sqrt(bc2))
    gg = g + t(wd) * p if t(wd) != 0 else g
    m[...] = m * t(beta1) + t(1 - beta1) * gg
    v[...] = v * t(beta2) + t(1 - beta2) * gg * gg
    denom = np.sqrt(v) / sqrt_bc2 + t(eps)
    p[...] = p - (lr_bc1 * m) / denom


def test_adam_transcription_follows_the_cuda_source():
    src = _normalise(device._ADAM)
    for line in ["const T gg = wd != (T)0 ? g + wd * p : g;", "m = m * beta1 + c1 * gg;",
                 "v = v * beta2 + c2 * gg * gg;",
                 "const T denom = (T)sqrt(v) / sqrt_bc2 + eps;",
                 "p = p - (lr_bc1 * m) / denom;"]:
        assert line in src, line
    assert "double" not in src  # every operation in T, as the reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd, step", [(0.0, 1), (0.01, 3), (0.0, 200)])
def test_cuda_adam_formula_equals_the_reference(dtype, wd, step):
    rng = np.random.default_rng(step)
    p, g, m = (rng.standard_normal((4, 5)).astype(dtype) for _ in range(3))
    v = rng.uniform(0, 2, (4, 5)).astype(dtype)
    args = (2e-4, 0.5, 0.999, 1e-8, wd, step)
    ref = [a.copy() for a in (p, g, m, v)]
    reference.adam_update(*ref, *args)
    mine = [a.copy() for a in (p, g, m, v)]
    cuda_adam(*mine, *args)
    for got, want in zip(mine, ref):
        # FMA contraction on a GPU may move the last bit; here the roundings are the reference's
        np.testing.assert_allclose(got, want, rtol=2 * np.finfo(dtype).eps, atol=0)
    wrong = [a.copy() for a in (p, g, m, v)]
    cuda_adam(*wrong, 2e-4, 0.5, 0.99, 1e-8, wd, step)  # another beta2: the check can fail
    assert not np.allclose(wrong[3], ref[3], rtol=1e-6)


# ---------------------------------------------------------------------------- info
def test_info_reports_the_backend_and_device(capsys, strict):
    from nanogan.__main__ import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "array backend: strict" in out and "on the CPU" in out
    assert "kernels: active strict" in out
    assert "cupy: " in out


def test_info_subprocess_numpy_backend():
    res = run_python("import sys; sys.modules['cupy'] = None; from nanogan.__main__ import main; "
                     "main(['info'])", NANOGAN_BACKEND="")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1] == f"array backend: numpy {np.__version__} on the CPU"
    assert "cupy: not installed (pip install -e \".[gpu]\"" in lines[2]
    assert lines[3].startswith("kernels: active ")
