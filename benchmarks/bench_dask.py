"""Issue 15's figures: activities on a loopback Dask cluster, each beside a baseline from the same run.

Run: ``python benchmarks/bench_dask.py`` (about a minute; needs the ``dask`` extra).
``--n 200 --seconds 0.2 --slots 8`` are the defaults.

- D1 fan-out: one workflow ``for i in range(N) parallel N: call fns.nap(seconds)`` under a
  real ``lf supervise``, wall time from ``lf start`` to ``WorkflowCompleted`` in its history:
  (a) the local pool with ``--workers SLOTS``, (b) ``--executor dask`` on a cluster of 2
  worker processes with SLOTS/2 threads each (same number of slots), and (c) the same N
  sleeps as bare ``client.submit`` calls on that cluster (no LocalFlow at all). The ideal is
  N*seconds/SLOTS; what is above it is overhead, spread over SLOTS slots.
- D2 per activity, one at a time: a no-op call through ``DaskRunner.start(spec).wait()``
  (open the logs, submit, the task's claim, the worker's pool, the result and the logs back)
  vs a bare ``client.submit(noop).result()``. The executor's two durable appends per attempt
  (ActivityStarted with the worker, then the outcome) are in D1, not here.

The machine's 2 cores are shared by the scheduler, the workers, the supervisor and the
worker pools: sleeping tasks show overhead where CPU-bound ones would only show contention.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localflow.runner.subprocess_runner import AttemptSpec  # noqa: E402

FNS = "import time\n\ndef nap(i, seconds):\n    time.sleep(seconds)\n    return i\n\ndef noop():\n    return None\n"


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _noop() -> None:
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dask_bin() -> str:
    return shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"


class Cluster:
    def __init__(self, tmp: Path, threads: int) -> None:
        from distributed import Client

        self.address = f"tcp://127.0.0.1:{free_port()}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = open(tmp / "cluster.log", "w")
        self.processes = [subprocess.Popen([dask_bin(), "scheduler", "--host", "127.0.0.1", "--port",
                                            self.address.rsplit(":", 1)[1], "--no-dashboard"],
                                           stdout=out, stderr=subprocess.STDOUT, env=env)]
        for _ in range(2):
            self.processes.append(subprocess.Popen(
                [dask_bin(), "worker", self.address, "--nworkers", "1", "--nthreads", str(threads), "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT, env=env))
        self.client = Client(self.address, timeout=30, set_as_default=False)
        self.client.wait_for_workers(2, timeout=60)

    def close(self) -> None:
        self.client.close()
        for process in self.processes:
            process.kill()
            process.wait()


def make_home(tmp: Path, name: str, n: int) -> Path:
    home = tmp / name
    (home / "flows").mkdir(parents=True)
    (home / "flows" / "fns.py").write_text(FNS)
    (home / "flows" / "Fan.flow").write_text(
        f"flow Fan\n  input seconds = 0.2\n  for i in range({n}) parallel {n}:\n    step nap:\n"
        f"      call fns.nap(i=i, seconds=seconds)\n  return \"ok\"\n")
    return home


def lf(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), *args], capture_output=True,
                          text=True, cwd=home, check=True)


def d1_supervised(tmp: Path, name: str, n: int, seconds: float, *flags: str) -> float:
    """Wall time of one fan-out workflow under a real supervisor started with ``flags``."""
    home = make_home(tmp, name, n)
    log = open(tmp / f"{name}.log", "w")
    sup = subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "supervise", *flags],
                           stdout=log, stderr=subprocess.STDOUT, cwd=home)
    try:
        while "supervising" not in (tmp / f"{name}.log").read_text():
            time.sleep(0.05)
        time.sleep(2.0)  # the pool's workers (or the cluster connection) are up, as in a running service
        t0 = time.perf_counter()
        wf = lf(home, "start", "Fan", "-i", f"seconds={seconds}").stdout.strip()
        history = home / "var" / "workflows" / wf / "history.jsonl"
        while b'"WorkflowCompleted"' not in history.read_bytes():
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        sup.terminate()
        sup.wait()


def d1_bare(cluster: Cluster, n: int, seconds: float) -> float:
    t0 = time.perf_counter()
    futures = [cluster.client.submit(_sleep, seconds, pure=False) for _ in range(n)]
    cluster.client.gather(futures)
    return time.perf_counter() - t0


def d2_per_activity(tmp: Path, cluster: Cluster, count: int) -> dict:
    from localflow.runner.dask_runner import DaskRunner

    home = make_home(tmp, "d2", 1)
    logs = home / "var" / "workflows" / "w" / "logs"
    logs.mkdir(parents=True)
    runner = DaskRunner(home, cluster.address)
    try:
        def one(i: int) -> None:
            spec = AttemptSpec("w", f"s{i}", 1, [], {}, 10_000, home, logs / f"s{i}.in", logs / f"s{i}.out",
                               logs / f"s{i}.err", call={"target": "fns:noop", "kwargs": {}})
            outcome = runner.start(spec).wait()
            assert outcome.ok, outcome.error

        for i in range(6):  # both workers' pools up, the modules imported
            one(i)
        remote = []
        for i in range(count):
            t0 = time.perf_counter()
            one(100 + i)
            remote.append(time.perf_counter() - t0)
        bare = []
        for _ in range(count):
            t0 = time.perf_counter()
            cluster.client.submit(_noop, pure=False).result()
            bare.append(time.perf_counter() - t0)
    finally:
        runner.close()
    return {"remote_ms": statistics.median(remote) * 1000, "bare_ms": statistics.median(bare) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--slots", type=int, default=8, help="local pool workers = cluster threads (2 workers)")
    parser.add_argument("--calls", type=int, default=40, help="D2: activities one at a time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lf-bench-dask-"))
    cluster = Cluster(tmp, max(1, args.slots // 2))
    try:
        ideal = args.n * args.seconds / args.slots
        local = d1_supervised(tmp, "local", args.n, args.seconds, "--workers", str(args.slots))
        remote = d1_supervised(tmp, "dask", args.n, args.seconds, "--executor", "dask", "--scheduler",
                               cluster.address)
        bare = d1_bare(cluster, args.n, args.seconds)
        d2 = d2_per_activity(tmp, cluster, args.calls)
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"n": args.n, "seconds": args.seconds, "slots": args.slots, "ideal_s": ideal,
               "local_pool_s": local, "dask_supervised_s": remote, "dask_bare_submit_s": bare,
               "overhead_per_remote_activity_ms": (remote - bare) * args.slots / args.n * 1000,
               "overhead_per_local_activity_ms": (local - ideal) * args.slots / args.n * 1000,
               "d2_remote_attempt_ms": d2["remote_ms"], "d2_bare_submit_ms": d2["bare_ms"]}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"D1 fan-out of {args.n} calls sleeping {args.seconds * 1000:g} ms, {args.slots} slots "
          f"(ideal {ideal:.2f} s)")
    print(f"  local pool (--workers {args.slots})            {local:6.2f} s")
    print(f"  dask, 2 workers x {args.slots // 2} threads (supervised)  {remote:6.2f} s")
    print(f"  dask, bare client.submit, same cluster    {bare:6.2f} s")
    print(f"  overhead per remote activity vs bare submit: {figures['overhead_per_remote_activity_ms']:.1f} ms "
          f"(slot time); local vs ideal: {figures['overhead_per_local_activity_ms']:.1f} ms")
    print(f"D2 one no-op at a time (median of {args.calls}): DaskRunner attempt {d2['remote_ms']:.1f} ms, "
          f"bare client.submit {d2['bare_ms']:.1f} ms, difference {d2['remote_ms'] - d2['bare_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
