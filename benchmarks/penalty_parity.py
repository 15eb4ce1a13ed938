"""Parity of nanogan's gradient penalties with PyTorch's double backward, in float64.

For each critic (an MLP, a small conv critic, and the DCGAN-28 critic with LayerNorm in place of
BatchNorm) and each penalty (WGAN-GP, R1), over several seeds: the largest relative error of the
penalty's value and of every parameter gradient, against ``torch.autograd.grad(D(x).sum(), x,
create_graph=True)`` followed by a backward of the penalty.

Run: ``python benchmarks/penalty_parity.py`` (PyTorch needed; a few seconds).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from nanogan import (
    Conv2d,
    Dense,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Sequential,
    Tanh,
    rel_error,
)
from nanogan.penalties import gradient_penalty, interpolate, r1_penalty

F64 = np.float64


def critics(seed: int) -> dict[str, tuple[Sequential, tuple[int, ...]]]:
    return {
        "MLP 784-256-256-1": (Sequential(
            Dense(784, 256, dtype=F64, rng=seed), LeakyReLU(0.2),
            Dense(256, 256, dtype=F64, rng=seed + 1), LeakyReLU(0.2),
            Dense(256, 1, dtype=F64, rng=seed + 2)), (784,)),
        "conv (Conv-LReLU-Conv-LN-Tanh-Flatten-Dense)": (Sequential(
            Conv2d(1, 4, 4, 2, 1, dtype=F64, rng=seed), LeakyReLU(0.2),
            Conv2d(4, 8, 3, 2, 1, dtype=F64, rng=seed + 1), LayerNorm((8, 4, 4), dtype=F64),
            Tanh(), Flatten(), Dense(128, 1, dtype=F64, rng=seed + 2)), (1, 16, 16)),
        "DCGAN-28 critic, LayerNorm": (Sequential(
            Conv2d(1, 64, 4, 2, 1, dtype=F64, rng=seed), LeakyReLU(0.2),
            Conv2d(64, 128, 4, 2, 1, dtype=F64, rng=seed + 1),
            LayerNorm((128, 7, 7), dtype=F64), LeakyReLU(0.2),
            Conv2d(128, 1, 7, 1, 0, dtype=F64, rng=seed + 2), Flatten()), (1, 28, 28)),
    }


def to_torch(m: Sequential) -> torch.nn.Module:
    nn, mods = torch.nn, []
    for c in m.layers:
        if isinstance(c, Dense):
            mods.append(nn.Linear(c.in_features, c.out_features))
        elif isinstance(c, Conv2d):
            mods.append(nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride,
                                  c.padding))
        elif isinstance(c, LayerNorm):
            mods.append(nn.LayerNorm(c.normalized_shape, c.eps))
        elif isinstance(c, LeakyReLU):
            mods.append(nn.LeakyReLU(c.negative_slope))
        elif isinstance(c, Tanh):
            mods.append(nn.Tanh())
        elif isinstance(c, Flatten):
            mods.append(nn.Flatten())
    t = nn.Sequential(*mods).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return t


def torch_penalty(t, x, kind):
    xt = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(t(xt).sum(), xt, create_graph=True)
    n = g.reshape(len(x), -1).norm(2, dim=1)
    p = 10.0 * ((n - 1) ** 2).mean() if kind == "gp" else 5.0 * (n**2).mean()
    t.zero_grad()
    p.backward()
    return p.item(), {k: (v.grad.numpy() if v.grad is not None else np.zeros(tuple(v.shape)))
                      for k, v in t.named_parameters()}


def main() -> None:
    torch.set_num_threads(1)
    worst: dict[tuple[str, str], list[float]] = {}
    for seed in range(3):
        g = np.random.default_rng(seed)
        for name, (m, shape) in critics(seed).items():
            for layer in m.layers:  # LayerNorm off its initial ones and zeros
                if isinstance(layer, LayerNorm):
                    for p in layer.params.values():
                        p += 0.1 * g.standard_normal(p.shape)
            real = np.tanh(g.standard_normal((8, *shape)))
            fake = np.tanh(g.standard_normal((8, *shape)))
            for kind, x in (("gp", interpolate(real, fake, g)), ("r1", real)):
                m.zero_grad()
                value = (gradient_penalty(m, x) if kind == "gp" else r1_penalty(m, x))
                tvalue, tgrads = torch_penalty(to_torch(m), x, kind)
                errs = [abs(value - tvalue) / abs(tvalue)]
                errs += [rel_error(m.grads[k], tgrads[k]) for k in tgrads]
                w = worst.setdefault((name, kind), [0.0, 0.0])
                w[0] = max(w[0], errs[0])
                w[1] = max(w[1], max(errs[1:]))
    print("| critic | penalty | max rel. error, value | max rel. error, parameter gradients |")
    print("|---|---|---|---|")
    for (name, kind), (ev, eg) in worst.items():
        print(f"| {name} | {'WGAN-GP' if kind == 'gp' else 'R1'} | {ev:.1e} | {eg:.1e} |")
    print("(float64, batch 8, 3 seeds each; relative error ||a - b|| / (||a|| + ||b||) per array)")


if __name__ == "__main__":
    main()
