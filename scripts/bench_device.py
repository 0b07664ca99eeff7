#!/usr/bin/env python3
"""Runs `dcgka bench device` at several import batch sizes and plots envelopes per second
against the in-memory core (BENCHMARKS.md, "The device"). Installs matplotlib with pip when it
is missing.

    python3 scripts/bench_device.py --binary .build-release/release/dcgka \
        --csv Benchmarks/results/device-bench.csv --plot Benchmarks/results/device-import.png
"""
import argparse
import csv
import json
import subprocess
import sys


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build-release/release/dcgka")
    parser.add_argument("--batches", default="16,64,256,512,1024,2048,4096")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args()
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        out = subprocess.run([args.binary, "bench", "device", "--batch", str(batch), "--groups", "100", "--json"],
                             check=True, capture_output=True, text=True).stdout
        report = json.loads(out)
        rows.append(report)
        print(f"batch {batch}: device {report['device_envelopes_per_second']:.0f}/s, "
              f"core {report['core_envelopes_per_second']:.0f}/s, overhead {report['storage_overhead']:.2f}x", flush=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    plt = ensure_matplotlib()
    batches = [r["import_batch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(batches, [r["device_envelopes_per_second"] for r in rows], "o-", label="device (SQLite, every check)")
    ax.plot(batches, [r["core_envelopes_per_second"] for r in rows], "s--", label="in-memory core, same envelopes")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("envelopes per write transaction")
    ax.set_ylabel("envelopes / s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Importing a {rows[0]['members']}-member group's {rows[0]['envelopes']}-envelope history")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
