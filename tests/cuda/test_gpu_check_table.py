"""The table, ratio and JSON code of ``asv_bench/gpu_check.py``, fed fake timings (no GPU needed)."""
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(ROOT, "asv_bench", "gpu_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ratios_and_bandwidth_share(gpu_check):
    row = gpu_check.finish_row({"case": "c", "numbarl_ms": 0.5, "torch_ms": 1.0, "torchrl_ms": 2.0,
                                "bytes": 2_150_000_000}, 4.3e12)
    assert row["torch_x"] == pytest.approx(2.0) and row["torchrl_x"] == pytest.approx(4.0)
    # 2.15 GB in 0.5 ms is 4.3 TB/s: all of the copy bandwidth
    assert row["pct_copy_bw"] == pytest.approx(100.0) and row["MB"] == pytest.approx(2150.0)
    assert row["error"] is None and "bytes" not in row


def test_missing_timings_leave_empty_cells(gpu_check):
    row = gpu_check.finish_row({"case": "c", "error": "torchrl: ImportError: x"}, None)
    assert row["torch_x"] is None and row["pct_copy_bw"] is None
    text = gpu_check.format_table([row])
    assert text.splitlines()[-1] == "| c | - | - | - | - | - | - | - | torchrl: ImportError: x |"


def test_dry_run_prints_one_table_and_writes_json(gpu_check, tmp_path, capsys):
    path = tmp_path / "table.json"
    assert gpu_check.main(["--dry-run", "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    rows = json.loads(path.read_text())["rows"]
    assert len(table) == 2 + len(rows)
    assert all(ln.count("|") == len(gpu_check.COLUMNS) + 1 for ln in table)  # a pipe in an error is escaped
    assert any(r["error"] for r in rows) and any(r["pct_copy_bw"] for r in rows)


def test_measure_records_errors_and_keeps_going(gpu_check):
    row = {}
    gpu_check.measure(row, "torchrl_ms", lambda fn: fn(), lambda: 1 / 0)
    gpu_check.measure(row, "numbarl_ms", lambda fn: 1.5, lambda: (lambda: None))
    assert row["numbarl_ms"] == 1.5 and "torchrl_ms" not in row
    assert row["error"].startswith("torchrl: ZeroDivisionError")


def test_pytest_summary_is_parsed(gpu_check):
    text = "....F\n=== 1 failed, 21 passed, 2 skipped, 3 warnings in 12.3s ===\n"
    assert gpu_check.parse_pytest_summary(text) == {"failed": 1, "passed": 21, "skipped": 2, "warnings": 3}
    assert gpu_check.parse_pytest_summary("1 error in 0.1s") == {"errors": 1}


def test_every_raw_kernel_case_runs_small_under_the_simulator(gpu_check):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("the raw-kernel cases need a GPU or the CUDA simulator")
    torch = pytest.importorskip("torch")
    from numba import cuda

    cases = gpu_check.kernel_cases(torch, dev="cpu", to_device=lambda t: cuda.to_device(t.numpy()), stream=0,
                                   sizes=dict(BATCH=2, H=7, W=6, OUT=3, VEC_SHAPE=(5, 3), RTG_SHAPE=(3, 9, 1)))
    assert len(cases) == 8
    for name, n_bytes, fn in cases:
        assert n_bytes > 0, name
        fn()
        fn()
