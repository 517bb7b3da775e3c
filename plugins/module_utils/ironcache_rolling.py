# -*- coding: utf-8 -*-

# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Restart ironcache.service under a probing client and judge the result.

Shared by the ``rolling_restart`` module and its unit tests. Standard library only and
Python 3.8 syntax: this file runs on the managed host. Every external effect (commands,
RESP queries, clock, sleep, prober, filesystem link switch) goes through an injectable
callable so the logic can be tested without systemd.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import ssl
import time

DEFAULT_INSTALL_DIR = "/opt/ironcache"
VERSION_RE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.M)


class RollingError(Exception):
    """A failure with a message meant for the operator.

    start_failed: the new process exited during start-up (a release that cannot start: systemd
    restarts it in a loop until its start limit, so the module rolls back at the first exit).
    old_serves: a reload failed and the old process serves on (a rollback only switches back).
    """

    def __init__(self, msg, start_failed=False, old_serves=False):
        super(RollingError, self).__init__(msg)
        self.start_failed = start_failed
        self.old_serves = old_serves


class RespError(Exception):
    """The server answered with a RESP error, or the connection failed."""


# --------------------------------------------------------------------------- RESP client


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RespError("connection closed by the server")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+",):
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return None
            return self.exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.reply() for dummy in range(n)]
        raise RespError("unexpected reply %r" % line[:40])


def connect_address(host, port, unix_path, timeout, tls=None):
    """Open a connection to the server (unix socket when given, else TCP; TLS with the
    ssl.SSLContext ``tls``)."""
    if unix_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(unix_path)
        except Exception:
            s.close()
            raise
        return s
    s = socket.create_connection((host, port), timeout=timeout)
    if tls is None:
        return s
    try:
        return tls.wrap_socket(s)
    except ssl.SSLError as e:
        s.close()
        why = getattr(e, "verify_message", None) or e.reason or str(e)
        raise RespError("TLS handshake with %s:%s failed: %s" % (host, port, why)) from e
    except BaseException:
        s.close()
        raise


def resp_query(host, port, unix_path, password, commands, timeout=2.0, tls=None):
    """Send each command (a list of args) on one connection; return the replies."""
    try:
        s = connect_address(host, port, unix_path, timeout, tls)
    except OSError as e:
        raise RespError("cannot connect: %s" % e) from e
    try:
        s.settimeout(timeout)
        if password:  # a password, or [username, password] for an ACL user
            auth = list(password) if isinstance(password, (list, tuple)) else [password]
            commands = [["AUTH"] + auth] + list(commands)
        s.sendall(b"".join(_encode(c) for c in commands))
        reader = _Reader(s)
        replies = [reader.reply() for dummy in commands]
        return replies[1:] if password else replies
    except (OSError, ValueError) as e:
        raise RespError("%s: %s" % (type(e).__name__, e)) from e
    finally:
        s.close()


def parse_info(text):
    """INFO text -> dict of str (section headers and blank lines skipped)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = v
    return out


def probe_address(host):
    """Map a bind address to one a local client can connect to."""
    host = (host or "127.0.0.1").lstrip("-")
    if host in ("0.0.0.0", "*", ""):
        return "127.0.0.1"
    if host in ("::", "[::]", "::*"):
        return "::1"
    return host.strip("[]")


# --------------------------------------------------------------------------- systemd


def parse_show(text):
    """`systemctl show -p ...` output -> dict."""
    out = {}
    for line in (text or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def to_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


SERVICE_PROPS = (
    "ActiveState", "SubState", "Result", "MainPID", "ExecMainPID", "ExecMainStatus",
    "ExecMainCode", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic",
    "NRestarts", "LoadState", "FragmentPath", "NeedDaemonReload",
)
SOCKET_PROPS = ("ActiveState", "SubState", "Result", "Listen", "LoadState")


# --------------------------------------------------------------------------- releases


def version_key(name):
    """Sort key for release directory names: numeric parts numerically."""
    parts = re.split(r"[.\-+_]", name)
    key = []
    for p in parts:
        if p.isdigit():
            key.append((1, int(p), ""))
        else:
            key.append((0, 0, p))
    return key


def read_release_version(release_dir, default=None):
    path = os.path.join(release_dir, "src", "ironcache", "_version.py")
    try:
        with open(path) as f:
            m = VERSION_RE.search(f.read())
    except (IOError, OSError):
        return default
    return m.group(1) if m else default


class Releases:
    """The `current` link and the releases/ directory under install_dir."""

    def __init__(self, install_dir):
        self.install_dir = install_dir
        self.link = os.path.join(install_dir, "current")
        self.releases_dir = os.path.join(install_dir, "releases")

    def link_target(self, name):
        """Release name a link under install_dir points at, or None."""
        try:
            target = os.readlink(os.path.join(self.install_dir, name))
        except (IOError, OSError):
            return None
        return os.path.basename(os.path.normpath(target))

    def current(self):
        """Name of the release `current` points at, or None."""
        return self.link_target("current")

    def names(self):
        try:
            entries = os.listdir(self.releases_dir)
        except (IOError, OSError):
            return []
        return sorted(
            (e for e in entries if os.path.isdir(os.path.join(self.releases_dir, e))),
            key=version_key,
        )

    def rollback_target(self, previous_version):
        """Release to roll back to, or None.

        1. The release named after the version the old process reported before the restart
           (INFO server ironcache_version). When that version IS the current release, the
           release did not change and there is nothing to roll back to (None).
        2. Otherwise (old version unknown or its directory gone) the release the `previous`
           link points at, then the most recently modified release directory other than the
           current one (ties broken by version sort).
        """
        current = self.current()
        if previous_version and previous_version == current:
            return None
        names = [n for n in self.names() if n != current]
        if not names:
            return None
        if previous_version and previous_version in names:
            return previous_version
        previous = self.link_target("previous")
        if previous in names:
            return previous

        def mtime(n):
            try:
                return os.lstat(os.path.join(self.releases_dir, n)).st_mtime
            except (IOError, OSError):
                return 0.0

        return max(names, key=lambda n: (mtime(n), version_key(n)))

    def switch(self, name):
        """Point `current` at releases/<name> atomically (keeps the link relative or absolute)."""
        try:
            old = os.readlink(self.link)
        except (IOError, OSError):
            old = None
        if old is not None and not os.path.isabs(old):
            target = os.path.join("releases", name)
        else:
            target = os.path.join(self.releases_dir, name)
        tmp = "%s.rollback.%d" % (self.link, os.getpid())
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, self.link)
        return target


# --------------------------------------------------------------------------- the restart


def newest_mtime(paths):
    """Latest modification time of the given paths (links themselves, not targets)."""
    best = 0.0
    for p in paths:
        if p and os.path.lexists(p):
            best = max(best, os.lstat(p).st_mtime)
    return best


class RollingRestart:
    """One restart of the service under a probing client.

    params: dict of the module options. run_command(argv) -> (rc, out, err).
    """

    POLL = 0.02

    def __init__(self, params, run_command, prober_factory=None, query=None,
                 clock=time.monotonic, sleep=time.sleep, releases=None,
                 wallclock=time.time, tls=None, tls_port_ctx=None):
        self.p = params
        self.run_command = run_command
        self.prober_factory = prober_factory
        self.query = query or resp_query
        self.clock = clock
        self.sleep = sleep
        install_dir = params.get("install_dir") or DEFAULT_INSTALL_DIR
        self.releases = releases or Releases(install_dir)
        self.host = probe_address(params.get("host"))
        self.port = params.get("port") or 6379
        self.unix_path = params.get("unix_path") or None
        self.password = params.get("password") or None
        self.username = params.get("username") or None
        if self.username and self.password:  # AUTH username password (an ACL user)
            self.password = [self.username, self.password]
        self.timeout = float(params.get("timeout") or 30)
        self.wallclock = wallclock
        self.warnings = []
        # an ssl.SSLContext: the probe and the health checks connect with TLS
        self.tls_kw = {"tls": tls} if tls is not None else {}
        # A second probe on the TLS port (tls_port), beside the one on port/unix_path.
        self.tls_port = to_int(params.get("tls_port")) or None
        self.tls_host = probe_address(params.get("tls_host") or params.get("host"))
        self.tls_port_ctx = tls_port_ctx

    # ---- helpers

    unit_changed = False

    def systemctl(self, *args):
        return self.run_command(["systemctl"] + list(args))

    def show(self, unit, props):
        argv = ["show", unit]
        for p in props:
            argv += ["-p", p]
        rc, out, err = self.systemctl(*argv)
        if rc != 0:
            raise RollingError("systemctl show %s failed (rc=%d): %s" % (unit, rc, err.strip()))
        return parse_show(out)

    def info(self, timeout=2.0):
        """INFO server and INFO handover, merged (a release without handover adds nothing)."""
        replies = self.query(self.host, self.port, self.unix_path, self.password,
                             [["INFO", "server"], ["INFO", "handover"]], timeout=timeout,
                             **self.tls_kw)
        merged = {}
        for reply in replies:
            merged.update(parse_info(reply))
        return merged

    def ping(self, timeout=2.0):
        (reply,) = self.query(self.host, self.port, self.unix_path, self.password,
                              [["PING"]], timeout=timeout, **self.tls_kw)
        return reply

    def tls_port_address(self):
        host = "[%s]" % self.tls_host if ":" in self.tls_host else self.tls_host
        return "%s:%s" % (host, self.tls_port)

    def check_tls_port(self, deadline):
        """The new process answers PING on the TLS port too (its certificate and key loaded)."""
        last = None
        while True:
            try:
                remaining = max(0.2, min(2.0, deadline - self.clock()))
                self.query(self.tls_host, self.tls_port, None, self.password, [["PING"]],
                           timeout=remaining, tls=self.tls_port_ctx)
                return
            except RespError as e:
                last = str(e)
            if self.clock() >= deadline:
                raise RollingError("the new process answers on %s but not over TLS on %s: %s"
                                   % (self.address(), self.tls_port_address(), last))
            self.sleep(self.POLL)

    def journal_tail(self, lines=3):
        """The service's last log lines, as a message suffix ("" when unavailable)."""
        try:
            rc, out, err = self.run_command(
                ["journalctl", "_SYSTEMD_UNIT=%s" % self.p["service"], "-n", str(lines),
                 "--no-pager", "-o", "cat"])
        except Exception:  # pylint: disable=broad-except
            return ""
        text = " | ".join(x.strip() for x in (out or "").splitlines() if x.strip())
        return "; last log lines: %s" % text if rc == 0 and text else ""

    def address(self):
        if self.unix_path:
            return "unix:%s" % self.unix_path
        if ":" in self.host:
            return "[%s]:%s" % (self.host, self.port)
        return "%s:%s" % (self.host, self.port)

    # ---- phases

    def prechecks(self):
        service = self.p["service"]
        svc = self.show(service, SERVICE_PROPS)
        if svc.get("LoadState") not in (None, "loaded"):
            raise RollingError("%s is not loaded (LoadState=%s)" % (service, svc.get("LoadState")))
        if self.p.get("socket_activation", True):
            units = [self.p["socket"]]
            if self.tls_port and self.p.get("tls_socket"):
                units.append(self.p["tls_socket"])
            for sock_unit in units:
                sock = self.show(sock_unit, SOCKET_PROPS)
                if sock.get("ActiveState") != "active" or sock.get("SubState") not in (
                        "listening", "running"):
                    raise RollingError(
                        "%s is not listening (ActiveState=%s SubState=%s): restarting %s now "
                        "would refuse connections; start the socket first"
                        % (sock_unit, sock.get("ActiveState"), sock.get("SubState"), service))
        elif svc.get("ActiveState") != "active":
            raise RollingError(
                "%s is not active (ActiveState=%s SubState=%s) and socket_activation is false"
                % (service, svc.get("ActiveState"), svc.get("SubState")))
        config = self.p.get("config")
        if config:
            binary = self.ironcache_bin()
            rc, out, err = self.run_command([binary, "check-config", config])
            if rc != 0:
                raise RollingError(
                    "configuration %s is not valid for the release that will run (%s check-config, "
                    "rc=%d): %s" % (config, binary, rc, (err or out).strip()))
        return svc

    def ironcache_bin(self):
        return self.p.get("ironcache_bin") or os.path.join(
            self.releases.install_dir, "current", "bin", "ironcache")

    def old_state(self, svc):
        old = {"pid": to_int(svc.get("MainPID")), "version": None, "startup_ms": None}
        if svc.get("ActiveState") == "active" and old["pid"]:
            try:
                info = self.info()
                old["version"] = info.get("ironcache_version")
            except RespError as e:
                self.warnings.append("could not read INFO from the running server: %s" % e)
        return old

    def wait_healthy(self, old_pid, since, expected_version):
        """Poll until a new main process answers PING and INFO with the expected version.

        Returns (new_pid, info). Raises RollingError when the new process exited, reports
        another version, or did not become healthy within the timeout.
        """
        service = self.p["service"]
        deadline = self.clock() + self.timeout
        since_us = int(since * 1000000)
        pids = set()
        last = {}
        last_err = None
        while True:
            st = self.show(service, SERVICE_PROPS)
            last = st
            pid = to_int(st.get("MainPID"))
            exec_pid = to_int(st.get("ExecMainPID"))
            started = to_int(st.get("ExecMainStartTimestampMonotonic"))
            exited = to_int(st.get("ExecMainExitTimestampMonotonic"))
            if started >= since_us and exec_pid:
                pids.add(exec_pid)
            new_exited = started >= since_us and exited >= started and exited > 0
            if new_exited or st.get("ActiveState") == "failed" or st.get("SubState") in (
                    "auto-restart", "failed") or len(pids) > 1:
                if len(pids) > 1:
                    what = ("the new %s process (pid %s) exited during start-up and systemd "
                            "started another one (pids %s)" % (
                                service, min(pids), ", ".join(str(x) for x in sorted(pids))))
                else:
                    what = ("the new %s process (pid %s) exited during start-up (%s, status %s)"
                            % (service, st.get("ExecMainPID"), st.get("Result"),
                               st.get("ExecMainStatus")))
                restarts = to_int(st.get("NRestarts"))
                if restarts or st.get("SubState") == "auto-restart":
                    what += ("; systemd is restarting it (a crash loop, %d restarts so far) and "
                             "gives up at its start limit" % restarts)
                raise RollingError(what + self.journal_tail(), start_failed=True)
            if st.get("ActiveState") == "active" and pid and pid != old_pid:
                try:
                    remaining = max(0.2, min(2.0, deadline - self.clock()))
                    info = self.info(timeout=remaining)
                    ipid = to_int(info.get("process_id"))
                    if ipid and ipid != old_pid:
                        version = info.get("ironcache_version")
                        if expected_version and version != expected_version:
                            raise RollingError(
                                "the new process (pid %s) reports ironcache_version %s, expected "
                                "%s" % (ipid, version, expected_version))
                        return ipid, info
                except RespError as e:
                    last_err = str(e)
            if self.clock() >= deadline:
                raise RollingError(
                    "%s did not become healthy within %gs (ActiveState=%s SubState=%s MainPID=%s"
                    "%s)" % (service, self.timeout, last.get("ActiveState"), last.get("SubState"),
                             last.get("MainPID"),
                             ", last query error: %s" % last_err if last_err else ""))
            self.sleep(self.POLL)

    def restart_and_wait(self, old_pid, expected_version):
        service = self.p["service"]
        # A deliberate restart: clear the unit's start rate counter first, so that restarts in
        # quick succession (a fleet run, a handler, a retry) never reach systemd's start limit,
        # whose failure would also fail the socket unit and refuse every client. Crash restarts
        # of the new process still count. It also clears a failure from before, which must not
        # be mistaken for the new process failing.
        rc, out, err = self.systemctl("reset-failed", service)
        if rc != 0:
            self.warnings.append("systemctl reset-failed %s failed (rc=%d): %s"
                                 % (service, rc, (err or out).strip()))
        t0 = self.clock()
        if self.p.get("method") == "reload" and not self.unit_changed:
            # ExecReload= (ironcache reload): the new release loads beside the old process and
            # takes over; systemctl returns once it serves, or fails and the old one serves on.
            rc, out, err = self.systemctl("reload", service)
            if rc != 0:
                raise RollingError("systemctl reload %s failed (rc=%d), the old process serves "
                                   "on: %s%s" % (service, rc, (err or out).strip(),
                                                 self.journal_tail()),
                                   start_failed=True, old_serves=True)
        else:
            rc, out, err = self.systemctl("restart", "--no-block", service)
            if rc != 0:
                raise RollingError("systemctl restart %s failed (rc=%d): %s"
                                   % (service, rc, (err or out).strip()))
        new_pid, info = self.wait_healthy(old_pid, t0, expected_version)
        if self.tls_port:
            self.check_tls_port(t0 + self.timeout)
        return new_pid, info, (self.clock() - t0) * 1000.0

    def rollback(self, old, reason, restart=True):
        """Switch `current` back, restart (unless the old process serves on after a failed
        reload), and describe what happened (for the failure msg)."""
        service = self.p["service"]
        current = self.releases.current()
        target = self.releases.rollback_target(old.get("version"))
        if not target:
            if old.get("version") and old.get("version") == current:
                return None, ("not rolled back: the old process already ran release %s, so the "
                              "release did not change" % current)
            return None, "no previous release under %s to roll back to" % self.releases.releases_dir
        self.releases.switch(target)
        self.systemctl("reset-failed", service)
        back = {"from": current, "to": target, "version": None, "pid": None}
        if self.p.get("socket_activation", True):
            sock = self.show(self.p["socket"], SOCKET_PROPS)
            if sock.get("ActiveState") != "active":
                self.systemctl("reset-failed", self.p["socket"])
                self.systemctl("start", self.p["socket"])
                self.warnings.append("%s had stopped (%s) and was started again"
                                     % (self.p["socket"], sock.get("Result")))
        expected = read_release_version(
            os.path.join(self.releases.releases_dir, target), default=target)
        if not restart:
            try:
                info = self.info()
                back["pid"] = to_int(info.get("process_id"), None)
                back["version"] = info.get("ironcache_version")
                return back, ("rolled back %s from releases/%s to releases/%s; %s is serving %s "
                              "again (pid %s, the old process: the failed reload changed nothing)"
                              % (self.releases.link, current, target, service, back["version"],
                                 back["pid"]))
            except RespError as e:
                return back, ("rolled back %s from releases/%s to releases/%s, but the old "
                              "process does not answer: %s" % (self.releases.link, current,
                                                               target, e))
        try:
            svc = self.show(service, SERVICE_PROPS)
            pid, info, dummy = self.restart_and_wait(to_int(svc.get("MainPID")), expected)
            back["pid"] = pid
            back["version"] = info.get("ironcache_version")
            text = ("rolled back %s from releases/%s to releases/%s; %s is serving %s again "
                    "(pid %s)" % (self.releases.link, current, target, service,
                                  back["version"], pid))
        except RollingError as e:
            text = ("rolled back %s from releases/%s to releases/%s, but the restart on it "
                    "failed too: %s" % (self.releases.link, current, target, e))
        return back, text

    def started_wallclock(self, svc):
        """Wall-clock start of the main process, from systemd's monotonic timestamp."""
        mono_us = to_int(svc.get("ExecMainStartTimestampMonotonic"))
        if not mono_us:
            return None
        return self.wallclock() - (self.clock() - mono_us / 1000000.0)

    def up_to_date(self, svc, old):
        """Why no restart is needed (only_if_outdated), or None when one is."""
        expected = self.p.get("expected_version")
        if not old["pid"] or not old["version"] or not expected or old["version"] != expected:
            return None
        if svc.get("NeedDaemonReload") == "yes":
            return None
        started = self.started_wallclock(svc)
        watched = [self.releases.link, self.p.get("config"), svc.get("FragmentPath")]
        changed = newest_mtime(watched)
        if started is None or changed >= started:
            return None
        return ("%s already runs %s (pid %s), started after the last change of %s"
                % (self.p["service"], expected, old["pid"],
                   ", ".join(x for x in watched if x)))

    def check_mode(self, svc, old):
        return {
            "changed": True,
            "old_pid": old["pid"],
            "old_version": old["version"],
            "msg": "would restart %s (pid %s, version %s) and wait up to %gs for version %s at %s"
                   % (self.p["service"], old["pid"] or "none", old["version"] or "unknown",
                      self.timeout, self.p.get("expected_version") or "any", self.address()),
        }

    def run(self, check_mode=False):
        """Returns (failed, result dict)."""
        svc = self.prechecks()
        old = self.old_state(svc)
        if self.p.get("only_if_outdated"):
            why = self.up_to_date(svc, old)
            if why:
                return False, {"changed": False, "old_pid": old["pid"],
                               "old_version": old["version"], "new_pid": old["pid"],
                               "new_version": old["version"], "restart_ms": None,
                               "startup_ms": None, "rolled_back": False, "rollback": None,
                               "probe": None, "msg": "no restart needed: " + why}
        if check_mode:
            return False, self.check_mode(svc, old)
        expected = self.p.get("expected_version")
        reloaded = False
        if svc.get("NeedDaemonReload") == "yes":
            rc, out, err = self.systemctl("daemon-reload")
            if rc != 0:
                raise RollingError("systemctl daemon-reload failed (rc=%d): %s" % (rc, err.strip()))
            reloaded = True
            # A reload's new process runs in the old one's execution environment (sandbox,
            # limits): a changed unit takes effect only through a restart.
            self.unit_changed = True
            if self.p.get("method") == "reload":
                self.warnings.append("the unit file changed: restarting instead of reloading")
        probers = {}  # result key -> prober
        if self.p.get("probe", True) and self.prober_factory is not None:
            common = dict(password=self.p.get("password") or None,
                          max_seconds=float(self.p.get("probe_max_seconds") or 60),
                          **({"username": self.username} if self.username else {}))
            plain_kw = dict(common, **self.tls_kw)
            probers["probe"] = self.prober_factory(
                host=self.host, port=self.port, unix_path=self.unix_path, **plain_kw)
            if self.tls_port:
                probers["probe_tls"] = self.prober_factory(
                    host=self.tls_host, port=self.tls_port, unix_path=None,
                    tls=self.tls_port_ctx, **common)
            for prober in probers.values():
                prober.start()
            self.sleep(float(self.p.get("probe_lead_seconds", 0.2)))
        result = {"changed": True, "old_pid": old["pid"], "old_version": old["version"],
                  "new_pid": None, "new_version": None, "restart_ms": None, "startup_ms": None,
                  "rolled_back": False, "rollback": None, "probe": None, "probe_tls": None,
                  "handover": None, "daemon_reloaded": reloaded, "start_failed": False,
                  "path": None}
        error = None
        try:
            new_pid, info, ms = self.restart_and_wait(old["pid"], expected)
            result.update(new_pid=new_pid, new_version=info.get("ironcache_version"),
                          restart_ms=round(ms, 1),
                          startup_ms=to_int(info.get("startup_ms"), None),
                          handover=handover_figures(info))
            # What the new process says it took over from: a reload short of memory falls
            # back to the stop-start handover (source "restart").
            source = (result["handover"] or {}).get("source")
            result["path"] = "reload" if source == "reload" else "restart"
        except RollingError as e:
            error = str(e)
            result["start_failed"] = e.start_failed
            if self.p.get("rollback"):
                back, text = self.rollback(old, error, restart=not e.old_serves)
                if back is not None:
                    result["rolled_back"] = True
                    result["rollback"] = back
                error = "%s; %s" % (error, text)
        finally:
            if probers:
                self.sleep(float(self.p.get("probe_tail_seconds", 0.2)))
            for key, prober in probers.items():
                figures = prober.stop()
                figures.pop("samples", None)
                result[key] = figures
        probe_msg = describe_probe(result["probe"])
        if result["probe_tls"]:
            probe_msg += "; TLS probe on %s: %s" % (self.tls_port_address(),
                                                    describe_probe(result["probe_tls"]))
        if error:
            result["msg"] = "%s%s" % (error, "; probe: %s" % probe_msg if probe_msg else "")
            return True, result
        bad = []
        attempts = 0
        first_error = None
        for key, label in (("probe", ""), ("probe_tls", " over TLS")):
            fig = result[key] or {}
            attempts += to_int(fig.get("attempts"))
            for what in ("refused", "reset"):
                if to_int(fig.get(what)):
                    bad.append("%d %s%s" % (to_int(fig.get(what)), what, label))
                    first_error = first_error or fig.get("first_error")
        summary = ("%s %s: pid %s (%s) -> pid %s (%s) in %.0f ms"
                   % ("reloaded" if result["path"] == "reload" else "restarted",
                      self.p["service"], old["pid"] or "none", old["version"] or "unknown",
                      result["new_pid"], result["new_version"],
                      float(result["restart_ms"] or 0.0)))
        if bad and self.p.get("fail_on_refused", True):
            result["msg"] = ("%s, but clients were turned away: %s of %d connection attempts "
                             "(first error: %s); probe: %s"
                             % (summary, " and ".join(bad), attempts, first_error, probe_msg))
            return True, result
        if result["handover"]:
            summary += "; %s" % describe_handover(result["handover"])
        result["msg"] = summary + ("; probe: %s" % probe_msg if probe_msg else "")
        return False, result


def handover_figures(info):
    """What the new process took over from the old one (INFO handover), or None."""
    if "handover_source" not in info:
        return None
    return {
        "source": info.get("handover_source"),
        "connections": to_int(info.get("handover_connections")),
        "key_count": to_int(info.get("handover_keys")),
        "bytes": to_int(info.get("handover_bytes")),
        "load_ms": float(info.get("handover_load_ms") or 0.0),
        "total_ms": to_int(info.get("handover_total_ms")),
        "reload_fallback": info.get("handover_reload_fallback") or None,
    }


def describe_handover(h):
    if h.get("source") in (None, "none"):
        return "nothing handed over"
    text = ("handover (%s): %d connections and %d keys kept, %d bytes, loaded in %.0f ms"
            % (h["source"], h["connections"], h["key_count"], h["bytes"], h["load_ms"]))
    if h.get("reload_fallback"):
        text += "; the reload fell back to the stop-start handover (%s)" % h["reload_fallback"]
    return text


def describe_probe(fig):
    if not fig:
        return ""
    return ("%s attempts, %s ok, %s refused, %s reset, %s timeouts, p50 %s ms, p99 %s ms, "
            "max %s ms, longest gap %s ms" % (
                fig.get("attempts"), fig.get("ok"), fig.get("refused"), fig.get("reset"),
                fig.get("timeouts"), fig.get("p50_ms"), fig.get("p99_ms"), fig.get("max_ms"),
                fig.get("longest_gap_ms")))
