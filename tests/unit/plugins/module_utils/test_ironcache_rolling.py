# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Behaviour of the rolling restart logic against a simulated systemd and server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import threading

import pytest

from ansible_collections.ironcache.ironcache.plugins.module_utils import ironcache_rolling as rr


class Clock:
    """Fake monotonic clock; sleeping advances it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.001)


class FakeHost:
    """systemd + an IronCache server whose version is the release `current` points at.

    mode: "ok" (the new process is ready after 0.3 s), "exits" (it exits during start-up),
    "hang" (never ready), "wrong" (ready, reports another version).
    """

    def __init__(self, clock, releases, mode="ok", socket_state=("active", "running"),
                 service_state="active", check_rc=0, failing_versions=()):
        self.clock = clock
        self.releases = releases
        self.mode = mode
        self.socket_state = socket_state
        self.active = service_state
        self.sub = "running" if service_state == "active" else "dead"
        self.pid = 100 if service_state == "active" else 0
        self.next_pid = 200
        self.start_at = 0
        self.exit_at = 0
        self.ready_at = None
        self.calls = []
        self.check_rc = check_rc
        self.failing_versions = set(failing_versions)
        self.version = releases.current()
        self.need_reload = "no"
        self.handover_text = ""
        # systemd's start limit: starts since the last reset-failed; the next start beyond
        # `start_limit` fails the unit with start-limit-hit (and the socket with it)
        self.start_limit = None
        self.starts = 0
        self.n_restarts = 0
        # per-unit socket states overriding socket_state (e.g. ironcache-tls.socket)
        self.unit_states = {}
        # the new process fails the TLS handshake (e.g. a key that does not fit)
        self.tls_broken = False
        self.tls_queries = []

    def _tick(self):
        now = self.clock()
        if self.ready_at is not None and now >= self.ready_at:
            self.ready_at = None
            if self.pending == "exits":
                # Restart=on-failure: systemd schedules the next start (a crash loop)
                self.active, self.sub = "activating", "auto-restart"
                self.exit_at = int(now * 1e6)
                self.n_restarts += 1
                self.pid = 0
            elif self.pending != "hang":
                self.active, self.sub = "active", "running"

    def run_command(self, argv):
        self.calls.append(list(argv))
        if argv[0] == "journalctl":
            return 0, "starting\nironcache: this release is broken\n", ""
        if argv[0] != "systemctl":
            if argv[1] == "check-config":
                if self.check_rc:
                    return self.check_rc, "", "ironcache: %s:3: unknown directive 'bogus'" % argv[2]
                return 0, "configuration OK", ""
            raise AssertionError(argv)
        self._tick()
        verb = argv[1]
        if verb == "show":
            unit = argv[2]
            if unit.endswith(".socket"):
                state = self.unit_states.get(unit, self.socket_state)
                return 0, ("LoadState=loaded\nActiveState=%s\nSubState=%s\n"
                           "Listen=127.0.0.1:6379 (Stream)\n" % state), ""
            return 0, "\n".join([
                "LoadState=loaded", "ActiveState=%s" % self.active, "SubState=%s" % self.sub,
                "Result=success",
                "MainPID=%d" % (self.pid if self.active in ("active", "activating") else 0),
                "ExecMainPID=%d" % self.pid, "ExecMainCode=0", "ExecMainStatus=0",
                "ExecMainStartTimestampMonotonic=%d" % self.start_at,
                "ExecMainExitTimestampMonotonic=%d" % self.exit_at,
                "NRestarts=%d" % self.n_restarts,
                "FragmentPath=/nonexistent/ironcache.service",
                "NeedDaemonReload=%s" % self.need_reload,
            ]), ""
        if verb == "restart":
            assert argv[-1].endswith(".service"), "only the service is ever restarted"
            now = self.clock()
            self.starts += 1
            if self.start_limit is not None and self.starts > self.start_limit:
                self.active, self.sub = "failed", "failed"
                self.socket_state = ("failed", "failed")
                return 1, "", "Job for ironcache.service failed (start-limit-hit)"
            self.n_restarts = 0
            self.version = self.releases.current()
            self.pid, self.next_pid = self.next_pid, self.next_pid + 1
            self.start_at = int((now + 0.05) * 1e6)
            self.exit_at = 0
            self.active, self.sub = "activating", "start"
            self.pending = "exits" if self.version in self.failing_versions else self.mode
            if self.mode == "exits" and self.version not in self.failing_versions:
                self.pending = "ok"
            self.ready_at = now + 0.3
            return 0, "", ""
        if verb == "reload":
            # ExecReload=: the new release loads beside the old process; a release that fails
            # leaves the old one serving and the job fails.
            if self.releases.current() in self.failing_versions:
                return 1, "", "Job for ironcache.service failed because the control process exited"
            self.version = self.releases.current()
            self.pid, self.next_pid = self.next_pid, self.next_pid + 1
            self.pending = self.mode
            return 0, "", ""
        if verb == "daemon-reload":
            self.need_reload = "no"
            return 0, "", ""
        if verb == "reset-failed":
            self.starts = 0
            if self.active == "failed":
                self.active, self.sub = "inactive", "dead"
            return 0, "", ""
        if verb == "start":
            return 0, "", ""
        raise AssertionError(argv)

    def query(self, host, port, unix_path, password, commands, timeout=2.0, tls=None):
        self._tick()
        if self.active != "active":
            raise rr.RespError("cannot connect: [Errno 111] Connection refused")
        if tls is not None:
            self.tls_queries.append((host, port, tls))
            if self.tls_broken and self.pid >= 200:
                raise rr.RespError("TLS handshake with %s:%s failed: wrong version number"
                                   % (host, port))
        out = []
        for c in commands:
            if c[0] == "PING":
                out.append("PONG")
            elif c[1:] == ["handover"]:
                # a release with handover answers the section; an older one answers nothing
                out.append(self.handover_text if self.pid >= 200 else "")
            else:
                version = self.version
                if self.mode == "wrong" and self.pid >= 200:
                    version = "9.9.9"
                out.append("# Server\r\nironcache_version:%s\r\nprocess_id:%d\r\nstartup_ms:150\r\n"
                           % (version, self.pid))
        return out

    def restarts(self):
        return [c for c in self.calls if c[:2] == ["systemctl", "restart"]]


class FakeProber:
    instances = []

    def __init__(self, figures=None, **kwargs):
        self.kwargs = kwargs
        self.figures = figures or {}
        self.started = self.stopped = False
        FakeProber.instances.append(self)

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True
        base = {"attempts": 500, "ok": 500, "refused": 0, "reset": 0, "timeouts": 0,
                "other_errors": 0, "p50_ms": 0.3, "p99_ms": 2.0, "max_ms": 180.0,
                "longest_gap_ms": 181.0, "first_error": None, "samples": [[0, 0.3, "ok"]]}
        base.update(self.figures)
        return base


def make_releases(tmp_path, versions=("1.0.0", "2.0.0"), current="2.0.0"):
    rel = tmp_path / "releases"
    for i, v in enumerate(versions):
        d = rel / v / "src" / "ironcache"
        d.mkdir(parents=True)
        (d / "_version.py").write_text('__version__ = "%s"\n' % v)
        os.utime(str(rel / v), (1000 + i, 1000 + i))
    os.symlink(os.path.join("releases", current), str(tmp_path / "current"))
    return rr.Releases(str(tmp_path))


def params(**kw):
    p = {"service": "ironcache.service", "socket": "ironcache.socket", "socket_activation": True,
         "host": "127.0.0.1", "port": 6379, "unix_path": None, "password": None,
         "expected_version": "2.0.0", "config": "/etc/ironcache/ironcache.conf",
         "ironcache_bin": None, "install_dir": None, "rollback": False, "timeout": 5.0,
         "probe": True, "probe_max_seconds": 60.0, "fail_on_refused": True}
    p.update(kw)
    return p


def build(tmp_path, figures=None, host_kw=None, releases_kw=None, **kw):
    clock = Clock()
    releases = make_releases(tmp_path, **(releases_kw or {}))
    p = params(install_dir=str(tmp_path), **kw)
    host = FakeHost(clock, releases, **(host_kw or {}))
    # the old process runs what current pointed at before the role switched it
    host.version = "1.0.0"
    FakeProber.instances = []

    def factory(**k):
        return FakeProber(figures=figures, **k)

    restart = rr.RollingRestart(p, host.run_command, prober_factory=factory, query=host.query,
                                clock=clock, sleep=clock.sleep, releases=releases)
    return restart, host


def test_reports_what_the_new_process_took_over(tmp_path):
    restart, host = build(tmp_path)
    host.handover_text = ("# Handover\r\nhandover_enabled:1\r\nhandover_source:restart\r\n"
                          "handover_connections:12\r\nhandover_keys:1000\r\n"
                          "handover_bytes:65536\r\nhandover_load_ms:3.5\r\n"
                          "handover_total_ms:140\r\n")
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["handover"] == {"source": "restart", "connections": 12, "key_count": 1000,
                               "bytes": 65536, "load_ms": 3.5, "total_ms": 140,
                               "reload_fallback": None}
    assert "handover (restart): 12 connections and 1000 keys kept" in res["msg"]
    assert "fell back" not in res["msg"]


def test_says_why_a_reload_fell_back(tmp_path):
    restart, host = build(tmp_path)
    host.handover_text = ("# Handover\r\nhandover_enabled:1\r\nhandover_source:restart\r\n"
                          "handover_connections:2\r\nhandover_keys:10\r\n"
                          "handover_reload_fallback:not enough memory for a reload\r\n")
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["handover"]["reload_fallback"] == "not enough memory for a reload"
    assert "fell back to the stop-start handover (not enough memory for a reload)" in res["msg"]


def test_no_handover_figures_from_a_server_without_them(tmp_path):
    restart, host = build(tmp_path)
    host.handover_text = ""
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["handover"] is None


def test_success_reports_versions_pids_and_probe(tmp_path):
    restart, host = build(tmp_path)
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["changed"] is True
    assert (res["old_pid"], res["old_version"]) == (100, "1.0.0")
    assert (res["new_pid"], res["new_version"]) == (200, "2.0.0")
    assert res["restart_ms"] >= 300
    assert res["startup_ms"] == 150
    assert res["probe"]["refused"] == 0 and "samples" not in res["probe"]
    assert res["rolled_back"] is False
    prober = FakeProber.instances[0]
    assert prober.started and prober.stopped
    assert host.restarts() == [["systemctl", "restart", "--no-block", "ironcache.service"]]
    assert not any("ironcache.socket" in c and c[1] in ("restart", "stop") for c in host.calls)
    # the start rate counter is cleared right before the deliberate restart
    restart_at = host.calls.index(["systemctl", "restart", "--no-block", "ironcache.service"])
    assert host.calls[restart_at - 1] == ["systemctl", "reset-failed", "ironcache.service"]


def test_back_to_back_restarts_never_reach_the_start_limit(tmp_path):
    """systemd's default limit is 5 starts in 10 s: 30 module runs in a row all succeed."""
    restart, host = build(tmp_path)
    host.start_limit = 5
    for number in range(30):
        failed, res = restart.run()
        assert not failed, "restart %d: %s" % (number + 1, res["msg"])
        host.version = "2.0.0"
    assert len(host.restarts()) == 30
    assert host.socket_state == ("active", "running")


def test_the_fake_start_limit_fails_without_the_reset(tmp_path):
    """Control of the test above: the same restarts without reset-failed hit the limit."""
    restart, host = build(tmp_path)
    host.start_limit = 5
    orig = host.run_command

    def no_reset(argv):
        if argv[:2] == ["systemctl", "reset-failed"]:
            return 0, "", ""
        return orig(argv)

    restart.run_command = no_reset
    outcomes = []
    for dummy in range(7):
        try:
            outcomes.append(restart.run()[0])
        except rr.RollingError as e:
            outcomes.append(str(e))
    assert outcomes[:5] == [False] * 5
    assert any("start-limit-hit" in str(o) or "not listening" in str(o) for o in outcomes[5:])


def test_prober_targets_the_service_address(tmp_path):
    restart, host = build(tmp_path, host="0.0.0.0", port=6380, password="s3cret")
    restart.run()
    kw = FakeProber.instances[0].kwargs
    assert (kw["host"], kw["port"], kw["password"]) == ("127.0.0.1", 6380, "s3cret")


def test_prober_and_queries_authenticate_as_the_acl_user(tmp_path):
    restart, host = build(tmp_path, password="s3cret", username="prober")
    restart.run()
    kw = FakeProber.instances[0].kwargs
    assert (kw["username"], kw["password"]) == ("prober", "s3cret")
    assert restart.password == ["prober", "s3cret"]  # resp_query sends AUTH prober s3cret


def test_resp_query_sends_auth_with_the_username():
    """A real socket: the first command on the connection is AUTH user pass."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = []

    def serve():
        conn, dummy = server.accept()
        data = b""
        while data.count(b"\r\n") < 9:  # AUTH user pass (7 lines) + PING (2 lines)
            data += conn.recv(4096)
        seen.append(data)
        conn.sendall(b"+OK\r\n+PONG\r\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        replies = rr.resp_query("127.0.0.1", server.getsockname()[1], None, ["app", "pw"],
                                [["PING"]])
    finally:
        t.join(5)
        server.close()
    assert replies == ["PONG"]
    assert seen[0].startswith(b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n")


def test_refused_connections_fail_with_counts(tmp_path):
    restart, host = build(tmp_path, figures={"refused": 37, "reset": 2, "attempts": 900,
                                             "first_error": "ConnectionRefusedError"})
    failed, res = restart.run()
    assert failed
    assert "37 refused and 2 reset of 900 connection attempts" in res["msg"]
    assert "ConnectionRefusedError" in res["msg"]
    assert res["new_version"] == "2.0.0" and res["rolled_back"] is False


def test_refused_connections_reported_only_when_allowed(tmp_path):
    restart, host = build(tmp_path, figures={"refused": 5}, fail_on_refused=False)
    failed, res = restart.run()
    assert not failed
    assert res["probe"]["refused"] == 5


def test_socket_not_listening_is_a_precheck_failure(tmp_path):
    restart, host = build(tmp_path, host_kw={"socket_state": ("inactive", "dead")})
    with pytest.raises(rr.RollingError, match="ironcache.socket is not listening"):
        restart.run()
    assert host.restarts() == []


def test_self_bound_service_must_be_active(tmp_path):
    restart, host = build(tmp_path, socket_activation=False,
                          host_kw={"service_state": "inactive"})
    with pytest.raises(rr.RollingError, match="ironcache.service is not active"):
        restart.run()
    assert host.restarts() == []


def test_self_bound_does_not_look_at_the_socket(tmp_path):
    restart, host = build(tmp_path, socket_activation=False,
                          host_kw={"socket_state": ("inactive", "dead")})
    failed, res = restart.run()
    assert not failed, res["msg"]


def test_invalid_config_is_rejected_before_restart(tmp_path):
    restart, host = build(tmp_path, host_kw={"check_rc": 1})
    with pytest.raises(rr.RollingError) as e:
        restart.run()
    assert "unknown directive 'bogus'" in str(e.value)
    assert "check-config" in str(e.value)
    assert host.restarts() == []
    check = [c for c in host.calls if c[0] != "systemctl"][0]
    assert check == [os.path.join(str(tmp_path), "current", "bin", "ironcache"), "check-config",
                     "/etc/ironcache/ironcache.conf"]


def test_empty_config_skips_check(tmp_path):
    restart, host = build(tmp_path, config="", host_kw={"check_rc": 1})
    failed, res = restart.run()
    assert not failed


def test_check_mode_changes_nothing(tmp_path):
    restart, host = build(tmp_path)
    failed, res = restart.run(check_mode=True)
    assert not failed and res["changed"]
    assert "would restart ironcache.service (pid 100, version 1.0.0)" in res["msg"]
    assert host.restarts() == []
    assert FakeProber.instances == []
    assert os.readlink(str(tmp_path / "current")) == os.path.join("releases", "2.0.0")


def test_exiting_release_fails_without_rollback(tmp_path):
    restart, host = build(tmp_path, host_kw={"mode": "exits", "failing_versions": ["2.0.0"]})
    failed, res = restart.run()
    assert failed
    assert "exited during start-up" in res["msg"]
    assert "last log lines: starting | ironcache: this release is broken" in res["msg"]
    assert res["rolled_back"] is False
    assert os.readlink(str(tmp_path / "current")) == os.path.join("releases", "2.0.0")
    assert FakeProber.instances[0].stopped


def test_exiting_release_is_rolled_back(tmp_path):
    restart, host = build(tmp_path, rollback=True,
                          host_kw={"mode": "exits", "failing_versions": ["2.0.0"]})
    failed, res = restart.run()
    assert failed
    assert os.readlink(str(tmp_path / "current")) == os.path.join("releases", "1.0.0")
    assert res["rolled_back"] is True
    assert res["rollback"]["from"] == "2.0.0" and res["rollback"]["to"] == "1.0.0"
    assert res["rollback"]["version"] == "1.0.0"
    assert "exited during start-up" in res["msg"]
    assert "crash loop" in res["msg"]
    assert res["start_failed"] is True
    # rolled back at the first exit, long before systemd's start limit
    assert host.n_restarts == 0 and host.starts <= 2
    assert "rolled back" in res["msg"] and "releases/2.0.0 to releases/1.0.0" in res["msg"]
    assert "serving 1.0.0 again" in res["msg"]
    assert len(host.restarts()) == 2
    assert ["systemctl", "reset-failed", "ironcache.service"] in host.calls


def test_hanging_release_times_out_and_rolls_back(tmp_path):
    restart, host = build(tmp_path, rollback=True, timeout=2.0,
                          host_kw={"mode": "hang", "failing_versions": []})
    # the rolled-back release must come up: only 2.0.0 hangs
    host.mode = "hang"
    orig = host.run_command

    def run_command(argv):
        rc = orig(argv)
        if argv[:2] == ["systemctl", "restart"] and host.version == "1.0.0":
            host.pending = "ok"
        return rc

    restart.run_command = run_command
    failed, res = restart.run()
    assert failed
    assert "did not become healthy within 2s" in res["msg"]
    assert res["rollback"]["to"] == "1.0.0" and res["rollback"]["version"] == "1.0.0"


def test_wrong_version_fails(tmp_path):
    restart, host = build(tmp_path, host_kw={"mode": "wrong"})
    failed, res = restart.run()
    assert failed
    assert "reports ironcache_version 9.9.9, expected 2.0.0" in res["msg"]


def test_rollback_without_previous_release(tmp_path):
    restart, host = build(tmp_path, rollback=True, releases_kw={"versions": ("2.0.0",)},
                          host_kw={"mode": "exits", "failing_versions": ["2.0.0"]})
    failed, res = restart.run()
    assert failed
    assert "no previous release" in res["msg"]
    assert res["rolled_back"] is False


def test_rollback_target_prefers_the_old_process_version(tmp_path):
    releases = make_releases(tmp_path, versions=("0.9.0", "1.0.0", "2.0.0"), current="2.0.0")
    assert releases.rollback_target("1.0.0") == "1.0.0"
    assert releases.rollback_target("0.9.0") == "0.9.0"


def test_rollback_target_falls_back_to_newest_mtime(tmp_path):
    releases = make_releases(tmp_path, versions=("1.10.0", "1.9.0", "2.0.0"), current="2.0.0")
    os.utime(str(tmp_path / "releases" / "1.10.0"), (5000, 5000))
    assert releases.rollback_target(None) == "1.10.0"
    assert releases.rollback_target("3.0.0") == "1.10.0"


def test_rollback_target_none_when_only_current(tmp_path):
    releases = make_releases(tmp_path, versions=("2.0.0",), current="2.0.0")
    assert releases.rollback_target("1.0.0") is None


def test_switch_keeps_relative_link_and_is_atomic(tmp_path):
    releases = make_releases(tmp_path)
    releases.switch("1.0.0")
    assert os.readlink(str(tmp_path / "current")) == os.path.join("releases", "1.0.0")
    assert releases.current() == "1.0.0"
    assert [n for n in os.listdir(str(tmp_path)) if "rollback" in n] == []


def test_switch_keeps_absolute_link(tmp_path):
    releases = make_releases(tmp_path)
    os.unlink(str(tmp_path / "current"))
    os.symlink(str(tmp_path / "releases" / "2.0.0"), str(tmp_path / "current"))
    releases.switch("1.0.0")
    assert os.readlink(str(tmp_path / "current")) == str(tmp_path / "releases" / "1.0.0")


def test_version_key_sorts_numerically():
    names = ["1.10.0", "1.9.0", "1.0.0", "2.0.0rc1", "2.0.0"]
    assert sorted(names, key=rr.version_key)[:3] == ["1.0.0", "1.9.0", "1.10.0"]


def test_read_release_version(tmp_path):
    make_releases(tmp_path)
    assert rr.read_release_version(str(tmp_path / "releases" / "1.0.0")) == "1.0.0"
    assert rr.read_release_version(str(tmp_path / "nowhere"), default="x") == "x"


@pytest.mark.parametrize("given,expected", [
    ("0.0.0.0", "127.0.0.1"), ("-::1", "::1"), ("::", "::1"), ("10.0.0.5", "10.0.0.5"),
    (None, "127.0.0.1"), ("[::1]", "::1"),
])
def test_probe_address(given, expected):
    assert rr.probe_address(given) == expected


def test_parse_info_and_show():
    info = rr.parse_info(
        "# Server\r\nironcache_version:2.0.0\r\nlisteners:tcp:127.0.0.1:6379\r\n\r\n")
    assert info == {"ironcache_version": "2.0.0", "listeners": "tcp:127.0.0.1:6379"}
    assert rr.parse_show("MainPID=12\nListen=a=b\n") == {"MainPID": "12", "Listen": "a=b"}


def _serve_once(listener, replies, seen):
    conn, dummy = listener.accept()
    with conn:
        data = b""
        while data.count(b"\r\n") < seen["expect_lines"]:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        seen["data"] = data
        conn.sendall(replies)


def test_resp_query_sends_auth_and_parses_replies():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen = {"expect_lines": 5 + 3}
    body = b"# Server\r\nironcache_version:1.0.0\r\n"
    replies = b"+OK\r\n$%d\r\n%s\r\n" % (len(body), body)
    t = threading.Thread(target=_serve_once, args=(listener, replies, seen))
    t.start()
    try:
        (info,) = rr.resp_query("127.0.0.1", port, None, "pw", [["INFO", "server"]], timeout=5)
    finally:
        t.join(10)
        listener.close()
    assert seen["data"].startswith(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$4\r\nINFO\r\n")
    assert rr.parse_info(info)["ironcache_version"] == "1.0.0"


def test_resp_query_error_reply_and_refused():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen = {"expect_lines": 3}
    t = threading.Thread(target=_serve_once,
                         args=(listener, b"-NOAUTH Authentication required.\r\n", seen))
    t.start()
    try:
        with pytest.raises(rr.RespError, match="NOAUTH"):
            rr.resp_query("127.0.0.1", port, None, None, [["PING"]], timeout=5)
    finally:
        t.join(10)
        listener.close()
    with pytest.raises(rr.RespError, match="cannot connect"):
        rr.resp_query("127.0.0.1", port, None, None, [["PING"]], timeout=1)


def test_rollback_target_uses_previous_link_when_old_version_unknown(tmp_path):
    releases = make_releases(tmp_path, versions=("0.9.0", "1.0.0", "2.0.0"), current="2.0.0")
    os.utime(str(tmp_path / "releases" / "1.0.0"), (5000, 5000))
    os.symlink(os.path.join("releases", "0.9.0"), str(tmp_path / "previous"))
    assert releases.rollback_target(None) == "0.9.0"


def test_config_only_restart_is_never_rolled_back(tmp_path):
    releases = make_releases(tmp_path)
    assert releases.rollback_target("2.0.0") is None
    restart, host = build(tmp_path / "x", rollback=True, expected_version=None,
                          host_kw={"mode": "exits", "failing_versions": ["2.0.0"]})
    host.version = "2.0.0"
    failed, res = restart.run()
    assert failed and res["rolled_back"] is False
    assert "the release did not change" in res["msg"]
    assert os.readlink(str(tmp_path / "x" / "current")) == os.path.join("releases", "2.0.0")


def test_only_if_outdated_skips_a_process_already_on_the_release(tmp_path):
    restart, host = build(tmp_path, only_if_outdated=True, config=str(tmp_path / "none.conf"))
    host.version = "2.0.0"
    host.start_at = int((restart.clock() - 1.0) * 1e6)  # started a second ago
    restart.wallclock = lambda: 4e9
    failed, res = restart.run()
    assert not failed and res["changed"] is False
    assert "no restart needed" in res["msg"]
    assert host.restarts() == []


def test_only_if_outdated_restarts_when_link_changed_after_start(tmp_path):
    restart, host = build(tmp_path, only_if_outdated=True)
    host.version = "2.0.0"
    host.start_at = int((restart.clock() - 1.0) * 1e6)
    restart.wallclock = lambda: os.lstat(str(tmp_path / "current")).st_mtime + 0.5
    failed, res = restart.run()
    assert not failed and res["changed"] is True
    assert len(host.restarts()) == 1


def test_only_if_outdated_restarts_an_old_version(tmp_path):
    restart, host = build(tmp_path, only_if_outdated=True)
    restart.wallclock = lambda: 4e9
    failed, res = restart.run()
    assert res["changed"] is True and res["new_version"] == "2.0.0"


def test_only_if_outdated_restarts_when_units_need_a_reload(tmp_path):
    restart, host = build(tmp_path, only_if_outdated=True, config=str(tmp_path / "none.conf"))
    host.version = "2.0.0"
    host.need_reload = "yes"
    host.start_at = int((restart.clock() - 1.0) * 1e6)
    restart.wallclock = lambda: 4e9
    failed, res = restart.run()
    assert not failed and res["changed"] is True and res["daemon_reloaded"] is True
    reload_at = host.calls.index(["systemctl", "daemon-reload"])
    assert reload_at < host.calls.index(["systemctl", "restart", "--no-block", "ironcache.service"])


def test_reload_method_reports_the_path_taken(tmp_path):
    restart, host = build(tmp_path, method="reload")
    host.handover_text = ("# Handover\r\nhandover_enabled:1\r\nhandover_source:reload\r\n"
                          "handover_connections:4\r\nhandover_keys:1000\r\n")
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["path"] == "reload" and res["new_pid"] == 200
    assert res["msg"].startswith("reloaded ironcache.service")
    assert ["systemctl", "reload", "ironcache.service"] in host.calls
    assert host.restarts() == []


def test_reload_that_fell_back_reports_restart(tmp_path):
    restart, host = build(tmp_path, method="reload")
    host.handover_text = ("# Handover\r\nhandover_enabled:1\r\nhandover_source:restart\r\n"
                          "handover_connections:4\r\nhandover_keys:1000\r\n")
    failed, res = restart.run()
    assert not failed and res["path"] == "restart"


def test_failed_reload_leaves_the_old_process(tmp_path):
    restart, host = build(tmp_path, method="reload", host_kw={"failing_versions": ["2.0.0"]})
    failed, res = restart.run()
    assert failed
    assert "systemctl reload ironcache.service failed" in res["msg"]
    assert "the old process serves on" in res["msg"]
    assert host.pid == 100 and host.restarts() == []


def test_failed_reload_rolls_back_without_a_restart(tmp_path):
    restart, host = build(tmp_path, method="reload", rollback=True,
                          host_kw={"failing_versions": ["2.0.0"]})
    failed, res = restart.run()
    assert failed and res["rolled_back"] and res["start_failed"]
    assert restart.releases.current() == "1.0.0"
    assert "is serving 1.0.0 again (pid 100, the old process" in res["msg"]
    assert host.pid == 100 and host.restarts() == []
    assert [c for c in host.calls if c[:2] == ["systemctl", "reload"]] == [
        ["systemctl", "reload", "ironcache.service"]]


def test_reload_method_restarts_when_the_unit_changed(tmp_path):
    restart, host = build(tmp_path, method="reload")
    host.need_reload = "yes"
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert res["path"] == "restart" and res["daemon_reloaded"]
    assert len(host.restarts()) == 1
    assert not any(c[:2] == ["systemctl", "reload"] for c in host.calls)
    assert any("restarting instead of reloading" in w for w in restart.warnings)


TLS_CTX = object()  # stands for the ssl.SSLContext the module builds from the tls_* files


def build_tls(tmp_path, figures_by_port=None, host_kw=None, **kw):
    """build() with a TLS port probed beside the plain one; figures per probed port."""
    clock = Clock()
    releases = make_releases(tmp_path)
    p = params(install_dir=str(tmp_path), tls_port=6380, **kw)
    host = FakeHost(clock, releases, **(host_kw or {}))
    host.version = "1.0.0"
    FakeProber.instances = []

    def factory(**k):
        return FakeProber(figures=(figures_by_port or {}).get(k["port"]), **k)

    restart = rr.RollingRestart(p, host.run_command, prober_factory=factory, query=host.query,
                                clock=clock, sleep=clock.sleep, releases=releases,
                                tls_port_ctx=TLS_CTX)
    return restart, host


def test_tls_port_is_probed_beside_the_plain_port(tmp_path):
    restart, host = build_tls(tmp_path, host="10.1.2.3", tls_host="0.0.0.0", password="pw",
                              username="prober")
    failed, res = restart.run()
    assert not failed, res["msg"]
    plain, tls = FakeProber.instances
    assert (plain.kwargs["host"], plain.kwargs["port"], plain.kwargs.get("tls")) == (
        "10.1.2.3", 6379, None)
    assert (tls.kwargs["host"], tls.kwargs["port"], tls.kwargs["tls"]) == (
        "127.0.0.1", 6380, TLS_CTX)
    assert (tls.kwargs["username"], tls.kwargs["password"]) == ("prober", "pw")
    assert plain.stopped and tls.stopped
    assert res["probe_tls"]["ok"] == 500 and "samples" not in res["probe_tls"]
    assert "TLS probe on 127.0.0.1:6380: 500 attempts" in res["msg"]
    # the new process had to answer over TLS before it counted as healthy
    assert ("127.0.0.1", 6380, TLS_CTX) in host.tls_queries


def test_refused_tls_connections_fail_the_restart(tmp_path):
    restart, host = build_tls(tmp_path, figures_by_port={
        6380: {"refused": 4, "attempts": 300, "first_error": "ConnectionRefusedError"}})
    failed, res = restart.run()
    assert failed
    assert "4 refused over TLS of 800 connection attempts" in res["msg"], res["msg"]
    assert res["probe"]["refused"] == 0 and res["probe_tls"]["refused"] == 4


def test_without_tls_port_there_is_one_probe(tmp_path):
    """Control of the two tests above: no tls_port, no TLS probe and no TLS query."""
    restart, host = build(tmp_path)
    failed, res = restart.run()
    assert not failed, res["msg"]
    assert len(FakeProber.instances) == 1 and res["probe_tls"] is None
    assert host.tls_queries == []


def test_tls_socket_unit_must_be_listening(tmp_path):
    restart, host = build_tls(tmp_path, tls_socket="ironcache-tls.socket")
    host.unit_states["ironcache-tls.socket"] = ("inactive", "dead")
    with pytest.raises(rr.RollingError, match="ironcache-tls.socket is not listening"):
        restart.run()
    assert host.restarts() == []


def test_new_process_silent_over_tls_is_rolled_back(tmp_path):
    restart, host = build_tls(tmp_path, rollback=True)
    host.tls_broken = True
    failed, res = restart.run()
    assert failed
    assert "answers on 127.0.0.1:6379 but not over TLS on 127.0.0.1:6380" in res["msg"], res["msg"]
    assert "wrong version number" in res["msg"]
    assert res["rolled_back"] is True


def test_probe_reads_auth_and_ping_replies_arriving_together():
    """AUTH and PING are pipelined: their replies often come in one segment (seen on a real
    server: every attempt failed with "AUTH answered b'+OK\\r\\n+PONG'")."""
    from ansible_collections.ironcache.ironcache.plugins.module_utils import (
        ironcache_probe as probe,
    )

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, dummy = server.accept()
            except OSError:
                continue
            data = b""
            while data.count(b"\r\n") < 9:
                data += conn.recv(4096)
            conn.sendall(b"+OK\r\n+PONG\r\n")  # one segment
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = probe.Prober(port=server.getsockname()[1], password="pw", username="prober",
                         max_attempts=5)
        p.start()
        p.thread.join(20)
        fig = p.stop()
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert fig["ok"] == 5, fig
