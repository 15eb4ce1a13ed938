"""Every flag of every example and ``nanogan`` subcommand is checked before any work starts: a bad
value ends with argparse's one line naming the flag and what is allowed, exit status 2, and
nothing written (the examples' and CLI's own tests cover the rest of each command)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from nanogan.__main__ import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"flags_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# (example, argv, the flag named in the error)
EXAMPLE_CASES = [
    ("dcgan_mnist", ["--steps", "0"], "--steps"),
    ("dcgan_mnist", ["--batch-size", "-3"], "--batch-size"),
    ("dcgan_mnist", ["--lr", "nan"], "--lr"),
    ("cgan_mnist", ["--k", "0"], "--k"),
    ("cgan_mnist", ["--seed", "-1"], "--seed"),
    ("wgan_mnist", ["--lr", "-5e-5"], "--lr"),
    ("wgan_mnist", ["--sample-every", "-1"], "--sample-every"),
    ("wgan_gp_mnist", ["--penalty-weight", "inf"], "--penalty-weight"),
    ("wgan_gp_mnist", ["--checkpoint-every", "x"], "--checkpoint-every"),
    ("latent_walk", ["/nonexistent/checkpoint.npz"], "checkpoint"),
    ("toy_1d", ["--mu", "nan"], "--mu"),
    ("ring_2d", ["--jobs", "0"], "--jobs"),
    ("ring_2d", ["--lr", "0"], "--lr"),
    ("anatomy_of_a_step", ["--batch-size", "0"], "--batch-size"),
    ("make_shapes", ["{tmp}/shapes", "--n", "0"], "--n"),
    ("goodfellow2014_mnist", ["--epochs", "0"], "--epochs"),
    ("vanilla_mnist", ["--hidden", "0"], "--hidden"),
    ("gmn_mnist", ["--steps", "-1"], "--steps"),
    ("ebgan_mnist", ["--lr", "nan"], "--lr"),
    ("dann_mnist", ["--batch-size", "0"], "--batch-size"),
]


@pytest.mark.parametrize(("name", "argv", "flag"), EXAMPLE_CASES,
                         ids=[f"{n}{' '.join(a)}" for n, a, _ in EXAMPLE_CASES])
def test_example_flag_is_checked_first(name, argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(tmp=tmp_path) for a in argv]
    mod = _example(name)
    with pytest.raises(SystemExit) as exc:
        mod.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert f"argument {flag}" in err[-1] and "error:" in err[-1], err
    assert list(tmp_path.iterdir()) == []  # nothing written


CLI_CASES = [
    (["train", "vanilla", "--steps", "0"], "--steps"),
    (["train", "vanilla", "--lr", "nan"], "--lr"),
    (["train", "dcgan", "--beta1", "2"], "--beta1"),
    (["train", "vanilla", "--k", "0"], "--k"),
    (["train", "vanilla", "--keep", "0"], "--keep"),
    (["train", "vanilla", "--width", "-4"], "--width"),
    (["bench", "vanilla", "--steps", "0"], "--steps"),
]


@pytest.mark.parametrize(("argv", "flag"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_flag_is_checked_first(argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert f"argument {flag}" in err[-1], err
    assert list(tmp_path.iterdir()) == []


def test_config_file_values_are_range_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "run.toml"
    cfg.write_text("steps = 0\n")
    rc = cli_main(["train", "vanilla", "--config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    # a config file's error ends like its other errors (unknown key, bad TOML): one line, exit 1
    assert rc == 1 and "'steps' must be an integer >= 1, got 0" in err[-1], (rc, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]
