"""ACL users: rules and their description compared with redis-server 7.0.15, permission checks
and their NOPERM replies, AUTH/HELLO as users, the ACL log, `user` lines, the ACL file,
`rename-command`, and users and identities across a handover and a crash."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from support import IS_REDIS, RespError, Server, free_port, run_ironcache

ironcache_only = pytest.mark.skipif(IS_REDIS, reason="IronCache's own configuration checks")

# Rules whose description (ACL GETUSER, ACL LIST) must read as Redis writes them.
RULES = [
    ["on", ">p1", "~app:*", "+get", "+set"],
    ["on", "nopass", "allkeys", "allchannels", "+@all", "-@dangerous"],
    ["on", "nopass", "-@all", "+@read", "+@hash", "-hgetall", "%R~r:*", "%W~w:*", "%RW~b:*"],
    ["on", "nopass", "+@all", "-config|set", "-keys", "&news:*", "&ch"],
    ["off", "#" + "a" * 64, "resetchannels", "+select|0", "+client|id"],
    ["on", "nopass", "+@all", "-@all", "+ping", "(~sel* +get)", "(+set ~x)"],
    ["on", "nopass", "+@string", "-@fast", "+@hash", "-hdel"],
    ["reset", "on", "skip-sanitize-payload", ">a", ">b", "<a", "allcommands", "nocommands"],
]


def _norm(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {_norm(k): _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


@pytest.mark.parametrize("rules", RULES, ids=range(len(RULES)))
def test_rules_are_described_as_redis_does(rb: redis.Redis, ref: redis.Redis,
                                           rules: list[str]) -> None:
    for c in (rb, ref):
        c.execute_command("ACL", "DELUSER", "u1")
        assert c.execute_command("ACL", "SETUSER", "u1", *rules) in (b"OK", "OK", True)
    mine = _norm(rb.execute_command("ACL", "GETUSER", "u1"))
    theirs = _norm(ref.execute_command("ACL", "GETUSER", "u1"))
    # Single commands come in the order of each server's command table (Redis: its hash
    # table's), so the rules are compared as sets; everything else exactly.
    for user in (mine, theirs):
        for sel in (user, *user["selectors"]):
            sel["commands"] = sorted(sel["commands"].split())
    assert mine == theirs
    line = [x for x in rb.execute_command("ACL", "LIST") if x.startswith(b"user u1 ")]
    ref_line = [x for x in ref.execute_command("ACL", "LIST") if x.startswith(b"user u1 ")]
    assert sorted(line[0].split()) == sorted(ref_line[0].split())


@pytest.mark.parametrize(
    "rules",
    [["+nosuchcommand"], ["+@nocat"], ["~a", "allkeys", "~b"], ["allchannels", "&x"],
     ["<nopass"], ["#abc"], ["+config|get|x"], ["%X~k"], ["(~a +get"], ["+select|"],
     ["+client|id|x"], ["bogus"]],
)
def test_bad_rules_are_refused_with_redis_words(r: redis.Redis, ref: redis.Redis,
                                                rules: list[str]) -> None:
    errors = []
    for c in (r, ref):
        with pytest.raises(redis.ResponseError) as e:
            c.execute_command("ACL", "SETUSER", "bad", *rules)
        errors.append(str(e.value))
        assert c.execute_command("ACL", "GETUSER", "bad") is None  # nothing applied
    assert errors[0] == errors[1]


def test_acl_cat_lists_categories_and_commands(r: redis.Redis, ref: redis.Redis) -> None:
    assert _norm(r.acl_cat()) == _norm(ref.acl_cat())
    mine = set(_norm(r.acl_cat("keyspace")))
    assert {"del", "keys", "flushdb", "dbsize", "expire"} <= mine
    assert mine <= set(_norm(ref.acl_cat("keyspace")))  # no command Redis lacks
    with pytest.raises(redis.ResponseError, match="Unknown category 'nope'"):
        r.acl_cat("nope")


def _user(srv: Server, name: str, password: str) -> redis.Redis:
    return srv.client(username=name, password=password)


def test_commands_keys_and_channels_are_checked(server: Server, r: redis.Redis) -> None:
    r.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["app:*"],
                  channels=["news"], commands=["+get", "+set", "+publish", "+acl|whoami"],
                  reset=True)
    app = _user(server, "app", "secret")
    assert app.acl_whoami() == "app"
    assert app.set("app:1", "v") is True and app.get("app:1") == "v"
    with pytest.raises(redis.exceptions.NoPermissionError) as e:
        app.get("other")
    assert str(e.value) == (
        "this user has no permissions to access one of the keys used as arguments")
    with pytest.raises(redis.exceptions.NoPermissionError) as e:
        app.delete("app:1")
    assert str(e.value) == "this user has no permissions to run the 'del' command"
    assert app.publish("news", "x") == 0
    with pytest.raises(redis.exceptions.NoPermissionError, match="channels"):
        app.publish("sports", "x")
    log = r.acl_log()
    assert [(x["reason"], x["object"], x["username"]) for x in log[:3]] == [
        ("channel", "sports", "app"), ("command", "del", "app"), ("key", "other", "app")]
    assert r.acl_log_reset() is True and r.acl_log() == []
    r.acl_deluser("app")


def test_read_and_write_key_permissions(server: Server, r: redis.Redis) -> None:
    r.execute_command("ACL", "SETUSER", "rw", "on", ">pw", "+@all", "%R~r:*", "%W~w:*")
    rw = _user(server, "rw", "pw")
    assert rw.get("r:1") is None
    with pytest.raises(redis.exceptions.NoPermissionError):
        rw.set("r:1", "x")
    assert rw.set("w:1", "x") is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        rw.get("w:1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        rw.set("w:1", "y", get=True)  # SET ... GET reads the key too
    assert rw.copy("r:1", "w:2") is False  # COPY reads its source and writes its target
    assert r.execute_command("ACL", "DRYRUN", "rw", "COPY", "w:1", "w:2") == (
        "This user has no permissions to access the 'w:1' key")
    r.acl_deluser("rw")


def test_auth_hello_and_wrongpass(server: Server, r: redis.Redis) -> None:
    r.execute_command("ACL", "SETUSER", "h", "on", ">pw", "+@all", "~*")
    with server.raw() as c:
        assert c.call("AUTH", "h", "bad") == RespError(
            "WRONGPASS invalid username-password pair or user is disabled.")
        assert c.call("AUTH", "nobody", "pw") == RespError(
            "WRONGPASS invalid username-password pair or user is disabled.")
        hello = c.call("HELLO", "2", "AUTH", "h", "pw")
        assert b"proto" in hello
        assert c.call("ACL", "WHOAMI") == b"h"
        assert c.call("RESET") == "RESET"
        assert c.call("ACL", "WHOAMI") == b"default"
    entry = r.acl_log()[0]
    assert (entry["reason"], entry["object"], entry["username"]) == ("auth", "AUTH", "nobody")
    r.execute_command("ACL", "SETUSER", "h", "off")
    with server.raw() as c:
        assert c.call("AUTH", "h", "pw") == RespError(
            "WRONGPASS invalid username-password pair or user is disabled.")
    r.acl_deluser("h")


def test_deluser_closes_its_connections(server: Server, r: redis.Redis) -> None:
    r.execute_command("ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*")
    with server.raw() as c:
        assert c.call("AUTH", "gone", "pw") == "OK"
        assert r.acl_deluser("gone") == 1
        assert c.is_closed()


def test_restricted_user_in_multi_and_scripts(server: Server, r: redis.Redis) -> None:
    r.execute_command("ACL", "SETUSER", "m", "on", ">pw", "+@all", "-del", "~ok*")
    m = _user(server, "m", "pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        m.eval("return redis.call('get', 'secret')", 0)
    assert m.eval("return redis.call('set', 'ok1', 'v')", 0) == "OK"
    with server.raw() as c:
        assert c.call("AUTH", "m", "pw") == "OK"
        assert c.call("MULTI") == "OK"
        assert c.call("DEL", "ok1") == RespError(
            "NOPERM this user has no permissions to run the 'del' command")
        assert c.call("EXEC") == RespError(
            "EXECABORT Transaction discarded because of previous errors.")
    r.acl_deluser("m")


def test_requirepass_is_the_default_users_password(make_server: Callable[..., Server]) -> None:
    srv = make_server({"requirepass": "pw"}, password="pw")
    c = srv.client()
    assert c.acl_getuser("default")["passwords"] == [
        "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"]
    c.config_set("requirepass", "")
    assert "nopass" in c.acl_getuser("default")["flags"]
    with srv.raw() as raw:
        assert raw.call("PING") == "PONG"


@ironcache_only
def test_user_lines_aclfile_and_save_load(make_server: Callable[..., Server],
                                          tmp_path: Path) -> None:
    conf = tmp_path / "users.conf"
    conf.write_text("user default on nopass ~* &* +@all -flushall\nuser ro on >pw ~* +@read\n")
    srv = make_server(config_file=conf)
    c = srv.client()
    assert c.acl_users() == ["default", "ro"]
    with pytest.raises(redis.exceptions.NoPermissionError):
        c.flushall()
    with pytest.raises(redis.ResponseError, match="not configured to use an ACL file"):
        c.acl_save()
    acl = tmp_path / "users.acl"
    acl.write_text("user default on nopass ~* &* +@all\nuser app on >pw ~app:* +get\n")
    srv2 = make_server({"aclfile": str(acl)})
    c2 = srv2.client()
    assert c2.acl_users() == ["app", "default"]
    c2.execute_command("ACL", "SETUSER", "new", "on", ">x", "+ping")
    assert c2.acl_save() is True
    assert (os.stat(acl).st_mode & 0o777) == 0o600  # it holds password hashes
    assert "user new on #" in acl.read_text()
    acl.write_text("user default on nopass ~* &* +@all\nuser other on nopass +@all\n")
    assert c2.acl_load() is True
    assert c2.acl_users() == ["default", "other"]
    acl.write_text("user default on nopass ~* &* +@all\nuser bad on +nosuch\n")
    with pytest.raises(redis.ResponseError, match="Unknown command or category name in ACL"):
        c2.acl_load()
    assert c2.acl_users() == ["default", "other"]  # a bad file changes nothing


@ironcache_only
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("user app on +nosuch\n", "Error in applying operation '+nosuch': Unknown command"),
        ("user app on %X~k\n", "Syntax error"),
        ("app on +@all\n", "should start with user keyword"),
        ("user a on\nuser a off\n", "Duplicate user 'a'"),
        (None, "No such file or directory"),
    ],
)
def test_a_bad_aclfile_is_refused_with_its_reason(tmp_path: Path, content: str | None,
                                                  reason: str) -> None:
    acl = tmp_path / "users.acl"
    if content is not None:
        acl.write_text(content)
    conf = tmp_path / "ironcache.conf"
    conf.write_text(f"port {free_port()}\naclfile {acl}\ndir {tmp_path}\n")
    checked = run_ironcache("check-config", str(conf))
    assert checked.returncode == 1, checked.stdout
    assert reason in checked.stderr and "Traceback" not in checked.stderr
    started = run_ironcache("serve", str(conf))
    assert started.returncode == 1
    assert reason in started.stderr and "Traceback" not in started.stderr


@ironcache_only
def test_the_control_a_good_aclfile_checks(tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text("user app on >pw ~app:* +get\n")
    conf = tmp_path / "ironcache.conf"
    conf.write_text(f"aclfile {acl}\ndir {tmp_path}\n")
    checked = run_ironcache("check-config", str(conf))
    assert checked.returncode == 0, checked.stderr


@ironcache_only
def test_rename_command(make_server: Callable[..., Server], tmp_path: Path) -> None:
    conf = tmp_path / "rename.conf"
    conf.write_text("rename-command flushall ''\nrename-command config cfg-9f2\n")
    srv = make_server(config_file=conf)
    c = srv.client()
    with pytest.raises(redis.ResponseError, match="(?i)unknown command 'flushall'"):
        c.flushall()
    with pytest.raises(redis.ResponseError, match="(?i)unknown command 'config'"):
        c.config_get("port")
    assert c.execute_command("CFG-9F2", "GET", "maxclients") in (
        ["maxclients", "10000"], {"maxclients": "10000"})
    conf = tmp_path / "bad.conf"
    conf.write_text("rename-command nosuchcommand x\n")
    checked = run_ironcache("check-config", str(conf))
    assert checked.returncode == 1 and "no such command 'nosuchcommand'" in checked.stderr


@ironcache_only
@pytest.mark.parametrize("how", ["handover", "crash"])
@pytest.mark.parametrize("handover", ["yes", "no"])
def test_users_and_identities_survive_handover_and_crash(tmp_path: Path, how: str,
                                                         handover: str) -> None:
    """handover yes: a user made by ACL SETUSER and a connection authenticated as it keep
    their rules and identity across a SIGTERM handover and a kill -9 (the journal).
    handover no (the control): the user is gone and the connection with it."""
    from test_handover_restart import FdStore, start_process, systemd_listener

    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no"}
    procs: list[Server] = []
    try:
        procs.append(start_process(tmp_path / "p0", listener, port, store, directives))
        admin = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set",
                              "+acl|whoami")
        app = redis.Redis(port=port, username="app", password="pw", decode_responses=True,
                          socket_timeout=10, single_connection_client=True)
        assert app.set("app:1", "v") is True
        old = procs[-1]
        old.send_signal(signal.SIGTERM if how == "handover" else signal.SIGKILL)
        old.wait()
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        admin = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        if handover == "yes":
            assert admin.acl_users() == ["app", "default"]
            assert app.acl_whoami() == "app"  # the same connection, the same identity
            assert app.get("app:1") == "v"
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.get("other")
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.delete("app:1")
        else:
            assert admin.acl_users() == ["default"]
            with pytest.raises(redis.ConnectionError):
                app.acl_whoami()
    finally:
        for srv in procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        store.close()
        listener.close()
