"""Helpers shared by the benchmarks in bench/: standard library only, each module on its own.

    common      the repository root, BenchError, log(), ratio(), geomean()
    resp        a minimal RESP2 client (PING, INFO, loading keys)
    servers     a server process: start, wait for PING, check, measure, stop (bounded waits)
    cpu         CPU accounting: other processes' load, a server's CPU time, load average
    redisbench  redis-benchmark: run it, read its CSV, check what it did
    memory      used_memory and RSS of a server loaded with keys
    profiling   py-spy and cProfile summaries
    samples     a tight-loop client's samples: blackout around a restart, kill to first reply
    lifecycle   signals unwind to the script's cleanup, which runs shielded from them
    tlscerts    a self-signed certificate and the tls-* options of both servers

A script in bench/ imports them as `from benchlib.resp import Resp` (its directory is first
on sys.path when run as `python3 bench/SCRIPT.py`).
"""
