#!/usr/bin/env python3
"""Runs `dcgka bench relay` (BENCHMARKS.md, "The relay"): one full run per store, then a sweep
of the paced accept-to-ack rate, and plots ack latency against the rate. Installs matplotlib
with pip when it is missing. A PostgreSQL store is used only when --postgres URL is given (the
database must exist and be empty; the script does not start a server).

    python3 scripts/bench_relay.py --binary .build-release/release/dcgka \
        [--postgres postgres://dcgka@127.0.0.1:55433/bench] \
        --csv Benchmarks/results/relay-bench.csv --plot Benchmarks/results/relay-ack.png
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


def run(binary, extra):
    out = subprocess.run([binary, "bench", "relay", "--json"] + extra, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reset(url):
    """Empties the benchmark database (every run starts from no groups)."""
    base, _, name = url.rpartition("/")
    subprocess.run(["psql", base + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build-release/release/dcgka")
    parser.add_argument("--postgres", help="postgres://USER@HOST:PORT/DB for the PostgreSQL runs")
    parser.add_argument("--rates", default="250,500,1000,2000,4000")
    parser.add_argument("--csv", default="Benchmarks/results/relay-bench.csv")
    parser.add_argument("--plot", default="Benchmarks/results/relay-ack.png")
    args = parser.parse_args()
    stores = [("sqlite", [])] + ([("postgresql", ["--store", args.postgres])] if args.postgres else [])
    rows = []
    for name, flags in stores:
        if name == "postgresql":
            reset(args.postgres)
        full = run(args.binary, flags)
        full["run"] = "full"
        rows.append(full)
        print(json.dumps(full), flush=True)
        for rate in [int(r) for r in args.rates.split(",")]:
            if name == "postgresql":
                reset(args.postgres)
            point = run(args.binary, flags + ["--envelopes", "4000", "--readers", "0", "--idle", "0", "--paced-rate", str(rate)])
            point["run"] = "sweep"
            rows.append(point)
            print(json.dumps(point), flush=True)
    keys = sorted({k for row in rows for k in row})
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    plt = ensure_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, _ in stores:
        sweep = [r for r in rows if r["store"] == name and r["run"] == "sweep"]
        rates = [r["paced_rate"] for r in sweep]
        ax.plot(rates, [r["ack_p50_ms"] for r in sweep], marker="o", label=f"{name} p50")
        ax.plot(rates, [r["ack_p99_ms"] for r in sweep], marker="s", linestyle="--", label=f"{name} p99")
    ax.axhline(10, color="gray", linewidth=0.8, linestyle=":", label="target p99 at 1,000/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("envelopes per second, one link, one envelope per message")
    ax.set_ylabel("accept-to-ack latency (ms)")
    ax.set_title("dcgka relay: durable accept-to-ack latency (2 cores)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.csv} and {args.plot}")


if __name__ == "__main__":
    main()
