"""Transactions and introspection as Redis 7.0 answers them: WATCH and FLUSHALL, OOM inside
MULTI, CLIENT KILL / REPLY / LIST, MONITOR, INFO commandstats and errorstats, COMMAND LIST /
INFO / GETKEYS, and the CONFIG settings Redis's suite reads. Every test runs against Redis
too (IRONCACHE_TEST_TARGET=redis)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from support import RespError, Server, ironcache_only

EXECABORT_OOM = (
    "EXECABORT Transaction discarded because of: "
    "OOM command not allowed when used memory > 'maxmemory'."
)


def _info(c: Any, section: str) -> dict[str, str]:
    text = c.call("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def _stat(c: Any, name: str) -> dict[str, float]:
    line = _info(c, "commandstats").get(f"cmdstat_{name}")
    if line is None:
        return {}
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split(","))}


# ------------------------------------------------------------------ WATCH and FLUSH
@pytest.mark.parametrize("flush", ["FLUSHALL", "FLUSHDB"])
def test_flush_touches_only_watched_keys_that_exist(server: Server, flush: str) -> None:
    with server.raw() as c:
        assert c.call("FLUSHALL") == "OK"
        assert c.call("WATCH", "missing") == "OK"
        assert c.call(flush) == "OK"  # nothing to delete: no change to `missing`
        assert c.call("MULTI") == "OK"
        assert c.call("PING") == "QUEUED"
        assert c.call("EXEC") == ["PONG"]
        # control: a watched key that existed is touched by the flush
        assert c.call("SET", "present", "1") == "OK"
        assert c.call("WATCH", "present", "missing") == "OK"
        assert c.call(flush) == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("PING") == "QUEUED"
        assert c.call("EXEC") is None


# ------------------------------------------------------------------ OOM and MULTI
@pytest.fixture
def tight(make_server: Callable[..., Server]) -> Server:
    srv = make_server()
    with srv.raw() as c:
        assert c.call("SET", "ballast", "x" * 1000) == "OK"  # IronCache counts the dataset
    return srv


def test_multi_refuses_queueing_over_maxmemory(tight: Server) -> None:
    with tight.raw() as c, tight.raw() as admin:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "a", "1") == "QUEUED"
        assert admin.call("CONFIG", "SET", "maxmemory", "1") == "OK"
        err = c.call("LPUSH", "l", "v")
        assert err == RespError("OOM command not allowed when used memory > 'maxmemory'.")
        assert c.call("GET", "a") == RespError(err)  # even a read is not queued
        assert admin.call("CONFIG", "SET", "maxmemory", "0") == "OK"
        assert c.call("EXEC") == RespError(
            "EXECABORT Transaction discarded because of previous errors."
        )
        assert c.call("EXISTS", "a") == 0
        # DISCARD always works
        assert admin.call("CONFIG", "SET", "maxmemory", "1") == "OK"
        assert c.call("MULTI") == "OK"
        assert isinstance(c.call("SET", "x", "1"), RespError)
        assert c.call("DISCARD") == "OK"
        assert c.call("PING") == "PONG"


def test_exec_over_maxmemory_runs_reads_refuses_writes(tight: Server) -> None:
    with tight.raw() as c, tight.raw() as admin:
        assert c.call("MULTI") == "OK"
        assert c.call("GET", "ballast") == "QUEUED"
        assert c.call("PING") == "QUEUED"
        assert admin.call("CONFIG", "SET", "maxmemory", "1") == "OK"
        assert c.call("EXEC") == [b"x" * 1000, "PONG"]
        assert admin.call("CONFIG", "SET", "maxmemory", "0") == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "y", "1") == "QUEUED"
        assert c.call("GET", "y") == "QUEUED"
        assert admin.call("CONFIG", "SET", "maxmemory", "1") == "OK"
        assert c.call("EXEC") == RespError(EXECABORT_OOM)
        assert admin.call("CONFIG", "SET", "maxmemory", "0") == "OK"
        assert c.call("EXISTS", "y") == 0
        assert c.call("PING") == "PONG"  # the transaction ended


def test_unknown_subcommand_refused_while_queueing(server: Server) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("CLIENT", "NOSUCH") == RespError(
            "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."
        )
        assert c.call("CONFIG", "GET") == RespError(
            "ERR wrong number of arguments for 'config|get' command"
        )
        assert c.call("EXEC") == RespError(
            "EXECABORT Transaction discarded because of previous errors."
        )


# ------------------------------------------------------------------ CLIENT
def test_client_kill_arguments(server: Server) -> None:
    with server.raw() as c:
        for bad in ("0", "-1", "str"):
            assert c.call("CLIENT", "KILL", "ID", bad) == RespError(
                "ERR client-id should be greater than 0"
            )
        assert c.call("CLIENT", "KILL", "ID", "10", "wrong_arg") == RespError("ERR syntax error")
        assert c.call("CLIENT", "KILL", "TYPE", "wrong") == RespError(
            "ERR Unknown client type 'wrong'"
        )
        assert c.call("CLIENT", "KILL", "USER", "wrong_user") == RespError(
            "ERR No such user 'wrong_user'"
        )
        assert c.call("CLIENT", "KILL", "SKIPME", "maybe") == RespError("ERR syntax error")
        assert c.call("CLIENT", "KILL", "1.2.3.4:5") == RespError("ERR No such client")
        assert c.call("CLIENT", "KILL", "ID", "999999") == 0


def test_client_kill_skipme_no_answers_then_closes(server: Server) -> None:
    with server.raw() as me, server.raw() as other:
        assert other.call("CLIENT", "SETNAME", "victim") == "OK"
        mine = me.call("CLIENT", "ID")
        assert me.call("CLIENT", "KILL", "ID", mine, "SKIPME", "yes") == 0
        assert me.call("CLIENT", "KILL", "ID", mine, "SKIPME", "no") == 1  # the count first
        assert me.is_closed()
        assert other.call("PING") == "PONG"


def test_client_kill_type_tells_subscribers_from_normal_clients(server: Server) -> None:
    with server.raw() as me, server.raw() as sub:
        sub.call("SUBSCRIBE", "ch")
        assert me.call("CLIENT", "KILL", "TYPE", "normal") == 0  # the subscriber is pubsub
        assert me.call("CLIENT", "KILL", "TYPE", "pubsub") == 1
        assert sub.is_closed()


def test_client_list_and_info_name_the_subcommand(server: Server) -> None:
    with server.raw() as c:
        line = c.call("CLIENT", "LIST", "ID", c.call("CLIENT", "ID")).decode()
        assert re.search(r" flags=N .* qbuf=\d+ .* cmd=client\|list ", line), line
        info = c.call("CLIENT", "INFO").decode()
        # the request itself is still in the query buffer: *2 $6 client $4 info = 26 bytes
        assert " qbuf=26 " in info and " cmd=client|info " in info, info
        assert c.call("MULTI") == "OK"
        assert c.call("PING") == "QUEUED"
        assert c.call("EXEC") == ["PONG"]


def test_client_reply_off_skip_on(server: Server) -> None:
    with server.raw() as c:
        c.send_command("CLIENT", "REPLY", "OFF")
        c.send_command("PING", "silenced")
        assert c.call("CLIENT", "REPLY", "ON") == "OK"
        c.send_command("CLIENT", "REPLY", "SKIP")
        c.send_command("PING", "skipped")
        assert c.call("PING", "seen") == b"seen"
        c.send_command("CLIENT", "REPLY", "SKIP")
        assert c.call("CLIENT", "REPLY", "ON") == "OK"
        assert c.call("PING") == "PONG"
        assert c.call("CLIENT", "REPLY", "bogus") == RespError("ERR syntax error")


# ------------------------------------------------------------------ MONITOR
def test_monitor_shows_commands_in_order(server: Server) -> None:
    with server.raw() as mon, server.raw() as c:
        assert mon.call("MONITOR") == "OK"
        assert c.call("SET", "foo", 'a"b\n') == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("GET", "foo") == "QUEUED"
        assert c.call("EXEC") == [b'a"b\n']
        assert c.call("MULTI") == "OK"
        assert isinstance(c.call("NOSUCHCMD"), RespError)
        assert isinstance(c.call("EXEC"), RespError)
        assert c.call("CONFIG", "GET", "hz") == [b"hz", b"10"]  # admin: never shown
        assert c.call("AUTH", "default", "secret") is not None  # shown redacted
        lines = [mon.read_reply() for _ in range(7)]
        pattern = r"\d+\.\d{6} \[0 [^\]]+\] "
        for line, args in zip(
            lines,
            [
                '"SET" "foo" "a\\"b\\n"',  # the arguments as sent, quoted
                '"MULTI"',
                '"GET" "foo"',
                '"EXEC"',
                '"MULTI"',
                '"EXEC"',
                '"AUTH" "(redacted)" "(redacted)"',
            ],
            strict=True,
        ):
            assert re.fullmatch(pattern + re.escape(args), line), (line, args)


def test_reset_ends_monitor(server: Server) -> None:
    with server.raw() as mon, server.raw() as c:
        assert mon.call("MONITOR") == "OK"
        assert "flags=O" in c.call("CLIENT", "LIST").decode()
        assert mon.call("RESET") == "RESET"
        assert "flags=O" not in c.call("CLIENT", "LIST").decode()


# ------------------------------------------------------------------ INFO
def test_info_sections(server: Server) -> None:
    with server.raw() as c:
        default = c.call("INFO").decode()
        assert "# CPU\r\n" in default and "used_cpu_user" in default
        assert "rejected_calls" not in default and "# Errorstats" in default
        for arg in ("all", "everything", "commandstats"):
            assert "rejected_calls" in c.call("INFO", arg).decode()
        both = c.call("INFO", "cpu", "default").decode()
        assert both.count("used_cpu_user:") == 1 and "used_memory" in both


def test_commandstats_and_errorstats(server: Server) -> None:
    with server.raw() as c:
        assert c.call("CONFIG", "RESETSTAT") == "OK"
        c.send(b"".join(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n" for _ in range(100)))
        assert [c.read_reply() for _ in range(100)] == ["OK"] * 100
        assert c.call("LPUSH", "k", "x") == RespError(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        )
        assert isinstance(c.call("GET"), RespError)  # wrong arity: rejected
        assert isinstance(c.call("NOSUCH"), RespError)
        assert c.call("CLIENT", "ID") > 0
        sets = _stat(c, "set")
        assert sets["calls"] == 100 and sets["usec"] > 0 and sets["failed_calls"] == 0
        # one read mixing commands: each counted, the read's time shared by both kinds
        c.send(b"*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n*1\r\n$4\r\nPING\r\n" * 50)
        assert [c.read_reply() for _ in range(100)] == [b"x", "PONG"] * 50
        assert _stat(c, "echo")["calls"] == 50 and _stat(c, "ping")["calls"] == 50
        assert _stat(c, "echo")["usec"] + _stat(c, "ping")["usec"] > 0
        assert _stat(c, "lpush")["failed_calls"] == 1
        assert _stat(c, "get") == pytest.approx(
            {"calls": 0, "usec": 0, "usec_per_call": 0, "rejected_calls": 1, "failed_calls": 0}
        )
        assert _stat(c, "client|id")["calls"] == 1
        assert _stat(c, "client") == {}  # a container counts under its subcommand
        errors = _info(c, "errorstats")
        assert errors["errorstat_WRONGTYPE"] == "count=1"
        assert errors["errorstat_ERR"] == "count=2"
        assert c.call("CONFIG", "RESETSTAT") == "OK"
        assert _stat(c, "set") == {} and "errorstat_ERR" not in _info(c, "errorstats")


# ------------------------------------------------------------------ COMMAND
def test_command_list_filters(server: Server) -> None:
    with server.raw() as c:
        everything = c.call("COMMAND", "LIST")
        assert b"set" in everything and b"client|list" in everything
        assert c.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "set") == [b"set"]
        config = c.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "config|*re*")
        assert {b"config|resetstat", b"config|rewrite"} <= set(config)
        assert c.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuchcategory") == []
        assert c.call("COMMAND", "LIST", "FILTERBY", "MODULE", "nosuchmodule") == []
        connection = c.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "connection")
        assert b"ping" in connection and b"set" not in connection
        for bad in (["bad_arg"], ["filterby", "bad_arg"], ["filterby", "bad_arg", "x"]):
            assert c.call("COMMAND", "LIST", *bad) == RespError("ERR syntax error")
        assert c.call("COMMAND", "COUNT") == len(c.call("COMMAND"))


def test_command_info_and_getkeys(server: Server) -> None:
    with server.raw() as c:
        assert c.call("COMMAND", "INFO", "get|key") == [None]
        assert c.call("COMMAND", "INFO", "config|get|key") == [None]
        info = c.call("COMMAND", "INFO", "config|get")[0]
        assert info[0] == b"config|get" and info[1] == -3
        (client,) = c.call("COMMAND", "INFO", "client")
        assert b"client|list" in [sub[0] for sub in client[9]]
        assert c.call("COMMAND", "GETKEYS", "GET", "key") == [b"key"]
        assert c.call("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == [b"a", b"b"]
        assert c.call("COMMAND", "GETKEYS", "PING", "x") == RespError(
            "ERR The command has no key arguments"
        )
        assert c.call("COMMAND", "GETKEYS", "NOSUCH", "x") == RespError(
            "ERR Invalid command specified"
        )
        assert c.call("COMMAND", "GETKEYS", "GET", "a", "b") == RespError(
            "ERR Invalid number of arguments specified for command"
        )
        assert c.call("COMMAND", "GETKEYS", "GET") == RespError(
            "ERR wrong number of arguments for 'command|getkeys' command"
        )


# ------------------------------------------------------------------ CONFIG
def test_connect_time_settings(server: Server) -> None:
    with server.raw() as c:
        settings = dict(zip(*[iter(c.call("CONFIG", "GET", "*"))] * 2, strict=True))
        assert settings[b"save"] == b"" and settings[b"appendonly"] == b"no"
        assert b"key-load-delay" not in settings  # hidden from patterns
        assert c.call("CONFIG", "GET", "key-load-delay") == [b"key-load-delay", b"0"]
        found = c.call("CONFIG", "GET", "*of")
        assert set(found[0::2]) == {b"replicaof", b"slaveof"}
        assert c.call("CONFIG", "SET", "save", "") == "OK"
        assert c.call("CONFIG", "SET", "maxmemory-clients", "10%", "repl-backlog-size", "2mb") == (
            "OK"
        )
        assert c.call("CONFIG", "GET", "maxmemory-clients") == [b"maxmemory-clients", b"10%"]
        assert c.call("CONFIG", "SET", "maxmemory", "10000001", "maxmemory-clients", "200%") == (
            RespError(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - "
                "percentage argument must be less or equal to 100"
            )
        )
        assert c.call("CONFIG", "GET", "maxmemory-clients") == [b"maxmemory-clients", b"10%"]
        assert c.call("CONFIG", "SET", "maxmemory-clients", "0", "repl-backlog-size", "1mb") == (
            "OK"
        )


@ironcache_only
def test_own_start_time_settings_accept_their_value(server: Server) -> None:
    with server.raw() as c:
        value = c.call("CONFIG", "GET", "reuseport")[1]
        assert c.call("CONFIG", "SET", "reuseport", value) == "OK"
        other = b"yes" if value == b"no" else b"no"
        assert c.call("CONFIG", "SET", "reuseport", other) == RespError(
            "ERR CONFIG SET failed (possibly related to argument 'reuseport') - "
            "can't set immutable config"
        )


def test_redis_py_client_helpers(r: redis.Redis) -> None:
    assert r.client_setname("me")
    assert r.client_getname() == "me"
    assert r.client_info()["cmd"] == "client|info"
    assert r.config_get("maxmemory-clients") == {"maxmemory-clients": "0"}


# ------------------------------------------------------------------ Redis's suite gaps
def test_monitor_shows_script_commands_after_their_eval(server: Server) -> None:
    with server.raw() as mon, server.raw() as c:
        assert mon.call("MONITOR") == "OK"
        assert c.call("EVAL", "return redis.call('set', KEYS[1], ARGV[1])", 1, "mk", "mv") == "OK"
        assert c.call("GET", "mk") == b"mv"
        lines = [mon.read_reply() for _ in range(3)]
        assert '"EVAL"' in lines[0] or '"eval"' in lines[0]
        assert re.fullmatch(r"\d+\.\d{6} \[0 lua\] \"set\" \"mk\" \"mv\"", lines[1]), lines
        assert re.fullmatch(r"\d+\.\d{6} \[0 [0-9.:]+\] \"GET\" \"mk\"", lines[2]), lines


def test_commandstats_count_what_scripts_run(server: Server) -> None:
    with server.raw() as c:
        assert c.call("CONFIG", "RESETSTAT") == "OK"
        c.call("EVAL", "redis.call('set', KEYS[1], 1); redis.call('get', KEYS[1])", 1, "k")
        assert _stat(c, "eval")["calls"] == 1
        assert _stat(c, "set")["calls"] == 1
        assert _stat(c, "get")["calls"] == 1


def test_subcommand_arity_refused_before_multi_queues(server: Server) -> None:
    with server.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("OBJECT", "FREQ") == RespError(
            "ERR wrong number of arguments for 'object|freq' command"
        )
        assert c.call("OBJECT", "NOPE", "k") == RespError(
            "ERR unknown subcommand 'NOPE'. Try OBJECT HELP."
        )
        assert c.call("CONFIG", "SET", "maxmemory") == RespError(
            "ERR wrong number of arguments for 'config|set' command"
        )
        assert c.call("OBJECT", "ENCODING", "k") == "QUEUED"  # control: a whole one queues
        assert isinstance(c.call("EXEC"), RespError)  # EXECABORT


def test_command_getkeysandflags_and_key_specs(server: Server) -> None:
    with server.raw() as c:
        assert c.call("COMMAND", "GETKEYSANDFLAGS", "SET", "k1", "v1") == [
            [b"k1", ["OW", "update"]]
        ]
        assert c.call("COMMAND", "GETKEYSANDFLAGS", "SET", "k1", "v1", "GET") == [
            [b"k1", ["RW", "access", "update"]]
        ]
        assert c.call("COMMAND", "GETKEYSANDFLAGS", "LMOVE", "a", "b", "LEFT", "RIGHT") == [
            [b"a", ["RW", "access", "delete"]],
            [b"b", ["RW", "insert"]],
        ]
        assert c.call("COMMAND", "GETKEYSANDFLAGS", "SORT", "s", "STORE", "d") == [
            [b"s", ["RO", "access"]],
            [b"d", ["OW", "update"]],
        ]
        assert c.call("COMMAND", "GETKEYS", "MEMORY", "USAGE", "k") == [b"k"]
        specs = c.call("COMMAND", "INFO", "GET")[0][8]
        assert specs == [
            [
                b"flags",
                ["RO", "access"],
                b"begin_search",
                [b"type", b"index", b"spec", [b"index", 1]],
                b"find_keys",
                [b"type", b"range", b"spec", [b"lastkey", 0, b"keystep", 1, b"limit", 0]],
            ]
        ]


def test_command_list_names_subcommands_and_cluster_refuses(server: Server) -> None:
    with server.raw() as c:
        scripting = c.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "scripting")
        assert b"script|kill" in scripting and b"eval" in scripting and b"set" not in scripting
        helps = c.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "cl*help")
        assert sorted(helps) == [b"client|help", b"cluster|help"]
        assert c.call("CLUSTER", "INFO") == RespError(
            "ERR This instance has cluster support disabled"
        )


def _qbuf_total(c: Any, name: str) -> int:
    for line in c.call("CLIENT", "LIST").decode().splitlines():
        if f" name={name} " in line:
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            return int(fields["qbuf"]) + int(fields["qbuf-free"])
    raise AssertionError(f"no client named {name}")


def test_query_buffer_grows_with_a_request_and_shrinks_when_idle(server: Server) -> None:
    with server.raw() as c, server.raw() as other:
        assert other.call("CLIENT", "SETNAME", "qb") == "OK"
        assert 16384 <= _qbuf_total(c, "qb") < 32768  # a read's room, as Redis's 16 KiB
        assert other.call("SET", "big", "A" * 400_000) == "OK"
        grown = _qbuf_total(c, "qb")
        assert grown > 32768  # held the whole request
        for dummy in range(200):  # bounded: the cron trims within a second or two
            assert other.call("SET", "small", "A" * 100) == "OK"
            if 0 < _qbuf_total(c, "qb") < grown:
                break
            time.sleep(0.02)
        assert 0 < _qbuf_total(c, "qb") < grown
        # Idle for over 2 s: the room is freed, unless a trim already left it within the 4 KiB
        # Redis never bothers to reclaim (clientsCronResizeQueryBuffer's sdsavail check).
        for dummy in range(100):
            if _qbuf_total(c, "qb") <= 4096:
                break
            time.sleep(0.1)
        assert _qbuf_total(c, "qb") <= 4096
