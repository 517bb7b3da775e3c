"""Hypothesis against IronCache's request parser: valid, split, truncated and arbitrary frames.

API: `RespParser(max_bulk_len=..., max_multibulk_len=...)`, `.feed(bytes)`,
`.next_command() -> list[bytes] | None` (None: need more data), `ProtocolError` on bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from support import IS_REDIS, encode_command

if IS_REDIS:
    pytest.skip("parser unit tests are IronCache-specific", allow_module_level=True)

protocol = pytest.importorskip("ironcache.protocol")
RespParser = protocol.RespParser
ProtocolError = protocol.ProtocolError

MAX_BULK = 4096
MAX_MULTI = 64


def _python_parser() -> Any:
    return RespParser(max_bulk_len=MAX_BULK, max_multibulk_len=MAX_MULTI)


def _fast_parser() -> Any:
    return protocol.make_parser(MAX_BULK, MAX_MULTI)


PARSERS: list[Any] = [pytest.param(_python_parser, id="RespParser")]
if hasattr(protocol, "make_parser"):
    PARSERS.append(pytest.param(_fast_parser, id="make_parser"))

args_st = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
commands_st = st.lists(args_st, min_size=1, max_size=8)


def drain(p: Any, limit: int = 10_000) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for _ in range(limit):
        cmd = p.next_command()
        if cmd is None:
            return out
        out.append([bytes(a) for a in cmd])
    raise AssertionError("parser kept returning commands")


def frame(cmd: list[bytes]) -> bytes:
    return encode_command(*cmd)


@pytest.mark.parametrize("make", PARSERS)
@given(commands=commands_st, data=st.data())
def test_roundtrip_in_arbitrary_chunks(make: Callable[[], Any], commands: list[list[bytes]],
                                       data: st.DataObject) -> None:
    wire = b"".join(frame(c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    p = make()
    got: list[list[bytes]] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        p.feed(wire[prev:cut])
        prev = cut
        got.extend(drain(p))
    assert got == commands
    assert p.next_command() is None


@pytest.mark.parametrize("make", PARSERS)
@given(cmd=args_st, data=st.data())
def test_truncated_frame_waits_for_more(make: Callable[[], Any], cmd: list[bytes],
                                        data: st.DataObject) -> None:
    wire = frame(cmd)
    cut = data.draw(st.integers(0, len(wire) - 1))
    p = make()
    p.feed(wire[:cut])
    assert p.next_command() is None  # incomplete is not an error
    assert p.next_command() is None
    p.feed(wire[cut:])
    assert [bytes(a) for a in p.next_command()] == cmd
    assert p.next_command() is None


@pytest.mark.parametrize("make", PARSERS)
@given(blob=st.binary(max_size=400), chunks=st.integers(1, 5))
def test_arbitrary_bytes_never_raise_anything_but_protocolerror(
        make: Callable[[], Any], blob: bytes, chunks: int) -> None:
    p = make()
    step = max(1, len(blob) // chunks)
    try:
        for i in range(0, max(len(blob), 1), step):
            p.feed(blob[i:i + step])
            for cmd in drain(p):
                assert isinstance(cmd, list) and cmd
                assert all(isinstance(a, bytes) for a in cmd)
    except ProtocolError as e:
        assert str(e)  # a reason for the "-ERR Protocol error: <reason>" reply


@pytest.mark.parametrize("make", PARSERS)
@given(commands=commands_st, data=st.data())
def test_mutated_frames(make: Callable[[], Any], commands: list[list[bytes]],
                        data: st.DataObject) -> None:
    wire = bytearray(b"".join(frame(c) for c in commands))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    p = make()
    p.feed(bytes(wire))
    try:
        got = drain(p)
    except ProtocolError:
        return
    for cmd in got:
        assert all(isinstance(a, bytes) for a in cmd)


@pytest.mark.parametrize("make", PARSERS)
@given(good=commands_st, garbage=st.sampled_from(
    [b"*1\r\n$x\r\n", b"*x\r\n", b"*1\r\nfoo\r\n", b"*1\r\n$-3\r\n",
     b"*1\r\n$%d\r\n" % (MAX_BULK + 1), b"*%d\r\n" % (MAX_MULTI + 1)]))
def test_good_commands_before_a_bad_frame_are_returned(
        make: Callable[[], Any], good: list[list[bytes]], garbage: bytes) -> None:
    p = make()
    p.feed(b"".join(frame(c) for c in good) + garbage)
    got: list[list[bytes]] = []
    with pytest.raises(ProtocolError):
        for _ in range(1000):
            cmd = p.next_command()
            assert cmd is not None, "a bad frame must raise, not wait"
            got.append([bytes(a) for a in cmd])
    assert got == good


@pytest.mark.parametrize("make", PARSERS)
def test_bulk_over_limit_rejected_from_header(make: Callable[[], Any]) -> None:
    p = make()
    p.feed(b"*2\r\n$3\r\nSET\r\n$%d\r\n" % (MAX_BULK + 1))  # no payload sent yet
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        p.next_command()


@pytest.mark.parametrize("make", PARSERS)
def test_bulk_at_limit_accepted(make: Callable[[], Any]) -> None:
    p = make()
    p.feed(frame([b"SET", b"k", b"v" * MAX_BULK]))
    assert p.next_command() == [b"SET", b"k", b"v" * MAX_BULK]


@pytest.mark.parametrize("make", PARSERS)
def test_multibulk_over_limit_rejected(make: Callable[[], Any]) -> None:
    p = make()
    p.feed(b"*%d\r\n" % (MAX_MULTI + 1))
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        p.next_command()


@pytest.mark.parametrize("make", PARSERS)
@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"PING\r\n", [[b"PING"]]),
        (b"PING\n", [[b"PING"]]),
        (b"SET a b\r\nGET a\r\n", [[b"SET", b"a", b"b"], [b"GET", b"a"]]),
        (b'SET k "hello world"\r\n', [[b"SET", b"k", b"hello world"]]),
        (b"SET k 'it''s'\r\n", None),
        (b'ECHO "\\x41\\n"\r\n', [[b"ECHO", b"A\n"]]),
        (b"\r\n\r\nPING\r\n", [[b"PING"]]),
        (b"*0\r\n*-1\r\nPING\r\n", [[b"PING"]]),
        (b"*1\r\n$0\r\n\r\n", [[b""]]),
    ],
)
def test_inline_and_edge_frames(make: Callable[[], Any], wire: bytes,
                                expected: list[list[bytes]] | None) -> None:
    p = make()
    p.feed(wire)
    if expected is None:
        with pytest.raises(ProtocolError):
            drain(p)
        return
    assert drain(p) == expected


@pytest.mark.parametrize("make", PARSERS)
def test_unbalanced_quotes(make: Callable[[], Any]) -> None:
    p = make()
    p.feed(b'SET k "oops\r\n')
    with pytest.raises(ProtocolError, match="unbalanced quotes"):
        drain(p)


@pytest.mark.parametrize("make", PARSERS)
@given(line=st.lists(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                                     exclude_characters="\"'\\"),
                             min_size=1, max_size=10), min_size=1, max_size=6))
def test_inline_words(make: Callable[[], Any], line: list[str]) -> None:
    assume(not line[0].startswith("*"))
    p = make()
    p.feed(" ".join(line).encode() + b"\r\n")
    assert drain(p) == [[w.encode() for w in line]]


@pytest.mark.parametrize("make", PARSERS)
@given(commands=commands_st, data=st.data())
def test_batch_matches_next_command(make: Callable[[], Any], commands: list[list[bytes]],
                                    data: st.DataObject) -> None:
    """`batch(data)` (what the server calls per read) returns what feed + next_command do."""
    wire = b"".join(frame(c) for c in commands)
    if data.draw(st.booleans()):  # a frame cut short, or an odd frame, at the end
        wire += data.draw(st.sampled_from(
            [b"*2\r\n$3\r\nGET\r\n", b"*3\r\n$3\r\nSET", b"*1\r\n:1\r\n", b"*1\r\n+OK\r\n",
             b"*0\r\n", b"*1\r\n$%d\r\n" % (MAX_BULK + 1)]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    p, ref = make(), make()
    got: list[list[bytes]] = []
    want: list[list[bytes]] = []
    got_err = want_err = None
    for chunk in chunks:
        if got_err is None:
            cmds, err = p.batch(chunk)
            got += [[bytes(a) for a in c] for c in cmds]
            got_err = err
        if want_err is None:
            ref.feed(chunk)
            try:
                while (cmd := ref.next_command()) is not None:
                    want.append([bytes(a) for a in cmd])
            except ProtocolError as e:
                want_err = e
    assert got == want
    assert (got_err is None) == (want_err is None)


# Whole frames that hiredis reads but that are not requests: one read with a good command
# first and such a frame after it must get the Python parser's verdict from make_parser()
# too (this is the check batch() makes at C speed when a read ends on a frame boundary).
NOT_REQUESTS = [
    b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",  # a map
    b":5\r\n",  # a number
    b"+PING\r\n",  # a simple string
    b"*1\r\n:5\r\n",  # a number as an argument
    b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\na\r\n",  # a nested array
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",  # a null bulk
    b"*1\r\n_\r\n",  # a RESP3 null
    b"*1\r\n#t\r\n",  # a boolean
    b"*1\r\n,1.5\r\n",  # a double
    b"*1\r\n-ERR x\r\n",  # an error
    b"*-1\r\n*1\r\n$4\r\nPING\r\n",  # a null array, then a command
    b"*0\r\n*1\r\n$4\r\nPING\r\n",  # an empty array, then a command
    b"*1\r\n$%d\r\n%s\r\n" % (MAX_BULK + 1, b"x" * (MAX_BULK + 1)),  # over the bulk limit
]


@pytest.mark.parametrize("odd", NOT_REQUESTS)
def test_batch_of_whole_frames_that_are_not_requests(odd: bytes) -> None:
    wire = frame([b"PING"]) + odd
    ref = _python_parser()
    ref.feed(wire)
    want: list[list[bytes]] = []
    want_err: ProtocolError | None = None
    try:
        while (cmd := ref.next_command()) is not None:
            want.append(cmd)
    except ProtocolError as e:
        want_err = e
    fast = _fast_parser()
    assert fast.batch(frame([b"PING"])) == ([[b"PING"]], None)  # it reads through hiredis now
    cmds, err = fast.batch(wire)
    assert [[bytes(a) for a in c] for c in cmds] == want
    assert (err is None) == (want_err is None)
    if err is not None and want_err is not None:
        assert str(err) == str(want_err)
