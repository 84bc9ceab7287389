// The FAISS side of ci/bench-vs-faiss: exact k-NN Hamming search with a FAISS built from source
// (ci/bench-vs-faiss --faiss-src DIR compiles this file against that build; it is never part of
// drsch's build or CI). Reads uint8 (N, bytes) .npy codes, runs each VARIANT for each K with
// omp_set_num_threads(T), times only the search call, and prints one line per (variant, k):
//   variant=flat k=100 best=0.123456 median=0.124000 runs=0.124,0.123456,...
// or, when the variant's memory cannot be allocated, variant=mc k=256 error=out-of-memory.
// With --out PREFIX it also writes PREFIX.VARIANT.kK.dist (int32, Q x K) and .idx (int64).
// Variants: flat = IndexBinaryFlat::search (FAISS's default: heap, 32-query batches),
//           hc = hammings_knn_hc (ordered), mc = hammings_knn_mc; the two functions
//           faiss.knn_hamming(variant="hc"/"mc") calls in benchs/bench_hamming_knn.py.
#include <faiss/IndexBinaryFlat.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/hamming.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace
{

struct Codes {
    size_t n = 0, bytes = 0;
    std::vector<uint8_t> data;
};

// A minimal reader for what numpy.save writes for a C-ordered 2-D uint8 array.
Codes read_npy(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        throw std::runtime_error("cannot open " + path);
    char magic[8];
    f.read(magic, 8);
    if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        throw std::runtime_error(path + ": not a .npy file");
    size_t hlen = 0;
    if (magic[6] == 1) {
        unsigned char l[2];
        f.read(reinterpret_cast<char *>(l), 2);
        hlen = l[0] | (size_t)l[1] << 8;
    } else {
        unsigned char l[4];
        f.read(reinterpret_cast<char *>(l), 4);
        hlen = l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    }
    std::string h(hlen, '\0');
    f.read(&h[0], hlen);
    if (!f || h.find("'|u1'") == std::string::npos ||
        h.find("'fortran_order': False") == std::string::npos)
        throw std::runtime_error(path + ": expected a C-ordered uint8 array");
    size_t p = h.find("'shape': (");
    Codes c;
    if (p == std::string::npos || std::sscanf(h.c_str() + p + 10, "%zu, %zu)", &c.n, &c.bytes) != 2)
        throw std::runtime_error(path + ": expected a 2-D shape");
    c.data.resize(c.n * c.bytes);
    f.read(reinterpret_cast<char *>(c.data.data()), (std::streamsize)c.data.size());
    if (!f)
        throw std::runtime_error(path + ": truncated");
    return c;
}

std::vector<std::string> split(const std::string &s)
{
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        out.push_back(item);
    return out;
}

void write_raw(const std::string &path, const void *p, size_t bytes)
{
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(p, 1, bytes, f) != bytes || std::fclose(f) != 0)
        throw std::runtime_error("cannot write " + path);
}

// One search of `variant`; returns the seconds of the search call alone.
double search_once(const std::string &variant, const faiss::IndexBinaryFlat &index, const Codes &db,
                   const Codes &q, size_t k, int32_t *dist, int64_t *idx)
{
    auto t0 = std::chrono::steady_clock::now();
    if (variant == "flat") {
        index.search((faiss::idx_t)q.n, q.data.data(), (faiss::idx_t)k, dist, idx);
    } else if (variant == "hc") {
        faiss::int_maxheap_array_t heap = {q.n, k, idx, dist};
        faiss::hammings_knn_hc(&heap, q.data.data(), db.data.data(), db.n, db.bytes, 1);
    } else if (variant == "mc") {
        faiss::hammings_knn_mc(q.data.data(), db.data.data(), q.n, db.n, k, db.bytes, dist, idx);
    } else {
        throw std::runtime_error("unknown variant " + variant + " (flat, hc or mc)");
    }
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(t1 - t0).count();
}

const char *usage =
    "usage: faiss_peer --db DB.npy --queries Q.npy --k K[,K...] [--variants flat,hc,mc]\n"
    "                  [--threads T] [--repeat R] [--out PREFIX]\n";

} // namespace

int main(int argc, char **argv)
{
    std::string db_path, q_path, ks = "100", variants = "flat", out;
    int threads = 1, repeat = 1;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "faiss_peer: %s needs a value\n%s", a.c_str(), usage);
            return 2;
        }
        std::string v = argv[++i];
        if (a == "--db")
            db_path = v;
        else if (a == "--queries")
            q_path = v;
        else if (a == "--k")
            ks = v;
        else if (a == "--variants")
            variants = v;
        else if (a == "--threads")
            threads = std::atoi(v.c_str());
        else if (a == "--repeat")
            repeat = std::atoi(v.c_str());
        else if (a == "--out")
            out = v;
        else {
            std::fprintf(stderr, "faiss_peer: unknown option %s\n%s", a.c_str(), usage);
            return 2;
        }
    }
    if (db_path.empty() || q_path.empty() || threads < 1 || repeat < 1) {
        std::fputs(usage, stderr);
        return 2;
    }
    try {
        Codes db = read_npy(db_path), q = read_npy(q_path);
        if (db.bytes != q.bytes)
            throw std::runtime_error("database and queries differ in code length");
        omp_set_num_threads(threads);
        faiss::IndexBinaryFlat index((faiss::idx_t)db.bytes * 8);
        index.add((faiss::idx_t)db.n, db.data.data());
        for (const std::string &ktext : split(ks)) {
            size_t k = std::strtoull(ktext.c_str(), nullptr, 10);
            if (k < 1 || k > db.n)
                throw std::runtime_error("k " + ktext + " out of 1..N");
            std::vector<int32_t> dist(q.n * k);
            std::vector<int64_t> idx(q.n * k);
            for (const std::string &variant : split(variants)) {
                std::vector<double> runs;
                try {
                    for (int r = 0; r < repeat; r++)
                        runs.push_back(
                            search_once(variant, index, db, q, k, dist.data(), idx.data()));
                } catch (const std::bad_alloc &) {
                    // hammings_knn_mc allocates Q x (bits + 1) x K labels: 42 GB at 2048 bits
                    // and K = 256 for 10,000 queries.
                    std::printf("variant=%s k=%zu error=out-of-memory\n", variant.c_str(), k);
                    std::fflush(stdout);
                    continue;
                }
                std::vector<double> sorted = runs;
                std::sort(sorted.begin(), sorted.end());
                std::printf("variant=%s k=%zu best=%.6f median=%.6f runs=", variant.c_str(), k,
                            sorted.front(), sorted[sorted.size() / 2]);
                for (size_t r = 0; r < runs.size(); r++)
                    std::printf("%s%.6f", r ? "," : "", runs[r]);
                std::printf("\n");
                std::fflush(stdout);
                if (!out.empty()) {
                    std::string base = out + "." + variant + ".k" + std::to_string(k);
                    write_raw(base + ".dist", dist.data(), dist.size() * sizeof dist[0]);
                    write_raw(base + ".idx", idx.data(), idx.size() * sizeof idx[0]);
                }
            }
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss_peer: %s\n", e.what());
        return 1;
    }
    return 0;
}
