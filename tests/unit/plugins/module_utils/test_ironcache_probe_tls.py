# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The probe and the health checks over TLS, against a real TLS listener (certificates made
with openssl at test time) that answers PING and INFO as IronCache does."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from ansible_collections.ironcache.ironcache.plugins.module_utils import ironcache_probe as probe
from ansible_collections.ironcache.ironcache.plugins.module_utils import ironcache_rolling as rr

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is missing")


def _openssl(cwd, *args):
    subprocess.run(["openssl"] + list(args), cwd=str(cwd), check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "otherca"):
        _openssl(d, "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=%s" % ca, "-keyout", "%s.key" % ca, "-out", "%s.crt" % ca)
    for name in ("server", "client"):
        _openssl(d, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
                 "-keyout", "%s.key" % name, "-out", "%s.csr" % name)
        _openssl(d, "x509", "-req", "-in", "%s.csr" % name, "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", "%s.crt" % name)
    return d


class TLSServer:
    """Answers +PONG to PING and an INFO bulk to INFO, over TLS, client certificate required."""

    def __init__(self, certs):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certs / "server.crt"), str(certs / "server.key"))
        self.ctx.load_verify_locations(str(certs / "ca.crt"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(5)
                s = self.ctx.wrap_socket(conn, server_side=True)
                data = s.recv(4096)
                out = b""
                for dummy in range(data.count(b"PING")):
                    out += b"+PONG\r\n"
                for dummy in range(data.count(b"INFO")):
                    body = b"# Server\r\nironcache_version:9.9\r\nprocess_id:42\r\n"
                    out += b"$%d\r\n%s\r\n" % (len(body), body)
                s.sendall(out)
                s.close()
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server(certs):
    srv = TLSServer(certs)
    yield srv
    srv.close()


def test_probe_counts_tls_pings(server, certs):
    ctx = probe.tls_context(str(certs / "ca.crt"), str(certs / "client.crt"),
                            str(certs / "client.key"))
    p = probe.Prober(port=server.port, tls=ctx, max_attempts=20)
    p.start()
    p.thread.join(30)
    fig = p.stop()
    assert fig["ok"] == 20, fig


def test_probe_without_tls_on_a_tls_port_fails(server):
    p = probe.Prober(port=server.port, max_attempts=3, connect_timeout=2)
    p.start()
    p.thread.join(30)
    assert p.stop()["ok"] == 0  # the control: plain RESP gets no PONG from a TLS port


def test_wrong_ca_is_a_precise_health_check_error(server, certs):
    ctx = probe.tls_context(str(certs / "otherca.crt"), str(certs / "client.crt"),
                            str(certs / "client.key"))
    with pytest.raises(rr.RespError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: "
                                           r"(unable to get local issuer|self.signed)"):
        rr.resp_query("127.0.0.1", server.port, None, None, [["PING"]], tls=ctx)


def test_health_checks_over_tls(server, certs):
    ctx = probe.tls_context(str(certs / "ca.crt"), str(certs / "client.crt"),
                            str(certs / "client.key"))
    assert rr.resp_query("127.0.0.1", server.port, None, None, [["PING"]], tls=ctx) == ["PONG"]
    restart = rr.RollingRestart({"port": server.port}, lambda argv: (0, "", ""), tls=ctx)
    assert restart.info()["ironcache_version"] == "9.9"


def test_tls_context_names_the_bad_file(certs, tmp_path):
    with pytest.raises(probe.ProbeError, match="go together"):
        probe.tls_context(str(certs / "ca.crt"), str(certs / "client.crt"), None)
    with pytest.raises(probe.ProbeError, match="tls_ca_file /nonexistent is missing"):
        probe.tls_context("/nonexistent")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(probe.ProbeError, match="tls_ca_file .*bad.pem holds no usable CA"):
        probe.tls_context(str(bad))
    with pytest.raises(probe.ProbeError, match="tls_cert_file .* cannot be used"):
        probe.tls_context(str(certs / "ca.crt"), str(certs / "client.crt"),
                          str(certs / "server.key"))


def test_tls_port_health_check_against_a_real_tls_listener(server, certs):
    """check_tls_port: PING over TLS on tls_port passes with the client certificate, and
    fails with the reason without it (the server requires one)."""
    import time

    good = probe.tls_context(str(certs / "ca.crt"), str(certs / "client.crt"),
                             str(certs / "client.key"))
    restart = rr.RollingRestart({"port": 1, "tls_port": server.port}, lambda argv: (0, "", ""),
                                tls_port_ctx=good)
    restart.check_tls_port(time.monotonic() + 10)
    no_cert = probe.tls_context(str(certs / "ca.crt"))
    restart = rr.RollingRestart({"port": 1, "tls_port": server.port}, lambda argv: (0, "", ""),
                                tls_port_ctx=no_cert)
    with pytest.raises(rr.RollingError, match=r"not over TLS on 127\.0\.0\.1:%d" % server.port):
        restart.check_tls_port(time.monotonic() + 1)
