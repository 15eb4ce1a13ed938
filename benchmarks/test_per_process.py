"""Checks of the per-process harness: the summary statistics and one real worker process."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import per_process  # noqa: E402


def _run(fw: str, ms: float, rnd: int, config: str = "mlp64", threads: int = 1) -> dict:
    return {"framework": fw, "config": config, "threads": threads, "median_ms": ms,
            "peak_mb": 100.0 + ms, "round": rnd}


def test_summary_is_median_of_round_medians_and_ratio_to_fastest_peer():
    runs = [_run("nanogan", 10, 0), _run("nanogan", 30, 1), _run("nanogan", 12, 2),
            _run("torch", 20, 0), _run("torch", 22, 1), _run("torch", 21, 2),
            _run("jax", 8, 0), _run("jax", 9, 1), _run("jax", 50, 2)]
    (row,) = per_process.summarise(runs)
    assert row["nanogan"] == {"ms": 12, "min_ms": 10, "max_ms": 30, "rounds": 3,
                              "peak_mb": 130.0}
    assert row["fastest_peer"] == "jax" and row["jax"]["ms"] == 9
    assert row["ratio_to_fastest_peer"] == pytest.approx(12 / 9)
    assert row["ratio_to_torch"] == pytest.approx(12 / 21)
    assert row["paired_ratios"] == pytest.approx([10 / 8, 30 / 9, 12 / 50])
    assert row["paired_ratio"] == pytest.approx(10 / 8)
    table = per_process.format_rows([row])
    assert "1.33 (jax)" in table and "12.0 (10.0-30.0)" in table
    assert row["paired_peer"] == "jax" and row["rounds_at_target"] == 1
    assert "1.25 (0.24-3.33) vs JAX, 1 of 3 at <= 1.0" in table


def test_same_round_ratios_skip_rounds_where_one_side_is_missing():
    runs = [_run("nanogan", 10, 0), _run("torch", 20, 0), _run("nanogan", 11, 1),
            _run("torch", 40, 2), _run("nanogan", 8, 2), _run("nanogan", 9, 0, threads=2),
            _run("torch", 9, 0, threads=2)]
    assert per_process.paired_ratios(runs, 1, "mlp64", "nanogan", "torch") == pytest.approx(
        [0.5, 0.2])
    rows = per_process.summarise(runs)
    row2 = next(r for r in rows if r["threads"] == 2)
    assert row2["paired_ratios"] == [1.0] and "1.00 (1.00-1.00) vs PyTorch, 1 of 1 at <= 1.0" in (
        per_process.format_rows([row2]))


def test_dcgan_rounds_count_against_the_08_target_of_pytorch():
    runs = [_run("nanogan", 7.5, 0, "dcgan64"), _run("torch", 10, 0, "dcgan64"),
            _run("nanogan", 8.5, 1, "dcgan64"), _run("torch", 10, 1, "dcgan64"),
            _run("jax", 9, 0, "dcgan64"), _run("jax", 9, 1, "dcgan64")]
    (row,) = per_process.summarise(runs)
    assert row["fastest_peer"] == "jax"  # the headline ratio is to the fastest peer ...
    assert row["paired_peer"] == "torch" and row["target"] == 0.8  # ... the target's to PyTorch
    assert row["paired_ratios"] == pytest.approx([0.75, 0.85]) and row["rounds_at_target"] == 1


def test_worker_process_reports_a_timing_with_only_thread_variables_set():
    res = per_process.run_process("nanogan", "mlp64", 1, iters=2, warmup=1)
    assert res["framework"] == "nanogan" and len(res["times_ms"]) == 2
    assert res["median_ms"] > 0 and res["peak_mb"] >= res["above_import_mb"] > 0


def test_a_short_iteration_is_timed_for_at_least_the_seconds_asked():
    """Every framework's process keeps timing past ``iters`` until ``seconds`` have passed (an
    MLP iteration of a few milliseconds: hundreds of them, not ten)."""
    res = per_process.run_process("nanogan", "mlp64", 1, iters=2, warmup=1, seconds=0.2)
    assert len(res["times_ms"]) > 2 and sum(res["times_ms"]) >= 200


def test_bad_flags_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        per_process.main(["--rounds", "0"])
    assert exc.value.code == 2 and "--rounds must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        per_process.main(["--seconds", "-1"])
    assert exc.value.code == 2 and "--seconds must be >= 0" in capsys.readouterr().err


def test_below_the_core_count_a_process_is_pinned_and_reports_its_cores():
    allowed = sorted(os.sched_getaffinity(0))
    assert per_process.pin_cores(len(allowed)) is None
    if len(allowed) < 2:
        pytest.skip("one core: nothing to pin")
    assert per_process.pin_cores(1) == {allowed[0]}
    res = per_process.run_process("nanogan", "mlp64", 1, iters=5, warmup=1)
    assert res["pinned_cores"] == [allowed[0]]
    assert 0 < res["cores_used"] <= 1.05  # CPU time over wall time: one core at most


def test_summary_carries_the_cores_used():
    runs = [{**_run("nanogan", 10, r), "cores_used": c} for r, c in enumerate((0.9, 1.0, 0.95))]
    (row,) = per_process.summarise(runs)
    assert row["nanogan"]["cores_used"] == pytest.approx(0.95)


def test_unconfigured_variants_run_and_their_table_compares_the_pool():
    """The unconfigured fused plan with and without nanogan's memory pool: each in its own
    process, reporting page faults per iteration; where the process without the pool faults
    (glibc handing the temporaries' pages back), the one with it faults less."""
    on = per_process.run_process("nanogan-unconfigured", "dcgan64", 1, iters=2, warmup=2)
    off = per_process.run_process("nanogan-unconfigured-nopool", "dcgan64", 1, iters=2,
                                  warmup=2)
    assert on["median_ms"] > 0 and off["median_ms"] > 0
    if off["page_faults_per_iter"] > 1000:
        assert on["page_faults_per_iter"] < off["page_faults_per_iter"] / 10
    runs = []
    for r, (a, b) in enumerate([(10.0, 20.0), (12.0, 16.0), (11.0, 30.0)]):
        runs.append({**_run("nanogan-unconfigured", a, r), "page_faults_per_iter": 0.0})
        runs.append({**_run("nanogan-unconfigured-nopool", b, r),
                     "page_faults_per_iter": 3000.0})
    (row,) = per_process.summarise(runs)
    assert row["pool_over_nopool"] == pytest.approx(11 / 20)
    table = per_process.format_rows([row])
    assert "| 1 | mlp64 | 11.0 (10.0-12.0) | 0 | 20.0 (16.0-30.0) | 3,000 | 0.55 |" in table


def test_torch_reuse_is_a_second_table_not_a_peer():
    runs = [_run("nanogan", 8, 0, "dcgan64"), _run("torch", 10, 0, "dcgan64"),
            _run("torch-reuse", 9, 0, "dcgan64")]
    runs[1]["page_faults_per_iter"], runs[2]["page_faults_per_iter"] = 7000.0, 3.0
    (row,) = per_process.summarise(runs)
    assert row["fastest_peer"] == "torch" and row["ratio_to_fastest_peer"] == pytest.approx(0.8)
    assert row["ratio_to_torch_reuse"] == pytest.approx(8 / 9)
    table = per_process.format_rows([row])
    assert ("| 1 | dcgan64 | 10.0 (10.0-10.0) | 7,000 | 9.0 (9.0-9.0) | 3 | 0.89 | "
            "0.89 (0.89-0.89) |") in table


def test_torch_reuse_process_gets_glibc_variables_and_nothing_else_changes(monkeypatch):
    seen = {}

    class Done:
        returncode, stdout, stderr = 0, '{"median_ms": 1.0}', ""

    def fake_run(cmd, env, **kw):
        seen.update(env)
        return Done()

    monkeypatch.setattr(per_process.subprocess, "run", fake_run)
    per_process.run_process("torch-reuse", "dcgan64", 1, 1, 0)
    assert seen["MALLOC_MMAP_THRESHOLD_"] == str(1 << 30)
    assert seen["MALLOC_TRIM_THRESHOLD_"] == str(2**31 - 1)
    seen.clear()
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    per_process.run_process("torch", "dcgan64", 1, 1, 0)
    assert "MALLOC_MMAP_THRESHOLD_" not in seen


def test_torch_reuse_is_available_where_torch_is():
    assert per_process.available("torch-reuse") == per_process.available("torch")
