"""TLS listeners (tls-port and the tls-* settings), as Redis 6+ offers them.

Certificates are made with openssl at test time. The tests that do not involve IronCache's
own parts (the handover, check-config, SIGHUP) also run against redis-server
(IRONCACHE_TEST_TARGET=redis): Debian's is built with TLS.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from support import IS_REDIS, Server, free_port, ironcache_only, poll, run_ironcache
from test_scripting import _run_in_thread

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is missing")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


# How long a restarted process may take to be ready on a loaded machine; a client whose
# connection waits in the listener meanwhile allows as long.
READY_S = 30

# The extensions Python 3.13's strict verification (VERIFY_X509_STRICT) requires of a CA and
# of the certificates it signs.
CA_EXT = ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
LEAF_EXT = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def _cert(d: Path, name: str, cn: str, ca: str = "ca") -> None:
    (d / "leaf.ext").write_text(LEAF_EXT)
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", "leaf.ext", "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca, server (CN=one), server2 (CN=two: a renewed certificate), client, an encrypted key
    of `server` (pass 1234), and a foreign CA's client certificate."""
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN={ca}", *CA_EXT, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    _cert(d, "server", "one")
    _cert(d, "server2", "two")
    _cert(d, "client", "client")
    _cert(d, "stranger", "stranger", ca="otherca")
    _openssl("rsa", "-in", "server.key", "-out", "server-enc.key", "-aes256",
             "-passout", "pass:1234", cwd=d)
    return d


def tls_directives(certs: Path, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tls-port": free_port(),
        "tls-cert-file": certs / "server.crt",
        "tls-key-file": certs / "server.key",
        "tls-ca-cert-file": certs / "ca.crt",
    }
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def tls_client(srv: Server, certs: Path, cert: str | None = "client", **kw: Any) -> redis.Redis:
    kw.setdefault("socket_timeout", 10)
    kw.setdefault("decode_responses", True)
    if cert:
        kw["ssl_certfile"] = str(certs / f"{cert}.crt")
        kw["ssl_keyfile"] = str(certs / f"{cert}.key")
    return redis.Redis(host="127.0.0.1", port=srv.directives["tls-port"], ssl=True,
                       ssl_ca_certs=str(certs / "ca.crt"), ssl_check_hostname=False, **kw)


def handshake(port: int, certs: Path, cert: str | None = "client",
              tweak: Callable[[ssl.SSLContext], None] | None = None) -> ssl.SSLSocket:
    """A raw TLS connection that has sent PING and read +PONG (raises otherwise)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(certs / "ca.crt")
    if cert:
        ctx.load_cert_chain(certs / f"{cert}.crt", certs / f"{cert}.key")
    if tweak:
        tweak(ctx)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw)
    s.sendall(b"PING\r\n")
    reply = s.recv(100)
    if reply != b"+PONG\r\n":
        s.close()
        raise ConnectionError(f"PING over TLS answered {reply!r}")
    return s


def peer_cn(port: int, certs: Path) -> str:
    s = handshake(port, certs)
    try:
        return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    finally:
        s.close()


def test_serves_over_tls_and_plain_side_by_side(make_server: Callable[..., Server],
                                                certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    c = tls_client(srv, certs)
    assert c.set("k", "over tls")
    assert srv.client().get("k") == "over tls"  # the plain port, same dataset
    assert c.incr("n") == 1
    # A plain client on the TLS port gets no reply: its bytes are not a TLS record.
    with socket.create_connection(("127.0.0.1", srv.directives["tls-port"]), timeout=5) as s:
        s.sendall(b"PING\r\n")
        with contextlib.suppress(ConnectionError, TimeoutError):
            assert b"PONG" not in s.recv(100)
    c.close()


def test_auth_clients_no_optional_yes(make_server: Callable[..., Server], certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    port = srv.directives["tls-port"]
    plain = srv.client()
    handshake(port, certs).close()  # default yes: a certificate from our CA
    for who in (None, "stranger"):  # no certificate, or one from another CA: refused
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            handshake(port, certs, cert=who).close()
    assert plain.config_set("tls-auth-clients", "optional")
    handshake(port, certs, cert=None).close()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(port, certs, cert="stranger").close()  # given, so verified
    assert plain.config_set("tls-auth-clients", "no")
    handshake(port, certs, cert=None).close()
    assert plain.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}


def test_protocols_ciphers_and_server_preference(make_server: Callable[..., Server],
                                                 certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    port = srv.directives["tls-port"]
    plain = srv.client()

    def only13(ctx: ssl.SSLContext) -> None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def only12(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    assert handshake(port, certs, tweak=only13).version() == "TLSv1.3"
    assert plain.config_set("tls-protocols", "TLSv1.2")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(port, certs, tweak=only13)
    assert handshake(port, certs, tweak=only12).version() == "TLSv1.2"

    def offer(order: str) -> Callable[[ssl.SSLContext], None]:
        return lambda ctx: (only12(ctx), ctx.set_ciphers(order))

    assert plain.config_set("tls-ciphers", "DEFAULT:-AES128-SHA256")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(port, certs, tweak=offer("AES128-SHA256"))
    assert plain.config_set("tls-ciphers", "AES128-SHA256:AES256-SHA256")
    s = handshake(port, certs, tweak=offer("AES256-SHA256:AES128-SHA256"))
    assert s.cipher()[0] == "AES256-SHA256"  # the client's order
    s.close()
    assert plain.config_set("tls-prefer-server-ciphers", "yes")
    s = handshake(port, certs, tweak=offer("AES256-SHA256:AES128-SHA256"))
    assert s.cipher()[0] == "AES128-SHA256"  # the server's order
    s.close()
    assert plain.config_set("tls-protocols", "TLSv1.3")
    assert plain.config_set("tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    s = handshake(port, certs)
    assert s.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    s.close()


def _resumed(port: int, certs: Path) -> bool:
    """Connect twice over TLS 1.2, offering the first session again: was it resumed?"""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(certs / "ca.crt")
    ctx.load_cert_chain(certs / "client.crt", certs / "client.key")
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        session = s.session
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if IS_REDIS:  # redis-server 7.0 without a cache fails the resumption (internal error)
        try:
            s = ctx.wrap_socket(raw, session=session)
        except ssl.SSLError:
            return False
        s.close()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, session=session) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        return s.session_reused


def test_session_caching(make_server: Callable[..., Server], certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    port = srv.directives["tls-port"]
    assert _resumed(port, certs)
    assert srv.client().config_set("tls-session-caching", "no")
    assert not _resumed(port, certs)  # the control: the same client, no resumption
    assert srv.client().config_set("tls-session-caching", "yes")
    assert srv.client().config_set("tls-session-cache-size", "100")
    assert _resumed(port, certs)


def test_certificate_reload_by_config_set(make_server: Callable[..., Server],
                                          certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    port = srv.directives["tls-port"]
    plain = srv.client()
    kept = tls_client(srv, certs)
    assert kept.ping()
    assert peer_cn(port, certs) == "one"
    # Bad certificates and keys are refused with the reason; nothing changes.
    for name, value, why in [
        ("tls-cert-file", certs / "missing.crt", "Unable to update TLS"),
        ("tls-key-file", certs / "client.key", "Unable to update TLS"),
        ("tls-key-file", certs / "server-enc.key", "Unable to update TLS"),
        ("tls-cert-file", certs / "ca.key", "Unable to update TLS"),
    ]:
        with pytest.raises(redis.ResponseError, match=why):
            plain.config_set(name, str(value))
    assert plain.config_get("tls-key-file")["tls-key-file"] == str(certs / "server.key")
    assert peer_cn(port, certs) == "one"
    # An encrypted key with its password (Redis's suite does the same).
    assert plain.config_set("tls-key-file-pass", "1234")
    assert plain.config_set("tls-key-file", str(certs / "server-enc.key"))
    assert peer_cn(port, certs) == "one"
    # Both files in one CONFIG SET: new connections get the new certificate.
    assert plain.execute_command("CONFIG", "SET", "tls-cert-file", str(certs / "server2.crt"),
                                 "tls-key-file", str(certs / "server2.key"))
    assert peer_cn(port, certs) == "two"
    assert kept.ping()  # an established connection keeps its session


@ironcache_only
def test_refused_tls_config_set_error_names_the_cause(make_server: Callable[..., Server],
                                                      certs: Path) -> None:
    srv = make_server(tls_directives(certs))
    with pytest.raises(redis.ResponseError) as e:
        srv.client().config_set("tls-key-file", str(certs / "client.key"))
    assert "the key does not belong to the certificate" in str(e.value)
    assert "Traceback" not in srv.log_text()


@ironcache_only
def test_sighup_reloads_the_files_in_place(make_server: Callable[..., Server],
                                           certs: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(certs / "server.crt", live / "c.crt")
    shutil.copy(certs / "server.key", live / "c.key")
    srv = make_server(tls_directives(certs, tls_cert_file=live / "c.crt",
                                     tls_key_file=live / "c.key"))
    port = srv.directives["tls-port"]
    assert peer_cn(port, certs) == "one"
    # A broken pair in place (half renewed): SIGHUP keeps the previous context.
    shutil.copy(certs / "server2.crt", live / "c.crt")
    srv.send_signal(signal.SIGHUP)
    poll(lambda: "not reloaded" in srv.log_text(), 10, 0.05, "the refused reload in the log")
    assert peer_cn(port, certs) == "one"
    shutil.copy(certs / "server2.key", live / "c.key")
    srv.send_signal(signal.SIGHUP)
    poll(lambda: peer_cn(port, certs) == "two", 10, 0.05, "the renewed certificate")
    assert srv.alive()


@ironcache_only
def test_check_config_refuses_bad_tls_files(certs: Path, tmp_path: Path) -> None:
    conf = tmp_path / "ironcache.conf"
    base = (f"port 0\ntls-port {free_port()}\ntls-cert-file {certs / 'server.crt'}\n"
            f"tls-ca-cert-file {certs / 'ca.crt'}\ndir {tmp_path}\n")
    cases = [
        (f"tls-key-file {certs / 'server.key'}\n", 0, "configuration OK"),
        (f"tls-key-file {certs / 'client.key'}\n", 1, "the key does not belong"),
        (f"tls-key-file {certs / 'server-enc.key'}\n", 1, "tls-key-file-pass"),
        (f"tls-key-file {certs / 'server-enc.key'}\ntls-key-file-pass 1234\n", 0, "OK"),
        (f"tls-key-file {certs / 'ca.crt'}\n", 1, "not a PEM certificate and its PEM private"),
        (f"tls-key-file {tmp_path / 'nope'}\n", 1, "is not a readable file"),
        ("", 1, "needs both tls-cert-file and tls-key-file"),
        (f"tls-key-file {certs / 'server.key'}\ntls-protocols TLSv1.4\n", 1, "invalid protocol"),
    ]
    for extra, code, text in cases:
        conf.write_text(base + extra)
        out = run_ironcache("check-config", str(conf))
        assert out.returncode == code, (extra, out.stdout, out.stderr)
        assert text in out.stdout + out.stderr, (extra, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr


def test_switch_between_tcp_and_tls_ports(make_server: Callable[..., Server],
                                          certs: Path) -> None:
    """Redis's suite's `TLS: switch between tcp and tls ports`."""
    srv = make_server(tls_directives(certs))
    tls_port = srv.directives["tls-port"]
    c = tls_client(srv, certs)
    assert c.config_set("tls-port", 0)
    assert c.ping()  # its own connection stays
    with pytest.raises(redis.ConnectionError):
        tls_client(srv, certs).ping()
    plain = srv.client()
    assert plain.config_set("tls-port", tls_port)
    assert tls_client(srv, certs).ping()


def _ssa(listen: list[str], fdnames: list[str]) -> list[str]:
    """systemd-socket-activate: listens on `listen`, execs the server on the first connection
    with LISTEN_FDNAMES=`fdnames` (as two socket units with FileDescriptorName= would)."""
    import os

    from support import RUN_MARKER, SRC_DIR

    ssa = shutil.which("systemd-socket-activate")
    assert ssa is not None
    cmd = [ssa, "--fdname=" + ":".join(fdnames)]
    for addr in listen:
        cmd += ["-l", addr]
    for k, v in {"PYTHONPATH": str(SRC_DIR), "PYTHONUNBUFFERED": "1",
                 RUN_MARKER: os.environ[RUN_MARKER]}.items():
        cmd += ["-E", f"{k}={v}"]
    return cmd


def _ssa_server(build: Callable[[list[int]], Server], nports: int) -> tuple[Server, list[int]]:
    """Start `build(ports)` under systemd-socket-activate and wait until it listens on every
    port. It binds them itself: a port another process takes between free_port() and that bind
    makes it exit ("Address already in use"), which is retried with fresh ports."""
    for dummy in range(3):
        ports = [free_port() for dummy in range(nports)]
        srv = build(ports)
        srv.start(wait=False)
        try:
            poll(lambda s=srv: s.log_text().count("Listening on") >= nports or not s.alive(),
                 30, 0.02, "systemd-socket-activate to listen")
        except AssertionError:
            srv.stop()
            raise
        if srv.alive():
            return srv, ports
        text = srv.log_text()
        srv.stop()
        if "already in use" not in text:
            raise AssertionError(f"systemd-socket-activate exited:\n{text}")
    raise AssertionError("systemd-socket-activate found no free ports in 3 attempts")


needs_ssa = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                               reason="systemd-socket-activate not installed")


@ironcache_only
@needs_ssa
def test_tls_listener_inherited_by_its_fd_name(certs: Path, tmp_path: Path) -> None:
    """ironcache.socket (FileDescriptorName=ironcache) and ironcache-tls.socket
    (FileDescriptorName=tls): each fd becomes its listener by name and address, no warning."""
    def build(ports: list[int]) -> Server:
        plain, tls = ports
        return Server(tmp_path / f"srv-{plain}", directives=tls_directives(certs, tls_port=tls),
                      port=plain, prefix=_ssa([f"127.0.0.1:{plain}", f"127.0.0.1:{tls}"],
                                              ["ironcache", "tls"]))

    srv, (plain_port, tls_port) = _ssa_server(build, 2)
    try:
        srv.wait_ready()
        assert tls_client(srv, certs).ping()
        info = srv.client().info("server")
        assert info["listeners_inherited"] == 2 and info["listeners_bound"] == 0
        text = srv.log_text()
        assert f"inherited from systemd: 127.0.0.1:{plain_port}, 127.0.0.1:{tls_port} (TLS)" \
            in text, text
        assert "closing inherited fd" not in text and "by its address" not in text, text
    finally:
        assert srv.stop() == 0


@ironcache_only
@needs_ssa
def test_fd_named_tls_never_serves_plain_text(certs: Path, tmp_path: Path) -> None:
    """An fd named `tls` on the plain port's address, and one on an address the configuration
    does not have, are closed: the plain port is bound by IronCache itself and the TLS
    listener adopted; the other address refuses connections."""
    def build(ports: list[int]) -> Server:
        plain, tls, stray = ports
        return Server(tmp_path / f"srv-{plain}", directives=tls_directives(certs, tls_port=tls),
                      port=plain, prefix=_ssa([f"127.0.0.1:{tls}", f"127.0.0.1:{plain}",
                                               f"127.0.0.1:{stray}"], ["tls", "tls", "tls"]))

    srv, (plain_port, tls_port, stray_port) = _ssa_server(build, 3)
    try:
        # The first connection starts the server: made on the TLS port, which is adopted.
        poll(lambda: handshake(tls_port, certs).close() is None, 20, 0.05, "TLS PING")
        srv.wait_ready()
        text = srv.log_text()
        assert (f"closing inherited fd 4 (name 'tls'): it is named 'tls' but "
                f"127.0.0.1:{plain_port} is a plain (not TLS) listener") in text, text
        assert f"closing inherited fd 5 (name 'tls'): it listens on 127.0.0.1:{stray_port}" \
            in text, text
        assert f"inherited from systemd: 127.0.0.1:{tls_port} (TLS); " \
            f"bound by IronCache: 127.0.0.1:{plain_port}" in text, text
        info = srv.client().info("server")
        assert info["listeners_inherited"] == 1 and info["listeners_bound"] == 1
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", stray_port), timeout=5).close()
    finally:
        assert srv.stop() == 0


@pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: systemd's inherited sockets")
def test_inherited_tls_listener_from_a_unit_without_the_tls_name(certs: Path,
                                                                 tmp_path: Path) -> None:
    """Socket units written before ironcache-tls.socket (the TLS ListenStream= in
    ironcache.socket, every fd named alike): the TLS fd is still adopted by its address (TLS
    never exposes more than plain), with a warning to name it `tls`."""
    import sys

    from support import TESTS_DIR

    plain_port, tls_port = free_port(), free_port()
    socks = []
    for p in (plain_port, tls_port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        s.listen(64)
        socks.append(s)
    fds = [s.fileno() for s in socks]
    prefix = [sys.executable, str(TESTS_DIR / "launcher.py"), ",".join(map(str, fds)), "self",
              "ironcache:ironcache", "--"]
    srv = Server(tmp_path / "srv", directives=tls_directives(certs, tls_port=tls_port),
                 port=plain_port, prefix=prefix, pass_fds=fds)
    try:
        srv.start()
        for s in socks:
            s.close()  # the server holds them now, as systemd would
        assert tls_client(srv, certs).ping()
        info = srv.client().info("server")
        assert info["socket_activated"] == 1
        text = srv.log_text()
        assert f"inherited from systemd: 127.0.0.1:{plain_port}, 127.0.0.1:{tls_port} (TLS)" \
            in text, text
        assert "adopted as the TLS listener by its address: give it FileDescriptorName=tls" \
            in text, text
    finally:
        srv.stop()


class TLSCounter:
    """A redis-py TLS client INCRing one key in a loop; every reply must be the previous + 1
    (each INCR ran exactly once). With `retries` redis-py reconnects and sends again."""

    def __init__(self, port: int, certs: Path, retries: int) -> None:
        import threading

        from redis.backoff import ConstantBackoff
        from redis.retry import Retry

        self.client = redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(certs / "ca.crt"),
            ssl_certfile=str(certs / "client.crt"), ssl_keyfile=str(certs / "client.key"),
            ssl_check_hostname=False, socket_timeout=20,
            retry=Retry(ConstantBackoff(0.01), retries),
            retry_on_error=[redis.ConnectionError] if retries else [],
        )
        self.acked = 0
        self.errors: list[str] = []
        self.longest = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import time

        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                n = self.client.incr("tls-counter")
            except redis.RedisError as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                time.sleep(0.01)
                continue
            self.longest = max(self.longest, time.monotonic() - t0)
            if n != self.acked + 1:
                self.errors.append(f"INCR answered {n} after {self.acked}: a lost or doubled write")
                return
            self.acked = n


class TLSLoop:
    """Connect, handshake, PING, close in a tight loop; every outcome but PONG is kept."""

    def __init__(self, port: int, certs: Path) -> None:
        import threading

        self.port = port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.load_verify_locations(certs / "ca.crt")
        self.ctx.load_cert_chain(certs / "client.crt", certs / "client.key")
        self.ok = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=READY_S)
                with self.ctx.wrap_socket(raw) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(100)
                if reply == b"+PONG\r\n":
                    self.ok += 1
                else:
                    self.errors.append(f"PING answered {reply!r}")
            except OSError as e:
                self.errors.append(f"{type(e).__name__}: {e}")


@ironcache_only
@pytest.mark.parametrize("retries", [20, 0])
def test_tls_client_across_handover_restarts(certs: Path, tmp_path: Path, retries: int) -> None:
    """The handover closes TLS connections (their session cannot move) after their replies;
    a client with retries reconnects into the queued listener and loses nothing. The control
    (no retries) sees the close as an error at every restart."""
    import sys
    import time

    from support import TESTS_DIR
    from test_handover_restart import FdStore

    plain_port, tls_port = free_port(), free_port()
    socks = []
    for p in (plain_port, tls_port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        s.listen(128)
        socks.append(s)
    store = FdStore(tmp_path / "notify.sock")
    directives = tls_directives(certs, tls_port=tls_port, handover="yes")
    procs: list[Server] = []
    restarts = 4

    def start(i: int) -> Server:
        stored = store.stored()
        fds = [s.fileno() for s in socks] + [fd for _n, fd in stored]
        names = ":".join(["ironcache", "ironcache-tls"] + [n for n, _fd in stored])
        store.ready.clear()
        prefix = [sys.executable, str(TESTS_DIR / "launcher.py"), ",".join(map(str, fds)),
                  "self", names, "--"]
        srv = Server(tmp_path / f"p{i}", port=plain_port, directives=directives, prefix=prefix,
                     pass_fds=fds, env={"NOTIFY_SOCKET": store.path})
        srv.start(wait=False)
        assert store.ready.wait(READY_S), srv.log_text()
        return srv

    counter = TLSCounter(tls_port, certs, retries)
    loops = [TLSLoop(tls_port, certs) for _ in range(2)]
    try:
        procs.append(start(0))
        counter.thread.start()
        for loop in loops:
            loop.thread.start()
        for i in range(restarts):
            time.sleep(0.3)
            before = counter.acked
            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait() == 0, procs[-1].log_text()
            assert re.search(r"closed [1-9]\d* TLS connections", procs[-1].log_text())
            procs.append(start(i + 1))
            poll(lambda b=before: counter.acked > b + 10, 20, 0.01, "INCRs after the restart")
    finally:
        counter.stop.set()
        counter.thread.join(30)
        for loop in loops:
            loop.stop.set()
            loop.thread.join(30)
        final = -1
        if procs and procs[-1].alive():
            final = int(procs[-1].client().get("tls-counter") or 0)
        for srv in procs:
            if srv.alive():
                srv.stop()
        store.close()
        for s in socks:
            s.close()
    print(f"\nTLS client, retries={retries}: {restarts} restarts, {counter.acked} INCRs "
          f"acknowledged, {len(counter.errors)} errors seen, longest request "
          f"{counter.longest * 1000:.0f} ms")
    loop_errors = [e for loop in loops for e in loop.errors]
    print(f"TLS tight-loop clients: {sum(loop.ok for loop in loops)} PINGs answered, "
          f"{len(loop_errors)} errors {loop_errors[:5]}")
    # A new connection waits in the listener while the process is replaced: none fails.
    assert loop_errors == []
    doubled = [e for e in counter.errors if "lost or doubled" in e]
    assert not doubled
    assert final == counter.acked  # every acknowledged INCR is there, none twice
    if retries:
        assert counter.errors == []
    else:
        assert len(counter.errors) >= restarts, counter.errors


@ironcache_only
def test_tls_bind_keeps_plain_tcp_on_loopback(make_server: Callable[..., Server],
                                              certs: Path) -> None:
    """tls-bind: TLS on every address while plain TCP stays on loopback."""
    from support import host_address

    other = host_address()
    if other is None:
        pytest.skip("no non-loopback address on this host")
    srv = make_server(tls_directives(certs, tls_bind=["127.0.0.1", other],
                                     tls_auth_clients="no", protected_mode="no"))
    port, tls_port = srv.port, srv.directives["tls-port"]
    s = socket.create_connection((other, tls_port), timeout=5)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(certs / "ca.crt")
    with ctx.wrap_socket(s) as t:
        t.sendall(b"PING\r\n")
        assert t.recv(100) == b"+PONG\r\n"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((other, port), timeout=5)  # plain: loopback only
    assert srv.client().config_get("tls-bind") == {"tls-bind": f"127.0.0.1 {other}"}
    assert srv.client().config_set("tls-bind", f"127.0.0.1 {other}")  # unchanged: accepted


@ironcache_only
def test_crash_restart_with_tls_clients(certs: Path, tmp_path: Path) -> None:
    """kill -9 with a TLS client connected (its state journaled like any client's, its socket
    never stored): the next process starts from the fd store and the journal, keeps the
    acknowledged writes, and the TLS client reconnects."""
    import sys

    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    from support import TESTS_DIR
    from test_handover_restart import FdStore

    plain_port, tls_port = free_port(), free_port()
    socks = []
    for p in (plain_port, tls_port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        s.listen(128)
        socks.append(s)
    store = FdStore(tmp_path / "notify.sock")
    directives = tls_directives(certs, tls_port=tls_port, handover="yes")
    procs: list[Server] = []

    def start(i: int) -> Server:
        stored = store.stored()
        fds = [s.fileno() for s in socks] + [fd for _n, fd in stored]
        names = ":".join(["ironcache", "ironcache"] + [n for n, _fd in stored])
        store.ready.clear()
        prefix = [sys.executable, str(TESTS_DIR / "launcher.py"), ",".join(map(str, fds)),
                  "self", names, "--"]
        srv = Server(tmp_path / f"p{i}", port=plain_port, directives=directives, prefix=prefix,
                     pass_fds=fds, env={"NOTIFY_SOCKET": store.path})
        srv.start(wait=False)
        assert store.ready.wait(READY_S), srv.log_text()
        return srv

    try:
        procs.append(start(0))
        # The crash ends the TLS connection abruptly (redis-py: ConnectionResetError).
        c = tls_client(procs[0], certs, retry_on_error=[redis.ConnectionError, OSError],
                       retry=Retry(ConstantBackoff(0.05), 50))
        assert c.execute_command("CLIENT", "SETNAME", "tls-one")
        assert c.set("k", "before")
        procs[0].kill()  # SIGKILL: no handover, the journal and the fd store are what is left
        procs.append(start(1))
        assert c.get("k") == "before"  # reconnected (retry), the write kept
        assert c.client_getname() is None  # a new connection: TLS sessions are not stored
        assert "handover (crash)" in procs[1].log_text()
        assert "Traceback" not in procs[1].log_text()
    finally:
        for srv in procs:
            if srv.alive():
                srv.stop()
        store.close()
        for s in socks:
            s.close()


@ironcache_only
def test_tls_settings_as_redis_reports_them(server: Server, ref: redis.Redis) -> None:
    """CONFIG GET tls*: Redis 7.0's names and defaults (tls-bind is IronCache's own)."""
    ours = server.client().config_get("tls*")
    assert ours.pop("tls-bind") == ""
    def text(x: str | bytes) -> str:
        return x.decode() if isinstance(x, bytes) else x

    theirs = {text(k): text(v) for k, v in ref.config_get("tls*").items()}
    assert ours == theirs


def _busy_reply(c: redis.Redis) -> str:
    try:
        return f"answered {c.ping()!r}"
    except redis.ResponseError as e:
        return str(e)


def test_tls_clients_get_busy_and_can_script_kill(make_server: Callable[..., Server],
                                                  certs: Path) -> None:
    """While a script is past lua-time-limit, a TLS client gets -BUSY as a plain one does
    (it does not wait for the script), and SCRIPT KILL from it ends the script."""

    srv = make_server(tls_directives(certs, lua_time_limit=50))
    plain, secure = srv.client(socket_timeout=10), tls_client(srv, certs)
    assert plain.ping() and secure.ping()  # both connected before the script
    t, out = _run_in_thread(srv, "EVAL", "local a = 1 while true do a = a + 1 end", 0,
                            timeout=60)
    try:
        poll(lambda: "busy" in _busy_reply(plain), 20, 0.05, "the script to be busy")
        assert "Redis is busy running a script" in _busy_reply(secure)
        with pytest.raises(redis.ResponseError, match="busy"):
            secure.set("k", "v")
        assert secure.script_kill()
    finally:
        t.join(20)
    assert not t.is_alive()
    assert "Script killed by user with SCRIPT KILL" in str(out[0])
    assert secure.ping() and plain.ping()
    assert secure.get("k") is None
