#!/usr/bin/env python3
"""tests/bench/fio_value.py JSON SPEC... — prints numbers from a fio
--output-format=json result, one per SPEC, separated by spaces.

    SPEC   [JOB:]DIR:FIELD
    JOB    only the jobs of that name (with --group_reporting, the first
           job's name of each group); default: all jobs, summed
    DIR    read | write | sync (the latencies of fsync calls of --fsync=N)
    FIELD  iops | mbps (bw_bytes / 10^6) | runtime_ms
           | p50_us | p99_us (completion latency percentiles of DIR, from
             clat_ns, or lat_ns for sync; needs exactly one matching job,
             so use --group_reporting)

Fails (exit 1) if fio reported an error for any job, a SPEC matches no job,
or a matched direction moved no I/O.
"""
import json
import sys

PERCENTILES = {"p50_us": "50.000000", "p99_us": "99.000000"}


def value(jobs, spec):
    parts = spec.split(":")
    if len(parts) == 2:
        name, (ddir, field) = None, parts
    elif len(parts) == 3:
        name, ddir, field = parts
    else:
        sys.exit("bad spec %r" % spec)
    if name is not None:
        jobs = [j for j in jobs if j.get("jobname") == name]
    if not jobs:
        sys.exit("%s: no job named %s" % (spec, name))
    if ddir not in ("read", "write", "sync"):
        sys.exit("%s: unknown direction %s" % (spec, ddir))
    if any(ddir not in j for j in jobs):
        sys.exit("%s: fio reported no %s section" % (spec, ddir))
    if sum(j[ddir]["total_ios"] for j in jobs) == 0:
        sys.exit("%s: fio did no %s I/O" % (spec, ddir))
    if field in PERCENTILES:
        if len(jobs) != 1:
            sys.exit("%s: percentiles of %d jobs (use --group_reporting)" % (spec, len(jobs)))
        lat = jobs[0][ddir].get("lat_ns" if ddir == "sync" else "clat_ns", {})
        pct = lat.get("percentile", {})
        if PERCENTILES[field] not in pct:
            sys.exit("%s: fio reported no %s percentile" % (spec, PERCENTILES[field]))
        return pct[PERCENTILES[field]] / 1000.0
    if ddir == "sync":
        sys.exit("%s: only percentiles for sync" % spec)
    if field == "iops":
        return sum(j[ddir]["iops"] for j in jobs)
    if field == "mbps":
        return sum(j[ddir]["bw_bytes"] for j in jobs) / 1e6
    if field == "runtime_ms":
        return max(j[ddir]["runtime"] for j in jobs)
    sys.exit("%s: unknown field %s" % (spec, field))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        text = f.read()
    # fio may print warnings before the JSON document
    data = json.loads(text[text.index("{"):])
    jobs = data["jobs"]
    if any(j.get("error", 0) for j in jobs):
        sys.exit("fio reported an error: %s" % [j.get("error") for j in jobs])
    print(" ".join("%.3f" % value(jobs, spec) for spec in sys.argv[2:]))


if __name__ == "__main__":
    main()
