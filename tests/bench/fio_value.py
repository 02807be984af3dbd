#!/usr/bin/env python3
"""tests/bench/fio_value.py JSON DIR FIELD — prints one number from a fio
--output-format=json result (all jobs summed; with --group_reporting there
is one).

    DIR    read | write
    FIELD  iops | mbps (bw_bytes / 10^6) | runtime_ms

Fails (exit 1) if fio reported an error for any job or moved no data.
"""
import json
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, ddir, field = sys.argv[1:]
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document
    data = json.loads(text[text.index("{"):])
    jobs = data["jobs"]
    if any(j.get("error", 0) for j in jobs):
        sys.exit("fio reported an error: %s" % [j.get("error") for j in jobs])
    total_ios = sum(j[ddir]["total_ios"] for j in jobs)
    if total_ios == 0:
        sys.exit("fio did no %s I/O" % ddir)
    if field == "iops":
        value = sum(j[ddir]["iops"] for j in jobs)
    elif field == "mbps":
        value = sum(j[ddir]["bw_bytes"] for j in jobs) / 1e6
    elif field == "runtime_ms":
        value = max(j[ddir]["runtime"] for j in jobs)
    else:
        sys.exit("unknown field %s" % field)
    print("%.3f" % value)


if __name__ == "__main__":
    main()
