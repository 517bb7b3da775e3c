"""Backlog sizing: a requested backlog above net.core.somaxconn is clamped to it, with a warning."""

import os
import re

import ironcache_checks as ic


def test_somaxconn_of_the_instance(host):
    assert ic.somaxconn(host) == 128


def test_backlog_clamped_to_somaxconn(host):
    requested, limit, expected = ic.expected_backlog(host)
    assert (requested, limit, expected) == (1024, 128, 128)
    shown = int(host.check_output("systemctl show -p Backlog --value ironcache.socket").strip())
    send_qs = [ic.send_q(line) for line in ic.listen_lines(host)]
    ic.record("molecule-backlog", {"requested": requested, "somaxconn": limit,
                                   "Backlog": shown, "ss_send_q": send_qs})
    assert shown == 128
    assert send_qs and all(q == 128 for q in send_qs)


def test_unit_file_says_128(host):
    unit = host.file("/etc/systemd/system/ironcache.socket").content_string
    assert re.search(r"^Backlog=128$", unit, re.M), unit


def test_converge_warned_about_the_clamp():
    path = os.environ["IRONCACHE_CONVERGE_LOG"]
    with open(path, encoding="utf-8") as fh:
        log = fh.read()
    assert "clamped" in log, f"no 'clamped' in {path}"


def test_serves_socket_activated(host):
    assert host.service(ic.SOCKET).is_running
    assert ic.info_server(host)["socket_activated"] == "1"
    assert ic.redis_cli(host, "PING").strip() == "PONG"
