"""Live handover: clients keep their connections, their state and every key across restarts
and crashes of ironcache.service (systemd's fd store), seen from clients on the controller.

The clients (redis-py pool, redis-cli, raw RESP sockets) run in this test process against the
instance's port published on 127.0.0.1; systemctl and kill run inside the instance. Every loop is
bounded in count and time; the assertions are about behaviour, never about durations (latencies
are recorded, not judged).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

import ironcache_checks as ic
import pytest
import redis

PORT = int(os.environ.get("IRONCACHE_HANDOVER_PORT", "16390"))
RESTARTS = 20
KILLS = 3
POOL_CONNECTIONS = 4
# systemd refuses a sixth start of a unit within 10 s (StartLimitBurst=5, StartLimitIntervalSec=10s;
# crash restarts count too): start the service at most every 2.6 s.
START_SPACING = 2.6
OBSERVER_DB = 5
CLI_KEY = "ho:cli:counter"
CLI_MAX = 60000  # at most this many INCRs from redis-cli (10 ms apart: 10 minutes)
# a module fixture that raised runs again for every test: once is enough
_STORM_FAILED: list[str] = []


def _handover_info(client) -> dict[str, str]:
    return ic.parse_info(client.execute_command("INFO", "handover"))


def _plan() -> list[str]:
    """20 restarts with the 3 crashes spread among them."""
    plan = ["restart"] * RESTARTS
    for pos in (5, 12, 19):
        plan.insert(pos, "kill")
    return plan[:RESTARTS + KILLS]


@pytest.fixture(scope="module")
def storm(host):
    """Run the clients across 20 restarts and 3 kill -9 of the main process; return what they saw.

    The assertions are in the tests below, so that each failure is reported on its own.
    """
    if _STORM_FAILED:
        pytest.fail(f"the run across restarts failed earlier: {_STORM_FAILED[0]}")
    try:
        result = _run_storm(host)
    except BaseException as exc:
        _STORM_FAILED.append(f"{type(exc).__name__}: {exc}")
        raise
    yield result
    result["observer"].close()
    result["pool"].disconnect()


def _run_storm(host) -> dict:
    ic.wait_serving(host)
    assert host.run("systemctl reset-failed ironcache.service").rc in (0, 1)

    # the pool: warm (every connection open) before the first restart
    pool = ic.strict_pool(PORT, POOL_CONNECTIONS)
    ic.warm_pool(pool, POOL_CONNECTIONS)
    conn_class = pool.connection_class
    sockets_before = len(conn_class.opened)

    # the observer: one connection, SELECTed db, a name, a key in that db
    obs_pool = ic.strict_pool(PORT, 1, db=OBSERVER_DB)
    observer = redis.Redis(connection_pool=obs_pool, single_connection_client=True)
    observer.client_setname("ho-observer")
    observer_id = observer.client_id()
    observer.set("ho:observer:marker", "in-db-5")

    # redis-cli: one connection (its interactive loop, commands read from a pipe), INCR every
    # 10 ms from before the first restart until after the last one; N = the INCRs fed to it
    plan = _plan()
    planned_seconds = len(plan) * START_SPACING + 5
    ic.redis_cli(host, "DEL", CLI_KEY)
    cli = subprocess.Popen(
        ["timeout", str(int(planned_seconds * 6) + 120), "redis-cli", "-h", "127.0.0.1", "-p",
         str(PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1)
    cli_lines: list[str] = []
    cli_fed = [0]
    cli_stop = threading.Event()

    def feed() -> None:
        try:
            while not cli_stop.is_set() and cli_fed[0] < CLI_MAX:
                cli.stdin.write(f"INCR {CLI_KEY}\n")
                cli.stdin.flush()
                cli_fed[0] += 1
                time.sleep(0.01)
        except OSError:  # redis-cli ended early: the test reports it (cli_running, rc)
            pass
        finally:
            with contextlib.suppress(OSError):
                cli.stdin.close()

    def read() -> None:
        for line in cli.stdout:
            cli_lines.append(line.rstrip("\n"))

    feeder = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=read, daemon=True)
    feeder.start()
    reader.start()

    load = ic.PoolLoad(pool, POOL_CONNECTIONS, prefix="ho:pool",
                       max_seconds=planned_seconds * 4 + 60)
    load.start()
    time.sleep(1.0)  # clients are running before the first restart

    events = []
    last_start = time.monotonic()
    try:
        for n, action in enumerate(plan, 1):
            wait = last_start + START_SPACING - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            old = ic.main_pid(host)
            ops_before = load.ops
            started = time.monotonic()
            if action == "restart":
                host.check_output("systemctl restart ironcache.service")
            else:
                host.check_output(f"kill -9 {old}")
            new = ic.wait_replaced(host, old)
            last_start = time.monotonic()
            info = _handover_info(observer)
            events.append({
                "n": n, "action": action, "old_pid": old, "new_pid": new,
                "seconds": round(last_start - started, 3),
                "t_action": started, "t_ready": last_start,
                "source": info.get("handover_source"),
                "connections": int(info.get("handover_connections", -1)),
                "keys": int(info.get("handover_keys", -1)),
                "total_ms": int(info.get("handover_total_ms", -1)),
                "load_ms": float(info.get("handover_load_ms", -1)),
                "observer_id": observer.client_id(),
                "observer_marker": observer.get("ho:observer:marker"),
                "observer_name": observer.client_getname(),
                "cli_running": cli.poll() is None and feeder.is_alive(),
                "pool_ops_before": ops_before,
                "pool_errors_so_far": len(load.errors),
            })
    finally:
        load.stop()
        cli_stop.set()
        feeder.join(30)
        try:
            cli_rc = cli.wait(timeout=planned_seconds * 2 + 60)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli_rc = cli.wait(timeout=10)
        reader.join(30)
        ic.OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        (ic.OUTPUT_DIR / "molecule-handover-redis-cli.out").write_text(
            "\n".join(cli_lines) + "\n", encoding="utf-8")
    cli_count = cli_fed[0]

    counter = redis.Redis(host="127.0.0.1", port=PORT, decode_responses=True).get(CLI_KEY)
    result = {
        "plan": plan, "events": events, "load": load, "pool": pool,
        "sockets_before": sockets_before, "sockets_after": len(conn_class.opened),
        "observer": observer, "observer_id": observer_id,
        "observer_sockets": len(obs_pool.connection_class.opened),
        "cli_count": cli_count, "cli_rc": cli_rc, "cli_lines": cli_lines, "cli_counter": counter,
        "journal": ic.journal_tail(host, 120),
    }
    figures = load.figures()
    figures.update({
        "restarts": sum(1 for e in events if e["action"] == "restart"),
        "kills": sum(1 for e in events if e["action"] == "kill"),
        "pool_connections": POOL_CONNECTIONS,
        "pool_sockets_opened_during_run": result["sockets_after"] - sockets_before,
        "redis_cli_incr": cli_count, "redis_cli_counter": counter, "redis_cli_rc": cli_rc,
        "redis_cli_non_integer_lines": sum(1 for x in cli_lines if not x.strip().isdigit()),
        "max_handover_total_ms": max((e["total_ms"] for e in events), default=0),
        "max_restart_s": max((e["seconds"] for e in events), default=0),
        "sources": sorted({e["source"] for e in events}),
        "connections_handed_over": sorted({e["connections"] for e in events}),
        "first_errors": [e for _, e in load.errors[:5]],
    })
    result["figures"] = figures
    ic.record("molecule-handover-storm", figures)
    return result


def test_handover_enabled(host):
    client = redis.Redis(host="127.0.0.1", port=PORT)
    info = _handover_info(client)
    assert info["handover_enabled"] == "1", info
    store = int(host.check_output("systemctl show -p FileDescriptorStoreMax --value "
                                  "ironcache.service").strip())
    assert store > POOL_CONNECTIONS + 2


def test_every_restart_and_crash_replaced_the_process(storm):
    events = storm["events"]
    assert [e["action"] for e in events] == storm["plan"]
    pids = [events[0]["old_pid"]] + [e["new_pid"] for e in events]
    assert len(set(pids)) == len(pids), pids
    for e in events:
        expected = "restart" if e["action"] == "restart" else "crash"
        assert e["source"] == expected, e
        # the pool, the observer and redis-cli were handed over every time
        assert e["connections"] >= POOL_CONNECTIONS + 2, e


def test_pool_saw_no_connection_error(storm):
    load = storm["load"]
    assert load.ops > 0
    assert not load.errors, [(what, _when(t, storm["events"])) for t, what in load.errors[:10]]
    assert not load.mismatches, load.mismatches[:10]
    # no connection was re-opened behind the pool's back: the same sockets all along
    assert storm["sockets_after"] == storm["sockets_before"] == POOL_CONNECTIONS


def test_pool_operations_ran_through_every_handover(storm):
    """The clients were busy the whole time (not only between restarts)."""
    events = storm["events"]
    ops = [e["pool_ops_before"] for e in events] + [storm["load"].ops]
    assert all(b > a for a, b in zip(ops, ops[1:], strict=False)), ops


def _when(t: float, events: list[dict]) -> str:
    """Where a moment falls among the restarts and crashes (seconds from the nearest ones)."""
    before = [e for e in events if e["t_action"] <= t]
    after = [e for e in events if e["t_action"] > t]
    parts = []
    if before:
        e = before[-1]
        parts.append(f"{t - e['t_action']:.3f}s after {e['action']} #{e['n']}")
    if after:
        e = after[0]
        parts.append(f"{e['t_action'] - t:.3f}s before {e['action']} #{e['n']}")
    return ", ".join(parts)


def test_every_key_written_is_there(storm):
    load = storm["load"]
    assert load.written
    wrong = ic.missing_keys(PORT, load.written)
    located = {k: f"{v!r} (SET sent {_when(load.set_at[k], storm['events'])})"
               for k, v in sorted(wrong.items())}
    ic.record("molecule-handover-keys", {"keys_checked": len(load.written),
                                         "wrong_or_missing": len(wrong),
                                         "examples": dict(list(located.items())[:12])})
    assert not wrong, (f"{len(wrong)} of {len(load.written)} keys wrong or missing: "
                       f"{dict(list(located.items())[:12])}\n{storm['journal']}")


def test_redis_cli_kept_one_connection_and_lost_no_increment(storm):
    lines = storm["cli_lines"]
    # it was running during every restart and crash
    assert all(e["cli_running"] for e in storm["events"]), [e["n"] for e in storm["events"]
                                                            if not e["cli_running"]]
    assert storm["cli_rc"] == 0, lines[-5:]
    bad = [x for x in lines if not x.strip().isdigit()]
    assert not bad, bad[:10]
    replies = [int(x) for x in lines]
    expected = list(range(1, storm["cli_count"] + 1))
    if replies != expected:
        jumps = [(i + 1, a, b) for i, (a, b) in enumerate(zip(replies, replies[1:], strict=False))
                 if b != a + 1]
        pytest.fail(f"INCR replies are not 1..{storm['cli_count']}: {len(replies)} replies, "
                    f"jumps (position, reply, next reply) {jumps[:10]}; counter "
                    f"{storm['cli_counter']}\n{storm['journal']}")
    assert storm["cli_counter"] == str(storm["cli_count"])


def test_connection_id_name_and_db_survive(storm):
    for e in storm["events"]:
        assert e["observer_id"] == storm["observer_id"], e
        assert e["observer_marker"] == "in-db-5", e
        assert e["observer_name"] == "ho-observer", e
    assert storm["observer_sockets"] == 1


def _restart_and_wait(host) -> int:
    time.sleep(START_SPACING)
    old = ic.main_pid(host)
    host.check_output("systemctl restart ironcache.service")
    return ic.wait_replaced(host, old)


def test_multi_survives_a_restart(host, storm):
    c = ic.RawClient(PORT)
    try:
        assert c.call("SELECT", "3") == "OK"
        cid = c.call("CLIENT", "ID")
        assert c.call("DEL", "ho:tx:a", "ho:tx:n") in (0, 1, 2)
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "ho:tx:a", "1") == "QUEUED"
        assert c.call("INCR", "ho:tx:n") == "QUEUED"
        _restart_and_wait(host)
        assert c.call("INCR", "ho:tx:n") == "QUEUED"
        assert c.call("GET", "ho:tx:a") == "QUEUED"
        assert c.call("EXEC") == ["OK", 1, 2, b"1"]
        assert c.call("CLIENT", "ID") == cid
        info = ic.parse_info(c.call("INFO", "handover"))
        assert info["handover_source"] == "restart", info
        assert int(info["handover_connections"]) >= 1, info
        # still db 3: the keys are there, not in db 0
        assert c.call("GET", "ho:tx:n") == b"2"
        assert redis.Redis(host="127.0.0.1", port=PORT).get("ho:tx:n") is None
    finally:
        c.close()


@pytest.mark.parametrize("cut", [5, 17, 29])
def test_half_sent_command_is_answered_after_a_restart(host, storm, cut):
    frame = ic.resp_encode("SET", f"ho:half:{cut}", "value-sent-in-two-parts")
    c = ic.RawClient(PORT)
    try:
        assert c.call("SELECT", "2") == "OK"
        cid = c.call("CLIENT", "ID")
        c.send(frame[:cut])
        _restart_and_wait(host)
        c.send(frame[cut:])
        assert c.read() == "OK"
        assert c.call("GET", f"ho:half:{cut}") == b"value-sent-in-two-parts"
        assert c.call("CLIENT", "ID") == cid
        info = ic.parse_info(c.call("INFO", "handover"))
        assert info["handover_source"] == "restart", info
    finally:
        c.close()


def _systemd_version(host) -> int:
    return int(host.check_output("systemctl --version").split()[1])


DUMP = "/var/lib/ironcache/dump.ironcache"
PRESERVE_DROPIN = "/run/systemd/system/ironcache.service.d/50-test-preserve.conf"


def _stop_start(host, storm, name: str, remove_disk: bool) -> dict:
    """Hold the connections of a pool and a raw socket (db 7, named) across `systemctl stop` +
    `start` of the service; return what they saw and whether every key the storm wrote is there.
    remove_disk: delete the disk snapshot while the service is stopped."""
    time.sleep(START_SPACING)
    pool = ic.strict_pool(PORT, POOL_CONNECTIONS)
    ic.warm_pool(pool, POOL_CONNECTIONS)
    opened = pool.connection_class.opened
    before = len(opened)
    held = [pool.get_connection() for _ in range(POOL_CONNECTIONS)]
    raw = ic.RawClient(PORT)
    assert raw.call("SELECT", "7") == "OK"
    assert raw.call("CLIENT", "SETNAME", "ho-stop-start") == "OK"
    raw_id = raw.call("CLIENT", "ID")
    # what the server holds right before the stop (the storm's keys; see test_every_key_written
    # for whether they were all still right)
    expected = dict(storm["load"].written)
    expected.update(ic.missing_keys(PORT, expected))
    old = ic.main_pid(host)
    host.check_output("systemctl stop ironcache.service")
    if remove_disk:
        host.check_output(f"rm -f {DUMP}")
    host.check_output("systemctl start ironcache.service")
    ic.wait_replaced(host, old)

    errors = []
    for conn in held:  # the first use of each connection the pool had handed out
        try:
            conn.send_command("PING")
            conn.read_response()
        except redis.ConnectionError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            pool.release(conn)
    raw_error = raw_state = None
    try:
        raw_state = [raw.call("CLIENT", "ID"), raw.call("CLIENT", "GETNAME").decode()]
    except (ConnectionError, OSError) as exc:
        raw_error = f"{type(exc).__name__}: {exc}"
    raw.close()
    # the pool itself reconnects silently (new sockets) on its next use
    client = redis.Redis(connection_pool=pool)
    assert all(client.ping() for _ in range(POOL_CONNECTIONS))
    info = _handover_info(client)
    wrong = ic.missing_keys(PORT, expected)
    figures = {"pool_connections": POOL_CONNECTIONS, "connection_errors": len(errors),
               "errors": errors[:2], "raw_socket_error": raw_error, "raw_id": raw_id,
               "raw_after": raw_state, "sockets_reopened": len(opened) - before,
               "disk_removed": remove_disk, "source": info["handover_source"],
               "handover_connections": info["handover_connections"],
               "keys_checked": len(expected), "keys_wrong": len(wrong),
               "wrong_examples": dict(list(wrong.items())[:5])}
    ic.record(name, figures)
    pool.disconnect()
    return figures


def test_stop_start_keeps_connections_and_keys_without_the_disk(host, storm):
    """systemd 254+ (Debian 13): FileDescriptorStorePreserve=yes keeps the fd store across
    stop + start, so the connections and the dataset come back as after a restart, even with
    the disk snapshot deleted in between."""
    version = _systemd_version(host)
    if version < 254:
        pytest.skip(f"systemd {version} empties the fd store on stop (FileDescriptorStorePreserve= "
                    "needs 254); the control below covers this platform")
    preserve = host.check_output("systemctl show -p FileDescriptorStorePreserve --value "
                                 "ironcache.service").strip()
    assert preserve == "yes"
    f = _stop_start(host, storm, "molecule-handover-stop-start-preserved", remove_disk=True)
    assert f["connection_errors"] == 0, f
    assert f["raw_socket_error"] is None, f
    assert f["raw_after"] == [f["raw_id"], "ho-stop-start"], f
    assert f["sockets_reopened"] == 0, f
    assert f["source"] == "restart", f
    assert int(f["handover_connections"]) >= POOL_CONNECTIONS + 1, f
    assert f["keys_wrong"] == 0, f


def test_control_stop_start_drops_connections_keys_come_from_disk(host, storm):
    """The control: with the store released on stop (systemd before 254, or
    FileDescriptorStorePreserve=restart, systemd's default, on 254+) the same pool DOES lose its
    connections; the keys survive through the disk snapshot (source disk)."""
    dropin = _systemd_version(host) >= 254
    if dropin:
        body = "[Service]\\nFileDescriptorStorePreserve=restart\\n"
        host.check_output(f"mkdir -p {os.path.dirname(PRESERVE_DROPIN)} && "
                          f"printf '{body}' >{PRESERVE_DROPIN} && systemctl daemon-reload")
    try:
        f = _stop_start(host, storm, "molecule-handover-control-stop-start", remove_disk=False)
    finally:
        if dropin:
            host.check_output(f"rm -f {PRESERVE_DROPIN} && systemctl daemon-reload")
    assert f["connection_errors"] == POOL_CONNECTIONS, f
    assert f["raw_socket_error"] is not None, f
    assert f["source"] == "disk", f
    assert f["handover_connections"] == "0", f
    assert f["keys_wrong"] == 0, f
