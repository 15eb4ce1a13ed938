"""Every formula in docs/backprop-through-gans.md, evaluated against the code.

The page writes each equation as NumPy in a block that starts with ``# formula: <id>``. This test
reads the page, runs each block (the page's own text, not a copy) on concrete arrays and compares
what it computes with what nanogan computes. A block without a check here, or a check whose block
is gone, fails :func:`test_every_formula_is_checked`; a link to a function that does not exist
fails :func:`test_links_point_at_existing_functions`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nanogan import (
    GAN,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    LeakyReLU,
    Module,
    Sequential,
    Sigmoid,
    Tanh,
    gradcheck,
    numerical_gradient,
    rel_error,
)
from nanogan import losses as L
from nanogan._kernels import ops, reference
from nanogan.optim import SGD

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "backprop-through-gans.md"
TEXT = DOC.read_text()
BLOCK = re.compile(r"```python\n# formula: ([\w.\-]+)\n(.*?)```", re.S)
F64 = np.float64


def _formulas() -> dict[str, str]:
    found = BLOCK.findall(TEXT)
    ids = [fid for fid, _ in found]
    assert len(ids) == len(set(ids)), f"duplicate formula ids: {sorted(ids)}"
    return dict(found)


FORMULAS = _formulas()
CASES: dict[str, Callable[[], None]] = {}


def case(*fids: str):
    def register(fn):
        for fid in fids:
            CASES[fid] = fn
        return fn
    return register


def run(fid: str, **env) -> dict:
    """Execute the page's block ``fid`` with ``env`` bound; return its namespace."""
    ns = {"np": np, **env}
    exec(compile(FORMULAS[fid], f"{DOC.name}[{fid}]", "exec"), ns)
    return ns


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, F64), np.asarray(b, F64), rtol=tol, atol=tol)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------- the harness
@pytest.mark.parametrize("fid", sorted(FORMULAS))
def test_formula(fid):
    assert fid in CASES, f"formula {fid!r} of {DOC.name} has no check in this file"
    CASES[fid]()


def test_every_formula_is_checked():
    assert set(FORMULAS) == set(CASES), (
        f"in the page but unchecked: {sorted(set(FORMULAS) - set(CASES))}; "
        f"checked but gone from the page: {sorted(set(CASES) - set(FORMULAS))}")
    assert len(FORMULAS) >= 30


def test_every_python_block_is_a_formula():
    """A displayed NumPy block without an id would be an equation nobody checks."""
    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.S)
    assert len(blocks) == len(FORMULAS)
    assert all(b.startswith("# formula: ") for b in blocks)


def _defined(path: Path, dotted: str) -> bool:
    nodes = ast.parse(path.read_text()).body
    for part in dotted.split("."):
        found = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                 and n.name == part]
        if not found:
            return False
        nodes = found[0].body if isinstance(found[0], ast.ClassDef) else []
    return True


def test_links_point_at_existing_functions():
    links = re.findall(r"\]\(([^)#\s]+)(?:#([\w.]+))?\)", TEXT)
    local = [(p, a) for p, a in links if not p.startswith("http")]
    assert len([a for _, a in local if a]) >= 30
    for path, anchor in local:
        target = (DOC.parent / path).resolve()
        assert target.exists(), f"{DOC.name} links to missing {path}"
        if anchor:
            assert _defined(target, anchor), f"{DOC.name}: no {anchor} in {path}"


def test_every_section_links_its_code():
    """Each section that derives code ends by linking it (the theory and the outlook do not)."""
    sections = {s.split(".", 1)[0]: s for s in re.split(r"\n## ", TEXT)[1:]}
    assert set(sections) == {str(i) for i in range(13)}
    for number, s in sections.items():
        if number not in ("9", "12"):
            assert "Implemented by" in s, f"section {s.splitlines()[0]!r} links no code"


# ---------------------------------------------------------------------------- 1. Dense
def _dense():
    layer = Dense(4, 3, rng=0, dtype=F64)
    x, dy = rand(5, 4, seed=1), rand(5, 3, seed=2)
    y, cache = layer.forward(x)
    layer.zero_grad()
    dx = layer.backward(dy, cache)
    return layer, x, dy, y, dx


@case("dense.forward", "dense.dx", "dense.dW", "dense.db")
def _():
    layer, x, dy, y, dx = _dense()
    env = {"x": x, "W": layer.weight, "b": layer.bias, "dy": dy}
    close(run("dense.forward", **env)["y"], y)
    close(run("dense.dx", **env)["dx"], dx)
    close(run("dense.dW", **env)["dW"], layer.grads["weight"])
    close(run("dense.db", **env)["db"], layer.grads["bias"])


@case("dense.second_order")
def _():
    layer = Dense(4, 3, rng=0, dtype=F64)
    x, x_dot, dy, dy_dot = rand(5, 4, seed=1), rand(5, 4, seed=2), rand(5, 3, seed=3), \
        rand(5, 3, seed=4)
    _, cache = layer.forward(x)
    y_dot, tcache = layer.jvp(x_dot, cache)
    layer.zero_grad()
    _, dx_dot = layer.backward_jvp(dy, dy_dot, cache, tcache)
    ns = run("dense.second_order", x=x, x_dot=x_dot, dy=dy, dy_dot=dy_dot, W=layer.weight)
    close(ns["y_dot"], y_dot)
    close(ns["dx_dot"], dx_dot)
    close(ns["dW_dot"], layer.grads["weight"])


# ---------------------------------------------------------------------------- 2. activations
@case("leaky_relu.forward", "leaky_relu.backward")
def _():
    x = np.array([[-2.0, -0.5, 0.0, 0.3, 4.0]])
    dy = rand(1, 5, seed=3)
    for slope in (0.0, 0.2):
        layer = LeakyReLU(slope)
        y, cache = layer.forward(x)
        close(run("leaky_relu.forward", x=x, slope=slope)["y"], y, 0)
        close(run("leaky_relu.backward", x=x, dy=dy, slope=slope)["dx"],
              layer.backward(dy, cache), 0)


@case("tanh.backward")
def _():
    x, dy = rand(3, 4), rand(3, 4, seed=1)
    y, cache = Tanh().forward(x)
    close(run("tanh.backward", y=y, dy=dy)["dx"], Tanh().backward(dy, cache))
    close(run("tanh.backward", y=y, dy=dy)["dx"], dy / np.cosh(x) ** 2)


@case("sigmoid.forward", "sigmoid.backward")
def _():
    x = np.concatenate([rand(2, 4).ravel(), [-1e4, -50.0, 0.0, 50.0, 1e4]])[None]
    dy = rand(*x.shape, seed=1)
    y, cache = Sigmoid().forward(x)
    ns = run("sigmoid.forward", x=x)
    close(ns["y"], y, 0)
    assert np.isfinite(ns["y"]).all()
    mid = np.abs(x) < 30
    close(ns["y"][mid], 1 / (1 + np.exp(-x[mid])))
    close(run("sigmoid.backward", y=y, dy=dy)["dx"], Sigmoid().backward(dy, cache))


# ---------------------------------------------------------------------------- 3. Sequential
@case("sequential.chain")
def _():
    net = Sequential(Dense(4, 3, rng=0, dtype=F64), Tanh())
    x, dy = rand(5, 4), rand(5, 3, seed=1)
    net.zero_grad()
    ns = run("sequential.chain", f1=net[0], f2=net[1], x=x, dy=dy)
    grads = {k: v.copy() for k, v in net.grads.items()}
    net.zero_grad()
    y, cache = net.forward(x)
    close(ns["y"], y)
    close(ns["dx"], net.backward(dy, cache))
    for k, g in net.grads.items():
        close(grads[k], g)


# ---------------------------------------------------------------------------- 4. BatchNorm
def _bn_cases():
    """(layer, x as the layer takes it, to (m, C), from (m, C))."""
    bn1 = BatchNorm1d(3, momentum=0.3, dtype=F64)
    bn2 = BatchNorm2d(3, momentum=0.3, dtype=F64)
    x1 = rand(6, 3) * 2 + 1
    x2 = rand(2, 3, 2, 3, seed=1) * 2 - 1
    to1 = (lambda a: a, lambda a: a)
    to2 = (lambda a: a.transpose(0, 2, 3, 1).reshape(-1, 3),
           lambda a: a.reshape(2, 2, 3, 3).transpose(0, 3, 1, 2))
    out = []
    for bn, x, (fwd, back) in ((bn1, x1, to1), (bn2, x2, to2)):
        bn.weight[...] = [1.5, -0.5, 0.7]
        bn.bias[...] = [0.1, -0.2, 0.3]
        out.append((bn, x, fwd, back))
    return out


@case("batchnorm.forward", "batchnorm.running", "batchnorm.backward_staged",
      "batchnorm.backward")
def _():
    for bn, x, fwd, back in _bn_cases():
        running = {"running_mean": bn.running_mean.copy(), "running_var": bn.running_var.copy()}
        y, cache = bn.forward(x, train=True)
        dy = rand(*y.shape, seed=5)
        bn.zero_grad()
        dx = bn.backward(dy, cache)
        xm = fwd(x)
        env = {"x": xm, "gamma": bn.weight, "beta": bn.bias, "eps": bn.eps}
        ns = run("batchnorm.forward", **env)
        close(back(ns["y"]), y)
        m = xm.shape[0]
        ns_r = run("batchnorm.running", **running, momentum=bn.momentum, mean=ns["mean"],
                   var=ns["var"], m=m)
        close(ns_r["running_mean"], bn.running_mean)
        close(ns_r["running_var"], bn.running_var)
        env.update(dy=fwd(dy), m=m, mean=ns["mean"], inv_std=ns["inv_std"], xhat=ns["xhat"])
        close(back(run("batchnorm.backward_staged", **env)["dx"]), dx, 1e-10)
        nb = run("batchnorm.backward", **env)
        close(back(nb["dx"]), dx, 1e-10)
        # "dx has zero sum over the batch, and (exactly when eps = 0) is orthogonal to xhat"
        close(nb["dx"].sum(axis=0), 0, 1e-10)
        n0 = run("batchnorm.forward", **{**env, "eps": 0.0})
        d0 = run("batchnorm.backward", **{**env, "eps": 0.0, "inv_std": n0["inv_std"],
                                          "xhat": n0["xhat"]})["dx"]
        close((d0 * n0["xhat"]).sum(axis=0), 0, 1e-10)
        close(nb["dgamma"], bn.grads["weight"])
        close(nb["dbeta"], bn.grads["bias"])


@case("batchnorm.eval")
def _():
    for bn, x, fwd, back in _bn_cases():
        bn.running_mean[...] = [0.2, -0.1, 0.4]
        bn.running_var[...] = [0.5, 2.0, 1.5]
        y, cache = bn.forward(x, train=False)
        dy = rand(*y.shape, seed=6)
        ns = run("batchnorm.eval", x=fwd(x), dy=fwd(dy), gamma=bn.weight, beta=bn.bias,
                 eps=bn.eps, running_mean=bn.running_mean, running_var=bn.running_var)
        close(back(ns["y"]), y)
        close(back(ns["dx"]), bn.backward(dy, cache))


# ---------------------------------------------------------------------------- 5. Conv2d
GEOMETRIES = [(3, 1, 0), (4, 2, 1), (3, 2, 1), (2, 1, 1), (5, 1, 0)]  # (k, stride, padding)


def _conv(k, s, p, seed=0):
    conv = Conv2d(2, 3, k, s, p, rng=seed, dtype=F64)
    x = rand(2, 2, 5, 6, seed=seed + 1)
    y, cache = conv.forward(x)
    dy = rand(*y.shape, seed=seed + 2)
    conv.zero_grad()
    dx = conv.backward(dy, cache)
    N, C, H, W = x.shape
    O, OH, OW = y.shape[1:]
    geo = {"N": N, "C": C, "H": H, "W": W, "O": O, "OH": OH, "OW": OW, "kh": k, "kw": k,
           "sh": s, "sw": s, "ph": p, "pw": p}
    im2col = lambda a: ops.im2col(a, k, k, s, s, p, p)  # noqa: E731
    col2im = lambda c: ops.col2im(c, x.shape, k, k, s, s, p, p)  # noqa: E731
    return conv, x, y, dy, dx, geo, im2col, col2im


@case("conv.output_size")
def _():
    for k, s, p in GEOMETRIES:
        conv, x, y, *_ , geo, _i, _c = _conv(k, s, p)
        ns = run("conv.output_size", **{k_: geo[k_] for k_ in ("H", "W", "kh", "kw", "sh",
                                                                "sw", "ph", "pw")})
        assert (ns["OH"], ns["OW"]) == y.shape[2:] == conv.output_shape(x.shape)[2:]


@case("conv.definition", "conv.im2col", "conv.forward", "conv.backward")
def _():
    for k, s, p in GEOMETRIES:
        conv, x, y, dy, dx, geo, im2col, col2im = _conv(k, s, p)
        env = {**geo, "x": x, "dy": dy, "weight": conv.weight, "bias": conv.bias,
               "im2col": im2col, "col2im": col2im}
        close(run("conv.definition", **env)["y"], y)
        xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        cols = run("conv.im2col", **env, xpad=xpad)["cols"]
        close(cols, reference.im2col(x, k, k, s, s, p, p), 0)
        close(cols, im2col(x), 0)
        ns = run("conv.forward", **env)
        close(ns["y"], y)
        nb = run("conv.backward", **env, weight2=ns["weight2"])
        close(nb["dx"], dx)
        close(nb["dweight"], conv.grads["weight"])
        close(nb["dbias"], conv.grads["bias"])


@case("conv.col2im_adjoint")
def _():
    for k, s, p in GEOMETRIES:
        _, x, _, _, _, geo, im2col, col2im = _conv(k, s, p)
        v = rand(geo["C"] * k * k, geo["N"] * geo["OH"] * geo["OW"], seed=9)
        ns = run("conv.col2im_adjoint", x=x, v=v, im2col=im2col, col2im=col2im)
        close(ns["lhs"], ns["rhs"])
        assert abs(ns["lhs"]) > 1e-3


# ---------------------------------------------------------------------------- 6. ConvTranspose2d
CT_GEOMETRIES = [(4, 2, 1, 0), (3, 1, 0, 0), (3, 2, 1, 1), (4, 1, 0, 0)]  # k, s, p, out_pad


def _convt(k, s, p, op, H=3, W=4):
    t = ConvTranspose2d(2, 3, k, s, p, op, rng=0, dtype=F64)
    x = rand(2, 2, H, W, seed=1)
    y, cache = t.forward(x)
    dy = rand(*y.shape, seed=2)
    t.zero_grad()
    dx = t.backward(dy, cache)
    return t, x, y, dy, dx


@case("conv_transpose.output_size")
def _():
    for k, s, p, op in CT_GEOMETRIES:
        t, x, y, *_ = _convt(k, s, p, op)
        ns = run("conv_transpose.output_size", H=x.shape[2], sh=s, ph=p, kh=k, oph=op)
        assert ns["OH"] == y.shape[2] == t.output_shape(x.shape)[2]


@case("conv_transpose.forward", "conv_transpose.backward")
def _():
    for k, s, p, op in CT_GEOMETRIES:
        t, x, y, dy, dx = _convt(k, s, p, op)
        N, Cin, H, W = x.shape
        env = {"x": x, "dy": dy, "weight": t.weight, "bias": t.bias, "N": N, "Cin": Cin,
               "Cout": 3, "H": H, "W": W, "kh": k, "kw": k,
               "col2im": lambda c: ops.col2im(c, y.shape, k, k, s, s, p, p),  # noqa: B023
               "im2col": lambda a: ops.im2col(a, k, k, s, s, p, p)}  # noqa: B023
        ns = run("conv_transpose.forward", **env)
        close(ns["y"], y)
        nb = run("conv_transpose.backward", **env, x2=ns["x2"], weight2=ns["weight2"])
        close(nb["dx"], dx)
        close(nb["dweight"], t.grads["weight"])
        close(nb["dbias"], t.grads["bias"])


@case("conv_transpose.adjoint")
def _():
    for k, s, p, _ in CT_GEOMETRIES:
        t = ConvTranspose2d(2, 3, k, s, p, bias=False, rng=0, dtype=F64)
        conv = Conv2d(3, 2, k, s, p, bias=False, dtype=F64)
        conv.weight[...] = t.weight  # (Cin, Cout, kh, kw) = Conv2d(Cout -> Cin)'s (O, C, kh, kw)
        x = rand(2, 2, 3, 3, seed=3)
        v = rand(*t.output_shape(x.shape), seed=4)
        ns = run("conv_transpose.adjoint", x=x, v=v, conv_transpose=lambda a: t(a),  # noqa: B023
                 conv=lambda a: conv(a))  # noqa: B023
        close(ns["lhs"], ns["rhs"])


# ---------------------------------------------------------------------------- 7. losses
def _softplus():
    return run("loss.softplus")["softplus"]


def _logits(n, seed, scale=3.0):
    return rand(n, 1, seed=seed) * scale


@case("loss.softplus")
def _():
    sp = _softplus()
    u = np.concatenate([rand(20) * 5, [-1e4, -700.0, 0.0, 700.0, 1e4]])
    close(sp(u), ops.softplus(u), 1e-14)
    mid = np.abs(u) < 30
    close(sp(u[mid]), np.log1p(np.exp(u[mid])))
    assert np.isfinite(sp(u.astype(np.float32))).all()


@case("loss.log_sigmoid")
def _():
    s = rand(20) * 5
    ns = run("loss.log_sigmoid", softplus=_softplus(), s=s)
    sig = 1 / (1 + np.exp(-s))
    close(ns["minus_log_sigmoid"], -np.log(sig), 1e-10)
    close(ns["minus_log_one_minus_sigmoid"], -np.log(1 - sig), 1e-10)


def _env(N=5, M=7):
    s_real, s_fake = _logits(N, 1), _logits(M, 2)
    return {"softplus": _softplus(), "sigmoid": reference.sigmoid, "s_real": s_real,
            "s_fake": s_fake, "N": N, "M": M}


@case("loss.d_loss")
def _():
    env = _env()
    ns = run("loss.d_loss", **env)
    s = env["s_real"]  # "-sigmoid(-s) = sigmoid(s) - 1: prediction minus target"
    close(-reference.sigmoid(-s), reference.sigmoid(s) - 1)
    for loss in (L.Minimax(), L.NonSaturating()):
        value, d_real, d_fake = loss.d_loss(env["s_real"], env["s_fake"])
        close(ns["L_D"], value)
        close(ns["dL_D_ds_real"], d_real)
        close(ns["dL_D_ds_fake"], d_fake)


@case("loss.minimax_g", "loss.nonsaturating_g")
def _():
    env = _env()
    for fid, loss in (("loss.minimax_g", L.Minimax()), ("loss.nonsaturating_g",
                                                          L.NonSaturating())):
        ns = run(fid, **env)
        value, d_fake = loss.g_loss(env["s_fake"])
        close(ns["L_G"], value)
        close(ns["dL_G_ds_fake"], d_fake)


@case("loss.saturation")
def _():
    s_fake = np.array([[-10.0], [-3.0], [0.0], [2.0]])
    ns = run("loss.saturation", sigmoid=reference.sigmoid, s_fake=s_fake)
    code_ratio = L.NonSaturating().g_loss(s_fake)[1] / L.Minimax().g_loss(s_fake)[1]
    close(ns["ratio"], code_ratio, 1e-10)
    close(ns["ratio_closed_form"], code_ratio, 1e-10)
    assert 2.2e4 < ns["ratio"][0, 0] < 2.21e4  # "about 22,000 at s_fake = -10"


@case("loss.wasserstein", "loss.lsgan", "loss.hinge")
def _():
    env = _env()
    for fid, loss in (("loss.wasserstein", L.Wasserstein()), ("loss.lsgan", L.LSGAN()),
                      ("loss.hinge", L.Hinge())):
        ns = run(fid, **env)
        value, d_real, d_fake = loss.d_loss(env["s_real"], env["s_fake"])
        close(ns["L_D"], value)
        close(ns["dL_D_ds_real"], d_real)
        close(ns["dL_D_ds_fake"], d_fake)
        g_value, g_fake = loss.g_loss(env["s_fake"])
        close(ns["L_G"], g_value)
        close(ns["dL_G_ds_fake"], g_fake)


# ---------------------------------------------------------------------------- 8. Algorithm 1
def _nets(seed=0):
    r = np.random.default_rng(seed)
    G = Sequential(Dense(3, 6, rng=r, dtype=F64), BatchNorm1d(6, dtype=F64), LeakyReLU(0.2),
                   Dense(6, 4, rng=r, dtype=F64), Tanh())
    D = Sequential(Dense(4, 5, rng=r, dtype=F64), LeakyReLU(0.2), Dense(5, 1, rng=r, dtype=F64))
    return G, D


@case("gan.d_step")
def _():
    G, D = _nets()
    x, z = np.tanh(rand(6, 4, seed=1)), rand(6, 3, seed=2)
    loss = L.NonSaturating()
    ns = run("gan.d_step", G=G, D=D, x=x, z=z, loss=loss)
    G2, D2 = _nets()
    GAN(G2, D2, loss=loss, d_opt=SGD(D2, lr=0.0)).d_step(x, z)  # lr 0: the gradients stay
    for k, g in D2.grads.items():
        close(ns["dtheta_D"][k], g)
    # the two backward passes add: the sum of the halves, each run alone
    halves = []
    for s_c, ds in ((ns["c_real"], ns["dL_D_ds_real"]), (ns["c_fake"], ns["dL_D_ds_fake"])):
        D.zero_grad()
        D.backward(ds, s_c)
        halves.append({k: v.copy() for k, v in D.grads.items()})
    for k in D.grads:
        close(ns["dtheta_D"][k], halves[0][k] + halves[1][k])
    assert not any(g.any() for g in G.grads.values())


@case("gan.g_step")
def _():
    G, D = _nets()
    z = rand(6, 3, seed=2)
    loss = L.NonSaturating()
    D.zero_grad()
    ns = run("gan.g_step", G=G, D=D, z=z, loss=loss)
    assert not any(g.any() for g in D.grads.values()), "the G step wrote into D.grads"
    G2, D2 = _nets()
    before = {k: v.copy() for k, v in D2.params.items()}
    GAN(G2, D2, loss=loss, g_opt=SGD(G2, lr=0.0)).g_step(z)
    for k, g in G2.grads.items():
        close(ns["dtheta_G"][k], g)
    for k, v in D2.params.items():
        np.testing.assert_array_equal(v, before[k])
    assert ns["dL_G_dGz"].shape == ns["fake"].shape


# ---------------------------------------------------------------------------- 9. theory
def _densities(seed=0, K=6):
    g = np.random.default_rng(seed)
    p, q = g.uniform(0.1, 1, K), g.uniform(0.1, 1, K)
    return p / p.sum(), q / q.sum()


@case("theory.optimal_d")
def _():
    p, q = _densities()
    D_star = run("theory.optimal_d", p_data=p, p_g=q)["D_star"]
    s_star = np.log(D_star / (1 - D_star))
    close(s_star, np.log(p / q))  # "in logits, s* = log(p_data / p_g)"
    for k in range(len(p)):  # D's expected BCE gradient at each point is zero at s*
        s = np.array([s_star[k]])
        grad = p[k] * L.bce_with_logits(s, 1.0)[1] + q[k] * L.bce_with_logits(s, 0.0)[1]
        assert abs(grad[0]) < 1e-12
    V = lambda D: np.sum(p * np.log(D) + q * np.log(1 - D))  # noqa: E731
    for delta in (-1e-3, 1e-3):
        assert V(D_star) > V(np.clip(D_star + delta, 1e-9, 1 - 1e-9))


@case("theory.optimal_d_gaussian")
def _():
    from nanogan.toy import normal_pdf

    x, mu, sigma, m = np.linspace(-4, 6, 41), 2.0, 0.5, -0.5
    D_star = run("theory.optimal_d_gaussian", normal_pdf=normal_pdf, x=x, mu=mu, sigma=sigma,
                 m=m)["D_star"]
    p, q = normal_pdf(x, mu, sigma), normal_pdf(x, m, 1.0)
    close(D_star, run("theory.optimal_d", p_data=p, p_g=q)["D_star"])
    logit = np.log(D_star / (1 - D_star))  # log p - log q: a quadratic in x
    quad = -(x - mu) ** 2 / (2 * sigma**2) - np.log(sigma) + (x - m) ** 2 / 2
    close(logit, quad, 1e-9)


@case("theory.jsd")
def _():
    for p, q in (_densities(1), _densities(2)):
        D_star = run("theory.optimal_d", p_data=p, p_g=q)["D_star"]
        ns = run("theory.jsd", p_data=p, p_g=q, D_star=D_star)
        close(ns["V_star"], ns["C"])
        s = np.log(D_star / (1 - D_star))  # the same value from the code's softplus
        close(-(np.sum(p * ops.softplus(-s)) + np.sum(q * ops.softplus(s))), ns["C"])
        assert 0 < ns["JSD"] <= np.log(2)
    # on a grid: the sums with trapezoid weights are nanogan.theory's integrals
    from nanogan import theory
    from nanogan.toy import normal_pdf

    x = np.linspace(-8, 10, 2001)
    w = np.full_like(x, x[1] - x[0])
    w[[0, -1]] /= 2
    pd, pg = normal_pdf(x, 1.0, 1.0), normal_pdf(x, -0.5, 1.0)
    D_star = run("theory.optimal_d", p_data=pd, p_g=pg)["D_star"]
    close(D_star, theory.optimal_discriminator(pd, pg))
    ns = run("theory.jsd", p_data=pd * w, p_g=pg * w, D_star=D_star)
    close(ns["JSD"], theory.jsd(pd, pg, x), 1e-10)
    close(ns["V_star"], theory.virtual_criterion(pd, pg, x), 1e-10)
    ns = run("theory.jsd", p_data=p, p_g=p, D_star=np.full_like(p, 0.5))
    close(ns["JSD"], 0.0)
    close(ns["C"], -np.log(4))


# ---------------------------------------------------------------------------- 10. gradcheck
@case("gradcheck.surrogate_loss")
def _():
    layer = Dense(3, 2, rng=0, dtype=F64)
    x, dy = rand(4, 3), rand(4, 2, seed=1)
    f = run("gradcheck.surrogate_loss", layer=layer, dy=dy)["L"]
    _, cache = layer.forward(x)
    dx = layer.backward(dy, cache)
    assert rel_error(dx, numerical_gradient(lambda: f(x), x)) < 1e-8


@case("gradcheck.central_difference")
def _():
    p = rand(3, 2)
    f = lambda a: float(np.sum(np.sin(a) * a))  # noqa: E731
    num = run("gradcheck.central_difference", p=p, f=f, h=1e-6)["num"]
    q = p.copy()
    close(num, numerical_gradient(lambda: f(q), q, 1e-6), 1e-9)
    close(num, np.cos(p) * p + np.sin(p), 1e-8)


@case("gradcheck.rel_error")
def _():
    a, b = rand(5), rand(5, seed=1)
    close(run("gradcheck.rel_error", a=a, b=b)["err"], rel_error(a, b), 1e-15)


@case("gradcheck.your_layer")
def _():
    env = {"Module": Module, "gradcheck": gradcheck}
    assert run("gradcheck.your_layer", **env)["errors"]["x"] < 1e-8
    broken = FORMULAS["gradcheck.your_layer"].replace("2 * cache * dy", "cache * dy")
    assert broken != FORMULAS["gradcheck.your_layer"]
    ns = {"np": np, **env}
    exec(broken, ns)
    assert ns["errors"]["x"] > 0.1
