"""Odd inputs and odd timing: each ends in a clear outcome, never a hang or a retry storm."""

import subprocess
import sys
import time

from conftest import history_records, lf, lf_json, write_flow


def test_output_json_cannot_store_fails_the_attempt_once(home):
    write_flow(home, "Nan", 'flow Nan\n  step x:\n    run ["python3", "-c", "print(\'{\\"v\\": NaN}\')"]\n')
    done = lf(home, "run", "Nan", "--id", "nan", timeout=30)
    assert done.returncode == 1 and "stdout holds NaN" in done.stdout
    assert sum(r["type"] == "ActivityScheduled" for r in history_records(home, "nan")) == 1


def test_a_nul_byte_in_argv_is_a_spawn_failure_not_a_loop(home):
    write_flow(home, "Nul", 'flow Nul\n  input s = "x"\n  step x:\n    run ["echo", s]\n')
    done = lf(home, "run", "Nul", "--id", "nul", "--input", '{"s": "a\\u0000b"}', timeout=30)
    assert done.returncode == 1 and "could not start" in done.stdout
    assert sum(r["type"] == "ActivityScheduled" for r in history_records(home, "nul")) == 1


def test_a_child_abandoned_before_it_starts_does_not_block_the_failure(home):
    write_flow(home, "Kid", 'flow Kid\n  return 1\n')
    write_flow(home, "Abandon", 'flow Abandon\n  parallel:\n    branch:\n      step ship:\n        flow Kid\n'
                                '    branch:\n      set x = 1\n      fail "stop"\n')
    done = lf(home, "run", "Abandon", "--id", "ab", timeout=30)
    assert done.returncode == 1 and "stop" in done.stdout
    assert lf_json(home, "inspect", "ab")["status"] == "failed"


def test_two_lf_runs_at_once_both_finish(home):
    write_flow(home, "Slow", 'flow Slow\n  sleep 2s\n  return "slow"\n')
    write_flow(home, "Quick", 'flow Quick\n  step q:\n    run ["echo", "quick"]\n  return q.result\n')
    first = subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "run", "Slow", "--id", "s"],
                             cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (home / "var/supervisor.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = lf(home, "run", "Quick", "--id", "q", timeout=60)
    finally:
        out, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0
    assert "waiting: lf run s" in second.stdout and "quick" in second.stdout
