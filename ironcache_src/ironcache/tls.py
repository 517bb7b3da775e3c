"""TLS: the server's SSLContext, built from the tls-* directives as Redis 6+ reads them.

Python's `ssl` has no call for TLS 1.3 cipher suites or the session cache's mode, size and
timeout: those go to OpenSSL directly (ctypes) on the SSL_CTX the context wraps, after a check
that the pointer found is that SSL_CTX (its options and verify mode read back equal).
"""

from __future__ import annotations

import ctypes
import os
import ssl
from collections.abc import Mapping
from typing import Any


class TLSError(Exception):
    """A TLS setting that cannot be used: the message says which and why."""


PROTOCOLS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = list(PROTOCOLS)
_NO_FLAG = {
    "tlsv1": ssl.OP_NO_TLSv1,
    "tlsv1.1": ssl.OP_NO_TLSv1_1,
    "tlsv1.2": ssl.OP_NO_TLSv1_2,
    "tlsv1.3": ssl.OP_NO_TLSv1_3,
}
AUTH_CLIENTS = ("no", "optional", "yes")
# OpenSSL's SSL_CTX_ctrl commands and cache modes (ssl.h).
_SET_SESS_CACHE_SIZE = 42
_SET_SESS_CACHE_MODE = 44
_SESS_CACHE_OFF = 0
_SESS_CACHE_SERVER = 2


def parse_protocols(text: str) -> list[str]:
    """`tls-protocols` ("TLSv1.2 TLSv1.3"; empty: those two) as lower-case names."""
    names = [w.lower() for w in text.split()]
    for n in names:
        if n not in PROTOCOLS:
            raise ValueError(f"invalid protocol '{n[:32]}' (use TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)")
    return names or ["tlsv1.2", "tlsv1.3"]


def enabled(values: Mapping[str, Any]) -> bool:
    return bool(values["tls-port"])


def _libssl() -> Any:
    import _ssl  # the module linked to the very OpenSSL `ssl` uses
    import ctypes.util

    for name in (_ssl.__file__, ctypes.util.find_library("ssl")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.SSL_CTX_ctrl  # noqa: B018  # raises AttributeError when not exported
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIB: Any = None


def _ssl_ctx(ctx: ssl.SSLContext) -> tuple[Any, int] | None:
    """(libssl, SSL_CTX*) of `ctx`, or None when it cannot be found safely."""
    global _LIB
    if _LIB is None:
        _LIB = _libssl() or False
    lib = _LIB
    if not lib:
        return None
    # CPython's PySSLContext starts with the SSL_CTX pointer, right after the object header.
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        return None
    return lib, ptr


def _native(ctx: ssl.SSLContext, what: str) -> tuple[Any, int]:
    found = _ssl_ctx(ctx)
    if found is None:
        raise TLSError(f"{what}: this Python's OpenSSL cannot be reached to set it")
    return found


def _set_ciphersuites(ctx: ssl.SSLContext, suites: str) -> None:
    lib, ptr = _native(ctx, "tls-ciphersuites")
    lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
    lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    if lib.SSL_CTX_set_ciphersuites(ptr, suites.encode()) != 1:
        raise TLSError(f"tls-ciphersuites: no usable cipher suite in '{suites[:64]}'")


def _set_session_cache(ctx: ssl.SSLContext, on: bool, size: int, timeout: int) -> None:
    if on and _ssl_ctx(ctx) is None:
        return  # caching stays on with OpenSSL's own size and timeout: nothing to refuse
    lib, ptr = _native(ctx, "tls-session-caching")
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_set_timeout.restype = ctypes.c_long
    lib.SSL_CTX_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_long]
    if not on:
        lib.SSL_CTX_ctrl(ptr, _SET_SESS_CACHE_MODE, _SESS_CACHE_OFF, None)
        ctx.options |= ssl.OP_NO_TICKET  # no stateless resumption either
        return
    lib.SSL_CTX_ctrl(ptr, _SET_SESS_CACHE_MODE, _SESS_CACHE_SERVER, None)
    lib.SSL_CTX_ctrl(ptr, _SET_SESS_CACHE_SIZE, size, None)
    lib.SSL_CTX_set_timeout(ptr, timeout)


def session_cache_size(ctx: ssl.SSLContext) -> int | None:
    """The cache size OpenSSL holds for `ctx` (tests read it back); None when unreachable."""
    found = _ssl_ctx(ctx)
    if found is None:
        return None
    lib, ptr = found
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    return int(lib.SSL_CTX_ctrl(ptr, _SET_SESS_CACHE_SIZE + 1, 0, None))


def _encrypted(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return False
    return b"ENCRYPTED" in head


def _why(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason if e.reason and e.reason != "PEM lib" else "unreadable PEM data"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


def make_context(values: Mapping[str, Any]) -> ssl.SSLContext:
    """A server context from the tls-* settings; TLSError names the setting that fails."""
    cert, key = values["tls-cert-file"], values["tls-key-file"]
    if not cert or not key:
        raise TLSError("TLS needs both tls-cert-file and tls-key-file")
    auth = values["tls-auth-clients"]
    ca_file, ca_dir = values["tls-ca-cert-file"], values["tls-ca-cert-dir"]
    if auth != "no" and not (ca_file or ca_dir):
        raise TLSError(
            "tls-ca-cert-file or tls-ca-cert-dir is needed to verify clients "
            f"(tls-auth-clients {auth}); set tls-auth-clients no to accept any client"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for path, what in ((cert, "tls-cert-file"), (key, "tls-key-file")):
        if not os.path.isfile(path):
            raise TLSError(f"{what}: '{path[:200]}' is not a readable file")
    password = values["tls-key-file-pass"]
    try:
        # Always a password (even empty): OpenSSL never prompts on the terminal for one.
        ctx.load_cert_chain(cert, key, password=password.encode())
    except ssl.SSLError as e:
        hint = ""
        if _encrypted(key):
            hint = " (an encrypted key: wrong or missing tls-key-file-pass)"
        elif e.reason in ("KEY_VALUES_MISMATCH", "X509_CHECK_PRIVATE_KEY"):
            hint = " (the key does not belong to the certificate)"
        elif "bad decrypt" in str(e) or e.reason in ("BAD_DECRYPT", "BAD_PASSWORD_READ"):
            hint = " (an encrypted key: wrong or missing tls-key-file-pass)"
        elif e.reason in (None, "PEM lib", "NO_START_LINE"):
            hint = " (not a PEM certificate and its PEM private key)"
        raise TLSError(
            f"cannot load tls-cert-file '{cert[:200]}' with tls-key-file '{key[:200]}': "
            f"{_why(e)}{hint}"
        ) from None
    except OSError as e:
        raise TLSError(f"cannot read tls-cert-file or tls-key-file: {_why(e)}") from None
    if ca_file or ca_dir:
        try:
            ctx.load_verify_locations(cafile=ca_file or None, capath=ca_dir or None)
        except (ssl.SSLError, OSError) as e:
            raise TLSError(
                f"cannot load tls-ca-cert-file '{ca_file[:200]}' / tls-ca-cert-dir "
                f"'{ca_dir[:200]}': {_why(e)}"
            ) from None
    ctx.verify_mode = {
        "no": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "yes": ssl.CERT_REQUIRED,
    }[auth]
    dh = values["tls-dh-params-file"]
    if dh:
        try:
            ctx.load_dh_params(dh)
        except (ssl.SSLError, OSError) as e:
            raise TLSError(f"cannot load tls-dh-params-file '{dh[:200]}': {_why(e)}") from None
    try:
        names = parse_protocols(values["tls-protocols"])
    except ValueError as e:
        raise TLSError(f"tls-protocols: {e}") from None
    wanted = sorted(names, key=_ORDER.index)
    try:
        ctx.minimum_version = PROTOCOLS[wanted[0]]
        ctx.maximum_version = PROTOCOLS[wanted[-1]]
    except ValueError as e:
        raise TLSError(f"tls-protocols: {e}") from None
    for n in _ORDER[_ORDER.index(wanted[0]) : _ORDER.index(wanted[-1]) + 1]:
        if n not in wanted:  # a gap ("TLSv1.1 TLSv1.3"): the ones between are off
            ctx.options |= _NO_FLAG[n]
    if values["tls-ciphers"]:
        try:
            ctx.set_ciphers(values["tls-ciphers"])
        except ssl.SSLError:
            raise TLSError(
                f"tls-ciphers: no usable cipher in '{values['tls-ciphers'][:64]}'"
            ) from None
    if values["tls-ciphersuites"]:
        _set_ciphersuites(ctx, values["tls-ciphersuites"])
    if values["tls-prefer-server-ciphers"]:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    _set_session_cache(
        ctx,
        values["tls-session-caching"],
        values["tls-session-cache-size"],
        values["tls-session-cache-timeout"],
    )
    return ctx


def certificate_summary(values: Mapping[str, Any]) -> str:
    """Subject and expiry of the configured certificate, for the log (best effort)."""
    try:
        info = ssl._ssl._test_decode_cert(values["tls-cert-file"])  # type: ignore[attr-defined]
    except (AttributeError, ssl.SSLError, OSError, ValueError):
        return values["tls-cert-file"]
    subject = ", ".join("=".join(p) for rdn in info.get("subject", ()) for p in rdn)
    return f"{values['tls-cert-file']} ({subject}; expires {info.get('notAfter', '?')})"
