"""Conditional GANs (Mirza & Osindero 2014): the class label enters both networks.

With a one-hot code ``c = onehot(y)`` of the label ``y`` concatenated to each network's input::

    G([z, c]) -> x_fake                       z ~ p_z (N, z_dim), c (N, C)
    D([x, c]) -> s                            x flattened to (N, H*W), s logits (N, 1)

and Algorithm 1 run on the pair with the conditional losses::

    L_D = loss.d_loss(D([x, c_real]), D([G([z, c_fake]), c_fake]))
    L_G = loss.g_loss(D([G([z, c]), c]))

Backpropagation is the unconditional one (see :mod:`nanogan.gan`) with one more step: the
gradient reaching D's input is ``dL/d[x, c]``; G's output receives its first ``H*W`` columns,
``dL/dx = (dL/d[x, c])[:, :H*W]`` reshaped to G's output shape, and the label columns (a
constant) are dropped.

The real labels come with the real minibatch (:class:`LabeledMinibatches`); the fake labels are
drawn uniformly from the ``C`` classes, so G learns every class equally often.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._memory import pooled
from .backend import asarray, to_numpy, xp
from .data import Minibatches
from .gan import GAN, _mean_sigmoid, _no_input_grad, infer_z_shape
from .layers import Module

__all__ = ["ConditionalGAN", "LabeledMinibatches", "conditional_accuracy", "one_hot"]


def one_hot(labels: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """The one-hot code of integer labels.

    Parameters
    ----------
    labels : (N,) integers in ``[0, num_classes)``
    num_classes : C

    Returns
    -------
    code : (N, C) of ``dtype``, ``code[n, labels[n]] = 1`` and 0 elsewhere, a NumPy array (the
        labels are host data; :meth:`ConditionalGAN.generator_input` moves the code)
    """
    y = to_numpy(labels)
    if y.ndim != 1 or (y.size and (y.dtype.kind not in "iu" or y.min() < 0
                                   or y.max() >= num_classes)):
        raise ValueError(f"one_hot: argument 'labels' expected integers in [0, {num_classes}) of "
                         f"shape (N,), got {y.dtype} {y.shape}"
                         + (f" with values in [{y.min()}, {y.max()}]" if y.size and
                            y.dtype.kind in "iu" else ""))
    code = np.zeros((len(y), num_classes), dtype=dtype)
    code[np.arange(len(y)), y] = 1
    return code


class LabeledMinibatches(Iterator[tuple[np.ndarray, np.ndarray]]):
    """:class:`nanogan.data.Minibatches` over images and their labels: yields ``(x, y)`` pairs.

    Parameters
    ----------
    x : (N, ...) images; y : (N,) integer labels
    batch_size, rng, drop_last : as :class:`~nanogan.data.Minibatches`

    Yields
    ------
    (x_batch (batch_size, ...), y_batch (batch_size,)), the same rows of both

    Notes
    -----
    ``state``/``set_state`` are those of the underlying :class:`~nanogan.data.Minibatches`, so a
    resumed run draws exactly the same pairs.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 rng: np.random.Generator | int | None = None, drop_last: bool = True) -> None:
        if len(x) != len(y):
            raise ValueError(f"LabeledMinibatches: {len(x)} images but {len(y)} labels")
        self.y = np.asarray(y)
        self.batches = Minibatches(x, batch_size, rng, drop_last)

    def __iter__(self) -> LabeledMinibatches:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        idx = self.batches.next_indices()
        return self.batches.x[idx], self.y[idx]

    def state(self) -> dict[str, Any]:
        return self.batches.state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.batches.set_state(state)


class ConditionalGAN(GAN):
    """Algorithm 1 for a label-conditioned generator and discriminator (one-hot concatenated).

    Parameters
    ----------
    generator : Module mapping ``[z, onehot(y)] (N, z_dim + C)`` to samples ``(N, ...)``
    discriminator : Module mapping ``[x.reshape(N, -1), onehot(y)] (N, H*W + C)`` to logits
    num_classes : C
    loss, g_opt, d_opt, k, clip, noise : as :class:`nanogan.GAN`
    z_shape : ``(z_dim,)``; inferred as G's input width minus C if None

    Notes
    -----
    :meth:`d_step`, :meth:`g_step` and :meth:`generate` take the noise and the labels apart.
    :meth:`sample_noise` returns the generator's whole input, noise and a uniformly drawn label
    code, so that code written for :class:`nanogan.GAN` (the training loop's sample grid,
    ``nanogan sample``, ``nanogan evaluate``) samples a conditional generator unchanged; draw
    the noise alone with :meth:`sample_z`.
    """

    def __init__(self, generator: Module, discriminator: Module, num_classes: int = 10,
                 loss: Any = "nonsaturating", g_opt: Any = None, d_opt: Any = None, k: int = 1,
                 clip: float | None = None, *, z_shape: tuple[int, ...] | None = None,
                 noise: str = "normal") -> None:
        if int(num_classes) < 2:
            raise ValueError(f"ConditionalGAN: num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        if z_shape is None:
            (width,) = infer_z_shape(generator)[:1]
            if width <= self.num_classes:
                raise ValueError(f"ConditionalGAN: the generator takes {width} inputs, not more "
                                 f"than num_classes={self.num_classes}; it must take "
                                 "z_dim + num_classes")
            z_shape = (width - self.num_classes,)
        if len(z_shape) != 1:
            raise ValueError(f"ConditionalGAN: noise must be flat (z_dim,), got z_shape={z_shape}")
        super().__init__(generator, discriminator, loss, g_opt, d_opt, k, clip,
                         z_shape=z_shape, noise=noise)

    # ------------------------------------------------------------------ inputs
    @property
    def generator_input_shape(self) -> tuple[int, ...]:
        """What G reads per sample: ``(z_dim + C,)``, the noise and the one-hot label."""
        return (self.z_shape[0] + self.num_classes,)

    def generator_input(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``[z, onehot(labels)]``, (N, z_dim + C) in the generator's dtype."""
        if len(z) != len(labels):
            raise ValueError(f"ConditionalGAN: {len(z)} noise vectors but {len(labels)} labels")
        z = asarray(z)
        return xp.concatenate([z.reshape(len(z), -1),
                               asarray(one_hot(labels, self.num_classes, self.z_dtype))], axis=1)

    def discriminator_input(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``[x.reshape(N, -1), onehot(labels)]``, (N, H*W + C) in ``x``'s dtype."""
        if len(x) != len(labels):
            raise ValueError(f"ConditionalGAN: {len(x)} samples but {len(labels)} labels")
        x = asarray(x)  # a real batch comes from the host, a fake one is on the device
        return xp.concatenate([x.reshape(len(x), -1),
                               asarray(one_hot(labels, self.num_classes, x.dtype))], axis=1)

    def sample_z(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``z ~ p_z`` alone, (n, z_dim)."""
        return super().sample_noise(n, rng)

    def sample_labels(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` labels drawn uniformly from ``[0, C)``, int64 (n,)."""
        return rng.integers(0, self.num_classes, size=n)

    def sample_noise(self, n: int, rng: np.random.Generator,
                     labels: np.ndarray | int | None = None) -> np.ndarray:
        """The generator's whole input ``[z, onehot(y)]`` (n, z_dim + C): ``z ~ p_z`` and ``y``
        = ``labels`` (an int: that class for all), drawn uniformly when None (after ``z``)."""
        z = self.sample_z(n, rng)
        if labels is None:
            labels = self.sample_labels(n, rng)
        labels = np.broadcast_to(to_numpy(labels), (n,))
        return self.generator_input(z, labels)

    def generate(self, z: np.ndarray, labels: np.ndarray | int,
                 train: bool = False) -> np.ndarray:
        """Samples ``G([z, onehot(labels)])`` (labels: (N,) or one int for all)."""
        labels = np.broadcast_to(to_numpy(labels), (len(z),))
        return self.G(self.generator_input(z, labels), train=train)

    # ------------------------------------------------------------------ the two updates
    @pooled
    def d_step(self, x_real: np.ndarray, y_real: np.ndarray, z: np.ndarray,  # type: ignore[override]
               y_fake: np.ndarray) -> dict[str, float]:
        """One discriminator update on real pairs ``(x_real, y_real)`` and fake pairs
        ``(G([z, c_fake]), y_fake)``; G gets no gradient. Returns what :meth:`GAN.d_step`
        returns."""
        self.D.zero_grad()
        fake, _ = self.G.forward(self.generator_input(z, y_fake), train=True)
        s_real, c_real = self.D.forward(self.discriminator_input(x_real, y_real), train=True)
        s_fake, c_fake = self.D.forward(self.discriminator_input(fake, y_fake), train=True)
        value, d_real, d_fake = self.loss.d_loss(s_real, s_fake)
        skip = _no_input_grad(self.D)
        self.D.backward(d_real, c_real, **skip)
        self.D.backward(d_fake, c_fake, **skip)
        self.d_opt.step()
        if self.clip is not None:
            for p in self.D.params.values():
                xp.clip(p, -self.clip, self.clip, out=p)
        return {
            "d_loss": float(value),
            "D_x": _mean_sigmoid(s_real),
            "D_G_z": _mean_sigmoid(s_fake),
            "D_acc": float(((s_real > 0).sum() + (s_fake < 0).sum()) / (s_real.size + s_fake.size)),
        }

    @pooled
    def g_step(self, z: np.ndarray, y: np.ndarray) -> dict[str, float]:  # type: ignore[override]
        """One generator update on ``D([G([z, c]), c])`` through the unchanged discriminator:
        ``dL/dx_fake = (dL/d[x, c])[:, :H*W]``. Returns ``g_loss`` and ``D_G_z_after``."""
        self.G.zero_grad()
        fake, c_g = self.G.forward(self.generator_input(z, y), train=True)
        s_fake, c_d = self.D.forward(self.discriminator_input(fake, y), train=True)
        value, d_fake = self.loss.g_loss(s_fake)
        d_in = self.D.backward(d_fake, c_d, param_grads=False)  # (N, H*W + C)
        d_x_fake = xp.ascontiguousarray(d_in[:, :fake[0].size]).reshape(fake.shape)
        self.G.backward(d_x_fake, c_g, **_no_input_grad(self.G))
        self.g_opt.step()
        return {"g_loss": float(value), "D_G_z_after": _mean_sigmoid(s_fake)}

    @pooled
    def step(self, real_batches: Any, rng: np.random.Generator) -> dict[str, float]:
        """One iteration: ``k`` D steps, each on the next ``(x, y)`` minibatch, fresh noise and
        uniformly drawn fake labels, then one G step on fresh noise and labels."""
        it = real_batches if isinstance(real_batches, Iterator) else iter(real_batches)
        stats: dict[str, float] = {}
        for _ in range(self.k):
            try:
                x, y = next(it)
            except StopIteration:
                raise ValueError("ConditionalGAN.step: real_batches ran out of minibatches") \
                    from None
            n = len(x)
            stats = self.d_step(x, y, self.sample_z(n, rng), self.sample_labels(n, rng))
        stats.update(self.g_step(self.sample_z(n, rng), self.sample_labels(n, rng)))
        self.steps += 1
        self.check_finite(stats)
        return stats

    def config(self) -> dict[str, Any]:
        """What a checkpoint stores beyond :func:`nanogan.train.gan_config`."""
        return {"type": "ConditionalGAN", "type_kwargs": {"num_classes": self.num_classes}}


def conditional_accuracy(gan: ConditionalGAN, n_per_class: int = 1000, seed: int = 0,
                         features: Any = None, batch: int = 1000) -> dict[str, Any]:
    """How often the MNIST classifier of :mod:`nanogan.metrics` names the label G was asked for.

    Draws ``n_per_class`` samples of every class (noise seeded by ``seed``, G in eval mode).

    Returns
    -------
    dict: ``accuracy`` (float, over all samples), ``per_class`` (list of C floats), ``n``
    """
    from .metrics.evaluate import generator_range
    from .metrics.features import load_classifier

    features = features if features is not None else load_classifier()
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(gan.num_classes), n_per_class)
    hits = np.zeros(len(labels), dtype=bool)
    for s in range(0, len(labels), batch):
        y = labels[s:s + batch]
        x = gan.generate(gan.sample_z(len(y), rng), y)
        _, probs = features(to_numpy(x).reshape(len(y), -1), generator_range(gan))
        hits[s:s + batch] = probs.argmax(axis=1) == y
    per_class = [float(hits[labels == c].mean()) for c in range(gan.num_classes)]
    return {"accuracy": float(hits.mean()), "per_class": per_class, "n": len(labels)}
