#!/usr/bin/env python3
"""Interleaved A/B timing of two kubectl-ds builds, run by `scripts/bench ab`.

hyperfine times one command after the other, so a change in the machine's background load
between two commands' runs shows up as a difference between the builds. Here every round runs
each command once with each build, in alternating order, and the ratio of the medians (and of
the minimums) is reported. Arguments: LABEL_A BIN_A LABEL_B BIN_B ROUNDS, then one command per
argument (the words after the binary, space-separated). Prints one JSON object.
"""
import json
import subprocess
import sys
import time

label_a, bin_a, label_b, bin_b, rounds = sys.argv[1:6]
commands = [c.split() for c in sys.argv[6:]]
rounds = int(rounds)


def run(binary, args):
    t0 = time.monotonic()
    r = subprocess.run([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode not in (0, 1, 9):
        raise SystemExit(f"{binary} {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()[:300]}")
    return time.monotonic() - t0


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


out = []
for args in commands:
    a, b = [], []
    run(bin_a, args)  # warm-up
    run(bin_b, args)
    for i in range(rounds):
        order = [(bin_a, a), (bin_b, b)] if i % 2 == 0 else [(bin_b, b), (bin_a, a)]
        for binary, times in order:
            times.append(run(binary, args))
    out.append({
        "command": " ".join(args),
        label_a: {"median": median(a), "min": min(a)},
        label_b: {"median": median(b), "min": min(b)},
        "medianRatio": median(b) / median(a),
        "minRatio": min(b) / min(a),
        "pairedMedianRatio": median([y / x for x, y in zip(a, b)]),
    })
    print(f"bench: ab: {' '.join(args)}: {label_b}/{label_a} median {out[-1]['medianRatio']:.3f}, "
          f"min {out[-1]['minRatio']:.3f}, paired {out[-1]['pairedMedianRatio']:.3f}", file=sys.stderr, flush=True)
print(json.dumps(out))
