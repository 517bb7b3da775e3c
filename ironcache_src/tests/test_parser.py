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


# -- Redis's rules, byte for byte (networking.c processInlineBuffer/processMultibulkBuffer;
#    every row was checked against redis-server 7.0.15, and the wire tests in
#    test_protocol_limits.py run the same rows against it with IRONCACHE_TEST_TARGET=redis) --
WAIT = None  # no verdict yet: the parser waits for more bytes

REDIS_RULES = [
    # multibulk counts: string2ll, INT_MAX at most; zero and negatives are skipped
    (b"*03\r\n", [], "invalid multibulk length"),
    (b"*-0\r\n", [], "invalid multibulk length"),
    (b"*+1\r\n", [], "invalid multibulk length"),
    (b"* 1\r\n", [], "invalid multibulk length"),
    (b"*1 \r\n", [], "invalid multibulk length"),
    (b"*\r\n", [], "invalid multibulk length"),
    (b"*2147483648\r\n", [], "invalid multibulk length"),
    (b"*9223372036854775808\r\n", [], "invalid multibulk length"),
    (b"*-99999999999\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]], WAIT),
    (b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]], WAIT),
    (b"*2147483647\r\n$4\r\nPING\r\n", [], WAIT),
    # bulk lengths
    (b"*1\r\n$03\r\nabc\r\n", [], "invalid bulk length"),
    (b"*1\r\n$-0\r\n", [], "invalid bulk length"),
    (b"*1\r\n$-1\r\n", [], "invalid bulk length"),
    (b"*1\r\n$%d\r\n" % (MAX_BULK + 1), [], "invalid bulk length"),
    # a header line ends at the first CR; the byte after it is skipped unseen, and so are
    # the two bytes after a payload
    (b"*1\rx$4\rxPING\r\n", [[b"PING"]], WAIT),
    (b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", [[b"PING"], [b"PING"]], WAIT),
    # a NUL byte before the CR (or an inline LF) hides it: Redis waits
    (b"*1\x00\r\n$4\r\nPING\r\n", [], WAIT),
    (b"*1\r\n$4\x00\r\nPING\r\n", [], WAIT),
    (b"ECHO a\x00b\r\nPING\r\n", [], WAIT),
    # '$' is checked once the header line is complete, and names the byte found
    (b"*1\r\nfoo", [], WAIT),
    (b"*1\r\n$", [], WAIT),
    (b"*3\r\n$3\r\nSET\r\n+k\r\n+v\r\n", [], "expected '$', got '+'"),
    (b"*1\r\n\r\n", [], "expected '$', got '\r'"),
    (b"*1\r\n\xff\r\n", [], "expected '$', got '\xff'"),
    (b"*2\r\n$4\r\nECHO\r\n=5\r\ntxt:k\r\n", [], "expected '$', got '='"),
    (b"*2\r\n$4\r\nECHO\r\n(12\r\n", [], "expected '$', got '('"),
    # anything but '*' at the start of a request is an inline command
    (b"$-1\r\n", [[b"$-1"]], WAIT),
    (b"_\r\n", [[b"_"]], WAIT),
    (b"*1\r\n$4\r\nPING\r\n~1\r\n$1\r\na\r\n", [[b"PING"], [b"~1"], [b"$1"], [b"a"]], WAIT),
    (b">1\r\n$4\r\nPING\r\n", [[b">1"], [b"$4"], [b"PING"]], WAIT),
    (b"%1\r\n$1\r\na\r\n$1\r\nb\r\n", [[b"%1"], [b"$1"], [b"a"], [b"$1"], [b"b"]], WAIT),
    (b"|1\r\n+a\r\n+b\r\n", [[b"|1"], [b"+a"], [b"+b"]], WAIT),
    # inline words as sdssplitargs splits them
    (b"ECHO\x0ba\x0cb\r\n", [[b"ECHO\x0ba\x0cb"]], WAIT),
    (b"ECHO a\x0b\r\n", [[b"ECHO", b"a\x0b"]], WAIT),
    (b'ECHO "a"\x0b\r\n', [[b"ECHO", b"a"]], WAIT),
    (b"ECHO 'a'\x0cb\r\n", [[b"ECHO", b"a", b"b"]], WAIT),
    (b"\x0b\x0cPING\r\n", [[b"PING"]], WAIT),
    (b"ECHO a\rb\r\n", [[b"ECHO", b"a", b"b"]], WAIT),
    (b"PING\r\r\n", [[b"PING"]], WAIT),
    (b'ECHO "\\x4"\r\n', [[b"ECHO", b"x4"]], WAIT),
    (b'ECHO "a\\"\r\n', [], "unbalanced quotes in request"),
    (b'ECHO "a"b\r\n', [], "unbalanced quotes in request"),
    # header lines are capped at 64 KiB (PROTO_INLINE_MAX_SIZE)
    (b"*" + b"1" * 70000, [], "too big mbulk count string"),
    (b"*1\r\n$" + b"1" * 70000, [], "too big bulk count string"),
    (b"PING" + b" " * 70000, [], "too big inline request"),
    (b"*" + b"\x00" * 70000, [], "too big mbulk count string"),
]


def _redis_python() -> Any:
    return RespParser(max_bulk_len=MAX_BULK, max_multibulk_len=2**31 - 1)


def _redis_fast() -> Any:
    return protocol.make_parser(MAX_BULK, 2**31 - 1)


RULE_PARSERS = [pytest.param(_redis_python, id="RespParser"),
                pytest.param(_redis_fast, id="make_parser")]


def _verdict(p: Any, chunks: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    got: list[list[bytes]] = []
    for chunk in chunks:
        cmds, err = p.batch(chunk)
        got += [[bytes(a) for a in c] for c in cmds]
        if err is not None:
            return got, str(err)
    return got, None


@pytest.mark.parametrize("make", RULE_PARSERS)
@pytest.mark.parametrize(("wire", "cmds", "err"), REDIS_RULES,
                         ids=[repr(w[:24]) for w, _, _ in REDIS_RULES])
def test_redis_rules(make: Callable[[], Any], wire: bytes, cmds: list[list[bytes]],
                     err: str | None) -> None:
    # As one read, after a command (the hiredis parser then starts on a frame), and byte
    # by byte: the same verdict every way.
    assert _verdict(make(), [wire]) == (cmds, err)
    ping = frame([b"PING"])
    assert _verdict(make(), [ping + wire]) == ([[b"PING"], *cmds], err)
    if len(wire) < 200:
        assert _verdict(make(), [wire[i:i + 1] for i in range(len(wire))]) == (cmds, err)


def test_inline_split_like_sdssplitargs() -> None:
    split = protocol.split_inline
    assert split(b"a\x0bb c") == [b"a\x0bb", b"c"]  # VT and FF do not end a word...
    assert split(b"\x0c a \x0bb\x0b") == [b"a", b"b\x0b"]  # ...but are blanks between words
    assert split(b"a\tb\rc\nd") == [b"a", b"b", b"c", b"d"]
    assert split(b"\"x\"\x0b'y'\x0c") == [b"x", b"y"]


def test_error_replies_are_one_line() -> None:
    error = protocol.error
    assert error("ERR bad\r\n") == b"-ERR bad\r\n"  # trimmed at the ends, as Redis does
    assert error("ERR a\nb\rc") == b"-ERR a b c\r\n"  # and spaces inside
    assert error("ERR got '\xff'", "latin-1") == b"-ERR got '\xff'\r\n"


# -- the hiredis path: what it may read, and what it must leave to the Python parser ---------

def _hiredis_parser() -> Any:
    pytest.importorskip("hiredis")
    p = protocol.make_parser(MAX_BULK, 2**31 - 1)
    assert p.hiredis is not None
    return p


@pytest.mark.parametrize("wire", [
    b"*2147483647\r\n$4\r\nPING\r\n",
    b"*1\r\n$4\r\nPING\r\n*2147483647\r\n",
    b"*2\r\n$4\r\nECHO\r\n*2000000000\r\n",
    b"*2\r\n$4\r\nECHO\r\n~2000000000\r\n",
    b"*2\r\n$4\r\nECHO\r\n%2000000000\r\n",
])
def test_huge_counts_never_reach_hiredis(wire: bytes) -> None:
    """hiredis allocates for a declared count at once (gigabytes for *2147483647, and a long
    pause when it is freed): a count the read cannot hold goes to the Python parser."""
    p = _hiredis_parser()
    cmds, err = p.batch(wire)
    assert p.reader is None  # hiredis was given nothing, or dropped before it parsed on
    want_cmds, want_err = _verdict(_redis_python(), [wire])
    assert ([[bytes(a) for a in c] for c in cmds], err and str(err)) == (want_cmds, want_err)


@pytest.mark.parametrize("last", [b":1\r\n", b"#t\r\n", b",1\r\n", b"$0\r\n\r\n", b"*0\r\n"])
def test_a_reply_before_a_cut_frame_is_not_taken_for_a_boundary(last: bytes) -> None:
    """A read that ends inside a frame, after a reply of any kind: hiredis may not keep the
    cut frame (nor drop that reply), whatever it makes of the bytes fed after the read."""
    head = frame([b"PING"]) + last + b"*3\r\n$1\r\nb\r\n"
    tail = b"$1\r\nc\r\n$1\r\nd\r\n"
    for chunks in ([head, tail], [head + tail]):
        assert _verdict(_hiredis_parser(), chunks) == _verdict(_redis_python(), chunks)


def test_hiredis_keeps_nothing_between_reads() -> None:
    p = _hiredis_parser()
    whole = frame([b"SET", b"k", b"v" * 100])
    for cut in range(1, len(whole)):
        cmds, err = p.batch(frame([b"PING"]) + whole[:cut])
        assert (cmds, err) == ([[b"PING"]], None)
        assert p.reader is None and p.py.held() == cut  # the frame's start is the Python one's
        assert p.unparsed() == whole[:cut]
        cmds, err = p.batch(whole[cut:] + frame([b"GET", b"k"]))
        assert (cmds, err) == ([[b"SET", b"k", b"v" * 100], [b"GET", b"k"]], None)
        assert p.idle() and p.reader is not None  # whole frames again: hiredis reads them


_pieces = st.sampled_from([
    frame([b"PING"]), frame([b"SET", b"k", b"v"]), frame([b"ECHO", b"+~>|=(%*"]),
    frame([b"ECHO", b"*99999"]), frame([b"ECHO", b"x" * 300]), b"PING\r\n", b"ECHO a\x0bb\n",
    b"*0\r\n", b"*-1\r\n", b"*1\r\n+k\r\n", b"~1\r\n$1\r\na\r\n", b"*1\r\n$4\r\nPINGxx",
    b"*1\rx$4\rxPING\r\n", b"$-1\r\n", b"_\r\n", b"*1\r\n:1\r\n", b"*1\r\n*1\r\n$1\r\na\r\n",
    b"*2\r\n$4\r\nECHO\r\n=5\r\ntxt:k\r\n", b"*03\r\n", b"\x00", b"\r\n", b"*1\r\n$1\x00\r\n",
    b"*1234567\r\n", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
])


@given(pieces=st.lists(_pieces, min_size=1, max_size=8), data=st.data())
def test_hiredis_path_matches_python_parser_at_any_split(pieces: list[bytes],
                                                         data: st.DataObject) -> None:
    """Any stream, cut anywhere: the hiredis-backed parser returns exactly what the Python
    parser (Redis's rules) returns, commands and error words alike (no frame lost or
    misread when a read switches between the two)."""
    p = _hiredis_parser()
    wire = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    chunks = [c for c in chunks if c]
    assert _verdict(p, chunks) == _verdict(_redis_python(), chunks)
    assert _verdict(_hiredis_parser(), [wire]) == _verdict(_redis_python(), [wire])


def test_input_memory_counts_parsed_arguments() -> None:
    """A command arriving in parts holds its parsed arguments, not twice its bytes."""
    p = _redis_python()
    args = [b"x" * 1000] * 200
    wire = frame([b"RPUSH", b"k", *args])
    p.feed(wire[: len(wire) - 10])
    assert p.next_command() is None
    assert 200 * 1000 <= p.memory() < 1.2 * 200 * 1000
    assert len(p.buf) < 2000  # the bytes already parsed were freed
