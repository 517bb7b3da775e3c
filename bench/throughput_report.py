"""The text report of throughput.py: the ops/s table, server CPU per request, targets, memory.

It reads the report dictionary throughput.py also writes as JSON (`--json`, report.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchlib.common import ratio


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1048576:.1f} MiB"


def name(row: dict[str, Any]) -> str:
    return row["test"] + ("+tls" if row.get("tls") else "")


def render_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    ic, rd = report["ironcache"], report["redis"]
    head = (
        f"IronCache {ic.get('version', '?')} (python {ic.get('python_version', '?')}, "
        f"uvloop {'yes' if ic.get('uvloop') else 'no'}, "
        f"hiredis {'yes' if ic.get('hiredis') else 'no'}) "
        f"vs {rd.get('label', 'Redis')} {rd.get('version', '?')}"
    )
    cpus = (
        f"cores: {m['cpus']}; servers pinned to cpu {m['server_cpu']}, "
        f"redis-benchmark to cpu {m['client_cpu']}"
    )
    columns = (
        f"{'test':<9}{'pipeline':>9}{'clients':>8}{'requests':>10}"
        f"{'IronCache ops/s':>17}{'Redis ops/s':>14}{'ratio':>7}{'bg':>6}  target"
    )
    out = [
        head,
        cpus,
        f"load average before: {m['load_before']}  after: {m['load_after']}",
        f"rounds: {report['params']['rounds']} (best round of each test shown)",
        "",
        columns,
    ]
    for r in report["results"]:
        rt = r["ratio"]
        tgt = r["target"]
        if tgt is None:  # the TLS rows: a ratio, no target
            status = ""
        else:
            status = "-" if rt is None else ("met" if rt >= tgt else "MISSED")
            status = f">={tgt:.2f} {status}"
        out.append(
            f"{name(r):<9}{r['pipeline']:>9}{r['clients']:>8}{r['requests']:>10}"
            f"{r['ironcache_rps']:>17,.0f}{r['redis_rps']:>14,.0f}"
            f"{(f'{rt:.2f}' if rt is not None else '-'):>7}"
            f"{(f'{bg:.2f}' if (bg := r.get('background_cores')) is not None else '-'):>6}"
            f"  {status}"
        )
    out += [
        "bg: CPU (in cores) used by other processes on this machine during the counted runs",
        "+tls: both servers over TLS (their tls-port, redis-benchmark --tls), no target",
        "",
        "server CPU per request (what a request costs each server, whatever else runs here;",
        "capacity ratio = Redis us / IronCache us, the ops/s ratio both would reach CPU-bound):",
        f"{'test':<9}{'pipeline':>9}{'IronCache us':>14}{'Redis us':>10}{'capacity ratio':>16}",
    ]
    for r in report["results"]:
        a, b, c = (
            r.get("ironcache_cpu_us_per_request"),
            r.get("redis_cpu_us_per_request"),
            r.get("cpu_capacity_ratio"),
        )
        out.append(
            f"{name(r):<9}{r['pipeline']:>9}"
            f"{(f'{a:.2f}' if a else '-'):>14}{(f'{b:.2f}' if b else '-'):>10}"
            f"{(f'{c:.2f}' if c else '-'):>16}"
        )
    out.append("")
    for t in report["targets"]:
        verdict = "met" if t["met"] else "NOT met"
        out.append(
            f"target -P {t['pipeline']}: IronCache >= {t['target']:.2f}x Redis: {verdict} "
            f"(min {t['min_ratio']:.2f} {t['min_test']}, geometric mean {t['geomean_ratio']:.2f})"
        )
    for w in report.get("warnings", []):
        out.append(f"warning: {w}")
    mem = report.get("memory")
    if mem:
        i, r = mem["ironcache"], mem["redis"]
        out += [
            "",
            f"memory after SET of {i['keys']:,} keys with {i['value_size']}-byte values:",
            f"{'':<24}{'IronCache':>14}{'Redis':>14}{'ratio':>8}",
        ]
        for label, key, f in (
            ("used_memory", "used_memory", fmt_bytes),
            ("used_memory (empty)", "used_memory_empty", fmt_bytes),
            ("RSS (VmRSS)", "rss", fmt_bytes),
            ("RSS (empty)", "rss_empty", fmt_bytes),
            ("used_memory per key", "used_memory_per_key", lambda v: f"{v:.0f} B"),
            ("RSS growth per key", "rss_per_key", lambda v: f"{v:.0f} B"),
        ):
            a, b = i.get(key), r.get(key)
            rt = ratio(a, b)
            out.append(
                f"{label:<24}{(f(a) if a is not None else '-'):>14}"
                f"{(f(b) if b is not None else '-'):>14}"
                f"{(f'{rt:.2f}' if rt is not None else '-'):>8}"
            )
    zmem = (mem or {}).get("zset")
    if zmem:
        i, r = zmem["ironcache"], zmem["redis"]
        out += [
            "",
            f"memory of one sorted set of {i['members']:,} members (ZADD, 17-byte members):",
            f"{'':<24}{'IronCache':>14}{'Redis':>14}{'ratio':>8}",
        ]
        for label, key in (
            ("used_memory per member", "used_memory_per_member"),
            ("RSS growth per member", "rss_per_member"),
        ):
            a, b = i.get(key), r.get(key)
            rt = ratio(a, b)
            out.append(
                f"{label:<24}{(f'{a:.0f} B' if a is not None else '-'):>14}"
                f"{(f'{b:.0f} B' if b is not None else '-'):>14}"
                f"{(f'{rt:.2f}' if rt is not None else '-'):>8}"
            )
    if report.get("profile"):
        names = ", ".join(Path(f).name for f in report["profile"]["files"])
        out += ["", f"profile ({report['profile']['kind']}, in the logs directory): {names}"]
    out.append(f"logs: {report['out_dir']}")
    return "\n".join(out)
