"""Peak resident memory of one framework training a reference GAN, in a process of its own.

``python benchmarks/memory_probe.py --framework nanogan|torch|jax [--config dcgan256]``
prints one JSON line: the peak resident set size (MB; ``VmHWM``, i.e. ``ru_maxrss`` of this
process alone) after importing the framework (the baseline), at the end of the run (the
peak, which includes whatever the import itself touched), and the difference.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

from _common import real_batch, set_threads, use_checkout
from specs import CONFIGS, X_SHAPE


def maxrss_mb() -> float:
    """Peak resident set size of this process so far, MB.

    ``VmHWM`` of ``/proc/self/status`` where it exists: Linux carries ``ru_maxrss`` over
    ``fork`` + ``exec``, so a probe started by a large parent would report the parent's peak.
    Elsewhere ``ru_maxrss`` (start the probe from a small process).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", choices=("nanogan", "torch", "jax"), required=True)
    ap.add_argument("--config", default="dcgan256", choices=sorted(CONFIGS))
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    use_checkout()
    arch, batch = CONFIGS[args.config]
    start = maxrss_mb()
    if args.framework == "nanogan":
        import nano_side

        import nanogan.performance

        nanogan.performance.configure()  # what nanogan's examples and CLI do first
        base = maxrss_mb()
        gan = nano_side.build_gan(arch)
        step = nano_side.make_step(gan, real_batch(X_SHAPE[arch], batch))
    elif args.framework == "torch":
        import torch
        import torch_side
        torch.set_num_threads(threads)
        base = maxrss_mb()
        tg = torch_side.TorchGAN(arch)
        step = tg.make_step(real_batch(X_SHAPE[arch], batch))
    else:
        import jax_side
        import nano_side
        base = maxrss_mb()
        gan = nano_side.build_gan(arch)  # JAX starts from nanogan's initial weights
        jg = jax_side.JaxGAN(arch, gan.G.state_dict(), gan.D.state_dict(), gan.G.params,
                             gan.D.params)
        del gan
        step = jg.make_step(real_batch(X_SHAPE[arch], batch))
    for _ in range(args.iters):
        step()
    peak = maxrss_mb()
    out = {"framework": args.framework, "config": args.config, "threads": threads,
           "python_mb": start, "import_mb": base, "peak_mb": peak, "above_import_mb": peak - base}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
