// Every public header of drsch, included from C++: they declare their functions extern "C", so
// a C++ program links them from libdrsch. Built by examples/CMakeLists.txt; prints the
// kernels chosen for this CPU.
#include <drsch/baselines.h>
#include <drsch/datasets.h>
#include <drsch/dh.h>
#include <drsch/experiment.h>
#include <drsch/fileio.h>
#include <drsch/hamming.h>
#include <drsch/machine.h>
#include <drsch/metrics.h>
#include <drsch/nn.h>
#include <drsch/npy.h>
#include <drsch/report.h>
#include <drsch/report_compare.h>
#include <drsch/report_read.h>
#include <drsch/reproduce.h>
#include <drsch/rng.h>
#include <drsch/status.h>
#include <drsch/train.h>
#include <drsch/version.h>

#include <cstdio>

int main()
{
    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK) {
        std::fprintf(stderr, "headers_cxx: %s\n", err.msg);
        return 1;
    }
    std::printf("drsch %s, kernels for %s; status text: %s\n", drsch_version(),
                hm_isa_name(hm_isa_active()), drsch_strstatus(DRSCH_ERR_NOMEM));
    return 0;
}
