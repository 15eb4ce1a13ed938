"""A GAN on MNIST in one file of plain NumPy: every forward, backward and update written out.

Read it top to bottom: data, layers, losses, the two steps of Algorithm 1 (Goodfellow et al.,
2014), Adam, the training loop. It needs nothing but NumPy (nanogan is the same math, tested and
fast; docs/backprop-through-gans.md derives every line). Run it:

    python examples/minimal_gan.py --steps 5000     # writes minimal_gan_samples.pgm
"""

import argparse
import gzip
from itertools import pairwise
from pathlib import Path

import numpy as np

SLOPE = 0.2  # LeakyReLU's slope for negative inputs
MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"


# 1. Data: MNIST's IDX file is a big-endian header (magic, count, rows, cols), then raw bytes.
def load_mnist(folder=MNIST):
    """The 60,000 training images as (60000, 784) float32 in [-1, 1]."""
    raw = gzip.open(Path(folder) / "train-images-idx3-ubyte.gz").read()
    n, rows, cols = np.frombuffer(raw[4:16], dtype=">u4")
    pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows * cols)
    return pixels.astype(np.float32) / 127.5 - 1


# 2. A multilayer perceptron: Dense layers y = x W^T + b with LeakyReLU between them.
def init_mlp(rng, sizes, dtype=np.float32):
    """[(W, b), ...] with W (out, in), b (out,) ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's default)."""
    params = []
    for fan_in, fan_out in pairwise(sizes):
        bound = 1 / np.sqrt(fan_in)
        W = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(dtype)
        b = rng.uniform(-bound, bound, fan_out).astype(dtype)
        params.append((W, b))
    return params


def mlp_forward(params, x, last):
    """Output of the MLP (``last``: "tanh" or "none" after the last layer) and per-layer caches
    (the layer's input h and pre-activation z): everything the backward pass needs."""
    caches = []
    h = x
    for i, (W, b) in enumerate(params):
        z = h @ W.T + b
        caches.append((h, z))
        if i < len(params) - 1:
            h = np.where(z > 0, z, SLOPE * z)
        else:
            h = np.tanh(z) if last == "tanh" else z
    return h, caches


def mlp_backward(params, dy, caches, last, param_grads=True):
    """Chain rule from the last layer to the first. Returns dL/dx and [(dL/dW, dL/db), ...]
    (None when ``param_grads`` is False)."""
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        W, _ = params[i]
        h, z = caches[i]
        if i < len(params) - 1:
            dz = np.where(z > 0, dy, SLOPE * dy)          # LeakyReLU'
        elif last == "tanh":
            dz = dy * (1 - np.tanh(z) ** 2)               # tanh' = 1 - tanh^2
        else:
            dz = dy
        if param_grads:
            grads[i] = (dz.T @ h, dz.sum(axis=0))         # dL/dW = dz^T h, dL/db = sum dz
        dy = dz @ W                                       # dL/dh = dz W
    return dy, (grads if param_grads else None)


# 3. Losses on logits s (sigma(s) = D's probability of "real"), written so nothing overflows:
#    -log sigma(s) = softplus(-s), -log(1 - sigma(s)) = softplus(s), softplus' = sigma.
def softplus(u):
    return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))


def sigmoid(u):
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


def d_loss(s_real, s_fake):
    """D's loss -mean log sigma(s_real) - mean log(1 - sigma(s_fake)), and its gradients."""
    N, M = len(s_real), len(s_fake)
    value = softplus(-s_real).mean() + softplus(s_fake).mean()
    return value, -sigmoid(-s_real) / N, sigmoid(s_fake) / M


def g_loss(s_fake):
    """G's non-saturating loss -mean log sigma(s_fake): its gradient does not vanish when D
    confidently rejects the fakes (s_fake << 0), as log(1 - sigma(s_fake))'s would."""
    return softplus(-s_fake).mean(), -sigmoid(-s_fake) / len(s_fake)


# 4. The two steps of Algorithm 1.
def d_step_grads(G, D, x, z):
    """D's loss and gradients on a real batch x and a fake batch G(z) (G gets nothing)."""
    fake, _ = mlp_forward(G, z, "tanh")
    s_real, c_real = mlp_forward(D, x, "none")
    s_fake, c_fake = mlp_forward(D, fake, "none")
    loss, ds_real, ds_fake = d_loss(s_real, s_fake)
    _, g_real = mlp_backward(D, ds_real, c_real, "none")
    _, g_fake = mlp_backward(D, ds_fake, c_fake, "none")
    grads = [(a + c, b + d) for (a, b), (c, d) in zip(g_real, g_fake)]  # the halves add up
    return loss, grads, s_real, s_fake


def g_step_grads(G, D, z):
    """G's loss and gradients: dL/dG(z) through D (whose parameters stay out of it), then G."""
    fake, c_g = mlp_forward(G, z, "tanh")
    s_fake, c_d = mlp_forward(D, fake, "none")
    loss, ds_fake = g_loss(s_fake)
    d_fake, _ = mlp_backward(D, ds_fake, c_d, "none", param_grads=False)
    _, grads = mlp_backward(G, d_fake, c_g, "tanh")
    return loss, grads


# 5. Adam (Kingma & Ba), as PyTorch computes it, updating the arrays in place.
class Adam:
    def __init__(self, params, lr=2e-4, betas=(0.5, 0.999), eps=1e-8):
        self.arrays = [a for layer in params for a in layer]
        self.m = [np.zeros_like(a) for a in self.arrays]
        self.v = [np.zeros_like(a) for a in self.arrays]
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0

    def step(self, grads):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t   # bias corrections
        flat = [g for layer in grads for g in layer]
        for p, g, m, v in zip(self.arrays, flat, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# 6. Training: k = 1 D step per G step, fresh noise for each.
def save_grid(images, path):
    """An 8 x 8 grid of 28 x 28 images in [-1, 1] as a binary PGM (any image viewer opens it)."""
    grid = images[:64].reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(224, 224)
    pixels = ((grid + 1) * 127.5).clip(0, 255).astype(np.uint8)
    Path(path).write_bytes(b"P5 224 224 255\n" + pixels.tobytes())


def main(steps=5000, batch=64, z_dim=100, hidden=256, seed=0, out="minimal_gan_samples.pgm"):
    rng = np.random.default_rng(seed)
    X = load_mnist()
    G = init_mlp(rng, [z_dim, hidden, hidden, 784])
    D = init_mlp(rng, [784, hidden, hidden, 1])
    g_opt, d_opt = Adam(G), Adam(D)
    fixed_z = rng.standard_normal((64, z_dim), dtype=np.float32)
    for step in range(1, steps + 1):
        x = X[rng.integers(0, len(X), batch)]
        z = rng.standard_normal((batch, z_dim), dtype=np.float32)
        ld, grads, s_real, s_fake = d_step_grads(G, D, x, z)
        d_opt.step(grads)
        z = rng.standard_normal((batch, z_dim), dtype=np.float32)
        lg, grads = g_step_grads(G, D, z)
        g_opt.step(grads)
        if step % 100 == 0 or step == steps:
            print(f"step {step:5d}  d_loss {ld:.3f}  g_loss {lg:.3f}  "
                  f"D(x) {sigmoid(s_real).mean():.2f}  D(G(z)) {sigmoid(s_fake).mean():.2f}")
    save_grid(mlp_forward(G, fixed_z, "tanh")[0], out)
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="minimal_gan_samples.pgm")
    a = ap.parse_args()
    for flag, value, low in (("--steps", a.steps, 1), ("--batch-size", a.batch_size, 1),
                             ("--seed", a.seed, 0)):
        if value < low:
            ap.error(f"argument {flag}: must be an integer >= {low}, got {value}")
    main(a.steps, a.batch_size, seed=a.seed, out=a.out)
