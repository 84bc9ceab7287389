"""Side-by-side: drsch's exact Hamming k-NN search against FAISS, on the same codes, in one run.

Default (no --peer): the whole `drsch search` process (loading .npy codes, searching, writing
the results) against FAISS's IndexBinaryFlat.search call alone (Debian python3-faiss), best of
--repeat runs each.

With --peer (ci/bench-vs-faiss --faiss-src DIR builds it: ci/faiss_peer.cpp against FAISS built
from source): per code length and thread count, three runs alternate (A B C A B C ...): FAISS
current (ci/faiss_peer, timing the IndexBinaryFlat::search call), FAISS of python3-faiss (the
search call, in this process) and `drsch search`, which gives two sides: drsch in process (the
search time it prints) and drsch whole process. Reports best and median times, G comparisons/s,
the ratios and the goals of issue 17 beside them.

With --peer and --grid: FAISS's own benchmark grid (benchs/bench_hamming_knn.py: 1 thread, 30,000
database codes, 10,000 queries, k in 1,4,16,64,256, faiss.knn_hamming's "hc" and "mc" variants,
i.e. hammings_knn_hc / hammings_knn_mc) against drsch in process; median of --repeat runs.

Every mode checks that drsch returns the same sorted distances per query as FAISS, and the same
neighbours wherever the k-th distance is not tied, and stops if not.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# Issue 17's goals: drsch in process at least this many times faster than current FAISS.
GOALS = {64: 8.0, 128: 4.0, 256: 3.0, 512: 2.0}
PROCESS_GOAL = 1.3  # whole `drsch search` process at most this many times its search time
HM_MAX_BITS = 4096  # simd/hamming.h: the longest code drsch searches


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_family_model():
    """'family F model M' of /proc/cpuinfo (what names the core when the model name is generic,
    as on virtual machines), or ''."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
    except OSError:
        pass
    if "cpu family" in fields and "model" in fields:
        return "family %s model %s" % (fields["cpu family"], fields["model"])
    return ""


def machine(exe=None):
    """The machine as drsch's reports name it (CPU model, cores, the clock measured now, memory,
    kernel), from the context of a tiny `drsch bench hamming` run; without exe, or when that run
    fails, from /proc and platform alone."""
    ctx = {}
    if exe:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ctx.json")
            p = subprocess.run([exe, "bench", "hamming", "--n", "4096", "--queries", "1",
                                "--single-queries", "1", "--bits", "64", "--k", "1", "--threads",
                                "1", "--json", path], capture_output=True, text=True)
            if p.returncode == 0:
                with open(path) as f:
                    ctx = json.load(f).get("context", {})
    fm = cpu_family_model()
    parts = [ctx.get("cpu_model") or cpu_model()]
    if fm:
        parts[0] += " (%s)" % fm
    parts.append("%d cores" % (ctx.get("num_cores") or os.cpu_count()))
    if ctx.get("cpu_ghz_measured"):
        parts.append("%.2f GHz measured" % ctx["cpu_ghz_measured"])
    if ctx.get("memory_bytes"):
        parts.append("%.1f GiB" % (ctx["memory_bytes"] / 2**30))
    parts.append("Linux %s" % platform.release())
    return ", ".join(parts)


def drsch_version(exe):
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    m = re.search(r"commit:\s*(\S+)", p.stdout + p.stderr)
    return m.group(1) if m else "unknown"


def drsch_isa(exe):
    """The search kernels drsch runs here, and what chose them when not the CPU's best: the
    `isa:` line of `drsch --version`, with DRSCH_FORCE_ISA when it is set."""
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    m = re.search(r"isa:\s*(\S+) \(best supported: (\S+?);", p.stdout + p.stderr)
    if not m:
        return "unknown"
    if m.group(1) == m.group(2):
        return m.group(1)
    return "%s (DRSCH_FORCE_ISA=%s; the CPU's best: %s)" % (
        m.group(1), os.environ.get("DRSCH_FORCE_ISA", "?"), m.group(2))


def random_codes(rng, n, queries, bits, dbp, qp):
    """n database and `queries` query codes of `bits` uniform random bits, saved as .npy at dbp
    and qp; returns them and a FAISS IndexBinaryFlat (Debian's FAISS) holding the database."""
    import faiss  # Debian's python3-faiss; only the modes that compare with it need it
    db = rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)
    q = rng.integers(0, 256, size=(queries, bits // 8), dtype=np.uint8)
    np.save(dbp, db)
    np.save(qp, q)
    index = faiss.IndexBinaryFlat(bits)
    index.add(db)
    return db, q, index


# After a parallel call, FAISS's OpenMP threads in this process spin-wait before they sleep
# (libgomp's default): measured on the 2-core Zen 5, about 7 ms of a core after each search call
# of python3-faiss at 2 threads. A side started meanwhile shares the cores with them: drsch's
# whole process at 64 bits, 2 threads, measured 2.3 ms longer (median of 15) started at once
# than started 0.2 s later. Every side that runs in a process of its own starts this long after
# whatever ran before it.
SETTLE_S = 0.05


def run_drsch(exe, db, q, k, threads, out):
    """Returns (whole-process seconds, in-process search seconds, stderr line). The previous run's
    outputs are removed first (untimed): every run writes new files, as a search usually does;
    renaming over existing files costs more on ext4 (it starts their writeback)."""
    for suffix in (".indices.npy", ".distances.npy", ".manifest"):
        if os.path.exists(out + suffix):
            os.remove(out + suffix)
    cmd = [exe, "search", "--db", db, "--queries", q, "--k", str(k), "--threads", str(threads),
           "--out", out]
    time.sleep(SETTLE_S)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("drsch search failed: %s\n%s" % (" ".join(cmd), p.stderr))
    log = p.stderr.strip()
    m = re.search(r"(\d+) queries x (\d+) codes.*search ([0-9.]+) s \(([0-9.]+) G comparisons/s\)", log)
    if not m:
        sys.exit("no search time in drsch's output: %s" % log)
    search = float(m.group(3))
    gcmp = float(m.group(4))
    if gcmp > 0:  # 4 significant digits rather than whole milliseconds
        search = int(m.group(1)) * int(m.group(2)) / (gcmp * 1e9)
    return dt, search, log


def run_peer(peer, db, q, ks, variants, threads, out=None):
    """Runs ci/faiss_peer once; returns {(variant, k): seconds of the search call}."""
    cmd = [peer, "--db", db, "--queries", q, "--k", ",".join(map(str, ks)), "--variants",
           ",".join(variants), "--threads", str(threads), "--repeat", "1"]
    if out:
        cmd += ["--out", out]
    time.sleep(SETTLE_S)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("faiss_peer failed: %s\n%s" % (" ".join(cmd), p.stderr))
    res = {}
    for line in p.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split())
        res[(f["variant"], int(f["k"]))] = float(f["best"]) if "best" in f else None  # None: out of memory
    return res


def peer_result(prefix, variant, k, nq):
    d = np.fromfile("%s.%s.k%d.dist" % (prefix, variant, k), dtype=np.int32).reshape(nq, k)
    i = np.fromfile("%s.%s.k%d.idx" % (prefix, variant, k), dtype=np.int64).reshape(nq, k)
    return d, i


def agree(dd, di, fd, fi):
    """(same sorted distances per query, same neighbours below the k-th distance)."""
    dd, fd = np.asarray(dd, dtype=np.int64), np.asarray(fd, dtype=np.int64)
    same_dist = bool(np.array_equal(np.sort(dd, axis=1), np.sort(fd, axis=1)))
    # Neighbours strictly closer than the k-th distance are unique; ties at the k-th distance
    # may be chosen differently (drsch keeps the lowest database indices).
    kth = dd.max(axis=1, keepdims=True)
    same_set = all(set(di[i][dd[i] < kth[i]]) == set(fi[i][fd[i] < kth[i]]) for i in range(len(dd)))
    return same_dist, same_set


def write_outputs(a, meta, rows, lines):
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=2)
        os.replace(a.json + ".tmp", a.json)
    if a.md:
        with open(a.md + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(a.md + ".tmp", a.md)


def debian_only(a):
    """The original comparison: drsch whole process against python3-faiss's search call."""
    import faiss
    rng = np.random.default_rng(a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in [int(b) for b in a.bits.split(",")]:
            dbp, qp, out = os.path.join(tmp, "db.npy"), os.path.join(tmp, "q.npy"), os.path.join(tmp, "r")
            db, q, index = random_codes(rng, a.n, a.queries, bits, dbp, qp)
            for threads in [int(t) for t in a.threads.split(",")]:
                faiss.omp_set_num_threads(threads)
                t_faiss = 1e300
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    fd, fi = index.search(q, a.k)
                    t_faiss = min(t_faiss, time.perf_counter() - t0)
                t_drsch, log = 1e300, ""
                for _ in range(a.repeat):
                    dt, _, log = run_drsch(a.drsch, dbp, qp, a.k, threads, out)
                    t_drsch = min(t_drsch, dt)
                di = np.load(out + ".indices.npy")
                dd = np.load(out + ".distances.npy")
                same_dist = bool(np.array_equal(dd, fd.astype(np.int32)))
                kth = dd[:, -1:]
                same_set = all(set(di[i][dd[i] < kth[i]]) == set(fi[i][fd[i] < kth[i]]) for i in range(len(dd)))
                comparisons = a.n * a.queries
                row = dict(bits=bits, threads=threads, n=a.n, queries=a.queries, k=a.k,
                           faiss_search_s=t_faiss, drsch_process_s=t_drsch, speedup=t_faiss / t_drsch,
                           faiss_gcmp_s=comparisons / t_faiss / 1e9, drsch_gcmp_s=comparisons / t_drsch / 1e9,
                           same_distances=same_dist, same_neighbours_below_kth=same_set, drsch_log=log)
                rows.append(row)
                print("bits %4d threads %d: FAISS search %.3f s (%.3f G/s), drsch whole process %.3f s "
                      "(%.3f G/s): %.1fx, same distances: %s, same neighbours below k-th: %s"
                      % (bits, threads, t_faiss, row["faiss_gcmp_s"], t_drsch, row["drsch_gcmp_s"],
                         row["speedup"], same_dist, same_set), flush=True)
                if not (same_dist and same_set):
                    sys.exit("drsch and FAISS disagree")
    mach = machine(a.drsch)
    meta = dict(machine=mach, faiss=faiss.__version__, numpy=np.__version__, seed=a.seed, repeat=a.repeat,
                command=" ".join(sys.argv))
    lines = ["# drsch search vs FAISS IndexBinaryFlat", "",
             "Exact k=%d search, %d random codes, %d queries. drsch: the whole `drsch search` process "
             "(load .npy, search, write results); FAISS %s: the `IndexBinaryFlat.search` call only. "
             "Best of %d runs each, same codes, same run." % (a.k, a.n, a.queries, faiss.__version__, a.repeat),
             "", "Machine: " + mach, "", "Command: `ci/bench-vs-faiss`", "",
             "| bits | threads | FAISS search (s) | FAISS G cmp/s | drsch process (s) | drsch G cmp/s | speed-up | same distances |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append("| %d | %d | %.3f | %.3f | %.3f | %.3f | %.1fx | %s |" % (
            r["bits"], r["threads"], r["faiss_search_s"], r["faiss_gcmp_s"], r["drsch_process_s"],
            r["drsch_gcmp_s"], r["speedup"], "yes" if r["same_distances"] else "NO"))
    write_outputs(a, meta, rows, lines)


def stats(xs):
    return dict(best=min(xs), median=statistics.median(xs), runs=xs)


def merge_rows(a, meta, rows, key):
    """With --merge, keeps the rows of the existing --json that this run did not measure (and notes
    that file's commands in meta)."""
    if not (a.merge and a.json and os.path.exists(a.json)):
        return rows
    with open(a.json) as f:
        old = json.load(f)
    clock = re.compile(r", ([0-9.]+) GHz measured( \(the merged rows' run: [0-9.]+ GHz\))?")
    for k in ("machine", "faiss_commit", "faiss_opt_level"):
        mine, theirs = meta[k], old["meta"].get(k) or ""
        if k == "machine":  # the measured clock moves from run to run
            mine, theirs = clock.sub("", mine), clock.sub("", theirs)
        if theirs != mine:
            sys.exit("--merge: %s has %s %s, this run %s" % (a.json, k, old["meta"].get(k), meta[k]))
    before = clock.search(old["meta"]["machine"])
    if before and clock.search(meta["machine"]):
        meta["machine"] = clock.sub(lambda m: ", %s GHz measured (the merged rows' run: %s GHz)" % (
            m.group(1), before.group(1)), meta["machine"], count=1)
    if old["meta"]["drsch_commit"].split(", then ")[-1] != meta["drsch_commit"]:
        # A commit of the results or of ci/ changes drsch's version string, not its search.
        meta["drsch_commit"] = old["meta"]["drsch_commit"] + ", then " + meta["drsch_commit"]
    meta["commands"] = old["meta"].get("commands", []) + meta["commands"]
    mine = {key(r) for r in rows}
    return sorted([r for r in old["rows"] if key(r) not in mine] + rows, key=key)


def process_ratio(r):
    """The whole process over in process, run by run: each `drsch search` run's wall time over
    the search time that same run printed, whose median counts: on a VM runs apart differ by
    about as much as the process costs besides its search (at 64 bits, 2 threads, the three
    searches of one table took 33.1-37.4 ms, their processes 11.7-18.2 ms more). Kept beside
    it: the best process time over the best search time, which may come from different runs."""
    pairs = [p / s for p, s in zip(r["drsch_process_s"]["runs"], r["drsch_inprocess_s"]["runs"])]
    r["process_over_inprocess_runs"] = pairs
    r["process_over_inprocess"] = statistics.median(pairs)
    r["process_over_inprocess_best"] = r["drsch_process_s"]["best"] / r["drsch_inprocess_s"]["best"]


def yes(b):
    return "yes" if b else "NO"


def main_table(a, meta):
    """FAISS current, FAISS of python3-faiss, drsch in process and whole process, alternately."""
    import faiss
    rng = np.random.default_rng(a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dbp, qp = os.path.join(tmp, "db.npy"), os.path.join(tmp, "q.npy")
        out, pout = os.path.join(tmp, "r"), os.path.join(tmp, "peer")
        for bits in [int(b) for b in a.bits.split(",")]:
            db, q, index = random_codes(rng, a.n, a.queries, bits, dbp, qp)
            for threads in [int(t) for t in a.threads.split(",")]:
                faiss.omp_set_num_threads(threads)
                cur, deb, proc, inproc, log = [], [], [], [], ""
                for rep in range(a.repeat):
                    cur.append(run_peer(a.peer, dbp, qp, [a.k], ["flat"], threads,
                                        pout if rep == 0 else None)[("flat", a.k)])
                    t0 = time.perf_counter()
                    fd, fi = index.search(q, a.k)
                    deb.append(time.perf_counter() - t0)
                    dt, st, log = run_drsch(a.drsch, dbp, qp, a.k, threads, out)
                    proc.append(dt)
                    inproc.append(st)
                dd, di = np.load(out + ".distances.npy"), np.load(out + ".indices.npy")
                cd, ci = peer_result(pout, "flat", a.k, a.queries)
                same_cur = agree(dd, di, cd, ci)
                same_deb = agree(dd, di, fd, fi)
                cmp = a.n * a.queries
                r = dict(bits=bits, threads=threads, n=a.n, queries=a.queries, k=a.k,
                         faiss_current_s=stats(cur), faiss_debian_s=stats(deb),
                         drsch_inprocess_s=stats(inproc), drsch_process_s=stats(proc))
                for side in ("faiss_current", "faiss_debian", "drsch_inprocess", "drsch_process"):
                    r[side + "_gcmp_s"] = cmp / r[side + "_s"]["best"] / 1e9
                r["inprocess_speedup"] = r["faiss_current_s"]["best"] / r["drsch_inprocess_s"]["best"]
                r["process_speedup"] = r["faiss_current_s"]["best"] / r["drsch_process_s"]["best"]
                process_ratio(r)
                r["goal_inprocess_speedup"] = GOALS.get(bits)
                r["goal_process_over_inprocess"] = PROCESS_GOAL
                r["same_distances_current"], r["same_neighbours_below_kth_current"] = same_cur
                r["same_distances_debian"], r["same_neighbours_below_kth_debian"] = same_deb
                r["drsch_log"] = log
                rows.append(r)
                print("bits %4d threads %d: FAISS current %.3f s, FAISS %s %.3f s, drsch in process "
                      "%.4f s (%.1fx current), whole process %.3f s (%.1fx; %.2fx in process); same as "
                      "current: %s/%s, as %s: %s/%s" % (
                          bits, threads, r["faiss_current_s"]["best"], faiss.__version__,
                          r["faiss_debian_s"]["best"], r["drsch_inprocess_s"]["best"], r["inprocess_speedup"],
                          r["drsch_process_s"]["best"], r["process_speedup"], r["process_over_inprocess"],
                          *same_cur, faiss.__version__, *same_deb), flush=True)
                if not (all(same_cur) and all(same_deb)):
                    sys.exit("drsch and FAISS disagree (bits %d, threads %d)" % (bits, threads))
    meta.update(debian_faiss=faiss.__version__)
    rows = merge_rows(a, meta, rows, lambda r: (r["bits"], r["threads"]))
    for r in rows:  # a merged row of an earlier run may have the best-over-best ratio alone
        process_ratio(r)
    goals = ", ".join("%gx at %d bits" % (g, b) for b, g in GOALS.items())
    lines = ["# drsch search vs FAISS (current, built from source) and FAISS %s" % faiss.__version__, "",
             "Exact k=%d search, %d random codes, %d queries, uniform random bits. Sides run alternately, "
             "%d times each, in one process tree, each side that runs in a process of its own %.0f ms "
             "after the side before it (python3-faiss's OpenMP threads spin-wait for a few ms after its "
             "call); times are the best run (medians in the JSON):" % (
                 a.k, a.n, a.queries, a.repeat, SETTLE_S * 1e3), "",
             "- FAISS current: `IndexBinaryFlat::search` call of FAISS %s built from source at "
             "FAISS_OPT_LEVEL %s (ci/faiss_peer.cpp)" % (meta["faiss_commit"], meta["faiss_opt_level"]),
             "- FAISS %s: Debian python3-faiss, `IndexBinaryFlat.search` call" % faiss.__version__,
             "- drsch in process: the search time `drsch search` prints on stderr",
             "- drsch process: the whole `drsch search` process (load .npy, search, write results to "
             "new files: the previous run's are removed first, untimed)",
             "- process / in process: each drsch run's whole process over the search time it printed, "
             "the median of the runs (their range in brackets)", "",
             "Goals (issue 17): drsch in process at least this many times as fast as current FAISS, at 1 "
             "and 2 threads: %s; the whole process within %.1fx of in process." % (goals, PROCESS_GOAL), "",
             header(meta), "",
             "| bits | threads | FAISS current (s) | G cmp/s | FAISS %s (s) | G cmp/s | drsch in process (s) "
             "| G cmp/s | drsch process (s) | G cmp/s | in process vs current (goal) | process vs current "
             "| process / in process (goal) | same distances |" % faiss.__version__,
             "| " + " | ".join(["---"] * 14) + " |"]
    lines += [main_row(r) for r in rows]
    lines += ["", "\"same distances\": drsch's sorted distances per query equal FAISS current's and FAISS "
              "%s's, and so do the neighbours wherever the k-th distance is not tied." % faiss.__version__]
    write_outputs(a, meta, rows, lines)


def header(meta):
    return "Machine: %s. drsch %s, search kernels %s. FAISS current %s (%s).\n\nCommand%s: %s" % (
        meta["machine"], meta["drsch_commit"], meta.get("drsch_isa", "unknown"), meta["faiss_commit"],
        meta["faiss_opt_level"],
        "s" if len(meta["commands"]) > 1 else "", ", then ".join("`%s`" % c for c in meta["commands"]))


def main_row(r):
    goal, pgoal = r["goal_inprocess_speedup"], r["goal_process_over_inprocess"]
    met = "(>= %gx %s)" % (goal, "met" if r["inprocess_speedup"] >= goal else "NOT met") if goal else "(no goal)"
    pmet = "(%.2f-%.2f; <= %.1fx %s)" % (min(r["process_over_inprocess_runs"]), max(r["process_over_inprocess_runs"]),
                                         pgoal, "met" if r["process_over_inprocess"] <= pgoal else "NOT met")
    return "| %d | %d | %.3f | %.3f | %.3f | %.3f | %.4f | %.2f | %.3f | %.2f | %.1fx %s | %.1fx | %.2fx %s | %s |" % (
        r["bits"], r["threads"], r["faiss_current_s"]["best"], r["faiss_current_gcmp_s"],
        r["faiss_debian_s"]["best"], r["faiss_debian_gcmp_s"], r["drsch_inprocess_s"]["best"],
        r["drsch_inprocess_gcmp_s"], r["drsch_process_s"]["best"], r["drsch_process_gcmp_s"],
        r["inprocess_speedup"], met, r["process_speedup"], r["process_over_inprocess"], pmet,
        yes(r["same_distances_current"] and r["same_distances_debian"]))


def grid(a, meta):
    """FAISS's benchs/bench_hamming_knn.py grid: FAISS current (hc and mc) against drsch in process."""
    rng = np.random.default_rng(a.seed)
    ks = [int(k) for k in a.grid_k.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dbp, qp = os.path.join(tmp, "db.npy"), os.path.join(tmp, "q.npy")
        out, pout = os.path.join(tmp, "r"), os.path.join(tmp, "peer")
        for nbytes in [int(d) for d in a.grid_bytes.split(",")]:
            db = rng.integers(0, 256, size=(a.grid_n, nbytes), dtype=np.uint8)
            q = rng.integers(0, 256, size=(a.grid_queries, nbytes), dtype=np.uint8)
            np.save(dbp, db)
            np.save(qp, q)
            drsch_ok = nbytes * 8 <= HM_MAX_BITS
            faiss_t = {(v, k): [] for v in ("hc", "mc") for k in ks}
            drsch_t = {k: [] for k in ks}
            agreement = {}
            for rep in range(a.repeat):
                res = run_peer(a.peer, dbp, qp, ks, ["hc", "mc"], 1, pout if rep == 0 else None)
                for key, t in res.items():
                    if t is not None:
                        faiss_t[key].append(t)
                if not drsch_ok:
                    continue
                for k in ks:
                    _, st, _ = run_drsch(a.drsch, dbp, qp, k, 1, out)
                    drsch_t[k].append(st)
                    if rep == 0:
                        dd, di = np.load(out + ".distances.npy"), np.load(out + ".indices.npy")
                        agreement[k] = [agree(dd, di, *peer_result(pout, v, k, a.grid_queries))
                                        for v in ("hc", "mc") if res[(v, k)] is not None]
            for k in ks:
                inf = float("inf")  # a variant that ran out of memory
                hc, mc = [statistics.median(faiss_t[(v, k)]) if faiss_t[(v, k)] else inf for v in ("hc", "mc")]
                best = "hc" if hc <= mc else "mc"
                r = dict(bytes=nbytes, bits=nbytes * 8, k=k, n=a.grid_n, queries=a.grid_queries, threads=1,
                         faiss_hc_s=stats(faiss_t[("hc", k)]) if hc < inf else None,
                         faiss_mc_s=stats(faiss_t[("mc", k)]) if mc < inf else None,
                         faiss_best_variant=best, faiss_best_s=min(hc, mc))
                if drsch_ok:
                    r["drsch_inprocess_s"] = stats(drsch_t[k])
                    r["drsch_s"] = statistics.median(drsch_t[k])
                    r["speedup"] = r["faiss_best_s"] / r["drsch_s"]
                    r["ahead"] = r["speedup"] > 1.0
                    r["same_distances"] = all(s[0] for s in agreement[k])
                    r["same_neighbours_below_kth"] = all(s[1] for s in agreement[k])
                else:
                    r["drsch_s"] = None
                    r["note"] = "drsch searches codes of at most %d bits (HM_MAX_BITS)" % HM_MAX_BITS
                rows.append(r)
                print("%4d bytes k=%3d: FAISS hc %.4f s, mc %.4f s (inf: out of memory); drsch %s%s" % (
                    nbytes, k, hc, mc, "%.4f s (%.2fx, same distances %s)" % (
                        r["drsch_s"], r["speedup"], r["same_distances"]) if drsch_ok else "n/a", ""),
                    flush=True)
                if drsch_ok and not (r["same_distances"] and r["same_neighbours_below_kth"]):
                    sys.exit("drsch and FAISS disagree (%d bytes, k %d)" % (nbytes, k))
    rows = merge_rows(a, meta, rows, lambda r: (r["bytes"], r["k"]))
    write_outputs(a, meta, rows, grid_lines(meta, rows))


def grid_lines(meta, rows):
    sizes = ", ".join(str(b) for b in sorted({r["bytes"] for r in rows}))
    ks = ", ".join(str(k) for k in sorted({r["k"] for r in rows}))
    runs = sorted({len(r["faiss_hc_s"]["runs"]) for r in rows})

    def med(st):
        return "%.4f" % st["median"] if st else "out of memory"

    lines = ["# drsch vs FAISS current on FAISS's Hamming k-NN benchmark grid", "",
             "The grid of FAISS's benchs/bench_hamming_knn.py: 1 thread, %d database codes, %d queries "
             "(uniform random bits, numpy seed %d), codes of %s bytes, k in %s. FAISS current: "
             "`hammings_knn_hc` (ordered) and `hammings_knn_mc`, the two variants of `faiss.knn_hamming`, "
             "timed around the call (ci/faiss_peer.cpp); the faster variant's median counts. drsch: the "
             "search time `drsch search --threads 1` prints. Median of the runs column's number of runs "
             "(%s), sides alternating per run. \"out of memory\": hammings_knn_mc allocates queries x "
             "(bits + 1) x k labels (42 GB at 2048 bits, k = 256), more than this machine has." % (
                 rows[0]["n"], rows[0]["queries"], meta["seed"], sizes, ks, " or ".join(map(str, runs))), "",
             header(meta), "",
             "| bytes | bits | k | runs | FAISS hc (s) | FAISS mc (s) | FAISS best (s) | drsch (s) "
             "| FAISS best / drsch | drsch ahead | same distances |",
             "| " + " | ".join(["---"] * 11) + " |"]
    for r in rows:
        if r.get("drsch_s") is None:
            tail = "n/a | n/a | n/a (> %d bits) | n/a |" % HM_MAX_BITS
        else:
            tail = "%.4f | %.2fx | %s | %s |" % (r["drsch_s"], r["speedup"], "yes" if r["ahead"] else "NO",
                                                yes(r["same_distances"]))
        lines.append("| %d | %d | %d | %d | %s | %s | %.4f (%s) | %s" % (
            r["bytes"], r["bits"], r["k"], len(r["faiss_hc_s"]["runs"]), med(r["faiss_hc_s"]),
            med(r["faiss_mc_s"]), r["faiss_best_s"], r["faiss_best_variant"], tail))
    ahead = [r for r in rows if r.get("drsch_s") is not None]
    lines += ["", "drsch ahead in %d of %d cells." % (sum(r["ahead"] for r in ahead), len(ahead))]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drsch", default="build/drsch", help="drsch executable (default build/drsch)")
    ap.add_argument("--n", type=int, default=1_000_000, help="database codes (default 1000000)")
    ap.add_argument("--queries", type=int, default=1000, help="queries (default 1000)")
    ap.add_argument("--k", type=int, default=100, help="neighbours per query (default 100)")
    ap.add_argument("--bits", default="64,256", help="code lengths, comma-separated (default 64,256; "
                    "ci/bench-vs-faiss --faiss-src passes 64,128,256,512)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="numpy seed of the random codes (default 1)")
    ap.add_argument("--md", help="write a Markdown table here")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--merge", action="store_true", help="keep the rows of the existing --json file that "
                    "this run does not measure (to split a long comparison over several runs)")
    ap.add_argument("--peer", help="ci/faiss_peer built against FAISS from source (ci/bench-vs-faiss "
                    "--faiss-src builds it and passes this)")
    ap.add_argument("--faiss-commit", default="unknown", help="recorded: the commit of that FAISS")
    ap.add_argument("--faiss-opt-level", default="unknown", help="recorded: its FAISS_OPT_LEVEL")
    ap.add_argument("--faiss-src", default="", help="recorded: its source tree")
    ap.add_argument("--grid", action="store_true", help="with --peer: FAISS's bench_hamming_knn.py grid")
    ap.add_argument("--grid-bytes", default="4,8,16,32,64,128,256,512",
                    help="--grid code lengths in bytes (default 4,8,...,512: FAISS's grid goes on to "
                    "1024, but drsch stops at %d bits, so 1024 runs FAISS only)" % HM_MAX_BITS)
    ap.add_argument("--grid-k", default="1,4,16,64,256", help="--grid k values (default 1,4,16,64,256)")
    ap.add_argument("--grid-n", type=int, default=30000, help="--grid database codes (default 30000)")
    ap.add_argument("--grid-queries", type=int, default=10000, help="--grid queries (default 10000)")
    ap.add_argument("--render", action="store_true", help="with --grid: rewrite --md from --json, "
                    "measuring nothing")
    a = ap.parse_args()
    if a.grid and a.render:
        with open(a.json) as f:
            data = json.load(f)
        return write_outputs(argparse.Namespace(json=None, md=a.md), data["meta"], data["rows"],
                             grid_lines(data["meta"], data["rows"]))
    if a.grid and not a.peer:
        ap.error("--grid needs --peer")
    if not a.peer:
        return debian_only(a)
    meta = dict(machine=machine(a.drsch), drsch_commit=drsch_version(a.drsch),
                drsch_isa=drsch_isa(a.drsch), faiss_commit=a.faiss_commit,
                faiss_opt_level=a.faiss_opt_level, faiss_src=a.faiss_src, numpy=np.__version__, seed=a.seed,
                repeat=a.repeat,
                commands=[os.environ.get("BENCH_VS_FAISS_COMMAND") or " ".join(sys.argv)])
    (grid if a.grid else main_table)(a, meta)


if __name__ == "__main__":
    main()
