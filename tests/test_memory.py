"""The allocator setting that recycles each iteration's temporaries."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import numpy as np, nanogan
from nanogan._memory import reuse_freed_memory
from nanogan.models import mlp_generator, mlp_discriminator
nanogan.GAN(mlp_generator(rng=0), mlp_discriminator(rng=1))
print(reuse_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("env,expect", [({}, "True"), ({"NANOGAN_REUSE_MEMORY": "0"}, "False")])
def test_gan_turns_on_memory_reuse_unless_opted_out(env, expect, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expect
