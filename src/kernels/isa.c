/* Run-time ISA selection for the kernels: cpuid + xgetbv decide what the CPU and OS
 * support; VLMN_ISA=ref|avx2|avx512 in the environment (or vlmn_isa_force) picks a
 * lower level. "avx512" means F+BW+VL+DQ+BF16+VNNI, as the *_avx512.c files are built. */
#include "kernels/kernels_int.h"

#include <cpuid.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static vlmn_isa detect_best(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return VLMN_ISA_REF;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
         f16c = c & (1u << 29);
    if (!osxsave || !avx) return VLMN_ISA_REF;
    unsigned long long xcr0 = read_xcr0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (!ymm_os || __get_cpuid_max(0, NULL) < 7) return VLMN_ISA_REF;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    bool vnni = c & (1u << 11);
    unsigned int a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    bool bf16 = a1 & (1u << 5);
    if (!(avx2 && fma && f16c)) return VLMN_ISA_REF;
    if (zmm_os && f512 && dq && bw && vl && vnni && bf16) return VLMN_ISA_AVX512;
    return VLMN_ISA_AVX2;
}

static atomic_int best_isa = -1;   /* what the CPU supports */
static atomic_int active_isa = -1; /* what the kernels use */

static vlmn_isa best(void)
{
    int b = atomic_load(&best_isa);
    if (b < 0) {
        b = (int)detect_best();
        atomic_store(&best_isa, b);
    }
    return (vlmn_isa)b;
}

bool vlmn_isa_supported(vlmn_isa isa) { return (int)isa >= 0 && isa <= best(); }

vlmn_isa vlmn_isa_active(void)
{
    int a = atomic_load(&active_isa);
    if (a >= 0) return (vlmn_isa)a;
    vlmn_isa isa = best();
    const char *e = getenv("VLMN_ISA");
    if (e && *e) {
        vlmn_isa want = isa;
        if (!strcmp(e, "ref")) want = VLMN_ISA_REF;
        else if (!strcmp(e, "avx2")) want = VLMN_ISA_AVX2;
        else if (!strcmp(e, "avx512")) want = VLMN_ISA_AVX512;
        else fprintf(stderr, "vlmn: VLMN_ISA=%s not known (ref|avx2|avx512); using %s\n", e,
                     vlmn_isa_name(isa));
        if (want > isa)
            fprintf(stderr, "vlmn: VLMN_ISA=%s not supported by this CPU; using %s\n", e,
                    vlmn_isa_name(isa));
        else
            isa = want;
    }
    int expect = -1;
    atomic_compare_exchange_strong(&active_isa, &expect, (int)isa);
    return (vlmn_isa)atomic_load(&active_isa);
}

const char *vlmn_isa_name(vlmn_isa isa)
{
    switch (isa) {
    case VLMN_ISA_REF: return "ref";
    case VLMN_ISA_AVX2: return "avx2";
    case VLMN_ISA_AVX512: return "avx512";
    }
    return "?";
}

const char *vlmn_precision_name(vlmn_precision prec)
{
    switch (prec) {
    case VLMN_PREC_FAST: return "fast";
    case VLMN_PREC_EXACT: return "exact";
    case VLMN_PREC_FASTEST: return "fastest";
    }
    return "?";
}

vlmn_status vlmn_precision_parse(const char *name, vlmn_precision *out)
{
    static const vlmn_precision all[] = {VLMN_PREC_FAST, VLMN_PREC_EXACT, VLMN_PREC_FASTEST};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && !strcmp(name, vlmn_precision_name(all[i]))) {
            *out = all[i];
            return VLMN_OK;
        }
    return vlmn_error(VLMN_E_ARG, "unknown precision '%s' (fast, exact, fastest)", name ? name : "");
}

vlmn_status vlmn_isa_force(vlmn_isa isa)
{
    if (!vlmn_isa_supported(isa))
        return vlmn_error(VLMN_E_UNSUPPORTED, "ISA %s not supported by this CPU",
                          vlmn_isa_name(isa));
    atomic_store(&active_isa, (int)isa);
    return VLMN_OK;
}
