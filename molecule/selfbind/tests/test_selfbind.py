"""Control scenario: without socket activation the service binds its own listener, so the same
tight-loop restart that refuses nobody under socket activation DOES refuse connections here."""

import ironcache_checks as ic


def test_no_socket_unit(host):
    assert not host.file("/etc/systemd/system/ironcache.socket").exists
    load = host.check_output("systemctl show -p LoadState --value ironcache.socket").strip()
    assert load == "not-found"


def test_serves_on_its_own_socket(host):
    svc = host.service(ic.SERVICE)
    assert svc.is_running
    assert svc.is_enabled
    assert host.socket("tcp://127.0.0.1:6379").is_listening
    info = ic.info_server(host)
    assert info["socket_activated"] == "0"
    assert info["listeners_inherited"] == "0"
    assert int(info["listeners_bound"]) >= 1


def test_the_service_holds_the_listener(host):
    # ss -p names root's processes only (reading another user's fds needs CAP_SYS_PTRACE, which
    # the container lacks): systemd would show here if it held the listener
    lines = ic.listen_lines(host)
    assert lines
    for line in lines:
        assert '"systemd"' not in line, line
    assert int(ic.info_server(host)["process_id"]) == ic.main_pid(host)


def test_backlog_unchanged(host):
    requested, limit, expected = ic.expected_backlog(host)
    send_qs = [ic.send_q(line) for line in ic.listen_lines(host)]
    ic.record("molecule-selfbind-backlog", {"requested": requested, "somaxconn": limit,
                                            "ss_send_q": send_qs})
    assert send_qs and all(q == expected for q in send_qs)


def test_ping_set_get(host):
    assert ic.redis_cli(host, "PING").strip() == "PONG"
    assert ic.redis_cli(host, "SET", "molecule:key", "v1").strip() == "OK"
    assert ic.redis_cli(host, "GET", "molecule:key").strip() == "v1"


def test_restart_under_tight_loop_refuses_connections(host):
    figures = ic.restart_under_probe(host, restarts=3)
    ic.record("molecule-selfbind-restart", figures)
    pids = figures["main_pids"]
    assert len(set(pids)) == len(pids), f"a restart did not replace the process: {pids}"
    assert figures["ok"] > 0
    # the control: the measurement does see a closed listener
    assert figures["refused"] > 0, figures
