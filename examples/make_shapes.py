"""Write a folder of synthetic colour images to train on: ``python examples/make_shapes.py OUT``.

Each image is a circle, a square or a triangle of a random bright colour, size and position on a
random dark background with a soft vertical gradient, saved as PNG in one subfolder per shape
(``OUT/circle``, ``OUT/square``, ``OUT/triangle``), so the folder also serves the conditional
model. The images are 72 x 80 (not square) so that ``nanogan train --image-size`` has something
to resize and crop. Needs Pillow. Made here, so there is nothing to download and no licence to
check::

    python examples/make_shapes.py data/shapes --n 3000
    nanogan train dcgan --data data/shapes --image-size 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nanogan.cli_args import int_range, nonnegative_int, output_dir

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, rng: np.random.Generator, height: int = 72,
                width: int = 80) -> np.ndarray:
    """One (height, width, 3) uint8 image of ``kind`` (see the module docstring)."""
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    top, bottom = rng.integers(0, 70, 3), rng.integers(0, 70, 3)
    t = (yy / (height - 1))[..., None]
    img = (1 - t) * top + t * bottom
    r = rng.uniform(0.15, 0.3) * min(height, width)
    cy = rng.uniform(r + 4, height - r - 4)
    cx = rng.uniform(r + 4, width - r - 4)
    if kind == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif kind == "square":
        mask = (abs(yy - cy) <= r * 0.85) & (abs(xx - cx) <= r * 0.85)
    else:  # an upward triangle inscribed in the circle of radius r
        v = (yy - (cy - r)) / (1.5 * r)  # 0 at the apex, 1 at the base
        mask = (v >= 0) & (v <= 1) & (abs(xx - cx) <= v * r * 0.866)
    colour = rng.integers(0, 256, 3)
    colour[rng.integers(0, 3)] = rng.integers(200, 256)  # bright in at least one channel
    img[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", type=output_dir, help="folder to write (one subfolder per shape)")
    p.add_argument("--n", type=int_range(1, 10_000_000), default=3000, help="images in total")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    args = p.parse_args(argv)
    from PIL import Image

    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    for kind in SHAPES:
        (out / kind).mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        kind = SHAPES[i % len(SHAPES)]
        Image.fromarray(shape_image(kind, rng)).save(out / kind / f"{i:05d}.png")
    print(f"wrote {args.n} images (72 x 80, RGB) to {out}/{{{','.join(SHAPES)}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
