"""A redis-py connection pool (several threads, no retries, every socket counted) writing and
reading back unique keys on one node for the whole rolling upgrade; on the stop file it stops,
reads back every key it wrote and prints its figures as JSON.

Runs on the node: PYTHONPATH holds redis-py (copied from the controller) and the controller's
molecule/shared/ironcache_checks.py, whose PoolLoad, strict_pool, warm_pool and missing_keys this
uses. Bounded by --seconds and --max-ops.
"""

import argparse
import json
import os
import time

import ironcache_checks as ic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--max-ops", type=int, default=2000000)
    ap.add_argument("--pause", type=float, default=0.005)
    # A read that waits this long counts as an error: a safety net against a hung server, not a
    # latency limit (a loaded 2-core machine stalled every node for 56 s at once).
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--until-file", required=True)
    args = ap.parse_args()

    pool = ic.strict_pool(args.port, args.threads, timeout=args.timeout)
    ic.warm_pool(pool, args.threads)
    opened = pool.connection_class.opened
    warm = len(opened)
    load = ic.PoolLoad(pool, args.threads, prefix="upg:pool", max_ops=args.max_ops,
                       max_seconds=args.seconds, pause=args.pause)
    load.start()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not os.path.exists(args.until_file):
        time.sleep(0.1)
    stopped_by_file = os.path.exists(args.until_file)
    load.stop()
    reopened = len(opened) - warm
    wrong = ic.missing_keys(args.port, load.written)
    figures = load.figures()
    figures.update({
        "stopped_by_file": stopped_by_file, "sockets_warm": warm, "sockets_reopened": reopened,
        "keys_checked": len(load.written), "keys_wrong": len(wrong),
        "wrong_examples": dict(list(sorted(wrong.items()))[:10]),
        "first_errors": [what for _, what in load.errors[:5]],
    })
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
