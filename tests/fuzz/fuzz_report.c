/* libFuzzer target: the JSON report reader of `drsch compare` (rp_read_parse: cJSON_Parse and
 * the extraction of names, times, aggregates and counters), then a walk over each entry's
 * counters as the comparison does. Checks memory safety, leaks and hangs only. */
#include <cjson/cJSON.h>
#include <string.h>

#include "report_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_read_report r;
    drsch_error err;
    if (rp_read_parse((const char *)data, size, "fuzz.json", &r, &err) == DRSCH_OK) {
        volatile double sink = 0;
        for (size_t i = 0; i < r.n; i++) {
            rp_read_entry *e = &r.e[i];
            for (int t = 0; t < e->nt; t++)
                sink += e->times[t];
            (void)rp_read_find(&r, e->name);
            cJSON *k;
            cJSON_ArrayForEach(k, e->counters)
            {
                if (cJSON_IsNumber(k) && k->string && !strncmp(k->string, "mAP", 3))
                    sink += k->valuedouble;
            }
        }
        (void)sink;
        rp_read_free(&r);
    }
    return 0;
}
