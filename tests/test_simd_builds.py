"""The SIMD im2col/col2im of ``nanogan/_kernels/_simd.h`` and the thin products of ``_thin.h``
in every version the CPU can run.

The extension is built for the machine it runs on (``-march=native``), so its own tests only
reach the version that build selects: an AVX-512 host never runs the AVX2 loops that AVX2-only
hosts use. ``tests/c/simd_check.c`` compares a version against scalar loops, bit for bit, on
20,000 random geometries (and checks that nothing outside the arrays' rows and planes is
written) and 3,000 random thin products; here it is built with each instruction set the CPU
has and run.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "c" / "simd_check.c"
HEADERS = ROOT / "nanogan" / "_kernels"

#: (name, compiler flags, CPU flags needed, whether a SIMD path is built)
VERSIONS = [
    ("avx512", ["-mavx512f", "-mavx2", "-mfma"], {"avx512f", "avx2", "fma"}, True),
    ("avx2", ["-mavx2", "-mfma", "-mno-avx512f"], {"avx2", "fma"}, True),
    ("portable", ["-mno-avx2", "-mno-avx512f"], set(), False),
]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(not (sys.platform.startswith("linux")
                         and platform.machine() in ("x86_64", "AMD64")),
                    reason="x86-64 Linux only (the versions are x86 instruction sets)")
@pytest.mark.parametrize("name, cflags, needs, simd", VERSIONS, ids=[v[0] for v in VERSIONS])
def test_simd_version_equals_the_scalar_loops(name, cflags, needs, simd, tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler")
    missing = needs - _cpu_flags()
    if missing:
        pytest.skip(f"the CPU lacks {sorted(missing)}")
    exe = tmp_path / f"simd_check_{name}"
    build = subprocess.run([cc, "-O2", "-ffp-contract=off", *cflags, f"-I{HEADERS}", str(SOURCE),
                            "-o", str(exe), "-lm"], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    if simd:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "equal" in run.stdout
    else:  # the portable build has no SIMD path: every geometry goes to the loops
        assert run.returncode == 2, run.stdout + run.stderr
