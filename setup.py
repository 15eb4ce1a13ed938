"""Builds nanogan's optional Cython kernels; all metadata lives in pyproject.toml.

If Cython, NumPy's headers or a C compiler are missing, the install still succeeds: nanogan then
runs on its NumPy/Numba kernels, and this script says so once.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _warn(msg: str) -> None:
    print(f"WARNING: nanogan: {msg}; the Cython kernels are not built, nanogan will use its "
          "Numba or NumPy kernels instead.", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, broken toolchain
            _warn(f"building the extension failed ({exc})")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(f"compiling {ext.name} failed ({exc})")


def native_flags():
    """``-march=native`` lets GCC vectorise the loops for this CPU (AVX-512 where present). The
    extension is built where it runs (``pip install``); set NANOGAN_PORTABLE=1 to build a binary
    for another machine of the same architecture family."""
    if os.environ.get("NANOGAN_PORTABLE"):
        return []
    return ["-march=native"]


def extensions():
    if os.environ.get("NANOGAN_NO_EXTENSION"):
        return []
    try:
        import numpy as np
        from Cython.Build import cythonize
    except ImportError as exc:
        _warn(f"{exc.name} is not installed")
        return []
    from setuptools import Extension

    pyx = os.path.join("nanogan", "_kernels", "_cython_kernels.pyx")
    if not os.path.exists(pyx):
        return []
    ext = Extension(
        "nanogan._kernels._cython_kernels",
        [pyx],
        include_dirs=[np.get_include(), os.path.join("nanogan", "_kernels")],  # the C headers
        depends=[os.path.join("nanogan", "_kernels", h)
                 for h in ("_simd.h", "_thin.h", "_tanh.h", "_pool.h")],
        # -ffp-contract=off: no a*b + c fused into one rounding, so that a kernel rounds like
        # the NumPy expression it replaces (the plans must land where the layers do)
        extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                            "-ffp-contract=off", *native_flags()],
        extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize([ext], language_level=3, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
