"""Side-by-side: the whole `drsch search` process (loading .npy codes, searching, writing the
results) against FAISS's IndexBinaryFlat.search call alone, on the same codes, in one run.

Exact k-NN over N random codes with Q queries, at each code length and thread count given.
Checks that both return the same distances (and the same neighbours wherever the k-th distance
is not tied), prints the speed-up, and writes a Markdown table and a JSON file of the figures.
Times are the best of --repeat runs for each side.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_drsch(exe, db, q, k, threads, out, extra):
    cmd = [exe, "search", "--db", db, "--queries", q, "--k", str(k), "--threads", str(threads),
           "--out", out] + extra
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("drsch search failed: %s\n%s" % (" ".join(cmd), p.stderr))
    return dt, p.stderr.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drsch", default="build/drsch")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--bits", default="64,256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--md", help="write a Markdown table here")
    ap.add_argument("--json", help="write the figures as JSON here")
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in [int(b) for b in a.bits.split(",")]:
            nb = bits // 8
            db = rng.integers(0, 256, size=(a.n, nb), dtype=np.uint8)
            q = rng.integers(0, 256, size=(a.queries, nb), dtype=np.uint8)
            dbp, qp, out = os.path.join(tmp, "db.npy"), os.path.join(tmp, "q.npy"), os.path.join(tmp, "r")
            np.save(dbp, db)
            np.save(qp, q)
            index = faiss.IndexBinaryFlat(bits)
            index.add(db)
            for threads in [int(t) for t in a.threads.split(",")]:
                faiss.omp_set_num_threads(threads)
                t_faiss = 1e300
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    fd, fi = index.search(q, a.k)
                    t_faiss = min(t_faiss, time.perf_counter() - t0)
                t_drsch, log = 1e300, ""
                for _ in range(a.repeat):
                    dt, log = run_drsch(a.drsch, dbp, qp, a.k, threads, out, [])
                    t_drsch = min(t_drsch, dt)
                di = np.load(out + ".indices.npy")
                dd = np.load(out + ".distances.npy")
                same_dist = bool(np.array_equal(dd, fd.astype(np.int32)))
                # Neighbours strictly closer than the k-th distance are unique; ties at the k-th
                # distance may be chosen differently (drsch keeps the lowest database indices).
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
    machine = "%s, %d cores, %s" % (cpu_model(), os.cpu_count(), platform.platform())
    meta = dict(machine=machine, faiss=faiss.__version__, numpy=np.__version__, seed=a.seed, repeat=a.repeat,
                command=" ".join(sys.argv))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=2)
        os.replace(a.json + ".tmp", a.json)
    if a.md:
        lines = ["# drsch search vs FAISS IndexBinaryFlat", "",
                 "Exact k=%d search, %d random codes, %d queries. drsch: the whole `drsch search` process "
                 "(load .npy, search, write results); FAISS %s: the `IndexBinaryFlat.search` call only. "
                 "Best of %d runs each, same codes, same run." % (a.k, a.n, a.queries, faiss.__version__, a.repeat),
                 "", "Machine: " + machine, "", "Command: `ci/bench-vs-faiss`", "",
                 "| bits | threads | FAISS search (s) | FAISS G cmp/s | drsch process (s) | drsch G cmp/s | speed-up | same distances |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append("| %d | %d | %.3f | %.3f | %.3f | %.3f | %.1fx | %s |" % (
                r["bits"], r["threads"], r["faiss_search_s"], r["faiss_gcmp_s"], r["drsch_process_s"],
                r["drsch_gcmp_s"], r["speedup"], "yes" if r["same_distances"] else "NO"))
        with open(a.md + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(a.md + ".tmp", a.md)


if __name__ == "__main__":
    main()
