"""Scripting: EVAL/EVALSHA(_RO), SCRIPT, FUNCTION, FCALL(_RO) (commands/scripting.py).

Replies and error words are Redis 7.0.15's (IRONCACHE_TEST_TARGET=redis runs these against
redis-server too); the busy-script tests use a dedicated server with a short lua-time-limit.
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

import support
from support import IS_REDIS, Server, poll

ironcache_only = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific")


def _has_lupa(python: str) -> bool:
    import subprocess

    probe = subprocess.run([python, "-c", "import lupa.lua51"], capture_output=True, check=False)
    return probe.returncode == 0


# IRONCACHE_TEST_PYTHON may name an interpreter without lupa (the host's python3): the server
# runs, but scripting answers an error (test_scripting_without_lupa.py).
pytestmark = pytest.mark.skipif(
    not IS_REDIS and not _has_lupa(support.SERVER_PYTHON),
    reason="the server's interpreter has no lupa",
)


def pairs(reply: object) -> dict:
    """A map reply as redis-py gives it in RESP2 (a flat list), or already a dict."""
    if isinstance(reply, dict):
        return reply
    assert isinstance(reply, list)
    return dict(zip(reply[::2], reply[1::2], strict=True))


def sha(body: str) -> str:
    return hashlib.sha1(body.encode()).hexdigest()


# ------------------------------------------------------------------ EVAL and conversions


def test_eval_runs_commands_with_keys_and_argv(r: redis.Redis) -> None:
    assert r.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
    assert r.eval("return redis.call('get', KEYS[1])", 1, "k") == "v"
    assert r.eval("return {KEYS[1], KEYS[2], ARGV[1]}", 2, "a", "b", "c") == ["a", "b", "c"]


def test_lua_to_redis_conversions(r: redis.Redis) -> None:
    # Numbers truncate to integers, false is a nil, true 1, a table stops at its first nil.
    assert r.eval("return 3.99", 0) == 3
    assert r.eval("return {1, 'two', {3}, false, true}", 0) == [1, "two", [3], None, 1]
    assert r.eval("return {1, 2, nil, 4}", 0) == [1, 2]
    assert r.eval("return {ok='FINE'}", 0) == "FINE"
    with pytest.raises(redis.ResponseError, match="^MYERR boom$"):
        r.eval("return redis.error_reply('MYERR boom')", 0)
    assert r.eval("return redis.status_reply('DONE')", 0) == "DONE"


def test_redis_to_lua_conversions(r: redis.Redis) -> None:
    r.rpush("l", "a", "b")
    # nil bulk -> false, integer -> number, status -> {ok=}, array -> table
    assert r.eval("return type(redis.call('get', 'missing'))", 0) == "boolean"
    assert r.eval("return redis.call('incr', 'n') + 10", 0) == 11
    assert r.eval("return redis.call('set', 'x', 'y')['ok']", 0) == "OK"
    assert r.eval("return #redis.call('lrange', 'l', 0, -1)", 0) == 2
    err = r.eval("return redis.pcall('incr', 'l')['err']", 0)
    assert err.startswith("WRONGTYPE")


def test_resp3_through_setresp(server: Server) -> None:
    c = server.client(protocol=3)
    c.flushall()
    c.hset("h", "f", "v")
    script = "redis.setresp(3); local m = redis.call('hgetall', 'h'); return m"
    assert c.eval(script, 0) == {"f": "v"}
    assert c.eval("redis.setresp(3); return redis.call('hgetall', 'h')['map']['f']", 0) == "v"
    assert c.eval("return {double=3.5}", 0) == 3.5
    c.close()


def test_script_errors_name_the_script_and_line(r: redis.Redis) -> None:
    # A tail call: IronCache compiles scripts without them, so the line is still known.
    body = "local x = 1\nreturn redis.call('nosuchcommand')"
    with pytest.raises(redis.ResponseError) as e:
        r.eval(body, 0)
    assert str(e.value) == (
        f"Unknown Redis command called from script script: {sha(body)}, on @user_script:2."
    )
    with pytest.raises(redis.ResponseError, match="Wrong number of args calling Redis command"):
        r.eval("redis.call('get')", 0)
    with pytest.raises(redis.ResponseError, match="user_script:1: boom script: "):
        r.eval("error('boom')", 0)
    with pytest.raises(redis.ResponseError, match="^user_script:1: bad argument #1 to 'band'"):
        r.eval("return bit.band('x')", 0)
    with pytest.raises(redis.ResponseError, match="Error compiling script"):
        r.eval("return (", 0)
    with pytest.raises(redis.ResponseError, match="Number of keys can't be greater"):
        r.eval("return 1", 3, "a")


def test_evalsha_script_load_exists_flush(r: redis.Redis) -> None:
    body = "return 'cached'"
    r.script_flush()
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(sha(body), 0)
    assert r.script_load(body) == sha(body)
    assert r.evalsha(sha(body), 0) == "cached"
    assert r.evalsha(sha(body).upper(), 0) == "cached"
    assert r.script_exists(sha(body), "0" * 40) == [True, False]
    r.script_flush()
    assert r.script_exists(sha(body)) == [False]


def test_read_only_variants_and_no_writes_flag(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.eval_ro("return redis.call('get', KEYS[1])", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        r.eval_ro("return redis.call('set', KEYS[1], 'x')", 1, "k")
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        r.eval("#!lua flags=no-writes\nreturn redis.call('set', 'k', 'x')", 0)
    with pytest.raises(redis.ResponseError, match="Can not execute a script with write flag"):
        r.eval_ro("#!lua\nreturn 1", 0)
    with pytest.raises(redis.ResponseError, match="Unexpected flag in script shebang: bogus"):
        r.eval("#!lua flags=bogus\nreturn 1", 0)
    assert r.get("k") == "v"


def test_commands_scripts_may_not_call(r: redis.Redis) -> None:
    for args in ("'multi'", "'eval', 'return 1', 0", "'script', 'flush'", "'client', 'list'",
                 "'config', 'get', 'port'", "'blpop', 'l', 0", "'subscribe', 'c'"):
        with pytest.raises(redis.ResponseError, match="This Redis command is not allowed from"):
            r.eval(f"return redis.call({args})", 0)


def test_select_inside_a_script_leaves_the_caller_alone(r: redis.Redis) -> None:
    r.eval("redis.call('select', 9); redis.call('set', 'in9', '1')", 0)
    assert r.get("in9") is None
    assert r.execute_command("select", 9) and r.get("in9") == "1"


# ------------------------------------------------------------------ sandbox


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ("return a", "Script attempted to access nonexistent global variable 'a'"),
        ("a = 1", "Attempt to modify a readonly table"),
        ("redis.call = nil", "Attempt to modify a readonly table"),
        ("cjson.encode = nil", "Attempt to modify a readonly table"),
        ("string.rep = nil", "Attempt to modify a readonly table"),
        ("setmetatable(_G, {})", "Attempt to modify a readonly table"),
        ("getmetatable(_G).__index = {}", "Attempt to modify a readonly table"),
        ("getmetatable('').__index.upper = nil", "Attempt to modify a readonly table"),
        ("rawset(_G, 'x', 1)", "Attempt to modify a readonly table"),
        ("return io.open('/etc/passwd')", "nonexistent global variable 'io'"),
        ("return os.execute('true')", "nonexistent global variable 'os'"),
        ("return loadfile('/etc/passwd')", "nonexistent global variable 'loadfile'"),
        ("return dofile('/etc/passwd')", "nonexistent global variable 'dofile'"),
        ("return require('os')", "nonexistent global variable 'require'"),
        ("print('x')", "nonexistent global variable 'print'"),
        ("return python", "nonexistent global variable 'python'"),
        ("return debug.getinfo(1)", "nonexistent global variable 'debug'"),
        ("return getfenv(1)", "nonexistent global variable 'getfenv'"),
        ("return loadstring(string.dump(function() return 1 end))()", "attempt to call a nil"),
    ],
)
def test_the_sandbox_refuses(r: redis.Redis, script: str, error: str) -> None:
    with pytest.raises(redis.ResponseError, match=error.replace("(", r"\(").replace(")", r"\)")):
        r.eval(script, 0)


def test_loadstring_code_stays_in_the_sandbox(r: redis.Redis) -> None:
    assert r.eval("return loadstring('return 1 + 1')()", 0) == 2
    with pytest.raises(redis.ResponseError, match="Attempt to modify a readonly table"):
        r.eval("loadstring('x = 1')()", 0)


def test_unpack_of_a_huge_range_is_an_error_not_a_crash(r: redis.Redis) -> None:
    for first, last in (("-2", "2147483647"), ("0", "2147483647")):
        with pytest.raises(redis.ResponseError, match="too many results to unpack"):
            r.eval(f"return {{unpack({{1,2,3}}, {first}, {last})}}", 0)
    assert r.eval("local a = {} for i=1,7999 do a[i] = 1 end return #{unpack(a)}", 0) == 7999
    assert r.ping()


# ------------------------------------------------------------------ libraries


def test_builtin_libraries_match_redis(r: redis.Redis) -> None:
    assert r.eval("return cjson.encode({1, 2, {a='b'}})", 0) == '[1,2,{"a":"b"}]'
    assert r.eval("return cjson.decode('[1,{\"a\":[true]}]')[2].a[1]", 0) == 1
    assert r.eval("return cjson.decode('null') == cjson.null and 1 or 0", 0) == 1
    hexed = "local s = cmsgpack.pack(%s) return (s:gsub('.', function(c) " \
            "return string.format('%%02x', string.byte(c)) end))"
    assert r.eval(hexed % "0.1", 0) == "cb3fb999999999999a"
    assert r.eval(hexed % "-1099511627776", 0) == "d3ffffff0000000000"
    assert r.eval(hexed % "{1, 'a', true}", 0) == "9301a161c3"
    assert r.eval("return cmsgpack.unpack(cmsgpack.pack({x=5})).x", 0) == 5
    assert r.eval("return bit.tohex(65535, -2147483648)", 0) == "0000FFFF"
    assert r.eval("return {bit.band(7, 3), bit.bor(1, 2), bit.lshift(1, 4), bit.bnot(0)}", 0) == [
        3, 3, 16, -1,
    ]
    assert r.eval("return struct.unpack('>I2', struct.pack('>I2', 258))", 0) == 258
    assert r.eval("return struct.size('>iH')", 0) == 6
    assert r.eval("return redis.sha1hex('')", 0) == "da39a3ee5e6b4b0d3255bfef95601890afd80709"


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ("[1,2", "Expected comma or array end but found T_END at character 5"),
        ('{"a" 1}', "Expected colon but found T_NUMBER at character 6"),
        ("[1]x", "Expected the end but found invalid token at character 4"),
        ('"abc', "Expected value but found unexpected end of string at character 5"),
        ("[" * 1100, "Found too many nested data structures (1001) at character 1001"),
    ],
)
def test_cjson_decode_errors_are_lua_cjsons(r: redis.Redis, doc: str, error: str) -> None:
    with pytest.raises(redis.ResponseError, match=r"^user_script:1: " + re.escape(error)):
        r.eval("return cjson.decode(ARGV[1])", 0, doc)


def test_cjson_nests_a_thousand_levels(r: redis.Redis) -> None:
    doc = "[" * 900 + "1" + "]" * 900
    assert r.eval("return cjson.encode(cjson.decode(ARGV[1]))", 0, doc) == doc
    with pytest.raises(redis.ResponseError, match="Cannot serialise, excessive nesting"):
        r.eval("local a = {} a[1] = a return cjson.encode(a)", 0)


# ------------------------------------------------------------------ FUNCTION / FCALL

LIB = """#!lua name=mylib
redis.register_function('myset', function(keys, args)
  return redis.call('set', keys[1], args[1]) end)
redis.register_function{function_name='myget', callback=function(keys, args)
  return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}
"""


def test_function_load_fcall_list_delete(r: redis.Redis) -> None:
    r.function_flush()
    assert r.function_load(LIB) == "mylib"
    assert r.fcall("myset", 1, "k", "v") == "OK"
    assert r.fcall_ro("myget", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Can not execute a script with write flag"):
        r.fcall_ro("myset", 1, "k", "v")
    with pytest.raises(redis.ResponseError, match="Library 'mylib' already exists"):
        r.function_load(LIB)
    listing = [pairs(x) for x in r.function_list(withcode=True)]
    assert listing[0]["library_name"] == "mylib" and listing[0]["library_code"] == LIB
    names = {pairs(f)["name"]: pairs(f) for f in listing[0]["functions"]}
    assert names["myget"]["description"] == "reads" and names["myget"]["flags"] == ["no-writes"]
    stats = pairs(r.function_stats())
    assert pairs(pairs(stats["engines"])["LUA"]) == {"libraries_count": 1, "functions_count": 2}
    assert r.function_delete("mylib")
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("myset", 1, "k", "v")


def test_function_dump_and_restore(r: redis.Redis) -> None:
    r.function_flush()
    r.function_load(LIB)
    payload = r.function_dump()
    r.function_flush()
    assert r.function_restore(payload)
    assert r.fcall("myset", 1, "k", "restored") == "OK"
    with pytest.raises(redis.ResponseError, match="already exists"):
        r.function_restore(payload)
    assert r.function_restore(payload, "REPLACE")
    with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
        r.function_restore(payload[:-1] + bytes([payload[-1] ^ 1]))
    r.function_flush()


def test_library_load_sees_only_the_registration_api(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="nonexistent global variable 'math'"):
        r.function_load("#!lua name=bad\nmath.random()")
    with pytest.raises(redis.ResponseError, match="No functions registered"):
        r.function_load("#!lua name=empty\nreturn 1")
    with pytest.raises(redis.ResponseError, match="FUNCTION LOAD timeout"):
        r.function_load("#!lua name=slow\nwhile true do end")


# ------------------------------------------------------------------ redis-py's Lock


def test_redis_py_lock_acquires_extends_and_releases(r: redis.Redis) -> None:
    lock = r.lock("resource", timeout=10, blocking=False)
    other = r.lock("resource", timeout=10, blocking=False)
    assert lock.acquire()
    assert not other.acquire()  # held
    assert lock.extend(20)  # EVALSHA of redis-py's extend script
    assert 20 < r.pttl("resource") / 1000 <= 30
    assert lock.reacquire()
    assert lock.owned()
    lock.release()
    assert r.get("resource") is None
    assert other.acquire()
    lock.local.token = b"not-the-owner"
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.release()  # the release script refuses: the token is another's
    lock.local.token = b"not-the-owner"  # release() forgot it
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.extend(5)  # so does the extend script
    other.release()


# ------------------------------------------------------------------ busy scripts


def _run_in_thread(srv: Server, *args: object,
                   timeout: float = 30) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        c = srv.client(socket_timeout=timeout)
        try:
            out.append(c.execute_command(*args))
        except redis.RedisError as e:
            out.append(e)
        finally:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _busy(c: redis.Redis) -> bool:
    try:
        c.ping()
    except redis.exceptions.BusyLoadingError:
        return True
    except redis.ResponseError as e:
        return str(e).startswith("Redis is busy") or "BUSY" in str(e)
    return False


BUSY = "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."


def test_a_long_script_answers_busy_and_script_kill_stops_it(make_server) -> None:
    srv = make_server({"lua-time-limit": 50})
    other = srv.client()  # connected before the script
    t, out = _run_in_thread(srv, "EVAL", "local a = 1 while true do a = a + 1 end", 0)
    assert poll(lambda: _busy(other), timeout=20)
    with pytest.raises(redis.ResponseError) as e:
        other.get("x")
    assert str(e.value).endswith(BUSY) or BUSY in str(e.value)
    late = srv.client()  # a connection accepted while the script runs is served too
    assert _busy(late)
    with pytest.raises(redis.ResponseError, match="Redis is busy running a script"):
        late.function_kill()  # the wrong kind of kill
    assert late.script_kill()
    t.join(20)
    assert not t.is_alive()
    assert "Script killed by user with SCRIPT KILL" in str(out[0])
    assert other.ping() and late.ping()
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        other.script_kill()


@ironcache_only
def test_busy_replies_reach_clients_past_fd_1024(make_server) -> None:
    """The busy poll watches every client, whatever its fd number (select() stops at 1024)."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        pytest.skip(f"RLIMIT_NOFILE is {soft}")
    srv = make_server({"lua-time-limit": 50})
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(1100)]
    try:
        last = srv.client()
        assert last.ping()  # connected after 1100 others: a high fd in the server
        t, out = _run_in_thread(srv, "EVAL", "while true do end", 0)
        assert poll(lambda: _busy(last), timeout=20)
        assert last.script_kill()
        t.join(20)
        assert "Script killed" in str(out[0])
    finally:
        for sock in idle:
            sock.close()


def test_pcall_cannot_swallow_script_kill(make_server) -> None:
    srv = make_server({"busy-reply-threshold": 50})
    other = srv.client()
    body = "while true do pcall(function() while true do end end) end"
    t, out = _run_in_thread(srv, "EVAL", body, 0)
    assert poll(lambda: _busy(other), timeout=20)
    assert other.script_kill()
    t.join(20)
    assert not t.is_alive() and "Script killed" in str(out[0])


def test_a_script_that_wrote_is_unkillable_until_shutdown_nosave(make_server) -> None:
    srv = make_server({"lua-time-limit": 50})
    other = srv.client()
    t, out = _run_in_thread(srv, "EVAL", "redis.call('set', 'w', 1) while true do end", 0)
    assert poll(lambda: _busy(other), timeout=20)
    with pytest.raises(redis.ResponseError, match="^UNKILLABLE Sorry the script already"):
        other.script_kill()
    other.shutdown(nosave=True)  # redis-py takes the closed connection as success
    assert srv.wait() == 0
    t.join(20)


@ironcache_only
def test_sigterm_stops_a_busy_script_that_has_not_written(make_server) -> None:
    """SHUTDOWN without NOSAVE is refused while busy (as in Redis); a SIGTERM (systemd's stop
    or restart) stops a script that has not written, then the server, at once."""
    srv = make_server({"lua-time-limit": 50})
    other = srv.client()
    t, out = _run_in_thread(srv, "EVAL", "while true do end", 0)
    assert poll(lambda: _busy(other), timeout=20)
    with pytest.raises(redis.ResponseError, match="Redis is busy"):
        other.execute_command("SHUTDOWN")
    srv.send_signal(signal.SIGTERM)
    assert srv.wait() == 0
    t.join(20)
    assert "Script killed" in str(out[0])


def test_function_kill_stops_a_function(make_server) -> None:
    srv = make_server({"lua-time-limit": 50})
    c = srv.client()
    c.function_load(
        "#!lua name=spin\nredis.register_function('spin', function() while true do end end)"
    )
    t, out = _run_in_thread(srv, "FCALL", "spin", 0)
    assert poll(lambda: _busy(c), timeout=20)
    with pytest.raises(redis.ResponseError, match="FUNCTION KILL or SHUTDOWN NOSAVE"):
        c.get("x")
    assert pairs(pairs(c.function_stats())["running_script"])["name"] == "spin"
    with pytest.raises(redis.ResponseError, match="Redis is busy"):
        c.script_kill()  # an FCALL needs FUNCTION KILL
    assert c.function_kill()
    t.join(20)
    assert not t.is_alive() and "Script killed" in str(out[0])


def test_control_under_the_time_limit_others_wait_and_get_no_busy(make_server) -> None:
    """The control for the tests above: below lua-time-limit nobody gets -BUSY; a client's
    command waits for the script (atomicity) and then runs."""
    srv = make_server({"lua-time-limit": 60000})
    c = srv.client(socket_timeout=30)
    body = "local t = redis.call('time') local s = t[1] * 1000000 + t[2] " \
           "repeat local n = redis.call('time') until n[1] * 1000000 + n[2] - s > 300000 return 1"
    t, out = _run_in_thread(srv, "EVAL", body, 0)
    time.sleep(0.1)
    assert c.ping()  # waited for the script: no BUSY
    t.join(20)
    assert out == [1]


# ------------------------------------------------------------------ persistence


@ironcache_only
@pytest.mark.parametrize("save", ["yes", "no"])
def test_scripts_and_libraries_survive_a_restart_through_the_snapshot(
    make_server, save: str
) -> None:
    """save-on-shutdown yes: the script cache and the libraries come back with the dataset.
    no (the control): the restart loses both."""
    srv = make_server({"save-on-shutdown": save})
    c = srv.client()
    body = "return 'from the cache'"
    digest = c.script_load(body)
    c.function_load(LIB)
    assert srv.stop() == 0
    srv.start()
    c = srv.client()
    if save == "yes":
        assert c.evalsha(digest, 0) == "from the cache"
        assert c.fcall("myset", 1, "k", "v") == "OK"
        assert pairs(c.function_list()[0])["library_name"] == "mylib"
    else:
        with pytest.raises(redis.exceptions.NoScriptError):
            c.evalsha(digest, 0)
        with pytest.raises(redis.ResponseError, match="Function not found"):
            c.fcall("myset", 1, "k", "v")


@ironcache_only
@pytest.mark.parametrize("handover", ["yes", "no"])
@pytest.mark.parametrize("how", ["handover", "crash"])
def test_scripts_and_libraries_survive_handover_and_crash(
    tmp_path: Path, handover: str, how: str
) -> None:
    """handover yes: a SIGTERM handover and a kill -9 (the journal) keep the script cache and
    the libraries. handover no (the control): the next process has neither."""

    from test_handover_restart import FdStore, start_process, systemd_listener

    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no"}
    procs: list[Server] = []
    try:
        procs.append(start_process(tmp_path / "p0", listener, port, store, directives))
        c = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        digest = c.script_load("return 'kept'")
        c.function_load(LIB)
        c.set("marker", "1")
        c.eval("redis.call('set', 'by-script', 'yes')", 0)  # journaled command by command
        assert c.eval("return 'cached by EVAL'", 0) == "cached by EVAL"
        old = procs[-1]
        old.send_signal(signal.SIGTERM if how == "handover" else signal.SIGKILL)
        old.wait()
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        c = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        if handover == "yes":
            assert c.get("marker") == "1" and c.get("by-script") == "yes"
            assert c.evalsha(digest, 0) == "kept"
            assert c.evalsha(sha("return 'cached by EVAL'"), 0) == "cached by EVAL"
            assert c.fcall("myset", 1, "k", "v") == "OK"
            info = c.info("handover")
            assert info["handover_source"] == ("restart" if how == "handover" else "crash")
        else:
            assert c.get("marker") is None and c.get("by-script") is None
            with pytest.raises(redis.exceptions.NoScriptError):
                c.evalsha(digest, 0)
            with pytest.raises(redis.exceptions.NoScriptError):
                c.evalsha(sha("return 'cached by EVAL'"), 0)
            with pytest.raises(redis.ResponseError, match="Function not found"):
                c.fcall("myset", 1, "k", "v")
    finally:
        for srv in procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        store.close()
        listener.close()


# ------------------------------------------------------------------ the state format


@ironcache_only
def test_the_state_carries_scripts_and_libraries() -> None:
    import marshal
    import zlib

    from ironcache import state
    from ironcache.keyspace import Keyspace

    ks = Keyspace(2)
    ks.scripts[sha("return 1").encode()] = b"return 1"
    ks.libraries["mylib"] = LIB.encode()
    body, dummy = state.decode(state.encode({}, ks, []), "test")
    fresh = Keyspace(2)
    state.load_scripting(fresh, body)
    assert fresh.scripts == ks.scripts and fresh.libraries == ks.libraries
    # A state written before scripting existed (minor 0) loads with neither.
    old = marshal.dumps({"meta": {}, "dbs": [], "clients": []}, 2)
    blob = state.HEADER.pack(state.MAGIC, state.FORMAT, 0, 0, len(old), zlib.crc32(old)) + old
    body, dummy = state.decode(blob, "old")
    state.load_scripting(fresh, body)
    assert fresh.scripts == {} and fresh.libraries == {}
    # Wrong types are refused before anything is loaded.
    bad = marshal.dumps({"meta": {}, "dbs": [], "scripting": {"scripts": {b"x": 1}}}, 2)
    blob = state.HEADER.pack(state.MAGIC, state.FORMAT, 1, 0, len(bad), zlib.crc32(bad)) + bad
    with pytest.raises(state.StateError, match="malformed scripts"):
        state.decode(blob, "bad")


@ironcache_only
def test_a_crash_during_a_busy_script_replays_none_of_its_writes(tmp_path: Path) -> None:
    """Other clients' -BUSY replies flush the journal while a script runs: the script's own
    writes must not go with them, or a kill -9 would bring back half a script."""

    from test_handover_restart import FdStore, start_process, systemd_listener

    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": "yes", "save-on-shutdown": "no", "lua-time-limit": 50}
    procs: list[Server] = []
    try:
        procs.append(start_process(tmp_path / "p0", listener, port, store, directives))
        other = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        other.set("before", "1")
        srv = procs[0]
        # Writes, then runs about 1.5 s: killed meanwhile, the request is resumed by the next
        # process (crash-safe reading), which runs the script whole once more: 'half' is then 1,
        # or 2 if the first run's write had been replayed from the journal as well.
        spin = (
            "redis.call('incr', 'half') local t = redis.call('time') "
            "local s = t[1] * 1000000 + t[2] repeat local n = redis.call('time') "
            "until n[1] * 1000000 + n[2] - s > 1500000 return 'done'"
        )
        t, out = _run_in_thread(srv, "EVAL", spin, 0)
        assert poll(lambda: _busy(other), timeout=20)  # a reply, so a journal flush
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        c = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        assert c.info("handover")["handover_source"] == "crash"
        assert c.get("before") == "1"
        assert c.get("half") == "1"
        t.join(20)
        assert out == ["done"]  # the resumed request was answered by the next process
    finally:
        for s in procs:
            if s.alive():
                s.send_signal(signal.SIGTERM)
                s.wait()
        store.close()
        listener.close()
