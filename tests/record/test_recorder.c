/* Tests for src/record: the streaming recorder against a brute-force reference
 * written here (top-N with ties, top-8 image/text activations, stats, histogram),
 * shard merges bit-identical to a single pass, and bad-input handling. */
#include "test.h"
#include "vlmn/record.h"
#include "vlmn/model.h"
#include "core/alloc.h"

#include <stdint.h>

/* deterministic generator */
static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

typedef struct {
    int T;
    uint8_t *lab;
    float *acts; /* [L][T][F] */
} sample_t;

enum { L = 3, F = 300, NS = 60, TOPN = 7 };

static sample_t S[NS];

static void make_samples(uint64_t seed)
{
    rng_state = seed;
    for (int s = 0; s < NS; s++) {
        int T = 1 + (int)(rnd() % 40);
        S[s].T = T;
        S[s].lab = malloc((size_t)T);
        S[s].acts = malloc(sizeof(float) * L * T * F);
        for (int t = 0; t < T; t++) S[s].lab[t] = (uint8_t)(rnd() % 3);
        if (s == 5)
            for (int t = 0; t < T; t++) S[s].lab[t] = VLMN_MOD_PROMPT; /* nothing counted */
        for (int i = 0; i < L * T * F; i++) {
            /* coarse values: many ties between samples and tokens */
            int v = (int)(rnd() % 23) - 5;
            S[s].acts[i] = (float)v * 0.75f;
            if (rnd() % 50 == 0) S[s].acts[i] = (float)(rnd() % 1000) * 0.37f - 100.f;
        }
    }
}

static void free_samples(void)
{
    for (int s = 0; s < NS; s++) {
        free(S[s].lab);
        free(S[s].acts);
    }
}

static bool counted(uint8_t m, bool all, bool *img)
{
    *img = m == VLMN_MOD_IMAGE;
    return m == VLMN_MOD_IMAGE || m == VLMN_MOD_TEXT || (all && m == VLMN_MOD_PROMPT);
}

static vlmn_rec *record_subset(int mod, int rem, bool all, int threads)
{
    vlmn_rec_params p = {L, F, TOPN, threads};
    vlmn_rec *r;
    if (vlmn_rec_create(&p, &r)) return NULL;
    for (int s = 0; s < NS; s++) {
        if (s % mod != rem) continue;
        CHECK(vlmn_rec_begin_sample(r, (uint32_t)s, S[s].lab, S[s].T, all) == VLMN_OK);
        for (int l = 0; l < L; l++) vlmn_rec_capture(r, l, S[s].acts + (size_t)l * S[s].T * F, S[s].T, F);
        CHECK(vlmn_rec_end_sample(r) == VLMN_OK);
    }
    return r;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static int ref_hist_bin(float x)
{
    const float *e = vlmn_hist_edges();
    for (int b = VLMN_HIST_BINS - 1; b >= 0; b--)
        if (x >= e[b]) return b;
    return 0;
}

static void check_against_reference(vlmn_rec *r, bool all)
{
    vlmn_neuron_stats *st = vlmn_rec_stats(r);
    vlmn_top_entry *top = vlmn_rec_top(r);
    int bad = 0;
    for (int l = 0; l < L && bad < 5; l++)
        for (int j = 0; j < F && bad < 5; j++) {
            int64_t k = (int64_t)l * F + j;
            float gmax = -INFINITY, gmin = INFINITY;
            double sum = 0;
            uint64_t cnt = 0;
            uint32_t hist[VLMN_HIST_BINS] = {0};
            /* candidates: (max, sample) */
            float smax[NS];
            for (int s = 0; s < NS; s++) {
                smax[s] = -INFINITY;
                for (int t = 0; t < S[s].T; t++) {
                    bool img;
                    if (!counted(S[s].lab[t], all, &img)) continue;
                    float v = S[s].acts[((size_t)l * S[s].T + t) * F + j];
                    if (v > smax[s]) smax[s] = v;
                    if (v > gmax) gmax = v;
                    if (v < gmin) gmin = v;
                    sum += v;
                    cnt++;
                    hist[ref_hist_bin(v)]++;
                }
            }
            if (st[k].max_act != gmax || st[k].min_act != gmin || st[k].count != cnt ||
                memcmp(hist, st[k].hist, sizeof hist) || fabs(st[k].sum - sum) > 1e-6 * (1 + fabs(sum))) {
                fprintf(stderr, "  stats differ at %d/%d\n", l, j);
                bad++;
                test_failed_checks_++;
            }
            /* reference top-N: selection by (max desc, sample asc) */
            bool used[NS] = {0};
            for (int rank = 0; rank < TOPN; rank++) {
                int best = -1;
                for (int s = 0; s < NS; s++) {
                    if (used[s] || smax[s] == -INFINITY) continue;
                    if (best < 0 || smax[s] > smax[best]) best = s; /* strict: lower index wins ties */
                }
                const vlmn_top_entry *e = &top[k * TOPN + rank];
                if (best < 0) {
                    if (e->sample != VLMN_REC_EMPTY) {
                        fprintf(stderr, "  %d/%d rank %d should be empty\n", l, j, rank);
                        bad++;
                        test_failed_checks_++;
                    }
                    continue;
                }
                used[best] = true;
                float im[64], tx[64];
                int ni = 0, nt = 0;
                for (int t = 0; t < S[best].T; t++) {
                    bool img;
                    if (!counted(S[best].lab[t], all, &img)) continue;
                    float v = S[best].acts[((size_t)l * S[best].T + t) * F + j];
                    if (img) im[ni++] = v;
                    else tx[nt++] = v;
                }
                qsort(im, (size_t)ni, sizeof(float), cmp_desc);
                qsort(tx, (size_t)nt, sizeof(float), cmp_desc);
                bool ok = e->sample == (uint32_t)best && e->max_act == smax[best];
                for (int q = 0; q < VLMN_TOP_TOKENS; q++) {
                    ok = ok && e->img[q] == (q < ni ? im[q] : -INFINITY);
                    ok = ok && e->txt[q] == (q < nt ? tx[q] : -INFINITY);
                }
                if (!ok) {
                    fprintf(stderr, "  %d/%d rank %d: got sample %u max %g, want %d max %g\n", l, j, rank, e->sample,
                            e->max_act, best, smax[best]);
                    bad++;
                    test_failed_checks_++;
                }
            }
        }
}

TEST(hist_bin_matches_edges)
{
    const float *e = vlmn_hist_edges();
    CHECK(isinf(e[0]) && e[0] < 0 && isinf(e[VLMN_HIST_BINS]) && e[VLMN_HIST_BINS] > 0);
    for (int b = 0; b < VLMN_HIST_BINS; b++) CHECK(e[b] < e[b + 1]);
    float special[] = {0.f, -0.f, 1e-45f, -1e-45f, 1.f, -1.f, 128.f, -128.f, 127.99f, -127.99f, 0.0078125f,
                       -0.0078125f, 0.0078124f, -0.0078124f, INFINITY, -INFINITY, 3e38f, -3e38f, 0.5f, -0.5f};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(special); i++)
        CHECK_MSG(vlmn_hist_bin(special[i]) == ref_hist_bin(special[i]), "x=%g bin %d ref %d", special[i],
                  vlmn_hist_bin(special[i]), ref_hist_bin(special[i]));
    for (int b = 1; b < VLMN_HIST_BINS; b++) {
        CHECK_EQ_INT(vlmn_hist_bin(e[b]), b);
        CHECK_EQ_INT(vlmn_hist_bin(nextafterf(e[b], -INFINITY)), b - 1);
    }
    rng_state = 7;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = rnd() ^ (rnd() << 16);
        float x;
        memcpy(&x, &u, 4);
        if (isnan(x)) continue;
        if (vlmn_hist_bin(x) != ref_hist_bin(x)) {
            CHECK_MSG(0, "x=%a bin %d ref %d", x, vlmn_hist_bin(x), ref_hist_bin(x));
            break;
        }
    }
}

TEST(single_pass_matches_brute_force)
{
    make_samples(42);
    vlmn_rec *r = record_subset(1, 0, false, 2);
    CHECK(r != NULL);
    if (r) check_against_reference(r, false);
    vlmn_rec_free(r);
    r = record_subset(1, 0, true, 1);
    CHECK(r != NULL);
    if (r) check_against_reference(r, true);
    vlmn_rec_free(r);
    free_samples();
}

/* The plain loops and the AVX-512 passes (when the CPU has them) both match the
 * brute force, and each other bit for bit (so runs and shards on different CPUs merge
 * to the same bytes), also on NaN, infinities, signed zeros, denormals and bin edges. */
static void record_both_isas(vlmn_rec *r[2], bool brute_force)
{
    const vlmn_isa saved = vlmn_isa_active(), isas[2] = {VLMN_ISA_REF, VLMN_ISA_AVX512};
    for (int k = 0; k < 2; k++) {
        r[k] = NULL;
        if (vlmn_isa_force(isas[k]) != VLMN_OK) continue;
        r[k] = record_subset(1, 0, false, 2);
        CHECK(r[k] != NULL);
        if (r[k] && brute_force) check_against_reference(r[k], false);
    }
    vlmn_isa_force(saved);
}

TEST(plain_and_simd_paths_agree)
{
    static const float special[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -1e-45f,
                                    0.0078125f, -0.0078125f, 128.0f, -128.0f, 1.0f, -1.0f, 3e38f, -3e38f};
    vlmn_rec *r[2];
    make_samples(77);
    record_both_isas(r, true);
    vlmn_rec_free(r[0]);
    vlmn_rec_free(r[1]);
    /* the brute force has no NaN rule: here the two paths are compared with each other */
    for (int s = 0; s < NS; s += 3)
        for (int i = 0; i < L * S[s].T * F; i += 7) S[s].acts[i] = special[(size_t)(s + i) % VLMN_ARRAY_LEN(special)];
    record_both_isas(r, false);
    if (r[0] && r[1]) {
        size_t nn = (size_t)L * F;
        CHECK(memcmp(vlmn_rec_stats(r[0]), vlmn_rec_stats(r[1]), nn * sizeof(vlmn_neuron_stats)) == 0);
        CHECK(memcmp(vlmn_rec_fixsums(r[0]), vlmn_rec_fixsums(r[1]), nn * sizeof(vlmn_rec_fixsum)) == 0);
        const vlmn_top_entry *a = vlmn_rec_top(r[0]), *b = vlmn_rec_top(r[1]);
        int bad = 0;
        for (size_t i = 0; i < nn * TOPN; i++) bad += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
        CHECK_MSG(bad == 0, "%d top entries differ", bad);
    } else {
        fprintf(stderr, "  (no AVX-512 on this CPU: the plain path only)\n");
    }
    vlmn_rec_free(r[0]);
    vlmn_rec_free(r[1]);
    free_samples();
}

TEST(merge_of_shards_is_bit_identical)
{
    make_samples(1234);
    vlmn_rec *one = record_subset(1, 0, false, 0);
    vlmn_rec *a = record_subset(3, 0, false, 0), *b = record_subset(3, 1, false, 0), *c = record_subset(3, 2, false, 0);
    vlmn_rec *b2 = record_subset(3, 1, false, 0), *c2 = record_subset(3, 2, false, 0), *a2 = record_subset(3, 0, false, 0);
    CHECK(one && a && b && c && a2 && b2 && c2);
    if (one && a && b && c && a2 && b2 && c2) {
        CHECK(vlmn_rec_merge(a, b) == VLMN_OK);
        CHECK(vlmn_rec_merge(a, c) == VLMN_OK);
        /* another order: c2 <- a2, then b2 */
        CHECK(vlmn_rec_merge(c2, a2) == VLMN_OK);
        CHECK(vlmn_rec_merge(c2, b2) == VLMN_OK);
        size_t nn = (size_t)L * F;
        CHECK(memcmp(vlmn_rec_stats(one), vlmn_rec_stats(a), nn * sizeof(vlmn_neuron_stats)) == 0);
        CHECK(memcmp(vlmn_rec_fixsums(one), vlmn_rec_fixsums(a), nn * sizeof(vlmn_rec_fixsum)) == 0);
        CHECK(memcmp(vlmn_rec_top(one), vlmn_rec_top(a), nn * TOPN * sizeof(vlmn_top_entry)) == 0);
        CHECK(memcmp(vlmn_rec_stats(one), vlmn_rec_stats(c2), nn * sizeof(vlmn_neuron_stats)) == 0);
        CHECK(memcmp(vlmn_rec_top(one), vlmn_rec_top(c2), nn * TOPN * sizeof(vlmn_top_entry)) == 0);
        check_against_reference(a, false);
    }
    vlmn_rec_free(one);
    vlmn_rec_free(a);
    vlmn_rec_free(b);
    vlmn_rec_free(c);
    vlmn_rec_free(a2);
    vlmn_rec_free(b2);
    vlmn_rec_free(c2);
    free_samples();
}

TEST(ties_lower_sample_first)
{
    /* every sample has the same activation: the top list is samples 0..N-1 in order */
    vlmn_rec_params p = {1, 3, 4, 1};
    vlmn_rec *r;
    CHECK(vlmn_rec_create(&p, &r) == VLMN_OK);
    uint8_t lab[2] = {VLMN_MOD_IMAGE, VLMN_MOD_TEXT};
    float acts[6] = {1, 2, 3, 1, 2, 3};
    for (uint32_t s = 10; s < 20; s++) {
        CHECK(vlmn_rec_begin_sample(r, s, lab, 2, false) == VLMN_OK);
        vlmn_rec_capture(r, 0, acts, 2, 3);
        CHECK(vlmn_rec_end_sample(r) == VLMN_OK);
    }
    const vlmn_top_entry *t = vlmn_rec_top(r);
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 4; k++) {
            CHECK_EQ_INT(t[j * 4 + k].sample, 10 + k);
            CHECK(t[j * 4 + k].img[0] == (float)(j + 1) && t[j * 4 + k].img[1] == -INFINITY);
            CHECK(t[j * 4 + k].txt[0] == (float)(j + 1));
        }
    CHECK_EQ_INT(vlmn_rec_stats(r)[1].count, 20);
    CHECK(vlmn_rec_stats(r)[1].sum == 40.0);
    vlmn_rec_free(r);
}

TEST(bad_input_is_an_error)
{
    vlmn_rec_params p = {2, 4, 3, 1};
    vlmn_rec *r;
    CHECK(vlmn_rec_create(&p, &r) == VLMN_OK);
    uint8_t lab[2] = {VLMN_MOD_IMAGE, VLMN_MOD_TEXT};
    float acts[8] = {0};
    CHECK(vlmn_rec_begin_sample(r, 3, lab, 2, false) == VLMN_OK);
    vlmn_rec_capture(r, 0, acts, 2, 4);
    CHECK(vlmn_rec_end_sample(r) == VLMN_E_MISMATCH); /* layer 1 missing */
    CHECK(strstr(vlmn_errmsg(), "layer 1") != NULL);
    CHECK(vlmn_rec_begin_sample(r, 3, lab, 2, false) == VLMN_E_ARG); /* not increasing */
    CHECK(vlmn_rec_begin_sample(r, 4, lab, 2, false) == VLMN_OK);
    vlmn_rec_capture(r, 0, acts, 2, 3); /* wrong n_ff */
    vlmn_rec_capture(r, 1, acts, 2, 4);
    CHECK(vlmn_rec_end_sample(r) == VLMN_E_MISMATCH);
    uint8_t badlab[1] = {9};
    CHECK(vlmn_rec_begin_sample(r, 9, badlab, 1, false) == VLMN_E_ARG);
    vlmn_rec_free(r);
    vlmn_rec_params bad = {2, 4, 0, 1};
    CHECK(vlmn_rec_create(&bad, &r) == VLMN_E_ARG);
    vlmn_rec_params huge = {1 << 30, 1 << 30, 50, 1};
    CHECK(vlmn_rec_create(&huge, &r) == VLMN_E_RANGE);
    vlmn_rec_free(NULL);
}

TEST(alloc_failures_do_not_leak_or_crash)
{
    vlmn_rec_params p = {2, 4, 3, 1};
    for (int n = 1; n < 12; n++) {
        vlmn_rec *r = NULL;
        vlmn_alloc_fail_after(n);
        vlmn_status st = vlmn_rec_create(&p, &r);
        vlmn_alloc_fail_after(0);
        CHECK(st == VLMN_OK || st == VLMN_E_NOMEM);
        CHECK((st == VLMN_OK) == (r != NULL));
        vlmn_rec_free(r);
    }
}

/* blocks big enough to go through the thread pool give the serial result */
TEST(parallel_equals_serial)
{
    enum { PL = 2, PF = 3001, PT = 40, PS = 12 };
    vlmn_rec *r[2] = {NULL, NULL};
    float *acts = malloc(sizeof(float) * PL * PT * PF);
    uint8_t lab[PT];
    rng_state = 99;
    for (int k = 0; k < 2; k++) {
        vlmn_rec_params p = {PL, PF, 6, k ? 3 : 1};
        CHECK(vlmn_rec_create(&p, &r[k]) == VLMN_OK);
    }
    for (int s = 0; s < PS && r[0] && r[1]; s++) {
        for (int t = 0; t < PT; t++) lab[t] = t < 20 ? VLMN_MOD_IMAGE : (uint8_t)(1 + t % 2);
        for (int i = 0; i < PL * PT * PF; i++) acts[i] = (float)((int)(rnd() % 200) - 50) * 0.01f;
        for (int k = 0; k < 2; k++) {
            CHECK(vlmn_rec_begin_sample(r[k], (uint32_t)s, lab, PT, false) == VLMN_OK);
            for (int l = 0; l < PL; l++) vlmn_rec_capture(r[k], l, acts + (size_t)l * PT * PF, PT, PF);
            CHECK(vlmn_rec_end_sample(r[k]) == VLMN_OK);
        }
    }
    if (r[0] && r[1]) {
        CHECK(memcmp(vlmn_rec_stats(r[0]), vlmn_rec_stats(r[1]), (size_t)PL * PF * sizeof(vlmn_neuron_stats)) == 0);
        CHECK(memcmp(vlmn_rec_top(r[0]), vlmn_rec_top(r[1]), (size_t)PL * PF * 6 * sizeof(vlmn_top_entry)) == 0);
        CHECK(vlmn_rec_top_count(r[0])[PF + 5] == 6);
    }
    vlmn_rec_free(r[0]);
    vlmn_rec_free(r[1]);
    free(acts);
}

TEST(state_budget_for_llava_7b)
{
    /* 352,256 neurons x top-50: the number docs/record.md states */
    uint64_t b = vlmn_rec_state_bytes(32, 11008, 50);
    CHECK(b > 1300000000ull && b < 1400000000ull);
}

TEST_MAIN()
