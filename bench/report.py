"""scripts/bench.sh's bookkeeping: turns side-by-side's JSON into figure records (one JSON
object a line in build/bench-results/), prints them, judges the goals, and prints the
summary table. Not a benchmark; standard library only.

    report.py meta                               figure metadata from the F_* environment
    report.py skip META REASON                   a record for a figure that did not run
    report.py figure META SBS_JSON RC TRIPLES    a record from one side-by-side --json run
    report.py show RECORD                        print one record
    report.py summary RESULTS.jsonl MODE RUNS    the summary table
    report.py sbs side-by-side's arguments       a stand-in for side-by-side, used only
                                                 when ../shared/tools is absent

Ratios are side-by-side's: how many times better braid is (peer/braid for a figure where
lower is better, braid/peer where higher is). Goals (GOALSPEC, ';'-separated):
    ratio>=X:a,b   braid's ratio to each of the peers a, b is >= X (ratio>X: strictly)
    eff>=X:label   parallel efficiency = ratio to `label` (braid's own single-thread run)
                   / NCPU is >= X
    value<=X       braid's median is <= X (in the figure's unit)
A goal whose peers are all absent is "n/a"; a figure with goals is met when every goal
that could be judged is.
"""
import json
import os
import sys
import time


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e9:
        return "%.3g G" % (v / 1e9)
    if a >= 1e6:
        return "%.3g M" % (v / 1e6)
    if a >= 1e4:
        return "%.3g k" % (v / 1e3)
    if a >= 100:
        return "%.0f" % v
    return "%.3g" % v


def fmt_ratio(r, width):
    if r is None:
        return "-".rjust(width)
    return (("%.2fx" % r) if r >= 0.1 else ("%.3gx" % r)).rjust(width)


def unit_of(metric):
    m = metric.rpartition("/")[2]
    return {"ns_per_op": "ns/op", "seconds": "s", "items_per_s": "items/s",
            "tasks_per_s": "tasks/s", "p50_us": "us", "p99_us": "us",
            "median_us": "us"}.get(m, m)


def meta():
    e = os.environ
    rec = {
        "figure": e["F_ID"], "tags": e["F_TAGS"].split(), "better": e["F_DIR"],
        "title": e["F_TITLE"], "scale": e.get("F_SCALE", ""), "goal": e.get("F_GOAL", ""),
        "goal_text": e.get("F_GOALTEXT", ""), "peers_absent": e.get("SKIPPED", "").split(),
        "ncpu": int(e.get("NCPU", "1")), "mode": e.get("MODE", ""),
        "run": e.get("STAMP", ""), "commit": e.get("COMMIT", ""),
    }
    print(json.dumps(rec))


def judge(rec):
    """Evaluates rec['goal'] into rec['goals'] and rec['met']."""
    goals, spec = [], rec.get("goal") or ""
    braid = rec.get("braid_median")
    ratios = rec.get("ratios", {})
    for g in [s.strip() for s in spec.split(";") if s.strip()]:
        if g.startswith("value<="):
            x = float(g[len("value<="):])
            ok = None if braid is None else braid <= x
            goals.append({"goal": g, "value": braid, "met": ok})
        elif g.startswith("eff>="):
            x, _, label = g[len("eff>="):].partition(":")
            r = ratios.get(label)
            eff = None if r is None else r / rec["ncpu"]
            rec["efficiency"] = eff
            # the same yardstick for the peers: braid's single run / (NCPU x peer's run)
            single = (rec.get("peers", {}).get(label) or {}).get("median")
            if single:
                rec["peer_efficiency"] = {
                    k: single / (rec["ncpu"] * p["median"])
                    for k, p in rec.get("peers", {}).items()
                    if k != label and p.get("median")}
            goals.append({"goal": g, "value": eff, "met": None if eff is None else eff >= float(x)})
        elif g.startswith("ratio"):
            strict = not g.startswith("ratio>=")
            x, _, labels = g[len("ratio>") if strict else len("ratio>="):].partition(":")
            x = float(x)
            for label in labels.split(","):
                r = ratios.get(label)
                ok = None if r is None else (r > x if strict else r >= x)
                goals.append({"goal": "ratio%s%g vs %s" % (">" if strict else ">=", x, label),
                              "peer": label, "value": r, "met": ok})
        else:
            goals.append({"goal": g, "value": None, "met": None})
    rec["goals"] = goals
    judged = [g["met"] for g in goals if g["met"] is not None]
    rec["met"] = (all(judged) if judged else None) if goals else None


def figure(meta_json, sbs_out, rc, triples_text):
    rec = json.loads(meta_json)
    lines = triples_text.split("\n")
    triples = [lines[i:i + 3] for i in range(0, len(lines) - 2, 3)]
    rec["commands"] = {t[0]: {"command": t[1], "metric": t[2]} for t in triples}
    rec["exit"] = int(rc)
    rec["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        sbs = json.loads(sbs_out.strip().splitlines()[-1]) if sbs_out.strip() else None
    except ValueError:
        sbs = None
    if sbs is None:
        rec["error"] = "side-by-side gave no report (exit %s)" % rc
        rec["braid_median"] = None
        rec["peers"] = {}
        rec["ratios"] = {}
    else:
        rec["runs"] = sbs["runs"]
        figs = sbs["figures"]
        b = figs.get("braid", {})
        rec["braid_median"] = b.get("median")
        rec["braid_runs"] = b.get("runs")
        rec["unit"] = unit_of(triples[0][2]) if triples else ""
        rec["peers"] = {k: {"median": v["median"], "runs": v["runs"],
                            "unit": unit_of(v["metric"])}
                        for k, v in figs.items() if k != "braid"}
        rec["ratios"] = sbs.get("ratios", {})
        if rc and int(rc):
            rec["error"] = "some runs gave no figure (exit %s); see the runs lists" % rc
    judge(rec)
    print(json.dumps(rec))


def verdict(met):
    return {True: "MET", False: "MISSED", None: "n/a"}[met]


def show(line):
    rec = json.loads(line)
    if rec.get("skipped"):
        print("   skipped: %s" % rec["skipped"])
        return
    unit = rec.get("unit", "")
    arrow = "higher is better" if rec["better"] == "higher" else "lower is better"
    runs = rec.get("braid_runs") or []
    print("   %-14s median %10s %-8s (%s)  runs: %s" % (
        "braid", fmt(rec["braid_median"]), unit, arrow, " ".join(fmt(v) for v in runs)))
    for label, p in rec.get("peers", {}).items():
        r = rec["ratios"].get(label)
        print("   %-14s median %10s %-8s ratio %s  runs: %s" % (
            label, fmt(p["median"]), p["unit"],
            fmt_ratio(r, 7),
            " ".join(fmt(v) for v in p["runs"])))
    if rec.get("peers_absent"):
        print("   peers not available: %s" % " ".join(rec["peers_absent"]))
    if rec.get("efficiency") is not None:
        print("   parallel efficiency vs braid single: %.3f (%d CPUs)" % (
            rec["efficiency"], rec["ncpu"]))
        peer_eff = rec.get("peer_efficiency") or {}
        if peer_eff:
            print("   the peers' efficiency against the same single run: " + ", ".join(
                "%s %.3f" % (k, v) for k, v in peer_eff.items()))
    if rec.get("goals"):
        parts = []
        for g in rec["goals"]:
            v = g["value"]
            parts.append("%s: %s%s" % (g["goal"], verdict(g["met"]),
                                       "" if v is None else " (%.3g)" % v))
        scaled = " [at reduced size: preview only]" if rec.get("scale") else ""
        print("   goal (%s): %s%s" % (rec["goal_text"], verdict(rec["met"]), scaled))
        print("      " + "; ".join(parts))
    if rec.get("error"):
        print("   WARNING: %s" % rec["error"])


def summary(path, mode, runs):
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print("== summary (%s, %s mode, %s rounds per figure, %s CPUs; ratio > 1: braid better)"
          % (when, mode, runs, recs[0]["ncpu"] if recs else "?"))
    print("%-22s %-16s %-14s %-16s %9s  %s" % (
        "figure", "braid", "peer", "peer value", "ratio", "goal"))
    met_n = miss_n = 0
    for r in recs:
        if r.get("skipped"):
            print("%-22s %-16s %s" % (r["figure"], "-", "skipped: " + r["skipped"]))
            continue
        unit = r.get("unit", "")
        b = "%s %s" % (fmt(r["braid_median"]), unit)
        peers = list(r.get("peers", {}).items()) or [(None, None)]
        goal = ""
        if r.get("goals"):
            goal = "%s: %s" % (r["goal_text"], verdict(r["met"]))
            if r.get("efficiency") is not None:
                goal += " (eff %.3f)" % r["efficiency"]
            if r.get("scale"):
                goal += " [reduced size]"
            if r["met"] is True:
                met_n += 1
            elif r["met"] is False:
                miss_n += 1
        if r.get("scale"):
            b += " *"
        for i, (label, p) in enumerate(peers):
            ratio = r["ratios"].get(label) if label else None
            print("%-22s %-16s %-14s %-16s %9s  %s" % (
                r["figure"] if i == 0 else "", b if i == 0 else "",
                label or "(no peer)", "%s %s" % (fmt(p["median"]), p["unit"]) if p else "",
                fmt_ratio(ratio, 0), goal if i == 0 else ""))
    if any(r.get("scale") for r in recs):
        print("* reduced size (see the figure's scale); goals are judged on full sizes")
    print("goals met: %d, missed: %d" % (met_n, miss_n))


def sbs_fallback(argv):
    """Only when ../shared/tools/side-by-side is absent: the same round-robin (one
    warm-up round, RUNS timed rounds, each run under /tmp/braid-bench.lock) and the same
    --json report, for braid's own commands."""
    import fcntl
    import statistics
    import subprocess
    runs, better, rest = 3, "higher", []
    i = 0
    while i < len(argv):
        if argv[i] == "-n":
            runs = int(argv[i + 1])
            i += 1
        elif argv[i] in ("--higher", "--lower"):
            better = argv[i][2:]
        elif argv[i] != "--json":
            rest.append(argv[i])
        i += 1
    triples = [rest[k:k + 3] for k in range(0, len(rest) - 2, 3)]
    values = {t[0]: [] for t in triples}
    ok = True
    for rnd in range(runs + 1):
        for label, cmd, metric in triples:
            with open("/tmp/braid-bench.lock", "a") as lk:
                fcntl.flock(lk, fcntl.LOCK_EX)
                p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            variant, _, name = metric.rpartition("/")
            v = None
            for line in p.stdout.splitlines():
                if line.startswith("{"):
                    rec = json.loads(line)
                    if rec.get("metric") == name and (not variant or rec.get("variant") == variant):
                        v = float(rec["value"])
                elif line.startswith("METRIC ") and len(line.split()) >= 3 \
                        and line.split()[1] == name:
                    v = float(line.split()[2])
            if rnd == 0:
                continue
            if p.returncode != 0 or v is None:
                ok = False
                sys.stderr.write("%s gave no %s (exit %d)\n" % (label, metric, p.returncode))
                continue
            values[label].append(v)
    figs, ratios = {}, {}
    for label, _, metric in triples:
        vs = values[label]
        figs[label] = {"metric": metric, "median": statistics.median(vs) if vs else None,
                       "min": min(vs) if vs else None, "max": max(vs) if vs else None,
                       "runs": vs}
    s = figs[triples[0][0]]["median"]
    for label, _, _ in triples[1:]:
        q = figs[label]["median"]
        if s and q:
            ratios[label] = s / q if better == "higher" else q / s
    print(json.dumps({"better": better, "runs": runs, "figures": figs, "ratios": ratios}))
    return 0 if ok else 1


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "meta":
        meta()
    elif cmd == "skip":
        rec = json.loads(argv[2])
        rec["skipped"] = argv[3]
        rec["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(json.dumps(rec))
    elif cmd == "figure":
        figure(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "show":
        show(argv[2])
    elif cmd == "summary":
        summary(argv[2], argv[3], argv[4])
    elif cmd == "sbs":
        return sbs_fallback(argv[2:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
