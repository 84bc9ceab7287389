/* Hardware counters through Linux perf_event_open (machine.h). Each event is opened on its own
 * (not as a group, so that a CPU without one of them still counts the others), for this process
 * and, with `inherit`, every thread it creates afterwards; reading an inherited event gives the
 * sum over the threads. User space only (exclude_kernel), which perf_event_paranoid 2, the usual
 * default, allows for one's own process. */
#define _GNU_SOURCE
#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/perf_event.h>
#include <sys/syscall.h>
#endif

struct mc_counters {
    int fd[MC_NCOUNTERS];
    uint64_t at_start[MC_NCOUNTERS];
    char why[256];
};

static const char *const names[MC_NCOUNTERS] = {"cycles", "instructions", "l1d_misses",
                                                "llc_misses"};

const char *mc_counter_name(int which)
{
    return which >= 0 && which < MC_NCOUNTERS ? names[which] : "unknown";
}

#if defined(__linux__)
static int open_event(uint32_t type, uint64_t config, int *errnum)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = type;
    a.config = config;
    a.inherit = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    *errnum = fd < 0 ? errno : 0;
    return fd;
}

static long paranoid_level(void)
{
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    long v = -100;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -100;
        fclose(f);
    }
    return v;
}
#endif

mc_counters *mc_counters_open(void)
{
    mc_counters *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < MC_NCOUNTERS; i++)
        c->fd[i] = -1;
#if defined(__linux__)
    const uint64_t cache_read_miss = (uint64_t)PERF_COUNT_HW_CACHE_OP_READ << 8 |
                                     (uint64_t)PERF_COUNT_HW_CACHE_RESULT_MISS << 16;
    const struct {
        uint32_t type;
        uint64_t config;
    } ev[MC_NCOUNTERS] = {
        {PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
        {PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
        {PERF_TYPE_HW_CACHE, PERF_COUNT_HW_CACHE_L1D | cache_read_miss},
        {PERF_TYPE_HW_CACHE, PERF_COUNT_HW_CACHE_LL | cache_read_miss},
    };
    int first_err = 0;
    for (int i = 0; i < MC_NCOUNTERS; i++) {
        int e;
        c->fd[i] = open_event(ev[i].type, ev[i].config, &e);
        if (c->fd[i] < 0 && i <= MC_INSTRUCTIONS && !first_err)
            first_err = e;
    }
    if (first_err) {
        const char *cause = "";
        if (first_err == ENOENT || first_err == EOPNOTSUPP || first_err == ENODEV)
            cause = " (no hardware performance monitoring unit visible: a virtual machine or "
                    "container that does not expose one)";
        else if (first_err == EACCES || first_err == EPERM)
            cause = " (not permitted: see /proc/sys/kernel/perf_event_paranoid and "
                    "CAP_PERFMON)";
        else if (first_err == ENOSYS)
            cause = " (the kernel has no perf events)";
        snprintf(c->why, sizeof c->why,
                 "perf_event_open(cycles, instructions): %s%s; perf_event_paranoid %ld",
                 strerror(first_err), cause, paranoid_level());
    }
#else
    snprintf(c->why, sizeof c->why, "hardware counters are read with Linux perf_event_open only");
#endif
    return c;
}

const char *mc_counters_unavailable(const mc_counters *c)
{
    if (!c)
        return "the counters could not be allocated";
    return c->why[0] ? c->why : NULL;
}

static uint64_t read_fd(int fd)
{
    uint64_t v = 0;
    if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v)
        return 0;
    return v;
}

void mc_counters_start(mc_counters *c)
{
    if (!c)
        return;
    for (int i = 0; i < MC_NCOUNTERS; i++)
        c->at_start[i] = read_fd(c->fd[i]);
}

void mc_counters_stop(mc_counters *c, mc_counts *out)
{
    for (int i = 0; i < MC_NCOUNTERS; i++) {
        out->have[i] = c && c->fd[i] >= 0;
        if (!out->have[i]) {
            out->value[i] = 0;
            continue;
        }
        uint64_t v = read_fd(c->fd[i]);
        out->value[i] = out->have[i] && v >= c->at_start[i] ? (double)(v - c->at_start[i]) : 0;
    }
}

void mc_counters_close(mc_counters *c)
{
    if (!c)
        return;
    for (int i = 0; i < MC_NCOUNTERS; i++)
        if (c->fd[i] >= 0)
            close(c->fd[i]);
    free(c);
}
