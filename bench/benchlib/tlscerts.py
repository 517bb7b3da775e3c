"""A self-signed certificate for benchmarks over TLS (both servers present it, clients trust it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchlib.common import BenchError


def self_signed(out_dir: Path) -> tuple[Path, Path]:
    """(certificate, key) in out_dir/tls, made with openssl (RSA 2048, like a common server's)."""
    d = out_dir / "tls"
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "server.crt", d / "server.key"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"cannot make a TLS certificate with openssl: {e}") from None
    return cert, key


def server_args(tls_port: int, cert: Path, key: Path) -> list[str]:
    """tls-* options both IronCache and redis-server take (no client certificate asked)."""
    return ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-auth-clients", "no"]  # fmt: skip
