"""``Ahead``: the generator run once for two updates of an iteration (see :meth:`nanogan.GAN.step`).

Algorithm 1's last D update takes ``G(z_d)`` and the G update that follows takes ``G(z_g)``. The D
update changes D, not G, so ``G(z_g)`` is the same before it as after it: both batches can go
through G as one batch of ``2N`` samples (:meth:`~nanogan.fast.Plan.forward_pair`), one product
per layer of twice the rows instead of two, and the G update's backward pass takes its half of
the cache (:meth:`~nanogan.fast.Plan.split_pair`). The values are those of two passes, up to the
order of BLAS's sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import asarray
from ..layers import Module


class Ahead:
    """G's outputs and caches for the coming updates, each taken once by the update that is
    handed the very noise array it was computed from; any other noise runs G as usual."""

    def __init__(self) -> None:
        self._entries: list[Any] = [None, None]

    @staticmethod
    def wanted(gan: Any) -> bool:
        """Whether ``gan.step`` runs G once for its last D update and its G update: on the fast
        path, with G's plan able to cut a stacked pass (:attr:`~nanogan.fast.Plan.splits`), and
        ``d_step``/``g_step`` not overridden (a subclass's own updates run as it wrote them)."""
        from ..gan import GAN

        return bool(gan.fast and type(gan).d_step is GAN.d_step
                    and type(gan).g_step is GAN.g_step
                    and getattr(gan._run(gan.G), "splits", False))

    def run(self, G: Module, z_d: np.ndarray, z_g: np.ndarray) -> np.ndarray:
        """``G(z_d)`` and ``G(z_g)`` in one pass of the plan ``G`` (one that
        :attr:`~nanogan.fast.Plan.splits`), kept for :meth:`forward`, replacing what was kept
        before. Returns ``z_g``."""
        fake_d, fake_g, cache = G.forward_pair(asarray(z_d), asarray(z_g), True)
        c_d, c_g = G.split_pair(cache)
        self._entries = [(z_d, fake_d, c_d), (z_g, fake_g, c_g)]
        return z_g

    def forward(self, G: Module, which: int, z: np.ndarray) -> tuple[np.ndarray, Any]:
        """``G.forward(z, train=True)``: taken from :meth:`run`'s pass when ``z`` is the array it
        ran on as batch ``which`` (0: the D update's, 1: the G update's), else run now."""
        entry = self._entries[which]
        if entry is not None and entry[0] is z:
            self._entries[which] = None
            return entry[1], entry[2]
        return G.forward(asarray(z), train=True)


__all__ = ["Ahead"]
