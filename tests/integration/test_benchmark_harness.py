"""The benchmarks still run against the product.

Not benchmarks (no figure is judged here): ``_ivr_trace.py`` wraps server internals
(``AGISession.__init__`` and ``deliver``, ``FastAGIServer._serve``) to time the engine, and
``agi_bench.py`` serves its script through the typed ``AGISession`` methods and a plugin's
route, so a change to those must not silently break the benchmarks' measurements.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        timeout=600,
        check=False,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout)


def test_the_agi_benchmark_runs_every_call_of_callcore_and_the_bare_server():
    figures = run_benchmark(
        str(ROOT / "benchmarks" / "agi_bench.py"),
        "--quick",
        "--only",
        "callcore/uvloop",
        "bare/uvloop",
    )
    assert figures["ratio_vs_bare"] > 0
    for scenario in ("closed_low", "closed_high", "paced_low", "paced_high"):
        for setup in ("callcore/uvloop", "bare/uvloop"):
            run = figures["scenarios"][scenario]["results"][setup]
            assert run["errors"] == 0 and run["server_log_lines"] == 0, (scenario, setup, run)
            assert run["commands"] > 0, (scenario, setup)
    assert figures["targets"]["paced_high_no_error"] is True


def test_the_ivr_benchmark_runs_and_traces_every_call():
    figures = run_benchmark(
        str(ROOT / "benchmarks" / "ivr_bench.py"), "--quick", "--scenario", "paced"
    )
    assert figures["targets"]["no_call_lost_or_stuck"] is True
    for setup in ("engine", "plain"):
        paced = figures["paced"][setup]
        assert paced["engine_transition_p99_ms_worst"] is not None, setup
        # Per node divides each transition by the nodes it enters: never above per transition.
        assert 0 < paced["engine_node_p99_ms_worst"] <= paced["engine_transition_p99_ms_worst"]
        assert paced["engine_call_ms"]["p50_ms"] > 0, setup
    engine = figures["engine_time_paced"]
    transitions = engine["engine_per_transition"]
    assert "answer > welcome (STREAM FILE)" in transitions
    # Each traced call's three database round trips and its webhook request are timed apart.
    assert engine["webhook_ms"]["requests"] > 0
    assert engine["database_ms"]["queries"] == 3 * engine["webhook_ms"]["requests"]
    assert engine["database_ms"]["p50_ms"] > 0
