"""The fast path (``nanogan.fast``) against the plain layers: same outputs, same gradients, same
running statistics, layer by layer, on random architectures, and over whole training iterations.

Tolerances: the plan and the plain layers sum in different orders (a kernel's bias sum against
NumPy's pairwise sum, ``b @ a^T`` transposed against ``a @ b^T``), so float64 results agree to
1e-12 and float32 ones to 1e-6 (absolute for values of order one, relative to the largest value
above that; most float64 results are bit-identical).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import (
    GAN,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    LeakyReLU,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    _kernels,
)
from nanogan.fast import Plan, compile
from nanogan.optim import SGD, Adam

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow], max_examples=15)
TOL = {np.float64: 1e-12, np.float32: 1e-6}


def close(a, b, dtype, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    scale = max(float(np.abs(b).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


def close_to(a, b, tol, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    scale = max(float(np.abs(b).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale, err_msg=what)


def twins(make):
    """Two identical networks (same seeds), one to run plain and one compiled."""
    return make(), make()


def biases_before_batchnorm(net: Sequential) -> set[str]:
    """The keys of the biases that feed a BatchNorm: in training mode their exact gradient is
    zero (the batch mean takes the bias out), and what both paths compute for it is the rounding
    noise of a sum of N*H*W terms that cancel, a few float32 ulps of those terms."""
    return {f"{i}.bias" for i, (m, nxt) in enumerate(zip(net.layers, net.layers[1:]))
            if getattr(m, "bias", None) is not None and isinstance(nxt, (BatchNorm1d, BatchNorm2d))}


def run_both(make, x, dy, dtype, train=True, param_grads=True, input_grad=True):
    """Forward and backward on the plain network and on its plan; compare everything (the
    gradients of :func:`biases_before_batchnorm` in training mode, zero but for rounding, within
    ten times the tolerance)."""
    plain, other = twins(make)
    noise = biases_before_batchnorm(plain) if train else set()
    plan = Plan(other)
    y1, c1 = plain.forward(x, train)
    y2, c2 = plan.forward(x, train)
    close(y2, y1, dtype, "output")
    dx1 = plain.backward(dy, c1, param_grads=param_grads, input_grad=input_grad)
    dx2 = plan.backward(dy, c2, param_grads=param_grads, input_grad=input_grad)
    if input_grad:
        close(dx2, dx1, dtype, "dL/dx")
    else:
        assert dx1 is None and dx2 is None
    assert list(plan.grads) == list(plain.grads)
    for k, g in plain.grads.items():
        if k in noise:
            close_to(plan.grads[k], g, 10 * TOL[dtype], f"grad {k} (zero but for rounding)")
        else:
            close(plan.grads[k], g, dtype, f"grad {k}")
    for k, b in plain.buffers.items():
        close(plan.buffers[k], b, dtype, f"buffer {k}")
    return plan


# ---------------------------------------------------------------------------- layer by layer
ACTS = st.sampled_from(["none", "relu", "leaky0.2", "leaky1.5", "tanh", "sigmoid"])


def act(name):
    return {"none": [], "relu": [ReLU()], "leaky0.2": [LeakyReLU(0.2)],
            "leaky1.5": [LeakyReLU(1.5)], "tanh": [Tanh()], "sigmoid": [Sigmoid()]}[name]


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a=ACTS, bias=st.booleans(),
       n=st.integers(1, 5), fi=st.integers(1, 7), fo=st.integers(1, 7),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]),
       seed=st.integers(0, 2**16))
def test_dense_step(kernel_set, dtype, a, bias, n, fi, fo, flags, seed):
    g = np.random.default_rng(seed)
    x, dy = g.standard_normal((n, fi)).astype(dtype), g.standard_normal((n, fo)).astype(dtype)
    run_both(lambda: Sequential(Dense(fi, fo, bias, rng=seed, dtype=dtype), *act(a)), x, dy,
             dtype, param_grads=flags[0], input_grad=flags[1])


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a=ACTS, bias=st.booleans(),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), hw=st.integers(1, 9),
       whole=st.booleans(), train=st.booleans(), cin=st.sampled_from([1, 2]),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]),
       seed=st.integers(0, 2**16))
def test_conv_step(kernel_set, dtype, a, bias, k, s, p, hw, whole, train, cin, flags, seed):
    """Also one gradient at a time: without a bias, the leaky ReLU's gradient then goes into
    the one product wanted (``y=``, ``slope=``)."""
    if whole:  # one window covers the image: the fast path's shortcut
        p, hw = 0, k
    if hw + 2 * p < k:
        hw = k
    conv = lambda: Sequential(Conv2d(cin, 3, k, s, p, bias, rng=seed, dtype=dtype), *act(a))  # noqa: E731
    g = np.random.default_rng(seed)
    x = g.standard_normal((2, cin, hw, hw)).astype(dtype)
    out = conv()(x).shape
    run_both(conv, x, g.standard_normal(out).astype(dtype), dtype, train,
             param_grads=flags[0], input_grad=flags[1])


@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flags", [(True, False), (False, True)])
@pytest.mark.parametrize("cin", [1, 3])
def test_conv_leaky_step_one_gradient(kernel_set, own, dtype, flags, cin):
    """D's first layer, ``Conv2d(cin, 4, 4, 2, 1, bias=False)`` + ``LeakyReLU(0.2)``, asked for
    one gradient (the weight gradient when D trains, the input gradient when G trains through
    D): the one product wanted reads ``dy`` through the activation's gradient. On the set's own
    threads (``configure()``'s mode) the Cython set runs its fused convolution kernels, with the
    thin loops for one channel (16 window taps, 36 outputs per image); the reference set has no
    threads of its own and composes in both modes."""
    from nanogan._kernels import _threads

    if own and not (_threads._BLAS and _threads._cblas.GEMM):
        pytest.skip("no OpenBLAS with CBLAS")
    before = _threads._adaptive[0]
    _threads.adaptive_blas(own)
    try:
        net = lambda: Sequential(Conv2d(cin, 4, 4, 2, 1, bias=False, rng=5, dtype=dtype),  # noqa: E731
                                 LeakyReLU(0.2))
        g = np.random.default_rng(6)
        x = g.standard_normal((3, cin, 12, 12)).astype(dtype)
        run_both(net, x, g.standard_normal((3, 4, 6, 6)).astype(dtype), dtype,
                 param_grads=flags[0], input_grad=flags[1])
    finally:
        _threads.adaptive_blas(before)


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a=ACTS, bias=st.booleans(),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 1), hw=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_conv_transpose_step(kernel_set, dtype, a, bias, k, s, p, hw, seed):
    if (hw - 1) * s - 2 * p + k < 1:
        p = 0
    net = lambda: Sequential(ConvTranspose2d(2, 3, k, s, p, bias=bias, rng=seed, dtype=dtype),  # noqa: E731
                             *act(a))
    g = np.random.default_rng(seed)
    x = g.standard_normal((2, 2, hw, hw)).astype(dtype)
    out = net()(x).shape
    run_both(net, x, g.standard_normal(out).astype(dtype), dtype)


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a=ACTS, affine=st.booleans(),
       two_d=st.booleans(), train=st.booleans(), seed=st.integers(0, 2**16),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_batchnorm_step(kernel_set, dtype, a, affine, two_d, train, seed, flags):
    g = np.random.default_rng(seed)
    shape = (4, 3, 2, 2) if two_d else (4, 3)
    bn = BatchNorm2d if two_d else BatchNorm1d

    def make():
        m = bn(3, affine=affine, dtype=dtype)
        m.running_mean[...] = np.arange(3) * 0.1  # eval mode: non-trivial running statistics
        m.running_var[...] = 1 + np.arange(3) * 0.5
        if affine:
            m.weight[...] = [1.5, -0.5, 0.7]
            m.bias[...] = [0.1, -0.2, 0.3]
        return Sequential(m, *act(a))

    x = (g.standard_normal(shape) * 2 + 0.5).astype(dtype)
    run_both(make, x, g.standard_normal(shape).astype(dtype), dtype, train, *flags)


def test_steps_fuse_what_they_should():
    net = Sequential(Dense(3, 4, rng=0), LeakyReLU(0.2), Dense(4, 4, bias=False, rng=1),
                     LeakyReLU(0.2), BatchNorm1d(4), ReLU(), Dense(4, 2, rng=2), LeakyReLU(-1.0),
                     Sequential(Dense(2, 2, rng=3), ReLU()), Tanh(), Dense(2, 3, rng=4), Tanh(),
                     Dense(3, 3, bias=False, rng=5), Tanh())
    steps = Plan(net).steps
    kinds = [(type(s).__name__, s.size) for s in steps]
    assert kinds == [("DenseStep", 2), ("DenseStep", 1), ("ActivationStep", 1),
                     ("BatchNormActStep", 2), ("DenseStep", 1), ("ActivationStep", 1),
                     ("LayerStep", 1), ("TanhStep", 1), ("DenseStep", 2), ("DenseStep", 2)]
    assert [getattr(s, "tanh", None) for s in steps] == [False, False, None, None, False, None,
                                                         None, None, True, True]
    assert compile(net).model is net and compile(Dense(2, 2)).__class__ is Dense


def test_layouts_follow_the_steps():
    """Convolution and 2-D batch-norm steps take CNHW images, elementwise steps the order they
    are handed, everything else the layers' NCHW; the plan's input is NCHW."""
    net = Sequential(Tanh(), Conv2d(1, 2, 3, rng=0), LeakyReLU(0.2), BatchNorm2d(2), ReLU(),
                     Tanh(), ConvTranspose2d(2, 2, 3, rng=1), Flatten(), Sigmoid(),
                     Reshape((2, 5, 5)), Conv2d(2, 1, 5, rng=2))
    plan = Plan(net)
    assert [type(s).__name__ for s in plan.steps] == [
        "TanhStep", "ConvStep", "BatchNormActStep", "TanhStep", "ConvTransposeStep",
        "LayerStep", "LayerStep", "LayerStep", "ConvStep"]
    assert plan.layouts == ["nchw", "cnhw", "cnhw", "cnhw", "cnhw", "nchw", "nchw", "nchw",
                            "cnhw"]
    x = np.random.default_rng(0).standard_normal((3, 1, 5, 5))
    run_both(lambda: Sequential(Tanh(), Conv2d(1, 2, 3, rng=0, dtype=np.float64), LeakyReLU(0.2),
                                BatchNorm2d(2, dtype=np.float64), ReLU(), Tanh(),
                                ConvTranspose2d(2, 2, 3, rng=1, dtype=np.float64), Flatten(),
                                Sigmoid(), Reshape((2, 5, 5)),
                                Conv2d(2, 1, 5, rng=2, dtype=np.float64)),
             x, np.random.default_rng(1).standard_normal((3, 1, 1, 1)), np.float64)


def test_plan_shares_the_network_arrays_and_keys():
    net = Sequential(Dense(3, 4, rng=0), LeakyReLU(0.2), Dense(4, 1, rng=1))
    plan = Plan(net)
    assert list(plan.state_dict()) == list(net.state_dict())
    assert all(plan.params[k] is v for k, v in net.params.items())
    assert all(plan.grads[k] is v for k, v in net.grads.items())
    with pytest.raises(ValueError, match=r"Plan\.backward"):
        plan.backward(np.ones((2, 1), np.float32), [None])
    with pytest.raises(TypeError, match="Sequential"):
        Plan(Dense(2, 2))


# ---------------------------------------------------------------------------- architectures
@st.composite
def mlp_arch(draw):
    """Dense layers of random widths, each with or without bias, BatchNorm and activation."""
    widths = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    spec = [(draw(st.booleans()), draw(st.booleans()), draw(ACTS)) for _ in widths[1:]]
    return widths, spec


def build_mlp(widths, spec, dtype, seed):
    layers = []
    for i, (bias, bn, a) in enumerate(spec):
        layers.append(Dense(widths[i], widths[i + 1], bias, rng=seed + i, dtype=dtype))
        if bn:
            layers.append(BatchNorm1d(widths[i + 1], dtype=dtype))
        layers += act(a)
    return Sequential(*layers)


@FIXTURE_OK
@given(arch=mlp_arch(), dtype=st.sampled_from([np.float32, np.float64]), train=st.booleans(),
       seed=st.integers(0, 2**16))
def test_random_mlps(kernel_set, arch, dtype, train, seed):
    widths, spec = arch
    g = np.random.default_rng(seed)
    x = g.standard_normal((5, widths[0])).astype(dtype)
    dy = g.standard_normal((5, widths[-1])).astype(dtype)
    for flags in ((True, True), (True, False), (False, True)):
        run_both(lambda: build_mlp(widths, spec, dtype, seed), x, dy, dtype, train, *flags)


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a1=ACTS, a2=ACTS, bias=st.booleans(),
       bn=st.booleans(), train=st.booleans(), seed=st.integers(0, 2**16))
def test_random_conv_nets(kernel_set, dtype, a1, a2, bias, bn, train, seed):
    """A DCGAN-like generator and discriminator pair, chained."""
    def make():
        return Sequential(
            Reshape(3, 1, 1), ConvTranspose2d(3, 4, 3, 1, 0, bias=bias, rng=seed, dtype=dtype),
            *([BatchNorm2d(4, dtype=dtype)] if bn else []), *act(a1),
            ConvTranspose2d(4, 2, 4, 2, 1, rng=seed + 1, dtype=dtype), *act(a2),
            Conv2d(2, 4, 4, 2, 1, bias, rng=seed + 2, dtype=dtype),
            *([BatchNorm2d(4, dtype=dtype)] if bn else []), *act(a2),
            Conv2d(4, 1, 3, 1, 0, bias, rng=seed + 3, dtype=dtype), Flatten())
    g = np.random.default_rng(seed)
    x = g.standard_normal((3, 3)).astype(dtype)
    dy = g.standard_normal((3, 1)).astype(dtype)
    run_both(make, x, dy, dtype, train)


# ---------------------------------------------------------------------------- Algorithm 1
def small_pair(arch, dtype, seed):
    r = np.random.default_rng(seed)
    if arch == "mlp":
        G = Sequential(Dense(4, 8, rng=r, dtype=dtype), LeakyReLU(0.2),
                       Dense(8, 8, rng=r, dtype=dtype), BatchNorm1d(8, dtype=dtype), ReLU(),
                       Dense(8, 6, rng=r, dtype=dtype), Tanh())
        D = Sequential(Dense(6, 8, rng=r, dtype=dtype), LeakyReLU(0.2),
                       Dense(8, 1, rng=r, dtype=dtype))
        return G, D, (4,), (6,)
    if arch == "mlp-samplewise":  # G without BatchNorm: its plan splits (GAN.step runs it once)
        G = Sequential(Dense(4, 8, rng=r, dtype=dtype), LeakyReLU(0.2),
                       Dense(8, 8, rng=r, dtype=dtype), ReLU(),
                       Dense(8, 6, rng=r, dtype=dtype), Tanh())
        D = Sequential(Dense(6, 8, rng=r, dtype=dtype), LeakyReLU(0.2),
                       Dense(8, 1, rng=r, dtype=dtype))
        return G, D, (4,), (6,)
    G = Sequential(ConvTranspose2d(4, 4, 4, 1, 0, bias=False, rng=r, dtype=dtype),
                   BatchNorm2d(4, dtype=dtype), ReLU(),
                   ConvTranspose2d(4, 1, 4, 2, 1, rng=r, dtype=dtype), Tanh())
    D = Sequential(Conv2d(1, 4, 4, 2, 1, rng=r, dtype=dtype), LeakyReLU(0.2),
                   Conv2d(4, 4, 3, 1, 1, bias=False, rng=r, dtype=dtype),
                   BatchNorm2d(4, dtype=dtype), LeakyReLU(0.2),
                   Conv2d(4, 1, 4, 1, 0, rng=r, dtype=dtype), Flatten())
    return G, D, (4, 1, 1), (1, 8, 8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch", ["mlp", "mlp-samplewise", "dcgan"])
@pytest.mark.parametrize("loss,k", [("nonsaturating", 1), ("wasserstein", 2), ("lsgan", 1)])
def test_whole_iterations_fast_equals_plain(arch, dtype, loss, k):
    """Three iterations of Algorithm 1 (and one simultaneous step) with ``fast=True`` and
    ``fast=False`` from the same weights, batches and noise: the same statistics, parameters,
    buffers and optimizer state."""
    gans, stats = [], []
    for fast in (True, False):
        G, D, zs, xs = small_pair(arch, dtype, 7)
        opt = (lambda m: Adam(m, lr=1e-3)) if dtype == np.float64 else \
            (lambda m: SGD(m, lr=0.05, momentum=0.5))  # Adam's sign-like first step would
        #   magnify float32 rounding in near-zero gradients; SGD keeps it proportional
        gan = GAN(G, D, loss=loss, k=k, g_opt=opt(G), d_opt=opt(D), z_shape=zs, fast=fast)
        data = np.random.default_rng(3).uniform(-1, 1, (8, 6, *xs)).astype(dtype)
        rng = np.random.default_rng(4)
        it = iter(data)
        run = [gan.step(it, rng) for _ in range(3)]
        run.append(gan.simultaneous_step(next(it), gan.sample_noise(6, rng)))
        gans.append(gan)
        stats.append(run)
    fast_gan, plain_gan = gans
    assert isinstance(fast_gan._run(fast_gan.G), Plan) and plain_gan._run(plain_gan.G) is \
        plain_gan.G
    assert fast_gan._run(fast_gan.G).splits == (arch == "mlp-samplewise")  # G run once a step
    # The fast D step sums the real and fake weight gradients in one product (mlp), so they
    # differ from the plain ones by rounding (1e-16); Adam's first steps divide by sqrt(v), which
    # turns that into up to ~1e-12 relative for a gradient entry near zero: float64 to 1e-10.
    tol = 1e-10 if dtype == np.float64 else TOL[dtype]
    for s1, s2 in zip(*stats):
        assert s1.keys() == s2.keys()
        for key in s1:
            close_to(s1[key], s2[key], tol, key)
    sd1, sd2 = fast_gan.state_dict(), plain_gan.state_dict()
    assert list(sd1) == list(sd2)
    for key in sd2:
        close_to(sd1[key], sd2[key], tol if sd2[key].dtype.kind == "f" else 1e-12, key)


def test_fast_can_be_switched_and_follows_a_new_network():
    G, D, zs, _ = small_pair("mlp", np.float64, 0)
    gan = GAN(G, D, z_shape=zs)
    assert gan.fast and gan._run(G).model is G
    gan.fast = False
    assert gan._run(G) is G
    gan.fast = True
    G2 = Sequential(Dense(4, 6, rng=1, dtype=np.float64), Tanh())
    gan.G = G2
    assert gan._run(gan.G).model is G2


# ---------------------------------------------------------------------------- real + fake as one
def test_samplewise_networks_stack_and_others_do_not():
    from nanogan import Dropout, LayerNorm, Maxout

    d = dict(rng=0)
    assert Plan(Sequential(Dense(4, 3, **d), LeakyReLU(0.2), Dense(3, 1, **d))).stacks
    assert Plan(Sequential(Reshape(1, 2, 2), Conv2d(1, 2, 2, **d), Flatten(), Maxout(2, 1, 2, **d),
                           Sequential(LayerNorm(1), Tanh()))).stacks
    assert not Plan(Sequential(Dense(4, 3, **d), BatchNorm1d(3), Dense(3, 1, **d))).stacks
    assert not Plan(Sequential(Dense(4, 3, **d), Sequential(Dropout(0.5, rng=0)))).stacks

    class MyDense(Dense):  # a subclass may mix samples: not trusted
        pass

    assert not Plan(Sequential(MyDense(4, 1, **d))).stacks


@st.composite
def samplewise_arch(draw):
    """Dense, Maxout and LayerNorm layers of random widths with random activations."""
    widths = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    kinds = [draw(st.sampled_from(["dense", "dense_nobias", "maxout", "layernorm"]))
             for _ in widths[1:]]
    acts = [draw(ACTS) for _ in widths[1:]]
    return widths, kinds, acts


def build_samplewise(arch, dtype, seed):
    from nanogan import LayerNorm, Maxout

    widths, kinds, acts = arch
    layers = []
    for i, (kind, a) in enumerate(zip(kinds, acts)):
        fi, fo = widths[i], widths[i + 1]
        if kind == "maxout":
            layers.append(Maxout(fi, fo, 2, rng=seed + i, dtype=dtype))
        else:
            layers.append(Dense(fi, fo, kind == "dense", rng=seed + i, dtype=dtype))
            if kind == "layernorm":
                layers.append(LayerNorm(fo, dtype=dtype))
        layers += act(a)
    return Sequential(*layers)


@FIXTURE_OK
@given(arch=samplewise_arch(), dtype=st.sampled_from([np.float32, np.float64]),
       na=st.integers(1, 5), nb=st.integers(1, 5), seed=st.integers(0, 2**16),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_pair_equals_two_plain_passes(kernel_set, arch, dtype, na, nb, seed, flags):
    """``forward_pair``/``backward_pair`` on a stacking plan against two passes of the plain
    network: the same outputs, input gradients and (summed) parameter gradients."""
    widths = arch[0]
    g = np.random.default_rng(seed)
    a, b = (g.standard_normal((n, widths[0])).astype(dtype) for n in (na, nb))
    da, db = (g.standard_normal((n, widths[-1])).astype(dtype) for n in (na, nb))
    plain, other = twins(lambda: build_samplewise(arch, dtype, seed))
    plan = Plan(other)
    assert plan.stacks
    ya, ca = plain.forward(a, True)
    yb, cb = plain.forward(b, True)
    pa, pb, cache = plan.forward_pair(a, b, True)
    assert cache[0] is True  # one batch
    close(pa, ya, dtype, "f(a)")
    close(pb, yb, dtype, "f(b)")
    param_grads, input_grad = flags
    dxa = plain.backward(da, ca, param_grads=param_grads, input_grad=input_grad)
    dxb = plain.backward(db, cb, param_grads=param_grads, input_grad=input_grad)
    qa, qb = plan.backward_pair(da, db, cache, param_grads=param_grads, input_grad=input_grad)
    if input_grad:
        close(qa, dxa, dtype, "dL/da")
        close(qb, dxb, dtype, "dL/db")
    else:
        assert qa is None and qb is None
    for k, grad in plain.grads.items():
        close(plan.grads[k], grad, dtype, f"grad {k}")


def test_pair_runs_two_passes_when_it_cannot_stack():
    """BatchNorm (statistics over the batch), or batches of other dtypes: two passes, and the
    same results as the plain network's two passes (BatchNorm's running stats updated twice)."""
    def make():
        return Sequential(Dense(3, 4, rng=0, dtype=np.float64), BatchNorm1d(4, dtype=np.float64),
                          LeakyReLU(0.2), Dense(4, 1, rng=1, dtype=np.float64))
    plain, plan = make(), Plan(make())
    g = np.random.default_rng(0)
    a, b = g.standard_normal((4, 3)), g.standard_normal((6, 3))
    ya, ca = plain.forward(a, True)
    yb, cb = plain.forward(b, True)
    pa, pb, cache = plan.forward_pair(a, b, True)
    assert cache[0] is False
    close(pa, ya, np.float64)
    close(pb, yb, np.float64)
    plain.backward(np.ones_like(ya), ca)
    plain.backward(np.ones_like(yb), cb)
    plan.backward_pair(np.ones_like(pa), np.ones_like(pb), cache)
    for k in plain.grads:
        close(plan.grads[k], plain.grads[k], np.float64, k)
    for k in plain.buffers:
        close(plan.buffers[k], plain.buffers[k], np.float64, k)
    mlp = Plan(Sequential(Dense(3, 1, rng=0)))
    assert mlp.forward_pair(a.astype(np.float32), b, True)[2][0] is False  # dtypes differ


@st.composite
def splitting_arch(draw):
    """Dense layers (with or without bias) and activations whose steps cut their caches."""
    widths = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    acts = st.sampled_from(["none", "relu", "leaky0.2", "leaky1.5", "tanh"])
    return widths, [(draw(st.booleans()), False, draw(acts)) for _ in widths[1:]]


@FIXTURE_OK
@given(arch=splitting_arch(), dtype=st.sampled_from([np.float32, np.float64]),
       na=st.integers(1, 5), nb=st.integers(1, 5), seed=st.integers(0, 2**16),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_split_pair_gives_each_batch_its_own_cache(kernel_set, arch, dtype, na, nb, seed, flags):
    """``forward_pair`` then ``split_pair``: each half's cache, sent back alone, gives what a
    pass of that batch alone gives on the plain network (input and parameter gradients)."""
    widths, spec = arch
    g = np.random.default_rng(seed)
    a, b = (g.standard_normal((n, widths[0])).astype(dtype) for n in (na, nb))
    da, db = (g.standard_normal((n, widths[-1])).astype(dtype) for n in (na, nb))
    param_grads, input_grad = flags
    for which in (0, 1):
        plain, other = twins(lambda: build_mlp(widths, spec, dtype, seed))
        plan = Plan(other)
        assert plan.splits
        pa, pb, cache = plan.forward_pair(a, b, True)
        assert cache[0] is True
        x, dy, y = ((a, da, pa), (b, db, pb))[which]
        y_plain, c_plain = plain.forward(x, True)
        close(y, y_plain, dtype, "output")
        half = plan.split_pair(cache)[which]
        plan.zero_grad()
        dx = plan.backward(dy, half, param_grads=param_grads, input_grad=input_grad)
        dx_plain = plain.backward(dy, c_plain, param_grads=param_grads, input_grad=input_grad)
        if input_grad:
            close(dx, dx_plain, dtype, f"dL/dx of half {which}")
        else:
            assert dx is None
        for k, grad in plain.grads.items():
            close(plan.grads[k], grad, dtype, f"grad {k} of half {which}")


def test_split_pair_only_where_every_cache_is_cut_by_samples():
    from nanogan import LayerNorm, Maxout

    d = dict(rng=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 4))
    mlp = Plan(Sequential(Dense(4, 3, **d), LeakyReLU(0.2), Dense(3, 2, **d), Tanh()))
    assert mlp.splits
    first, second = mlp.split_pair(mlp.forward_pair(x, x[:2], True)[2])
    assert [len(c[0]) for c in (first[0], second[0])] == [3, 2]  # Dense's input rows
    # stacks, but a layer's own cache (Maxout, LayerNorm) is not cut: refused, by name
    other = Plan(Sequential(Dense(4, 4, **d), Maxout(4, 2, 2, **d), LayerNorm(2, dtype=np.float64)))
    assert other.stacks and not other.splits
    with pytest.raises(ValueError, match="split_pair"):
        other.split_pair(other.forward_pair(x, x, True)[2])
    # images in the plan's CNHW order are not cut by rows either
    conv = Plan(Sequential(Reshape(1, 2, 2), Conv2d(1, 2, 2, **d), LeakyReLU(0.2), Flatten()))
    assert conv.stacks and not conv.splits
    # two passes (BatchNorm): each pass keeps its own cache
    bn = Plan(Sequential(Dense(4, 3, **d), BatchNorm1d(3, dtype=np.float64), ReLU()))
    assert not bn.stacks and not bn.splits
    cache = bn.forward_pair(x, x[:2], True)[2]
    assert bn.split_pair(cache) == (cache[1], cache[2])


@pytest.fixture
def forward_calls(monkeypatch):
    """``(network, batch size)`` of every ``Plan.forward`` call while the test runs."""
    calls = []
    original = Plan.forward

    def spy(self, x, train=True):
        calls.append((self.model, len(x)))
        return original(self, x, train)

    monkeypatch.setattr(Plan, "forward", spy)
    return calls


def test_step_runs_g_forward_once_where_it_can(forward_calls):
    """GAN.step's last D update and its G update take G(z_d) and G(z_g) from one forward pass
    of 2N samples where G's plan splits, and draw the same noise as two separate steps (the
    generator's state afterwards is the same); a G with BatchNorm, a subclass with its own
    updates, and the earlier D steps of k > 1 go forward as before."""
    class OwnDStep(GAN):
        def d_step(self, x_real, z):
            return super().d_step(x_real, z)

    for arch, cls, k, g_passes in (("mlp-samplewise", GAN, 1, [12]),
                                    ("mlp-samplewise", GAN, 2, [6, 12]),
                                    ("mlp-samplewise", OwnDStep, 1, [6, 6]),
                                    ("mlp", GAN, 1, [6, 6])):
        G, D, zs, xs = small_pair(arch, np.float64, 0)
        gan = cls(G, D, z_shape=zs, k=k)
        rngs = [np.random.default_rng(5), np.random.default_rng(5)]
        forward_calls.clear()
        gan.step(iter(np.zeros((k, 6, *xs))), rngs[0])
        assert [n for m, n in forward_calls if m is G] == g_passes, (arch, cls, k)
        for _ in range(k + 1):
            gan.sample_noise(6, rngs[1])
        assert rngs[0].bit_generator.state == rngs[1].bit_generator.state


def test_d_step_runs_real_and_fake_as_one_batch(forward_calls):
    """GAN.d_step takes the one-batch path for a samplewise D (one forward pass of D, with the
    real and the fake batch stacked), and two passes for a D with BatchNorm."""
    for arch, d_passes in (("mlp", [12]), ("dcgan", [6, 6])):
        G, D, zs, xs = small_pair(arch, np.float64, 0)
        gan = GAN(G, D, z_shape=zs)
        forward_calls.clear()
        gan.d_step(np.zeros((6, *xs)), gan.sample_noise(6, np.random.default_rng(0)))
        assert [n for m, n in forward_calls if m is D] == d_passes, arch


# ---------------------------------------------------------------------------- convolution tiles
@pytest.fixture
def small_tiles(monkeypatch):
    """Column matrices above a few elements run by tiles of the batch (in every kernel set's
    convolution products: the tile of the fused kernels and of the composition)."""
    from nanogan._kernels import _threads

    def use(limit):
        monkeypatch.setattr(_threads, "CONV_TILE_ELEMENTS", limit)
        monkeypatch.setattr(_threads, "CONV_THREAD_TILE_ELEMENTS", limit)
    return use


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), a=ACTS, bias=st.booleans(),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 1), hw=st.integers(1, 6),
       n=st.integers(1, 7), limit=st.integers(1, 400), seed=st.integers(0, 2**16),
       flags=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_conv_by_tiles_equals_plain(small_tiles, dtype, a, bias, k, s, p, hw, n, limit, seed,
                                    flags):
    """Conv2d and ConvTranspose2d steps run by tiles of the batch (any tile size, a last tile
    shorter than the others, one image per tile) against the plain layers."""
    small_tiles(limit)
    if hw + 2 * p < k:
        hw = k
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, 2, hw, hw)).astype(dtype)
    conv = lambda: Sequential(Conv2d(2, 3, k, s, p, bias, rng=seed, dtype=dtype), *act(a))  # noqa: E731
    out = conv()(x).shape
    run_both(conv, x, g.standard_normal(out).astype(dtype), dtype, True, *flags)
    if (hw - 1) * s - 2 * p + k < 1:
        p = 0
    tconv = lambda: Sequential(ConvTranspose2d(2, 3, k, s, p, bias=bias, rng=seed,  # noqa: E731
                                               dtype=dtype), *act(a))
    out = tconv()(x).shape
    run_both(tconv, x, g.standard_normal(out).astype(dtype), dtype, True, *flags)


def test_conv_steps_keep_no_column_matrix(small_tiles, monkeypatch):
    """The convolution steps cache their input (and the fused activation's output), never a
    column matrix; their products go to the tiled kernel ops, which run by several tiles under a
    small limit (counted on the composition path: the set's im2col and col2im per tile)."""
    from nanogan._kernels import _common
    from nanogan.fast import steps

    x = np.random.default_rng(0).standard_normal((5, 2, 6, 6))
    conv = Plan(Sequential(Conv2d(2, 3, 3, 1, 1, rng=0, dtype=np.float64), LeakyReLU(0.2)))
    tconv = Plan(Sequential(ConvTranspose2d(2, 3, 4, 2, 1, rng=0, dtype=np.float64)))
    assert isinstance(conv.steps[0], steps.ConvStep)
    assert isinstance(tconv.steps[0], steps.ConvTransposeStep)
    _, cache = conv.forward(x, True)
    assert [a.size for a in cache[0]] == [x.size, 5 * 3 * 36]   # x, y
    _, cache = tconv.forward(x, True)
    assert cache[0][0].size == x.size                            # x2

    calls = {"im2col": 0, "col2im": 0}
    real = {op: getattr(_common.CompiledOps, op) for op in calls}

    def counting(op):
        def spy(self, *a, **k):
            calls[op] += 1
            return real[op](self, *a, **k)
        return spy

    for op in calls:
        monkeypatch.setattr(_common.CompiledOps, op, counting(op))
    compiled = [n for n in ("numba", "cython") if n in _kernels.available()]
    for name in compiled:
        ops = _kernels.load(name)
        k = ops._OPS._k
        bare = types.SimpleNamespace(**{n: getattr(k, n) for n in dir(k) if not n.startswith("_")
                                        and n not in ("im2col_gemm", "gemm_col2im",
                                                      "gemm_im2col_t")})
        composed = _common.CompiledOps(bare)
        W2 = np.ones((3, 18))
        for limit, tiles in ((1 << 19, 1), (2 * 18 * 36, 3)):
            small_tiles(limit)
            calls.update(im2col=0, col2im=0)
            composed.im2col_matmul(W2, x, 3, 3, 1, 1, 1, 1)
            composed.matmul_im2col_t(np.ones((3, 5 * 36)), x, 3, 3, 1, 1, 1, 1)
            composed.matmul_col2im(W2.T, np.ones((3, 5 * 36)), x.shape, 3, 3, 1, 1, 1, 1)
            assert calls == {"im2col": 2 * tiles, "col2im": tiles}, (name, limit)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("own", [False, True])
def test_whole_iterations_by_tiles_equal_plain(small_tiles, monkeypatch, dtype, own):
    """Algorithm 1 on the small DCGAN with every convolution run by tiles of 2 images, with the
    products on BLAS's threads or (``own``) on the kernel set's (the Cython set's fused
    convolution kernels, every kernel on its parallel path)."""
    from nanogan._kernels import _common, _threads

    small_tiles(2 * 16 * 16)
    _kernels.get_backend()
    if own:
        if not _threads._gemm[0]:
            pytest.skip("no kernel set with CBLAS")
        monkeypatch.setattr(_common, "PARALLEL_MIN", 0)
        monkeypatch.setattr(_threads, "MAX_LOAD", float("inf"))
        monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
        monkeypatch.setattr(_threads, "_adaptive", [False])
        _threads.adaptive_blas(True)
    gans = []
    for fast in (True, False):
        G, D, zs, xs = small_pair("dcgan", dtype, 7)
        gan = GAN(G, D, g_opt=SGD(G, lr=0.05, momentum=0.5), d_opt=SGD(D, lr=0.05, momentum=0.5),
                  z_shape=zs, fast=fast)
        data = np.random.default_rng(3).uniform(-1, 1, (8, 5, *xs)).astype(dtype)
        rng = np.random.default_rng(4)
        it = iter(data)
        for _ in range(3):
            gan.step(it, rng)
        gans.append(gan)
    if own:
        _threads.adaptive_blas(False)
    sd1, sd2 = gans[0].state_dict(), gans[1].state_dict()
    for key in sd2:
        close(sd1[key], sd2[key], dtype if sd2[key].dtype.kind == "f" else np.float64, key)


# ---------------------------------------------------------------------------- written gradients
def poison(model):
    """Fill every gradient with NaN: a gradient that a pass fails to write stays NaN."""
    for g in model.grads.values():
        g[...] = np.nan


def assert_written_as_zeroed(plan, make, run):
    """``run(plan, accumulate=False)`` on poisoned gradients leaves what ``zero_grad()`` then
    ``run(plan, accumulate=True)`` leaves, on a twin network, bit for bit."""
    twin = Plan(make())
    twin.zero_grad()
    run(twin, True)
    poison(plan)
    run(plan, False)
    assert list(plan.grads) == list(twin.grads)
    for k, g in twin.grads.items():
        np.testing.assert_array_equal(plan.grads[k], g, err_msg=k)


@FIXTURE_OK
@given(arch=mlp_arch(), dtype=st.sampled_from([np.float32, np.float64]), train=st.booleans(),
       input_grad=st.booleans(), seed=st.integers(0, 2**16))
def test_backward_writes_the_gradients_it_starts(kernel_set, arch, dtype, train, input_grad,
                                                 seed):
    """``Plan.backward(accumulate=False)`` writes every gradient (Dense with and without bias or
    activation, BatchNorm fused or run as its own layer) as zero_grad + backward would; with
    ``accumulate=True`` it still adds."""
    widths, spec = arch
    g = np.random.default_rng(seed)
    x = g.standard_normal((5, widths[0])).astype(dtype)
    dy = g.standard_normal((5, widths[-1])).astype(dtype)
    make = lambda: build_mlp(widths, spec, dtype, seed)  # noqa: E731

    def run(plan, accumulate):
        _, cache = plan.forward(x, train)
        plan.backward(dy, cache, input_grad=input_grad, accumulate=accumulate)

    assert_written_as_zeroed(Plan(make()), make, run)
    once, twice = Plan(make()), Plan(make())
    once.zero_grad()
    twice.zero_grad()
    run(once, True)
    run(twice, False)
    run(twice, True)  # adds a second time
    for k, grad in once.grads.items():
        close(twice.grads[k], 2 * grad, dtype, k)


@pytest.mark.parametrize("limit", [1 << 20, 2 * 16])
def test_conv_and_pair_backward_write_the_gradients(small_tiles, limit):
    """The convolution steps (whole and by tiles, transposed ones in G) and ``backward_pair``
    (one batch, and two passes when BatchNorm keeps the batches apart: the second pass adds to
    the first)."""
    small_tiles(limit)
    for arch in ("mlp", "dcgan"):
        (_, D, _, xs) = small_pair(arch, np.float64, 2)
        make = lambda arch=arch: small_pair(arch, np.float64, 2)[1]  # noqa: E731
        g = np.random.default_rng(5)
        a, b = g.standard_normal((4, *xs)), g.standard_normal((4, *xs))

        def run(plan, accumulate, a=a, b=b):
            sa, sb, cache = plan.forward_pair(a, b, True)
            plan.backward_pair(np.ones_like(sa), -np.ones_like(sb), cache, input_grad=False,
                               accumulate=accumulate)

        assert_written_as_zeroed(Plan(D), make, run)
        G, _, zs, _ = small_pair(arch, np.float64, 3)
        z = g.standard_normal((4, *zs))

        def run_g(plan, accumulate, z=z):
            y, cache = plan.forward(z, True)
            plan.backward(y, cache, input_grad=False, accumulate=accumulate)

        assert_written_as_zeroed(Plan(G), lambda arch=arch: small_pair(arch, np.float64, 3)[0],
                                 run_g)


def logged(fn, log: list):
    """``fn``, appending its name to ``log`` at every call."""
    def spy(*args):
        log.append(fn.__name__)
        return fn(*args)
    return spy


@pytest.mark.parametrize("name", [n for n in _kernels.available() if n != "reference"])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_whole_iterations_on_nanogan_threads_equal_blas_threads(name, arch, monkeypatch):
    """``configure()``'s mode, every product and kernel forced onto the kernel set's threads
    (each product cut into blocks, one CBLAS call per block): three Algorithm-1 iterations
    (the G to D path, both steps) end at the same parameters and optimizer state as with
    ``np.matmul`` on BLAS's threads, float64 to 1e-10."""
    from nanogan._kernels import _common, _threads

    if not (_threads._BLAS and _threads._cblas.GEMM):
        pytest.skip("no OpenBLAS with CBLAS")
    monkeypatch.setattr(_threads, "BLAS_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(_common, "PARALLEL_MIN", 0)
    monkeypatch.setattr(_threads, "MAX_LOAD", float("inf"))
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
    monkeypatch.setattr(_threads, "_load", [-float("inf"), True])
    before = _kernels.get_backend()
    blocked: list[tuple[int, ...]] = []

    def run(own: bool) -> dict:
        _threads.adaptive_blas(own)
        assert _threads.own_threads() is own
        G, D, zs, xs = small_pair(arch, np.float64, 7)
        gan = GAN(G, D, g_opt=Adam(G, lr=1e-3), d_opt=Adam(D, lr=1e-3), z_shape=zs)
        data = np.random.default_rng(3).uniform(-1, 1, (8, 6, *xs))
        rng = np.random.default_rng(4)
        it = iter(data)
        for _ in range(3):
            gan.step(it, rng)
        return gan.state_dict()

    low = _kernels.load(name)._OPS._k  # the set's low-level table: its fused conv kernels
    fused: list[str] = []
    for op in ("im2col_gemm", "gemm_col2im", "gemm_im2col_t"):
        if hasattr(low, op):
            monkeypatch.setattr(low, op, logged(getattr(low, op), fused))
    try:
        _kernels.set_backend(name)
        gemm = _threads._gemm[0]
        _threads._gemm[0] = lambda a, b, out, par: (blocked.append(a.shape),
                                                    gemm(a, b, out, par))[1]
        pair = _threads._gemm_pair[0]
        if pair is not None:  # logged when it ran (it declines on other than two threads)
            _threads._gemm_pair[0] = lambda *a: (lambda r: (r is not None and fused.append(
                "gemm_pair"), r)[1])(pair(*a))
        on_ours = run(True)
        n_ours = len(blocked) + len(fused)
        on_blas = run(False)
    finally:
        _threads.adaptive_blas(False)
        _kernels.set_backend(before)  # the set's own gemm back
    # the products went to the blocked gemm or, for convolutions, the set's fused kernels, or
    # side by side for a Dense layer's two gradients; with BLAS's threads, to none of them
    assert n_ours > 10 and len(blocked) + len(fused) == n_ours
    assert any(f != "gemm_pair" for f in fused) == (arch == "dcgan"
                                                     and hasattr(low, "im2col_gemm"))
    pairs_expected = (arch == "mlp" and name == "cython" and low.max_threads() == 2)
    assert ("gemm_pair" in fused) == pairs_expected
    for key in on_blas:
        tol = 1e-10 if on_blas[key].dtype.kind == "f" else 0
        close_to(on_ours[key], on_blas[key], tol, key)


@pytest.mark.skipif("cython" not in _kernels.available(), reason="the Cython set is not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_pair_equals_two_products_and_refuses_what_it_cannot_do(dtype):
    """``gemm_pair_arrays``: a Dense layer's two backward products side by side (transposed
    operands, a result written into a given array) equal ``np.matmul``; mismatched shapes, an
    operand CBLAS cannot read, or a result overlapping the other product's operands give None
    (nothing written); ``matmul_pair`` then multiplies them one by one."""
    from nanogan._kernels import _cblas, _threads
    from nanogan._kernels import _cython_kernels as ext

    if not _cblas.GEMM:
        pytest.skip("no CBLAS")
    _kernels.load("cython")  # the extension knows its CBLAS
    g = np.random.default_rng(0)
    dz, x, W = (g.standard_normal(s).astype(dtype) for s in ((64, 30), (64, 20), (30, 20)))
    gW = np.full((30, 20), np.nan, dtype)
    c1, c2 = ext.gemm_pair_arrays(dz.T, x, gW, dz, W, None)
    assert c1 is gW
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gW, dz.T @ x, **tol)
    np.testing.assert_allclose(c2, dz @ W, **tol)
    assert ext.gemm_pair_arrays(dz.T, x, None, dz, W.T, None) is None           # 30 vs 20
    stepped = dz[:, ::2].T                                                       # (15, 64)
    assert ext.gemm_pair_arrays(stepped, x, None, dz, W, None) is None          # no unit stride
    buf = np.zeros((64, 30), dtype)
    assert ext.gemm_pair_arrays(dz.T, x, buf[:30, :20], buf, W, None) is None   # c1 overlaps a2
    assert not buf.any()
    a, b = _threads.matmul_pair(stepped, x, dz, W)                               # one by one
    np.testing.assert_allclose(a, stepped @ x, **tol)
    np.testing.assert_allclose(b, dz @ W, **tol)


def test_gradients_are_written_through_views_or_refused():
    """``put_grad``/``put_product`` write a gradient given in another shape through a reshaped
    view of it; a gradient array that is not contiguous (reshape would copy, the write would
    vanish) is refused with a clear error."""
    from nanogan.fast.steps import put_grad, put_product

    conv = Conv2d(2, 3, 2, rng=0)
    value = np.arange(3 * 8, dtype=np.float32).reshape(3, 8)
    put_grad(conv, "weight", value, accumulate=False)
    np.testing.assert_array_equal(conv.grads["weight"], value.reshape(3, 2, 2, 2))
    put_product(conv, "weight", np.ones((3, 1), np.float32), np.ones((1, 8), np.float32),
                accumulate=True)
    np.testing.assert_array_equal(conv.grads["weight"], value.reshape(3, 2, 2, 2) + 1)
    conv._grads["weight"] = np.zeros((3, 2, 2, 4), np.float32)[..., ::2]  # not contiguous
    with pytest.raises(RuntimeError, match="not contiguous"):
        put_grad(conv, "weight", value, accumulate=False)
