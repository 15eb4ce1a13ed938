"""The vanilla MNIST MLP GAN trained by PyTorch: the twin of ``examples/vanilla_mnist.py``.

::

    python benchmarks/pytorch_mlp_gan.py [--steps 30000] [--out runs/pytorch_mlp]

Same architecture (BENCHMARKS.md's MLP), same hyper-parameters (Adam 2e-4, betas (0.5, 0.999),
batch 64, k = 1, non-saturating loss), same number of steps, and, so that only the framework
differs, the same initial weights, minibatches and noise as the example's default run: the
weights come from ``nanogan.models.mlp_generator`` / ``mlp_discriminator`` built from
``default_rng(seed)`` exactly as the example builds them, the minibatches from
``nanogan.data.Minibatches`` seeded with ``seed + 1``, and the noise from the same NumPy generator
in the same order (D step, then G step). One iteration is BENCHMARKS.md's: D on the real batch
and on ``G(z1).detach()`` with ``BCEWithLogitsLoss``, then G on ``D(G(z2))``.

Writes ``OUT/generator.npz`` (G's state dict, PyTorch keys, loadable by nanogan's
``mlp_generator().load_state_dict``) and ``OUT/samples.npy`` (10,000 samples in [-1, 1], float32
(N, 1, 28, 28), from ``default_rng(0)`` noise as ``python -m nanogan sample`` draws them), ready for
``python -m nanogan evaluate OUT/samples.npy``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.models import mlp_discriminator, mlp_generator


def torch_mlp(z_dim: int, hidden: int, out: int, tanh: bool) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = [
        torch.nn.Linear(z_dim, hidden), torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(hidden, hidden), torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(hidden, out),
    ]
    if tanh:
        layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default="runs/pytorch_mlp")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    images, _ = load_mnist("train")
    x = scale_images(images, shape="flat")
    rng = np.random.default_rng(args.seed)
    G0 = mlp_generator(100, args.hidden, 784, rng=rng)
    D0 = mlp_discriminator(784, args.hidden, rng=rng)
    G, D = torch_mlp(100, args.hidden, 784, True), torch_mlp(784, args.hidden, 1, False)
    G.load_state_dict({k: torch.from_numpy(v) for k, v in G0.state_dict().items()})
    D.load_state_dict({k: torch.from_numpy(v) for k, v in D0.state_dict().items()})
    batches = Minibatches(x, args.batch_size, np.random.default_rng(args.seed + 1))
    g_opt = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    ones = torch.ones(args.batch_size, 1)
    zeros = torch.zeros(args.batch_size, 1)

    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        real = torch.from_numpy(next(batches))
        z1 = torch.from_numpy(rng.standard_normal((args.batch_size, 100), dtype=np.float32))
        d_opt.zero_grad()
        d_loss = bce(D(real), ones) + bce(D(G(z1).detach()), zeros)
        d_loss.backward()
        d_opt.step()
        z2 = torch.from_numpy(rng.standard_normal((args.batch_size, 100), dtype=np.float32))
        g_opt.zero_grad()
        g_loss = bce(D(G(z2)), ones)
        g_loss.backward()
        g_opt.step()
        if step % 1000 == 0 or step == args.steps:
            print(f"step {step}: d_loss {d_loss.item():.3f}, g_loss {g_loss.item():.3f}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0

    np.savez(out / "generator.npz", **{k: v.detach().numpy() for k, v in G.state_dict().items()})
    gen = np.random.default_rng(0)
    with torch.no_grad():
        samples = np.concatenate([
            G(torch.from_numpy(gen.standard_normal((1000, 100), dtype=np.float32))).numpy()
            for _ in range(10)])
    np.save(out / "samples.npy", samples.reshape(-1, 1, 28, 28).astype(np.float32))
    info = {"steps": args.steps, "batch_size": args.batch_size, "seconds": seconds,
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    (out / "run.json").write_text(json.dumps(info, indent=2))
    print(f"done: {args.steps} steps in {seconds:.0f} s; wrote {out / 'generator.npz'}, "
          f"{out / 'samples.npy'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
