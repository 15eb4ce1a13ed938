"""Nothing process-wide happens at import or in a constructor; nanogan.performance.configure()
is the one place that applies the speed settings, and ``nanogan info`` reports them.

Each check runs in a fresh interpreter: the settings are process-wide by nature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRAIN_A_STEP = """
import numpy as np
import nanogan
from nanogan.models import dcgan28_discriminator, dcgan28_generator
from nanogan.optim import Adam
rng = np.random.default_rng(0)
G, D = dcgan28_generator(rng=0), dcgan28_discriminator(rng=1)
gan = nanogan.GAN(G, D, g_opt=Adam(G), d_opt=Adam(D))
x = rng.uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32)
gan.step(iter([x]), rng)
"""

REPORT = """
import json, os, sys
import numpy as np
from nanogan import _memory, performance
from nanogan._kernels import _threads
print(json.dumps({"env": os.environ.get("OMP_WAIT_POLICY"), "reuse": list(_memory._done),
                  "blas_now": _threads.current_blas_threads(), "blas0": _threads.BLAS_THREADS,
                  "settings": performance.settings(), "line": performance.describe(),
                  "omp_loaded": performance._openmp_loaded(),
                  "handler": np._core.multiarray.get_handler_name()}))
"""


def run(code: str, **env: str) -> dict:
    e = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    e.update(env)
    e["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_training_change_nothing_process_wide():
    r = run(TRAIN_A_STEP + REPORT)
    assert r["env"] is None  # no OpenMP policy set behind the user's back
    assert r["reuse"] == []  # the allocator was not asked to keep memory
    assert r["blas_now"] == r["blas0"]  # the BLAS thread count is the library's own
    assert r["settings"]["configured"] is False and r["settings"]["adaptive_blas"] is False
    assert "not configured" in r["line"]
    # the step's memory pool was NumPy's handler only inside the step
    assert r["handler"] == "default_allocator"
    assert ("nanogan's memory pool" in r["line"]) is r["settings"]["memory_pool"]


def test_configure_applies_the_settings_before_openmp_loads():
    r = run("import nanogan.performance as p; p.configure()\n" + TRAIN_A_STEP + REPORT)
    s = r["settings"]
    own = s["own_threads"]
    # PASSIVE only where the products stay on BLAS's threads (see nanogan.performance)
    assert r["env"] == (None if own else "PASSIVE") and s["omp_wait_policy_effective"] is True
    assert s["configured"] is True
    if sys.platform.startswith("linux"):
        assert r["reuse"] == [True] and s["reuse_memory"] is True
    assert f"OMP_WAIT_POLICY={'unset' if own else 'PASSIVE'}" in r["line"]
    assert "memory reuse on" in r["line"]
    if r["blas0"]:  # OpenBLAS found: the switch is on
        assert s["adaptive_blas"] is True
    if own:  # the kernel set's threads ran the large products: BLAS stayed on one thread
        assert r["blas_now"] == 1 and "on nanogan's threads" in r["line"]


def test_the_reference_kernels_keep_the_products_on_blas_threads():
    """No compiled set, no threads of nanogan's own: products go to BLAS's threads, and the
    OpenMP policy is the passive one."""
    r = run("import nanogan.performance as p; p.configure()\n" + TRAIN_A_STEP + REPORT,
            NANOGAN_KERNELS="reference")
    assert r["settings"]["own_threads"] is False and r["env"] == "PASSIVE"


def test_configure_can_force_the_passive_policy():
    r = run("import nanogan.performance as p; p.configure(omp_passive=True)\n" + REPORT)
    assert r["env"] == "PASSIVE" and r["settings"]["omp_wait_policy_effective"] is True


def test_configure_after_the_kernels_loaded_says_the_policy_is_not_in_effect():
    r = run(TRAIN_A_STEP + "import nanogan.performance as p; p.configure(omp_passive=True)\n"
            + REPORT)
    if not r["omp_loaded"]:  # no OpenMP runtime in this build (reference or numba kernels)
        return
    assert r["settings"]["omp_wait_policy_effective"] is False
    assert "not in effect" in r["line"]


def test_an_explicit_wait_policy_is_kept():
    r = run("import nanogan.performance as p; p.configure()\n" + REPORT,
            OMP_WAIT_POLICY="ACTIVE")
    assert r["env"] == "ACTIVE"


def test_configure_can_leave_each_setting_out():
    r = run("import nanogan.performance as p\n"
            "p.configure(omp_passive=False, adaptive_blas=False, reuse_memory=False)\n" + REPORT)
    assert r["env"] is None and r["reuse"] == [] and r["settings"]["adaptive_blas"] is False


def test_info_reports_the_settings():
    e = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-m", "nanogan", "info"], capture_output=True,
                         text=True, cwd=ROOT, env={**e, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "performance: OMP_WAIT_POLICY=" in out.stdout
    assert "adaptive BLAS threads on" in out.stdout


SERIAL = """
import json
from nanogan import performance
from nanogan._kernels import _threads
print(json.dumps({"spin": _threads.blas_may_spin(), "line": performance.describe(),
                  "par": _threads.parallel(10**12, 0), "blas": _threads.current_blas_threads()}))
"""


def test_unconfigured_kernels_stay_serial_beside_a_multithreaded_blas():
    """Without ``configure()`` the kernels run serially while OpenBLAS has more than one thread
    (its workers spin after each product), say so in ``nanogan info``'s line, and run in
    parallel again where OpenBLAS has one thread or nanogan switches it."""
    free = {"NANOGAN_PARALLEL_MAX_LOAD": "inf"}  # whatever the load of the machine running this
    two = run(SERIAL, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", **free)
    if two["blas"] < 2:  # no OpenBLAS found (another BLAS): nothing spins that nanogan knows of
        assert two["spin"] is False
        return
    assert two["spin"] is True and two["par"] is False
    assert "kernels serial" in two["line"]
    one = run(SERIAL, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2", **free)
    assert one["spin"] is False and one["par"] is True and "kernels serial" not in one["line"]
    configured = run("import nanogan.performance as p; p.configure()\n" + SERIAL,
                     OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", **free)
    assert configured["spin"] is False and configured["par"] is True
