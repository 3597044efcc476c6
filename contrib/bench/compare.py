#!/usr/bin/env python3
"""Compares two labels of a sitting (contrib/bench/sitting.sh) as a Markdown table.

    contrib/bench/compare.py OUT BEFORE_LABEL AFTER_LABEL
    contrib/bench/compare.py --pairs OUT        (pairs of contrib/bench/sitting.sh)

For each figure: the mean and standard deviation of each side's runs, the difference of the
means relative to BEFORE's, and its 95 % interval (Welch's t). A difference whose interval
holds 0 is within the sitting's noise; otherwise it is "better" or "worse" by the figure's
sense. With --pairs, one table row per pair: the mean of the rounds' differences (after
minus before, run back to back) and its 95 % interval (Student's t over the rounds). Ratios to the same run's reference (Ed25519 verifications, SHA-512) are the figures
to read first: the machine's speed drifts between runs, and the references follow it.
"""
import json
import math
import statistics as st
import sys

# (scenario, figure, value of a loadgen line, format, higher is worse)
FIGURES = [
    ("registration", "registrations/s / Ed25519 verifications/s", lambda s: s["ratio"], "%.3f", False),
    ("registration", "registrations/s", lambda s: s["throughput"], "%.0f", False),
    ("registration", "p99 latency, ms", lambda s: s["latency_ms"]["p99"], "%.1f", True),
    ("registration", "server CPU per registration / one verification", lambda s: s["cpu"]["server"]["ratio"], "%.2f", True),
    ("registration", "server CPU per registration, µs", lambda s: s["cpu"]["server"]["us"], "%.1f", True),
    ("registration", "writer CPU per registration / one verification", lambda s: s["cpu"]["writer"]["ratio"], "%.2f", True),
    ("registration", "server peak RSS, MiB", lambda s: s["server_peak_rss_mib"], "%.1f", True),
    ("registration", "anonymous RSS at the end, MiB", lambda s: s["server_rss_at_end_mib"]["anon"], "%.1f", True),
    ("registration", "file-backed RSS at the end, MiB", lambda s: s["server_rss_at_end_mib"]["file"], "%.1f", True),
    ("upload", "MB/s / reference MB/s", lambda s: s["ratio"], "%.3f", False),
    ("upload", "MB/s", lambda s: s["throughput"], "%.1f", False),
    ("upload", "server CPU per MB / SHA-512 CPU per MB", lambda s: s["cpu"]["server"]["ratio"], "%.2f", True),
    ("upload", "server peak RSS, MiB", lambda s: s["server_peak_rss_mib"], "%.1f", True),
]

# Two-sided 95 % quantiles of Student's t by degrees of freedom.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
       12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04}


def t95(df):
    return next((T95[k] for k in sorted(T95) if df <= k), 1.96)


def paired(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    names = [f"{scenario}: {name}" for scenario, name, _, _, _ in FIGURES]
    print("| pair (before:after) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for pair in pairs:
        cells = []
        for scenario, _, value, _, higher_worse in FIGURES:
            def by_round(side):
                out = {}
                for r in rows:
                    if r["pair"] == pair and r["side"] == side and r["line"].get("scenario") == scenario:
                        try:
                            out[r["round"]] = float(value(r["line"]))
                        except (KeyError, TypeError):
                            pass
                return out
            b, a = by_round("before"), by_round("after")
            rounds = sorted(set(a) & set(b))
            if len(rounds) < 2:
                cells.append("")
                continue
            d = [a[k] - b[k] for k in rounds]
            mb, md = st.mean(b[k] for k in rounds), st.mean(d)
            half = t95(len(d) - 1) * st.stdev(d) / math.sqrt(len(d))
            lo, hi = (md - half) / mb * 100, (md + half) / mb * 100
            mark = "" if lo <= 0 <= hi else (" **worse**" if (md > 0) == higher_worse else " better")
            cells.append(f"{md / mb * 100:+.1f} % ({lo:+.1f} to {hi:+.1f}){mark}")
        print(f"| {pair} | " + " | ".join(cells) + " |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--pairs":
        return paired(sys.argv[2])
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, before, after = sys.argv[1:]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print(f"| figure | {before} (mean ± sd, n) | {after} (mean ± sd, n) | difference, 95 % interval | |")
    print("|---|---|---|---|---|")
    for scenario, name, value, fmt, higher_worse in FIGURES:
        def values(side):
            out = []
            for r in rows:
                if r["side"] == side and r["line"].get("scenario") == scenario:
                    try:
                        out.append(float(value(r["line"])))
                    except (KeyError, TypeError):
                        pass
            return out
        b, a = values(before), values(after)
        if len(b) < 2 or len(a) < 2:
            continue
        mb, ma, sb, sa = st.mean(b), st.mean(a), st.stdev(b), st.stdev(a)
        vb, va = sb * sb / len(b), sa * sa / len(a)
        se = math.sqrt(vb + va)
        df = (vb + va) ** 2 / ((vb * vb / (len(b) - 1) + va * va / (len(a) - 1)) or 1e-300)
        half = t95(df) * se
        lo, hi = (ma - mb - half) / mb * 100, (ma - mb + half) / mb * 100
        if lo <= 0 <= hi:
            verdict = "within the noise"
        else:
            verdict = "worse" if (ma > mb) == higher_worse else "better"
        print(f"| {scenario}: {name} | {fmt % mb} ± {fmt % sb} ({len(b)}) | {fmt % ma} ± {fmt % sa} ({len(a)}) "
              f"| {(ma - mb) / mb * 100:+.1f} % ({lo:+.1f} to {hi:+.1f}) | {verdict} |")


if __name__ == "__main__":
    main()
