"""MULTI/EXEC/DISCARD/WATCH/UNWATCH, over the wire and through redis-py pipelines."""

from __future__ import annotations

import pytest
import redis

from support import RespError, Server, wire_error


def test_multi_exec_on_wire(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "a", "1") == "QUEUED"
        assert c.call("INCR", "a") == "QUEUED"
        assert c.call("GET", "a") == "QUEUED"
        assert c.call("EXEC") == ["OK", 2, b"2"]
        assert c.call("EXEC") == RespError("ERR EXEC without MULTI")


def test_empty_transaction(server: Server) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("EXEC") == []


def test_discard(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "a", "1") == "QUEUED"
        assert c.call("DISCARD") == "OK"
        assert c.call("GET", "a") is None
        assert c.call("DISCARD") == RespError("ERR DISCARD without MULTI")
    assert r.exists("a") == 0


def test_nested_multi_and_watch_inside_multi(server: Server) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("MULTI") == RespError("ERR MULTI calls can not be nested")
        assert c.call("WATCH", "x") == RespError("ERR WATCH inside MULTI is not allowed")
        assert c.call("PING") == "QUEUED"
        assert c.call("EXEC") == ["PONG"]  # those errors do not abort the transaction


def test_execabort_on_queued_errors(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "a", "1") == "QUEUED"
        err = c.call("NOSUCHCOMMAND", "x")
        assert isinstance(err, RespError)
        assert err.startswith("ERR unknown command 'NOSUCHCOMMAND'")
        assert c.call("GET") == RespError("ERR wrong number of arguments for 'get' command")
        assert c.call("EXEC") == RespError(
            "EXECABORT Transaction discarded because of previous errors.")
        assert c.call("PING") == "PONG"  # no longer in MULTI
    assert r.exists("a") == 0


def test_runtime_error_inside_exec(server: Server, r: redis.Redis) -> None:
    r.rpush("list", "x")
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "a", "1") == "QUEUED"
        assert c.call("INCR", "list") == "QUEUED"
        assert c.call("INCR", "a") == "QUEUED"
        reply = c.call("EXEC")
    assert reply[0] == "OK"
    assert isinstance(reply[1], RespError) and reply[1].startswith("WRONGTYPE")
    assert reply[2] == 2
    assert r.get("a") == "2"


def test_watch_conflict_makes_exec_return_nil(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    other = server.client()
    with server.raw() as c:
        assert c.call("WATCH", "w") == "OK"
        other.set("w", "changed")
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "w", "mine") == "QUEUED"
        assert c.call("EXEC") is None
        # The watch is gone after EXEC: the next transaction goes through.
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "w", "mine") == "QUEUED"
        assert c.call("EXEC") == ["OK"]
    assert r.get("w") == "mine"


def test_watch_missing_key_created_by_other(server: Server, r: redis.Redis) -> None:
    other = server.client()
    with server.raw() as c:
        assert c.call("WATCH", "new") == "OK"
        other.set("new", "1")
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "new", "2") == "QUEUED"
        assert c.call("EXEC") is None
    assert r.get("new") == "1"


def test_watch_unchanged_key_executes(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    with server.raw() as c:
        assert c.call("WATCH", "w", "other") == "OK"
        r.get("w")  # reads do not count as changes
        assert c.call("MULTI") == "OK"
        assert c.call("INCR", "w") == "QUEUED"
        assert c.call("EXEC") == [1]


def test_unwatch(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    with server.raw() as c:
        assert c.call("WATCH", "w") == "OK"
        r.set("w", "x")
        assert c.call("UNWATCH") == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "w", "y") == "QUEUED"
        assert c.call("EXEC") == ["OK"]


def test_discard_clears_watch(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    with server.raw() as c:
        assert c.call("WATCH", "w") == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("DISCARD") == "OK"
        r.set("w", "x")
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "w", "y") == "QUEUED"
        assert c.call("EXEC") == ["OK"]


def test_watch_expired_or_deleted_key(server: Server, r: redis.Redis) -> None:
    r.set("w", "0")
    with server.raw() as c:
        assert c.call("WATCH", "w") == "OK"
        r.delete("w")
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "w", "y") == "QUEUED"
        assert c.call("EXEC") is None


def test_redis_py_pipeline_transaction(r: redis.Redis) -> None:
    with r.pipeline(transaction=True) as pipe:
        pipe.set("a", "1").incr("a").get("a").hset("h", "f", "v").hgetall("h")
        assert pipe.execute() == [True, 2, "2", 1, {"f": "v"}]


def test_redis_py_pipeline_without_transaction(r: redis.Redis) -> None:
    with r.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.set(f"k{i}", i)
            pipe.incr(f"k{i}")
        replies = pipe.execute()
    assert replies == [x for i in range(500) for x in (True, i + 1)]
    assert r.get("k499") == "500"


def test_redis_py_pipeline_error_inside_transaction(r: redis.Redis) -> None:
    r.rpush("list", "x")
    with r.pipeline(transaction=True) as pipe:
        pipe.set("a", "1").incr("list").incr("a")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            pipe.execute()
    assert r.get("a") == "2"
    with r.pipeline(transaction=True) as pipe:
        pipe.set("b", "1").incr("list").incr("b")
        replies = pipe.execute(raise_on_error=False)
    assert replies[0] is True and replies[2] == 2
    assert isinstance(replies[1], redis.ResponseError)


def test_redis_py_watch_retry_loop(server: Server, r: redis.Redis) -> None:
    r.set("counter", "0")
    other = server.client()
    attempts = 0
    with r.pipeline() as pipe:
        for _ in range(5):
            attempts += 1
            try:
                pipe.watch("counter")
                value = int(pipe.get("counter") or 0)
                if attempts == 1:
                    other.incr("counter")  # a conflicting write by someone else
                pipe.multi()
                pipe.set("counter", value + 10)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    assert attempts == 2
    assert r.get("counter") == "11"


def test_redis_py_transaction_helper(r: redis.Redis) -> None:
    r.set("x", "5")

    def double(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("x") or 0)
        pipe.multi()
        pipe.set("x", value * 2)

    r.transaction(double, "x")
    assert r.get("x") == "10"


def test_exec_without_multi_wording(server: Server) -> None:
    assert wire_error(server, "EXEC") == "ERR EXEC without MULTI"
    assert wire_error(server, "DISCARD") == "ERR DISCARD without MULTI"


def test_transaction_with_select(server: Server) -> None:
    c0 = server.client(db=0)
    c5 = server.client(db=5)
    c0.flushall()
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SELECT", "5") == "QUEUED"
        assert c.call("SET", "in5", "v") == "QUEUED"
        assert c.call("EXEC") == ["OK", "OK"]
        assert c.call("GET", "in5") == b"v"  # the SELECT sticks after EXEC
    assert c5.get("in5") == "v"
    assert c0.exists("in5") == 0


def test_redis_py_10k_transaction(r: redis.Redis) -> None:
    with r.pipeline(transaction=True) as pipe:
        for _ in range(10_000):
            pipe.incr("tx-counter")
        replies = pipe.execute()
    assert replies == list(range(1, 10_001))


def test_threads_share_a_pool(server: Server, r: redis.Redis) -> None:
    import threading

    pool_client = server.client(max_connections=16)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                pool_client.incr("threaded")
            with pool_client.pipeline(transaction=True) as p:
                p.incr("threaded-tx").incr("threaded-tx")
                p.execute()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert r.get("threaded") == str(8 * 300)
    assert r.get("threaded-tx") == str(8 * 2)


def test_watch_conflict_resp3_null(server: Server, r: redis.Redis) -> None:
    r.set("w3", "0")
    with server.raw() as c:
        assert isinstance(c.call("HELLO", "3"), dict)
        assert c.call("WATCH", "w3") == "OK"
        r.set("w3", "1")
        assert c.call("MULTI") == "OK"
        assert c.call("INCR", "w3") == "QUEUED"
        c.send_command("EXEC")
        assert c.read_line() == b"_"  # RESP3 null, not *-1
