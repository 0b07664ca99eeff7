#!/usr/bin/env python3
"""Plots `dcgka bench` results next to the Java prototype's, log-log like the paper's Figures 5 and 6.

Usage:
    python3 scripts/plot_benchmarks.py [--ours Benchmarks/results/dcgka-bench.csv]
        [--floor Benchmarks/results/crypto-floor.csv] [--reference ../shared/reference]
        [--out Benchmarks/results] [--markdown Benchmarks/results/comparison.md]

Writes cpu.png (sender and recipient CPU time per operation), bytes.png (bytes per operation),
floor.png (our CPU time over the crypto floor) and, with --markdown, the side-by-side table used
in BENCHMARKS.md. Installs matplotlib with pip when it is missing.
"""
import argparse
import csv
import os
import subprocess
import sys

OPERATIONS = ["create", "update", "add", "remove", "message"]
COLORS = {"create": "tab:purple", "update": "tab:blue", "add": "tab:green", "remove": "tab:red", "message": "tab:orange"}


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    table = {}
    for row in rows:
        table[(int(row["group_size"]), row["operation"])] = row
    return table


def num(row, key):
    if row is None:
        return None
    value = row.get(key, "")
    if value in ("", None, "nan"):
        return None
    return float(value)


def series(table, operation, key):
    points = sorted((n, num(row, key)) for (n, op), row in table.items() if op == operation and num(row, key) is not None)
    return [p[0] for p in points], [p[1] for p in points]


def plot_cpu(plt, ours, java, paper, out):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, key, title in [
        (axes[0], "sender_cpu_ms_mean", "Sender (processing what comes back; prototype convention)"),
        (axes[1], "recipient_cpu_ms_mean", "Each other member"),
    ]:
        for op in OPERATIONS:
            x, y = series(ours, op, key)
            if x:
                ax.plot(x, y, "o-", color=COLORS[op], label=f"ours {op}")
            x, y = series(java, op, key)
            if x:
                ax.plot(x, y, "s--", color=COLORS[op], alpha=0.55, label=f"Java (this machine) {op}")
        if key == "sender_cpu_ms_mean":
            for op in ["update", "add", "remove", "create"]:
                x, y = series(ours, op, "sender_total_cpu_ms_mean")
                if x:
                    ax.plot(x, y, ":", color=COLORS[op], label=f"ours {op}, generation included")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("group size n")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("thread CPU time per member (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    picked = [(h, l) for h, l in zip(handles, labels) if "generation" in l]
    if picked:
        axes[0].legend([h for h, _ in picked], [l for _, l in picked], fontsize=7, loc="upper left")
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle("CPU time per operation (cf. the paper's Figure 5)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cpu.png"), dpi=120)
    plt.close(fig)


def plot_bytes(plt, ours, java, out):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for op in OPERATIONS:
        x, y = series(ours, op, "total_bytes_mean")
        if x:
            ax.plot(x, y, "o-", color=COLORS[op], label=f"ours {op}")
        x, y = series(java, op, "total_bytes_mean")
        if x:
            ax.plot(x, y, "s--", color=COLORS[op], alpha=0.55, label=f"Java {op}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("group size n")
    ax.set_ylabel("bytes handed to the network per operation (all members)")
    ax.set_title("Network traffic per operation (cf. the paper's Figure 6)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bytes.png"), dpi=120)
    plt.close(fig)


def plot_floor(plt, floor_path, out):
    with open(floor_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["ratio"] not in ("", "nan")]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    styles = {"sender_total": "o-", "recipient": "s--", "added_member": "^:"}
    for op in ["create", "update", "add", "remove"]:
        for role, style in styles.items():
            pts = sorted((int(r["group_size"]), float(r["ratio"])) for r in rows if r["operation"] == op and r["role"] == role)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=COLORS[op], label=f"{op} {role}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(1.5, color="grey", linewidth=0.8, linestyle="--", label="target 1.5x")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("group size n")
    ax.set_ylabel("our CPU time / crypto floor")
    ax.set_title("Distance to the public-key floor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "floor.png"), dpi=120)
    plt.close(fig)


def ratio(a, b):
    if a is None or b in (None, 0):
        return ""
    return f"{a / b:.2f}"


def fmt(value, digits=3):
    if value is None:
        return ""
    return f"{value:.{digits}f}" if digits else f"{value:.0f}"


def markdown(ours, java, paper, path):
    lines = [
        "| n | operation | sender ms (ours) | Java | ratio | sender incl. generation | recipient ms (ours) | Java | ratio | paper | bytes (ours) | Java | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (n, op) in sorted(ours, key=lambda k: (k[0], OPERATIONS.index(k[1]))):
        o, j, p = ours[(n, op)], java.get((n, op)), paper.get((n, op))
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                n, op,
                fmt(num(o, "sender_cpu_ms_mean")), fmt(num(j, "sender_cpu_ms_mean")),
                ratio(num(o, "sender_cpu_ms_mean"), num(j, "sender_cpu_ms_mean")),
                fmt(num(o, "sender_total_cpu_ms_mean")),
                fmt(num(o, "recipient_cpu_ms_mean")), fmt(num(j, "recipient_cpu_ms_mean")),
                ratio(num(o, "recipient_cpu_ms_mean"), num(j, "recipient_cpu_ms_mean")),
                fmt(num(p, "recipient_cpu_ms_mean"), 2),
                fmt(num(o, "total_bytes_mean"), 0), fmt(num(j, "total_bytes_mean"), 0),
                ratio(num(o, "total_bytes_mean"), num(j, "total_bytes_mean")),
            )
        )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ours", default=os.path.join(root, "Benchmarks/results/dcgka-bench.csv"))
    parser.add_argument("--floor", default=os.path.join(root, "Benchmarks/results/crypto-floor.csv"))
    parser.add_argument("--reference", default=os.path.join(root, "../shared/reference"))
    parser.add_argument("--out", default=os.path.join(root, "Benchmarks/results"))
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()

    ours = read_rows(args.ours)
    java = read_rows(os.path.join(args.reference, "java-this-machine.csv"))
    paper = read_rows(os.path.join(args.reference, "paper-java-eval.csv"))
    os.makedirs(args.out, exist_ok=True)
    if args.markdown:
        markdown(ours, java, paper, args.markdown)
    plt = ensure_matplotlib()
    plot_cpu(plt, ours, java, paper, args.out)
    plot_bytes(plt, ours, java, args.out)
    if os.path.exists(args.floor):
        plot_floor(plt, args.floor, args.out)
    print(f"wrote plots to {args.out}")


if __name__ == "__main__":
    main()
