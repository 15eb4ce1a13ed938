"""Algorithm 1 of Goodfellow et al. (2014): minibatch training of generative adversarial nets.

::

    for each training iteration:
        for k steps:
            sample m noise vectors z ~ p_z and m real examples x ~ p_data
            ascend D's objective  (here: descend loss.d_loss(D(x), D(G(z))))
        sample m noise vectors z ~ p_z
        descend G's objective   (here: loss.g_loss(D(G(z))))

Backpropagation through the pair, written out::

    discriminator step                       generator step
    s_r = D(x)      s_f = D(G(z))            s_f = D(G(z))
    L_D, dL/ds_r, dL/ds_f = loss.d_loss      L_G, dL/ds_f = loss.g_loss
    D.backward(dL/ds_r); D.backward(dL/ds_f) dL/dG(z) = D.backward(dL/ds_f, param_grads=False)
    (G receives nothing)                     G.backward(dL/dG(z))   -> dL/dtheta_G
    (both without dL/dx: input_grad=False)   (G's without dL/dz: input_grad=False)
    d_opt.step()                             g_opt.step()           (D untouched)

Both networks stay in training mode throughout (BatchNorm uses batch statistics), and D sees the
real batch and the fake batch as two separate forward passes, in that order, as PyTorch's DCGAN
example does. ``G`` and ``D`` run as fused plans (:mod:`nanogan.fast`, same results as the plain
layers) unless ``fast=False``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import fast as _fast
from . import losses as _losses
from . import noise as _noise
from ._kernels import ops
from ._memory import pooled, workspace
from .backend import asarray, to_numpy, xp
from .layers import ConvTranspose2d, Dense, Module, Sequential
from .layers.base import accepts_input_grad
from .optim import Adam
from .stats import Stats


def _quiet_overflow(method: Any) -> Any:
    """Run a training iteration without NumPy's overflow / invalid-value warnings: a diverging
    run would print pages of them, and the non-finite guard reports the same thing once, with the
    step, the quantity and the fix (see :meth:`GAN.check_finite`). Used on :meth:`GAN.step` and
    :meth:`GAN.simultaneous_step` only (one ``np.errstate`` per iteration, about a microsecond).
    The iteration's large arrays come from nanogan's memory pool (``_memory.workspace``)."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), workspace():
            return method(*args, **kwargs)

    return wrapper


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinity; the message names the step, the quantity and the fix.

    Attributes
    ----------
    step : the iteration (``GAN.steps``) at which it was found
    quantity : what was not finite (``"d_loss"``, ``"D.0.weight"``, ``"d_opt state
        0.weight.exp_avg_sq"``...)
    """

    def __init__(self, message: str, step: int = -1, quantity: str = "") -> None:
        super().__init__(message)
        self.step, self.quantity = step, quantity


def infer_z_shape(generator: Module) -> tuple[int, ...]:
    """The noise shape (without batch) that ``generator``'s first layer accepts."""
    first = generator
    while isinstance(first, Sequential) and len(first):
        first = first[0]
    if isinstance(first, Dense):
        return (first.in_features,)
    if isinstance(first, ConvTranspose2d):
        return (first.in_channels, 1, 1)
    raise ValueError(f"GAN: cannot infer the noise shape from {type(first).__name__}; "
                     "pass z_shape=(...)")


class GAN:
    """A generator, a discriminator, a loss and two optimizers: Algorithm 1.

    Parameters
    ----------
    generator : Module mapping noise ``z (N, *z_shape)`` to samples
    discriminator : Module mapping samples to logits ``(N, 1)`` or ``(N,)``
    loss : name for :func:`nanogan.losses.get` or a loss object
    g_opt, d_opt : optimizers over ``generator`` / ``discriminator``; default
        ``Adam(lr=2e-4, betas=(0.5, 0.999))`` each
    k : discriminator steps per generator step
    clip : if set, D's parameters are clipped to ``[-clip, clip]`` after every D step (WGAN)
    z_shape : noise shape without the batch axis; inferred from G's first layer if None
    noise : ``"normal"`` (N(0, I)) or ``"uniform"`` (U(-1, 1))
    normal_sampler : how normal noise is drawn from ``rng``: ``"box-muller"`` (the default,
        :func:`nanogan.noise.standard_normal`) or ``"numpy"`` (``rng.standard_normal``, what
        nanogan drew before; a checkpoint that does not name a sampler resumes with it). Also an
        attribute that may be changed at any time.
    fast : run G and D as fused plans (:func:`nanogan.fast.compile`; same results as the plain
        layers, faster); False runs the layers as written. May be changed at any time.

    Notes
    -----
    Non-finite guard: every iteration checks its losses (scalars, free); every
    :attr:`finite_check_every` iterations, and before every checkpoint is written, one full scan
    checks G's and D's parameters, buffers and gradients and both optimizers' state (one
    ``isfinite(sum)`` per array, about a tenth of one MLP GAN step, so about 0.1 % of the
    training time). NaN and infinity are sticky in all of these (Adam's ``exp_avg_sq`` stays
    ``inf``), so a divergence the losses do not show is found within that many steps, and
    :class:`NonFiniteError` stops training before a checkpoint could store it.

    Constructing a GAN changes nothing process-wide; :func:`nanogan.performance.configure` is
    where the speed settings that do (memory reuse, BLAS threads, OpenMP waiting) are applied.
    """

    #: Iterations between full non-finite scans of parameters, gradients and optimizer state.
    finite_check_every: int = 100

    def __init__(self, generator: Module, discriminator: Module, loss: Any = "nonsaturating",
                 g_opt: Any = None, d_opt: Any = None, k: int = 1, clip: float | None = None, *,
                 z_shape: tuple[int, ...] | None = None, noise: str = "normal",
                 normal_sampler: str = "box-muller", fast: bool = True) -> None:
        if int(k) < 1:
            raise ValueError(f"GAN: k (discriminator steps per generator step) must be >= 1, "
                             f"got {k}")
        if clip is not None and not clip > 0:
            raise ValueError(f"GAN: clip must be positive or None, got {clip}")
        if noise not in ("normal", "uniform"):
            raise ValueError(f"GAN: noise must be 'normal' or 'uniform', got {noise!r}")
        self.G, self.D = generator, discriminator
        self.loss_name = loss if isinstance(loss, str) else type(loss).__name__
        self.loss = _losses.get(loss) if isinstance(loss, str) else loss
        self.g_opt = g_opt if g_opt is not None else Adam(generator, lr=2e-4, betas=(0.5, 0.999))
        self.d_opt = d_opt if d_opt is not None else Adam(discriminator, lr=2e-4,
                                                          betas=(0.5, 0.999))
        self.k, self.clip = int(k), clip
        self.z_shape = tuple(z_shape) if z_shape is not None else infer_z_shape(generator)
        self.noise, self.normal_sampler = noise, _noise.check_sampler(normal_sampler, "GAN")
        self.z_dtype = next(iter(generator.params.values())).dtype if generator.params \
            else np.dtype(np.float32)
        self.steps = 0  # completed iterations of Algorithm 1
        self._finite_at = 0  # the last step at which the full non-finite scan found nothing
        self.fast = bool(fast)
        self._plans: dict[int, Module] = {}
        self._ahead = _fast.Ahead()  # G run once for two updates (see step)

    def _run(self, model: Module) -> Module:
        """What runs ``model``: its fused plan when :attr:`fast`, else the model itself."""
        if not self.fast:
            return model
        plan = self._plans.get(id(model))
        if plan is None or getattr(plan, "model", plan) is not model:
            plan = self._plans[id(model)] = _fast.compile(model)
        return plan

    # ------------------------------------------------------------------ noise
    def sample_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``z ~ p_z``, shape ``(n, *z_shape)``, in the generator's dtype: drawn on the host by
        ``rng`` (the same noise on every backend and kernel set; normal noise by
        :attr:`normal_sampler`), returned on the active backend."""
        shape = (n, *self.z_shape)
        if self.noise == "uniform":
            return asarray(rng.uniform(-1.0, 1.0, size=shape).astype(self.z_dtype))
        return asarray(_noise.normal(rng, shape, self.z_dtype, self.normal_sampler))

    # ------------------------------------------------------------------ the two updates
    @pooled
    def d_step(self, x_real: np.ndarray, z: np.ndarray) -> dict[str, float]:
        """One discriminator update on a real batch and on ``G(z)``.

        ``L_D = loss.d_loss(D(x), D(G(z)))``; G's output is treated as data (G gets no gradient).
        Returns ``d_loss``, ``D_x`` (mean sigma(D(x))), ``D_G_z`` (mean sigma(D(G(z)))) and
        ``D_acc`` (fraction of real scored > 0 and fake scored < 0); see :mod:`nanogan.stats`.
        """
        G, D = self._run(self.G), self._run(self.D)
        x_real = asarray(x_real)  # to the device once (a no-op if already there)
        fresh = _zero_grad(D)  # D's gradients start at zero
        fake, _ = self._ahead.forward(G, 0, z)  # G(z), or taken from step's one pass of G
        s_real, s_fake, cache = _forward_pair(D, x_real, fake)  # D(x), D(G(z))
        value, d_real, d_fake = self.loss.d_loss(s_real, s_fake)
        _backward_pair(D, d_real, d_fake, cache, fresh)  # D's own update needs no dL/dx
        self.d_opt.step()
        if self.clip is not None:
            for p in self.D.params.values():
                xp.clip(p, -self.clip, self.clip, out=p)
        return Stats({
            "d_loss": float(value),
            "D_x": _mean_sigmoid(s_real),
            "D_G_z": _mean_sigmoid(s_fake),
            "D_acc": float(((s_real > 0).sum() + (s_fake < 0).sum()) / (s_real.size + s_fake.size)),
        })

    @pooled
    def g_step(self, z: np.ndarray) -> dict[str, float]:
        """One generator update through the unchanged discriminator.

        ``dL_G/dtheta_G = G.backward(D.backward(dL_G/ds, param_grads=False))``: D's gradients and
        parameters are not touched. Returns ``g_loss`` and ``D_G_z_after`` (mean sigma(D(G(z))) as
        seen by this step).
        """
        G, D = self._run(self.G), self._run(self.D)
        fresh = _zero_grad(G)  # G's gradients start at zero
        fake, c_g = self._ahead.forward(G, 1, z)  # G(z), or taken from step's one pass of G
        s_fake, c_d = D.forward(fake, train=True)
        value, d_fake = self.loss.g_loss(s_fake)
        d_x_fake = D.backward(d_fake, c_d, param_grads=False)
        G.backward(d_x_fake, c_g, **_no_input_grad(G), **fresh)  # no gradient for the noise
        self.g_opt.step()
        return Stats({"g_loss": float(value), "D_G_z_after": _mean_sigmoid(s_fake)})

    @_quiet_overflow
    def simultaneous_step(self, x_real: np.ndarray, z: np.ndarray, *,
                          d_scale: float = 0.5) -> dict[str, float]:
        """One update of G and D at once, from one minibatch: the 2014 reference code's update.

        Goodfellow et al.'s own implementation (pylearn2's ``AdversaryCost2``) does not alternate as
        Algorithm 1 does: it runs D once on the real batch and once on ``G(z)`` (one dropout mask
        each), takes D's gradient of ``d_scale * loss.d_loss`` and G's gradient of
        ``loss.g_loss`` on that SAME forward pass of ``D(G(z))``, and applies both updates together,
        so neither network sees the other's new parameters within the step::

            s_r = D(x), s_f = D(G(z))                      (one forward pass each)
            L_D = d_scale * loss.d_loss(s_r, s_f)           (0.5 (BCE(s_r, 1) + BCE(s_f, 0)))
            L_G = loss.g_loss(s_f)                          (BCE(s_f, 1), non-saturating)
            dL_D/dtheta_D:  D.backward(dL_D/ds_r), D.backward(dL_D/ds_f)
            dL_G/dtheta_G:  G.backward(D.backward(dL_G/ds_f, param_grads=False))
            d_opt.step(); g_opt.step()                      (both from the old parameters)

        Counts as one iteration (``steps`` grows by one). Returns ``d_loss`` (the scaled value that
        was descended), ``g_loss``, ``D_x``, ``D_G_z`` and ``D_acc`` as :meth:`d_step` does; raises
        :class:`NonFiniteError` on a NaN or infinite loss.
        """
        G, D = self._run(self.G), self._run(self.D)
        x_real, z = asarray(x_real), asarray(z)  # to the device once (no-ops if already there)
        self.D.zero_grad()
        self.G.zero_grad()
        fake, c_g = G.forward(z, train=True)
        s_real, c_real = D.forward(x_real, train=True)
        s_fake, c_fake = D.forward(fake, train=True)
        d_value, d_real, d_fake = self.loss.d_loss(s_real, s_fake)
        g_value, g_fake = self.loss.g_loss(s_fake)
        D.backward(d_real * d_scale, c_real, **_no_input_grad(D))  # no dL/dx needed
        D.backward(d_fake * d_scale, c_fake, **_no_input_grad(D))
        G.backward(D.backward(g_fake, c_fake, param_grads=False), c_g,
                   **_no_input_grad(G))  # no gradient for the noise
        self.d_opt.step()
        self.g_opt.step()
        if self.clip is not None:
            for p in self.D.params.values():
                xp.clip(p, -self.clip, self.clip, out=p)
        self.steps += 1
        stats = Stats({
            "d_loss": float(d_value) * d_scale,
            "g_loss": float(g_value),
            "D_x": _mean_sigmoid(s_real),
            "D_G_z": _mean_sigmoid(s_fake),
            "D_acc": float(((s_real > 0).sum() + (s_fake < 0).sum()) / (s_real.size + s_fake.size)),
        })
        self.check_finite(stats, params=self.steps % self.finite_check_every == 0)
        return stats

    @_quiet_overflow
    def step(self, real_batches: Iterable[np.ndarray] | Iterator[np.ndarray],
             rng: np.random.Generator) -> dict[str, float]:
        """One iteration of Algorithm 1: ``k`` D steps, each on the next real minibatch and fresh
        noise, then one G step on fresh noise (as many samples as the last real batch).

        On the fast path, where G's plan can cut a pass of two batches in two
        (:attr:`nanogan.fast.Plan.splits`), the last D step's ``G(z)`` and the G step's go through
        G as one pass (:class:`nanogan.fast.Ahead`): G does not change in between. The noise is
        drawn as before, and the values are the same up to the order of BLAS's sums.

        ``real_batches`` should be an iterator (e.g. :class:`nanogan.data.Minibatches`); a plain
        iterable is restarted at every call. Raises :class:`NonFiniteError` on a NaN or infinite
        loss, naming the step and the quantity.
        """
        it = real_batches if isinstance(real_batches, Iterator) else iter(real_batches)
        stats: dict[str, float] = Stats()
        once = self._ahead.wanted(self)  # G once for the last D update and the G update
        for i in range(self.k):
            try:
                x = next(it)
            except StopIteration:
                raise ValueError("GAN.step: real_batches ran out of minibatches") from None
            z = self.sample_noise(len(x), rng)
            if once and i == self.k - 1:  # the G step's noise, drawn here as it is below
                z_g = self._ahead.run(self._run(self.G), z, self.sample_noise(len(x), rng))
            stats = self.d_step(x, z)
        stats.update(self.g_step(z_g if once else self.sample_noise(len(x), rng)))
        self.steps += 1
        self.check_finite(stats, params=self.steps % self.finite_check_every == 0)
        return stats

    # ------------------------------------------------------------------ guards and state
    def check_finite(self, stats: dict[str, float] | None = None, params: bool = False) -> None:
        """Raise :class:`NonFiniteError` if a loss in ``stats`` or, with ``params``, a parameter,
        buffer or gradient of G or D or a state array of either optimizer holds NaN or infinity.

        The message names the step, the quantity and what to do about it.
        """
        for name, v in (stats or {}).items():
            if not np.isfinite(v):
                self._diverged(name, f"is {v} (not finite)")
        if not params:
            return
        bad = self.nonfinite_arrays()
        if bad:
            more = f" (and {len(bad) - 1} more arrays)" if len(bad) > 1 else ""
            name, what = bad[0]
            self._diverged(name, f"contains {what}{more}", scan=True)
        self._finite_at = self.steps

    def nonfinite_arrays(self) -> list[tuple[str, str]]:
        """``(name, "NaN" | "infinity")`` of every array of the training state that is not all
        finite: G's and D's parameters, buffers and gradients, then both optimizers' state.

        Costs one ``sum`` per array (a second, exact pass only for an array whose sum is not
        finite, which may also be an overflow of large finite values)."""
        groups: list[tuple[str, dict[str, np.ndarray]]] = []
        for net, model in (("G", self.G), ("D", self.D)):
            groups += [(f"{net}.", model.params), (f"{net}.", model.buffers),
                       (f"{net} gradient ", model.grads)]
        for label, opt in (("g_opt", self.g_opt), ("d_opt", self.d_opt)):
            for pname, bufs in getattr(opt, "state", {}).items():
                groups.append((f"{label} state {pname}.", bufs))
        bad = []
        with np.errstate(over="ignore", invalid="ignore"):  # a sum may overflow: checked below
            for label, arrays in groups:
                for name, a in arrays.items():
                    if a.dtype.kind != "f" or xp.isfinite(a.sum()):
                        continue
                    if not xp.isfinite(a).all():
                        bad.append((label + name, "NaN" if xp.isnan(a).any() else "infinity"))
        return bad

    def _diverged(self, quantity: str, what: str, scan: bool = False) -> None:
        lrs = ", ".join(f"{n} {getattr(o, 'lr', '?'):g}" for n, o in (("G", self.g_opt),
                                                                      ("D", self.d_opt))
                        if isinstance(getattr(o, "lr", None), float))
        when = (f" (found by the full check that runs every {self.finite_check_every} steps; "
                f"everything was finite at step {self._finite_at})" if scan else "")
        raise NonFiniteError(
            f"training step {self.steps}: {quantity} {what}{when}; training has diverged and "
            f"is stopped. Fix: lower the learning rate (now {lrs or 'unknown'}) or use a loss "
            "with bounded gradients, then start again or resume from the last good checkpoint "
            "(left intact).", step=self.steps, quantity=quantity)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue training: G, D, both optimizers, the step count."""
        out = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        out.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        out.update({f"g_opt.{k}": to_numpy(v) for k, v in self.g_opt.state_dict().items()})
        out.update({f"d_opt.{k}": to_numpy(v) for k, v in self.d_opt.state_dict().items()})
        out["gan.steps"] = np.array(self.steps, dtype=np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` (every part must be present).

        All or nothing: G, D and both optimizers check and convert their parts before anything
        is copied, so a bad entry (named in the ``ValueError``) leaves the GAN unchanged.
        """
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        steps = to_numpy(state.get("gan.steps"))
        if "gan.steps" not in state:
            raise ValueError("GAN.load_state_dict: missing key 'gan.steps'")
        if steps.shape != () or steps.dtype.kind not in "iu" or int(steps) < 0:
            raise ValueError(f"GAN.load_state_dict: entry 'gan.steps' expected a non-negative "
                             f"integer scalar, got {steps.dtype} {steps.shape}")
        staged = [*self.G._stage_state(part("G.")), *self.D._stage_state(part("D."))]
        commit_g = self.g_opt._stage_state(part("g_opt."))
        commit_d = self.d_opt._stage_state(part("d_opt."))
        for dst, src in staged:
            dst[...] = asarray(src)  # host values to the model's backend
        commit_g()
        commit_d()
        self.steps = self._finite_at = int(steps)


def _forward_pair(D: Module, x_real: np.ndarray, fake: np.ndarray) -> tuple[Any, Any, Any]:
    """``D(x_real), D(fake)`` in training mode: two passes. A fused plan runs them as one batch
    when no layer mixes samples (:meth:`nanogan.fast.Plan.forward_pair`)."""
    if hasattr(D, "forward_pair"):
        return D.forward_pair(x_real, fake, True)
    s_real, c_real = D.forward(x_real, train=True)
    s_fake, c_fake = D.forward(fake, train=True)
    return s_real, s_fake, (c_real, c_fake)


def _zero_grad(model: Module) -> dict[str, bool]:
    """``model.zero_grad()``, the start of an update; returns the keywords of the backward pass
    that follows. A fused plan skips the fill: its next backward pass writes the gradients
    instead of adding to them (``{"accumulate": False}``, see :meth:`nanogan.fast.Plan.backward`),
    which leaves the same values."""
    if isinstance(model, _fast.Plan):
        return {"accumulate": False}
    model.zero_grad()
    return {}


def _backward_pair(D: Module, d_real: np.ndarray, d_fake: np.ndarray, cache: Any,
                   fresh: dict[str, bool]) -> None:
    """D's parameter gradients from both passes of :func:`_forward_pair` (no dL/dx); ``fresh``
    from :func:`_zero_grad`."""
    if hasattr(D, "backward_pair"):
        D.backward_pair(d_real, d_fake, cache, input_grad=False, **fresh)
        return
    (c_real, c_fake), skip = cache, _no_input_grad(D)
    D.backward(d_real, c_real, **skip)
    D.backward(d_fake, c_fake, **skip)


def _no_input_grad(model: Module) -> dict[str, bool]:
    """``{"input_grad": False}`` where ``model.backward`` takes the keyword, else ``{}``."""
    return {"input_grad": False} if accepts_input_grad(model) else {}


def _mean_sigmoid(s: np.ndarray) -> float:
    return float(xp.mean(ops.sigmoid(s)))
