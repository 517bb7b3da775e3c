"""Big datasets and heavy pipelines do not stall other clients (issue 12), checked with
counters rather than clocks."""

from __future__ import annotations

import socket
from typing import Any

from support import encode_command, ironcache_only, poll


def mset(first: int, n: int) -> bytes:
    args: list[str] = ["MSET"]
    for i in range(first, first + n):
        args += [f"k{i}", "v"]
    return encode_command(*args)


@ironcache_only
def test_the_dataset_leaves_the_cyclic_gc_full_passes(make_server: Any) -> None:
    """A full pass of the cyclic GC walks every tracked object (300 ms per million keys) and
    finds nothing in the dataset: the server freezes what survives the young collections."""
    srv = make_server()
    r = srv.client()
    frozen = int(r.info("memory")["gc_frozen_objects"])
    p = r.pipeline(transaction=False)
    for i in range(0, 50_000, 1000):
        p.mset({f"k{j}": "v" for j in range(i, i + 1000)})
    p.execute()
    # about once a second
    poll(lambda: int(r.info("memory")["gc_frozen_objects"]) > frozen + 50_000, timeout=30,
         what="the keys' entries frozen")
    r.flushall()  # frozen objects are still freed by reference counting
    poll(lambda: int(r.info("memory")["gc_frozen_objects"]) < frozen + 50_000, timeout=30,
         what="the frozen entries freed")


@ironcache_only
def test_a_heavy_pipeline_lets_other_clients_in(make_server: Any) -> None:
    """200 MSETs of 1000 keys sent at once: another client's PING is answered before the last
    of them has run (the batch ends after 10 ms and the rest waits a loop turn)."""
    srv = make_server()
    r = srv.client()
    heavy = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    try:
        for unused_try in range(3):
            r.flushall()
            payload = b"".join(mset(i, 1000) for i in range(0, 200_000, 1000))
            heavy.sendall(payload)
            assert r.ping()
            seen = r.dbsize()
            got = b""
            while got.count(b"+OK\r\n") < 200:
                chunk = heavy.recv(65536)
                assert chunk
                got += chunk
            if seen < 200_000:
                return
        raise AssertionError("the PING was answered only after the whole pipeline")
    finally:
        heavy.close()
