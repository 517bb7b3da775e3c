"""The C libraries Redis builds into its Lua (bit, cjson, cmsgpack, struct), in Python.

lupa's Lua 5.1 ships none of them, so each function here is registered into the script
runtime (commands/scripting.py) behind a small Lua wrapper. A function returns a tuple whose
first item says whether it succeeded: `(True, values...)`, or `(False, message)` which the
wrapper raises as a Lua error (a Python exception must never cross into Lua: lupa would hand
the script a Python object). Semantics follow the C sources Redis 7.0 vendors in
deps/lua/src (lua_bit.c, lua_cjson.c, lua_cmsgpack.c, lua_struct.c).
"""

from __future__ import annotations

import contextlib
import math
import re
import struct as _struct
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

try:
    from lupa import lua51
except ImportError:  # the server starts without it; scripting answers an error
    lua51 = None


def lua_type(v: Any) -> str | None:
    return lua51.lua_type(v) if lua51 is not None else None

# ------------------------------------------------------------------ bit (LuaBitOp 1.0.2)


def tobit(x: Any) -> int:
    """LuaBitOp's normalisation: round to an integer, keep the low 32 bits, signed."""
    if isinstance(x, bytes):
        x = float(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return 0
        x = round(x)  # the 2^52+2^51 trick rounds half to even, as round() does
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x & 0x80000000 else x


def _bitargs(args: tuple[Any, ...], n: int = 1) -> str:
    if len(args) < n:
        return f"bad argument #{len(args) + 1} to '?' (number expected, got no value)"
    for i, a in enumerate(args):
        if isinstance(a, bool) or not isinstance(a, (int, float, bytes)):
            return f"bad argument #{i + 1} to '?' (number expected, got {_tname(a)})"
        if isinstance(a, bytes):
            try:
                float(a)
            except ValueError:
                return f"bad argument #{i + 1} to '?' (number expected, got string)"
    return ""


def _tname(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    t = lua_type(v)
    return t or type(v).__name__


def bit_op(name: bytes, *args: Any) -> tuple[Any, ...]:
    op = name.decode()
    why = _bitargs(args, 1)
    if why:
        return False, why.replace("'?'", f"'{op}'")
    v = [tobit(a) for a in args]
    if op == "tobit":
        r = v[0]
    elif op == "bnot":
        r = ~v[0]
    elif op == "band":
        r = -1
        for x in v:
            r &= x
    elif op == "bor":
        r = 0
        for x in v:
            r |= x
    elif op == "bxor":
        r = 0
        for x in v:
            r ^= x
    elif op == "bswap":
        r = int.from_bytes((v[0] & 0xFFFFFFFF).to_bytes(4, "little"), "big")
    elif op == "tohex":
        n = v[1] if len(v) > 1 else 8
        digits = "0123456789abcdef"
        if n < 0:
            n = 2147483647 if n == -(2**31) else -n
            digits = digits.upper()
        n = min(n, 8)
        x = v[0] & 0xFFFFFFFF
        out = []
        for dummy in range(n):
            out.append(digits[x & 15])
            x >>= 4
        return True, "".join(reversed(out)).encode()
    else:
        if len(v) < 2:
            return False, f"bad argument #2 to '{op}' (number expected, got no value)"
        x, s = v[0] & 0xFFFFFFFF, v[1] & 31
        if op == "lshift":
            r = x << s
        elif op == "rshift":
            r = x >> s
        elif op == "arshift":
            r = tobit(x) >> s
        elif op == "rol":
            r = (x << s) | (x >> (32 - s))
        elif op == "ror":
            r = (x >> s) | (x << (32 - s))
        else:
            return False, f"unknown bit operation {op}"
    return True, tobit(r)


# ------------------------------------------------------------------ shared helpers


def is_array(t: Any) -> int:
    """Length of `t` as an array (keys exactly 1..n), or -1 when it is not one."""
    n = 0
    count = 0
    for k in t.keys():  # noqa: SIM118 (a Lua table)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or k != int(k) or k < 1:
            return -1
        n = max(n, int(k))
        count += 1
    return n if n == count else -1


# ------------------------------------------------------------------ cjson (lua-cjson 2.1.0)


class CJson:
    """Per-runtime settings (cjson.encode_max_depth...), as lua_cjson keeps per state."""

    def __init__(self, null: Any) -> None:
        self.null = null  # cjson.null: a unique Lua value decoded from JSON null
        self.encode_max_depth = 1000
        self.decode_max_depth = 1000
        self.encode_invalid_numbers = False
        self.decode_invalid_numbers = True
        self.sparse_convert = False
        self.sparse_ratio = 2
        self.sparse_safe = 10
        self.keep_buffer = True
        self.number_precision = 14

    def config(self, name: bytes, *args: Any) -> tuple[Any, ...]:
        attr = name.decode()
        if attr == "encode_keep_buffer":
            if args:
                self.keep_buffer = bool(args[0])
            return True, self.keep_buffer
        if attr in ("encode_max_depth", "decode_max_depth", "encode_number_precision"):
            key = "number_precision" if attr == "encode_number_precision" else attr
            if args and args[0] is not None:
                try:
                    n = int(args[0])
                except (TypeError, ValueError):
                    return False, f"bad argument #1 to '{attr}' (number expected)"
                top = 14 if key == "number_precision" else 2**31 - 1
                if not 1 <= n <= top:
                    return (
                        False,
                        f"bad argument #1 to '{attr}' (expected integer between 1 and {top})",
                    )
                setattr(self, key, n)
            return True, getattr(self, key)
        if attr in ("encode_invalid_numbers", "decode_invalid_numbers"):
            if args and args[0] is not None:
                v = args[0]
                setattr(self, attr, v if v == b"null" else bool(v))
            v = getattr(self, attr)
            return True, v
        if attr == "encode_sparse_array":
            if args:
                if args[0] is not None:
                    self.sparse_convert = bool(args[0])
                if len(args) > 1 and args[1] is not None:
                    self.sparse_ratio = int(args[1])
                if len(args) > 2 and args[2] is not None:
                    self.sparse_safe = int(args[2])
            return True, self.sparse_convert, self.sparse_ratio, self.sparse_safe
        return False, f"unknown cjson setting {attr}"

    # -- encode
    def encode(self, *args: Any) -> tuple[Any, ...]:
        if len(args) != 1:
            return False, "bad argument #1 to 'encode' (expected 1 argument)"
        out: list[str] = []
        try:
            with _deep_recursion():
                self._enc(args[0], 0, out)
        except _JsonError as e:
            return False, str(e)
        return True, "".join(out).encode("latin-1")

    def _num(self, x: float | int) -> str:
        if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
            if not self.encode_invalid_numbers:
                raise _JsonError("Cannot serialise number: must not be NaN or Inf")
            if self.encode_invalid_numbers == b"null":
                return "null"
            if math.isnan(x):
                return "nan"
            return "inf" if x > 0 else "-inf"
        s = f"{x:.{self.number_precision}g}"
        return s

    def _enc(self, v: Any, depth: int, out: list[str]) -> None:
        if v is None or lua_type(v) == "userdata":  # cjson.null (scripts make no other)
            out.append("null")
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, (int, float)):
            out.append(self._num(v))
        elif isinstance(v, bytes):
            out.append(_json_str(v))
        elif lua_type(v) == "table":
            depth += 1
            if depth > self.encode_max_depth:
                raise _JsonError(f"Cannot serialise, excessive nesting ({depth})")
            n = self._array_len(v)
            if n > 0:
                out.append("[")
                for i in range(1, n + 1):
                    if i > 1:
                        out.append(",")
                    self._enc(v[i], depth, out)
                out.append("]")
            else:
                out.append("{")
                first = True
                for k, val in v.items():
                    if not first:
                        out.append(",")
                    first = False
                    if isinstance(k, bytes):
                        out.append(_json_str(k))
                    elif isinstance(k, (int, float)) and not isinstance(k, bool):
                        out.append('"' + self._num(k) + '"')
                    else:
                        raise _JsonError(
                            "Cannot serialise "
                            + _tname(k)
                            + ": table key must be a number or string"
                        )
                    out.append(":")
                    self._enc(val, depth, out)
                out.append("}")
        else:
            raise _JsonError(f"Cannot serialise {_tname(v)}: type not supported")

    def _array_len(self, t: Any) -> int:
        """lua_cjson's lua_array_length: > 0 an array, 0 an object (or empty table)."""
        n = 0
        items = 0
        for k in t.keys():  # noqa: SIM118 (a Lua table)
            if isinstance(k, (int, float)) and not isinstance(k, bool) and k == int(k) and k >= 1:
                n = max(n, int(k))
                items += 1
            else:
                return 0
        if self.sparse_ratio > 0 and n > items * self.sparse_ratio and n > self.sparse_safe:
            if not self.sparse_convert:
                raise _JsonError("Cannot serialise table: excessively sparse array")
            return 0
        return n

    # -- decode
    def decode(self, lua: Any, *args: Any) -> tuple[Any, ...]:
        if len(args) != 1:
            return False, "bad argument #1 to 'decode' (expected 1 argument)"
        s = args[0]
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            s = self._num(s).encode()
        if not isinstance(s, bytes):
            return False, f"bad argument #1 to 'decode' (string expected, got {_tname(s)})"
        try:
            with _deep_recursion():
                return True, _JsonDecoder(self, lua, s).document()
        except _JsonError as e:
            return False, str(e)


# lua-cjson's token names, in its error messages ("Expected value but found T_END ...").
_T_NAMES = {"{": "T_OBJ_BEGIN", "}": "T_OBJ_END", "[": "T_ARR_BEGIN", "]": "T_ARR_END",
            ":": "T_COLON", ",": "T_COMMA"}
_STRTOD = re.compile(
    rb"[ \t\n\v\f\r]*[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
    rb"(?:[pP][+-]?[0-9]+)?|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rb"|(?i:infinity|inf|nan))"
)
_ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b",
            ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}


def _strtod(raw: bytes) -> float:
    text = raw.strip().decode("ascii")
    if "x" in text.lower():
        return float.fromhex(text)
    return float(text)


class _JsonDecoder:
    """lua-cjson 2.1.0's decoder (json_next_token, json_process_value...), with its errors."""

    def __init__(self, cfg: CJson, lua: Any, data: bytes) -> None:
        self.cfg = cfg
        self.lua = lua
        self.data = data
        self.pos = 0
        self.depth = 0

    def token(self) -> tuple[str, Any, int]:
        """(type, value, index) of the next token; type "E" is an error (value: its text)."""
        data, n = self.data, len(self.data)
        while self.pos < n and data[self.pos] in b" \t\n\r":
            self.pos += 1
        at = self.pos
        if at >= n:
            return "T_END", None, at
        ch = data[at]
        if chr(ch) in _T_NAMES:
            self.pos += 1
            return _T_NAMES[chr(ch)], None, at
        if ch == 0x22:
            return self.string(at)
        if ch == 0x2D or 0x30 <= ch <= 0x39:
            if not self.cfg.decode_invalid_numbers and self.invalid_number(at):
                return "E", "invalid number", at
            return self.number(at)
        for word, value in ((b"true", True), (b"false", False), (b"null", None)):
            if data.startswith(word, at):
                self.pos += len(word)
                return ("T_NULL" if value is None else "T_BOOLEAN"), value, at
        if self.cfg.decode_invalid_numbers and self.invalid_number(at):
            return self.number(at)
        return "E", "invalid token", at

    def invalid_number(self, at: int) -> bool:
        p = self.data[at:]
        if p[:1] == b"+":
            return True
        if p[:1] == b"-":
            p = p[1:]
        if p[:1] == b"0":
            return len(p) > 1 and (p[1] | 0x20 == ord("x") or 0x30 <= p[1] <= 0x39)
        if p[:1] and p[0] <= 0x39:
            return False
        return p[:3].lower() in (b"inf", b"nan")

    def number(self, at: int) -> tuple[str, Any, int]:
        m = _STRTOD.match(self.data, at)
        if not m:
            return "E", "invalid number", at
        try:
            value = _strtod(m.group(0))
        except ValueError:
            return "E", "invalid number", at
        self.pos = m.end()
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return "T_NUMBER", int(value), at
        return "T_NUMBER", value, at

    def string(self, at: int) -> tuple[str, Any, int]:
        data, n = self.data, len(self.data)
        i = at + 1
        out = bytearray()
        while True:
            if i >= n:  # an error token's index is where reading stopped
                return "E", "unexpected end of string", i
            ch = data[i]
            if ch == 0x22:
                self.pos = i + 1
                return "T_STRING", bytes(out), at
            if ch != 0x5C:
                out.append(ch)
                i += 1
                continue
            if i + 1 >= n:  # the escape's character is the terminating NUL
                return "E", "invalid escape code", i
            esc = data[i + 1]
            if esc == ord("u"):
                code, after = self.unicode(i)
                if code is None:
                    return "E", "invalid unicode escape code", i
                i = after
                out += chr(code).encode("utf-8", "surrogatepass")
                continue
            rep = _ESCAPES.get(esc)
            if rep is None:
                return "E", "invalid escape code", i
            out += rep
            i += 2

    def unicode(self, i: int) -> tuple[int | None, int]:
        def hex4(k: int) -> int | None:
            h = self.data[k : k + 4]
            if len(h) < 4 or not all(c in b"0123456789abcdefABCDEF" for c in h):
                return None
            return int(h, 16)

        code = hex4(i + 2)
        if code is None:
            return None, i
        i += 6
        if 0xD800 <= code <= 0xDBFF:  # a high surrogate needs its low half
            if self.data[i : i + 2] != b"\\u":
                return None, i
            low = hex4(i + 2)
            if low is None or not 0xDC00 <= low <= 0xDFFF:
                return None, i
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            i += 6
        elif 0xDC00 <= code <= 0xDFFF:
            return None, i
        return code, i

    def fail(self, expected: str, tok: tuple[str, Any, int]) -> NoReturn:
        found = tok[1] if tok[0] == "E" else tok[0]
        raise _JsonError(f"Expected {expected} but found {found} at character {tok[2] + 1}")

    def descend(self) -> None:
        self.depth += 1
        if self.depth > self.cfg.decode_max_depth:
            raise _JsonError(
                f"Found too many nested data structures ({self.depth}) at character {self.pos}"
            )

    def document(self) -> Any:
        value = self.value(self.token())
        tok = self.token()
        if tok[0] != "T_END":
            self.fail("the end", tok)
        return value

    def value(self, tok: tuple[str, Any, int]) -> Any:
        kind = tok[0]
        if kind in ("T_STRING", "T_NUMBER", "T_BOOLEAN"):
            return tok[1]
        if kind == "T_NULL":
            return self.cfg.null
        if kind == "T_OBJ_BEGIN":
            return self.obj()
        if kind == "T_ARR_BEGIN":
            return self.array()
        self.fail("value", tok)

    def obj(self) -> Any:
        self.descend()
        t = self.lua.table()
        tok = self.token()
        if tok[0] != "T_OBJ_END":
            while True:
                if tok[0] != "T_STRING":
                    self.fail("object key string", tok)
                key = tok[1]
                tok = self.token()
                if tok[0] != "T_COLON":
                    self.fail("colon", tok)
                t[key] = self.value(self.token())
                tok = self.token()
                if tok[0] == "T_OBJ_END":
                    break
                if tok[0] != "T_COMMA":
                    self.fail("comma or object end", tok)
                tok = self.token()
        self.depth -= 1
        return t

    def array(self) -> Any:
        self.descend()
        t = self.lua.table()
        tok = self.token()
        i = 1
        if tok[0] != "T_ARR_END":
            while True:
                v = self.value(tok)
                if v is not None:
                    t[i] = v
                i += 1
                tok = self.token()
                if tok[0] == "T_ARR_END":
                    break
                if tok[0] != "T_COMMA":
                    self.fail("comma or array end", tok)
                tok = self.token()
        self.depth -= 1
        return t


@contextlib.contextmanager
def _deep_recursion() -> Iterator[None]:
    """cjson nests up to 1000 levels (encode_max_depth, decode_max_depth): two Python frames a
    level. Python-to-Python calls use no C stack (3.11+), so a higher limit is safe here."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class _JsonError(Exception):
    pass


_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESC.update({"/": "\\/"})


def _json_str(b: bytes) -> str:
    s = b.decode("latin-1")
    out = ['"']
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ------------------------------------------------------------------ cmsgpack (lua_cmsgpack 0.4.0)

MSGPACK_MAX_NESTING = 16


def _mp_int(n: int, out: bytearray) -> None:
    if n >= 0:
        if n <= 127:
            out.append(n)
        elif n <= 0xFF:
            out += b"\xcc" + n.to_bytes(1, "big")
        elif n <= 0xFFFF:
            out += b"\xcd" + n.to_bytes(2, "big")
        elif n <= 0xFFFFFFFF:
            out += b"\xce" + n.to_bytes(4, "big")
        else:
            out += b"\xcf" + (n & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    else:
        if n >= -32:
            out += (n & 0xFF).to_bytes(1, "big")
        elif n >= -128:
            out += b"\xd0" + n.to_bytes(1, "big", signed=True)
        elif n >= -32768:
            out += b"\xd1" + n.to_bytes(2, "big", signed=True)
        elif n >= -(2**31):
            out += b"\xd2" + n.to_bytes(4, "big", signed=True)
        else:
            out += b"\xd3" + max(n, -(2**63)).to_bytes(8, "big", signed=True)


def _mp_pack(v: Any, level: int, out: bytearray) -> None:
    if v is None:
        out += b"\xc0"
    elif isinstance(v, bool):
        out += b"\xc3" if v else b"\xc2"
    elif isinstance(v, (int, float)):
        x = float(v)
        if not math.isinf(x) and not math.isnan(x) and x == int(x) and -(2**63) <= x < 2**64:
            _mp_int(int(x), out)
        else:
            f32 = (
                _struct.unpack(">f", _struct.pack(">f", x))[0]
                if abs(x) < 3.5e38 or math.isinf(x)
                else None
            )
            if f32 is not None and (f32 == x or (math.isnan(x) and math.isnan(f32))):
                out += b"\xca" + _struct.pack(">f", x)
            else:
                out += b"\xcb" + _struct.pack(">d", x)
    elif isinstance(v, bytes):
        n = len(v)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + n.to_bytes(1, "big")
        elif n <= 0xFFFF:
            out += b"\xda" + n.to_bytes(2, "big")
        else:
            out += b"\xdb" + n.to_bytes(4, "big")
        out += v
    elif lua_type(v) == "table":
        if level >= MSGPACK_MAX_NESTING:
            out += b"\xc0"
            return
        n = is_array(v)
        if n >= 0:
            _mp_len(n, 0x90, b"\xdc", b"\xdd", out)
            for i in range(1, n + 1):
                _mp_pack(v[i], level + 1, out)
        else:
            items = list(v.items())
            _mp_len(len(items), 0x80, b"\xde", b"\xdf", out)
            for k, x in items:
                _mp_pack(k, level + 1, out)
                _mp_pack(x, level + 1, out)
    else:
        out += b"\xc0"


def _mp_len(n: int, fix: int, b16: bytes, b32: bytes, out: bytearray) -> None:
    if n <= 15:
        out.append(fix | n)
    elif n <= 0xFFFF:
        out += b16 + n.to_bytes(2, "big")
    else:
        out += b32 + n.to_bytes(4, "big")


def msgpack_pack(*args: Any) -> tuple[Any, ...]:
    if not args:
        return False, "MessagePack pack needs input."
    out = bytearray()
    for a in args:
        _mp_pack(a, 0, out)
    return True, bytes(out)


class _Short(Exception):
    pass


def _mp_unpack(lua: Any, b: bytes, i: int) -> tuple[Any, int]:
    if i >= len(b):
        raise _Short
    c = b[i]
    i += 1

    def take(n: int) -> bytes:
        nonlocal i
        if i + n > len(b):
            raise _Short
        r = b[i : i + n]
        i += n
        return r

    if c <= 0x7F:
        return c, i
    if c >= 0xE0:
        return c - 256, i
    if 0xA0 <= c <= 0xBF:
        return take(c & 31), i
    if 0x90 <= c <= 0x9F:
        return _mp_array(lua, b, i, c & 15)
    if 0x80 <= c <= 0x8F:
        return _mp_map(lua, b, i, c & 15)
    if c == 0xC0:
        return None, i
    if c == 0xC2:
        return False, i
    if c == 0xC3:
        return True, i
    ints = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False)}
    ints.update({0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)})
    if c in ints:
        n, signed = ints[c]
        v = int.from_bytes(take(n), "big", signed=signed)
        return (v if abs(v) < 2**53 else float(v)), i
    if c == 0xCA:
        return _struct.unpack(">f", take(4))[0], i
    if c == 0xCB:
        return _struct.unpack(">d", take(8))[0], i
    if c in (0xD9, 0xC4):
        return take(int.from_bytes(take(1), "big")), i
    if c in (0xDA, 0xC5):
        return take(int.from_bytes(take(2), "big")), i
    if c in (0xDB, 0xC6):
        return take(int.from_bytes(take(4), "big")), i
    if c == 0xDC:
        return _mp_array(lua, b, i + 2, int.from_bytes(take(2), "big"))
    if c == 0xDD:
        return _mp_array(lua, b, i + 4, int.from_bytes(take(4), "big"))
    if c == 0xDE:
        return _mp_map(lua, b, i + 2, int.from_bytes(take(2), "big"))
    if c == 0xDF:
        return _mp_map(lua, b, i + 4, int.from_bytes(take(4), "big"))
    raise ValueError("Bad data format in input.")


def _mp_array(lua: Any, b: bytes, i: int, n: int) -> tuple[Any, int]:
    if i > len(b):
        raise _Short
    items = []
    for dummy in range(n):
        v, i = _mp_unpack(lua, b, i)
        items.append(v)
    t = lua.table()
    for k, v in enumerate(items, 1):
        if v is not None:
            t[k] = v
    return t, i


def _mp_map(lua: Any, b: bytes, i: int, n: int) -> tuple[Any, int]:
    if i > len(b):
        raise _Short
    t = lua.table()
    for dummy in range(n):
        k, i = _mp_unpack(lua, b, i)
        v, i = _mp_unpack(lua, b, i)
        if k is not None:
            t[k] = v
    return t, i


def msgpack_unpack(lua: Any, mode: bytes, *args: Any) -> tuple[Any, ...]:
    """cmsgpack.unpack(s), unpack_one(s, offset), unpack_limit(s, limit, offset)."""
    if not args or not isinstance(args[0], bytes):
        return False, "MessagePack unpack needs a string."
    b = args[0]
    limit = 0
    offset = 0
    try:
        if mode == b"one":
            limit = 1
            offset = int(args[1]) if len(args) > 1 and args[1] is not None else 0
        elif mode == b"limit":
            limit = int(args[1]) if len(args) > 1 and args[1] is not None else 0
            offset = int(args[2]) if len(args) > 2 and args[2] is not None else 0
    except (TypeError, ValueError):
        return False, "bad argument to unpack (number expected)"
    if offset < 0 or limit < 0:
        return False, f"Invalid request to unpack with offset of {offset} and limit of {limit}."
    if offset > len(b):
        return False, f"Start offset {offset} greater than input length {len(b)}."
    out = []
    i = offset
    try:
        while i < len(b) and (not limit or len(out) < limit):
            v, i = _mp_unpack(lua, b, i)
            out.append(v)
    except _Short:
        return False, "Missing bytes in input."
    except ValueError as e:
        return False, str(e)
    if mode == b"all":
        return (True, *out)
    return (True, -1 if i >= len(b) else i, *out)


# ------------------------------------------------------------------ struct (Roberto's lstruct)


def _struct_items(fmt: bytes) -> list[tuple[str, int, str]]:
    """(option, size argument or -1, endian) per item; raises ValueError like luaL_error."""
    items = []
    endian = "<"
    align = 1
    i = 0
    while i < len(fmt):
        ch = chr(fmt[i])
        i += 1
        num = -1
        j = i
        while j < len(fmt) and chr(fmt[j]).isdigit():
            j += 1
        if j > i:
            num = int(fmt[i:j])
            i = j
        if ch in " ":
            continue
        if ch == ">":
            endian = ">"
        elif ch == "<" or ch == "=":
            endian = "<"
        elif ch == "!":
            align = num if num > 0 else 8
        elif ch in "xbBhHlLTiIfdsc":
            items.append((ch, num, endian))
        else:
            raise ValueError(f"invalid format option '{ch}'")
    del align
    return items


_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "i": 4, "I": 4}


def struct_pack(fmt: Any, *args: Any) -> tuple[Any, ...]:
    if not isinstance(fmt, bytes):
        return False, "bad argument #1 to 'pack' (string expected)"
    try:
        items = _struct_items(fmt)
    except ValueError as e:
        return False, str(e)
    out = bytearray()
    a = 0
    for ch, num, endian in items:
        if ch == "x":
            out.append(0)
            continue
        if a >= len(args):
            return False, f"bad argument #{a + 2} to 'pack' (number expected, got no value)"
        v = args[a]
        a += 1
        if ch in _SIZES:
            size = num if ch in "iI" and num > 0 else _SIZES[ch]
            if isinstance(v, bytes):
                try:
                    v = float(v)
                except ValueError:
                    return False, f"bad argument #{a + 1} to 'pack' (number expected, got string)"
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return False, f"bad argument #{a + 1} to 'pack' (number expected, got {_tname(v)})"
            n = int(v) & ((1 << (8 * size)) - 1)
            out += n.to_bytes(size, "little" if endian == "<" else "big")
        elif ch in "fd":
            if isinstance(v, bool) or not isinstance(v, (int, float, bytes)):
                return False, f"bad argument #{a + 1} to 'pack' (number expected, got {_tname(v)})"
            out += _struct.pack(endian + ch, float(v))
        elif ch in "sc":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v).encode()
            if not isinstance(v, bytes):
                return False, f"bad argument #{a + 1} to 'pack' (string expected, got {_tname(v)})"
            if ch == "s":
                out += v + b"\0"
            else:
                size = len(v) if num <= 0 else num
                if len(v) < size:
                    return False, f"bad argument #{a + 1} to 'pack' (string too short)"
                out += v[:size]
    return True, bytes(out)


def struct_unpack(fmt: Any, data: Any, *rest: Any) -> tuple[Any, ...]:
    if not isinstance(fmt, bytes) or not isinstance(data, bytes):
        return False, "bad argument to 'unpack' (string expected)"
    pos = int(rest[0]) - 1 if rest and rest[0] is not None else 0
    if pos < 0:
        return False, "bad argument #3 to 'unpack' (offset must be 1 or greater)"
    try:
        items = _struct_items(fmt)
    except ValueError as e:
        return False, str(e)
    out: list[Any] = []
    for ch, num, endian in items:
        if ch == "x":
            pos += 1
            continue
        if ch in _SIZES:
            size = num if ch in "iI" and num > 0 else _SIZES[ch]
            if pos + size > len(data):
                return False, "bad argument #2 to 'unpack' (data string too short)"
            v = int.from_bytes(
                data[pos : pos + size],
                "little" if endian == "<" else "big",
                signed=ch in "bhliT" and ch != "T",
            )
            out.append(v if abs(v) < 2**53 else float(v))
            pos += size
        elif ch in "fd":
            size = 4 if ch == "f" else 8
            if pos + size > len(data):
                return False, "bad argument #2 to 'unpack' (data string too short)"
            out.append(_struct.unpack(endian + ch, data[pos : pos + size])[0])
            pos += size
        elif ch == "s":
            end = data.find(b"\0", pos)
            if end < 0:
                return False, "bad argument #2 to 'unpack' (unfinished string in data)"
            out.append(data[pos:end])
            pos = end + 1
        elif ch == "c":
            size = num
            if size <= 0:
                if not out or not isinstance(out[-1], (int, float)):
                    return False, "bad argument #1 to 'unpack' (format 'c0' needs a previous size)"
                size = int(out.pop())
            if pos + size > len(data):
                return False, "bad argument #2 to 'unpack' (data string too short)"
            out.append(data[pos : pos + size])
            pos += size
    return (True, *out, pos + 1)


def struct_size(fmt: Any) -> tuple[Any, ...]:
    if not isinstance(fmt, bytes):
        return False, "bad argument #1 to 'size' (string expected)"
    try:
        items = _struct_items(fmt)
    except ValueError as e:
        return False, str(e)
    total = 0
    for ch, num, _e in items:
        if ch in "sc" and (ch == "s" or num <= 0):
            return False, "options 'c0' - 's' have undefined sizes"
        if ch == "x":
            total += 1
        elif ch in _SIZES:
            total += num if ch in "iI" and num > 0 else _SIZES[ch]
        elif ch in "fd":
            total += 4 if ch == "f" else 8
        else:
            total += num
    return True, total


# ------------------------------------------------------------------ bytecode: no tail calls

OP_CALL, OP_TAILCALL = 28, 29  # Lua 5.1's lopcodes.h


def no_tail_calls(dump: bytes) -> bytes:
    """A Lua 5.1 chunk (string.dump) with every TAILCALL turned into a CALL.

    `return f(x)` compiles to TAILCALL A B 0 followed by RETURN A 0: as CALL A B 0 (all
    results) the RETURN that follows returns the same values, but the calling frame stays.
    Redis's redis.call and libraries are C functions, which a tail call never removes the
    caller's frame for, so their errors name the script's line; ours are Lua functions, and
    this keeps that line. (Unbounded tail recursion becomes a stack overflow error.)
    Returns the chunk unchanged when it is not in the layout expected.
    """
    if len(dump) < 12 or dump[:5] != b"\x1bLua\x51" or dump[5] != 0:
        return dump
    order = "little" if dump[6] == 1 else "big"
    int_size, size_t, instr, num = dump[7], dump[8], dump[9], dump[10]
    if instr != 4:
        return dump
    buf = bytearray(dump)
    pos = 12

    def rd(n: int) -> int:
        nonlocal pos
        v = int.from_bytes(buf[pos : pos + n], order)
        pos += n
        return v

    def skip_string() -> None:
        nonlocal pos
        n = rd(size_t)  # read first: `pos += rd(...)` would add to the old pos
        pos += n

    def function() -> None:
        nonlocal pos
        skip_string()  # source
        pos += 2 * int_size + 4  # line defined, last line, nups, params, vararg, stack size
        count = rd(int_size)
        for i in range(count):
            at = pos + 4 * i
            ins = int.from_bytes(buf[at : at + 4], order)
            if ins & 0x3F == OP_TAILCALL:
                buf[at : at + 4] = ((ins & ~0x3F) | OP_CALL).to_bytes(4, order)
        pos += 4 * count
        for dummy in range(rd(int_size)):  # constants
            kind = buf[pos]
            pos += 1
            if kind == 1:
                pos += 1
            elif kind == 3:
                pos += num
            elif kind == 4:
                skip_string()
            elif kind != 0:
                raise ValueError(f"constant of type {kind}")
        for dummy in range(rd(int_size)):  # nested functions
            function()
        lines = rd(int_size)  # line info
        pos += lines * int_size
        for dummy in range(rd(int_size)):  # local variables
            skip_string()
            pos += 2 * int_size
        for dummy in range(rd(int_size)):  # upvalue names
            skip_string()

    try:
        function()
    except (ValueError, IndexError):
        return dump
    return bytes(buf) if pos == len(buf) else dump
