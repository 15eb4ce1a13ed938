"""Training statistics are named for what they are, and the old names still load."""

from __future__ import annotations

import numpy as np
import pytest

from nanogan import GAN, Dense, LeakyReLU, Sequential, Tanh
from nanogan.stats import RENAMED, Stats, rename_history
from nanogan.train import HISTORY_KEYS, load_training_checkpoint, save_training_checkpoint


def small_gan():
    G = Sequential(Dense(2, 4, rng=0), LeakyReLU(0.2), Dense(4, 3, rng=1), Tanh())
    D = Sequential(Dense(3, 4, rng=2), LeakyReLU(0.2), Dense(4, 1, rng=3))
    return GAN(G, D)


def test_step_statistics_are_probabilities_not_gradients():
    gan = small_gan()
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    stats = gan.step([x], np.random.default_rng(1))
    assert set(stats) == {"d_loss", "g_loss", "D_x", "D_G_z", "D_G_z_after", "D_acc"}
    assert not any(k.startswith("d_") and k != "d_loss" for k in stats)
    assert 0 < stats["D_x"] < 1 and 0 < stats["D_G_z"] < 1 and 0 <= stats["D_acc"] <= 1


def test_d_step_reports_the_mean_sigmoid_of_the_scores():
    gan = small_gan()
    rng = np.random.default_rng(2)
    x, z = rng.uniform(-1, 1, (6, 3)).astype(np.float32), gan.sample_noise(6, rng)
    s_real, s_fake = gan.D(x), gan.D(gan.G(z))  # before the update
    stats = gan.d_step(x, z)
    assert stats["D_x"] == pytest.approx(np.mean(1 / (1 + np.exp(-s_real.astype(float)))), 1e-6)
    assert stats["D_G_z"] == pytest.approx(np.mean(1 / (1 + np.exp(-s_fake.astype(float)))),
                                           1e-6)
    acc = ((s_real > 0).sum() + (s_fake < 0).sum()) / 12
    assert stats["D_acc"] == pytest.approx(acc)


def test_old_names_read_with_a_warning():
    stats = Stats({"D_x": 0.7, "D_G_z": 0.3})
    with pytest.warns(DeprecationWarning, match="'d_x' is now called 'D_x'"):
        assert stats["d_x"] == 0.7
    with pytest.raises(KeyError):
        stats["d_acc"]  # renamed, but not present
    with pytest.raises(KeyError):
        stats["nothing"]


def test_rename_history():
    old = {"step": [1, 2], "d_loss": [1.0, 0.9], "d_x": [0.6, 0.7], "d_g_z": [0.4, 0.3],
           "d_acc": [0.5, 0.6]}
    assert rename_history(old) == {"step": [1, 2], "d_loss": [1.0, 0.9], "D_x": [0.6, 0.7],
                                   "D_G_z": [0.4, 0.3], "D_acc": [0.5, 0.6]}
    assert rename_history({"d_x": [1.0], "D_x": [2.0]}) == {"D_x": [2.0]}
    assert set(RENAMED.values()) >= set(HISTORY_KEYS) - {"d_loss", "g_loss"}


def test_an_old_checkpoints_history_loads_under_the_new_names(tmp_path):
    gan = small_gan()
    old_history = {"step": [1, 2], "d_loss": [1.3, 1.2], "g_loss": [0.7, 0.8],
                   "d_x": [0.55, 0.6], "d_g_z": [0.45, 0.4], "d_acc": [0.5, 0.75]}
    path = save_training_checkpoint(tmp_path / "old.npz", gan, np.random.default_rng(0),
                                    history=old_history)  # as written before the rename
    history = load_training_checkpoint(path)["history"]
    assert history == {"step": [1, 2], "d_loss": [1.3, 1.2], "g_loss": [0.7, 0.8],
                       "D_x": [0.55, 0.6], "D_G_z": [0.45, 0.4], "D_acc": [0.5, 0.75]}
