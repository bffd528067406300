#!/usr/bin/env python3
"""Print a Markdown table of criterion medians: `criterion_table.py target/criterion [group ...]`.

Reads each benchmark's new/estimates.json (median point estimate) and
benchmark.json (throughput), so the table is exactly what the last run measured.
"""
import json
import pathlib
import sys


def human_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def human_rate(per_second, unit):
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {prefix}{unit}/s"
    return f"{per_second:.3g} {unit}/s"


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    groups = set(sys.argv[2:])
    rows = []
    for meta_path in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(meta_path.read_text())
        if groups and meta["group_id"] not in groups:
            continue
        estimates = json.loads((meta_path.parent / "estimates.json").read_text())
        median_ns = estimates["median"]["point_estimate"]
        throughput = meta.get("throughput") or {}
        rate = ""
        if "Elements" in throughput:
            rate = human_rate(throughput["Elements"] / median_ns * 1e9, "elem")
        elif "Bytes" in throughput:
            rate = human_rate(throughput["Bytes"] / median_ns * 1e9, "B")
        rows.append((meta["full_id"], human_time(median_ns), rate))
    print("| benchmark | median time per iteration | median throughput |")
    print("|---|---|---|")
    for name, time, rate in rows:
        print(f"| `{name}` | {time} | {rate} |")


if __name__ == "__main__":
    main()
