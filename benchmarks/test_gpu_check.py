"""The GPU tooling on a machine without CuPy: clear refusals, and the check script's own logic.

``vs_pytorch.py --device cuda``, ``kernel_check.py`` and ``gpu_check.sh`` must stop with one clear
line when CuPy (or a GPU) is missing; ``gpu_check.sh`` run on the strict test backend exercises
every step of the script except the CUDA benchmark, and writes its results file. CuPy is hidden
(``sys.modules["cupy"] = None`` through ``sitecustomize``) so that these tests behave the same on a
GPU machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.fixture
def no_cupy_env(tmp_path):
    """An environment in which ``import cupy`` fails, for every Python process started."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['cupy'] = None\n")
    path = os.pathsep.join([str(site), ROOT, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "PYTHON": sys.executable,
           "NANOGAN_GPU_CHECK_NO_INSTALL": "1"}
    env.pop("NANOGAN_BACKEND", None)
    return env


def test_vs_pytorch_cuda_without_cupy_is_one_clear_line(no_cupy_env):
    res = subprocess.run([sys.executable, os.path.join(HERE, "vs_pytorch.py"), "--device", "cuda",
                          "--configs", "dcgan256"], capture_output=True, text=True,
                         env=no_cupy_env, cwd=HERE, timeout=300)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("--device cuda needs CuPy") and 'pip install -e ".[gpu]"' in lines[0]
    assert res.stdout == ""


def test_vs_pytorch_rejects_an_unknown_device():
    res = subprocess.run([sys.executable, os.path.join(HERE, "vs_pytorch.py"), "--device", "tpu"],
                         capture_output=True, text=True, cwd=HERE, timeout=300)
    assert res.returncode == 2 and "invalid choice: 'tpu'" in res.stderr


def test_kernel_check_without_cupy_and_on_strict(no_cupy_env, tmp_path):
    script = os.path.join(HERE, "kernel_check.py")
    res = subprocess.run([sys.executable, script], capture_output=True, text=True,
                         env=no_cupy_env, timeout=300)
    assert res.returncode == 2
    assert "'cupy' is not available" in res.stderr and "[gpu]" in res.stderr
    out = tmp_path / "k.json"
    res = subprocess.run([sys.executable, script, "--backend", "strict", "--dtype", "float64",
                          "--json", str(out)], capture_output=True, text=True, env=no_cupy_env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    from nanogan._kernels import OP_NAMES

    assert f"{len(OP_NAMES)} kernel ops" in res.stdout and "FAIL" not in res.stdout
    assert '"passed": true' in out.read_text()


def _gpu_check(env, *args):
    return subprocess.run(["bash", os.path.join(HERE, "gpu_check.sh"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_gpu_check_is_valid_bash():
    res = subprocess.run(["bash", "-n", os.path.join(HERE, "gpu_check.sh")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    if shutil.which("shellcheck"):
        res = subprocess.run(["shellcheck", os.path.join(HERE, "gpu_check.sh")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout


def test_gpu_check_without_cupy_fails_cleanly(no_cupy_env, tmp_path):
    results = tmp_path / "results.md"
    res = _gpu_check({**no_cupy_env, "NANOGAN_GPU_CHECK_RESULTS": str(results)}, "--no-install")
    assert res.returncode == 2
    assert "gpu_check: the cupy backend is not available" in res.stderr
    assert "CuPy does not import" in res.stderr and 'pip install -e ".[gpu]"' in res.stderr
    assert "Traceback" not in res.stderr
    assert not results.exists()  # nothing ran, nothing reported


def test_gpu_check_flags(no_cupy_env):
    res = _gpu_check(no_cupy_env, "--bogus")
    assert res.returncode == 2 and "unknown argument '--bogus'" in res.stderr
    res = _gpu_check(no_cupy_env, "--help")
    assert res.returncode == 0 and "--no-install" in res.stdout


@pytest.mark.slow
def test_gpu_check_steps_on_the_strict_backend(no_cupy_env, tmp_path):
    """Every step of the script on the strict backend: the tests and the kernel checks pass, the
    CUDA benchmark fails with its message, the results file says so, the exit status is 1."""
    results = tmp_path / "results.md"
    env = {**no_cupy_env, "NANOGAN_GPU_CHECK_BACKEND": "strict",
           "NANOGAN_GPU_CHECK_RESULTS": str(results)}
    res = _gpu_check(env)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    text = results.read_text()
    for step, status in (("tests", "passed"), ("kernels_float32", "passed"),
                         ("kernels_float64", "passed"), ("benchmark", "FAILED")):
        assert f"| {step} | {status} |" in text, text
    assert "tests/test_backend.py" in text and "tests/test_backend_host.py" in text
    assert "--device cuda needs CuPy" in text


class _FakeCupy:
    """The few CuPy calls of cuda_bench.py, on the strict test arrays (no GPU here)."""

    __version__ = "stand-in"
    float32 = "float32"

    class cuda:  # CuPy's names
        class Device:
            id = 0

            def synchronize(self) -> None:
                pass

        class runtime:
            @staticmethod
            def getDeviceProperties(i):
                return {"name": b"CPU stand-in", "totalGlobalMem": 0}

            @staticmethod
            def runtimeGetVersion():
                return 0

    class random:
        @staticmethod
        def standard_normal(shape, dtype):
            import numpy as np

            from nanogan._strict import namespace

            return namespace.asarray(np.random.default_rng(0).standard_normal(shape), dtype)

    @staticmethod
    def matmul(a, b, out=None):
        from nanogan._strict import namespace

        return namespace.matmul(a, b, out=out)

    @staticmethod
    def get_default_memory_pool():
        class Pool:
            def total_bytes(self):
                return 0

        return Pool()


@pytest.mark.slow
def test_cuda_benchmark_flow_on_a_cpu_stand_in(tmp_path, monkeypatch):
    """The whole --device cuda run (cross-check, interleaved timing, table, JSON) with the strict
    backend standing in for CuPy and PyTorch on the CPU."""
    import json

    import cuda_bench
    import torch
    import vs_pytorch

    from nanogan import backend

    out = tmp_path / "r.json"
    args = vs_pytorch.parse_args(["--device", "cuda", "--configs", "mlp64,dcgan64", "--iters", "2",
                                  "--warmup", "1", "--out", str(out)])
    monkeypatch.setitem(cuda_bench.CUDA_TARGETS, "mlp64", 1e9)
    previous = backend.get_backend()
    try:
        assert cuda_bench.main(args, cupy=_FakeCupy, torch=torch, backend="strict",
                               torch_device="cpu", peak_n=32) == 0
    finally:
        backend.set_backend(previous)
    doc = json.loads(out.read_text())
    assert doc["device"] == "cuda" and doc["machine"]["gpu"] == "CPU stand-in"
    assert doc["machine"]["backend"].startswith("strict")
    for arch in ("mlp", "dcgan"):
        c = doc["cross_check"][arch]
        assert max(c["float64_loss_rel_err"], c["float64_state_rel_err"]) < 1e-8
    r = {x["config"]: x for x in doc["results"]}
    assert set(r) == {"mlp64", "dcgan64"}
    assert r["mlp64"]["target_met"] is True and r["dcgan64"]["target"] is None
    for x in r.values():
        assert len(x["nanogan_all_ms"]) == len(x["torch_all_ms"]) == 2
        assert x["nanogan_vs_torch"] == pytest.approx(x["nanogan_ms"] / x["torch_ms"])
    lines = doc["table"].splitlines()
    assert lines[0].startswith("| config") and "nanogan/PyTorch" in lines[0] and len(lines) == 4
