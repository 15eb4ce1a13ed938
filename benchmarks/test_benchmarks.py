"""Checks of the benchmark harness: FLOP counts, cross-checks, outputs.

Part of the default ``python -m pytest`` run (``benchmarks`` is in the pytest ``testpaths``); the
JAX cross-check runs only where JAX is installed (the ``jax`` extra).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common  # noqa: E402
import specs  # noqa: E402

_common.use_checkout()
import torch  # noqa: E402  (a test dependency: its absence is an error, not a skip)

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_torch_flops_match_flop_counter(arch):
    """The analytic count of PyTorch's iteration equals what torch's FlopCounterMode sees."""
    import torch_side
    from torch.utils.flop_counter import FlopCounterMode

    batch = 4
    tg = torch_side.TorchGAN(arch)
    x = torch.rand(batch, *specs.X_SHAPE[arch]) * 2 - 1
    z1, z2 = (torch.randn(batch, *specs.Z_SHAPE[arch]) for _ in range(2))
    with FlopCounterMode(display=False) as counter:
        tg.iteration(x, z1, z2)
    assert counter.get_total_flops() == specs.iteration_flops(arch, batch, "torch")


def test_flop_counts_relations():
    """PyTorch's extra D weight grads, in MACs; nanogan computes the minimum."""
    for arch in specs.ARCHS:
        d = specs.ARCHS[arch]["D"]
        mini = specs.iteration_flops(arch, 1)
        assert specs.iteration_flops(arch, 1, "nanogan") == mini
        assert specs.iteration_flops(arch, 1, "torch") - mini == 2 * sum(x.macs for x in d)
        assert specs.iteration_flops(arch, 8) == 8 * mini
    # BENCHMARKS.md's approximate figures
    assert specs.iteration_flops("mlp", 64, "torch") / 1e9 == pytest.approx(0.39, rel=0.06)
    # (its DCGAN figure, ~9.6, is below the 11.2 that FlopCounterMode confirms above)
    assert specs.iteration_flops("dcgan", 64, "torch") / 1e9 == pytest.approx(9.6, rel=0.2)
    with pytest.raises(ValueError):
        specs.iteration_flops("mlp", 1, "tensorflow")


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_nanogan_flop_count_is_what_an_iteration_multiplies(arch, monkeypatch):
    """Count 2*m*n*k of every product the fast path runs in one ``GAN.step`` of the benchmark
    GANs (batch 3, real and fake stacked or not, convolutions tiled or not): it must equal
    ``iteration_flops(arch, 3, "nanogan")``."""
    _common.use_checkout()
    import nano_side

    from nanogan._kernels import _threads
    from nanogan.fast import steps

    count = [0]
    real = steps.matmul

    def counting(a, b, out=None):
        count[0] += 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * int(np.prod(a.shape[:-2]))
        return real(a, b, out)

    def conv_product(op):  # the convolution products run inside kernel ops: 2 m k n each
        fn = getattr(steps.ops, op)

        def spy(a, *rest, **kw):
            out = fn(a, *rest, **kw)
            n = rest[0].shape[1] if op == "matmul_col2im" else out.shape[1]
            count[0] += 2 * a.shape[0] * a.shape[1] * n
            return out
        return spy

    gan = nano_side.build_gan(arch)
    x = _common.real_batch(specs.X_SHAPE[arch], 3)
    gan.step(iter([x]), np.random.default_rng(0))  # the plans are built
    monkeypatch.setattr(steps, "matmul", counting)
    pair = steps.matmul_pair

    def counting_pair(a1, b1, a2, b2, out1=None):
        for a, b in ((a1, b1), (a2, b2)):
            count[0] += 2 * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return pair(a1, b1, a2, b2, out1)

    monkeypatch.setattr(steps, "matmul_pair", counting_pair)
    for op in ("im2col_matmul", "matmul_col2im", "matmul_im2col_t"):
        monkeypatch.setattr(steps.ops, op, conv_product(op))

    def window_product(op):  # a whole-window convolution's: 2 O C P N each
        fn = getattr(steps.ops, op)

        def spy(a, b):
            if op == "window_forward":        # w (O, C, P), x (C, N, P)
                (O, C, P), N = a.shape, b.shape[1]
            elif op == "window_weight_grad":  # dy (O, N), x (C, N, P)
                (O, N), (C, _, P) = a.shape, b.shape
            else:                             # dy (O, N), w (O, C, P)
                (O, N), (_, C, P) = a.shape, b.shape
            count[0] += 2 * O * C * P * N
            return fn(a, b)
        return spy

    for op in ("window_forward", "window_weight_grad", "window_input_grad"):
        monkeypatch.setattr(steps.ops, op, window_product(op))
    for tile in (_threads.CONV_THREAD_TILE_ELEMENTS, 1):
        monkeypatch.setattr(_threads, "CONV_TILE_ELEMENTS", tile)
        monkeypatch.setattr(_threads, "CONV_THREAD_TILE_ELEMENTS", tile)
        count[0] = 0
        gan.step(iter([x]), np.random.default_rng(0))
        assert count[0] == specs.iteration_flops(arch, 3, "nanogan"), tile


def test_conv_layer_macs():
    """Conv2d(64, 128, 4, 2, 1) on 14x14 -> 7x7; ConvTranspose2d(100, 128, 7) on 1x1 -> 7x7."""
    assert specs.conv(64, 128, 4, 2, 1, 14).macs == 128 * 49 * 64 * 16
    assert specs.convt(100, 128, 7, 1, 0, 1).macs == 100 * 128 * 49


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_cross_check_nanogan_vs_torch_float64(arch):
    import vs_pytorch

    out = vs_pytorch.cross_check(arch, None)
    assert out["float64_loss_rel_err"] < 1e-8
    assert out["float64_state_rel_err"] < 1e-8
    assert len(out["nanogan_losses"]) == 4


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_cross_check_jax_vs_torch_float32(arch):
    pytest.importorskip("jax", reason="the JAX cross-check needs the optional jax extra")
    pytest.importorskip("optax")
    import jax_side
    import vs_pytorch

    out = vs_pytorch.cross_check(arch, jax_side)
    assert out["jax_float32_loss_rel_err"] < 1e-4


def test_cross_check_detects_a_difference(monkeypatch):
    """A wrong PyTorch side (learning rate x10) makes the cross-check fail."""
    import torch_side
    import vs_pytorch

    orig = torch_side.TorchGAN.__init__

    def wrong(self, *a, **kw):
        orig(self, *a, **kw)
        for group in self.d_opt.param_groups:
            group["lr"] = 2e-3

    monkeypatch.setattr(torch_side.TorchGAN, "__init__", wrong)
    with pytest.raises(SystemExit, match="cross-check failed"):
        vs_pytorch.cross_check("mlp", None)


def test_vs_pytorch_end_to_end(tmp_path):
    import vs_pytorch

    out = tmp_path / "r.json"
    assert vs_pytorch.main(["--configs", "mlp64", "--iters", "2", "--warmup", "0",
                            "--threads", "1", "--no-jax", "--no-memory", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    r = doc["results"][0]
    assert r["config"] == "mlp64" and r["nanogan_ms"] > 0 and r["torch_ms"] > 0
    assert len(r["nanogan_all_ms"]) == 2
    assert r["nanogan_vs_torch"] == pytest.approx(r["nanogan_ms"] / r["torch_ms"])
    assert r["nanogan_flops"] == specs.iteration_flops("mlp", 64, "nanogan")
    assert doc["sgemm_peak_gflops"] > 0 and doc["machine"]["threads"] == 1
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_memory_probe_runs():
    import subprocess

    p = subprocess.run([sys.executable, os.path.join(HERE, "memory_probe.py"), "--framework",
                        "nanogan", "--config", "mlp64", "--iters", "1", "--threads", "1"],
                       capture_output=True, text=True, timeout=120, check=True)
    m = json.loads(p.stdout.strip().splitlines()[-1])
    assert m["peak_mb"] >= m["import_mb"] >= m["python_mb"] > 0
    assert m["above_import_mb"] == pytest.approx(m["peak_mb"] - m["import_mb"])


def test_layer_bench_one_layer():
    import layers_vs_pytorch

    r = layers_vs_pytorch.bench_layer("Conv2d", "Conv2d", (3, 4, 4, 2, 1), (3, 8, 8), 2, 2, 0)
    assert r["check_rel_err_y"] < 1e-5 and r["check_rel_err_dx"] < 1e-5
    assert r["forward_nanogan_ms"] > 0 and r["backward_torch_ms"] > 0


def test_format_table():
    t = _common.format_table(["a", "b"], [["x", 1.5], ["yy", None]])
    lines = t.splitlines()
    assert lines[0].startswith("| a ") and len({len(s) for s in lines}) == 1
    assert "1.50" in t and "-" in lines[3]


def test_real_batch_range():
    x = _common.real_batch((1, 28, 28), 5)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_profile_reenacts_the_iteration_gan_runs(arch):
    """``profile_nanogan.iteration`` (the clocked re-enactment) does what ``GAN.step`` does:
    the same parameters and optimizer state after two iterations from the same start (its
    gradients written by ``accumulate=False`` passes, as ``GAN``'s, with no ``zero_grad``)."""
    import nano_side
    import profile_nanogan

    x = _common.real_batch(specs.X_SHAPE[arch], 4)
    gans = [nano_side.build_gan(arch, dtype=np.float64) for _ in range(2)]
    rngs = [np.random.default_rng(3) for _ in range(2)]
    clock = profile_nanogan.Clock()
    for _ in range(2):
        profile_nanogan.iteration(clock, gans[0], x.astype(np.float64), rngs[0])
        gans[1].step([x.astype(np.float64)], rngs[1])
    a, b = gans[0].state_dict(), gans[1].state_dict()
    assert a.keys() == b.keys()
    for k in b:
        if k == "gan.steps":  # the re-enactment does not count steps
            continue
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12, err_msg=k)
    assert any(k.startswith("layer ") for k in clock.cur)


def test_profile_op_times_clock_every_op_and_put_them_back():
    """``profile_nanogan.py --ops``: the products and kernel ops of real iterations are listed,
    and the op table and the steps' ``matmul`` are the originals afterwards."""
    import nano_side
    import profile_nanogan

    import nanogan.fast.steps as fast_steps
    from nanogan._kernels import OP_NAMES, ops

    before = {op: getattr(ops, op) for op in OP_NAMES}
    matmul, matmul_pair = fast_steps.matmul, fast_steps.matmul_pair
    gan = nano_side.build_gan("dcgan")
    text = profile_nanogan.op_times(gan, _common.real_batch(specs.X_SHAPE["dcgan"], 4),
                                    np.random.default_rng(0), 1)
    assert "matmul (" in text and "im2col_matmul (" in text and "matmul_im2col_t (" in text
    assert "matmul_col2im (" in text
    assert "batchnorm_leaky_relu (" in text
    assert all(getattr(ops, op) is fn for op, fn in before.items())
    assert fast_steps.matmul is matmul and fast_steps.matmul_pair is matmul_pair


def test_profile_plans_are_not_taken_from_a_freed_network_with_the_same_id(monkeypatch):
    """``profile_nanogan.plan_of`` caches plans by ``id``; a new network that gets the id of a
    freed one (CPython reuses them) must get its own plan, not the old network's."""
    import nano_side
    import profile_nanogan

    old, new = nano_side.build_gan("mlp").D, nano_side.build_gan("dcgan").D
    monkeypatch.setattr(profile_nanogan, "_PLANS", {id(new): (old, "stale")})
    got = profile_nanogan.plan_of(new)
    assert got != "stale" and got.model is new and got.steps[0].layer is new.layers[0]


def test_unfold_simd_times_both_paths_of_every_case_the_build_has(monkeypatch, capsys):
    """``unfold_simd.py`` times the loops and the SIMD path of each case that takes it (here
    every case, whatever this build has), each once a round, and puts the SIMD switch back on;
    with no SIMD path it says so and exits 0."""
    import unfold_simd

    from nanogan._kernels import _cython_kernels as ext

    switched = []
    monkeypatch.setattr(ext, "simd_applies", lambda *a: (True, True))
    monkeypatch.setattr(ext, "use_simd", lambda on: switched.append(on) or True)
    rows = unfold_simd.run(rounds=2, seconds=1e-4, images=[2])
    assert [(r["op"], r["channels"], r["size"]) for r in rows] == [
        ("im2col", 64, 14), ("col2im", 64, 14), ("im2col", 1, 28), ("col2im", 1, 28)]
    for r in rows:
        assert len(r["loops"]) == len(r["simd"]) == 2
        assert all(t > 0 for t in r["loops"] + r["simd"])
    assert switched[-1] is True and False in switched

    monkeypatch.setattr(ext, "simd_applies", lambda *a: (False, False))
    assert unfold_simd.main(["--rounds", "1", "--seconds", "1e-4", "--images", "2"]) == 0
    assert "nothing to compare" in capsys.readouterr().out


def test_sgemm_peak_runs_openblas_on_the_threads_asked_and_puts_it_back(monkeypatch):
    from nanogan._kernels import _threads

    state = {"n": 1}
    seen = []
    monkeypatch.setattr(_threads, "_BLAS", (lambda n: state.update(n=n),
                                            lambda: state["n"]))
    real_time_call = _common.time_call

    def timed(fn):
        seen.append(state["n"])
        return real_time_call(fn)

    monkeypatch.setattr(_common, "time_call", timed)
    assert _common.sgemm_peak(2, n=64, repeats=3) > 0
    assert seen == [2, 2, 2] and state["n"] == 1


def test_dense_layouts_fortran_weights_train_as_the_c_ordered_and_the_patch_is_undone():
    """The layout experiment's two GANs give the same losses (its check would raise otherwise),
    its weights are Fortran-ordered, and the fast path is as it was after the run."""
    import dense_layouts

    import nanogan.fast.steps as S
    from nanogan._kernels import ops
    from nanogan.layers import Dense

    before = (S.DenseStep.backward, ops.adam_update_many)
    line = dense_layouts.weights(8, rounds=1, check_steps=3)
    assert "losses equal over 3 steps" in line
    assert (S.DenseStep.backward, ops.adam_update_many) == before
    gan = dense_layouts.build_mlp_gan(True)
    dense = [m for _, m in gan.D.named_modules() if type(m) is Dense]
    assert dense[0].weight.flags.f_contiguous and not dense[0].weight.flags.c_contiguous
    assert dense[0]._grads["weight"].flags.f_contiguous

    with dense_layouts.fortran_patched():  # a wrong gradient is caught by the check
        bad = dense_layouts.build_mlp_gan(True)
        gans = [dense_layouts.build_mlp_gan(False), bad]
        bad.G.layers[0]._params["weight"][0, 0] += 1.0
        with pytest.raises(AssertionError, match="disagree"):
            dense_layouts._alternate(gans, [np.random.default_rng(1), np.random.default_rng(1)],
                                     _common.real_batch((784,), 8), 8, 1, 2)


def test_dense_layouts_operands_cover_each_batch_and_its_stacked_pass():
    import dense_layouts

    seen = list(dense_layouts._dense_operands([3]))
    assert [s[0] for s in seen] == [f"{n} x {i} -> {o}" for n in (3, 6)
                                    for i, o in dense_layouts.SHAPES]
    for _label, gf, x, w, d, y, gw, dx in seen:
        n, i = x.shape
        o = w.shape[0]
        assert (w.shape, d.shape, y.shape, gw.shape, dx.shape) == (
            (o, i), (n, o), (n, o), (o, i), (n, i))
        assert gf == pytest.approx(2e-6 * n * i * o)
