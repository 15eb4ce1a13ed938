"""The GAN models by name: architecture, loss, optimizers, update rule and their defaults.

======================  ==============================================  ===========================
name                    networks                                        training
======================  ==============================================  ===========================
``vanilla``             MLP G and D (256 hidden, LeakyReLU 0.2), any    non-saturating loss, Adam
                        image shape                                     2e-4, betas (0.5, 0.999)
``dcgan``               DCGAN (Radford et al. 2015) for 28 and powers   as vanilla
                        of two >= 16 (:mod:`nanogan.builders`)
``cgan``                MLP G([z, onehot(y)]), D([x, onehot(y)])        as vanilla, real labels
                        (Mirza & Osindero 2014)                         with the real images
``wgan``                DCGAN networks, critic with BatchNorm           Wasserstein loss, clip
                        (Arjovsky et al. 2017)                          0.01, RMSprop 5e-5, k = 5
``wgan-gp``             DCGAN networks, critic with LayerNorm           Wasserstein loss + gradient
                        (Gulrajani et al. 2017)                         penalty 10, Adam 1e-4,
                                                                        betas (0, 0.9), k = 5
``r1``                  DCGAN networks, discriminator with LayerNorm    non-saturating loss + R1
                        (Mescheder et al. 2018)                         penalty 10 on real data,
                                                                        Adam as vanilla
``goodfellow2014``      ReLU MLP G (sigmoid output), maxout D with      simultaneous updates, SGD
                        dropout (Goodfellow et al. 2014)                0.1 decaying, momentum
                                                                        0.5 -> 0.7
======================  ==============================================  ===========================

A :class:`Recipe` builds a :class:`nanogan.GAN` for a data shape (:meth:`Recipe.build`), scales
uint8 images to the generator's range (:meth:`Recipe.prepare`) and runs one training iteration
(:meth:`Recipe.step`). The command line (``nanogan train MODEL``) and library code use the same
calls::

    recipe = RECIPES["dcgan"]
    hp = recipe.hyperparameters({"lr": 1e-4})
    gan = recipe.build((3, 64, 64), 0, hp, rng)
    stats = recipe.step(gan, batches, rng, hp)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import xp
from .gan import GAN
from .optim import SGD, Adam, RMSprop

__all__ = ["HYPERPARAMETERS", "RECIPES", "Recipe", "get_recipe"]

#: hyperparameter -> (type, help). Every recipe has a default for each.
HYPERPARAMETERS: dict[str, tuple[type, str]] = {
    "z_dim": (int, "noise dimension"),
    "width": (int, "network width: MLP hidden units, or DCGAN channels of the outer layers "
                   "(ngf = ndf)"),
    "loss": (str, "GAN loss: minimax, nonsaturating, wasserstein, lsgan or hinge"),
    "lr": (float, "learning rate of both optimizers"),
    "beta1": (float, "Adam beta1 (momentum for goodfellow2014's SGD)"),
    "beta2": (float, "Adam beta2 (unused by RMSprop and SGD)"),
    "k": (int, "critic/discriminator steps per generator step"),
    "clip": (float, "clip the critic's weights to [-clip, clip] after each step (0: off)"),
    "gp_weight": (float, "gradient penalty coefficient: WGAN-GP's lambda, R1's gamma"),
    "d_norm": (str, "normalisation in the DCGAN discriminator: batch, layer or none"),
}

_ADAM = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "k": 1, "clip": 0.0, "gp_weight": 0.0,
         "loss": "nonsaturating", "z_dim": 100, "d_norm": "batch"}


@dataclass
class Recipe:
    """One named model: how to build it, feed it and step it.

    Attributes
    ----------
    name, summary : the name on the command line and a one-line description
    defaults : the value of every key of :data:`HYPERPARAMETERS`
    arch : ``"mlp"``, ``"dcgan"`` or ``"maxout"``
    optimizer : ``"adam"``, ``"rmsprop"`` or ``"sgd"``
    conditional : needs labels (a :class:`nanogan.conditional.ConditionalGAN`)
    pixel_range : the generator's output range, to which :meth:`prepare` scales the data
    update : ``"alternating"`` (Algorithm 1) or ``"simultaneous"`` (the 2014 code's update,
        with its learning-rate schedule)
    penalty : ``""``, or ``"gp"`` / ``"r1"`` for a :class:`nanogan.penalized.PenalizedGAN`
        (weight: the ``gp_weight`` hyperparameter)
    """

    name: str
    summary: str
    defaults: dict[str, Any]
    arch: str = "mlp"
    optimizer: str = "adam"
    conditional: bool = False
    pixel_range: tuple[float, float] = (-1.0, 1.0)
    update: str = "alternating"
    penalty: str = ""
    paper: str = ""
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ settings
    def hyperparameters(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults overridden by the non-None entries of ``given`` (other keys ignored)."""
        hp = dict(self.defaults)
        for key, value in (given or {}).items():
            if key in hp and value is not None:
                hp[key] = HYPERPARAMETERS[key][0](value)
        return hp

    def check_shape(self, shape: tuple[int, int, int]) -> None:
        """ValueError (one line, with the fix) if the networks cannot take images of ``shape``."""
        from .builders import _levels

        _, h, w = shape
        if h != w:
            raise ValueError(f"{self.name}: images must be square, got {h}x{w}; pass "
                             "--image-size to resize and centre-crop them")
        if self.arch == "dcgan":
            _levels(h, f"--image-size {h} with model {self.name}")

    # ------------------------------------------------------------------ building
    def build(self, shape: tuple[int, int, int], num_classes: int, hp: dict[str, Any],
              rng: np.random.Generator, x_mean: np.ndarray | None = None) -> GAN:
        """A freshly initialised GAN for images ``shape = (C, H, W)`` (and ``num_classes``
        labels for a conditional recipe); ``x_mean`` (flat, in the generator's range) sets
        goodfellow2014's output bias."""
        from . import builders

        self.check_shape(shape)
        c, s, _ = shape
        z, w = int(hp["z_dim"]), int(hp["width"])
        if self.conditional:
            from .conditional import ConditionalGAN
            from .models import mlp_discriminator

            if num_classes < 2:
                raise ValueError(f"{self.name} needs labels with at least 2 classes; use MNIST, "
                                 "an IDX pair, an .npz with 'y', or a folder with one subfolder "
                                 "per class")
            G = builders.mlp_image_generator(shape, z + num_classes, w, rng=rng)
            D = mlp_discriminator(c * s * s + num_classes, w, rng=rng)
        elif self.arch == "dcgan":
            G = builders.dcgan_generator(s, c, z, w, rng=rng)
            D = builders.dcgan_discriminator(s, c, w, hp["d_norm"], rng=rng)
        elif self.arch == "maxout":
            G, D = builders.goodfellow2014_networks(shape, z, g_hidden=w, rng=rng, x_mean=x_mean)
        else:
            G = builders.mlp_image_generator(shape, z, w, rng=rng)
            D = builders.mlp_image_discriminator(shape, w, rng=rng)
        g_opt, d_opt = self._optimizer(G, hp), self._optimizer(D, hp)
        clip = float(hp["clip"]) or None
        if self.penalty:
            from .penalized import PenalizedGAN

            return PenalizedGAN(G, D, loss=hp["loss"], g_opt=g_opt, d_opt=d_opt, k=int(hp["k"]),
                                clip=clip, penalty=self.penalty,
                                penalty_weight=float(hp["gp_weight"]), z_shape=(z, 1, 1))
        if self.conditional:
            return ConditionalGAN(G, D, num_classes, loss=hp["loss"], g_opt=g_opt, d_opt=d_opt,
                                  k=int(hp["k"]), clip=clip)
        return GAN(G, D, loss=hp["loss"], g_opt=g_opt, d_opt=d_opt, k=int(hp["k"]), clip=clip,
                   z_shape=(z, 1, 1) if self.arch == "dcgan" else (z,))

    def _optimizer(self, model: Any, hp: dict[str, Any]) -> Any:
        if self.optimizer == "rmsprop":
            return RMSprop(model, lr=hp["lr"])
        if self.optimizer == "sgd":
            return SGD(model, lr=hp["lr"], momentum=hp["beta1"])
        return Adam(model, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]))

    # ------------------------------------------------------------------ data
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) -> float32 in :attr:`pixel_range`."""
        x = images.astype(np.float32)
        if self.pixel_range == (0.0, 1.0):
            x /= np.float32(255.0)
        else:
            x /= np.float32(127.5)
            x -= np.float32(1.0)
        return x

    def batches(self, x: np.ndarray, labels: np.ndarray | None, batch_size: int,
                rng: np.random.Generator) -> Any:
        """The minibatch iterator the recipe's :meth:`step` takes (labelled for cgan)."""
        from .data import Minibatches

        if self.conditional:
            from .conditional import LabeledMinibatches

            return LabeledMinibatches(x, labels, batch_size, rng)
        return Minibatches(x, batch_size, rng)

    def fixed_input(self, gan: GAN, rng: np.random.Generator, n: int = 64
                    ) -> tuple[np.ndarray, int]:
        """Generator input of the sample grid and its images per row (a conditional model: one
        row per class, the same noise down each column)."""
        if self.conditional:
            k = gan.num_classes  # type: ignore[attr-defined]
            if k <= 16:
                cols = 8
                z = xp.tile(gan.sample_z(cols, rng), (k, 1))  # type: ignore[attr-defined]
                return gan.generator_input(z, np.repeat(np.arange(k), cols)), cols  # type: ignore[attr-defined]
            z = gan.sample_z(n, rng)  # type: ignore[attr-defined]
            return gan.generator_input(z, np.arange(n) % k), 8  # type: ignore[attr-defined]
        return gan.sample_noise(n, rng), 8

    # ------------------------------------------------------------------ training
    def step(self, gan: GAN, batches: Any, rng: np.random.Generator,
             hp: dict[str, Any]) -> dict[str, float]:
        """One training iteration of this recipe; returns the losses and scores."""
        if self.update == "simultaneous":
            spe = batches.steps_per_epoch
            lr = max(float(hp["lr"]) / 1.000004 ** gan.steps, 1e-6)
            momentum = float(hp["beta1"]) + 0.2 * min((gan.steps // spe) / 249.0, 1.0)
            for opt in (gan.g_opt, gan.d_opt):
                opt.lr, opt.momentum = lr, momentum
            x = next(batches)
            return gan.simultaneous_step(x, gan.sample_noise(len(x), rng))
        return gan.step(batches, rng)


def _recipes() -> dict[str, Recipe]:
    wgan = {**_ADAM, "lr": 5e-5, "k": 5, "clip": 0.01, "loss": "wasserstein", "width": 64}
    gp = {**_ADAM, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9, "k": 5, "gp_weight": 10.0,
          "loss": "wasserstein", "width": 64}
    sgd = {**_ADAM, "lr": 0.1, "beta1": 0.5, "beta2": 0.0, "width": 1200}
    items = [
        Recipe("vanilla", "MLP generator and discriminator, any image size",
               {**_ADAM, "width": 256}, paper="Goodfellow et al. 2014 (modern training)"),
        Recipe("dcgan", "DCGAN, image size 28 or a power of two >= 16",
               {**_ADAM, "width": 64}, arch="dcgan", paper="Radford et al. 2015"),
        Recipe("cgan", "conditional MLP GAN (needs labels)", {**_ADAM, "width": 256},
               conditional=True, paper="Mirza & Osindero 2014"),
        Recipe("wgan", "Wasserstein GAN, weight clipping, DCGAN networks", wgan, arch="dcgan",
               optimizer="rmsprop", paper="Arjovsky et al. 2017"),
        Recipe("wgan-gp", "Wasserstein GAN with gradient penalty, DCGAN networks, LayerNorm "
               "critic", {**gp, "d_norm": "layer"}, arch="dcgan", penalty="gp",
               paper="Gulrajani et al. 2017"),
        Recipe("r1", "non-saturating GAN with the R1 penalty on real data, DCGAN networks, "
               "LayerNorm discriminator", {**_ADAM, "gp_weight": 10.0, "width": 64,
                                           "d_norm": "layer"},
               arch="dcgan", penalty="r1", paper="Mescheder et al. 2018"),
        Recipe("goodfellow2014", "the 2014 paper's MNIST model: maxout D with dropout, SGD",
               sgd, arch="maxout", optimizer="sgd", pixel_range=(0.0, 1.0),
               update="simultaneous", paper="Goodfellow et al. 2014"),
    ]
    return {r.name: r for r in items}


#: name -> Recipe, in the order of the table above.
RECIPES: dict[str, Recipe] = _recipes()


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError listing the choices otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]

