/* Engine bit-identity: the FFN activations (every layer, every position) and logits of
 * the tiny LLaVA fixtures (tests/data/engine, F32/F16/BF16/Q8_0), through
 * vlmn_llava_forward and vlmn_llava_step (prefill + one decode step, two sequences),
 * hashed bit for bit (FNV-1a 64 over the float bytes) and compared with
 * tests/data/engine/golden_bits.txt, which was written by the engine BEFORE it was split
 * into parts (src/model/llava.c at 52107e3, with the decode-shaped AVX2 GEMV of
 * gemv_avx2.c that rounds M <= 8 products differently from f6dba3d's kernels; the avx2
 * and avx512 lines were last written by that engine built with the kernels of the commit
 * that added attention_avx2.c, src/kernels/ copied over, which changed their rounding, and
 * the avx512 FAST BF16/Q8_0 lines again with the kernels of the commit that added
 * gemv_bf16_avx512.c (decode shapes rounded as the tile kernels round), and the avx2 /
 * avx512 step lines with the kernels of the commit that added vlmn_attention_head, that
 * engine's decode attention loop replaced by a call to it (the same loop is its reference,
 * so the ref lines did not change):
 * the refactor must not change one bit.
 * Accuracy against the float64 reference is test_llava's job; this test pins the bits.
 *
 * Lines: `isa precision model case hash_layer0 ... hash_logits`. A line runs when the
 * CPU supports its ISA (ref everywhere); avx2/avx512 lines only in optimised builds (the
 * compiler may contract a*b+c to FMA differently at -O0). At least the ref lines run.
 * `test_engine_golden --write FILE` writes the file from the current engine (done once,
 * from the pre-refactor code; rerun only when the kernels' rounding changes on purpose). */
#include "test.h"

#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/kernels.h"

#include <stdint.h>
#include <string.h>

#define MAXL 16

static const char *const MODELS[] = {"f32", "f16", "bf16", "q8_0"};
static const char *const CASES[] = {"fwd_v1_silu", "fwd_plain_swiglu_mask", "step_silu"};

typedef struct hashes {
    int n_layer;
    uint64_t layer[MAXL];
    uint64_t logits;
} hashes;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static void on_capture(void *user, int layer, const float *a, int64_t T, int64_t FF)
{
    hashes *h = user;
    if (layer < 0 || layer >= MAXL) return;
    int64_t dims[2] = {T, FF};
    h->layer[layer] = fnv(fnv(h->layer[layer], dims, sizeof dims), a, (size_t)(T * FF) * sizeof(float));
}

static vlmn_npy *npy(const char *name)
{
    vlmn_npy *a = NULL;
    if (vlmn_npy_read(test_path(test_data_dir(), name), &a)) fprintf(stderr, "  %s: %s\n", name, vlmn_errmsg());
    return a;
}

/* Runs one case; 0 on success. */
static int run(const char *model, vlmn_precision prec, int cs, hashes *h)
{
    char t[64], mm[64];
    snprintf(t, sizeof t, "engine/%s.text.gguf", model);
    snprintf(mm, sizeof mm, "engine/%s.mmproj.gguf", model);
    vlmn_llava_params p = {.n_threads = 2, .precision = prec};
    vlmn_llava *m = NULL;
    int rc = 1;
    vlmn_npy *iv = npy("engine/ids_v1.npy"), *ip = npy("engine/ids_plain.npy");
    vlmn_npy *pw = npy("engine/pixels_wide.npy"), *pt = npy("engine/pixels_tall.npy");
    if (!iv || !ip || !pw || !pt) goto out;
    if (vlmn_llava_load(test_path(test_data_dir(), t), test_path(test_data_dir(), mm), &p, &m)) {
        fprintf(stderr, "  load %s: %s\n", model, vlmn_errmsg());
        goto out;
    }
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    memset(h, 0, sizeof *h);
    h->n_layer = in->n_layer;
    if (in->n_layer > MAXL) goto out;
    for (int l = 0; l < in->n_layer; l++) h->layer[l] = FNV0;
    const int NL = 2;
    float *logits = calloc((size_t)NL * 2 * in->n_vocab, sizeof(float));
    uint8_t *mbuf = calloc(2 * (size_t)in->n_ff, 1);
    const uint8_t *mask[MAXL] = {0};
    mbuf[0] = mbuf[7 % in->n_ff] = mbuf[in->n_ff - 1] = 1;
    mbuf[in->n_ff + 3] = mbuf[in->n_ff + 30 % in->n_ff] = 1;
    mask[0] = mbuf;
    mask[1] = mbuf + in->n_ff;
    vlmn_forward_opts o = {.capture = on_capture, .capture_user = h, .logits = logits, .n_logits = NL};
    vlmn_status st = VLMN_OK;
    if (cs == 0) {
        o.hook = VLMN_HOOK_SILU_GATE;
        st = vlmn_llava_forward(m, iv->data, (int64_t)iv->count, pw->data, &o);
        h->logits = fnv(FNV0, logits, (size_t)NL * in->n_vocab * sizeof(float));
    } else if (cs == 1) {
        o.hook = VLMN_HOOK_SWIGLU;
        o.neuron_mask = mask;
        st = vlmn_llava_forward(m, ip->data, (int64_t)ip->count, pt->data, &o);
        h->logits = fnv(FNV0, logits, (size_t)NL * in->n_vocab * sizeof(float));
    } else {
        /* two sequences prefilled together, then one decode token each */
        vlmn_kv *kv[2] = {0};
        const int32_t *ids[2] = {iv->data, ip->data};
        int64_t n[2] = {(int64_t)iv->count, (int64_t)ip->count};
        const float *img[2] = {pw->data, pt->data};
        h->logits = FNV0;
        if (vlmn_kv_create(m, n[0] + 1, &kv[0]) || vlmn_kv_create(m, n[1] + 1, &kv[1])) {
            st = VLMN_E_NOMEM;
        } else {
            o.hook = VLMN_HOOK_SILU_GATE;
            st = vlmn_llava_step(m, 2, kv, ids, n, img, &o);
            h->logits = fnv(h->logits, logits, (size_t)2 * NL * in->n_vocab * sizeof(float));
            int32_t nx[2] = {5, 9};
            const int32_t *nids[2] = {&nx[0], &nx[1]};
            int64_t one[2] = {1, 1};
            o.n_logits = 1;
            if (!st) st = vlmn_llava_step(m, 2, kv, nids, one, NULL, &o);
            h->logits = fnv(h->logits, logits, (size_t)2 * in->n_vocab * sizeof(float));
        }
        vlmn_kv_free(kv[0]);
        vlmn_kv_free(kv[1]);
    }
    if (st)
        fprintf(stderr, "  %s %s: %s\n", model, CASES[cs], vlmn_errmsg());
    else
        rc = 0;
    free(logits);
    free(mbuf);
out:
    vlmn_llava_free(m);
    vlmn_npy_free(iv);
    vlmn_npy_free(ip);
    vlmn_npy_free(pw);
    vlmn_npy_free(pt);
    return rc;
}

static const vlmn_precision PRECS[] = {VLMN_PREC_EXACT, VLMN_PREC_FAST};

static int write_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    const vlmn_isa isas[] = {VLMN_ISA_REF, VLMN_ISA_AVX2, VLMN_ISA_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        if (!vlmn_isa_supported(isas[i])) continue;
        vlmn_isa_force(isas[i]);
        for (size_t pi = 0; pi < 2; pi++)
            for (size_t mi = 0; mi < 4; mi++)
                for (int cs = 0; cs < 3; cs++) {
                    hashes h;
                    if (run(MODELS[mi], PRECS[pi], cs, &h)) return 1;
                    fprintf(f, "%s %s %s %s", vlmn_isa_name(isas[i]), vlmn_precision_name(PRECS[pi]), MODELS[mi],
                            CASES[cs]);
                    for (int l = 0; l < h.n_layer; l++) fprintf(f, " %016llx", (unsigned long long)h.layer[l]);
                    fprintf(f, " %016llx\n", (unsigned long long)h.logits);
                }
    }
    return fclose(f) != 0;
}

TEST(bits_match_pre_refactor_engine)
{
    FILE *f = fopen(test_path(test_data_dir(), "engine/golden_bits.txt"), "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[1024];
    int ran = 0, ran_ref = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        char isa[16], prec[16], model[16], cs[32];
        int off = 0;
        if (sscanf(line, "%15s %15s %15s %31s%n", isa, prec, model, cs, &off) != 4) continue;
        lines++;
        vlmn_isa want = !strcmp(isa, "ref") ? VLMN_ISA_REF : !strcmp(isa, "avx2") ? VLMN_ISA_AVX2 : VLMN_ISA_AVX512;
        if (!vlmn_isa_supported(want)) continue;
#ifndef __OPTIMIZE__
        if (want != VLMN_ISA_REF) continue;
#endif
        vlmn_precision p;
        CHECK(vlmn_precision_parse(prec, &p) == VLMN_OK);
        int ci = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(cs, CASES[i])) ci = i;
        CHECK(ci >= 0);
        if (ci < 0) continue;
        vlmn_isa_force(want);
        hashes h;
        CHECK_MSG(run(model, p, ci, &h) == 0, "%s", line);
        uint64_t g[MAXL + 1];
        int ng = 0, k = 0;
        const char *s = line + off;
        unsigned long long v;
        while (ng <= MAXL && sscanf(s, " %llx%n", &v, &k) == 1) {
            g[ng++] = v;
            s += k;
        }
        CHECK_EQ_INT(ng, h.n_layer + 1);
        int bad = ng != h.n_layer + 1;
        for (int l = 0; !bad && l < h.n_layer; l++)
            if (g[l] != h.layer[l]) {
                fprintf(stderr, "  %s %s %s %s: layer %d bits differ\n", isa, prec, model, cs, l);
                bad = 1;
            }
        if (!bad && g[h.n_layer] != h.logits) {
            fprintf(stderr, "  %s %s %s %s: logits bits differ\n", isa, prec, model, cs);
            bad = 1;
        }
        CHECK(!bad);
        ran++;
        ran_ref += want == VLMN_ISA_REF;
    }
    fclose(f);
    fprintf(stderr, "  %d of %d golden lines run (%d on ref)\n", ran, lines, ran_ref);
    CHECK(ran_ref == 4 * 2 * 3);
    vlmn_isa_force(vlmn_isa_supported(VLMN_ISA_AVX512) ? VLMN_ISA_AVX512
                   : vlmn_isa_supported(VLMN_ISA_AVX2) ? VLMN_ISA_AVX2 : VLMN_ISA_REF);
}

int run_tests(int argc, char **argv);
int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write")) return write_file(argv[2]);
    return run_tests(argc, argv);
}
#define main run_tests
TEST_MAIN()
