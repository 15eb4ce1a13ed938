"""One iteration of Algorithm 1 on a tiny GAN, printed layer by layer.

Runs the discriminator step and the generator step by hand, one layer at a time, and prints for
every layer the shapes going in and out, the norm of its output on the way forward, and on the way
back the norm of the gradient it receives (``dL/dy``), the one it passes on (``dL/dx``) and of the
parameter gradients it adds. Follow it next to docs/backprop-through-gans.md, section 8:

    python examples/anatomy_of_a_step.py               # MLP GAN on a batch of MNIST digits
    python examples/anatomy_of_a_step.py --arch dcgan  # convolutions, BatchNorm

At the end the same iteration is run through ``GAN.step`` on a copy of the networks, which must
land on the same parameters.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, TextIO

import numpy as np

from nanogan import (
    GAN,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    LeakyReLU,
    ReLU,
    Sequential,
    Tanh,
)
from nanogan.backend import xp
from nanogan.cli_args import int_range, nonnegative_int
from nanogan.data import load_mnist


def tiny_gan(arch: str, rng: np.random.Generator) -> tuple[Sequential, Sequential, tuple]:
    """A small generator and discriminator, and the shape of one real sample."""
    if arch == "mlp":
        G = Sequential(Dense(16, 64, rng=rng), LeakyReLU(0.2), Dense(64, 64, rng=rng),
                       LeakyReLU(0.2), Dense(64, 784, rng=rng), Tanh())
        D = Sequential(Dense(784, 64, rng=rng), LeakyReLU(0.2), Dense(64, 64, rng=rng),
                       LeakyReLU(0.2), Dense(64, 1, rng=rng))
        return G, D, (784,)
    G = Sequential(ConvTranspose2d(16, 32, 7, 1, 0, bias=False, rng=rng), BatchNorm2d(32), ReLU(),
                   ConvTranspose2d(32, 16, 4, 2, 1, bias=False, rng=rng), BatchNorm2d(16), ReLU(),
                   ConvTranspose2d(16, 1, 4, 2, 1, bias=False, rng=rng), Tanh())
    D = Sequential(Conv2d(1, 16, 4, 2, 1, bias=False, rng=rng), LeakyReLU(0.2),
                   Conv2d(16, 32, 4, 2, 1, bias=False, rng=rng), BatchNorm2d(32), LeakyReLU(0.2),
                   Conv2d(32, 1, 7, 1, 0, bias=False, rng=rng), Flatten())
    return G, D, (1, 28, 28)


def norm(a: np.ndarray | None) -> str:
    return "-" if a is None else f"{xp.linalg.norm(a):9.4f}"


def shape(a: np.ndarray | None) -> str:
    return "-" if a is None else str(tuple(a.shape))


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def forward(self, net: Sequential, name: str, x: np.ndarray) -> tuple[np.ndarray, list]:
        """``net.forward`` one layer at a time, printing each layer's output."""
        caches: list[Any] = []
        for i, layer in enumerate(net.layers):
            y, c = layer.forward(x, train=True)
            self(f"  {name}[{i}] {type(layer).__name__:16s} {shape(x):>18s} -> "
                 f"{shape(y):18s} |y| {norm(y)}")
            caches.append(c)
            x = y
        return x, caches

    def backward(self, net: Sequential, name: str, dy: np.ndarray, caches: list, *,
                 param_grads: bool = True, input_grad: bool = True) -> np.ndarray | None:
        """``net.backward`` one layer at a time, printing the gradients in and out of each."""
        layers = net.layers
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            before = {k: g.copy() for k, g in layer.grads.items()}
            want_dx = input_grad or i > 0
            dx = layer.backward(dy, caches[i], param_grads=param_grads, input_grad=want_dx)
            added = "  ".join(f"|d{k}| {norm(g - before[k])}" for k, g in layer.grads.items()
                              if param_grads)
            self(f"  {name}[{i}] {type(layer).__name__:16s} |dL/dy| {norm(dy)}  "
                 f"|dL/dx| {norm(dx)}  {added}".rstrip())
            dy = dx
        return dy


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> float:
    """Run and print one iteration; return the largest difference from ``GAN.step``'s result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("mlp", "dcgan"), default="mlp")
    ap.add_argument("--batch-size", type=int_range(2, 4096), default=8)
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    args = ap.parse_args(argv)
    p = Printer(out)

    G, D, x_shape = tiny_gan(args.arch, np.random.default_rng(args.seed))
    twin = GAN(copy.deepcopy(G), copy.deepcopy(D), z_shape=(16,) if args.arch == "mlp" else
               (16, 1, 1))
    gan = GAN(G, D, z_shape=twin.z_shape)
    n = args.batch_size
    images, _ = load_mnist("train")
    x = (images[:n].astype(np.float32) / 127.5 - 1).reshape(n, *x_shape)
    rng = np.random.default_rng(args.seed + 1)
    z1, z2 = gan.sample_noise(n, rng), gan.sample_noise(n, rng)
    p(f"{args.arch} GAN: G {G.num_params():,} parameters, D {D.num_params():,}; "
      f"batch of {n} real digits x {x.shape}, noise z {z1.shape}",
      f"loss: {type(gan.loss).__name__}, optimizers: Adam(lr=2e-4, betas=(0.5, 0.999))", "")

    p("=== discriminator step: descend L_D = loss.d_loss(D(x), D(G(z))) ===",
      "forward G(z) (the fakes are data here: G gets no gradient)")
    fake, _ = p.forward(G, "G", z1)
    p("forward D(x), the real batch")
    s_real, c_real = p.forward(D, "D", x)
    p("forward D(G(z)), the fake batch (its own cache)")
    s_fake, c_fake = p.forward(D, "D", fake)
    L_D, ds_real, ds_fake = gan.loss.d_loss(s_real, s_fake)
    p(f"L_D = {L_D:.4f};  mean sigma(D(x)) = {(1 / (1 + xp.exp(-s_real))).mean():.3f},  "
      f"mean sigma(D(G(z))) = {(1 / (1 + xp.exp(-s_fake))).mean():.3f}",
      f"dL_D/ds_real {shape(ds_real)} |.| {norm(ds_real)},  dL_D/ds_fake |.| {norm(ds_fake)}")
    D.zero_grad()
    p("backward through D, real half (adds into D.grads; no dL/dx needed)")
    p.backward(D, "D", ds_real, c_real, input_grad=False)
    p("backward through D, fake half (adds the rest)")
    p.backward(D, "D", ds_fake, c_fake, input_grad=False)
    before = {k: v.copy() for k, v in D.params.items()}
    gan.d_opt.step()
    p("Adam step on D: " + ", ".join(f"|dtheta {k}| {norm(v - before[k]).strip()}"
                                     for k, v in D.params.items()), "")

    p("=== generator step: descend L_G = loss.g_loss(D(G(z))) with D fixed ===")
    fake, c_g = p.forward(G, "G", z2)
    s_fake, c_d = p.forward(D, "D", fake)
    L_G, ds_fake = gan.loss.g_loss(s_fake)
    p(f"L_G = {L_G:.4f};  dL_G/ds_fake {shape(ds_fake)} |.| {norm(ds_fake)}")
    d_grads = {k: g.copy() for k, g in D.grads.items()}
    p("backward through D for dL_G/dG(z) only (param_grads=False: D.grads untouched)")
    d_fake = p.backward(D, "D", ds_fake, c_d, param_grads=False)
    assert all(bool((g == d_grads[k]).all()) for k, g in D.grads.items())
    G.zero_grad()
    p(f"backward through G with dL_G/dG(z) {shape(d_fake)} (no gradient for the noise)")
    p.backward(G, "G", d_fake, c_g, input_grad=False)
    before = {k: v.copy() for k, v in G.params.items()}
    gan.g_opt.step()
    p("Adam step on G: " + ", ".join(f"|dtheta {k}| {norm(v - before[k]).strip()}"
                                     for k, v in G.params.items()), "")

    twin.step([x], np.random.default_rng(args.seed + 1))
    diff = max(float(np.abs(a - b).max()) for m, t in ((G, twin.G), (D, twin.D))
               for a, b in zip(m.state_dict().values(), t.state_dict().values()))
    p(f"GAN.step on a copy of the networks, same batch and noise: largest parameter "
      f"difference {diff:.1e}")
    return diff


if __name__ == "__main__":
    main()
