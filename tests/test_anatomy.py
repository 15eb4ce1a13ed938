"""examples/anatomy_of_a_step.py runs, prints every layer both ways, and matches GAN.step."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "examples" / "anatomy_of_a_step.py"
LR = 2e-4  # the example's Adam learning rate


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_anatomy_runs_and_agrees_with_gan_step(arch):
    spec = importlib.util.spec_from_file_location("anatomy_of_a_step", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    diff = module.main(["--arch", arch, "--batch-size", "4"], out=out)
    text = out.getvalue()
    # the hand-run iteration lands where GAN.step does (float32). Adam's first step is
    # lr g / (|g| + eps): near g = 0 a difference of BLAS's summation order in g moves the
    # parameter by up to lr / eps = 2e4 times that difference (one element of G's first layer
    # by 3.5e-5 with OpenBLAS's AVX2 kernels, a few 1e-6 with its AVX-512 ones); a gradient
    # that is missing or has the wrong sign moves parameters by lr = 2e-4 or 2 lr
    assert diff < LR / 2
    G, D, _ = module.tiny_gan(arch, None)
    for name, net in (("G", G), ("D", D)):
        for i, layer in enumerate(net.layers):
            kind = type(layer).__name__
            assert f"{name}[{i}] {kind}" in text  # forward line
            assert any(line.strip().startswith(f"{name}[{i}] {kind}") and "|dL/dy|" in line
                       for line in text.splitlines()), f"no backward line for {name}[{i}]"
    assert "param_grads=False" in text and "L_D = " in text and "L_G = " in text
