"""Does the memory order of Dense weights and activations buy the MLP anything? Three views.

::

    python benchmarks/dense_layouts.py [--part products,columns,weights] [--batches 64,256]
                                       [--threads 1] [--rounds 30] [--cblas LIB]

OpenBLAS runs a product whose second operand is transposed (``x @ W.T``, the Dense forward pass
with ``W`` stored ``(out, in)`` as PyTorch stores it) slower than one whose operands are stored as
they are used, by up to a quarter at 64-128 rows. Whether that is worth a different layout is
decided in the iteration, not in a product alone:

* ``products``: every product shape of the MLP, each layout, operands hot (GFLOP/s);
* ``columns``: the MLP iteration's products (and the copies each layout needs) in NumPy, once
  with activations stored by rows (as now: the forward products transposed) and once by columns
  (``z^T = W x^T``: every product stored as used, plus a row copy of each activation for the
  weight gradients); the ratio of the two, alternated;
* ``weights``: the real ``GAN.step`` with every Dense weight (and its gradient and Adam state)
  stored in Fortran order, i.e. ``W^T`` contiguous, so the forward product is stored as used and
  the input-gradient product ``dz @ W`` is the transposed one; the losses of both GANs are
  checked equal first, then the two are alternated in one process.

* ``--cblas LIB``: the same products through another library's ``cblas_sgemm`` (MKL's
  ``libmkl_rt.so.3`` from ``pip install mkl``), to see whether another BLAS would do better.

Prints medians and interquartile ranges of the alternated ratios. ``weights`` patches
``DenseStep.backward`` and the Adam kernel call for its own run only (:func:`fortran_patched`:
the weight gradient written as ``x^T dz`` into ``g^T``; Adam handed the C-ordered transposes
of Fortran arrays).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from _common import format_table, real_batch, set_threads, use_checkout

SHAPES = ((100, 256), (256, 256), (256, 784), (784, 256))  # (in, out) of G's and D's products


def _best_ms(fn, reps: int = 200) -> float:
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps // 5):
            fn()
        best = min(best, (time.perf_counter() - t0) / (reps // 5))
    return 1e3 * best


def _product(a: Any, b: Any, out: Any):
    import numpy as np

    return lambda: np.matmul(a, b, out=out)


def _dense_operands(batches: list[int]) -> Iterator[tuple]:
    """For every Dense product shape of the MLP at each batch and twice it (D's stacked pass):
    ``(label, gflop, x, w, d, y, gw, dx)``, the input ``x (n, in)``, weight ``w (out, in)`` and
    output gradient ``d (n, out)``, random float32, and empty outputs for ``x @ w.T``, the weight
    gradient and the input gradient."""
    import numpy as np

    rng = np.random.default_rng(0)
    for n in sorted(set(batches) | {2 * b for b in batches}):
        for i, o in SHAPES:
            x = rng.standard_normal((n, i), dtype=np.float32)
            w = rng.standard_normal((o, i), dtype=np.float32)
            d = rng.standard_normal((n, o), dtype=np.float32)
            y, gw, dx = (np.empty(s, np.float32) for s in ((n, o), (o, i), (n, i)))
            yield f"{n} x {i} -> {o}", 2e-6 * n * i * o, x, w, d, y, gw, dx


def products(batches: list[int]) -> str:
    """GFLOP/s of each product of a Dense layer in each layout, operands hot."""
    import numpy as np

    rows = []
    for label, gf, x, w, d, y, gw, dx in _dense_operands(batches):
        wt = np.ascontiguousarray(w.T)
        cases = ((x, w.T, y), (x, wt, y), (d.T, x, gw), (d, w, dx), (d, wt.T, dx))
        rows.append([label, *(gf / _best_ms(_product(*c)) for c in cases)])
    return format_table(["rows x in -> out", "x @ W.T", "x @ Wt", "dz.T @ x", "dz @ W",
                         "dz @ Wt.T"], rows)


def other_cblas(path: str, batches: list[int]) -> str:
    """GFLOP/s of the Dense products through another library's ``cblas_sgemm`` (loaded from
    ``path``, e.g. MKL's ``libmkl_rt.so``, on one thread where it has MKL's setter) beside
    NumPy's, operands hot; each product checked against NumPy's first."""
    import ctypes

    import numpy as np

    lib = ctypes.CDLL(path)
    if hasattr(lib, "MKL_Set_Num_Threads"):
        lib.MKL_Set_Num_Threads(1)
    sgemm = lib.cblas_sgemm
    sgemm.argtypes = ([ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_float,
                                            ctypes.c_void_p, ctypes.c_int])
    row, no, tr = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans

    def lib_product(a: Any, ta: int, b: Any, tb: int, out: Any):
        m, n = out.shape
        k = a.shape[0] if ta == tr else a.shape[1]
        return lambda: sgemm(row, ta, tb, m, n, k, 1.0, a.ctypes.data, a.shape[1],
                             b.ctypes.data, b.shape[1], 0.0, out.ctypes.data, n)

    rows = []
    for label, gf, x, w, d, y, gw, dx in _dense_operands(batches):
        cells = []
        for mine, (a, ta, b, tb, out), want in (
                ((x, w.T, y), (x, no, w, tr, y), x @ w.T),
                ((d.T, x, gw), (d, tr, x, no, gw), d.T @ x),
                ((d, w, dx), (d, no, w, no, dx), d @ w)):
            theirs = lib_product(a, ta, b, tb, out)
            theirs()
            if not np.allclose(out, want, rtol=1e-4, atol=1e-3):
                raise AssertionError(f"{path}: a wrong product at {label}")
            cells += [gf / _best_ms(_product(*mine)), gf / _best_ms(theirs)]
        rows.append([label, *cells])
    return format_table(["rows x in -> out", "x @ W.T NumPy", "other", "dz.T @ x NumPy",
                         "other", "dz @ W NumPy", "other"], rows)


def _ratio_summary(ratios: list[float]) -> str:
    import numpy as np

    r = np.array(ratios)
    return (f"{np.median(r):.3f} (interquartile {np.percentile(r, 25):.3f}-"
            f"{np.percentile(r, 75):.3f}, {len(r)} alternations)")


def columns(batch: int, rounds: int) -> str:
    """The MLP iteration's products with activations by rows and by columns, alternated."""
    import numpy as np

    n = batch
    rng = np.random.default_rng(0)

    def r(*s: int) -> Any:
        return (0.05 * rng.standard_normal(s)).astype(np.float32)

    W = [r(256, 100), r(256, 256), r(784, 256)]   # G
    V = [r(256, 784), r(256, 256), r(1, 256)]     # D
    gW, gV = [np.empty_like(w) for w in W], [np.empty_like(v) for v in V]
    real, z = r(n, 784), r(2 * n, 100)
    realT = np.ascontiguousarray(real.T)

    def act(a: Any) -> Any:
        return np.maximum(a, 0.2 * a, out=a)

    def by_rows() -> None:
        h0 = act(z @ W[0].T)
        h1 = act(h0 @ W[1].T)
        xf = np.tanh(h1 @ W[2].T)
        x = np.concatenate([real, xf[:n]])
        a0 = act(x @ V[0].T)
        a1 = act(a0 @ V[1].T)
        dl = 0.01 * (a1 @ V[2].T)
        np.matmul(dl.T, a1, out=gV[2])
        da1 = 0.5 * (dl @ V[2])
        np.matmul(da1.T, a0, out=gV[1])
        da0 = 0.5 * (da1 @ V[1])
        np.matmul(da0.T, x, out=gV[0])
        b1 = act(act(xf[n:] @ V[0].T) @ V[1].T)
        d = 0.5 * ((0.01 * (b1 @ V[2].T)) @ V[2])
        dx = 0.5 * ((0.5 * (d @ V[1])) @ V[0])
        np.matmul(dx.T, h1[n:], out=gW[2])
        dh1 = 0.5 * (dx @ W[2])
        np.matmul(dh1.T, h0[n:], out=gW[1])
        dh0 = 0.5 * (dh1 @ W[1])
        np.matmul(dh0.T, z[n:], out=gW[0])

    def by_columns() -> None:
        h0T = act(W[0] @ np.ascontiguousarray(z.T))
        h1T = act(W[1] @ h0T)
        xfT = np.tanh(W[2] @ h1T)
        h0, h1 = np.ascontiguousarray(h0T.T), np.ascontiguousarray(h1T.T)  # for dW
        x = np.concatenate([real, xfT[:, :n].T])
        a0T = act(V[0] @ np.concatenate([realT, xfT[:, :n]], axis=1))
        a1T = act(V[1] @ a0T)
        a0, a1 = np.ascontiguousarray(a0T.T), np.ascontiguousarray(a1T.T)
        dlT = 0.01 * (V[2] @ a1T)
        np.matmul(dlT, a1, out=gV[2])
        da1T = 0.5 * (V[2].T @ dlT)
        np.matmul(da1T, a0, out=gV[1])
        da0T = 0.5 * (V[1].T @ da1T)
        np.matmul(da0T, x, out=gV[0])
        b1T = act(V[1] @ act(V[0] @ xfT[:, n:]))
        d = 0.5 * (V[2].T @ (0.01 * (V[2] @ b1T)))
        dxT = 0.5 * (V[0].T @ (0.5 * (V[1].T @ d)))
        np.matmul(dxT, h1[n:], out=gW[2])
        dh1T = 0.5 * (W[2].T @ dxT)
        np.matmul(dh1T, h0[n:], out=gW[1])
        dh0T = 0.5 * (W[1].T @ dh1T)
        np.matmul(dh0T, z[n:], out=gW[0])

    def block(fn, k: int = 20) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        return (time.perf_counter() - t0) / k

    block(by_rows), block(by_columns)
    ratios, t_rows = [], []
    for _ in range(rounds):
        a, b = block(by_rows), block(by_columns)
        ratios.append(b / a)
        t_rows.append(a)
    return (f"batch {batch}: columns / rows {_ratio_summary(ratios)}; rows "
            f"{1e3 * sorted(t_rows)[len(t_rows) // 2]:.2f} ms")


def fortran_weights(*nets: Any) -> None:
    """Store every Dense weight of ``nets`` in Fortran order (same values), with its gradient;
    call before an optimizer is built on them (it takes the arrays and allocates its state in
    their order)."""
    import numpy as np

    from nanogan.layers import Dense

    for net in nets:
        for _, m in net.named_modules():
            if type(m) is Dense:
                w = np.asfortranarray(m._params["weight"])
                m._params["weight"] = m.weight = w
                m._grads["weight"] = np.zeros_like(w)


def build_mlp_gan(fortran: bool) -> Any:
    """``nano_side.build_gan("mlp")``, its Dense weights in Fortran order with ``fortran``."""
    import nano_side
    import numpy as np

    import nanogan
    from nanogan.optim import Adam

    make_g, make_d = nano_side.BUILDERS["mlp"]
    rng = np.random.default_rng(0)
    G, D = make_g(rng=rng), make_d(rng=rng)
    if fortran:
        fortran_weights(G, D)
    return nanogan.GAN(G, D, loss="nonsaturating",
                       g_opt=Adam(G, lr=2e-4, betas=(0.5, 0.999)),
                       d_opt=Adam(D, lr=2e-4, betas=(0.5, 0.999)))


def _is_fortran(a: Any) -> bool:
    return a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous


@contextlib.contextmanager
def fortran_patched() -> Iterator[None]:
    """Within the block, the fast path and Adam take Fortran-ordered Dense weights (put back
    after it)."""
    import nanogan.fast.steps as S
    from nanogan._kernels import ops

    plain_backward = S.DenseStep.backward

    def backward(self, dy, cache, *, param_grads, input_grad, accumulate=True):
        d = self.layer
        if not _is_fortran(d.weight) or not (self.tanh or self.slope is not None):
            return plain_backward(self, dy, cache, param_grads=param_grads,
                                  input_grad=input_grad, accumulate=accumulate)
        x, y = cache
        n, o = y.shape
        if self.tanh:
            dz = ops.tanh_backward(dy, y)
            db = dz.sum(axis=0)
        else:
            dz, db = ops.bias_leaky_relu_backward(dy.reshape(n, o, 1), y.reshape(n, o, 1),
                                                  self.slope)
            dz = dz.reshape(n, o)
        gt = d._grads["weight"].T                       # (in, out), C order
        if param_grads:
            S.put_grad(d, "bias", db, accumulate)
            if input_grad:
                gw, dx = S.matmul_pair(x.T, dz, dz, d.weight, None if accumulate else gt)
                if accumulate:
                    gt += gw
                return dx
            if accumulate:
                gt += S.matmul(x.T, dz)
            else:
                S.matmul(x.T, dz, out=gt)
            return None
        return S.matmul(dz, d.weight) if input_grad else None

    many = ops.adam_update_many

    def adam_update_many(ps, gs, ms, vs, *args):
        t = [[a.T if _is_fortran(a) else a for a in arrays] for arrays in (ps, gs, ms, vs)]
        return many(*t, *args)

    S.DenseStep.backward, ops.adam_update_many = backward, adam_update_many
    try:
        yield
    finally:
        S.DenseStep.backward, ops.adam_update_many = plain_backward, many


def weights(batch: int, rounds: int, check_steps: int = 3) -> str:
    """``GAN.step`` with C- and Fortran-ordered Dense weights, alternated in one process."""
    import numpy as np

    gans = [build_mlp_gan(False), build_mlp_gan(True)]
    x = real_batch((784,), batch)
    rngs = [np.random.default_rng(1), np.random.default_rng(1)]
    with fortran_patched():
        return _alternate(gans, rngs, x, batch, rounds, check_steps)


def _alternate(gans: list, rngs: list, x: Any, batch: int, rounds: int,
               check_steps: int) -> str:
    import numpy as np

    for _ in range(check_steps):
        a, b = (g.step([x], r) for g, r in zip(gans, rngs))
        if a.keys() != b.keys() or not all(np.isclose(a[k], b[k], rtol=1e-5, atol=1e-7)
                                           for k in a):
            raise AssertionError(f"the two layouts disagree: {a} against {b}")

    def block(i: int, k: int = 40) -> float:
        ts = []
        for _ in range(k):
            t0 = time.perf_counter()
            gans[i].step([x], rngs[i])
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    block(0), block(1)
    ratios, t_c = [], []
    for _ in range(rounds):
        a, b = block(0), block(1)
        ratios.append(b / a)
        t_c.append(a)
    return (f"batch {batch}: Fortran / C {_ratio_summary(ratios)}; C "
            f"{1e3 * sorted(t_c)[len(t_c) // 2]:.2f} ms (losses equal over {check_steps} steps)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="products,columns,weights")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cblas", default=None,
                    help="also time the products through this library's cblas_sgemm "
                    "(a path, e.g. .../libmkl_rt.so.3 of pip's mkl)")
    args = ap.parse_args(argv)
    set_threads(args.threads, passive=False)
    use_checkout()
    import nanogan.performance

    nanogan.performance.configure()  # as the examples and the benchmarks run nanogan
    batches = [int(b) for b in args.batches.split(",")]
    parts = args.part.split(",")
    print(f"{args.threads} thread(s); nothing else should be running")
    if "products" in parts:
        print("\nproducts, operands hot, GFLOP/s (Wt: W^T stored contiguous)\n")
        print(products(batches))
    if args.cblas:
        print(f"\nproducts through {args.cblas} beside NumPy's BLAS, operands hot, GFLOP/s\n")
        print(other_cblas(args.cblas, batches))
    if "columns" in parts:
        print("\nthe MLP iteration's products in NumPy, activations by rows against by columns")
        for b in batches:
            print(columns(b, args.rounds))
    if "weights" in parts:
        print("\nGAN.step, Dense weights in C order (as PyTorch) against Fortran order")
        for b in batches:
            print(weights(b, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
