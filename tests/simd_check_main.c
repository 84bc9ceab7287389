/* Plain runner of the simd/ checks, for builds without Criterion (the aarch64 cross build run
 * under qemu by ci/neon-check). Prints one line per check, with its time; exits 1 if any check
 * failed. */
#include <stdio.h>
#include <time.h>

#include "hamming.h"
#include "simd_checks.h"

int main(void)
{
    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK)
        fprintf(stderr, "simd_check: %s\n", err.msg);
    printf("simd_check: active ISA %s; supported:", hm_isa_name(hm_isa_active()));
    for (int i = 0; i < HM_ISA_COUNT; i++)
        if (hm_isa_supported((hm_isa)i))
            printf(" %s", hm_isa_name((hm_isa)i));
    printf("\n");
    long total = 0;
    for (size_t i = 0; i < simd_checks_count; i++) {
        simd_check_report r = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long f = simd_checks[i].run(&r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%-18s %s in %.2f s", simd_checks[i].name, f ? "FAIL" : "ok",
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        if (f)
            printf(" (%ld failures; first: %s)", f, r.msg);
        printf("\n");
        total += f;
    }
    printf("simd_check: %zu checks, %ld failures\n", simd_checks_count, total);
    return total ? 1 : 0;
}
