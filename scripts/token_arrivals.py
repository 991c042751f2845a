#!/usr/bin/env python3
"""Reads moe-bench --token-arrivals files ("REQUEST UNIX_SECONDS TOKENS" per
response) for the soak and rebalance scripts.

  token_arrivals.py gaps ARRIVALS INSTANT...
      For each instant, every stream running then (a token before it and one
      after) waits from it to its next token: prints the count, p50, p99 and
      max of those waits in ms.
  token_arrivals.py rate ARRIVALS START END
      Output tokens per second that arrived in [START, END).
"""
import sys


def load(path):
    streams = {}
    for line in open(path):
        request, time, tokens = line.split()
        streams.setdefault(int(request), []).append((float(time), int(tokens)))
    for arrivals in streams.values():
        arrivals.sort()
    return streams


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def gaps(streams, instants):
    waits = []
    for instant in instants:
        for arrivals in streams.values():
            if arrivals[0][0] > instant or arrivals[-1][0] <= instant:
                continue
            after = next(t for t, _ in arrivals if t > instant)
            waits.append(1000.0 * (after - instant))
    return waits


def main(argv):
    if len(argv) >= 3 and argv[1] == "gaps":
        waits = gaps(load(argv[2]), [float(t) for t in argv[3:]])
        print(f"{len(waits)} waits, p50 {percentile(waits, 50):.0f} ms, "
              f"p99 {percentile(waits, 99):.0f} ms, "
              f"max {max(waits, default=float('nan')):.0f} ms")
        return 0
    if len(argv) == 5 and argv[1] == "rate":
        start, end = float(argv[3]), float(argv[4])
        tokens = sum(k for arrivals in load(argv[2]).values()
                     for t, k in arrivals if start <= t < end)
        print(f"{tokens / (end - start):.1f}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
