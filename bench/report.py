"""scripts/bench.sh's bookkeeping: turns side-by-side's JSON into figure records (one JSON
object a line in build/bench-results/), prints them, judges the goals, and prints the
summary table. Not a benchmark; standard library only.

    report.py machine PEERS_BIN                  probe the machine (CPU model, fault_cost,
                                                 n2_spin_rtt, calib) under the lock; a record
    report.py header RECORD                      print the machine line of the header
    report.py meta                               figure metadata from the F_* environment
    report.py skip META REASON                   a record for a figure that did not run
    report.py figure META SBS_JSON RC TRIPLES    a record from one side-by-side --json run
    report.py show RECORD                        print one record
    report.py summary RESULTS.jsonl MODE RUNS    the summary table
    report.py markdown RESULTS.jsonl             a run as docs/benchmarks.md's tables
    report.py sbs side-by-side's arguments       a stand-in for side-by-side, used only
                                                 when ../shared/tools is absent

Ratios are side-by-side's: how many times better braid is (peer/braid for a figure where
lower is better, braid/peer where higher is). Goals (GOALSPEC, ';'-separated):
    ratio>=X:a,b   braid's ratio to each of the peers a, b is >= X (ratio>X: strictly)
    eff>=X:label   parallel efficiency = ratio to `label` (braid's own single-thread run)
                   / NCPU is >= X
    value<=X       braid's median is <= X (in the figure's unit)
    within<=X:a    braid's median is at most X times peer a's (lower-is-better figures:
                   1 / ratio <= X); W4 against n2_spin_rtt, the physical limit
    share>=X:M     braid's extra metric M (min_share) is >= X in every round
    ahead          (loaded twins) braid's ratio stays > 1 against every peer it beat in
                   every round of the unloaded figure of the same run (UNLOADED in the meta)
A goal whose peers are all absent is "n/a"; a figure with goals is met when every goal
that could be judged is.

Spread. Every figure keeps each round's value for braid and each peer, and each round's
ratio against each peer (braid's and the peer's runs of the same round: side-by-side runs
them back to back), and prints median [min..max] of both. A series of rounds is flagged
BIMODAL when it has >= 3 values, max/min > 1.5 and its widest gap between neighbours
(sorted) is >= 60 % of max - min: two clusters, not one noisy spread. A ratio whose rounds
lie on both sides of 1.0 is flagged CROSSES-1: the verdict flips from round to round.

Extra metrics. bench/run-one.sh --tee keeps every run's stdout (CAPDIR/<label>, runs
separated by "#run rc=N" lines, the first one the warm-up): metrics a figure EXPECTS
(faults_per_mtask, min_share) are read from the same runs as its main figure, for the
same variant. A metric a program does not print (yet) is "not available", never an error.
"""
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

LOCK = "/tmp/braid-bench.lock"
EXTRA_UNITS = {"faults_per_mtask": "faults/M tasks", "min_share": "of acquisitions", "rps": "rps"}


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


# --- the machine ----------------------------------------------------------------------

def metrics_of(text):
    """METRIC lines and JSON objects of one run: {metric or variant/metric: value}."""
    got = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
                got["%s/%s" % (rec.get("variant", ""), rec["metric"])] = float(rec["value"])
                got.setdefault(rec["metric"], float(rec["value"]))
            except (ValueError, KeyError, TypeError):
                continue
        elif line.startswith("METRIC "):
            parts = line.split()
            try:
                got[parts[1]] = float(parts[2])
            except (IndexError, ValueError):
                continue
    return got


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info = {}
        for line in out.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
        if info.get("Model name"):
            return info["Model name"], info.get("Vendor ID", ""), info.get("Hypervisor vendor", "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip(), "", ""
    except OSError:
        pass
    return "unknown", "", ""


def probe(binary, args=(), times=1):
    """Runs a context program `times` times under the benchmark lock: per metric, the
    list of values."""
    vals = {}
    if not os.access(binary, os.X_OK):
        return None
    for _ in range(times):
        with open(LOCK, "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            try:
                p = subprocess.run([binary] + list(args), capture_output=True, text=True,
                                   timeout=120)
            except (OSError, subprocess.SubprocessError):
                continue
        if p.returncode == 0:
            for k, v in metrics_of(p.stdout).items():
                vals.setdefault(k, []).append(v)
    return vals or None


def machine(pb):
    """The machine record: what tells this machine apart from others of the same size."""
    model, vendor, hyper = cpu_model()
    rec = {"machine": True, "cpu_model": model, "cpu_vendor": vendor,
           "hypervisor": hyper, "ncpu": os.cpu_count() or 1,
           "kernel": os.uname().release,
           "loadavg": " ".join("%.2f" % x for x in os.getloadavg()),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    med = lambda vs: statistics.median(vs) if vs else None
    fc = probe(os.path.join(pb, "fault_cost"), times=3)
    if fc:
        rec["fault_demand_us"] = med(fc.get("demand_fault_us_per_page"))
        rec["fault_populate_us"] = med(fc.get("populate_us_per_page"))
        rec["fault_runs"] = fc
    rtt = probe(os.path.join(pb, "n2_spin_rtt"), ["10000"], times=3)
    if rtt:
        rec["spin_rtt_p50_us"] = med(rtt.get("p50_us"))
        rec["spin_rtt_p99_us"] = med(rtt.get("p99_us"))
        rec["spin_rtt_runs"] = rtt
    cal = probe(os.path.join(pb, "calib"), times=3)
    if cal:
        rec["calib_ns"] = med(cal.get("calib_ns"))
    print(json.dumps(rec))


def header(line):
    m = json.loads(line)
    def g(k, f="%.3g"):
        return "n/a" if m.get(k) is None else f % m[k]
    print("machine: %s%s, %d CPUs, kernel %s, load average %s" % (
        m["cpu_model"], " (%s guest)" % m["hypervisor"] if m.get("hypervisor") else "",
        m["ncpu"], m["kernel"], m.get("loadavg", "?")))
    print("         fresh 4 KiB page (fault_cost, median of 3): %s us demand fault, %s us "
          "with MAP_POPULATE" % (g("fault_demand_us"), g("fault_populate_us")))
    print("         cross-thread round trip (n2_spin_rtt, median of 3): p50 %s us, p99 %s us;"
          " host probe (calib) %s ns" % (g("spin_rtt_p50_us"), g("spin_rtt_p99_us"),
                                         g("calib_ns")))


# --- spread -------------------------------------------------------------------------------

def spread(vs):
    vs = [v for v in (vs or []) if v is not None]
    if not vs:
        return None
    return {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "n": len(vs)}


def bimodal(vs):
    vs = sorted(v for v in (vs or []) if v is not None)
    if len(vs) < 3 or vs[0] <= 0:
        return False
    rng = vs[-1] - vs[0]
    if vs[-1] / vs[0] <= 1.5 or rng <= 0:
        return False
    gap = max(b - a for a, b in zip(vs, vs[1:]))
    return gap >= 0.6 * rng


def crosses_one(vs):
    vs = [v for v in (vs or []) if v is not None]
    return bool(vs) and min(vs) < 1.0 < max(vs)


def read_capture(path, runs):
    """The timed runs' outputs of one command (the warm-up dropped): a list of
    (rc, text), or None without a capture."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    chunks = []
    for part in text.split("#run rc=")[1:]:
        first, _, body = part.partition("\n")
        try:
            rc = int(first.strip())
        except ValueError:
            rc = -1
        chunks.append((rc, body))
    return chunks[1:]


def value_of(text, metric):
    """side-by-side's rule: the last figure named METRIC (variant/metric among JSON)."""
    variant, _, name = metric.rpartition("/")
    found = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("metric") == name and (not variant or rec.get("variant") == variant):
                try:
                    found = float(rec["value"])
                except (KeyError, TypeError, ValueError):
                    pass
        elif line.startswith("METRIC "):
            parts = line.split()
            if len(parts) >= 3 and parts[1] == name:
                try:
                    found = float(parts[2])
                except ValueError:
                    pass
    return found


def meta():
    e = os.environ
    rec = {
        "figure": e["F_ID"], "tags": e["F_TAGS"].split(), "better": e["F_DIR"],
        "title": e["F_TITLE"], "scale": e.get("F_SCALE", ""), "goal": e.get("F_GOAL", ""),
        "goal_text": e.get("F_GOALTEXT", ""), "peers_absent": e.get("SKIPPED", "").split(),
        "ncpu": int(e.get("NCPU", "1")), "mode": e.get("MODE", ""),
        "run": e.get("STAMP", ""), "commit": e.get("COMMIT", ""),
        "cpu_model": e.get("CPU_MODEL", ""), "expects": e.get("F_EXPECT", "").split(),
        "loaded": e.get("F_LOAD", "") or None,
    }
    if e.get("UNLOADED"):
        try:
            base = json.loads(e["UNLOADED"])
            rec["unloaded_figure"] = base.get("figure")
            rec["unloaded_ratios"] = base.get("ratios", {})
            rec["unloaded_round_ratios"] = base.get("round_ratios", {})
        except ValueError:
            pass
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
        elif g.startswith("within<="):
            x, _, label = g[len("within<="):].partition(":")
            r = ratios.get(label)
            times = None if not r else 1.0 / r
            goals.append({"goal": "<= %gx %s" % (float(x), label), "peer": label,
                          "value": times, "met": None if times is None else times <= float(x)})
        elif g.startswith("share>="):
            x, _, metric = g[len("share>="):].partition(":")
            vs = [v for v in ((rec.get("extras") or {}).get("braid", {}).get(metric) or [])
                  if v is not None]
            worst = min(vs) if vs else None
            goals.append({"goal": "%s >= %g in every round" % (metric, float(x)),
                          "value": worst, "met": None if worst is None else worst >= float(x)})
        elif g == "ahead":
            base = rec.get("unloaded_ratios")
            if base is None:
                goals.append({"goal": "ahead of the peers beaten unloaded", "value": None,
                              "met": None})
            # beaten unloaded: ratio > 1 in every round (one lucky round is not a lead)
            rounds = rec.get("unloaded_round_ratios") or {}
            beaten = []
            for k, r in (base or {}).items():
                rr = [v for v in rounds.get(k) or [] if v is not None]
                if (min(rr) > 1 if rr else r is not None and r > 1):
                    beaten.append(k)
            rec["beaten_unloaded"] = beaten
            for label in beaten:
                r = ratios.get(label)
                goals.append({"goal": "still ahead of %s (unloaded %.2fx)" % (label, base[label]),
                              "peer": label, "value": r, "met": None if r is None else r > 1})
            if base is not None and not beaten:
                goals.append({"goal": "no peer beaten unloaded", "value": None, "met": None})
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


def figure(meta_json, sbs_out, rc, triples_text, capdir=""):
    rec = json.loads(meta_json)
    lines = triples_text.split("\n")
    triples = [lines[i:i + 3] for i in range(0, len(lines) - 2, 3)]
    rec["commands"] = {t[0]: {"command": t[1], "metric": t[2]} for t in triples}
    rec["exit"] = int(rc)
    rec["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rec["seconds"] = float(os.environ.get("F_SECONDS", "0") or 0)
    try:
        sbs = json.loads(sbs_out.strip().splitlines()[-1]) if sbs_out.strip() else None
    except ValueError:
        sbs = None
    if sbs is None:
        rec["error"] = "side-by-side gave no report (exit %s)" % rc
        rec["braid_median"] = None
        rec["peers"] = {}
        rec["ratios"] = {}
        judge(rec)
        print(json.dumps(rec))
        return
    runs = rec["runs"] = sbs["runs"]
    figs = sbs["figures"]
    b = figs.get("braid", {})
    rec["braid_median"] = b.get("median")
    rec["braid_runs"] = b.get("runs")
    rec["unit"] = unit_of(triples[0][2]) if triples else ""
    rec["peers"] = {k: {"median": v["median"], "runs": v["runs"], "unit": unit_of(v["metric"])}
                    for k, v in figs.items() if k != "braid"}
    rec["ratios"] = sbs.get("ratios", {})
    # per round, aligned: from the captures when there are any (a failed run leaves a
    # hole, not a shift), else side-by-side's lists when none is short
    per_round, extras = {}, {}
    for label, _, metric in triples:
        cap = read_capture(os.path.join(capdir, label), runs) if capdir else None
        if cap is not None:
            per_round[label] = [value_of(t, metric) if r == 0 else None for r, t in cap]
            variant = metric.rpartition("/")[0]
            for m in rec.get("expects", []):
                vs = [value_of(t, "%s/%s" % (variant, m) if variant else m) if r == 0 else None
                      for r, t in cap]
                if any(v is not None for v in vs):
                    extras.setdefault(label, {})[m] = vs
        else:
            vs = figs.get(label, {}).get("runs") or []
            per_round[label] = vs if len(vs) == runs else None
    rec["extras"] = extras
    better = rec["better"]
    bvs = per_round.get("braid")
    rec["braid_spread"] = spread(rec["braid_runs"])
    rec["braid_bimodal"] = bimodal(rec["braid_runs"])
    rec["round_ratios"] = {}
    for label, p in rec["peers"].items():
        p["spread"] = spread(p["runs"])
        p["bimodal"] = bimodal(p["runs"])
        pvs = per_round.get(label)
        if bvs and pvs and len(bvs) == len(pvs):
            rr = [None if not x or not y else (x / y if better == "higher" else y / x)
                  for x, y in zip(bvs, pvs)]
            rec["round_ratios"][label] = rr
            p["ratio_spread"] = spread(rr)
            p["ratio_bimodal"] = bimodal(rr)
            p["ratio_crosses_1"] = crosses_one(rr)
        if not p["runs"]:
            p["unavailable"] = True
    if not rec["braid_runs"]:
        cap = read_capture(os.path.join(capdir, "braid"), runs) if capdir else None
        codes = sorted({r for r, _ in cap}) if cap else []
        rec["unavailable"] = ("braid's command gave no %s in any round%s: its program "
                              "does not produce this figure (yet), or failed" % (
                                  triples[0][2], " (exit %s)" % "/".join(map(str, codes))
                                  if codes else ""))
    elif rc and int(rc) and any(
            0 < len(f.get("runs") or []) < runs for f in figs.values()):
        rec["error"] = "some runs gave no figure (exit %s); see the runs lists" % rc
    flags = []
    if rec["braid_bimodal"]:
        flags.append("BIMODAL")
    if any(p.get("ratio_bimodal") for p in rec["peers"].values()):
        flags.append("BIMODAL-RATIO")
    if any(p.get("ratio_crosses_1") for p in rec["peers"].values()):
        flags.append("CROSSES-1")
    rec["flags"] = flags
    judge(rec)
    print(json.dumps(rec))


def verdict(met):
    return {True: "MET", False: "MISSED", None: "n/a"}[met]


def fmt_spread(sp, ratio=False):
    if not sp:
        return "-"
    f = (lambda v: "%.2f" % v if v >= 0.1 else "%.3g" % v) if ratio else fmt
    return "%s [%s..%s]%s" % (f(sp["median"]), f(sp["min"]), f(sp["max"]), "x" if ratio else "")


def show(line):
    rec = json.loads(line)
    if rec.get("skipped"):
        print("   skipped: %s" % rec["skipped"])
        return
    if rec.get("unavailable"):
        print("   not available: %s" % rec["unavailable"])
        return
    unit = rec.get("unit", "")
    arrow = "higher is better" if rec["better"] == "higher" else "lower is better"
    runs = rec.get("braid_runs") or []
    print("   %-12s %-26s %-8s (%s)  runs: %s%s" % (
        "braid", fmt_spread(rec.get("braid_spread")), unit, arrow,
        " ".join(fmt(v) for v in runs), "  BIMODAL" if rec.get("braid_bimodal") else ""))
    for label, p in rec.get("peers", {}).items():
        if p.get("unavailable"):
            print("   %-12s not available: no %s in any round" % (
                label, rec["commands"].get(label, {}).get("metric", "figure")))
            continue
        fl = []
        if p.get("ratio_bimodal"):
            fl.append("BIMODAL")
        if p.get("ratio_crosses_1"):
            fl.append("CROSSES-1")
        print("   %-12s %-26s %-8s ratio %-7s per round %-22s runs: %s%s" % (
            label, fmt_spread(p.get("spread")), p["unit"],
            fmt_ratio(rec["ratios"].get(label), 0),
            fmt_spread(p.get("ratio_spread"), True),
            " ".join(fmt(v) for v in p["runs"]), ("  " + " ".join(fl)) if fl else ""))
    if rec.get("peers_absent"):
        print("   peers not available: %s" % " ".join(rec["peers_absent"]))
    for m in rec.get("expects", []):
        got = False
        for label, ex in (rec.get("extras") or {}).items():
            if m in ex:
                got = True
                print("   %-12s %s: %s %s  runs: %s" % (
                    label, m, fmt_spread(spread(ex[m])), EXTRA_UNITS.get(m, ""),
                    " ".join(fmt(v) for v in ex[m])))
        if not got:
            print("   %-12s %s: not available (the program does not print it yet)" % ("braid", m))
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
    if rec.get("flags"):
        print("   flags: %s (see docs/benchmarks.md, \"Spread\")" % " ".join(rec["flags"]))
    if rec.get("error"):
        print("   WARNING: %s" % rec["error"])


def load_run(path):
    """A run's JSONL file: (the figure records, the machine record or None)."""
    recs, mach = [], None
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("machine"):
                    mach = r
                else:
                    recs.append(r)
    return recs, mach


def summary(path, mode, runs):
    recs, mach = load_run(path)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print("== summary (%s, %s mode, %s rounds per figure, %s CPUs; ratio > 1: braid better)"
          % (when, mode, runs, recs[0]["ncpu"] if recs else "?"))
    if mach:
        print("   on %s; fresh page %s us (demand) / %s us (MAP_POPULATE); n2_spin_rtt p50 %s us"
              % (mach["cpu_model"], *("-" if mach.get(k) is None else "%.3g" % mach[k]
                                      for k in ("fault_demand_us", "fault_populate_us",
                                                "spin_rtt_p50_us"))))
    print("   values: median [min..max] of the rounds; ratio: side-by-side's (of the medians), "
          "[min..max] of the per-round ratios")
    print("%-26s %-30s %-14s %-18s %-22s %s" % (
        "figure", "braid", "peer", "peer value", "ratio", "goal / flags"))
    met_n = miss_n = na_n = 0
    for r in recs:
        if r.get("skipped"):
            print("%-26s %-28s %s" % (r["figure"], "-", "skipped: " + r["skipped"]))
            continue
        if r.get("unavailable"):
            na_n += 1
            print("%-26s %-28s %s" % (r["figure"], "-", "not available (no braid figure)"))
            continue
        unit = r.get("unit", "")
        b = "%s %s" % (fmt_spread(r.get("braid_spread")), unit)
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
        if r.get("flags"):
            goal += ("; " if goal else "") + " ".join(r["flags"])
        if r.get("scale"):
            b += " *"
        for i, (label, p) in enumerate(peers):
            if p and p.get("unavailable"):
                pv, ratio = "not available", "-"
            elif p:
                pv = "%s %s" % (fmt(p["median"]), p["unit"])
                ratio = fmt_ratio(r["ratios"].get(label), 0)
                rs = p.get("ratio_spread")
                if rs:
                    rf = lambda v: "%.2f" % v if v >= 0.1 else "%.2g" % v
                    ratio += " [%s..%s]" % (rf(rs["min"]), rf(rs["max"]))
            else:
                pv, ratio = "", "-"
            print("%-26s %-30s %-14s %-18s %-22s %s" % (
                r["figure"] if i == 0 else "", b if i == 0 else "",
                label or "(no peer)", pv, ratio, goal if i == 0 else ""))
        for label, ex in (r.get("extras") or {}).items():
            for m, vs in ex.items():
                print("%-26s %-30s %-14s %s %s" % ("", "", label, m, fmt_spread(spread(vs))))
    if any(r.get("scale") for r in recs):
        print("* reduced size (see the figure's scale); goals are judged on full sizes")
    print("goals met: %d, missed: %d; figures not available: %d" % (met_n, miss_n, na_n))


def markdown(path):
    """The run as docs/benchmarks.md's tables: the machine, then every figure."""
    recs, mach = load_run(path)
    if mach:
        g = lambda k: "n/a" if mach.get(k) is None else "%.3g" % mach[k]
        print("Machine: %s, %d CPUs, kernel %s; fresh 4 KiB page %s µs (demand fault) / %s µs "
              "(MAP_POPULATE); n2_spin_rtt p50 %s µs, p99 %s µs; calib %s ns%s." % (
                  mach["cpu_model"], mach["ncpu"], mach["kernel"], g("fault_demand_us"),
                  g("fault_populate_us"), g("spin_rtt_p50_us"), g("spin_rtt_p99_us"),
                  g("calib_ns"), "; load average %s at the start" % mach["loadavg"]
                  if mach.get("loadavg") else ""))
        print()
    print("| figure | braid: median [min..max] | peer | peer median | ratio | per-round ratios | goal / flags |")
    print("|---|---:|---|---:|---:|---:|---|")
    rfmt = lambda v: "%.2f" % v if v >= 0.1 else "%.2g" % v
    md_fmt = lambda v: fmt(v).replace(" ", "\u00a0") if v is not None else "-"
    for r in recs:
        if r.get("skipped") or r.get("unavailable"):
            print("| %s | not available | | | | | |" % r["figure"])
            continue
        sp = r.get("braid_spread")
        b = "%s [%s..%s] %s" % (md_fmt(sp["median"]), md_fmt(sp["min"]), md_fmt(sp["max"]),
                                r.get("unit", "")) if sp else "-"
        if r.get("scale"):
            b += " (%s)" % r["scale"]
        goal = ""
        if r.get("goals"):
            goal = "%s: %s" % (r["goal_text"], {True: "**met**", False: "**missed**",
                                                 None: "n/a"}[r["met"]])
            if r.get("efficiency") is not None:
                goal += " (eff %.3f)" % r["efficiency"]
        if r.get("flags"):
            goal += ("; " if goal else "") + " ".join(r["flags"])
        peers = list(r.get("peers", {}).items()) or [(None, None)]
        for i, (label, p) in enumerate(peers):
            if p is None:
                row = ["(no peer)", "", "", ""]
            elif p.get("unavailable"):
                row = [label, "not available", "", ""]
            else:
                rs = p.get("ratio_spread")
                rt = r["ratios"].get(label)
                row = [label, "%s %s" % (md_fmt(p["median"]), p["unit"]),
                       "-" if rt is None else "%s×" % rfmt(rt),
                       "%s [%s..%s]" % (rfmt(rs["median"]), rfmt(rs["min"]), rfmt(rs["max"]))
                       if rs else "-"]
            print("| %s | %s | %s | %s |" % (r["figure"] if i == 0 else "", b if i == 0 else "",
                                            " | ".join(row), goal if i == 0 else ""))
        for label, ex in (r.get("extras") or {}).items():
            for m, vs in ex.items():
                s = spread(vs)
                if s:
                    print("| | | %s %s | %s [%s..%s] | | | |" % (
                        label, m, fmt(s["median"]), fmt(s["min"]), fmt(s["max"])))


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
        figure(argv[2], argv[3], argv[4], argv[5], argv[6] if len(argv) > 6 else "")
    elif cmd == "markdown":
        markdown(argv[2])
    elif cmd == "machine":
        machine(argv[2])
    elif cmd == "header":
        header(argv[2])
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
