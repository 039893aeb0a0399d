"""The IVR benchmark still runs against the product.

Not a benchmark (no figure is judged here): ``_ivr_trace.py`` wraps server internals
(``AGISession.__init__`` and ``deliver``, ``FastAGIServer._serve``) to time the engine, so a
change to those must not silently break the benchmark's measurements.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ivr_benchmark_runs_and_traces_every_call():
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ivr_bench.py"),
            "--quick",
            "--scenario",
            "paced",
        ],
        capture_output=True,
        timeout=600,
        check=False,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures = json.loads(done.stdout)
    assert figures["targets"]["no_call_lost_or_stuck"] is True
    for setup in ("engine", "plain"):
        paced = figures["paced"][setup]
        assert paced["engine_transition_p99_ms_worst"] is not None, setup
        # Per node divides each transition by the nodes it enters: never above per transition.
        assert 0 < paced["engine_node_p99_ms_worst"] <= paced["engine_transition_p99_ms_worst"]
        assert paced["engine_call_ms"]["p50_ms"] > 0, setup
    transitions = figures["engine_time_paced"]["engine_per_transition"]
    assert "answer > welcome (STREAM FILE)" in transitions
