"""Checks of the A/B harness: the order of the sides, the summary, one real pair of processes."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ab  # noqa: E402


def _run(side: str, ms: float, rnd: int, config: str = "mlp64", threads: int = 1) -> dict:
    return {"side": side, "median_ms": ms, "round": rnd, "config": config, "threads": threads}


def test_the_sides_take_turns_going_first():
    assert [ab.order(r)[0] for r in range(4)] == ["A", "B", "A", "B"]
    assert all(sorted(ab.order(r)) == ["A", "B"] for r in range(4))


def test_summary_is_the_median_of_the_ratios_per_round():
    runs = [_run("A", 10, 0), _run("B", 9, 0), _run("A", 20, 1), _run("B", 22, 1),
            _run("A", 10, 2), _run("B", 10, 2), _run("A", 5, 3)]  # round 3 lacks B: left out
    (row,) = ab.summarise(runs)
    assert row["rounds"] == 3 and row["ratios"] == pytest.approx([0.9, 1.1, 1.0])
    assert row["ratio"] == pytest.approx(1.0)
    assert (row["min_ratio"], row["max_ratio"]) == pytest.approx((0.9, 1.1))
    assert (row["a_ms"], row["b_ms"]) == (10, 10)
    assert "1.000 (0.900-1.100)" in ab.format_rows([row])


def test_one_round_against_this_checkout_itself(capsys):
    """The harness runs on a checkout against itself: one process per side, a ratio printed."""
    root = os.path.dirname(HERE)
    assert ab.main([root, "--configs", "mlp64", "--threads", "1", "--rounds", "1",
                    "--iters", "2", "--warmup", "1", "--seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "B/A" in out and "| 1 | mlp64 |" in out


def test_bad_arguments_are_argparse_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ab.main([str(tmp_path)])
    assert exc.value.code == 2 and "is not a checkout of nanogan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        ab.main([os.path.dirname(HERE), "--rounds", "0"])
    assert exc.value.code == 2 and "--rounds must be >= 1" in capsys.readouterr().err
