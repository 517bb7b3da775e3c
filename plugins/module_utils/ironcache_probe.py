# -*- coding: utf-8 -*-

# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A tight-loop RESP client that measures what clients see while a server restarts.

Each attempt: connect, (AUTH), PING, read ``+PONG``, close. A background thread repeats that
until it is stopped, ``max_seconds`` pass or ``max_attempts`` attempts were made, and counts the
outcomes: ``ok``, ``refused`` (ECONNREFUSED: nothing listens), ``reset`` (ECONNRESET, EPIPE,
ECONNABORTED, or the server closed the connection before answering), ``timeouts`` (connect or
reply slower than ``connect_timeout``) and ``other_errors``.

Standard library only, Python 3.8 syntax: it runs on managed hosts (imported by modules) and as a
script copied into a container::

    python3 ironcache_probe.py --host 127.0.0.1 --port 6379 --seconds 20 --until-file /tmp/stop

The script prints the figures as one JSON object and exits 0 whenever it ran; the caller judges
the figures.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

OUTCOMES = ("ok", "refused", "reset", "timeouts", "other_errors")

RESET_ERRNOS = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)


class ProbeError(Exception):
    """An attempt that got an answer other than the expected one."""


class PeerClosed(Exception):
    """The server closed the connection before it answered."""


def classify(exc):
    """Map an exception raised by one attempt to an outcome name."""
    if isinstance(exc, socket.timeout):
        return "timeouts"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, PeerClosed)):
        return "reset"
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return "refused"
        if exc.errno in RESET_ERRNOS:
            return "reset"
        if exc.errno == errno.ETIMEDOUT:
            return "timeouts"
    return "other_errors"


def encode_command(*args):
    """Encode a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def read_lines(sock, count):
    """Read ``count`` CRLF-terminated reply lines: replies to pipelined commands (AUTH then
    PING) often arrive in one segment, so one read can hold both."""
    buf = b""
    while buf.count(b"\r\n") < count or not buf.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise PeerClosed("connection closed by the server before a reply")
        buf += chunk
        if len(buf) > 65536:
            raise ProbeError("reply line too long")
    return buf[:-2].split(b"\r\n")


def tls_context(ca_file=None, cert_file=None, key_file=None):
    """A client context for a TLS port: the server's certificate is verified against
    ``ca_file`` (its host name is not: probes connect to an address); ``cert_file`` and
    ``key_file`` are the client certificate a server with tls-auth-clients asks for.
    Raises ProbeError saying which file is wrong."""
    if bool(cert_file) != bool(key_file):
        raise ProbeError("tls_cert_file and tls_key_file go together: give both or neither")
    for what, path in (("tls_ca_file", ca_file), ("tls_cert_file", cert_file),
                       ("tls_key_file", key_file)):
        if path and not os.access(path, os.R_OK):
            raise ProbeError("%s %s is missing or not readable" % (what, path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, ValueError) as exc:
            raise ProbeError(
                "tls_ca_file %s holds no usable CA certificate: %s" % (ca_file, exc)) from None
    else:
        ctx.load_default_certs()
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ProbeError("tls_cert_file %s with tls_key_file %s cannot be used: %s"
                             % (cert_file, key_file, exc)) from None
    return ctx


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = int(round(fraction * (len(sorted_values) - 1)))
    return sorted_values[max(0, min(rank, len(sorted_values) - 1))]


class Prober:
    """Background tight-loop client; ``start()`` then ``stop()`` returns the figures."""

    def __init__(self, host="127.0.0.1", port=6379, unix_path=None, password=None,
                 connect_timeout=3.0, max_seconds=60.0, max_attempts=200000, pause=0.0,
                 keep_samples=False, username=None, tls=None):
        self.host = host
        self.port = int(port)
        self.unix_path = unix_path or None
        self.password = password or None
        self.connect_timeout = float(connect_timeout)
        self.max_seconds = float(max_seconds)
        self.max_attempts = int(max_attempts)
        self.pause = float(pause)
        self.keep_samples = bool(keep_samples)
        self.tls = tls  # an ssl.SSLContext (tls_context()): every attempt handshakes first
        self.stop_event = threading.Event()
        self.thread = None
        self.counts = dict((name, 0) for name in OUTCOMES)
        self.latencies = []
        self.samples = []
        self.first_error = None
        self.longest_gap = 0.0
        self.started_at = None
        self.request = encode_command("PING")
        if self.password:  # AUTH [username] password (an ACL user when a username is given)
            auth = [username, self.password] if username else [self.password]
            self.request = encode_command("AUTH", *auth) + self.request

    # one attempt ---------------------------------------------------------------------------
    def connect(self):
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock)
            except BaseException:
                sock.close()
                raise
        return sock

    def attempt(self):
        """One connect/PING/close; raises on any failure."""
        sock = self.connect()
        try:
            sock.sendall(self.request)
            expected = [b"+OK", b"+PONG"] if self.password else [b"+PONG"]
            lines = read_lines(sock, len(expected))
            if self.password and lines[0] != b"+OK":
                raise ProbeError("AUTH answered %r" % lines[0][:80])
            if lines != expected:
                raise ProbeError("PING answered %r" % b"\r\n".join(lines[len(expected) - 1:])[:80])
        finally:
            sock.close()

    # the loop --------------------------------------------------------------------------------
    def run(self):
        start = self.started_at
        deadline = start + self.max_seconds
        last_ok = None
        attempts = 0
        while not self.stop_event.is_set() and attempts < self.max_attempts:
            t0 = time.monotonic()
            if t0 >= deadline:
                break
            attempts += 1
            try:
                self.attempt()
                outcome = "ok"
            except Exception as exc:  # every failure is counted, none ends the loop
                outcome = classify(exc)
                if self.first_error is None:
                    self.first_error = "%s: %s" % (type(exc).__name__, exc)
            t1 = time.monotonic()
            self.counts[outcome] += 1
            latency_ms = (t1 - t0) * 1000.0
            if outcome == "ok":
                self.latencies.append(latency_ms)
                gap = t1 - (last_ok if last_ok is not None else start)
                if gap > self.longest_gap:
                    self.longest_gap = gap
                last_ok = t1
            if self.keep_samples:
                self.samples.append([round(t0 - start, 4), round(latency_ms, 3), outcome])
            if outcome != "ok" and outcome != "timeouts":
                # the failure returned at once: do not spin on it
                time.sleep(max(self.pause, 0.001))
            elif self.pause > 0:
                time.sleep(self.pause)
        # the stretch after the last successful reply counts too
        tail = time.monotonic() - (last_ok if last_ok is not None else start)
        if tail > self.longest_gap:
            self.longest_gap = tail

    def start(self):
        if self.thread is not None:
            raise RuntimeError("prober already started")
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self.run, name="ironcache-probe")
        self.thread.daemon = True
        self.thread.start()
        return self

    def is_running(self):
        return self.thread is not None and self.thread.is_alive()

    def stop(self):
        """Stop the loop (waits for the attempt in flight) and return the figures."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(self.connect_timeout * 3 + 5)
        return self.result()

    def result(self):
        ordered = sorted(self.latencies)
        attempts = sum(self.counts.values())
        out = {"attempts": attempts}
        out.update(self.counts)
        out["p50_ms"] = round2(percentile(ordered, 0.50))
        out["p99_ms"] = round2(percentile(ordered, 0.99))
        out["max_ms"] = round2(ordered[-1] if ordered else None)
        out["longest_gap_ms"] = round2(self.longest_gap * 1000.0)
        out["first_error"] = self.first_error
        if self.keep_samples:
            out["samples"] = list(self.samples)
        return out


def round2(value):
    return None if value is None else round(value, 2)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Connect/PING/close in a tight loop and count refused and reset connections.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--unix", default=None, help="unix socket path instead of TCP")
    parser.add_argument("--password", default=os.environ.get("IRONCACHE_PROBE_PASSWORD"),
                        help="AUTH password (default: $IRONCACHE_PROBE_PASSWORD)")
    parser.add_argument("--user", default=None, help="ACL user to AUTH as (with --password)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this many seconds")
    parser.add_argument("--max-attempts", type=int, default=200000)
    parser.add_argument("--until-file", default=None, help="stop as soon as this file exists")
    parser.add_argument("--connect-timeout", type=float, default=3.0)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between attempts")
    parser.add_argument("--samples", action="store_true", help="include per-attempt samples")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-ca-file", default=None)
    parser.add_argument("--tls-cert-file", default=None)
    parser.add_argument("--tls-key-file", default=None)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (the default output format)")
    args = parser.parse_args(argv)
    tls = None
    if args.tls:
        try:
            tls = tls_context(args.tls_ca_file, args.tls_cert_file, args.tls_key_file)
        except ProbeError as exc:
            parser.error(str(exc))

    prober = Prober(host=args.host, port=args.port, unix_path=args.unix, password=args.password,
                    username=args.user,
                    connect_timeout=args.connect_timeout, max_seconds=args.seconds,
                    max_attempts=args.max_attempts, pause=args.pause, keep_samples=args.samples,
                    tls=tls)

    def on_signal(signum, frame):
        prober.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    prober.start()
    while prober.is_running():
        if args.until_file and os.path.exists(args.until_file):
            break
        prober.thread.join(0.02)
    figures = prober.stop()
    sys.stdout.write(json.dumps(figures, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
