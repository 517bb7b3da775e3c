"""The state format, the crash journal's replay and the disk snapshot.

The handover through systemd's fd store itself runs under real systemd in
molecule/handover; these tests cover what can be checked without it: the format (round
trip, versions, corruption), journal replay at the time each write first ran, a parser's
unparsed input, and the disk snapshot through a real server process.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import IS_REDIS

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache's own state format and handover")

from ironcache import handover, state  # noqa: E402
from ironcache.config import Config  # noqa: E402
from ironcache.keyspace import Keyspace, now_ms  # noqa: E402
from ironcache.protocol import RespParser, make_parser  # noqa: E402
from ironcache.server import Server as IronServer  # noqa: E402
from ironcache.zset import ZSet  # noqa: E402


def sample_keyspace() -> Keyspace:
    ks = Keyspace(4)
    db0, db2 = ks.dbs[0], ks.dbs[2]
    db0.set(b"s", b"value")
    db0.set(b"empty", b"")
    db0.set(b"bin", bytes(range(256)))
    db0.set(b"h", {b"f1": b"v1", b"f2": b""})
    db0.set(b"l", deque([b"a", b"b", b"a"]))
    db0.set(b"set", {b"x", b"y"})
    db0.set(b"z", ZSet.from_pairs([(b"a", 1.5), (b"b", -float("inf")), (b"c", 1.5)]))
    db0.set_expire(b"s", now_ms() + 60_000)
    db2.set(b"other", b"db2")
    return ks


def _comparable(v: object) -> object:
    return (list(v), v.scores) if isinstance(v, ZSet) else v


def contents(ks: Keyspace) -> list[tuple[dict[bytes, object], dict[bytes, int]]]:
    return [({k: _comparable(e.value) for k, e in db.data.items()}, dict(db.expires))
            for db in ks.dbs]


def test_round_trip_keeps_every_type_database_and_expiry() -> None:
    ks = sample_keyspace()
    blob = state.encode({"kind": "disk"}, ks, [{"id": 7, "db": 2}])
    body, end = state.decode(blob, "test")
    assert end == len(blob)
    assert body["meta"]["kind"] == "disk"
    assert body["clients"] == [{"id": 7, "db": 2}]
    loaded = Keyspace(4)
    assert state.load_dataset(loaded, body["dbs"]) == 8
    assert contents(loaded) == contents(ks)
    assert type(loaded.dbs[0].data[b"l"].value) is deque
    z = loaded.dbs[0].data[b"z"].value
    assert type(z) is ZSet and z.rank(b"c") == 2 and z.scores[b"b"] == -float("inf")
    assert loaded.used == ks.used  # memory accounting is rebuilt exactly


def test_values_edited_in_place_round_trip_as_strings() -> None:
    """SETBIT/BITFIELD/PFADD keep a string as a bytearray: it is written as bytes, read
    back as bytes, and accounted the same."""
    ks = Keyspace(1)
    ks.dbs[0].set(b"bits", bytearray(b"\x01\x80"))
    ks.dbs[0].set(b"hll", bytearray(b"HYLL\x01" + bytes(10) + b"\x80\x7f\xff"))
    body, unused_end = state.decode(state.encode({}, ks, []), "test")
    loaded = Keyspace(1)
    assert state.load_dataset(loaded, body["dbs"]) == 2
    assert loaded.dbs[0].data[b"bits"].value == b"\x01\x80"
    assert type(loaded.dbs[0].data[b"hll"].value) is bytes
    assert loaded.used == ks.used


def test_bitmaps_and_hlls_survive_the_disk_snapshot(make_server) -> None:
    srv = make_server({"save-on-shutdown": "yes"})
    r = srv.client(decode_responses=False)
    r.setbit("bits", 100, 1)
    r.pfadd("hll", *[f"e{i}" for i in range(500)])
    count, bits, hll = r.pfcount("hll"), r.get("bits"), r.get("hll")
    assert srv.stop() == 0
    srv.start()
    r = srv.client(decode_responses=False)
    assert r.get("bits") == bits and r.get("hll") == hll
    assert r.pfcount("hll") == count
    assert r.setbit("bits", 100, 0) == 1 and r.bitcount("bits") == 0
    assert r.pfadd("hll", "new-one") == 1


def test_another_format_is_refused_with_both_versions_named() -> None:
    blob = bytearray(state.encode({}, sample_keyspace(), []))
    blob[16:18] = (state.FORMAT + 1).to_bytes(2, "little")
    with pytest.raises(state.StateError) as e:
        state.decode(bytes(blob), "state-3")
    msg = str(e.value)
    assert msg.startswith(f"state-3: state format 2.{state.MINOR} cannot be read")
    assert f"reads format {state.FORMAT}.x" in msg


def test_a_newer_minor_with_unknown_fields_is_read() -> None:
    """What the next release adds (a minor bump, new keys) does not stop this one."""
    import marshal
    import zlib

    blob = state.encode({}, sample_keyspace(), [{"id": 1, "db": 0, "future": b"x"}])
    body = marshal.loads(blob[state.HEADER.size :])
    body["future_section"] = {"anything": [1, 2, 3]}
    raw = marshal.dumps(body, state.MARSHAL_VERSION)
    header = state.HEADER.pack(
        state.MAGIC, state.FORMAT, state.MINOR + 1, 0, len(raw), zlib.crc32(raw)
    )
    decoded, dummy = state.decode(header + raw, "next")
    ks = Keyspace(4)
    assert state.load_dataset(ks, decoded["dbs"]) == 8


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[:10], "shorter than the"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b[:-3] + bytes([b[-3] ^ 0xFF]) + b[-2:], "checksum mismatch"),
        (lambda b: b"X" + b[1:], "bad magic"),
    ],
)
def test_damaged_state_is_refused_never_half_loaded(damage, reason) -> None:
    blob = state.encode({}, sample_keyspace(), [])
    with pytest.raises(state.StateError, match=reason):
        state.decode(damage(blob), "dump")


def test_journal_stops_at_a_record_cut_short_by_a_crash() -> None:
    good = state.record([(state.OP_WRITE, 1, 0, [b"SET", b"a", b"1"])])
    second = state.record([(state.OP_WRITE, 2, 0, [b"SET", b"b", b"2"])])
    ops, end, why = state.records(good + second[:-2], 0)
    assert ops == [(state.OP_WRITE, 1, 0, [b"SET", b"a", b"1"])]
    assert end == len(good)
    assert "cut short" in why
    ops, end, why = state.records(good + second, 0)
    assert len(ops) == 2 and why == "" and end == len(good) + len(second)


def memfd(data: bytes) -> int:
    fd = os.memfd_create("test", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def test_crash_journal_is_replayed_at_the_time_each_write_ran(tmp_path: Path) -> None:
    """A snapshot plus its journal, as a crashed process leaves them in the fd store."""
    base = Keyspace(16)
    base.dbs[0].set(b"kept", b"from-snapshot")
    snapshot = state.encode({"kind": "checkpoint"}, base, [])
    then = now_ms() - 50_000  # the writes ran 50 s ago
    journal = state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, 0, 0) + state.record(
        [
            (state.OP_WRITE, then, 0, [b"SET", b"session", b"abc", b"EX", b"100"]),
            (state.OP_WRITE, then, 3, [b"INCRBY", b"counter", b"5"]),
            (state.OP_WRITE, then, 0, [b"SET", b"gone", b"x", b"PX", b"10"]),
            (state.OP_WRITE, then, 0, [b"ZADD", b"board", b"2", b"b", b"1", b"a"]),
            (state.OP_WRITE, then, 0, [b"ZINCRBY", b"board", b"5", b"a"]),
            (state.OP_CLIENT, {"id": 42, "db": 3, "name": b"worker", "resp": 3, "auth": True}),
        ]
    )
    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    srv.handover = handover.Handover(
        srv, {"state-4": memfd(snapshot), "journal-4": memfd(journal)}
    )
    assert srv.handover.restore() == []  # no client sockets were stored
    ho = srv.handover
    assert ho.source == "crash" and ho.gen == 4
    db0 = srv.keyspace.dbs[0]
    assert db0.lookup(b"kept").value == b"from-snapshot"
    assert db0.lookup(b"session").value == b"abc"
    # EX 100 counted from when the SET first ran, not from the replay: about 50 s left.
    ttl = (db0.expires[b"session"] - now_ms()) / 1000
    assert 45 < ttl <= 50
    assert db0.lookup(b"gone") is None  # it expired long ago
    assert srv.keyspace.dbs[3].lookup(b"counter").value == b"5"
    assert list(db0.lookup(b"board").value) == [(2.0, b"b"), (6.0, b"a")]
    if ho.journal_fd >= 0:
        os.close(ho.journal_fd)


def test_random_writes_are_journaled_as_their_outcome() -> None:
    ks = Keyspace(1)
    db = ks.dbs[0]
    db.set(b"s", {b"a", b"b"})
    db.set_expire(b"s", 4_000_000_000_000)
    ops = handover._rebuild(db, b"s")
    assert ops[0] == [b"DEL", b"s"]
    assert ops[1][:2] == [b"SADD", b"s"] and set(ops[1][2:]) == {b"a", b"b"}
    assert ops[2] == [b"PEXPIREAT", b"s", b"4000000000000"]
    db.delete(b"s")
    assert handover._rebuild(db, b"s") == [[b"DEL", b"s"]]


@pytest.mark.parametrize(
    ("kernel", "slot", "batch", "expected"),
    [
        # the last batch completed: resume where it ended
        ((130, 55), (100, 50, 130, 55, 0), None, (0, b"", (130, 55), b"")),
        # it never ran for good (nothing written, nothing consumed, not journaled): again
        ((100, 50), (100, 50, 130, 55, 0), None, (0, b"", (100, 50), b"")),
        # answered in full but not consumed: skip its bytes
        ((100, 55), (100, 50, 130, 55, 0), None, (30, b"", (130, 55), b"")),
        # journaled, crash before anything left: skip it and send its reply
        ((100, 50), (90, 40, 100, 50, 1), (100, 50, 130, 55, b"+OK\r\n", b""),
         (30, b"+OK\r\n", (130, 55), b"")),
        # journaled, reply half out, not consumed: skip it and send the rest of the reply
        ((100, 52), (100, 50, 130, 55, 1), (100, 50, 130, 55, b"+OK\r\n", b""),
         (30, b"K\r\n", (130, 55), b"")),
        # all done, and the start of the next command is in the journal: it is given back
        ((130, 55), (100, 50, 130, 55, 5), (100, 50, 130, 55, b"+OK\r\n", b"*1\r\n$4\r\nPI"),
         (0, b"", (130, 55), b"*1\r\n$4\r\nPI")),
        # a read-only batch half written: nobody can tell what is missing
        ((100, 52), (100, 50, 130, 55, 0), None, None),
        # the start of a command too big to journal was held
        ((130, 55), (100, 50, 130, 55, 6), None, None),
        # accepted, never recorded, never read: a fresh connection
        ((0, 0), None, None, (0, b"", (0, 0), b"")),
        # anything else
        ((170, 60), (100, 50, 130, 55, 0), None, None),
    ],
)
def test_reconcile_after_a_crash(kernel, slot, batch, expected) -> None:
    assert handover.reconcile(kernel, slot, batch) == expected


@pytest.mark.parametrize("half_close", [False, True])
def test_kernel_counters_do_not_count_the_peers_fin(half_close: bool) -> None:
    """A client that sent its request and closed its side (the FIN takes a sequence number)
    is counted by the bytes it sent, so a crash resumes it instead of closing it unanswered."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as lsock:
        cli = socket.create_connection(lsock.getsockname())
        srv, dummy = lsock.accept()
        with cli, srv:
            cli.sendall(b"*1\r\n$4\r\nPING\r\n")
            if half_close:
                cli.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 14:
                got += srv.recv(64)
            srv.sendall(b"+PONG\r\n")
            assert cli.recv(64) == b"+PONG\r\n"
            for dummy in range(200):  # bounded: until the kernel has the FIN and the ACK
                counters = handover.kernel_counters(srv)
                state_ = srv.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
                if counters == (14, 7) and (state_ == 8) == half_close:
                    break
                time.sleep(0.01)
            assert counters == (14, 7)
            assert (state_ == 8) == half_close  # CLOSE_WAIT: the FIN is in


def test_unreadable_stored_state_falls_back_and_says_why(tmp_path: Path, monkeypatch) -> None:
    import io

    from ironcache.log import log

    out = io.StringIO()
    monkeypatch.setattr(log, "stream", out)
    blob = bytearray(state.encode({"kind": "handover"}, sample_keyspace(), []))
    blob[16:18] = (state.FORMAT + 1).to_bytes(2, "little")
    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    srv.handover = handover.Handover(srv, {"state-2": memfd(bytes(blob))})
    assert srv.handover.restore() == []
    assert srv.handover.source == "none"
    assert sum(len(db.data) for db in srv.keyspace.dbs) == 0
    assert "cannot take over the previous process's state" in out.getvalue()
    assert f"state format 2.{state.MINOR} cannot be read" in out.getvalue()


@pytest.mark.parametrize("hiredis", [False, True])
def test_unparsed_input_is_what_the_client_sent(hiredis: bool) -> None:
    if hiredis:
        pytest.importorskip("hiredis")
        parser = make_parser(512 * 1024 * 1024)
    else:
        parser = RespParser()
    frame = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n"
    parser.feed(b"*1\r\n$4\r\nPING\r\n" + frame[:25])
    assert parser.next_batch()[0] == [[b"PING"]]
    assert parser.next_batch()[0] == []
    rest = parser.unparsed()
    assert rest is not None
    fresh = RespParser()
    fresh.feed(rest + frame[25:])
    assert fresh.next_command() == [b"SET", b"hello", b"world"]


def test_handover_without_systemd_is_off(make_server) -> None:
    srv = make_server({"handover": "yes"})
    info = srv.client().info("handover")
    assert info["handover_enabled"] == 0
    assert info["handover_source"] == "none"


def test_dataset_survives_stop_and_start_through_the_disk_snapshot(make_server) -> None:
    srv = make_server({"save-on-shutdown": "yes"})
    r = srv.client()
    set_at = time.monotonic()
    r.set("s", "v", ex=300)
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.rpush("l", "x", "y", "z")
    r.sadd("set", "m1", "m2")
    r.zadd("z", {"a": 1.5, "b": float("-inf"), "c": 1.5})
    srv.client(db=5).set("in5", "five")
    assert srv.stop() == 0
    snapshot = srv.workdir / "dump.ironcache"
    assert snapshot.is_file()
    srv.start()
    r = srv.client()
    # The deadline is kept, not restarted: the TTL lost no more than the time that passed.
    assert r.get("s") == "v" and 300 - (time.monotonic() - set_at) - 1 <= r.ttl("s") <= 300
    assert r.hgetall("h") == {"a": "1", "b": "2"}
    assert r.lrange("l", 0, -1) == ["x", "y", "z"]
    assert r.smembers("set") == {"m1", "m2"}
    assert r.zrange("z", 0, -1, withscores=True) == [("b", float("-inf")), ("a", 1.5),
                                                     ("c", 1.5)]
    assert r.type("z") == "zset" and r.zrank("z", "c") == 2
    assert srv.client(db=5).get("in5") == "five"
    info = r.info("handover")
    assert info["handover_source"] == "disk" and info["handover_keys"] == 6
    assert not list(srv.workdir.glob("dump.ironcache.tmp-*"))  # the write was atomic


def test_a_corrupt_snapshot_is_moved_aside_never_overwritten(make_server) -> None:
    srv = make_server({"save-on-shutdown": "yes"})
    srv.client().set("k", "v")
    assert srv.client().save() is True
    assert srv.stop() == 0
    snapshot = srv.workdir / "dump.ironcache"
    data = bytearray(snapshot.read_bytes())
    data[-2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    srv.start()
    assert srv.client().dbsize() == 0
    log = srv.log_text()
    assert "checksum mismatch" in log
    aside = list(srv.workdir.glob("dump.ironcache.corrupt-*"))
    assert len(aside) == 1 and f"moved to {aside[0]}" in log, log
    assert aside[0].read_bytes() == bytes(data)  # kept exactly as it was
    srv.client().set("new", "1")
    assert srv.stop() == 0  # the save on the way out writes a new snapshot...
    assert aside[0].read_bytes() == bytes(data)  # ...and leaves the damaged one alone
    body, dummy = state.decode(snapshot.read_bytes(), "dump")
    assert body["dbs"][0][0] == [b"new"]


def _with_body(obj: object) -> bytes:
    """A snapshot whose checksum is right for whatever `obj` marshals to."""
    import marshal

    return _with_raw_body(marshal.dumps(obj, state.MARSHAL_VERSION))


def _with_raw_body(raw: bytes) -> bytes:
    import zlib

    head = state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, len(raw), zlib.crc32(raw))
    return head + raw


def _db(keys: object, values: object, expires: object = None) -> dict[str, object]:
    return {"meta": {}, "dbs": [(keys, values, {} if expires is None else expires)], "clients": []}


def _good() -> bytes:
    return state.encode({"kind": "disk"}, sample_keyspace(), [])


def _flip(b: bytes, at: int) -> bytes:
    return b[:at] + bytes([b[at] ^ 0x40]) + b[at + 1 :]


CORRUPTIONS = {
    "empty": (lambda: b"", "shorter than the"),
    "truncated header": (lambda: _good()[:20], "shorter than the"),
    "truncated body": (lambda: _good()[:-7], "truncated"),
    "flipped byte in the body": (lambda: _flip(_good(), state.HEADER.size + 30), "checksum"),
    "bad magic": (lambda: _flip(_good(), 3), "bad magic"),
    "flipped checksum": (lambda: _flip(_good(), state.HEADER.size - 1), "checksum"),
    "another format": (
        lambda: _good()[:16] + (state.FORMAT + 7).to_bytes(2, "little") + _good()[18:],
        "cannot be read",
    ),
    "foreign file (an RDB)": (
        lambda: b"REDIS0011\xfa\tredis-ver\x067.0.15" + bytes(40),
        "bad magic",
    ),
    "foreign file (text)": (lambda: b"hello, this is not a snapshot\n" * 10, "bad magic"),
    "absurd body length": (
        lambda: state.HEADER.pack(state.MAGIC, state.FORMAT, 0, 0, 2**63, 0) + b"x" * 64,
        "truncated",
    ),
    "valid checksum, not marshal": (lambda: _with_raw_body(b"\xff\x00garbage"), "undecodable"),
    "valid checksum, a list for a body": (lambda: _with_body([1, 2, 3]), "not an IronCache"),
    "valid checksum, dbs not a list": (
        lambda: _with_body({"meta": {}, "dbs": {"a": 1}, "clients": []}),
        "not an IronCache",
    ),
    "valid checksum, integer values": (lambda: _with_body(_db([b"a"], [1])), "unknown type"),
    "valid checksum, text keys": (lambda: _with_body(_db(["a"], [b"v"])), "not a byte string"),
    "valid checksum, keys and values differ": (
        lambda: _with_body(_db([b"a", b"b"], [b"v"])),
        "2 keys but 1 values",
    ),
    "valid checksum, hash of integers": (
        lambda: _with_body(_db([b"h"], [{b"f": 1}])),
        "hash field or value",
    ),
    "valid checksum, nested list": (
        lambda: _with_body(_db([b"l"], [[b"a", [b"b"]]])),
        "member is not a byte string",
    ),
    "valid checksum, empty set": (lambda: _with_body(_db([b"s"], [set()])), "empty collection"),
    "valid checksum, an unknown type tag": (
        lambda: _with_body(_db([b"x"], [("nosuchtype", [b"a"])])),
        "unknown type tag",
    ),
    "valid checksum, a sorted set with a NaN score": (
        lambda: _with_body(_db([b"z"], [("zset", ([b"a"], [float("nan")]))])),
        "score is not a number",
    ),
    "valid checksum, a sorted set of text members": (
        lambda: _with_body(_db([b"z"], [("zset", (["a"], [1.0]))])),
        "member is not a byte string",
    ),
    "valid checksum, a sorted set with a member twice": (
        lambda: _with_body(_db([b"z"], [("zset", ([b"a", b"a"], [1.0, 2.0]))])),
        "member appears twice",
    ),
    "valid checksum, a sorted set short of scores": (
        lambda: _with_body(_db([b"z"], [("zset", ([b"a", b"b"], [1.0]))])),
        "differ in number",
    ),
    "valid checksum, an empty sorted set": (
        lambda: _with_body(_db([b"z"], [("zset", ([], []))])),
        "empty collection",
    ),
    "valid checksum, text expiry": (
        lambda: _with_body(_db([b"a"], [b"v"], {b"a": "soon"})),
        "expiry time",
    ),
    "valid checksum, expiry of a missing key": (
        lambda: _with_body(_db([b"a"], [b"v"], {b"b": 1})),
        "does not exist",
    ),
    "valid checksum, a key twice": (
        lambda: _with_body(_db([b"a", b"a"], [b"v", b"w"])),
        "a key appears twice",
    ),
    "valid checksum, a code object": (
        lambda: _with_body(_db([b"a"], [compile("1", "x", "eval")])),
        "unknown type",
    ),
    "valid checksum, malformed client records": (
        lambda: _with_body({"meta": {}, "dbs": [], "clients": [{"db": 0}]}),
        "client records",
    ),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_an_unloadable_snapshot_is_moved_aside_with_the_reason(tmp_path: Path, kind: str,
                                                                monkeypatch) -> None:
    import io

    from ironcache import diskstore
    from ironcache.log import log

    out = io.StringIO()
    monkeypatch.setattr(log, "stream", out)
    make, reason = CORRUPTIONS[kind]
    blob = make()
    config = Config()
    config.values["dir"] = str(tmp_path)
    target = tmp_path / "dump.ironcache"
    target.write_bytes(blob)
    ks = Keyspace(16)
    assert diskstore.load(config, ks) is None
    assert all(not db.data and not db.expires for db in ks.dbs) and ks.used == 0
    assert not target.exists()
    (aside,) = tmp_path.glob("dump.ironcache.corrupt-*")
    assert aside.read_bytes() == blob
    text = out.getvalue()
    assert reason in text and str(aside) in text and str(target) in text, text


def test_the_control_a_good_snapshot_loads(tmp_path: Path) -> None:
    from ironcache import diskstore

    config = Config()
    config.values["dir"] = str(tmp_path)
    (tmp_path / "dump.ironcache").write_bytes(_good())
    ks = Keyspace(16)
    assert diskstore.load(config, ks) == 8
    assert not list(tmp_path.glob("dump.ironcache.corrupt-*"))


def test_a_snapshot_that_is_no_file_stops_the_start_with_exit_4(make_server) -> None:
    """Neither loadable nor ours to move: refuse to start (the unit does not restart on 4)."""
    srv = make_server({"save-on-shutdown": "yes"}, start=False)
    (srv.workdir / "dump.ironcache").mkdir()
    srv.start(wait=False)
    assert srv.wait() == 4
    assert "cannot start: the snapshot" in srv.log_text()
    assert "is not a regular file" in srv.log_text()
    assert (srv.workdir / "dump.ironcache").is_dir()


def test_shutdown_save_and_nosave_override_the_config(make_server) -> None:
    srv = make_server()
    srv.client().set("k", "v")
    with pytest.raises(Exception):  # noqa: B017  # the connection closes under SHUTDOWN
        srv.client().execute_command("SHUTDOWN", "SAVE")
    assert srv.wait() == 0
    assert (srv.workdir / "dump.ironcache").is_file()
    (srv.workdir / "dump.ironcache").unlink()
    srv2 = make_server({"save-on-shutdown": "yes"})
    srv2.client().set("k", "v")
    with pytest.raises(Exception):  # noqa: B017
        srv2.client().execute_command("SHUTDOWN", "NOSAVE")
    assert srv2.wait() == 0
    assert not (srv2.workdir / "dump.ironcache").exists()


def test_lastsave_moves_with_save(make_server) -> None:
    srv = make_server()
    r = srv.client()
    before = r.lastsave()
    time.sleep(1.1)
    assert r.save() is True
    assert r.lastsave() > before
    assert r.config_get("dbfilename") == {"dbfilename": "dump.ironcache"}


def test_check_config_refuses_a_path_as_dbfilename(tmp_path: Path) -> None:
    from ironcache.config import ConfigError, load

    with pytest.raises(ConfigError, match="dbfilename"):
        load(None, ["--dbfilename", "../x", "--dir", str(tmp_path)])


@pytest.fixture
def notify_sink(tmp_path: Path):
    """A datagram socket the server may send sd_notify messages to; fds it passes are closed.

    It lets the server run its crash-safe reading (which it uses only under a notify socket)
    outside systemd; the fd store itself is tested under real systemd in molecule/handover.
    """
    import array
    import socket
    import threading

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                dummy, anc, dummy2, dummy3 = sock.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
            except (TimeoutError, OSError):
                continue
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(data[: len(data) - len(data) % 4])
                    for fd in fds:
                        os.close(fd)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join(2)
    sock.close()


def test_crash_safe_reading_serves_like_plain_reading(make_server, notify_sink) -> None:
    """Peeked reading: split frames, big pipelines, big values, MULTI, a slow reader."""
    from support import encode_command

    srv = make_server({"handover": "yes"}, env={"NOTIFY_SOCKET": notify_sink})
    r = srv.client()
    assert r.info("handover")["handover_enabled"] == 1
    payload = encode_command("SET", "split", "v" * 1000) + encode_command("GET", "split")
    with srv.raw() as c:
        for i in range(len(payload)):
            c.send(payload[i : i + 1])
        assert c.read_reply() == "OK"
        assert c.read_reply() == b"v" * 1000
    with srv.raw(timeout=30) as c:
        c.send(b"".join(encode_command("INCR", "n") for _ in range(10_000)))
        assert [c.read_reply() for _ in range(10_000)] == list(range(1, 10_001))
    big = "x" * (3 * 1024 * 1024)
    assert r.set("big", big) is True and r.get("big") == big
    with r.pipeline(transaction=True) as p:
        p.incr("t").incr("t").get("t")
        assert p.execute() == [1, 2, "2"]
    assert r.dbsize() == 4


def test_a_journal_record_of_the_wrong_shape_ends_the_replay_there() -> None:
    good = state.record([(state.OP_WRITE, 1, 0, [b"SET", b"a", b"1"])])
    for bad in ([(state.OP_WRITE, 1, "db0", [b"SET", b"b", b"2"])], [("junk",)], {"a": 1},
                [(state.OP_WRITE, 1, 0, [])], [(state.OP_CLIENT, {"db": 0})]):
        ops, end, why = state.records(good + state.record(bad), 0)  # type: ignore[arg-type]
        assert ops == [(state.OP_WRITE, 1, 0, [b"SET", b"a", b"1"])]
        assert end == len(good) and "malformed operation" in why


def test_stored_state_of_the_wrong_types_falls_back_without_a_traceback(
        tmp_path: Path, monkeypatch) -> None:
    import io

    from ironcache.log import log

    out = io.StringIO()
    monkeypatch.setattr(log, "stream", out)
    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    blob = _with_body(_db([b"a", b"a"], [b"v", b"w"]))
    srv.handover = handover.Handover(srv, {"state-2": memfd(blob)})
    assert srv.handover.restore() == []
    assert srv.handover.source == "none"
    assert sum(len(db.data) for db in srv.keyspace.dbs) == 0
    assert "a key appears twice" in out.getvalue()


_leaf = st.one_of(st.binary(max_size=6), st.integers(-2, 2**64), st.text(max_size=3), st.none(),
                  st.booleans(), st.floats(allow_nan=False))
_anything = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.binary(max_size=4) | st.text(max_size=2), inner, max_size=3),
        st.frozensets(st.binary(max_size=4), max_size=3).map(set),
    ),
    max_leaves=20,
)
_db_like = st.one_of(
    st.none(),
    _anything,
    st.tuples(st.lists(st.binary(max_size=4) | _leaf, max_size=4),
              st.lists(_anything, max_size=4),
              st.dictionaries(st.binary(max_size=4) | _leaf, _leaf, max_size=3)),
)


@settings(max_examples=400, deadline=None)
@given(dbs=st.lists(_db_like, max_size=3), clients=_anything, meta=_anything)
def test_any_body_with_a_valid_checksum_loads_or_is_refused(dbs, clients, meta) -> None:
    """Whatever a checksummed body holds: a StateError, or a keyspace the server can use."""
    blob = _with_body({"meta": meta, "dbs": dbs, "clients": clients})
    ks = Keyspace(4)
    try:
        body, dummy = state.decode(blob, "fuzz")
        state.load_dataset(ks, body["dbs"])
    except state.StateError:
        assert all(not db.data and not db.expires for db in ks.dbs)
        return
    for db in ks.dbs:  # what loaded is what the commands expect
        for key, entry in db.data.items():
            assert type(key) is bytes and entry.value and entry.size > 0
        assert db.expires.keys() <= db.data.keys()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_damage_to_a_snapshot_is_refused_or_harmless(data) -> None:
    blob = bytearray(_good())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    ks = Keyspace(4)
    try:
        body, dummy = state.decode(bytes(blob[:cut]), "fuzz")
        state.load_dataset(ks, body["dbs"])
    except state.StateError:
        pass


@pytest.mark.parametrize("rec", [{"id": 1, "db": "0"}, {"id": 1, "resp": 9},
                                 {"id": 1, "multi": [[b"SET", 1]]}, {"id": 1, "name": "text"},
                                 {"id": 1, "channels": ["text"]}, {"id": 1, "patterns": b"p*"},
                                 {"id": 1, "block_deadline_ms": 1.5}])
def test_client_records_of_the_wrong_types_are_refused(rec) -> None:
    with pytest.raises(state.StateError, match="client records"):
        state.decode(_with_body({"meta": {}, "dbs": [], "clients": [rec]}), "state-1")
    # the control: the same record with the right types is read
    good = {"id": 1, "db": 0, "resp": 3, "multi": [[b"SET", b"k", b"v"]], "name": b"n",
            "channels": [b"c"], "patterns": [b"p*"], "schannels": [], "block_deadline_ms": 0}
    assert state.decode(_with_body({"meta": {}, "dbs": [], "clients": [good]}), "s")[0]["clients"]
