"""The 2014 example: exact resume (dropout masks included) and the generator's pixel range.

``--epochs 2`` must equal ``--epochs 1`` then ``--epochs 2 --resume``, bit for bit, on a small
configuration of the same model (maxout D with dropout, SGD with the momentum schedule, the 2014
simultaneous update and Algorithm 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nanogan.checkpoint import load_checkpoint
from nanogan.layers import Dense, Dropout, Sequential
from nanogan.train import load_training_checkpoint, module_rngs, set_module_rngs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import goodfellow2014_mnist as example

SMALL = ["--steps-per-epoch", "6", "--g-hidden", "16", "--d-units", "8", "--d-pieces", "2",
         "--parzen-every", "0"]


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_n_plus_n_epochs_equals_2n(tmp_path, capsys, update):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [*SMALL, "--update", update]
    assert example.main(["--epochs", "2", "--out", str(a), *common]) == 0
    assert example.main(["--epochs", "1", "--out", str(b), *common]) == 0
    assert example.main(["--epochs", "2", "--resume", "--out", str(b), *common]) == 0
    (xa, ma), (xb, mb) = (load_checkpoint(d / "checkpoint.npz") for d in (a, b))
    assert xa.keys() == xb.keys()
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    assert ma["rng"] == mb["rng"] and ma["module_rngs"] == mb["module_rngs"]
    assert "resuming from update 6 (epoch 1)" in capsys.readouterr().out


def test_resume_would_differ_without_the_dropout_state(tmp_path):
    """The check above can fail: losing the dropout generator changes the continued run."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert example.main(["--epochs", "2", "--out", str(a), *SMALL]) == 0
    assert example.main(["--epochs", "1", "--out", str(b), *SMALL]) == 0
    state = load_training_checkpoint(b / "checkpoint.npz")
    gan, rng = state["gan"], state["rng"]
    assert all(m.rng is rng for m in gan.D.layers if isinstance(m, Dropout))  # one stream
    for m in gan.D.layers:
        if isinstance(m, Dropout):
            m.rng = np.random.default_rng(12345)  # what a resume without the state would do
    x = np.random.default_rng(0).random((100, 784)).astype(np.float32)
    s1 = gan.simultaneous_step(x, gan.sample_noise(100, rng))
    state2 = load_training_checkpoint(b / "checkpoint.npz")
    s2 = state2["gan"].simultaneous_step(x, state2["gan"].sample_noise(100, state2["rng"]))
    assert s1["d_loss"] != s2["d_loss"]


def test_module_rngs_round_trip_keeps_sharing():
    """Layers sharing one generator share it again after loading; a private one keeps its
    state; the training loop's generator is linked, not copied."""
    from nanogan import GAN
    from nanogan.optim import SGD

    main = np.random.default_rng(0)
    private = np.random.default_rng(1)
    G = Sequential(Dense(4, 6, rng=0), Dropout(0.5, rng=private), Dense(6, 4, rng=0))
    D = Sequential(Dropout(0.2, rng=main), Dense(4, 3, rng=0), Dropout(0.5, rng=main),
                   Dense(3, 1, rng=0))
    gan = GAN(G, D, g_opt=SGD(G, lr=0.1), d_opt=SGD(D, lr=0.1), z_shape=(4,))
    private.random(7)
    saved = module_rngs(gan, main)
    assert sorted(e["shared"] for e in saved) == [False, True]

    G2 = Sequential(Dense(4, 6, rng=0), Dropout(0.5), Dense(6, 4, rng=0))
    D2 = Sequential(Dropout(0.2), Dense(4, 3, rng=0), Dropout(0.5), Dense(3, 1, rng=0))
    gan2 = GAN(G2, D2, g_opt=SGD(G2, lr=0.1), d_opt=SGD(D2, lr=0.1), z_shape=(4,))
    main2 = np.random.default_rng(99)
    set_module_rngs(gan2, main2, saved)
    assert D2[0].rng is main2 and D2[2].rng is main2
    assert G2[1].rng is not main2
    np.testing.assert_array_equal(G2[1].rng.random(5), private.random(5))

    bad = [{"modules": ["D.1"], "shared": True, "state": None}]  # a Dense has no generator
    with pytest.raises(ValueError, match=r"D\.1"):
        set_module_rngs(gan2, main2, bad)


def test_resume_takes_the_runs_own_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert example.main(["--epochs", "1", "--out", str(out), *SMALL]) == 0
    other = [a if a != "6" else "3" for a in SMALL]  # --steps-per-epoch 3 on the command line
    assert example.main(["--epochs", "2", "--resume", "--out", str(out), *other]) == 0
    text = capsys.readouterr().out
    assert "--steps-per-epoch 3 ignored: the checkpoint's run uses 6" in text
    assert load_training_checkpoint(out / "checkpoint.npz")["gan"].steps == 12


def test_schedule_defaults_are_the_yaml():
    """lr 0.1 / 1.000004^t (floor 1e-6); momentum 0.5 -> 0.7 linearly over epochs 0..249."""
    assert example.schedule(0) == (0.1, 0.5)
    lr, mu = example.schedule(1000, 500)
    assert lr == pytest.approx(0.1 / 1.000004**1000, rel=1e-15) and mu == pytest.approx(
        0.5 + 0.2 * 2 / 249)
    assert example.schedule(500 * 249, 500)[1] == pytest.approx(0.7)
    assert example.schedule(500 * 400, 500)[1] == pytest.approx(0.7)
    assert example.schedule(10**9)[0] == 1e-6
    lr, mu = example.schedule(1000, 500, lr=0.05, lr_decay=1.00004, final_momentum=0.9,
                              momentum_saturate=11)
    assert lr == pytest.approx(0.05 / 1.00004**1000) and mu == pytest.approx(0.5 + 0.4 * 2 / 10)
    assert example.schedule(500 * 10, 500, final_momentum=0.9, momentum_saturate=11)[1] == (
        pytest.approx(0.9))


def test_lever_flags_change_the_run_and_are_kept_on_resume(tmp_path, capsys):
    """--lr-decay/--final-momentum/dropout keeps reach the optimizers and D, and a resumed run
    keeps its own values over the flags (with a note)."""
    out = tmp_path / "run"
    levers = ["--lr-decay", "1.01", "--final-momentum", "0.9", "--momentum-saturate", "3",
              "--d-input-keep", "1.0", "--d-hidden-keep", "0.8"]
    assert example.main(["--epochs", "1", "--out", str(out), *SMALL, *levers]) == 0
    state = load_training_checkpoint(out / "checkpoint.npz")
    gan = state["gan"]
    assert [m.p for m in gan.D.layers if isinstance(m, Dropout)] == [0.0, 0.2, 0.2]
    assert state["extra"]["schedule"] == {"lr": 0.1, "lr_decay": 1.01, "final_momentum": 0.9,
                                          "momentum_saturate": 3}
    assert gan.d_opt.lr == pytest.approx(0.1 / 1.01**5)  # set before the 6th update
    assert example.main(["--epochs", "3", "--resume", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "--lr-decay 1.000004 ignored: the checkpoint's run uses 1.01" in text
    gan = load_training_checkpoint(out / "checkpoint.npz")["gan"]
    assert gan.d_opt.lr == pytest.approx(0.1 / 1.01**17)
    assert gan.d_opt.momentum == pytest.approx(0.9)  # epoch 2 = saturate - 1


def test_default_levers_equal_the_yaml_run(tmp_path):
    """Passing the yaml's values explicitly is the same run, bit for bit, as the defaults (the
    published run predates the flags)."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert example.main(["--epochs", "1", "--out", str(a), *SMALL]) == 0
    assert example.main(["--epochs", "1", "--out", str(b), *SMALL, "--lr", "0.1", "--lr-decay",
                         "1.000004", "--final-momentum", "0.7", "--d-input-keep", "0.8",
                         "--d-hidden-keep", "0.5"]) == 0
    (xa, _), (xb, _) = (load_checkpoint(d / "checkpoint.npz") for d in (a, b))
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    gan = load_training_checkpoint(a / "checkpoint.npz")["gan"]
    assert [m.p for m in gan.D.layers if isinstance(m, Dropout)] == [0.2, 0.5, 0.5]


def test_sample_writes_minus_one_to_one_for_a_sigmoid_generator(tmp_path):
    """``nanogan sample`` of the 2014 model (sigmoid output in [0, 1]) writes ``2 y - 1``."""
    from nanogan.__main__ import main

    run = tmp_path / "run"
    assert example.main(["--epochs", "1", "--out", str(run), *SMALL]) == 0
    out = tmp_path / "s.npy"
    assert main(["sample", str(run / "checkpoint.npz"), "--n", "300", "--out", str(out),
                 "--seed", "3"]) == 0
    x = np.load(out)
    gan = load_training_checkpoint(run / "checkpoint.npz")["gan"]
    rng = np.random.default_rng(3)
    y = gan.G(gan.sample_noise(300, rng), train=False).reshape(300, 1, 28, 28)
    assert y.min() >= 0 and y.max() <= 1
    np.testing.assert_allclose(x, 2 * y - 1, rtol=0, atol=1e-6)
    assert x.min() < -0.5  # near-black background pixels land near -1, not near 0


def test_parzen_plot_from_csv(tmp_path):
    csv_path = tmp_path / "parzen.csv"
    csv_path.write_text("epoch,updates,seconds,parzen,se,sigma\n10,5000,800,69.2,1.8,0.2154\n"
                        "20,10000,1074,107.7,1.6,0.2154\n")
    png = tmp_path / "parzen.png"
    example.save_parzen_plot(csv_path, png, others={"other run": csv_path})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parzen.csv", "parzen.png"]


def _scripted_parzen(monkeypatch, valids):
    """Replace the (slow) Parzen protocol with scripted validation figures, in call order."""
    import nanogan.metrics as metrics
    from nanogan.metrics.parzen import ParzenResult

    calls = iter(valids)

    def fake(samples):
        v = next(calls)
        return ParzenResult(mean=v + 100, se=1.0, sigma=0.2, n_samples=len(samples),
                            n_test=10, sigmas=[0.1, 0.2], valid_mean_ll=[v - 5, v])
    monkeypatch.setattr(metrics, "mnist_parzen", fake)


def test_patience_goes_on_while_validation_rises_and_keeps_the_best_generator(
        tmp_path, monkeypatch):
    from nanogan.generator_file import load_generator

    _scripted_parzen(monkeypatch, [1.0, 2.0, 1.5, 1.9, 9.0])
    out = tmp_path / "run"
    args = ["--epochs", "2", "--patience", "2", "--out", str(out), *SMALL[:-2],
            "--parzen-every", "1"]
    assert example.main(args) == 0
    rows = (out / "parzen.csv").read_text().splitlines()
    assert rows[0] == ",".join(example.CSV_FIELDS)
    # epoch 2 is best; epochs 3 and 4 fail to beat it; the scripted 9.0 is never reached
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert [r.split(",")[-1] for r in rows[1:]] == ["1.00", "2.00", "1.50", "1.90"]
    state = load_training_checkpoint(out / "checkpoint.npz")
    assert state["gan"].steps == 4 * 6
    assert state["extra"]["best_valid"] == 2.0 and state["extra"]["evals_since_best"] == 2
    g = load_generator(out / "best_G.npz")
    assert g.extra["epoch"] == 2 and g.extra["valid"] == 2.0 and g.extra["parzen"] == 102.0
    # the kept generator is the one of epoch 2: the same run stopped there has the same G
    _scripted_parzen(monkeypatch, [1.0, 2.0])
    assert example.main(["--epochs", "2", "--out", str(tmp_path / "two"), *SMALL[:-2],
                         "--parzen-every", "1"]) == 0
    G2 = load_training_checkpoint(tmp_path / "two" / "checkpoint.npz")["gan"].G
    for k, v in G2.state_dict().items():
        np.testing.assert_array_equal(g.G.state_dict()[k], v.astype(np.float32), err_msg=k)


def test_max_epochs_bounds_patience(tmp_path, monkeypatch):
    _scripted_parzen(monkeypatch, [1.0, 2.0, 3.0, 4.0, 5.0])
    out = tmp_path / "run"
    assert example.main(["--epochs", "1", "--patience", "5", "--max-epochs", "3", "--out",
                         str(out), *SMALL[:-2], "--parzen-every", "1"]) == 0
    assert load_training_checkpoint(out / "checkpoint.npz")["gan"].steps == 3 * 6


def test_old_parzen_csv_gets_the_valid_column(tmp_path):
    path = tmp_path / "parzen.csv"
    path.write_text("epoch,updates,seconds,parzen,se,sigma\n10,5000,800,69.2,1.8,0.2154\n")
    example.append_parzen_row(path, [20, 10000, 900, "70.00", "1.00", "0.2154", "71.00"])
    assert path.read_text().splitlines() == [
        ",".join(example.CSV_FIELDS), "10,5000,800,69.2,1.8,0.2154,",
        "20,10000,900,70.00,1.00,0.2154,71.00"]


def test_generator_file_samples_like_its_training_checkpoint(tmp_path):
    """``sample`` from the published generator file equals ``sample`` from the checkpoint."""
    from nanogan.__main__ import main
    from nanogan.checkpoint import CheckpointError
    from nanogan.generator_file import load_generator, save_generator

    run = tmp_path / "run"
    assert example.main(["--epochs", "1", "--out", str(run), *SMALL]) == 0
    gan = load_training_checkpoint(run / "checkpoint.npz")["gan"]
    save_generator(tmp_path / "G.npz", gan, extra={"note": "x"})
    for src, dst in ((run / "checkpoint.npz", "a.npy"), (tmp_path / "G.npz", "b.npy")):
        assert main(["sample", str(src), "--n", "50", "--out", str(tmp_path / dst),
                     "--seed", "4"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    g = load_generator(tmp_path / "G.npz")
    assert g.extra == {"note": "x"} and g.z_shape == (100,)
    with pytest.raises(CheckpointError, match="not a generator file"):
        load_generator(run / "checkpoint.npz")
    gan.G.params["0.weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        save_generator(tmp_path / "bad.npz", gan)
    assert not (tmp_path / "bad.npz").exists()


# The published result: data/goodfellow2014_G.npz (benchmarks/QUALITY.md, README).
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "goodfellow2014_G.npz"
# what python -m nanogan evaluate data/goodfellow2014_G.npz reports (10,000 samples, seed 0)
SHIPPED_PARZEN = 181.68


def test_shipped_generator_is_the_published_file():
    import hashlib

    want = (SHIPPED.parent / "goodfellow2014_G.sha256").read_text().split()[0]
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == want


def test_shipped_generator_reproduces_its_parzen_row():
    """What ``nanogan evaluate data/goodfellow2014_G.npz`` reports for Parzen, recomputed: the
    same samples (seed 0, 10,000) under the paper's protocol."""
    from nanogan.generator_file import load_generator
    from nanogan.metrics import mnist_parzen
    from nanogan.metrics.evaluate import load_samples

    g = load_generator(SHIPPED)
    assert g.extra["epoch"] == 240 and g.extra["update"] == "simultaneous"
    x, pixel_range = load_samples(SHIPPED, n=10000, seed=0)
    assert pixel_range == (0.0, 1.0)
    res = mnist_parzen(x.reshape(10000, 784))
    assert abs(res.mean - SHIPPED_PARZEN) < 0.05, res  # float32 sums may differ by CPU
    assert 2.0 < res.se < 2.7 and res.sigma == pytest.approx(0.1668, abs=1e-4)
