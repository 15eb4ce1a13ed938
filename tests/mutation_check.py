"""Deliberate breakages of nanogan, and whether the tests catch each one (not a test module).

    python tests/mutation_check.py                 # every mutation, a markdown table at the end
    python tests/mutation_check.py --list          # the mutations and the tests each one runs
    python tests/mutation_check.py --only NAME ... # some of them
    python tests/mutation_check.py --no-baseline   # skip the run of each selection unmutated
    python tests/mutation_check.py --examples 10   # fewer Hypothesis examples: faster, weaker

Each mutation replaces one exact snippet of one file in a COPY of the repository (a temporary
folder; the checkout is never touched) and runs the tests relevant to it, stopping at the first
failure. The mutation is *caught* when those tests fail and *missed* when they pass. Before the
mutations, every distinct test selection runs once on the unmodified copy and must pass (else the
rows using it say *baseline fails*). A snippet that no longer occurs exactly once is reported as
*stale*: the code moved, and the list below needs updating. The exit status is 0 only when every
mutation was caught.

The file is named so that pytest does not collect it (it is not ``test_*.py``); it takes minutes
(the learning-test mutation trains a GAN): run it ``nice``-d.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


M = Mutation
MUTATIONS: list[Mutation] = [
    # ------------------------------------------------------------------ layers
    M("dense-bias-grad", "Dense drops its bias gradient", "nanogan/layers/dense.py",
      'self._grads["bias"] += dy.sum(axis=0)', 'self._grads["bias"] += 0 * dy.sum(axis=0)',
      ("tests/test_dense.py",)),
    M("conv-input-grad-sign", "Conv2d input gradient with its sign flipped",
      "nanogan/layers/conv.py",
      "return ops.col2im(dcols, tuple(x_shape), kh, kw, sh, sw, ph, pw)",
      "return -ops.col2im(dcols, tuple(x_shape), kh, kw, sh, sw, ph, pw)",
      ("tests/test_conv.py",)),
    M("bn-biased-running-var", "BatchNorm keeps the biased running variance",
      "nanogan/layers/batchnorm.py", "self.running_var += (f * n / (n - 1)) * var",
      "self.running_var += f * var", ("tests/test_batchnorm.py",)),
    M("bn-eval-batch-stats", "BatchNorm in evaluation normalises with the batch mean",
      "nanogan/layers/batchnorm.py", "        mean = self.running_mean.copy()\n",
      "        mean = x3.mean(axis=(0, 2))\n", ("tests/test_batchnorm.py",)),
    M("bn-batches-not-tracked", "BatchNorm never counts num_batches_tracked",
      "nanogan/layers/batchnorm.py", "self.num_batches_tracked[...] += 1",
      "self.num_batches_tracked[...] += 0",
      ("tests/test_batchnorm.py", "tests/test_state_dict.py")),
    M("tanh-backward", "Tanh backward uses 1 - y instead of 1 - y^2",
      "nanogan/layers/activations.py", "return dy * (1 - y * y) if input_grad else None",
      "return dy * (1 - y) if input_grad else None", ("tests/test_activations.py",)),
    M("sigmoid-backward", "Sigmoid backward forgets the (1 - y) factor",
      "nanogan/layers/activations.py", "return dy * y * (1 - y) if input_grad else None",
      "return dy * y if input_grad else None", ("tests/test_activations.py",)),
    M("leaky-relu-slope", "reference leaky_relu_backward kernel passes dy through for x < 0",
      "nanogan/_kernels/reference.py",
      "return np.where(x > 0, dy, dy * dy.dtype.type(slope))", "return np.where(x > 0, dy, dy)",
      ("tests/test_activations.py", "tests/test_kernels.py", "tests/test_fast.py", "-k",
       "leaky or LeakyReLU")),
    M("leaky-relu-layer-slope", "LeakyReLU layer backward passes dy through for x < 0",
      "nanogan/layers/activations.py",
      "return xp.where(x > 0, d, d.dtype.type(self.negative_slope) * d)",
      "return xp.where(x > 0, d, d)", ("tests/test_activations.py",)),
    M("dropout-no-rescale", "Dropout keeps values without the 1/(1-p) scale",
      "nanogan/layers/dropout.py", "mask *= x.dtype.type(1.0 / (1.0 - self.p))",
      "mask *= x.dtype.type(1.0)", ("tests/test_dropout.py",)),
    M("maxout-grad-first-piece", "Maxout sends the gradient to piece 0, not the winner",
      "nanogan/layers/maxout.py", "xp.put_along_axis(dz, arg, dy[:, :, None], axis=2)",
      "xp.put_along_axis(dz, 0 * arg, dy[:, :, None], axis=2)", ("tests/test_maxout.py",)),
    M("state-dict-key", "BatchNorm's running_var saved under another name",
      "nanogan/layers/batchnorm.py", 'self.add_buffer("running_var",',
      'self.add_buffer("running_variance",', ("tests/test_state_dict.py",)),
    # ------------------------------------------------------------------ second order, penalties
    M("dense-jvp-drops-x-dot", "Dense's second order forgets dy^T x_dot in dW_dot",
      "nanogan/layers/dense.py", 'self._grads["weight"] += dy_dot.T @ x + dy.T @ x_dot',
      'self._grads["weight"] += dy_dot.T @ x',
      ("tests/test_double_backward.py", "tests/test_penalties.py")),
    M("conv-jvp-drops-cols-dot", "Conv2d's second order forgets dy2 @ cols_dot^T in dW_dot",
      "nanogan/layers/conv.py", "dW = dy2_dot @ cols.T + dy2 @ cols_dot.T",
      "dW = dy2_dot @ cols.T", ("tests/test_double_backward.py", "tests/test_penalties.py")),
    M("tanh-no-second-derivative", "Tanh's second order drops the f''(x) term",
      "nanogan/layers/activations.py", "return dy * d, dy_dot * d - 2 * dy * y * y_dot",
      "return dy * d, dy_dot * d", ("tests/test_double_backward.py",)),
    M("layernorm-jvp-r-dot", "LayerNorm's second order forgets how r = 1/sqrt(var + eps) moves",
      "nanogan/layers/layernorm.py", "dx_dot = (r_dot / r) * dx + r * (",
      "dx_dot = 0 * dx + r * (", ("tests/test_double_backward.py",)),
    M("layernorm-unbiased-var", "LayerNorm normalises with the unbiased variance",
      "nanogan/layers/layernorm.py", "r = 1.0 / xp.sqrt(_mean(xc * xc) + ",
      "r = 1.0 / xp.sqrt((xc * xc).sum(axis=1, keepdims=True) / max(xc.shape[1] - 1, 1) + ",
      ("tests/test_layernorm.py",)),
    M("gp-ignores-target", "the gradient penalty's derivative pulls the norms to 0, not target",
      "nanogan/penalties.py", "coef = weight * 2.0 * (n - target) / N",
      "coef = weight * 2.0 * n / N", ("tests/test_penalties.py",)),
    M("penalty-accepts-batchnorm", "a critic with BatchNorm is penalised without complaint",
      "nanogan/penalties.py", "        if isinstance(m, _BatchNorm):\n",
      "        if False:\n", ("tests/test_penalties.py",)),
    # ------------------------------------------------------------------ kernels and optimizers
    M("adam-no-bias-correction", "reference Adam without bias correction",
      "nanogan/_kernels/reference.py",
      "    bc1 = 1 - beta1 ** step\n    bc2 = 1 - beta2 ** step\n",
      "    bc1 = bc2 = 1.0\n", ("tests/test_optim.py",)),
    M("compiled-adam-no-bias-correction", "compiled Adam without bias correction",
      "nanogan/_kernels/_common.py",
      "        bc1 = 1 - beta1 ** step\n        bc2 = 1 - beta2 ** step\n",
      "        bc1 = bc2 = 1.0\n", ("tests/test_kernels.py", "-k", "adam")),
    M("compiled-sgd-no-weight-decay", "compiled SGD ignores weight decay",
      "nanogan/_kernels/_common.py",
      "t(lr), t(momentum), t(1 - dampening), bool(nesterov), t(weight_decay),",
      "t(lr), t(momentum), t(1 - dampening), bool(nesterov), t(0.0),",
      ("tests/test_kernels.py", "-k", "sgd")),
    M("rmsprop-alpha-swapped", "reference RMSprop weighs the new g^2 by alpha",
      "nanogan/_kernels/reference.py", "    sq *= alpha\n    sq += (1 - alpha) * g * g\n",
      "    sq *= 1 - alpha\n    sq += alpha * g * g\n", ("tests/test_optim.py",)),
    # ------------------------------------------------------------------ the fast path's layouts
    M("conv-composed-first-tile", "the composed matmul_col2im folds every tile into the first "
      "tile's images", "nanogan/_kernels/_common.py", "sh, sw, ph, pw, out=x[s:s + n])",
      "sh, sw, ph, pw, out=x[:n])", ("tests/test_kernels.py", "-k", "conv_products")),
    M("conv-thread-sums-dropped", "the weight gradient keeps the first thread's tiles only",
      "nanogan/_kernels/_common.py", "                    g += part\n",
      "                    g += 0 * part\n", ("tests/test_kernels.py", "-k", "conv_products")),
    M("g-once-wrong-half", "GAN.step's G update takes the D update's half of G's stacked "
      "cache", "nanogan/fast/ahead.py", "c_d, c_g = G.split_pair(cache)",
      "c_g, c_d = G.split_pair(cache)",
      ("tests/test_fast.py", "-k", "whole_iterations_fast or split or once")),
    M("adam-many-wrong-scalar", "the many-parameter Adam hands the kernel 1 - beta2 for "
      "1 - beta1", "nanogan/_kernels/_common.py", "float(t(beta1)), float(t(1 - beta1)),",
      "float(t(beta1)), float(t(1 - beta2)),",
      ("tests/test_kernels.py", "-k", "adam_update_many")),
    M("dense-tanh-no-grad", "the fused Dense + Tanh sends its gradient back without the tanh "
      "derivative", "nanogan/fast/steps.py",
      "dz = ops.tanh_backward(check_dy(d, dy, y.shape), y)", "dz = check_dy(d, dy, y.shape)",
      ("tests/test_fast.py", "-k", "dense_step or fuse")),
    M("bias-tanh-wrong-bias", "the compiled fused bias + tanh subtracts the bias",
      "nanogan/_kernels/_common.py", "self._k.bias_tanh(z, np.ascontiguousarray(b), _par(z.size))",
      "self._k.bias_tanh(z, np.ascontiguousarray(-b), _par(z.size))",
      ("tests/test_kernels.py", "-k", "bias_tanh")),
    M("noise-half-variance", "the Box-Muller radius is sqrt(-ln u), not sqrt(-2 ln u): normal "
      "noise of variance 1/2", "nanogan/_kernels/reference.py", "    u *= -2.0\n",
      "    u *= -1.0\n", ("tests/test_noise.py", "-k", "standard_normal or equations")),
    M("noise-compiled-angle-off", "the compiled Box-Muller angles are a millionth too large",
      "nanogan/_kernels/_common.py", "kern(words, out, out.dtype.type(reference.ANGLE_STEP),",
      "kern(words, out, out.dtype.type(reference.ANGLE_STEP * (1 + 1e-6)),",
      ("tests/test_noise.py", "-k", "references_bits")),
    M("thin-leaky-slope-off", "the Cython set's fused col2im reads its operand through a leaky "
      "ReLU gradient of the wrong slope", "nanogan/_kernels/_common.py",
      "and fused(a, b, *args, y, float(slope)))", "and fused(a, b, *args, y, float(slope) + 0.5))",
      ("tests/test_kernels.py", "-k", "through_the_leaky_relu")),
    M("conv-step-fused-slope-off", "a Conv2d + LeakyReLU step asked for one gradient reads dy "
      "through the gradient of a ReLU instead", "nanogan/fast/steps.py",
      "put_grad(c, \"weight\", ops.matmul_im2col_t(dy2, xn, *window, y=y2,\n"
      "                                                          slope=self.slope), accumulate)",
      "put_grad(c, \"weight\", ops.matmul_im2col_t(dy2, xn, *window, y=y2,\n"
      "                                                          slope=0.0), accumulate)",
      ("tests/test_fast.py", "-k", "conv_leaky_step")),
    M("window-input-grad-wrong-sign", "a whole-window convolution on channels-first images "
      "sends back minus its input gradient", "nanogan/fast/steps.py",
      "return ops.window_input_grad(dz2, W2.reshape(O, C, -1))",
      "return ops.window_input_grad(dz2, -W2.reshape(O, C, -1))",
      ("tests/test_fast.py", "-k", "conv")),
    M("window-weight-grad-wrong-sign", "the compiled whole-window weight gradient takes minus "
      "dy", "nanogan/_kernels/_common.py",
      "self._k.window_weight_grad(np.ascontiguousarray(dy),",
      "self._k.window_weight_grad(np.ascontiguousarray(-dy),",
      ("tests/test_kernels.py", "-k", "window")),
    M("plan-backward-keeps-order", "the plan's backward pass hands a step its gradient in the "
      "previous step's order", "nanogan/fast/plan.py",
      "dy, have = relayout(dy, have, self.layouts[i]), self.layouts[i]",
      "have = self.layouts[i]", ("tests/test_fast.py", "-k", "conv or layouts")),
    M("planes-strides-swapped", "im2col/col2im are told the image's plane strides the wrong way "
      "round", "nanogan/_kernels/_common.py", "return _flat_span(x, span), s_n, s_c",
      "return _flat_span(x, span), s_c, s_n", ("tests/test_kernels.py", "-k", "im2col or col2im")),
    M("tanh-step-no-derivative", "the plan's Tanh passes dy through without 1 - y^2",
      "nanogan/fast/steps.py", "return ops.tanh_backward(check_dy(self.layer, dy, y.shape), y)",
      "return check_dy(self.layer, dy, y.shape)", ("tests/test_fast.py", "-k", "dense or mlps")),
    # ------------------------------------------------------------------ losses and Algorithm 1
    M("minimax-g-sign", "minimax generator loss with its sign flipped", "nanogan/losses.py",
      "        value, d_fake = ops.bce_with_logits(sf, 0.0)\n        return -value, -d_fake\n",
      "        value, d_fake = ops.bce_with_logits(sf, 0.0)\n        return value, d_fake\n",
      ("tests/test_losses.py",)),
    M("hinge-d-fake-sign", "hinge discriminator uses relu(1 - s_fake)", "nanogan/losses.py",
      "mr, mf = 1 - sr, 1 + sf", "mr, mf = 1 - sr, 1 - sf", ("tests/test_losses.py",)),
    M("g-step-writes-d-grads", "the generator step accumulates D's parameter gradients",
      "nanogan/gan.py",
      "        d_x_fake = D.backward(d_fake, c_d, param_grads=False)\n"
      "        G.backward(d_x_fake, c_g,",
      "        d_x_fake = D.backward(d_fake, c_d, param_grads=True)\n"
      "        G.backward(d_x_fake, c_g,", ("tests/test_gan.py",)),
    M("nan-guard-off", "a NaN loss does not stop training", "nanogan/gan.py",
      "            if not np.isfinite(v):\n", "            if False:\n",
      ("tests/test_gan.py", "tests/test_train.py", "-k", "nan or NaN or finite")),
    M("g-never-updated", "the generator step never updates G (a stalled generator)",
      "nanogan/gan.py",
      "        G.backward(d_x_fake, c_g, **_no_input_grad(G), **fresh)"
      "  # no gradient for the noise\n        self.g_opt.step()\n",
      "        G.backward(d_x_fake, c_g, **_no_input_grad(G), **fresh)"
      "  # no gradient for the noise\n",
      ("tests/test_mnist_learning.py",)),
    # ------------------------------------------------------------------ files
    M("checkpoint-not-atomic", "checkpoints written straight onto the target file",
      "nanogan/checkpoint.py",
      "    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n",
      "    tmp = path\n    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n",
      ("tests/test_checkpoint.py",)),
    M("mnist-checksum-off", "MNIST's SHA-256 is not checked", "nanogan/data.py",
      "    if digest != _SHA256[name]:\n", "    if False:\n", ("tests/test_data.py",)),
    # ------------------------------------------------------------------ the checkers themselves
    M("gradcheck-always-0", "gradcheck reports 0 for everything", "nanogan/gradcheck.py",
      "    return errors\n", "    return {k: 0.0 for k in errors}\n",
      ("tests/test_checkers.py",)),
    M("rel-error-always-0", "rel_error always 0", "nanogan/gradcheck.py",
      "    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))\n",
      "    return 0.0\n", ("tests/test_checkers.py",)),
    M("rel-error-nan-agrees", "rel_error reports 0 (agreement) when a NaN is involved",
      "nanogan/gradcheck.py",
      '    if np.isnan(a).any() or np.isnan(b).any():\n        return float("inf")\n',
      "    if np.isnan(a).any() or np.isnan(b).any():\n        return 0.0\n",
      ("tests/test_checkers.py",)),
    M("numerical-gradient-half", "central differences divided by 4h", "nanogan/gradcheck.py",
      "gflat[i] = (fp - fm) / (2 * h)", "gflat[i] = (fp - fm) / (4 * h)",
      ("tests/test_checkers.py",)),
    M("check-always-passes", "the tests' shared check() asserts nothing", "tests/conftest.py",
      '    assert err < tol, f"{name}: relative error {err:.3e} >= {tol:.0e}"\n', "",
      ("tests/test_checkers.py",)),
    M("kernel-fixture-no-switch", "the kernel_set fixture does not switch the kernels",
      "tests/conftest.py", "    _kernels.set_backend(request.param)\n", "",
      ("tests/test_checkers.py",)),
]


def copy_repository(dest: Path) -> Path:
    """The checkout's files (not .git, virtual environments or run outputs) under ``dest``."""
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "runs", "build", "*.egg-info",
                                    ".pytest_cache", ".hypothesis", ".ruff_cache")
    repo = dest / "repo"
    shutil.copytree(ROOT, repo, ignore=ignore, symlinks=True)
    return repo


def run_tests(repo: Path, tests: tuple[str, ...], timeout: float,
              examples: int | None = None) -> tuple[int, str, float]:
    """pytest on ``tests`` in ``repo``: (exit status, first failing test or message, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    if examples:
        env["NANOGAN_HYPOTHESIS_EXAMPLES"] = str(examples)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-o", "addopts=-rfE", *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    first = next((m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", out, re.M)), "")
    if proc.returncode not in (0, 1) and not first:
        first = out.strip().splitlines()[-1] if out.strip() else ""
    return proc.returncode, first, seconds


def apply(repo: Path, m: Mutation) -> str | None:
    """Apply ``m`` in ``repo``; the original text, or None when the snippet is not there once."""
    path = repo / m.path
    text = path.read_text("utf-8")
    if text.count(m.old) != 1:
        return None
    path.write_text(text.replace(m.old, m.new), "utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    ap.add_argument("--no-baseline", action="store_true",
                    help="do not run the selections on the unmodified copy first")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run")
    ap.add_argument("--examples", type=int, default=None,
                    help="Hypothesis examples per test (default: the suite's profile)")
    args = ap.parse_args(argv)

    chosen = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            ap.error(f"unknown mutations {sorted(unknown)}; see --list")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:34s} {m.path:32s} {' '.join(m.tests)}\n{'':34s} {m.what}")
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="nanogan-mutations-") as tmp:
        repo = copy_repository(Path(tmp))
        print(f"copy of {ROOT} in {repo}", flush=True)
        baseline: dict[tuple[str, ...], tuple[int, str]] = {}
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                rc, first, sec = run_tests(repo, tests, args.timeout, args.examples)
                baseline[tests] = (rc, first)
                print(f"baseline {' '.join(tests)}: exit {rc} in {sec:.0f} s {first}", flush=True)
        for m in chosen:
            original = apply(repo, m)
            if original is None:
                rows.append((m, "stale", "snippet not found exactly once", 0.0))
                print(f"{m.name}: STALE", flush=True)
                continue
            try:
                rc, first, sec = run_tests(repo, m.tests, args.timeout, args.examples)
            finally:
                (repo / m.path).write_text(original, "utf-8")
            base = baseline.get(m.tests, (0, ""))
            if base[0] != 0:
                verdict = "baseline fails"
            elif rc == 1:
                verdict = "caught"
            elif rc == 0:
                verdict = "MISSED"
            else:
                verdict = f"error (exit {rc})"
            rows.append((m, verdict, first, sec))
            print(f"{m.name}: {verdict} in {sec:.0f} s {first}", flush=True)

    print("\n| mutation | what | tests run | verdict | first failing test | s |")
    print("|---|---|---|---|---|---|")
    for m, verdict, first, sec in rows:
        print(f"| {m.name} | {m.what} | {' '.join(m.tests)} | {verdict} | {first} | {sec:.0f} |")
    caught = sum(v == "caught" for _, v, _, _ in rows)
    print(f"\n{caught} of {len(rows)} mutations caught")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
