"""atheris target: the request parsers, pure Python (RespParser) and hiredis (RequestParser).

The input is a byte stream and the points where it is split into reads. Both parsers get the
same reads through batch(), as a connection does. Invariants:
- no exception but ProtocolError;
- both return the same commands and the same error (text), whatever the split;
- declared counts cost no memory up front: the process runs under RLIMIT_AS (4 GiB), so an
  allocation sized by a hostile header fails here (MemoryError) instead of passing unseen.
Disagreements that known.py lists are counted by id and do not fail the run.

  python fuzz/fuzz_parser.py [libFuzzer options] [corpus dirs]
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import hiredis

    from fuzz import known, stats
    from ironcache.protocol import ProtocolError, RequestParser, RespParser

AS_LIMIT = 4 << 30


def run(parser: Any, chunks: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    """The commands and the error, read by read, as Client.process() asks for them."""
    out: list[list[bytes]] = []
    for chunk in chunks:
        if parser.authenticated:
            cmds, err = parser.batch(chunk)
        else:  # one at a time: AUTH would change the limits for the next one
            parser.feed(chunk)
            cmds, err = [], None
            try:
                while (cmd := parser.next_command()) is not None:
                    cmds.append(cmd)
            except ProtocolError as e:
                err = e
        out += cmds
        if err is not None:
            assert isinstance(err, ProtocolError), type(err)
            return out, str(err)
    return out, None


def split(data: bytes) -> tuple[list[bytes], bool]:
    """The first byte: how many cuts (0-7) and whether the client is unauthenticated; the next
    bytes: where the cuts go."""
    if not data:
        return [b""], False
    head = data[0]
    ncuts, unauth = head & 7, bool(head & 8)
    cuts_raw, body = data[1 : 1 + ncuts], data[1 + ncuts :]
    if not body:
        return [b""], unauth
    cuts = sorted({1 + c * len(body) // 256 for c in cuts_raw} - {len(body)})
    bounds = [0, *[c for c in cuts if c < len(body)], len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a], unauth


def one_input(data: bytes) -> None:
    chunks, unauth = split(data)
    stream = b"".join(chunks)
    skip = known.parser_skip(stream)
    if skip:
        stats.count("known", skip)
        return
    py = RespParser(512 * 1024 * 1024, 2**31 - 1)
    hi = RequestParser(hiredis, 512 * 1024 * 1024, 2**31 - 1)
    if unauth:
        py.authenticated = hi.authenticated = False
    a = run(py, chunks)
    b = run(hi, chunks)
    if a != b:
        whole = run(RequestParser(hiredis, 512 * 1024 * 1024, 2**31 - 1), [stream])
        kid = known.parser_disagreement(stream, a, b, whole)
        if kid:
            stats.count("known", kid)
            return
        raise AssertionError(
            f"parsers disagree on {chunks!r}:\n python:  {a!r}\n hiredis: {b!r}"
        )
    stats.count("cases", "parser")


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
