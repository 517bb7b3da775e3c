"""Socket-activated IronCache: the listener belongs to systemd and a restart refuses nobody."""

import shlex

import ironcache_checks as ic


def test_socket_unit_active_enabled_listening(host):
    sock = host.service(ic.SOCKET)
    assert sock.is_enabled
    assert sock.is_running
    assert host.socket("tcp://127.0.0.1:6379").is_listening


def test_service_active_enabled(host):
    svc = host.service(ic.SERVICE)
    assert svc.is_running
    assert svc.is_enabled


def test_serves_through_the_inherited_socket(host):
    info = ic.info_server(host)
    assert info["socket_activated"] == "1"
    assert int(info["listeners_inherited"]) >= 1
    assert info["listeners_bound"] == "0"
    assert int(info["process_id"]) == ic.main_pid(host)


def test_accelerators_for_the_targets_python(host):
    """uvloop and hiredis wheels built for this target's Python are installed and used."""
    venv_python = "/opt/ironcache/current/venv/bin/python"
    version = host.check_output(f"{venv_python} -c 'import sys; print(*sys.version_info[:2])'")
    assert host.check_output(f"{venv_python} -c 'import uvloop, hiredis; print(1)'") == "1"
    wheels = host.check_output("ls /opt/ironcache/current/wheels").split()
    tag = "cp" + version.replace(" ", "")
    ic.record("molecule-default-accelerators", {"python": version, "wheels": wheels})
    for name in ("uvloop", "hiredis"):
        assert any(w.startswith(name + "-") and f"-{tag}-" in w for w in wheels), (tag, wheels)
    assert ic.info_server(host)["multiplexing_api"] == "uvloop"


def test_systemd_holds_the_listener(host):
    lines = ic.listen_lines(host)
    assert lines, "nothing listens on 6379"
    for line in lines:
        assert '("systemd",pid=1,' in line, line


def test_backlog_is_requested_clamped_to_somaxconn(host):
    requested, limit, expected = ic.expected_backlog(host)
    shown = int(host.check_output("systemctl show -p Backlog --value ironcache.socket").strip())
    send_qs = [ic.send_q(line) for line in ic.listen_lines(host)]
    ic.record("molecule-default-backlog", {"requested": requested, "somaxconn": limit,
                                           "Backlog": shown, "ss_send_q": send_qs})
    assert shown == expected
    assert send_qs and all(q == expected for q in send_qs)


def test_ping_set_get(host):
    assert ic.redis_cli(host, "PING").strip() == "PONG"
    assert ic.redis_cli(host, "SET", "molecule:key", "v1").strip() == "OK"
    assert ic.redis_cli(host, "GET", "molecule:key").strip() == "v1"


def test_file_modes(host):
    conf = host.file(ic.CONF)
    assert conf.is_file
    assert conf.mode == 0o640
    assert conf.user == "root"
    assert conf.group == "ironcache"
    data = host.file("/var/lib/ironcache")
    assert data.is_directory
    assert data.user == "ironcache"
    current = host.file("/opt/ironcache/current")
    assert current.is_symlink
    assert host.file("/opt/ironcache/current/bin/ironcache").is_file


def test_security_rating(host):
    exposure = ic.security_exposure(host)
    ic.record("molecule-default-security", {"unit": ic.SERVICE, "exposure": exposure})
    # Debian's own redis-server.service rates 1.1 on this systemd
    assert exposure <= 1.1


def test_restart_under_tight_loop_refuses_nobody(host):
    figures = ic.restart_under_probe(host, restarts=3)
    ic.record("molecule-default-restart", figures)
    pids = figures["main_pids"]
    assert len(set(pids)) == len(pids), f"a restart did not replace the process: {pids}"
    assert figures["ok"] > 0
    assert figures["refused"] == 0, figures
    assert figures["reset"] == 0, figures
    # the socket stayed the same listener the whole time
    assert ic.info_server(host)["socket_activated"] == "1"


def test_sorted_sets_on_the_deployed_sortedcontainers(host):
    """sortedcontainers (a server package the role always installs offline) is in the release
    from its wheel, and sorted sets work through it."""
    venv_python = "/opt/ironcache/current/venv/bin/python"
    path = host.check_output(f"{venv_python} -c 'import sortedcontainers as s; print(s.__file__)'")
    assert path.startswith("/opt/ironcache/current/venv/lib/"), path  # the release, not the host
    wheels = host.check_output("ls /opt/ironcache/current/wheels").split()
    assert any(w.startswith("sortedcontainers-") and w.endswith(".whl") for w in wheels), wheels
    ic.redis_cli(host, "DEL", "molecule:z")
    assert ic.redis_cli(host, "ZADD", "molecule:z", "2", "b", "1", "a", "3", "c").strip() == "3"
    got = ic.redis_cli(host, "ZRANGE", "molecule:z", "0", "-1", "WITHSCORES").split()
    assert got == ["a", "1", "b", "2", "c", "3"], got
    assert ic.redis_cli(host, "TYPE", "molecule:z").strip() == "zset"


def test_lua_scripting_on_the_deployed_lupa(host):
    """lupa (Lua scripting, a server package the role always installs offline) is in the
    release from its wheel, and EVAL runs through it."""
    venv_python = "/opt/ironcache/current/venv/bin/python"
    path = host.check_output(f"{venv_python} -c 'import lupa; print(lupa.__file__)'")
    assert path.startswith("/opt/ironcache/current/venv/lib/"), path  # the release, not the host
    got = ic.redis_cli(host, "EVAL", "return redis.call('INCRBY', KEYS[1], ARGV[1])", "1",
                       "molecule:lua", "5").strip()
    assert got.isdigit() and int(got) >= 5, got


def _as_app(host, *args: str) -> str:
    """A command as the restricted ACL user `app` (molecule.yml): its reply or error line."""
    quoted = " ".join(shlex.quote(a) for a in args)
    out = host.run(f"REDISCLI_AUTH=app-secret-molecule redis-cli --no-auth-warning -h 127.0.0.1 "
                   f"--user app {quoted}")
    return (out.stdout + out.stderr).strip()


def _check_app_user(host):
    assert _as_app(host, "ACL", "WHOAMI") == "app"
    assert _as_app(host, "SET", "app:acl", "v") == "OK"
    assert _as_app(host, "GET", "app:acl") == "v"
    assert "NOPERM" in _as_app(host, "GET", "molecule:key")  # a key outside ~app:*
    assert "NOPERM" in _as_app(host, "SET", "other", "x")
    assert "NOPERM" in _as_app(host, "FLUSHALL")  # -@dangerous
    assert "NOPERM" in _as_app(host, "CONFIG", "GET", "port")  # not in @read/@write
    wrong = host.run("redis-cli --no-auth-warning -h 127.0.0.1 --user app --pass wrong PING")
    assert "WRONGPASS" in wrong.stdout + wrong.stderr


def test_acl_users_file_and_restricted_user(host):
    acl = host.file("/etc/ironcache/users.acl")
    assert acl.is_file and acl.mode == 0o600
    assert acl.user == "ironcache" and acl.group == "ironcache"
    assert "app-secret-molecule" not in acl.content_string  # hashes only
    assert ic.redis_cli(host, "ACL", "USERS").split() == ["app", "default", "prober"]
    _check_app_user(host)


# One connection authenticated as `app` across a restart of the service (the handover keeps
# it): same identity and rules after, on the same socket.
KEPT_CONNECTION = r"""
import socket, subprocess
s = socket.create_connection(("127.0.0.1", 6379), timeout=30)
f = s.makefile("rb")
def call(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    line = f.readline().strip()
    return f.readline().strip() if line.startswith(b"$") and line != b"$-1" else line
print(call(b"AUTH", b"app", b"app-secret-molecule").decode())
subprocess.run(["systemctl", "restart", "ironcache.service"], check=True)
print(call(b"ACL", b"WHOAMI").decode())
print(call(b"GET", b"app:acl").decode())
print(call(b"GET", b"molecule:key").decode()[:6])
"""


def test_restricted_user_across_a_restart(host):
    old = ic.main_pid(host)
    out = host.check_output(f"python3 -c {shlex.quote(KEPT_CONNECTION)}").split()
    assert out == ["+OK", "app", "v", "-NOPER"], out
    ic.wait_replaced(host, old)
    ic.wait_serving(host)
    _check_app_user(host)


def test_tls_listener_held_by_systemd(host):
    """The TLS port is ironcache-tls.socket's (FileDescriptorName=tls), adopted by that name as
    the TLS listener; ironcache.socket holds the plain port only."""
    sock = host.service("ironcache-tls.socket")
    assert sock.is_enabled
    assert sock.is_running
    shown = host.check_output("systemctl show -p FileDescriptorName --value ironcache-tls.socket")
    assert shown.strip() == "tls"
    assert "6380" not in host.file("/etc/systemd/system/ironcache.socket").content_string
    unit = host.file("/etc/systemd/system/ironcache.service").content_string
    assert "Sockets=ironcache.socket ironcache-tls.socket" in unit
    triggers = host.check_output("systemctl show -p TriggeredBy --value ironcache.service").split()
    assert {"ironcache.socket", "ironcache-tls.socket"} <= set(triggers), triggers
    lines = ic.listen_lines(host, port=6380)
    assert lines, "nothing listens on 6380"
    for line in lines:
        assert '("systemd",pid=1,' in line, line
    pid = ic.main_pid(host)
    log = host.check_output(f"journalctl _PID={pid} -n 200 --no-pager -o cat")
    assert "127.0.0.1:6380 (TLS)" in log, log
    assert "by its address" not in log and "closing inherited fd" not in log, log


def test_tls_files_modes(host):
    for name, mode in (("ironcache.crt", 0o644), ("ca.crt", 0o644), ("ironcache.key", 0o640)):
        f = host.file(f"{ic.TLS_DIR}/{name}")
        assert f.is_file, name
        assert (f.mode, f.user, f.group) == (mode, "root", "ironcache"), name
    assert "BEGIN PRIVATE KEY" in host.file(f"{ic.TLS_DIR}/ironcache.key").content_string


def test_redis_cli_tls(host):
    """redis-cli --tls with a client certificate of the CA is served; without one it is
    refused (tls-auth-clients yes); the plain port serves the same data."""
    done = ic.redis_cli_tls(host, "SET", "molecule:tls", "over-tls")
    assert done.stdout.strip() == "OK", done.stdout + done.stderr
    assert ic.redis_cli(host, "GET", "molecule:tls").strip() == "over-tls"
    refused = ic.redis_cli_tls(host, "PING", client_cert=False)
    assert "PONG" not in refused.stdout, refused.stdout
    plain_on_tls = host.run("redis-cli -h 127.0.0.1 -p 6380 PING")
    assert "PONG" not in plain_on_tls.stdout


def test_tls_clients_across_restarts(host):
    """The TLS probe (connect, handshake, PING, close in a tight loop) through two restarts:
    the queued TLS listener refuses nobody; a counter written over TLS survives them."""
    ic.redis_cli_tls(host, "SET", "molecule:tls-counter", "0")
    for _ in range(5):
        ic.redis_cli_tls(host, "INCR", "molecule:tls-counter")
    figures = ic.restart_under_probe(
        host, port=6380, restarts=2, serving_port=6379,
        probe_args=f"--tls --tls-ca-file {ic.TLS_DIR}/ca.crt --tls-cert-file "
                   f"{ic.TLS_DIR}/ironcache.crt --tls-key-file {ic.TLS_DIR}/ironcache.key")
    ic.record("molecule-default-tls-restart", figures)
    assert figures["ok"] > 0, figures
    assert figures["refused"] == 0, figures
    assert figures["reset"] == 0, figures
    assert figures["other_errors"] == 0, figures
    got = ic.redis_cli_tls(host, "INCR", "molecule:tls-counter").stdout.strip()
    assert got == "6", got
