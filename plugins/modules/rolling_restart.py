#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: rolling_restart
short_description: Restart IronCache under a probing client and prove no connection was refused
version_added: 1.0.0
description:
  - Restarts C(ironcache.service) (never the socket unit) on one host while a background client
    connects to the server in a tight loop (connect, optional AUTH, PING, read the reply, close),
    and reports every figure of that client.
  - "Pre-checks: with O(socket_activation=true) the socket unit must be active and listening
    (otherwise a restart would refuse connections); with O(socket_activation=false) the service
    must be active. The configuration must be accepted by the release that will run
    (C(ironcache check-config))."
  - Runs C(systemctl daemon-reload) first when systemd reports that the unit files changed
    (C(NeedDaemonReload=yes)).
  - "Runs C(systemctl reset-failed) on the service before every restart it makes (also the one
    of a rollback). That clears the unit's start rate counter, so deliberate restarts in quick
    succession never reach systemd's start limit (C(StartLimitBurst=)); only crash restarts
    count toward it. Without that, systemd fails the service with C(start-limit-hit) and the
    socket unit with C(service-start-limit-hit): the listener closes and every client is refused
    until someone runs C(systemctl reset-failed)."
  - After C(systemctl restart --no-block) it waits until a new main process is active, answers
    C(PING) and reports O(expected_version) in C(INFO server), then stops the client.
  - Fails with a precise message when any connection was refused or reset (see
    O(fail_on_refused)), when the new process exits during start-up, reports another version,
    or is not healthy within O(timeout) seconds.
  - With O(rollback=true), a new process that does not become healthy makes the module switch
    the C(current) link under O(install_dir) back to the previous release, restart the service
    on it, and fail anyway, saying what it rolled back to. The previous release is the
    C(releases/<version>) directory named after the version the old process reported before the
    restart; when that is unknown or missing, the release the C(previous) link points at, then
    the most recently modified release directory other than the current one (modification time,
    ties broken by version sort).
  - "A release that crash-loops (exits during start-up, systemd restarts it after C(RestartSec=))
    is detected at its first exit, checked every 20 ms, that is long before systemd gives up
    (the role's unit allows 10 starts in 60 s: about 5 s of a loop). Meanwhile clients are not
    refused: socket activation keeps the listener open and new connections wait in its backlog,
    connected clients (live handover) wait in systemd's fd store with the dataset; the
    rolled-back release takes them over and answers them. A client sees the time from the
    restart to the rolled-back release answering (typically 1-3 s) as latency, unless its own
    timeout is shorter."
  - Uses only the Python standard library on the managed host.
author:
  - IronCache maintainers (@ironcache)
attributes:
  check_mode:
    description: >-
      Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Runs the read-only pre-checks and reports what it would restart; changes nothing.
  diff_mode:
    description: Can show a diff of what changes.
    support: none
options:
  service:
    description: The service unit to restart.
    type: str
    default: ironcache.service
  socket:
    description: The socket unit that holds the listening sockets when O(socket_activation=true).
    type: str
    default: ironcache.socket
  socket_activation:
    description:
      - Whether the service is socket-activated. Only then can a restart queue connections
        instead of refusing them.
      - With V(false) the pre-check wants the service active, and the probe normally reports
        refused connections, which fails the module unless O(fail_on_refused=false).
    type: bool
    default: true
  host:
    description:
      - Address the probe and health checks connect to.
      - Bind-all addresses are mapped to loopback (V(0.0.0.0) to V(127.0.0.1), V(::) to V(::1));
        a leading V(-) (optional bind) is ignored.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port of the server.
    type: int
    default: 6379
  unix_path:
    description: Connect to this unix socket instead of TCP.
    type: path
  password:
    description:
      - The server's C(requirepass), or the password of O(username); sent with C(AUTH) on
        every connection.
    type: str
  username:
    description:
      - An ACL user to authenticate as (C(AUTH username password)) instead of the default
        user; it needs C(PING) and C(INFO). Used only with O(password).
    type: str
  tls:
    description:
      - Connect with TLS (O(port) is then the server's C(tls-port)). The probe and the health
        checks handshake on every connection.
      - The server's certificate is verified against O(tls_ca_file) (the system's CAs when not
        set); its host name is not checked, as the probe connects to an address.
    type: bool
    default: false
  tls_port:
    description:
      - The server's C(tls-port), probed over TLS beside O(port) or O(unix_path) (a second
        client in the same tight loop, its figures in RV(probe_tls)). A refused or reset TLS
        connection fails the module as one on O(port) does (O(fail_on_refused)), and the new
        process must answer C(PING) over TLS too before it counts as healthy.
      - Uses O(tls_ca_file), O(tls_cert_file) and O(tls_key_file).
    type: int
  tls_host:
    description:
      - Address the O(tls_port) probe connects to (mapped as O(host) is); O(host) when not set.
      - For a server whose plain port listens on loopback only while TLS listens elsewhere.
    type: str
  tls_socket:
    description:
      - The socket unit that holds the TLS listeners (the role's C(ironcache-tls.socket)); with
        O(socket_activation=true) and O(tls_port) it must be listening too before the restart.
      - Not checked when not set (a TLS C(ListenStream=) in O(socket)).
    type: str
  tls_ca_file:
    description: CA certificate (PEM) on the managed host that signed the server's certificate.
    type: path
  tls_cert_file:
    description:
      - Client certificate (PEM) on the managed host, for a server with C(tls-auth-clients yes).
      - Goes with O(tls_key_file).
    type: path
  tls_key_file:
    description: Private key of O(tls_cert_file) on the managed host.
    type: path
  expected_version:
    description:
      - Version the new process must report as C(ironcache_version) in C(INFO server).
      - Any version is accepted when not set.
    type: str
  config:
    description:
      - Configuration file given to C(ironcache check-config) before the restart.
      - Set to an empty string to skip the check.
    type: path
    default: /etc/ironcache/ironcache.conf
  ironcache_bin:
    description:
      - The server entry point used for C(check-config).
      - Defaults to C(<install_dir>/current/bin/ironcache).
    type: path
  install_dir:
    description: Directory holding C(releases/<version>/) and the C(current) link (for rollback).
    type: path
    default: /opt/ironcache
  rollback:
    description:
      - Switch C(current) back to the previous release and restart again when the new process
        does not become healthy. The module still fails.
      - Refused connections alone do not trigger a rollback (the new process is healthy).
      - Nothing is rolled back when the old process already ran the current release (a
        configuration-only restart).
    type: bool
    default: false
  timeout:
    description: Seconds the new process has to become healthy after the restart.
    type: float
    default: 30
  probe:
    description: Run the background client during the restart.
    type: bool
    default: true
  probe_max_seconds:
    description:
      - Upper bound for the background client's run time, in seconds. It is stopped as soon as
        the new process is healthy; this only bounds it if something hangs.
    type: float
    default: 120
  fail_on_refused:
    description: Fail when the probe saw any refused or reset connection.
    type: bool
    default: true
  method:
    description:
      - V(restart) runs C(systemctl restart) (the stop-start handover).
      - "V(reload) runs C(systemctl reload) (the unit's C(ExecReload=), C(ironcache reload)): the
        new release loads beside the running process, which serves meanwhile, and takes its
        clients over; clients wait milliseconds whatever the dataset size. A new release that
        fails to load leaves the old process serving and the module fails with the reason. Short
        of memory for two copies of the dataset the server falls back to the stop-start
        handover; RV(path) says which one ran. When the unit file changed (a daemon-reload was
        needed) the module restarts instead: a reloaded process keeps the old unit's sandbox."
    type: str
    choices: [restart, reload]
    default: restart
  only_if_outdated:
    description:
      - Skip the restart (C(changed=false)) when the running process already reports
        O(expected_version) and was started after the last change of the C(current) link, of
        O(config) and of the service's unit file, and systemd does not need a daemon-reload;
        for example because an earlier task or handler restarted it already.
      - Restarts as usual when O(expected_version) is not set.
    type: bool
    default: false
notes:
  - The probe runs on the managed host, so it measures the server's own restart gap, not the
    network.
  - Timeouts of the probe (a connection queued longer than its connect timeout) are reported but
    do not fail the module.
seealso:
  - name: systemd.socket
    description: Socket units, which keep the listening socket open while the service restarts.
    link: https://www.freedesktop.org/software/systemd/man/systemd.socket.html
"""

EXAMPLES = r"""
- name: Restart IronCache without refusing a single connection
  ironcache.ironcache.rolling_restart:
    expected_version: "2.0.0"
  register: restart

- name: Restart after an upgrade, rolling back when the new release does not start
  ironcache.ironcache.rolling_restart:
    port: 6380
    password: "{{ vault_ironcache_password }}"
    expected_version: "{{ ironcache_version }}"
    config: /etc/ironcache/ironcache.conf
    rollback: true
    timeout: 20

- name: Restart while probing the TLS port with a client certificate
  ironcache.ironcache.rolling_restart:
    port: 6380
    tls: true
    tls_ca_file: /etc/ironcache/tls/ca.crt
    tls_cert_file: /etc/ironcache/tls/ironcache.crt
    tls_key_file: /etc/ironcache/tls/ironcache.key

- name: Restart probing the plain port and, beside it, the TLS port held by its own socket unit
  ironcache.ironcache.rolling_restart:
    port: 6379
    tls_port: 6380
    tls_socket: ironcache-tls.socket
    tls_ca_file: /etc/ironcache/tls/ca.crt
    tls_cert_file: /etc/ironcache/tls/ironcache.crt
    tls_key_file: /etc/ironcache/tls/ironcache.key

- name: Measure a self-bound server (expects refused connections, so only report them)
  ironcache.ironcache.rolling_restart:
    socket_activation: false
    fail_on_refused: false
  register: selfbound
"""

RETURN = r"""
msg:
  description: What happened, with the probe's figures; the reason on failure.
  returned: always
  type: str
  sample: "restarted ironcache.service: pid 812 (1.0.0) -> pid 955 (2.0.0) in 412 ms; probe: ..."
old_pid:
  description: Main PID before the restart (0 when the service was not running).
  returned: always
  type: int
  sample: 812
old_version:
  description: Version the old process reported, null when it could not be asked.
  returned: always
  type: str
  sample: "1.0.0"
new_pid:
  description: Main PID of the new process, null when it did not become healthy.
  returned: success
  type: int
  sample: 955
new_version:
  description: Version the new process reports in C(INFO server).
  returned: success
  type: str
  sample: "2.0.0"
restart_ms:
  description: Milliseconds from C(systemctl restart) to the new process answering C(INFO).
  returned: success
  type: float
  sample: 412.3
startup_ms:
  description: The new server's own exec-to-ready time (C(startup_ms) in C(INFO server)).
  returned: success
  type: int
  sample: 160
path:
  description:
    - How the new process took over, C(reload) (it loaded beside the old one) or C(restart) (the
      stop-start handover, also when a reload fell back to it for lack of memory).
  returned: success
  type: str
  sample: reload
daemon_reloaded:
  description: Whether C(systemctl daemon-reload) ran before the restart.
  returned: when not in check mode and a restart was needed
  type: bool
  sample: false
start_failed:
  description:
    - Whether the new process exited during start-up (a release that cannot start, which systemd
      would restart in a loop until its start limit). With O(rollback=true) the module rolled
      back at that first exit.
  returned: when not in check mode and a restart was needed
  type: bool
  sample: false
rolled_back:
  description: Whether the module switched C(current) back to the previous release.
  returned: when not in check mode
  type: bool
  sample: false
rollback:
  description: The rollback performed, null when none.
  returned: when not in check mode
  type: dict
  contains:
    from:
      description: Release C(current) pointed at before the rollback.
      type: str
    to:
      description: Release C(current) points at now.
      type: str
    version:
      description: Version the rolled-back server reports, null when it did not start.
      type: str
    pid:
      description: Main PID of the rolled-back server, null when it did not start.
      type: int
handover:
  description:
    - What the new process took over from the old one through systemd's fd store
      (C(INFO handover)); null when the server does not report it.
  returned: success
  type: dict
  contains:
    source:
      description: C(restart) (clean handover), C(crash), C(disk) (snapshot) or C(none).
      type: str
    connections:
      description: Client connections kept open across the restart.
      type: int
    key_count:
      description:
        - Keys the new process started with.
        - Was C(keys), which Jinja dot notation resolves to the dict method.
      type: int
    bytes:
      description: Size of the state handed over.
      type: int
    load_ms:
      description: Milliseconds the new process took to load it.
      type: float
    total_ms:
      description: Milliseconds from the old process starting the handover to the new one
        having loaded it.
      type: int
    reload_fallback:
      description:
        - Why a reload took the stop-start handover instead (for instance not enough memory
          for a second copy of the dataset, with the figures); null after a reload or restart.
      type: str
probe:
  description: Figures of the background client; null when O(probe=false).
  returned: when not in check mode
  type: dict
  contains:
    attempts:
      description: Connection attempts.
      type: int
    ok:
      description: Attempts answered with C(+PONG).
      type: int
    refused:
      description: Connections refused (C(ECONNREFUSED), or C(ENOENT) for a unix socket).
      type: int
    reset:
      description: Connections reset or closed before the reply.
      type: int
    timeouts:
      description: Attempts that timed out.
      type: int
    other_errors:
      description: Attempts that failed otherwise.
      type: int
    p50_ms:
      description: Median connect+PING latency in milliseconds.
      type: float
    p99_ms:
      description: 99th percentile latency in milliseconds.
      type: float
    max_ms:
      description: Largest latency in milliseconds.
      type: float
    longest_gap_ms:
      description: Longest time without a successful reply, in milliseconds.
      type: float
    first_error:
      description: The first error seen, null when none.
      type: str
  sample:
    attempts: 1520
    ok: 1520
    refused: 0
    reset: 0
    timeouts: 0
    other_errors: 0
    p50_ms: 0.4
    p99_ms: 1.9
    max_ms: 221.5
    longest_gap_ms: 223.0
    first_error: null
probe_tls:
  description:
    - Figures of the background client on O(tls_port), the same fields as RV(probe); null
      without O(tls_port) or with O(probe=false).
  returned: when not in check mode
  type: dict
  sample:
    attempts: 610
    ok: 610
    refused: 0
    reset: 0
    timeouts: 0
    other_errors: 0
    p50_ms: 1.2
    p99_ms: 3.8
    max_ms: 230.1
    longest_gap_ms: 232.0
    first_error: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ironcache.ironcache.plugins.module_utils.ironcache_rolling import (
    RollingError,
    RollingRestart,
)

try:
    from ansible_collections.ironcache.ironcache.plugins.module_utils.ironcache_probe import (
        ProbeError,
        Prober,
        tls_context,
    )
    PROBE_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - the probe ships with the collection
    Prober = ProbeError = tls_context = None
    PROBE_IMPORT_ERROR = exc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", default="ironcache.service"),
            socket=dict(type="str", default="ironcache.socket"),
            socket_activation=dict(type="bool", default=True),
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=6379),
            unix_path=dict(type="path"),
            password=dict(type="str", no_log=True),
            username=dict(type="str", no_log=True),
            tls=dict(type="bool", default=False),
            tls_port=dict(type="int"),
            tls_host=dict(type="str"),
            tls_socket=dict(type="str"),
            tls_ca_file=dict(type="path"),
            tls_cert_file=dict(type="path"),
            tls_key_file=dict(type="path", no_log=False),
            expected_version=dict(type="str"),
            config=dict(type="path", default="/etc/ironcache/ironcache.conf"),
            ironcache_bin=dict(type="path"),
            install_dir=dict(type="path", default="/opt/ironcache"),
            rollback=dict(type="bool", default=False),
            timeout=dict(type="float", default=30),
            probe=dict(type="bool", default=True),
            probe_max_seconds=dict(type="float", default=120),
            fail_on_refused=dict(type="bool", default=True),
            only_if_outdated=dict(type="bool", default=False),
            method=dict(type="str", default="restart", choices=["restart", "reload"]),
        ),
        supports_check_mode=True,
    )
    if module.params["probe"] and Prober is None:
        module.fail_json(msg="cannot import the ironcache_probe module_utils: %s"
                         % PROBE_IMPORT_ERROR)

    systemctl = module.get_bin_path("systemctl", required=True)

    journalctl = module.get_bin_path("journalctl")

    def run_command(argv):
        if argv and argv[0] == "systemctl":
            argv = [systemctl] + list(argv[1:])
        elif argv and argv[0] == "journalctl":
            if not journalctl:
                return 1, "", "journalctl not found"
            argv = [journalctl] + list(argv[1:])
        return module.run_command(argv)

    tls = tls_port_ctx = None
    if module.params["tls"] or module.params["tls_port"]:
        if tls_context is None:
            module.fail_json(msg="cannot import the ironcache_probe module_utils: %s"
                             % PROBE_IMPORT_ERROR)
        if module.params["tls"] and module.params["unix_path"]:
            module.fail_json(msg="tls and unix_path exclude each other: TLS listens on a TCP port")
        if module.params["tls_port"] is not None and not 0 < module.params["tls_port"] < 65536:
            module.fail_json(msg="tls_port must be 1-65535, got %s" % module.params["tls_port"])
        try:
            ctx = tls_context(module.params["tls_ca_file"], module.params["tls_cert_file"],
                              module.params["tls_key_file"])
        except ProbeError as e:
            module.fail_json(msg="cannot probe over TLS: %s" % e)
        tls = ctx if module.params["tls"] else None
        tls_port_ctx = ctx if module.params["tls_port"] else None
    elif module.params["tls_ca_file"] or module.params["tls_cert_file"]:
        module.fail_json(msg="tls_ca_file and tls_cert_file need tls=true or tls_port")

    restart = RollingRestart(module.params, run_command, prober_factory=Prober, tls=tls,
                             tls_port_ctx=tls_port_ctx)
    try:
        failed, result = restart.run(check_mode=module.check_mode)
    except RollingError as e:
        module.fail_json(msg=str(e), changed=False)
    for w in restart.warnings:
        module.warn(w)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
