"""Pictures of training: a grid of samples and the loss curves (matplotlib, no display needed).

Drawn on the host: images may be arrays of any array backend (:mod:`nanogan.backend`; CuPy's on a
GPU), copied to NumPy first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .backend import to_numpy


def image_grid(images: np.ndarray, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Tile images into one picture.

    Parameters
    ----------
    images : (N, H, W), (N, 1, H, W), (N, 3, H, W) (colour) or (N, H*W) for square images,
        values in [-1, 1]; NumPy or any backend's array (copied to the host)
    nrow : images per row

    Returns
    -------
    grid : (rows*(H+pad)+pad, nrow*(W+pad)+pad) float in [0, 1], with a trailing axis of 3
        for colour images
    """
    x = np.asarray(to_numpy(images), dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 3:
        return np.stack([image_grid(x[:, c], nrow, pad) for c in range(3)], axis=-1)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"image_grid: expected one or three channels (N, 1 or 3, H, W), "
                             f"got {x.shape}")
        x = x[:, 0]
    elif x.ndim == 2:
        side = round(float(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"image_grid: flat images must be square, got {x.shape}")
        x = x.reshape(-1, side, side)
    elif x.ndim != 3:
        raise ValueError(f"image_grid: expected (N, H, W), (N, 1, H, W) or (N, H*W), got {x.shape}")
    n, h, w = x.shape
    rows = -(-n // nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad))
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + c * (w + pad):pad + c * (w + pad) + w] = (x[i] + 1) / 2
    return np.clip(grid, 0, 1)


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int = 8, scale: int = 3) -> None:
    """Write :func:`image_grid` of ``images`` as a PNG, greyscale or colour (atomically)."""
    import matplotlib.image

    grid = image_grid(images, nrow)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    from .checkpoint import atomic_write

    if grid.ndim == 3:  # colour
        atomic_write(path, lambda f: matplotlib.image.imsave(f, grid, format="png"))
    else:
        atomic_write(path, lambda f: matplotlib.image.imsave(f, grid, cmap="gray", vmin=0,
                                                             vmax=1, format="png"))


def save_loss_plot(history: Mapping[str, Sequence[float]], path: str | os.PathLike,
                   keys: Sequence[str] = ("d_loss", "g_loss"), smooth: int = 50) -> None:
    """Plot ``history[key]`` against ``history["step"]`` (moving average over ``smooth`` steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(history["step"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in keys:
        v = np.asarray([float(e) for e in history[key]], dtype=np.float64)  # 0-d device arrays too
        if len(v) == 0:
            continue
        k = max(1, min(smooth, len(v)))
        avg = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], avg, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from .checkpoint import atomic_write

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def save_wasserstein_plot(history: Mapping[str, Sequence[float]], path: str | os.PathLike,
                          smooth: int = 50) -> None:
    """Plot the critic's estimate of the Wasserstein distance along training.

    ``W_hat = mean D(x_real) - mean D(G(z))`` is minus the critic's loss (``critic_loss`` when
    the history has it, i.e. without a gradient penalty, else ``d_loss``), at the last critic
    step of each iteration, with its moving average over ``smooth`` steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "critic_loss" if len(history.get("critic_loss", ())) else "d_loss"
    steps = np.asarray(history["step"])
    w = -np.asarray([float(e) for e in history[key]], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if len(w):
        ax.plot(steps, w, alpha=0.25, lw=0.6, color="C0")
        k = max(1, min(smooth, len(w)))
        ax.plot(steps[k - 1:], np.convolve(w, np.ones(k) / k, mode="valid"), color="C0",
                label=f"moving average ({k} steps)")
        ax.legend()
    ax.set_xlabel("generator step")
    ax.set_ylabel("mean D(x) - mean D(G(z))")
    ax.set_title("critic's Wasserstein estimate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from .checkpoint import atomic_write

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
