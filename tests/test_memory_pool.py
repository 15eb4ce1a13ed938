"""nanogan's memory pool (``nanogan._memory.workspace``, the extension's ``_pool.h``): large
arrays allocated inside a training step come from blocks freed by earlier steps, only inside
the step, and every array stays valid however long it lives."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nanogan import _memory

ROOT = Path(__file__).resolve().parents[1]
BIG = 1 << 15  # float64 values: 256 KiB, above the pool's 64 KiB floor

needs_pool = pytest.mark.skipif(not _memory.pool_available(),
                                reason="the compiled extension (which holds the pool) is not built")


def handler(a: np.ndarray | None = None) -> str:
    get = np._core.multiarray.get_handler_name
    return get(a) if a is not None else get()


@pytest.fixture(autouse=True)
def _pool_on():
    was = _memory.pool_on()
    _memory.use_pool(True)
    yield
    _memory.use_pool(was)


@needs_pool
def test_large_arrays_inside_a_workspace_come_from_the_pool_and_only_there():
    before = handler()
    with _memory.workspace():
        assert handler() == "nanogan_pool"
        a = np.ones(BIG)
    assert handler() == before
    b = np.ones(BIG)
    assert handler(a) == "nanogan_pool" and handler(b) == before
    assert a.sum() == BIG  # valid after the block


@needs_pool
def test_a_freed_block_is_reused_and_zeros_are_zeros():
    _memory.release_pool()
    with _memory.workspace():
        a = np.empty(BIG)
        a[:] = np.nan  # a dirty block goes back to the pool
        addr = a.ctypes.data
        del a
        s0 = _memory.pool_stats()
        assert s0["blocks"] >= 1
        z = np.zeros(BIG)  # the same byte count: the kept block, zero-filled
        assert z.ctypes.data == addr and not z.any()
        assert _memory.pool_stats()["hits"] == s0["hits"] + 1
        e = np.empty(BIG + 1)  # another size: not that block
        assert e.ctypes.data != addr


@needs_pool
def test_release_and_off():
    with _memory.workspace():
        a = np.empty(BIG)
        del a
    assert _memory.pool_stats()["bytes"] >= BIG * 8
    assert _memory.release_pool() >= BIG * 8
    assert _memory.pool_stats()["bytes"] == 0 and _memory.pool_stats()["blocks"] == 0
    _memory.use_pool(False)
    with _memory.workspace():
        assert handler() == "default_allocator"
        assert handler(np.empty(BIG)) == "default_allocator"


@needs_pool
def test_nested_blocks_and_exceptions_restore_the_handler():
    before = handler()
    with pytest.raises(KeyError):
        with _memory.workspace():
            with _memory.workspace():
                assert handler() == "nanogan_pool"
            assert handler() == "nanogan_pool"
            raise KeyError("inside")
    assert handler() == before


@needs_pool
def test_another_thread_keeps_its_own_handler():
    seen = []
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait(10)
        seen.append(handler(np.empty(BIG)))
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with _memory.workspace():
        inside.set()
        done.wait(10)
    t.join()
    assert seen == ["default_allocator"]


@needs_pool
def test_the_pool_keeps_at_most_its_limit():
    mod = _memory._pool_module()
    _memory.release_pool()
    limit = _memory.pool_stats()["limit"]
    try:
        mod.pool_set_limit(3 * BIG * 8)
        with _memory.workspace():
            arrays = [np.empty(BIG) for _ in range(5)]
            del arrays
        s = _memory.pool_stats()
        assert s["bytes"] <= 3 * BIG * 8 and s["blocks"] == 3
    finally:
        mod.pool_set_limit(limit)
        _memory.release_pool()


@needs_pool
def test_training_steps_run_on_the_pool_and_give_the_same_results():
    """Two identical GANs, one step each with the pool on and off: the same parameters to the
    bit; the pool served the second step's large arrays from the first's."""
    from nanogan import GAN
    from nanogan.models import dcgan28_discriminator, dcgan28_generator
    from nanogan.optim import Adam

    def trained(pool: bool) -> list[np.ndarray]:
        _memory.use_pool(pool)
        rng = np.random.default_rng(0)
        G, D = dcgan28_generator(rng=0), dcgan28_discriminator(rng=1)
        gan = GAN(G, D, g_opt=Adam(G), d_opt=Adam(D))
        x = rng.uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32)
        for _ in range(2):
            gan.step(iter([x]), rng)
        return [np.array(v) for m in (G, D) for v in m.state_dict().values()]

    off = trained(False)
    _memory.release_pool()
    hits = _memory.pool_stats()["hits"]
    on = trained(True)
    assert _memory.pool_stats()["hits"] > hits
    assert handler() == "default_allocator"
    assert len(on) == len(off)
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


def test_reuse_memory_zero_turns_the_pool_off():
    code = ("import numpy as np\nfrom nanogan import _memory\n"
            "with _memory.workspace():\n    a = np.empty(1 << 16)\n"
            "print(_memory.pool_on(), np._core.multiarray.get_handler_name(a))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANOGAN_REUSE_MEMORY": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "default_allocator"]


@needs_pool
def test_d_and_g_steps_called_on_their_own_use_the_pool():
    from nanogan import GAN
    from nanogan.models import dcgan28_discriminator, dcgan28_generator
    from nanogan.optim import Adam

    rng = np.random.default_rng(0)
    G, D = dcgan28_generator(rng=0), dcgan28_discriminator(rng=1)
    gan = GAN(G, D, g_opt=Adam(G), d_opt=Adam(D))
    x = rng.uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32)
    z = gan.sample_noise(8, rng)
    gan.d_step(x, z)
    gan.g_step(z)
    for step in (lambda: gan.d_step(x, z), lambda: gan.g_step(z)):
        hits = _memory.pool_stats()["hits"]
        step()
        assert _memory.pool_stats()["hits"] > hits
        assert handler() == "default_allocator"


def test_every_gan_class_runs_its_steps_on_the_pool():
    """The step methods each GAN class defines are wrapped to run on the pool (``pooled``, or
    ``_quiet_overflow``, which enters it too): a subclass that overrides a step keeps it."""
    import inspect

    from nanogan.conditional import ConditionalGAN
    from nanogan.gan import GAN
    from nanogan.penalized import PenalizedGAN

    for cls in (GAN, ConditionalGAN, PenalizedGAN):
        for name in ("step", "d_step", "g_step", "simultaneous_step"):
            fn = cls.__dict__.get(name)
            if fn is None:
                continue
            assert hasattr(fn, "__wrapped__"), f"{cls.__name__}.{name} is not wrapped"
            # the wrapper's own code enters the pool
            assert "workspace()" in inspect.getsource(fn.__code__), f"{cls.__name__}.{name}"


@needs_pool
def test_huge_page_advice_can_be_switched_and_blocks_stay_usable():
    mod = _memory._pool_module()
    was = mod.pool_set_hugepages(False)
    try:
        assert mod.pool_set_hugepages(True, 1 << 21) is False  # from 2 MiB
        with _memory.workspace():
            c = np.ones(3 << 18)  # 6 MiB
        assert c.sum() == 3 << 18
        mod.pool_set_hugepages(True, 1 << 22)
        with _memory.workspace():
            a = np.ones(1 << 20)  # 8 MiB: advised (a hint the kernel may ignore)
            b = np.zeros((1 << 20) + 3)  # calloc path, a length not a whole number of pages
        assert a.sum() == 1 << 20 and not b.any()
    finally:
        mod.pool_set_hugepages(was)
