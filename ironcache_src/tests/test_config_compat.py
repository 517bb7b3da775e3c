"""Redis settings that clients and tools set at connect time (save, appendonly, encodings...):
CONFIG SET accepts them with Redis's validation, CONFIG GET reports them with Redis's formatting,
and IronCache logs once per setting that it has no effect. Runs against redis-server too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from support import Server, ironcache_only, run_ironcache

# setting, value set, value CONFIG GET answers (Redis 7.0.15's formatting)
ACCEPTED = [
    ("save", "", ""),
    ("save", "3600 1 300 100", "3600 1 300 100"),
    ("appendonly", "no", "no"),
    ("hash-max-ziplist-entries", "20", "20"),
    ("hash-max-listpack-value", "1kb", "1024"),
    ("zset-max-ziplist-value", "32", "32"),
    ("zset-max-listpack-entries", "0", "0"),
    ("set-max-intset-entries", "1000", "1000"),
    ("list-max-ziplist-size", "-1", "-1"),
    ("list-max-listpack-size", "16", "16"),
    ("list-compress-depth", "2", "2"),
    ("stream-node-max-entries", "10", "10"),
    ("stream-node-max-bytes", "8kb", "8192"),
    ("activerehashing", "NO", "no"),
    ("lazyfree-lazy-user-del", "yes", "yes"),
    ("lua-time-limit", "100", "100"),
]

REFUSED = [
    ("list-compress-depth", "-1"),
    ("set-max-intset-entries", "many"),
    ("activerehashing", "maybe"),
    ("hash-max-listpack-value", "lots"),
    ("save", "3600"),
    ("save", "a b"),
    ("active-expire-effort", "11"),
]


@pytest.fixture
def srv(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.mark.parametrize(("name", "value", "shown"), ACCEPTED)
def test_config_set_then_get(srv: Server, name: str, value: str, shown: str) -> None:
    r = srv.client()
    assert r.config_set(name, value)
    assert r.config_get(name) == {name: shown}


@pytest.mark.parametrize(("name", "value"), REFUSED)
def test_config_set_validates(srv: Server, name: str, value: str) -> None:
    r = srv.client()
    before = r.config_get(name)[name]
    with pytest.raises(redis.ResponseError, match=f"CONFIG SET failed.*'{name}'"):
        r.config_set(name, value)
    assert r.config_get(name) == {name: before}


def test_old_and_new_names_are_one_setting(srv: Server) -> None:
    r = srv.client()
    r.config_set("hash-max-ziplist-entries", "21")
    assert r.config_get("hash-max-*-entries") == {
        "hash-max-ziplist-entries": "21",
        "hash-max-listpack-entries": "21",
    }
    # both names in one CONFIG SET: the last one wins; the same name twice is refused
    r.execute_command("CONFIG", "SET", "hash-max-ziplist-entries", "1",
                      "hash-max-listpack-entries", "2")
    assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": "2"}
    with pytest.raises(redis.ResponseError, match="duplicate parameter"):
        r.execute_command("CONFIG", "SET", "list-compress-depth", "1", "list-compress-depth", "2")


def test_defaults_as_redis_reports_them(srv: Server) -> None:
    got = srv.client().config_get("*-max-*")
    for name, value in [
        ("hash-max-listpack-entries", "512"),
        ("hash-max-listpack-value", "64"),
        ("zset-max-listpack-entries", "128"),
        ("set-max-intset-entries", "512"),
        ("list-max-listpack-size", "-2"),
        ("stream-node-max-bytes", "4096"),
    ]:
        assert got[name] == value


@ironcache_only
def test_no_effect_is_logged_once_per_setting(srv: Server) -> None:
    r = srv.client()
    r.config_set("list-compress-depth", "1")
    r.config_set("list-compress-depth", "2")
    r.config_set("save", "")
    log = srv.log_text()
    assert log.count("list-compress-depth: accepted for Redis compatibility, no effect") == 1
    assert log.count("save: accepted for Redis compatibility, no effect") == 1
    # a setting that has an effect logs no such line (the control)
    r.config_set("maxmemory-samples", "7")
    assert "maxmemory-samples: accepted" not in srv.log_text()


@ironcache_only
def test_appendonly_yes_is_refused(srv: Server) -> None:
    # accepting it would tell a client its writes are logged to disk when they are not
    with pytest.raises(redis.ResponseError, match="no append only file"):
        srv.client().config_set("appendonly", "yes")


@ironcache_only
def test_check_config_accepts_them_and_still_refuses_unknown(tmp_path: Path) -> None:
    conf = tmp_path / "ironcache.conf"
    conf.write_text('port 6390\nsave ""\nhash-max-ziplist-value 64\nlist-compress-depth 1\n')
    out = run_ironcache("check-config", str(conf))
    assert out.returncode == 0, out.stderr
    conf.write_text("port 6390\nhash-max-ziplist-valu 64\n")
    out = run_ironcache("check-config", str(conf))
    assert out.returncode == 1
    assert "unknown directive 'hash-max-ziplist-valu'" in out.stderr
