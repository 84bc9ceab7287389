/* ISA detection and dispatch: which kernels are compiled in, which the CPU and OS support
 * (CPUID feature bits and the XCR0 register, read with xgetbv, which says whether the OS saves
 * the YMM / ZMM / opmask state), the DRSCH_FORCE_ISA override, and the active kernel table,
 * chosen once on first use.
 *
 * Compiled WITHOUT ISA flags, so nothing here executes an instruction the CPU may lack. Each
 * kernel is gated on its own feature bits (AVX-512 F + BW + VBMI + VPOPCNTDQ), never on a CPU
 * family. Does not benchmark or pick kernels by speed: the widest supported ISA wins.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simd_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HM_X86 1
#endif

static const char *const ISA_NAMES[HM_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

const char *hm_isa_name(hm_isa isa)
{
    return (unsigned)isa < HM_ISA_COUNT ? ISA_NAMES[isa] : "unknown";
}

drsch_status hm_isa_parse(const char *name, hm_isa *out, drsch_error *err)
{
    for (int i = 0; i < HM_ISA_COUNT; i++) {
        if (name && !strcmp(name, ISA_NAMES[i])) {
            *out = (hm_isa)i;
            return DRSCH_OK;
        }
    }
    return drsch_fail(err, DRSCH_ERR_ISA,
                      "unknown ISA '%s' (expected scalar, avx2, avx512 or neon)",
                      name ? name : "(null)");
}

const hm_kernels *hm_kernels_for(hm_isa isa)
{
    switch (isa) {
    case HM_ISA_SCALAR: return &hm_kernels_scalar;
#if defined(DRSCH_SIMD_HAVE_AVX2)
    case HM_ISA_AVX2: return &hm_kernels_avx2;
#endif
#if defined(DRSCH_SIMD_HAVE_AVX512)
    case HM_ISA_AVX512: return &hm_kernels_avx512;
#endif
#if defined(DRSCH_SIMD_HAVE_NEON)
    case HM_ISA_NEON: return &hm_kernels_neon;
#endif
    default: return NULL;
    }
}

bool hm_isa_compiled(hm_isa isa) { return hm_kernels_for(isa) != NULL; }

#if defined(HM_X86)
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Bits of CPUID leaf 1 ECX, leaf 7 EBX / ECX and XCR0 that the kernels need. */
#define ECX1_POPCNT (1u << 23)
#define ECX1_OSXSAVE (1u << 27)
#define ECX1_AVX (1u << 28)
#define EBX7_AVX2 (1u << 5)
#define EBX7_AVX512F (1u << 16)
#define EBX7_AVX512BW (1u << 30)
#define ECX7_AVX512_VBMI (1u << 1)
#define ECX7_AVX512_VPOPCNTDQ (1u << 14)
#define XCR0_SSE_AVX 0x06u /* XMM + YMM upper halves */
#define XCR0_AVX512 0xe6u  /* + opmask, ZMM0-15 upper halves, ZMM16-31 */

static bool cpu_has(hm_isa isa)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    unsigned ecx1 = c;
    if (!(ecx1 & ECX1_OSXSAVE) || !(ecx1 & ECX1_AVX) || !(ecx1 & ECX1_POPCNT))
        return false;
    uint64_t xcr0 = read_xcr0();
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    if (isa == HM_ISA_AVX2)
        return (xcr0 & XCR0_SSE_AVX) == XCR0_SSE_AVX && (b & EBX7_AVX2);
    if (isa == HM_ISA_AVX512)
        return (xcr0 & XCR0_AVX512) == XCR0_AVX512 && (b & EBX7_AVX512F) && (b & EBX7_AVX512BW) &&
               (c & ECX7_AVX512_VBMI) && (c & ECX7_AVX512_VPOPCNTDQ);
    return false;
}
#endif

bool hm_cpu_intel(void)
{
#if defined(HM_X86)
    static _Atomic int known = -1; /* CPUID traps to the hypervisor in a VM: asked once */
    int v = known;
    if (v < 0) {
        unsigned a, b, c, d;
        /* the vendor string is EBX, EDX, ECX: "Genu" "ineI" "ntel" */
        v = __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u && d == 0x49656e69u &&
            c == 0x6c65746eu;
        known = v;
    }
    return v;
#else
    return false;
#endif
}

bool hm_isa_supported(hm_isa isa)
{
    if (!hm_isa_compiled(isa))
        return false;
    switch (isa) {
    case HM_ISA_SCALAR: return true;
#if defined(HM_X86)
    case HM_ISA_AVX2:
    case HM_ISA_AVX512: return cpu_has(isa);
#endif
#if defined(__aarch64__)
    case HM_ISA_NEON: return true; /* Advanced SIMD is mandatory on AArch64 */
#endif
    default: return false;
    }
}

hm_isa hm_isa_best(void)
{
    static const hm_isa order[] = {HM_ISA_AVX512, HM_ISA_AVX2, HM_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (hm_isa_supported(order[i]))
            return order[i];
    return HM_ISA_SCALAR;
}

/* What an ISA's kernels need, as a person reads it. */
static const char *isa_needs(hm_isa isa)
{
    switch (isa) {
    case HM_ISA_AVX2: return "AVX2 and POPCNT";
    case HM_ISA_AVX512: return "AVX-512 F+BW+VBMI+VPOPCNTDQ";
    case HM_ISA_NEON: return "NEON (AArch64)";
    default: return hm_isa_name(isa);
    }
}

/* how: where the choice came from, ahead of the ISA's name ("" or "DRSCH_FORCE_ISA="). */
static drsch_status check_supported(hm_isa isa, const char *how, drsch_error *err)
{
    if (!hm_isa_compiled(isa))
        return drsch_fail(err, DRSCH_ERR_ISA,
                          "%s%s: this build of drsch has no %s kernels (best here: %s)", how,
                          hm_isa_name(isa), hm_isa_name(isa), hm_isa_name(hm_isa_best()));
    if (!hm_isa_supported(isa))
        return drsch_fail(err, DRSCH_ERR_ISA, "%s%s: this CPU does not support %s (best here: %s)",
                          how, hm_isa_name(isa), isa_needs(isa), hm_isa_name(hm_isa_best()));
    return DRSCH_OK;
}

/* -1 until chosen; then an hm_isa. Racing first uses all store the same value. */
static _Atomic int g_active = -1;

drsch_status hm_isa_init(drsch_error *err)
{
    const char *env = getenv("DRSCH_FORCE_ISA");
    hm_isa isa = hm_isa_best();
    drsch_status st = DRSCH_OK;
    if (env && *env) {
        hm_isa forced = HM_ISA_SCALAR;
        drsch_error e;
        st = hm_isa_parse(env, &forced, &e);
        if (st != DRSCH_OK)
            st = drsch_fail(err, st, "DRSCH_FORCE_ISA: %s", e.msg);
        else if ((st = check_supported(forced, "DRSCH_FORCE_ISA=", err)) == DRSCH_OK)
            isa = forced;
    }
    int expected = -1;
    atomic_compare_exchange_strong(&g_active, &expected, (int)isa);
    return st;
}

hm_isa hm_isa_active(void)
{
    int a = atomic_load(&g_active);
    if (a < 0) {
        hm_isa_init(NULL);
        a = atomic_load(&g_active);
    }
    return (hm_isa)a;
}

drsch_status hm_isa_set(hm_isa isa, drsch_error *err)
{
    if ((unsigned)isa >= HM_ISA_COUNT)
        return drsch_fail(err, DRSCH_ERR_ISA, "ISA number %d is none of scalar, avx2, avx512, neon",
                          (int)isa);
    drsch_status st = check_supported(isa, "", err);
    if (st == DRSCH_OK)
        atomic_store(&g_active, (int)isa);
    return st;
}

const hm_kernels *hm_active_kernels(void) { return hm_kernels_for(hm_isa_active()); }
