"""Names of the training statistics, and the migration from the old ones.

``GAN.d_step``, ``g_step``, ``simultaneous_step`` and ``step`` return a dict of floats::

    d_loss, g_loss   the discriminator's and the generator's loss values (as descended)
    D_x              mean sigma(D(x)) over the real batch       (Goodfellow et al.'s D(x))
    D_G_z            mean sigma(D(G(z))) over the fake batch    (D(G(z)))
    D_G_z_after      the generator step's D(G(z)), on its own fresh noise
    D_acc            the fraction of real scored > 0 and of fake scored < 0

Earlier versions called the probabilities ``d_x``, ``d_g_z``, ``d_g_z_after`` and the accuracy
``d_acc``; in nanogan a ``d`` prefix on a quantity is reserved for a gradient (``dL/dx``). Old
names still read from a :class:`Stats` dict (with a ``DeprecationWarning``), and
:func:`rename_history` renames the columns of an old checkpoint's loss history when it is loaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["RENAMED", "Stats", "rename_history"]

#: Old statistic name -> current name.
RENAMED: dict[str, str] = {"d_x": "D_x", "d_g_z": "D_G_z", "d_g_z_after": "D_G_z_after",
                           "d_acc": "D_acc"}


class Stats(dict):
    """A dict of training statistics that still answers to the old names (see the module)."""

    def __missing__(self, key: Any) -> Any:
        new = RENAMED.get(key)
        if new is None or new not in self:
            raise KeyError(key)
        warnings.warn(f"training statistic {key!r} is now called {new!r}", DeprecationWarning,
                      stacklevel=2)
        return self[new]


def rename_history(history: Mapping[str, Any]) -> dict[str, Any]:
    """``history`` with old column names (``d_x``, ...) replaced by the current ones; a column
    already present under its new name wins."""
    out: dict[str, Any] = {}
    for key, column in history.items():
        new = RENAMED.get(key, key)
        if new == key or new not in history:
            out[new] = column
    return out
