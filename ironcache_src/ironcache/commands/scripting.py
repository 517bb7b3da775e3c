"""Scripting: EVAL/EVALSHA(_RO), SCRIPT, FUNCTION, FCALL(_RO) on Lua 5.1 (lupa.lua51).

Redis 7.0's behaviour: the same sandbox (readonly globals and library tables, no io/os/
loadfile/dofile/require/print, no binary chunks), the same conversions between Redis replies
and Lua values (RESP2 and RESP3 through redis.setresp), the same error words, and the C
libraries Redis builds in (bit, cjson, cmsgpack, struct) from ironcache.lualibs.

Sandbox: Redis patches its Lua with readonly tables. Stock Lua has none, so every table a
script can reach from its globals is a proxy: an empty table whose metatable reads through to
the real one and raises "Attempt to modify a readonly table" on writes; setmetatable and
rawset refuse proxies, and a proxy's metatable is itself a readonly proxy. Scripts run with a
proxy of their own globals as environment (setfenv), so the real global table of the Lua
state, and the Python callables behind redis.*, stay out of reach (they are upvalues, and
`debug` is not exposed). lupa's attribute filter refuses any attribute access on Python
objects.

Long scripts (busy-reply-threshold / lua-time-limit): the server runs on one event loop, and a
script runs on it synchronously, as in Redis. A Lua count hook calls back every 100,000
instructions; past the threshold the script is "timed out" and each hook call lets the server
read the other clients (Server.busy_poll): they get -BUSY, except SCRIPT KILL / FUNCTION KILL /
SHUTDOWN and the few commands Redis allows. SCRIPT KILL marks the run; the next hook raises,
and keeps raising on every line so pcall cannot swallow it. Running the script on the loop
keeps Redis's atomicity for free (nothing else touches the dataset meanwhile) where a thread
would need every redis.call handed back to the loop. A threshold of 0 makes the script busy
from its first hook, so even then `while true do end` stays killable.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ironcache import lualibs
from ironcache.commands import (
    ALIASES,
    NOT_MONITORED,
    TABLE,
    CommandError,
    command,
    subcommand,
    subcommands,
    to_int,
)
from ironcache.glob import matcher
from ironcache.log import log
from ironcache.lualibs import lua51
from ironcache.protocol import (
    NULL3,
    NULL_BULK,
    OK,
    ProtocolError,
    bulk,
    encode,
    error,
    integer,
    split_inline,
)

if TYPE_CHECKING:
    from ironcache.client import Client

NOSCRIPT_ERR = "NOSCRIPT No matching script. Please use EVAL."
BUSY_EVAL = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = (
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
)
OOM_ERR = "OOM command not allowed when used memory > 'maxmemory'."
FUNCTION_LOAD_TIMEOUT_MS = 500
HOOK_INSTRUCTIONS = 100_000
REPLY_DEPTH_MAX = 400  # nesting of a script's reply (well under Python's recursion limit)
REDIS_VERSION = "7.0.15"
REDIS_VERSION_NUM = 0x07000F

# Script flags (shebang `#!lua flags=...` and register_function's flags), in Redis's order.
FLAG_NAMES = ("no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys")
F_NO_WRITES, F_ALLOW_OOM, F_ALLOW_STALE, F_NO_CLUSTER, F_CROSS_SLOT = (1, 2, 4, 8, 16)
F_EVAL_COMPAT = 32  # a script without a shebang: Redis 6 behaviour

# Commands a script may not call (Redis 7.0's CMD_NOSCRIPT; container commands whole).
_NOSCRIPT_NAMES = """
    auth hello quit reset wait blmove blpop brpop brpoplpush bzpopmax bzpopmin bzmpop blmpop
    psubscribe punsubscribe ssubscribe subscribe sunsubscribe unsubscribe eval evalsha
    evalsha_ro eval_ro fcall fcall_ro bgrewriteaof bgsave debug failover monitor psync replconf
    replicaof role save shutdown slaveof sync discard exec multi unwatch watch client function
    script config acl module latency cluster
"""
NOSCRIPT = frozenset(_NOSCRIPT_NAMES.split())
# Write commands Redis also refuses in read-only scripts (CMD_MAY_REPLICATE).
MAY_REPLICATE = frozenset(("publish", "spublish", "pfcount", "function", "script"))

_SANDBOX = r"""
local P, FUNCTIONS = ...
local rawget, rawset, rawequal, type, error, tostring, select, next, pcall, xpcall, unpack =
      rawget, rawset, rawequal, type, error, tostring, select, next, pcall, xpcall, unpack
local setmetatable, getmetatable, setfenv, loadstring, load, tonumber =
      setmetatable, getmetatable, setfenv, loadstring, load, tonumber
local dbg, string_sub, string_byte, table_concat = debug, string.sub, string.byte, table.concat
local HERE = dbg.getinfo(1, 'S').source
local ro = setmetatable({}, {__mode = 'k'})

local function ro_error() error("Attempt to modify a readonly table", 2) end

local function readonly(t)
  local mt = {__index = t, __newindex = ro_error}
  local mtproxy = setmetatable({}, {__index = mt, __newindex = ro_error, __metatable = false})
  mt.__metatable = mtproxy
  local proxy = setmetatable({}, mt)
  ro[proxy] = true
  ro[mtproxy] = true
  return proxy
end

local function pack(...) return {n = select('#', ...), ...} end

-- Errors raised the way Redis's C code raises them: a table with an `err` field.
local function raise(msg) error({err = msg}, 0) end
-- Library errors carry the script's position, as luaL_error gives a C function's caller's.
local function check(ok, ...)
  -- (a message from Python is a Python str: tostring makes it a Lua string)
  if not ok then error(tostring((...)), 3) end  -- 1 check, 2 the library function, 3 its caller
  return ...
end

local ENV = {}
local backing = ENV
local PGmt = {
  __index = function(_, k)
    local v = rawget(backing, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = ro_error,
}
PGmt.__metatable = readonly(PGmt)
local PG = setmetatable({}, PGmt)
ro[PG] = true

local function sandboxed(f) if f then setfenv(f, PG) end return f end

local function safe_load(chunk, name)
  if type(chunk) == 'string' and string_byte(chunk, 1) == 27 then
    return nil, "attempt to load a binary chunk"
  end
  if type(chunk) == 'function' then
    local parts = {}
    while true do
      local piece = chunk()
      if piece == nil or piece == '' then break end
      parts[#parts + 1] = piece
    end
    chunk = table_concat(parts)
    if string_byte(chunk, 1) == 27 then return nil, "attempt to load a binary chunk" end
  end
  local f, err = loadstring(chunk, name)
  return sandboxed(f), err
end

-- The error handler Redis installs: where the error happened (skipping C functions and the
-- wrappers of this file), as `source` and `line` of an error table.
local killing = false
local function err_handler(err)
  if killing then dbg.sethook() end  -- the kill hook fires on every line: not in here
  local level = 2
  local i = dbg.getinfo(level, 'nSl')
  while i and (i.what == 'C' or i.source == HERE) do
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  -- A tail call left no frame (a chunk loadstring'ed by the script itself): no position.
  if i and i.what == 'tail' then i = nil end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end

local redis = {}
local pycall, pycall_packed = P.call, P.call_packed
-- Thousands of arguments overflow lupa's call path: they go over as one table instead.
local function call(...)
  if select('#', ...) > 64 then return pycall_packed(pack(...)) end
  return pycall(...)
end
redis.call = function(...)
  local failed, r = call(...)
  if failed then error(r, 0) end
  return r
end
redis.pcall = function(...)
  local failed, r = call(...)
  return r
end
redis.sha1hex = function(...)
  if select('#', ...) ~= 1 then raise("ERR wrong number of arguments") end
  local s = ...
  if type(s) ~= 'string' and type(s) ~= 'number' then s = '' end
  return P.sha1hex(tostring(s))
end
local function push_error(e)
  local code, msg = 'ERR', e
  if string_sub(e, 1, 1) == '-' then
    local space = e:find(' ', 1, true)
    if space then code, msg = e:sub(2, space - 1), e:sub(space + 1)
    else msg = e:sub(2) end
  end
  msg = msg:gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return push_error("wrong number or type of arguments")
  end
  if string_sub(e, 1, 1) ~= '-' then e = '-' .. e end
  return push_error(e)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return push_error("wrong number or type of arguments")
  end
  return {ok = s}
end
redis.setresp = function(...)
  if select('#', ...) ~= 1 then raise("ERR redis.setresp() requires one argument.") end
  local v = tonumber((...))
  if v ~= 2 and v ~= 3 then raise("ERR RESP version must be 2 or 3.") end
  P.setresp(v)
end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE = 0, 1, 2
redis.REPL_REPLICA, redis.REPL_ALL = 2, 3
redis.set_repl = function(...)
  if select('#', ...) ~= 1 then raise("ERR redis.set_repl() requires two arguments.") end
  local v = tonumber((...))
  if v == nil or v < 0 or v > 3 or v % 1 ~= 0 then
    raise("ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
  end
end
redis.acl_check_cmd = function(...)
  if select('#', ...) < 1 then
    raise("ERR Please specify at least one argument for this redis lib call")
  end
  if not P.known((...)) then raise("ERR Invalid command passed to redis.acl_check_cmd()") end
  return true
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
local function redis_log(...)
  local n = select('#', ...)
  if n < 2 then raise("ERR redis.log() requires two arguments or more.") end
  local level = ...
  if type(level) ~= 'number' then raise("ERR First argument must be a number (log level).") end
  if level < 0 or level > 3 then raise("ERR Invalid debug level.") end
  local parts = {}
  for i = 2, n do
    local v = select(i, ...)
    if type(v) == 'string' or type(v) == 'number' then parts[#parts + 1] = tostring(v) end
  end
  P.log(level, table_concat(parts, ' '))
end
redis.log = redis_log
redis.REDIS_VERSION = P.version
redis.REDIS_VERSION_NUM = P.version_num
if not FUNCTIONS then
  redis.replicate_commands = function() return true end
  redis.breakpoint = function() return false end
  redis.debug = function() end
end

local bit = {}
for _, name in ipairs({'tobit', 'tohex', 'bnot', 'band', 'bor', 'bxor', 'lshift', 'rshift',
                       'arshift', 'rol', 'ror', 'bswap'}) do
  local op = P.bit
  bit[name] = function(...) return check(op(name, ...)) end
end

local cjson = {null = P.json_null}
for _, name in ipairs({'encode_keep_buffer', 'encode_max_depth', 'decode_max_depth',
                       'encode_invalid_numbers', 'decode_invalid_numbers',
                       'encode_sparse_array', 'encode_number_precision'}) do
  local cfg = P.json_config
  cjson[name] = function(...) return check(cfg(name, ...)) end
end
cjson.encode = function(...) return check(P.json_encode(...)) end
cjson.decode = function(...) return check(P.json_decode(...)) end
cjson.new = function() return cjson end
cjson._NAME, cjson._VERSION = 'cjson', '2.1.0'

local cmsgpack = {_NAME = 'cmsgpack', _VERSION = 'lua-cmsgpack 0.4.0'}
cmsgpack.pack = function(...) return check(P.mp_pack(...)) end
cmsgpack.unpack = function(...) return check(P.mp_unpack('all', ...)) end
cmsgpack.unpack_one = function(...) return check(P.mp_unpack('one', ...)) end
cmsgpack.unpack_limit = function(...) return check(P.mp_unpack('limit', ...)) end

local lstruct = {}
lstruct.pack = function(...) return check(P.st_pack(...)) end
lstruct.unpack = function(...) return check(P.st_unpack(...)) end
lstruct.size = function(...) return check(P.st_size(...)) end

-- Redis 7's pcall: an error table with an `err` field comes back as its message.
local function redis_pcall(...)
  local r = pack(pcall(...))
  if not r[1] and type(r[2]) == 'table' then
    local e = rawget(r[2], 'err')
    if type(e) == 'string' or type(e) == 'number' then r[2] = e end
  end
  return unpack(r, 1, r.n)
end

local function guarded_setmetatable(t, m)
  if ro[t] then error("Attempt to modify a readonly table", 2) end
  return setmetatable(t, m)
end
local function guarded_rawset(t, k, v)
  if ro[t] then error("Attempt to modify a readonly table", 2) end
  return rawset(t, k, v)
end

for _, name in ipairs({'xpcall', 'tostring', 'next', 'assert', 'tonumber', 'rawequal',
                       'collectgarbage', 'getmetatable', 'type', 'select', 'gcinfo',
                       'pairs', 'rawget', 'ipairs', '_VERSION', 'error'}) do
  ENV[name] = _G[name]
end
-- lupa's Lua 5.1 crashes on unpack ranges whose size overflows an int (Redis patched its
-- copy): refuse any range Lua's own stack check would refuse, before unpack sees it.
local floor = math.floor
ENV.unpack = function(...)
  local t, i, j = ...
  if type(t) == 'table' then
    local first = i == nil and 1 or tonumber(i)
    local last = j == nil and #t or tonumber(j)
    if first and last then
      first, last = floor(first), floor(last)
      if first <= last and last - first >= 7999 then
        error("too many results to unpack", 2)
      end
    end
  end
  return unpack(...)  -- the same arguments: Lua's stack check counts them
end
ENV.pcall = redis_pcall
ENV.setmetatable = guarded_setmetatable
ENV.rawset = guarded_rawset
ENV.loadstring = function(s, name) return safe_load(s, name) end
ENV.load = function(s, name) return safe_load(s, name) end
ENV._G = PG
ENV.string = readonly(string)
ENV.math = readonly(math)
ENV.table = readonly(table)
ENV.coroutine = readonly(coroutine)
ENV.bit = readonly(bit)
ENV.cjson = readonly(cjson)
ENV.cmsgpack = readonly(cmsgpack)
ENV.struct = readonly(lstruct)
ENV.redis = readonly(redis)

-- Basic types' metatables: the string one is the only one Lua has; make it readonly too.
local smt = getmetatable('')
smt.__index = ENV.string
smt.__metatable = readonly(smt)

local api = {}
local hook_fn
local function killed_hook()
  dbg.sethook(killed_hook, 'l')
  error({err = P.kill_message()}, 0)
end
hook_fn = function()
  if P.hook() then
    killing = true
    dbg.sethook(killed_hook, 'l')
    error({err = P.kill_message()}, 0)
  end
end

-- Compiled without tail calls (lualibs.no_tail_calls): errors keep the script's line.
local string_dump = string.dump
local function compile(body, name)
  local f, err = loadstring(body, name)
  if not f then return nil, err end
  return loadstring(P.no_tail_calls(string_dump(f)), name)
end

function api.compile(body, name)
  local f, err = compile(body, name)
  if not f then return nil, err end
  return sandboxed(f)
end

-- EVAL: KEYS and ARGV are globals, set for each run.
function api.run_eval(f, keys, argv, hooked)
  killing = false
  rawset(ENV, 'KEYS', keys)
  rawset(ENV, 'ARGV', argv)
  if hooked then dbg.sethook(hook_fn, '', P.hook_every) end
  -- One line: a line hook (a kill) must not fire between the call and its removal.
  local ok, r = xpcall(f, err_handler) dbg.sethook()
  return ok, r
end

-- FCALL: the callback gets the keys and arguments as parameters.
function api.run_function(f, keys, argv, hooked)
  killing = false
  if hooked then dbg.sethook(hook_fn, '', P.hook_every) end
  local ok, r = xpcall(function() return f(keys, argv) end, err_handler) dbg.sethook()
  return ok, r
end

if FUNCTIONS then
  -- FUNCTION LOAD: the library code sees only `redis` with register_function and log.
  local registered
  local libapi = {}
  local function reg_error(msg) error({err = 'ERR ' .. msg}, 0) end
  local valid_flags = {['no-writes'] = 1, ['allow-oom'] = 2, ['allow-stale'] = 4,
                       ['no-cluster'] = 8, ['allow-cross-slot-keys'] = 16}
  libapi.register_function = function(...)
    if registered == nil then
      reg_error("redis.register_function can only be called on FUNCTION LOAD command")
    end
    local n = select('#', ...)
    if n < 1 or n > 2 then reg_error("wrong number of arguments to redis.register_function") end
    local name, callback, desc, flags
    if n == 1 then
      local t = ...
      if type(t) ~= 'table' then
        reg_error("calling redis.register_function with a single argument is only " ..
                  "applicable to Lua table (representing named arguments).")
      end
      flags = 0
      for k, v in next, t do
        if type(k) ~= 'string' then
          reg_error("named argument key given to redis.register_function is not a string")
        end
        local key = k:lower()
        if key == 'function_name' then
          if type(v) ~= 'string' and type(v) ~= 'number' then
            reg_error("function_name argument given to redis.register_function must be a string")
          end
          name = tostring(v)
        elseif key == 'description' then
          if type(v) ~= 'string' and type(v) ~= 'number' then
            reg_error("description argument given to redis.register_function must be a string")
          end
          desc = tostring(v)
        elseif key == 'callback' then
          if type(v) ~= 'function' then
            reg_error("callback argument given to redis.register_function must be a function")
          end
          callback = v
        elseif key == 'flags' then
          if type(v) ~= 'table' then
            reg_error("flags argument to redis.register_function must be a table " ..
                      "representing function flags")
          end
          local j = 1
          while true do
            local fl = v[j]
            if fl == nil then break end
            if type(fl) ~= 'string' or not valid_flags[fl:lower()] then
              reg_error("unknown flag given")
            end
            local bitv = valid_flags[fl:lower()]
            if flags % (2 * bitv) < bitv then flags = flags + bitv end
            j = j + 1
          end
        else
          reg_error("unknown argument given to redis.register_function")
        end
      end
      if not name then reg_error("redis.register_function must get a function name argument") end
      if not callback then reg_error("redis.register_function must get a callback argument") end
    else
      local a, b = ...
      if type(a) ~= 'string' and type(a) ~= 'number' then
        reg_error("first argument to redis.register_function must be a string")
      end
      if type(b) ~= 'function' then
        reg_error("second argument to redis.register_function must be a function")
      end
      name, callback, flags = tostring(a), b, 0
    end
    local err = P.check_function_name(name, registered)
    if err then reg_error(err) end
    registered[#registered + 1] = {name, callback, desc, flags}
  end
  libapi.log = redis_log
  libapi.LOG_DEBUG, libapi.LOG_VERBOSE, libapi.LOG_NOTICE, libapi.LOG_WARNING = 0, 1, 2, 3
  libapi.REDIS_VERSION = P.version
  libapi.REDIS_VERSION_NUM = P.version_num
  local LOAD_ENV = {}
  local libmt = {__index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end, __newindex = ro_error}
  libmt.__metatable = readonly(libmt)
  LOAD_ENV.redis = readonly(setmetatable(libapi, libmt))

  local function load_hook()
    if P.load_hook() then
      dbg.sethook(load_hook, 'l')
      error({err = 'ERR FUNCTION LOAD timeout'}, 0)
    end
  end

  function api.load_library(code)
    local f, err = compile(code, '@user_function')
    if not f then return false, 'Error compiling function: ' .. err end
    sandboxed(f)
    registered = {}
    backing = LOAD_ENV
    dbg.sethook(load_hook, '', P.hook_every)
    local ok, e = pcall(f) dbg.sethook()
    backing = ENV
    local list = registered
    registered = nil
    if not ok then
      local msg
      if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then msg = rawget(e, 'err')
      else msg = 'ERR ' .. tostring(e) end
      return false, 'Error registering functions: ' .. msg
    end
    return true, list
  end
end

return api
"""


def sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("no attribute access from Lua")


# ------------------------------------------------------------------ RESP -> Lua


class _Reader:
    """Parses one encoded reply (what a handler returned) into Lua values, as Redis's
    redisProtocolToLuaType does: errors and statuses become {err=}/{ok=} tables, nulls false
    (RESP2) or nil (RESP3), RESP3 maps/sets/doubles/big numbers their Lua table forms."""

    __slots__ = ("lua", "buf", "pos")

    def __init__(self, lua: Any, buf: bytes) -> None:
        self.lua = lua
        self.buf = buf
        self.pos = 0

    def line(self) -> bytes:
        end = self.buf.index(b"\r\n", self.pos)
        s = self.buf[self.pos + 1 : end]
        self.pos = end + 2
        return s

    def value(self) -> Any:
        buf = self.buf
        kind = buf[self.pos : self.pos + 1]
        if kind == b"$":
            n = int(self.line())
            if n < 0:
                return False
            s = buf[self.pos : self.pos + n]
            self.pos += n + 2
            return s
        if kind == b":":
            return int(self.line())
        if kind == b"+":
            t = self.lua.table()
            t[b"ok"] = self.line()
            return t
        if kind == b"-":
            t = self.lua.table()
            t[b"err"] = self.line()
            return t
        if kind == b"*":
            n = int(self.line())
            if n < 0:
                return False
            t = self.lua.table()
            for i in range(1, n + 1):
                v = self.value()
                if v is not None:
                    t[i] = v
            return t
        if kind == b"_":
            self.line()
            return None
        if kind == b"#":
            return self.line() == b"t"
        if kind == b",":
            raw = self.line()
            t = self.lua.table()
            t[b"double"] = float(raw.replace(b"inf", b"inf"))
            return t
        if kind == b"(":
            t = self.lua.table()
            t[b"big_number"] = self.line()
            return t
        if kind == b"=":
            n = int(self.line())
            s = buf[self.pos : self.pos + n]
            self.pos += n + 2
            t = self.lua.table()
            inner = self.lua.table()
            inner[b"format"] = s[:3]
            inner[b"string"] = s[4:]
            t[b"verbatim_string"] = inner
            return t
        if kind == b"%":
            n = int(self.line())
            t = self.lua.table()
            m = self.lua.table()
            for dummy in range(n):
                k = self.value()
                m[k] = self.value()
            t[b"map"] = m
            return t
        if kind in (b"~", b">"):
            n = int(self.line())
            t = self.lua.table()
            s = self.lua.table()
            for dummy in range(n):
                s[self.value()] = True
            t[b"set"] = s
            return t
        raise ValueError(f"unexpected reply type {kind!r}")


# ------------------------------------------------------------------ Lua -> RESP


def _float_text(x: float) -> bytes:
    if math.isnan(x):
        return b"nan"
    if x in (float("inf"), float("-inf")):
        return b"inf" if x > 0 else b"-inf"
    return (b"%.17g" % x).replace(b"e+", b"e+")


def _to_int(x: Any) -> int:
    if isinstance(x, int):
        return x
    if math.isnan(x) or x in (float("inf"), float("-inf")):
        return -(2**63)
    n = int(x)
    return n if -(2**63) <= n < 2**63 else -(2**63)


def reply_from_lua(v: Any, resp: int, script_resp: int, rawget: Any, depth: int = 0) -> bytes:
    """A script's return value as the caller's reply (Redis's luaReplyToRedisReply).

    Fields are read with rawget, as Redis does: a metatable's __index never runs here."""
    if isinstance(v, bytes):
        return bulk(v)
    if isinstance(v, bool):
        if script_resp == 2:
            return b":1\r\n" if v else (NULL3 if resp == 3 else NULL_BULK)
        if resp == 3:
            return b"#t\r\n" if v else b"#f\r\n"
        return b":1\r\n" if v else b":0\r\n"
    if isinstance(v, (int, float)):
        return integer(_to_int(v))
    if v is None or lua51.lua_type(v) != "table":
        return NULL3 if resp == 3 else NULL_BULK
    if depth > REPLY_DEPTH_MAX:  # a table that contains itself: Redis runs out of Lua stack
        return b"-ERR reached lua stack limit\r\n"
    err = rawget(v, b"err")
    if isinstance(err, bytes):
        return error(err.decode("utf-8", "replace").removeprefix("-"))
    ok = rawget(v, b"ok")
    if isinstance(ok, bytes):
        return b"+" + ok.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
    dbl = rawget(v, b"double")
    if isinstance(dbl, (int, float)) and not isinstance(dbl, bool):
        text = _float_text(float(dbl))
        return b"," + text + b"\r\n" if resp == 3 else bulk(text)
    big = rawget(v, b"big_number")
    if isinstance(big, bytes):
        big = big.replace(b"\r", b" ").replace(b"\n", b" ")
        return b"(" + big + b"\r\n" if resp == 3 else bulk(big)
    verb = rawget(v, b"verbatim_string")
    if verb is not None and lua51.lua_type(verb) == "table":
        fmt, s = rawget(verb, b"format"), rawget(verb, b"string")
        if isinstance(fmt, bytes) and isinstance(s, bytes):
            if resp == 3:
                body = fmt[:3].ljust(3) + b":" + s
                return b"=%d\r\n%s\r\n" % (len(body), body)
            return bulk(s)
    m = rawget(v, b"map")
    if m is not None and lua51.lua_type(m) == "table":
        items = list(m.items())
        head = b"%%%d\r\n" % len(items) if resp == 3 else b"*%d\r\n" % (2 * len(items))
        parts = [head]
        for k, x in items:
            parts.append(reply_from_lua(k, resp, script_resp, rawget, depth + 1))
            parts.append(reply_from_lua(x, resp, script_resp, rawget, depth + 1))
        return b"".join(parts)
    s = rawget(v, b"set")
    if s is not None and lua51.lua_type(s) == "table":
        keys = list(s.keys())
        head = b"~%d\r\n" % len(keys) if resp == 3 else b"*%d\r\n" % len(keys)
        return head + b"".join(
            reply_from_lua(k, resp, script_resp, rawget, depth + 1) for k in keys
        )
    parts = []
    i = 1
    while True:
        x = rawget(v, i)
        if x is None:
            break
        parts.append(reply_from_lua(x, resp, script_resp, rawget, depth + 1))
        i += 1
    return b"*%d\r\n" % len(parts) + b"".join(parts)


# ------------------------------------------------------------------ engine


@dataclass(slots=True)
class Function:
    name: str
    library: str
    callback: Any
    description: bytes | None
    flags: int


@dataclass(slots=True)
class Library:
    name: str
    code: bytes
    functions: dict[str, Function] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    """The script running now (Redis's scriptRunCtx)."""

    caller: Client
    name: str  # the sha of an EVAL, the function's name for FCALL
    is_eval: bool
    read_only: bool
    allow_oom: bool
    oom_at_start: bool
    start: float
    argv: list[bytes]
    dirty: bool = False  # wrote: SCRIPT KILL refuses
    killed: bool = False
    signalled: bool = False  # SIGTERM/SIGINT while busy
    saved_handlers: dict[int, Any] = field(default_factory=dict)
    timed_out: bool = False
    last_poll: float = 0.0


class Runtime:
    """One Lua state with the sandbox and Redis API (EVAL's, or FUNCTION's)."""

    def __init__(self, engine: Engine, functions: bool) -> None:
        self.engine = engine
        self.lua = lua51.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attributes,
        )
        lua = self.lua
        json = lualibs.CJson(None)
        self.json = json
        null = lua.eval(b"newproxy()")
        json.null = null
        callbacks = {
            b"call": engine.lua_call,
            b"call_packed": engine.lua_call_packed,
            b"sha1hex": sha1hex,
            b"setresp": engine.lua_setresp,
            b"log": engine.lua_log,
            b"known": engine.lua_known,
            b"hook": engine.lua_hook,
            b"load_hook": engine.lua_load_hook,
            b"kill_message": lambda: b"ERR Script killed by user with SCRIPT KILL...",
            b"check_function_name": engine.check_function_name,
            b"hook_every": HOOK_INSTRUCTIONS,
            b"version": REDIS_VERSION.encode(),
            b"version_num": REDIS_VERSION_NUM,
            b"bit": lualibs.bit_op,
            b"json_null": null,
            b"json_config": json.config,
            b"json_encode": json.encode,
            b"json_decode": lambda *a: json.decode(lua, *a),
            b"mp_pack": lualibs.msgpack_pack,
            b"mp_unpack": lambda mode, *a: lualibs.msgpack_unpack(lua, mode, *a),
            b"st_pack": lualibs.struct_pack,
            b"st_unpack": lualibs.struct_unpack,
            b"st_size": lualibs.struct_size,
            b"no_tail_calls": lualibs.no_tail_calls,
        }
        # Compiled without tail calls too, so that library errors find the script's frame.
        setup = lua.execute(
            b"return function(src, name, patch) local f = assert(loadstring(src, name)) "
            b"return assert(loadstring(patch(string.dump(f)), name)) end"
        )
        chunk = setup(_SANDBOX.encode(), b"=ironcache_sandbox", lualibs.no_tail_calls)
        self.api = chunk(lua.table_from(callbacks), functions)
        self.rawget = lua.eval(b"rawget")
        # Lua's own globals (io, os, package...) stay in the state, out of scripts' reach.
        lua.execute(b"collectgarbage('collect')")

    def table(self, items: list[bytes]) -> Any:
        return self.lua.table_from(items)


class Engine:
    """Scripts (EVAL's cache), function libraries, and the run in progress."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.eval_rt = Runtime(self, False)
        self.func_rt = Runtime(self, True)
        self.runtimes = (self.eval_rt, self.func_rt)
        self.compiled: dict[bytes, Any] = {}  # sha -> compiled Lua function
        self.flags: dict[bytes, int] = {}  # sha -> shebang flags
        self.libraries: dict[str, Library] = {}  # by lower-case name
        self.functions: dict[str, Function] = {}  # by lower-case name
        self.libs_source: Any = None  # the keyspace dict the libraries were built from
        self.run: Run | None = None
        self.script_client: Client | None = None
        self.load_deadline = 0.0

    # -- the dataset side: what state.py saves (keyspace.scripts / keyspace.libraries)
    @property
    def scripts(self) -> dict[bytes, bytes]:
        return self.server.keyspace.scripts

    def sync_libraries(self) -> None:
        """Rebuild the libraries when the keyspace's were replaced (a restart loaded them)."""
        ks = self.server.keyspace
        if self.libs_source is ks.libraries:
            return
        self.libraries.clear()
        self.functions.clear()
        source = ks.libraries
        self.libs_source = source
        for name, code in list(source.items()):
            try:
                self.create_library(code, replace=False, record=False)
            except CommandError as e:
                log.warning(f"function library {name} could not be loaded: {e.message}")
                source.pop(name, None)

    # -- Lua callbacks (each returns values, never raises into Lua)
    def lua_call(self, *args: Any) -> tuple[bool, Any]:
        run = self.run
        rt = self.eval_rt if run is None or run.is_eval else self.func_rt
        if run is None:
            return True, _err_table(
                rt, "ERR redis.call/pcall can only be called inside a script invocation"
            )
        if not args:
            return True, _err_table(
                rt, "ERR Please specify at least one argument for this redis lib call"
            )
        argv: list[bytes] = []
        for a in args:
            if isinstance(a, bytes):
                argv.append(a)
            elif isinstance(a, bool) or a is None or not isinstance(a, (int, float)):
                return True, _err_table(
                    rt, "ERR Lua redis lib command arguments must be strings or integers"
                )
            elif isinstance(a, int):
                argv.append(b"%d" % a)
            else:
                argv.append(b"%.17g" % a)
        sc = self.script_client
        assert sc is not None
        srv = self.server
        cmd = ALIASES.get(argv[0]) or TABLE.get(argv[0].lower())
        st = cmd  # what the stats name: a container's subcommand (lookupCommand's answer)
        if cmd is not None and cmd.subcommands is not None and len(argv) > 1:
            st = cmd.subcommands.get(argv[1].lower())
        why = ""
        if cmd is None or st is None:
            # Redis has every command of NOSCRIPT, IronCache maybe not yet: same answer.
            noscript = argv[0].lower().decode("latin-1") in NOSCRIPT
            why = (
                "ERR This Redis command is not allowed from script"
                if noscript
                else "ERR Unknown Redis command called from script"
            )
        elif len(argv) != st.arity if st.arity > 0 else len(argv) < -st.arity:
            why = "ERR Wrong number of args calling Redis command from script"
        elif cmd.name in NOSCRIPT or "noscript" in cmd.flags:
            why = "ERR This Redis command is not allowed from script"
        elif run.read_only and ("write" in cmd.flags or cmd.name in MAY_REPLICATE):
            why = "ERR Write commands are not allowed from read-only scripts."
        elif cmd.denyoom and not run.allow_oom and not run.dirty and run.oom_at_start:
            why = OOM_ERR
        elif not run.caller.user.unrestricted:  # the caller's ACL user, as in Redis
            why = srv.acl_script_denied(run.caller, cmd, argv)
        if why:
            srv.error_replies += 1
            t = _err_table(rt, why)
            return True, t
        assert cmd is not None and st is not None
        if "write" in cmd.flags:
            run.dirty = True
        t0 = time.monotonic()
        try:
            reply = cmd.handler(sc, argv)
        except CommandError as e:
            srv.error_replies += 1
            st.failed_calls += 1
            reply = error(e.message)
        except Exception as e:  # a bug costs the call, never the server
            log.warning(f"internal error in {cmd.name.upper()} from a script: {e!r}")
            srv.error_replies += 1
            st.failed_calls += 1
            reply = error(f"ERR internal error in '{cmd.name}' command")
        st.secs += time.monotonic() - t0
        st.calls += 1  # INFO commandstats counts the commands scripts run, as Redis does
        if run.caller.tracking and "readonly" in st.flags:
            # As Redis: a script that reads has its caller track the keys it declared.
            outer = ALIASES.get(run.argv[0]) or TABLE.get(run.argv[0].lower())
            if outer is not None:
                srv.tracking.remember(run.caller, outer.keys(run.argv))
        srv.commands_processed += 1
        if srv.monitors and not cmd.flags & NOT_MONITORED:
            srv.feed_monitors(sc, argv, script=True)  # "[<db> lua]", as Redis shows them
        if reply[:1] == b"-":
            t = rt.lua.table()
            t[b"err"] = reply[1:].rstrip(b"\r\n")
            t[b"ignore_error_stats_update"] = True
            return True, t
        return False, _Reader(rt.lua, reply).value()

    def lua_call_packed(self, t: Any) -> tuple[bool, Any]:
        return self.lua_call(*(t[i] for i in range(1, int(t[b"n"]) + 1)))

    def lua_setresp(self, v: Any) -> None:
        if self.script_client is not None:
            self.script_client.resp = int(v)

    def lua_log(self, level: Any, msg: bytes) -> None:
        text = msg.decode("utf-8", "replace")
        (log.debug, log.verbose, log.notice, log.warning)[int(level)](text)

    def lua_known(self, name: Any) -> bool:
        return isinstance(name, bytes) and (
            ALIASES.get(name) is not None or TABLE.get(name.lower()) is not None
        )

    def lua_hook(self) -> bool:
        """Every HOOK_INSTRUCTIONS instructions: time out, serve the others, report a kill."""
        run = self.run
        if run is None:
            return False
        now = time.monotonic()
        srv = self.server
        if not run.timed_out:
            limit = srv.config["lua-time-limit"] / 1000
            if now - run.start < limit:
                return False
            run.timed_out = True
            srv.script_busy = BUSY_EVAL if run.is_eval else BUSY_FUNCTION
            self._catch_stop_signals(run)
            log.warning(
                f"Slow script detected: still in execution after "
                f"{int((now - run.start) * 1000)} milliseconds. You can try killing the script "
                f"using the {'SCRIPT KILL' if run.is_eval else 'FUNCTION KILL'} command. "
                f"Script name is: {run.name}."
            )
        # Every 10 ms at most: a poll costs about one syscall plus a look at each client.
        if now - run.last_poll >= 0.01:
            run.last_poll = now
            srv.busy_poll(run.caller)
        if srv.stopping is not None and srv.stopping.is_set():
            run.killed = True  # SHUTDOWN NOSAVE while busy: the script goes first
        if not srv.exec_to_ready_ms and not run.dirty:
            # Before READY: a request resumed after a crash re-runs its script while the state
            # is taken over, and nobody can SCRIPT KILL it yet. A runaway that has not written
            # (maybe what crashed the last process) is stopped, so the restart completes.
            run.killed = True
        if run.signalled and not run.dirty:
            # A stop (systemd's SIGTERM, a handover): a script that has not written is
            # stopped as SCRIPT KILL would; one that wrote runs on, as it would under Redis.
            run.killed = True
        return run.killed

    def _catch_stop_signals(self, run: Run) -> None:
        """While busy the event loop (whose handlers stop the server) does not run: note the
        signal here too. The loop still gets it afterwards, through its wakeup fd."""
        if threading.current_thread() is not threading.main_thread():
            return

        def noted(signum: int, frame: Any) -> None:
            run.signalled = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, OSError):
                run.saved_handlers[sig] = signal.signal(sig, noted)

    @staticmethod
    def _restore_signals(run: Run) -> None:
        for sig, handler in run.saved_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)

    def lua_load_hook(self) -> bool:
        return time.monotonic() > self.load_deadline

    def check_function_name(self, name: bytes, registered: Any) -> bytes | None:
        if not _valid_name(name):
            return (
                # Redis 7.0 words it so for function names too
                b"Library names can only contain letters, numbers, or underscores(_) "
                b"and must be at least one character long"
            )
        low = name.lower()
        for i in range(1, len(registered) + 1):
            if registered[i][1].lower() == low:
                return b"Function already exists in the library"
        return None

    # -- running
    def _client(self, caller: Client) -> Client:
        sc = self.script_client
        if sc is None:
            sc = type(caller)(self.server, caller.listener, -1)
            sc.authenticate()
            self.script_client = sc
        sc.db = caller.db
        sc.resp = 2
        return sc

    def execute(
        self,
        caller: Client,
        name: str,
        fn: Any,
        flags: int,
        ro: bool,
        is_eval: bool,
        keys: list[bytes],
        args: list[bytes],
        argv: list[bytes],
    ) -> bytes:
        srv = self.server
        if self.run is not None:  # a script cannot call EVAL: only a bug gets here
            raise CommandError("ERR a script is already running")
        compat = bool(flags & F_EVAL_COMPAT)
        oom = self.over_maxmemory()
        if not compat:
            if not flags & F_NO_WRITES and ro:
                raise CommandError(
                    "ERR Can not execute a script with write flag using *_ro command."
                )
            if oom and not flags & (F_ALLOW_OOM | F_NO_WRITES):
                raise CommandError(
                    "OOM allow-oom flag is not set on the script, "
                    "can not run it when used memory > 'maxmemory'"
                )
        rt = self.eval_rt if is_eval else self.func_rt
        run = Run(
            caller,
            name,
            is_eval,
            ro or (not compat and bool(flags & F_NO_WRITES)),
            not compat and bool(flags & F_ALLOW_OOM),
            oom,
            time.monotonic(),
            argv,
        )
        sc = self._client(caller)
        self.run = run
        try:
            runner = rt.api.run_eval if is_eval else rt.api.run_function
            try:
                ok, result = runner(fn, rt.table(keys), rt.table(args), True)
            except lua51.LuaError as e:  # an error in error handling, out of memory...
                ok, result = False, str(e).encode()
            if ok:
                return reply_from_lua(result, caller.resp, sc.resp, rt.rawget)
            return self._error_reply(result, name, rt.rawget)
        finally:
            self.run = None
            srv.script_busy = None
            sc.db = srv.keyspace.dbs[0]
            if run.timed_out:
                self._restore_signals(run)
                srv.busy_end()

    def _error_reply(self, err: Any, name: str, rawget: Any) -> bytes:
        if err is None or lua51.lua_type(err) != "table":
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else "execution failure"
            raise CommandError(f"ERR Error running script {name}, {text[:100]}")
        msg = rawget(err, b"err")
        text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        source, line = rawget(err, b"source"), rawget(err, b"line")
        if isinstance(source, bytes) and line is not None:
            text += f" script: {name}, on {source.decode('utf-8', 'replace')}:{line}."
        raise CommandError(text)

    def over_maxmemory(self) -> bool:
        """Redis's pre-command OOM state: with maxmemory set, the dataset plus the scripting
        engine's own memory (Redis counts used_memory_lua in used_memory) exceed it."""
        srv = self.server
        if not srv.config["maxmemory"]:
            return False
        lua = sum(int(rt.lua.eval(b"collectgarbage('count')") * 1024) for rt in self.runtimes)
        return srv.keyspace.used + lua > srv.maxmemory

    # -- EVAL's script cache
    def script_flags(self, body: bytes) -> tuple[int, int]:
        """(flags, shebang length) of a script body, as evalExtractShebangFlags reads them."""
        if not body.startswith(b"#!"):
            return F_EVAL_COMPAT, 0
        end = body.find(b"\n")
        if end < 0:
            raise CommandError("ERR Invalid script shebang")
        try:
            parts = split_inline(body[:end])
        except ProtocolError:
            parts = []
        if not parts:
            raise CommandError("ERR Invalid script shebang")
        if parts[0] != b"#!lua":
            raise CommandError(
                f"ERR Unexpected engine in script shebang: {parts[0].decode(errors='replace')}"
            )
        flags = 0
        for part in parts[1:]:
            if not part.startswith(b"flags="):
                raise CommandError(
                    f"ERR Unknown lua shebang option: {part.decode(errors='replace')}"
                )
            for fl in part[6:].split(b","):
                if not fl:
                    continue
                name = fl.decode(errors="replace")
                if name not in FLAG_NAMES:
                    raise CommandError(f"ERR Unexpected flag in script shebang: {name}")
                flags |= 1 << FLAG_NAMES.index(name)
        return flags, end

    def create_script(self, body: bytes, record: bool = True) -> bytes:
        sha = sha1hex(body)
        if sha in self.compiled:
            self.scripts.setdefault(sha, body)
            return sha
        flags, skip = self.script_flags(body)
        # The shebang line is blanked, not cut, so error line numbers stay Redis's.
        code = body[skip:] if skip else body
        fn = self.eval_rt.api.compile(code, b"@user_script")
        if isinstance(fn, tuple):
            dummy, err = fn
            raise CommandError(
                "ERR Error compiling script (new function): "
                + (err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err))
            )
        self.compiled[sha] = fn
        self.flags[sha] = flags
        self.scripts[sha] = body
        return sha

    def lookup_sha(self, sha: bytes) -> bytes | None:
        sha = sha.lower()
        if sha in self.compiled:
            if sha not in self.scripts:  # SCRIPT FLUSH ran through another path
                self.compiled.pop(sha)
                return None
            return sha
        body = self.scripts.get(sha)
        if body is None:
            return None
        self.create_script(body)
        return sha

    def flush_scripts(self) -> None:
        self.scripts.clear()
        self.compiled.clear()
        self.flags.clear()
        self.eval_rt.lua.execute(b"collectgarbage('collect')")

    # -- function libraries
    def create_library(self, code: bytes, replace: bool, record: bool = True) -> str:
        if not code.startswith(b"#!"):
            raise CommandError("ERR Missing library metadata")
        end = code.find(b"\n")
        if end < 0:
            raise CommandError("ERR Invalid library metadata")
        try:
            parts = split_inline(code[:end])
        except ProtocolError:
            parts = []
        if not parts:
            raise CommandError("ERR Invalid library metadata")
        engine_name = parts[0][2:]
        name = None
        for part in parts[1:]:
            if part[:5].lower() == b"name=":
                if name is not None:
                    raise CommandError(
                        "ERR Invalid metadata value, name argument was given multiple times"
                    )
                name = part[5:]
                continue
            raise CommandError(f"ERR Invalid metadata value given: {part.decode(errors='replace')}")
        if name is None:
            raise CommandError("ERR Library name was not given")
        if not _valid_name(name):
            raise CommandError(
                "ERR Library names can only contain letters, numbers, or underscores(_) "
                "and must be at least one character long"
            )
        if engine_name.lower() != b"lua":
            raise CommandError(f"ERR Engine '{engine_name.decode(errors='replace')}' not found")
        lib_name = name.decode()
        key = lib_name.lower()
        old = self.libraries.get(key)
        if old is not None and not replace:
            raise CommandError(f"ERR Library '{lib_name}' already exists")
        self.load_deadline = time.monotonic() + FUNCTION_LOAD_TIMEOUT_MS / 1000
        # The metadata line stays (as a comment it is blanked): line numbers match Redis's.
        body = b"\n" + code[end + 1 :]
        ok, result = self.func_rt.api.load_library(body)
        if not ok:
            raise CommandError(
                "ERR "
                + (result.decode("utf-8", "replace") if isinstance(result, bytes) else str(result))
            )
        lib = Library(lib_name, code)
        for i in range(1, len(result) + 1):
            entry = result[i]
            fname = entry[1].decode("utf-8", "replace")
            desc = entry[3]
            lib.functions[fname.lower()] = Function(fname, lib_name, entry[2], desc, int(entry[4]))
        if not lib.functions:
            raise CommandError("ERR No functions registered")
        for fkey, fn in lib.functions.items():
            owner = self.functions.get(fkey)
            if owner is not None and owner.library.lower() != key:
                raise CommandError(f"ERR Function {fn.name} already exists")
        if old is not None:
            self._unlink(old)
        self.libraries[key] = lib
        self.functions.update(lib.functions)
        if record:
            libs = self.server.keyspace.libraries
            if old is not None:
                libs.pop(old.name, None)
            libs[lib_name] = code
        return lib_name

    def _unlink(self, lib: Library) -> None:
        for fkey in lib.functions:
            self.functions.pop(fkey, None)
        self.libraries.pop(lib.name.lower(), None)

    def delete_library(self, name: bytes) -> None:
        lib = self.libraries.get(name.decode("utf-8", "replace").lower())
        if lib is None:
            raise CommandError("ERR Library not found")
        self._unlink(lib)
        self.server.keyspace.libraries.pop(lib.name, None)

    def flush_libraries(self) -> None:
        self.libraries.clear()
        self.functions.clear()
        self.server.keyspace.libraries.clear()
        self.func_rt.lua.execute(b"collectgarbage('collect')")


def _err_table(rt: Runtime, msg: str) -> Any:
    t = rt.lua.table()
    t[b"err"] = msg.encode()
    return t


def _valid_name(name: bytes) -> bool:
    return bool(name) and all(
        48 <= ch <= 57 or 65 <= ch <= 90 or 97 <= ch <= 122 or ch == 95 for ch in name
    )


NO_LUPA = (
    "ERR Lua scripting is unavailable: the lupa package is not installed "
    "(pip install lupa; the Ansible role installs it)"
)


def engine_of(c: Client) -> Engine:
    srv = c.server
    eng = srv.lua
    if eng is None:
        if lua51 is None:
            raise CommandError(NO_LUPA)
        eng = Engine(srv)
        srv.lua = eng
    eng.sync_libraries()
    return eng


def _journal(c: Client, argv: list[bytes]) -> None:
    """SCRIPT LOAD/FLUSH and FUNCTION changes survive a crash restart: journal them."""
    if c.id:
        c.server.handover.wrote(c.db.index, argv)


def _numkeys(raw: bytes, argc: int, fcall: bool = False) -> int:
    if fcall:
        try:
            n = to_int(raw)
        except CommandError:
            raise CommandError("ERR Bad number of keys provided") from None
    else:
        n = to_int(raw)
    if n > argc - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    if n < 0:
        raise CommandError("ERR Number of keys can't be negative")
    return n


# ------------------------------------------------------------------ EVAL / EVALSHA


def _eval(c: Client, argv: list[bytes], sha_given: bool, ro: bool) -> bytes:
    if c.server.monitors:  # before the commands it runs, as Redis (the flag skip_monitor)
        c.server.feed_monitors(c, argv)
    eng = engine_of(c)
    n = _numkeys(argv[2], len(argv))
    if sha_given:
        sha = eng.lookup_sha(argv[1]) if len(argv[1]) == 40 else None
        if sha is None:
            raise CommandError(NOSCRIPT_ERR)
    else:
        # EVAL's effects are journaled command by command; a body new to the cache is
        # journaled as SCRIPT LOAD, so EVALSHA finds it after a crash restart too.
        known = len(eng.scripts)
        sha = eng.create_script(argv[1])
        if len(eng.scripts) > known:
            _journal(c, [b"SCRIPT", b"LOAD", argv[1]])
    fn = eng.compiled[sha]
    keys, args = argv[3 : 3 + n], argv[3 + n :]
    return eng.execute(c, sha.decode(), fn, eng.flags[sha], ro, True, keys, args, argv)


_EVAL = "noscript stale skip_monitor may_replicate no_mandatory_keys movablekeys"


@command("eval", -3, _EVAL, (0, 0, 0), "scripting", "Executes a Lua script.", "2.6.0")
def eval_(c: Client, argv: list[bytes]) -> bytes:
    return _eval(c, argv, False, False)


@command("evalsha", -3, _EVAL, (0, 0, 0), "scripting", "Executes a cached Lua script.", "2.6.0")
def evalsha(c: Client, argv: list[bytes]) -> bytes:
    return _eval(c, argv, True, False)


_EVAL_RO = "noscript stale skip_monitor no_mandatory_keys readonly movablekeys"


@command("eval_ro", -3, _EVAL_RO, (0, 0, 0), "scripting", "Runs a read-only script.", "7.0.0")
def eval_ro(c: Client, argv: list[bytes]) -> bytes:
    return _eval(c, argv, False, True)


@command(
    "evalsha_ro", -3, _EVAL_RO, (0, 0, 0), "scripting", "Runs a cached read-only script.", "7.0.0"
)
def evalsha_ro(c: Client, argv: list[bytes]) -> bytes:
    return _eval(c, argv, True, True)


# ------------------------------------------------------------------ SCRIPT

SCRIPT_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


def _help(lines: list[str]) -> bytes:
    return b"*%d\r\n" % len(lines) + b"".join(b"+" + x.encode() + b"\r\n" for x in lines)


def kill(c: Client, is_eval: bool) -> bytes:
    srv = c.server
    eng = srv.lua
    run = eng.run if eng is not None else None
    if run is None:
        raise CommandError("NOTBUSY No scripts in execution right now.")
    if run.dirty:
        raise CommandError(
            "UNKILLABLE Sorry the script already executed write commands against the "
            "dataset. You can either wait the script termination or kill the server in a hard "
            "way using the SHUTDOWN NOSAVE command."
        )
    if is_eval and not run.is_eval:
        raise CommandError(BUSY_FUNCTION)
    if not is_eval and run.is_eval:
        raise CommandError(BUSY_EVAL)
    run.killed = True
    log.warning(
        "Lua script killed by user with SCRIPT KILL."
        if is_eval
        else "Lua function killed by user with FUNCTION KILL."
    )
    return OK


SCRIPT_ARITY = {b"help": 2, b"exists": -3, b"flush": -2, b"kill": 2, b"load": 3, b"debug": 3}


@command(
    "script",
    -2,
    "noscript allow_busy",
    (0, 0, 0),
    "scripting",
    "A container for Lua scripts.",
    "2.6.0",
    batched=False,
)
def script(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, SCRIPT_ARITY)
    srv = c.server
    if srv.script_busy is not None and sub != b"kill":
        raise CommandError(srv.script_busy)
    if sub == b"kill":
        return kill(c, True)
    eng = engine_of(c)
    if sub == b"help":
        return _help(SCRIPT_HELP)
    if sub == b"exists":
        out = [b":1\r\n" if eng.lookup_sha(s) is not None else b":0\r\n" for s in argv[2:]]
        return b"*%d\r\n" % len(out) + b"".join(out)
    if sub == b"flush":
        if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
            raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        eng.flush_scripts()
        _journal(c, argv)
        return OK
    if sub == b"load":
        known = sha1hex(argv[2]) in eng.scripts
        sha = eng.create_script(argv[2])
        if not known:
            _journal(c, argv)
        return bulk(sha)
    # debug
    mode = argv[2].lower()
    if mode == b"no":
        return OK
    if mode in (b"yes", b"sync"):
        raise CommandError("ERR SCRIPT DEBUG is not supported by IronCache")
    raise CommandError("ERR Use SCRIPT DEBUG YES/SYNC/NO")


# ------------------------------------------------------------------ FUNCTION / FCALL

FUNCTION_ARITY = {
    b"help": 2,
    b"load": -3,
    b"list": -2,
    b"delete": 3,
    b"flush": -2,
    b"dump": 2,
    b"restore": -3,
    b"stats": 2,
    b"kill": 2,
}
FUNCTION_HELP = [
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",  # noqa: E501
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",  # noqa: E501
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",  # noqa: E501
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",  # noqa: E501
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
]


@command(
    "function",
    -2,
    "noscript allow_busy",
    (0, 0, 0),
    "scripting",
    "A container for functions.",
    "7.0.0",
    batched=False,
)
def function(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, FUNCTION_ARITY)
    srv = c.server
    if srv.script_busy is not None and sub not in (b"kill", b"stats"):
        raise CommandError(srv.script_busy)
    if sub == b"kill":
        return kill(c, False)
    eng = engine_of(c)
    if sub == b"help":
        return _help(FUNCTION_HELP)
    if sub == b"stats":
        return _function_stats(c, eng)
    if sub == b"load":
        replace = False
        args = argv[2:]
        while len(args) > 1:
            opt = args.pop(0)
            if opt.lower() != b"replace":
                raise CommandError(f"ERR Unknown option given: {opt.decode(errors='replace')}")
            replace = True
        if not args:
            raise CommandError("ERR Function code is missing")
        if c.id and eng.over_maxmemory():
            raise CommandError(OOM_ERR)
        name = eng.create_library(args[0], replace)
        _journal(c, argv)
        return bulk(name.encode())
    if sub == b"list":
        return _function_list(c, eng, argv)
    if sub == b"delete":
        eng.delete_library(argv[2])
        _journal(c, argv)
        return OK
    if sub == b"flush":
        if len(argv) > 3:
            raise CommandError(
                "ERR unknown subcommand or wrong number of arguments for 'flush'. "
                "Try FUNCTION HELP."
            )
        if len(argv) == 3 and argv[2].lower() not in (b"sync", b"async"):
            raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
        eng.flush_libraries()
        _journal(c, argv)
        return OK
    if sub == b"dump":
        return bulk(dump_libraries(eng))
    # restore
    if len(argv) > 4:
        raise CommandError(
            "ERR unknown subcommand or wrong number of arguments for 'restore'. Try FUNCTION HELP."
        )
    policy = argv[3].lower() if len(argv) == 4 else b"append"
    if policy not in (b"append", b"replace", b"flush"):
        raise CommandError(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
        )
    if c.id and eng.over_maxmemory():
        raise CommandError(OOM_ERR)
    restore_libraries(eng, argv[2], policy)
    _journal(c, argv)
    return OK


def _function_stats(c: Client, eng: Engine) -> bytes:
    run = eng.run
    if run is not None and run.is_eval:
        raise CommandError(BUSY_EVAL)
    running: Any = None
    if run is not None:
        running = {
            b"name": run.name.encode(),
            b"command": list(run.argv),
            b"duration_ms": int((time.monotonic() - run.start) * 1000),
        }
    stats = {
        b"running_script": running,
        b"engines": {
            b"LUA": {
                b"libraries_count": len(eng.libraries),
                b"functions_count": len(eng.functions),
            }
        },
    }
    return encode(stats, c.resp)


def _function_list(c: Client, eng: Engine, argv: list[bytes]) -> bytes:
    with_code = False
    pattern: bytes | None = None
    i = 2
    while i < len(argv):
        arg = argv[i]
        low = arg.lower()
        if not with_code and low == b"withcode":
            with_code = True
        elif pattern is None and low == b"libraryname":
            if i >= len(argv) - 1:
                raise CommandError("ERR library name argument was not given")
            i += 1
            pattern = argv[i]
        else:
            raise CommandError(f"ERR Unknown argument {arg.decode(errors='replace')}")
        i += 1
    match = matcher(pattern) if pattern is not None else None
    out: list[Any] = []
    for lib in eng.libraries.values():
        if match is not None and not match(lib.name.encode()):
            continue
        funcs = []
        for fn in lib.functions.values():
            funcs.append(
                {
                    b"name": fn.name.encode(),
                    b"description": fn.description,
                    b"flags": _FlagSet(fn.flags),
                }
            )
        entry: dict[bytes, Any] = {
            b"library_name": lib.name.encode(),
            b"engine": b"LUA",
            b"functions": funcs,
        }
        if with_code:
            entry[b"library_code"] = lib.code
        out.append(entry)
    return _encode_list(out, c.resp)


class _FlagSet:
    __slots__ = ("flags",)

    def __init__(self, flags: int) -> None:
        self.flags = flags


def _encode_list(v: Any, resp: int) -> bytes:
    if isinstance(v, _FlagSet):
        names = [n for i, n in enumerate(FLAG_NAMES) if v.flags & (1 << i)]
        head = b"~%d\r\n" if resp == 3 else b"*%d\r\n"
        return head % len(names) + b"".join(b"+" + n.encode() + b"\r\n" for n in names)
    if isinstance(v, dict):
        head = b"%%%d\r\n" % len(v) if resp == 3 else b"*%d\r\n" % (2 * len(v))
        return head + b"".join(_encode_list(k, resp) + _encode_list(x, resp) for k, x in v.items())
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(_encode_list(x, resp) for x in v)
    return encode(v, resp)


# FUNCTION DUMP's payload: Redis's (RDB_OPCODE_FUNCTION2, the code as an RDB string, per
# library; then the RDB version and a CRC-64), so a payload moves between the two servers.
RDB_OPCODE_FUNCTION2 = 245
RDB_VERSION = 10


def _crc64_table() -> list[int]:
    poly = 0x95AC9329AC4BC9B5  # Redis's crc64 (Jones), reflected
    table = []
    for i in range(256):
        crc = i
        for dummy in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64 = _crc64_table()


def crc64(data: bytes, crc: int = 0) -> int:
    t = _CRC64
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _rdb_len(n: int) -> bytes:
    if n < 64:
        return bytes((n,))
    if n < 16384:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def dump_libraries(eng: Engine) -> bytes:
    out = bytearray()
    for lib in eng.libraries.values():
        out.append(RDB_OPCODE_FUNCTION2)
        out += _rdb_len(len(lib.code)) + lib.code
    out += struct.pack("<H", RDB_VERSION)
    out += struct.pack("<Q", crc64(bytes(out)))
    return bytes(out)


def _read_rdb_string(data: bytes, pos: int) -> tuple[bytes, int]:
    first = data[pos]
    kind = first >> 6
    if kind == 0:
        n, pos = first & 0x3F, pos + 1
    elif kind == 1:
        n, pos = ((first & 0x3F) << 8) | data[pos + 1], pos + 2
    elif first == 0x80:
        n, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
    elif first == 0x81:
        n, pos = int.from_bytes(data[pos + 1 : pos + 9], "big"), pos + 9
    elif first == 0xC3:  # LZF-compressed (Redis compresses codes over 20 bytes)
        clen, pos = _read_len(data, pos + 1)
        ulen, pos = _read_len(data, pos)
        raw = _lzf_decompress(data[pos : pos + clen], ulen)
        return raw, pos + clen
    else:
        raise ValueError("unsupported string encoding")
    if pos + n > len(data):
        raise ValueError("truncated")
    return data[pos : pos + n], pos + n


def _read_len(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, pos + 1
    if kind == 1:
        return ((first & 0x3F) << 8) | data[pos + 1], pos + 2
    if first == 0x80:
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
    if first == 0x81:
        return int.from_bytes(data[pos + 1 : pos + 9], "big"), pos + 9
    raise ValueError("bad length")


def _lzf_decompress(src: bytes, ulen: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(src):
        ctrl = src[i]
        i += 1
        if ctrl < 32:
            out += src[i : i + ctrl + 1]
            i += ctrl + 1
        else:
            length = ctrl >> 5
            ref = len(out) - ((ctrl & 0x1F) << 8) - 1
            if length == 7:
                length += src[i]
                i += 1
            ref -= src[i]
            i += 1
            if ref < 0:
                raise ValueError("bad LZF reference")
            for dummy in range(length + 2):
                out.append(out[ref])
                ref += 1
    if len(out) != ulen:
        raise ValueError("bad LZF length")
    return bytes(out)


def restore_libraries(eng: Engine, data: bytes, policy: bytes) -> None:
    if len(data) < 10:
        raise CommandError("ERR DUMP payload version or checksum are wrong")
    body, footer = data[:-10], data[-10:]
    version = struct.unpack("<H", footer[:2])[0]
    if version > RDB_VERSION or struct.unpack("<Q", footer[2:])[0] != crc64(body + footer[:2]):
        raise CommandError("ERR DUMP payload version or checksum are wrong")
    codes = []
    pos = 0
    try:
        while pos < len(body):
            if body[pos] != RDB_OPCODE_FUNCTION2:
                raise CommandError("ERR given type is not a function")
            code, pos = _read_rdb_string(body, pos + 1)
            codes.append(code)
    except (ValueError, IndexError):
        raise CommandError("ERR failed loading the given functions payload") from None
    # Built aside first: a failure leaves the current libraries as they were.
    saved = (dict(eng.libraries), dict(eng.functions), dict(eng.server.keyspace.libraries))
    try:
        if policy == b"flush":
            eng.libraries.clear()
            eng.functions.clear()
            eng.server.keyspace.libraries.clear()
        for code in codes:
            try:
                eng.create_library(code, replace=policy == b"replace")
            except CommandError as e:
                if policy == b"append" and "already exists" in e.message:
                    name = e.message.split("'")[1] if "'" in e.message else ""
                    raise CommandError(f"ERR Library {name} already exists") from None
                raise
    except CommandError:
        eng.libraries.clear()
        eng.libraries.update(saved[0])
        eng.functions.clear()
        eng.functions.update(saved[1])
        eng.server.keyspace.libraries.clear()
        eng.server.keyspace.libraries.update(saved[2])
        raise


def _fcall(c: Client, argv: list[bytes], ro: bool) -> bytes:
    if c.server.monitors:  # before the commands it runs, as Redis (the flag skip_monitor)
        c.server.feed_monitors(c, argv)
    eng = engine_of(c)
    fn = eng.functions.get(argv[1].decode("utf-8", "replace").lower())
    if fn is None:
        raise CommandError("ERR Function not found")
    n = _numkeys(argv[2], len(argv), fcall=True)
    keys, args = argv[3 : 3 + n], argv[3 + n :]
    return eng.execute(c, fn.name, fn.callback, fn.flags, ro, False, keys, args, argv)


_FCALL = "noscript stale skip_monitor may_replicate no_mandatory_keys movablekeys"
_FCALL_RO = "noscript stale skip_monitor no_mandatory_keys readonly movablekeys"


@command("fcall", -3, _FCALL, (0, 0, 0), "scripting", "Invokes a function.", "7.0.0")
def fcall(c: Client, argv: list[bytes]) -> bytes:
    return _fcall(c, argv, False)


@command(
    "fcall_ro", -3, _FCALL_RO, (0, 0, 0), "scripting", "Invokes a read-only function.", "7.0.0"
)
def fcall_ro(c: Client, argv: list[bytes]) -> bytes:
    return _fcall(c, argv, True)


def _numkeys_keys(argv: list[bytes]) -> list[bytes]:
    """COMMAND GETKEYS of EVAL/FCALL and their variants: the numkeys keys after argv[2]."""
    try:
        n = int(argv[2]) if len(argv) > 2 else 0
    except ValueError:
        return []
    return argv[3 : 3 + n] if 0 < n <= len(argv) - 3 else []


for _name in (b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"):
    TABLE[_name].key_finder = _numkeys_keys

# SCRIPT and FUNCTION subcommands by name (ACL rules such as -function|delete, COMMAND INFO),
# with Redis's flags.
subcommands("script", SCRIPT_ARITY, {b"help": "loading stale", b"kill": "noscript allow_busy"})
subcommands(
    "function",
    FUNCTION_ARITY,
    {
        b"help": "loading stale",
        b"load": "write denyoom noscript",
        b"delete": "write noscript",
        b"flush": "write noscript",
        b"restore": "write denyoom noscript",
        b"list": "noscript",
        b"dump": "noscript",
        b"stats": "noscript allow_busy",
        b"kill": "noscript allow_busy",
    },
)
