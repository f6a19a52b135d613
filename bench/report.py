#!/usr/bin/env python3
"""Renders bench/run.sh's measurements as the Markdown report (bench/results/latest.md).

Usage: report.py RESULTS.tsv META.env RESULTS_DIR
"""
import json
import statistics
import sys
from pathlib import Path

ENDPOINTS = {
    # name: (label, ratio denominator, req/s target, ratio target, p99 target at 64 in ms)
    "health": ("GET /health — framework ceiling", None, None, None, None),
    "categories": ("GET /api/v1/categories", "health", 40_000, 0.5, 10),
    "products_page": ("GET /api/v1/products?category_id= (50)", "health", 25_000, 0.25, 10),
    "product_card": ("GET /api/v1/products/{id}", "health", 40_000, 0.5, 10),
    "orders_my": ("GET /api/v1/orders/my?limit=10", "health", 4_000, None, None),
    "orders_create": ("POST /api/v1/orders (3 lines)", "pgbench", 2_500, 0.5, 40),
    "orders_my_after_burst": ("GET /api/v1/orders/my?limit=10 right after the order burst, not analysed",
                              "orders_my_after_analyze", None, 0.8, None),
    "orders_my_after_analyze": ("GET /api/v1/orders/my?limit=10 after the burst, analysed",
                                None, None, None, None),
    "pgbench": ("pgbench, the order's SQL — database ceiling", None, None, None, None),
    "search": ("GET /api/v1/products?q=<two words> — 100 000 products, uncached",
               "products_page", 2_000, None, 50),
    "admin_orders": ("GET /api/v1/admin/orders?status=<each in turn>&limit=20 — with its total",
                     None, None, None, 20),
}
P99_AT = "64"
# Where a p99 target is set at another number of connections.
P99_AT_FOR = {"admin_orders": "16"}
# How a ratio's denominator is named in the table.
CEILINGS = {"health": "/health", "pgbench": "pgbench", "orders_my_after_analyze": "analysed",
            "products_page": "the catalog page"}
TITLES = {"100k": "100 000 orders", "1m": "1 000 000 orders", "search": "search over 100 000 products"}


def load(results_path):
    rows = []
    for line in Path(results_path).read_text().splitlines():
        fields = line.split("\t") + [""] * 2  # older files lack the CPU columns
        name, conns, rps, p50, p99, rss, errors, socket_errors, busy, cpu, machine = fields[:11]
        rows.append(dict(name=name, conns=conns, rps=int(rps), p50=int(p50), p99=int(p99),
                         rss=int(rss) if rss else None, errors=int(errors or 0),
                         socket_errors=int(socket_errors or 0), busy=int(busy or 0),
                         cpu=int(cpu) if cpu else None, machine=int(machine) if machine else None))
    return rows


def num(n):
    return f"{n:,}".replace(",", " ")


def ms(us):
    return f"{us / 1000:.2f} ms" if us < 10_000 else f"{us / 1000:.1f} ms"


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def main():
    rows = load(sys.argv[1])
    meta = dict(line.split("=", 1) for line in Path(sys.argv[2]).read_text().splitlines() if "=" in line)
    results_dir = Path(sys.argv[3])
    by = {(r["name"], r["conns"]): r for r in rows}
    out = []
    w = out.append

    mode = meta["mode"]
    w(f"# BotShop benchmark: {TITLES[mode]}\n")
    w(f"- Command: `{meta['command']}`")
    w(f"- Date: {meta['date']}, commit {meta['commit']}")
    w(f"- Machine: {meta['machine']}; server, PostgreSQL and wrk share it")
    w(f"- PostgreSQL {meta['postgres']}")
    w(f"- Data: {meta['data']} (generated in {meta['seed_seconds']} s)")
    w(f"- Each figure: wrk (2 threads) or pgbench for {meta['duration']} s, after a warm-up; "
      f"orders use {meta['signed_users']} customers' own signed initData "
      f"(signed in {meta['sign_seconds']} s)")
    if "search_sample" in meta:
        w(f"- Search: random «adjective noun» pairs from bench/lua/search.lua, each matching "
          f"about 55 products, with a random limit of 60–200 so that at most 0.8 % can be "
          f"cache hits; {meta['search_sample']}")
    w(f"- Load average before / after: {meta['load_before']} / {meta['load_after']}\n")

    w("| Endpoint | Conns | req/s | p50 | p99 | Peak RSS | Server CPU | Machine | Ratio | Target | Met |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|")
    noisy = []
    failures = []
    for name, (label, denominator, rps_target, ratio_target, p99_target) in ENDPOINTS.items():
        for r in (r for r in rows if r["name"] == name):
            ratio, ratio_text = None, "—"
            base = by.get((denominator, r["conns"])) if denominator else None
            if base and base["rps"]:
                ratio = r["rps"] / base["rps"]
                ratio_text = f"{ratio:.2f} of {CEILINGS[denominator]}"
            targets, met = [], []
            if rps_target:
                targets.append(f"≥ {num(rps_target)}/s")
                met.append(r["rps"] >= rps_target)
            if ratio_target:
                targets.append(f"≥ {ratio_target}×")
                met.append(ratio is not None and ratio >= ratio_target)
            if p99_target and r["conns"] == P99_AT_FOR.get(name, P99_AT):
                targets.append(f"p99 ≤ {p99_target} ms")
                met.append(r["p99"] <= p99_target * 1000)
            mark = ""
            if r["busy"]:
                mark = " †"
                noisy.append(f"{label} at {r['conns']}")
            if r["errors"] or r["socket_errors"]:
                what = "failed transactions" if name == "pgbench" else "non-2xx answers"
                failures.append(f"{label} at {r['conns']}: {num(r['errors'])} {what}, "
                                f"{num(r['socket_errors'])} socket errors")
                mark += " ‡"
            unit = " tps" if name == "pgbench" else ""
            w(f"| {label}{mark} | {r['conns']} | {num(r['rps'])}{unit} | {ms(r['p50'])} | "
              f"{ms(r['p99'])} | {mb(r['rss']) if r['rss'] is not None else '—'} | "
              f"{str(r['cpu']) + ' µs/req' if r['cpu'] is not None else '—'} | "
              f"{str(r['machine']) + ' %' if r['machine'] is not None else '—'} | {ratio_text} | "
              f"{', '.join(targets) or '—'} | {('yes' if all(met) else 'no') if met else ''} |")
    w("")

    startups = [int(x) for x in meta["startup_ms"].split()]
    startup = statistics.median(startups)
    idle = int(meta["idle_rss_kb"])
    peaks = [r["rss"] for r in rows if r["rss"] is not None]
    peak = max(peaks) if peaks else 0
    hwm = int(meta["peak_hwm_kb"])
    w("| Figure | Measured | Target | Met |")
    w("|---|---:|---|:---:|")
    w(f"| Start-up to a ready `/ready`, migrations applied (median of {len(startups)}: "
      f"{', '.join(map(str, startups))} ms) | {startup:.0f} ms | ≤ 300 ms | "
      f"{'yes' if startup <= 300 else 'no'} |")
    w(f"| Idle RSS after start-up | {mb(idle)} | ≤ 20 MB | {'yes' if idle <= 20 * 1024 else 'no'} |")
    w(f"| Peak RSS under load (highest VmRSS, sampled every 100 ms) | {mb(peak)} | ≤ 40 MB | "
      f"{'yes' if peak <= 40 * 1024 else 'no'} |")
    w(f"| VmHWM at the end (the process's lifetime peak) | {mb(hwm)} | ≤ 40 MB | "
      f"{'yes' if hwm <= 40 * 1024 else 'no'} |")
    w("")

    w("Ratios divide by the ceiling measured in the same run at the same number of "
      "connections: `/health` for reads, pgbench running the order's statements for "
      "`POST /orders`, the catalog page (served from the server's cache) for the uncached "
      "search. p99 targets apply at 64 connections (the admin order list's at 16). Server CPU is the server "
      "process's CPU time (user + system) per answer; Machine is how busy all the cores "
      "were (server, PostgreSQL, wrk and anything else).\n")

    if "import_new_ms" in meta:
        w(import_figures(meta))

    micro = micro_benchmarks(meta.get("criterion_dir"))
    if micro:
        w(micro)

    comparison = orders_my_comparison(rows, mode, results_dir)
    if comparison:
        w(comparison)

    if "burst_orders" in meta:
        w(f"The order burst placed {num(int(meta['burst_orders']))} orders. Autovacuum was off "
          "for `orders` and `order_items` from just before it until the unanalysed "
          "`GET /orders/my` runs had ended, so those ran on the statistics of the generated "
          "data; then the two tables were analysed and the same pages measured again "
          "(\"analysed\"). Both start after a CHECKPOINT. A customer's page of 10 is their "
          "whole history before the burst (10 orders each) and their 10 newest after it.\n")

    baseline = baseline_comparison(rows, meta.get("baseline"))
    if baseline:
        w(baseline)
    w(f"Telegram stub ({meta['telegram']}). Server 5xx answers (from /metrics): {meta['server_5xx']}.")
    if failures:
        w("\n‡ Not every answer was a success: " + "; ".join(failures) + ".")
    if noisy:
        w("\n† Other people's compilers were running during: " + "; ".join(noisy)
          + ". Those figures are noisy; compare ratios rather than req/s, or rerun on a quiet machine.")
    busy_start, busy_end = int(meta["compilers_before"]), int(meta["compilers_after"])
    if (busy_start or busy_end) and not noisy:
        w(f"\nCompilers of other people were running at the start ({busy_start}) or end ({busy_end}) "
          "of the benchmark.")
    elif not noisy:
        w("\nNo other compilers were seen running during the measured runs (sampled every "
          "second); the load average after the run is mostly the benchmark's own (server, "
          "PostgreSQL, wrk).")
    print("\n".join(out))


MICRO = [
    # criterion id, what, target in µs
    ("init_data_verify", "Verifying initData (`InitDataVerifier::verify`)", 2.0),
    ("order_parse_and_price_10_lines", "Validating and pricing a 10-line cart (`OrderDraft::parse` + `price_order`)", None),
    ("product_page/serialize_50_products", "Serialising a page of 50 products (`PageDto<ProductDto>`, serde_json)", None),
]


def import_figures(meta):
    """The catalog import: time and the server's memory, for a new catalog and again."""
    lines = [f"Catalog import (`POST /api/v1/admin/catalog/import`, CSV, one transaction): "
             f"{meta['import_file']}.\n",
             "| Import | Took | RSS before → highest | Answer | Target | Met |",
             "|---|---:|---|---|---|:---:|"]
    for label, what in (("new", "every product new"), ("again", "the same file again")):
        took = int(meta[f"import_{label}_ms"])
        before, peak = (int(x) for x in meta[f"import_{label}_rss_kb"].split())
        report = json.loads(meta[f"import_{label}_report"])
        counts = report.get("products", {})
        answer = ", ".join(f"{k} {num(v)}" for k, v in counts.items())
        lines.append(f"| {what} | {took / 1000:.1f} s | {mb(before)} → {mb(peak)} | products: "
                     f"{answer} | ≤ 10 s | {'yes' if took <= 10_000 else 'no'} |")
    return "\n".join(lines) + "\n"


def micro_benchmarks(criterion_dir):
    """The criterion medians of this run (cargo bench writes them under target/criterion)."""
    if not criterion_dir:
        return ""
    lines = ["| Micro-benchmark (criterion, median) | Time | Target | Met |", "|---|---:|---|:---:|"]
    for bench_id, what, target in MICRO:
        path = Path(criterion_dir) / bench_id / "new" / "estimates.json"
        if not path.exists():
            continue
        us = json.loads(path.read_text())["median"]["point_estimate"] / 1000
        met = ("yes" if us <= target else "no") if target else ""
        lines.append(f"| {what} | {us:.2f} µs | {f'≤ {target:g} µs' if target else '—'} | {met} |")
    return "\n".join(lines) + "\n"


def baseline_comparison(rows, baseline_path):
    """Every line against the same line of the previous run of this mode (req/s, p99)."""
    if not baseline_path or not Path(baseline_path).exists():
        return ""
    theirs = {(r["name"], r["conns"]): r for r in load(baseline_path)}
    commit = Path(baseline_path).with_suffix(".commit")
    label = commit.read_text().strip() if commit.exists() else "unknown commit"
    lines = [f"Against the previous run of this mode ({label}): a line more than 10 % slower "
             "(req/s) is marked.\n",
             "| Endpoint | Conns | req/s before | req/s now | Change | p99 before | p99 now | |",
             "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in rows:
        before = theirs.get((r["name"], r["conns"]))
        if not before or not before["rps"]:
            continue
        change = r["rps"] / before["rps"] - 1
        label_ = ENDPOINTS.get(r["name"], (r["name"],))[0]
        lines.append(f"| {label_} | {r['conns']} | {num(before['rps'])} | {num(r['rps'])} | "
                     f"{change:+.1%} | {ms(before['p99'])} | {ms(r['p99'])} | "
                     f"{'slower' if change < -0.10 else ''} |")
    return "\n".join(lines) + "\n"


def orders_my_comparison(rows, mode, results_dir):
    """The 1.5× check: orders/my p50 with 1 000 000 orders against the 100 000-order run."""
    mine = {r["conns"]: r for r in rows if r["name"] == "orders_my"}
    if not mine:
        return ""
    if mode != "1m":
        return ("`GET /orders/my` p50 with 100 000 orders: "
                + ", ".join(f"{ms(r['p50'])} at {c}" for c, r in mine.items())
                + " (the 1 000 000-order run, `--large`, compares itself with this).\n")
    other = results_dir / "latest-100k.tsv"
    if not other.exists():
        return "`GET /orders/my`: no 100 000-order run in bench/results to compare with; run `bash bench/run.sh` too.\n"
    theirs = {r["conns"]: r for r in load(other) if r["name"] == "orders_my"}
    parts = []
    for conns, r in mine.items():
        if conns in theirs and theirs[conns]["p50"]:
            ratio = r["p50"] / theirs[conns]["p50"]
            parts.append(f"at {conns}: {ms(r['p50'])} vs {ms(theirs[conns]['p50'])} = "
                         f"{ratio:.2f}× ({'within' if ratio <= 1.5 else 'over'} 1.5×)")
    return "`GET /orders/my` p50, 1 000 000 vs 100 000 orders (latest-100k.tsv): " + "; ".join(parts) + ".\n"


if __name__ == "__main__":
    main()
