"""PyTorch's side: the same GANs in ``torch.nn``, one eager iteration as PyTorch's DCGAN example
writes it (``BCEWithLogitsLoss``, ``fake.detach()``, ``zero_grad``/``backward``/``step``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from specs import Z_SHAPE
from torch import nn


def build_models(arch: str) -> tuple[nn.Module, nn.Module]:
    """G and D exactly as listed in BENCHMARKS.md (PyTorch's own initialisation)."""
    if arch == "mlp":
        G = nn.Sequential(nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                          nn.LeakyReLU(0.2), nn.Linear(256, 784), nn.Tanh())
        D = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                          nn.LeakyReLU(0.2), nn.Linear(256, 1))
    elif arch == "dcgan":
        G = nn.Sequential(
            nn.ConvTranspose2d(100, 128, 7, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh())
        D = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 1, 7, 1, 0, bias=False), nn.Flatten())
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    return G.train(), D.train()


def load_numpy_state(module: nn.Module, state: Mapping[str, np.ndarray]) -> None:
    """Copy a nanogan ``state_dict()`` (same keys as PyTorch's) into ``module``."""
    ref = module.state_dict()
    module.load_state_dict({k: torch.from_numpy(np.array(v)).to(ref[k].dtype)
                            for k, v in state.items()})


class TorchGAN:
    """G, D, two Adam optimizers and the loss; :meth:`iteration` is Algorithm 1 with k = 1."""

    def __init__(self, arch: str, dtype: torch.dtype = torch.float32,
                 state: tuple[Mapping, Mapping] | None = None, device: str = "cpu") -> None:
        self.arch = arch
        self.G, self.D = build_models(arch)
        self.G.to(dtype)
        self.D.to(dtype)
        if state is not None:
            load_numpy_state(self.G, state[0])
            load_numpy_state(self.D, state[1])
        self.G.to(device)
        self.D.to(device)
        self.dtype, self.device = dtype, torch.device(device)
        self.bce = nn.BCEWithLogitsLoss()
        self.g_opt = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def iteration(self, x: torch.Tensor, z1: torch.Tensor,
                  z2: torch.Tensor) -> tuple[float, float]:
        """One D update on ``x`` and ``G(z1).detach()``, one G update on ``z2``."""
        n = x.shape[0]
        ones = torch.ones(n, 1, dtype=self.dtype, device=self.device)
        zeros = torch.zeros(n, 1, dtype=self.dtype, device=self.device)
        self.d_opt.zero_grad()
        fake = self.G(z1)
        d_loss = (self.bce(self.D(x), ones) + self.bce(self.D(fake.detach()), zeros))
        d_loss.backward()
        self.d_opt.step()
        self.g_opt.zero_grad()
        g_loss = self.bce(self.D(self.G(z2)), ones)
        g_loss.backward()
        self.g_opt.step()
        return d_loss.item(), g_loss.item()

    def make_step(self, x_real: np.ndarray, seed: int = 1) -> Callable[[], tuple[float, float]]:
        """``step()`` runs one iteration with noise drawn inside (``torch.randn``, on the
        module's device)."""
        x = torch.from_numpy(x_real).to(self.dtype).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        zshape = (x.shape[0], *Z_SHAPE[self.arch])

        def step() -> tuple[float, float]:
            z1 = torch.randn(zshape, generator=gen, dtype=self.dtype, device=self.device)
            z2 = torch.randn(zshape, generator=gen, dtype=self.dtype, device=self.device)
            return self.iteration(x, z1, z2)

        return step

