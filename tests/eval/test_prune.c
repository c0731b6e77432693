/* Neuron masks and pruning on the planted model (src/makemodel/planted.c): a mask zeroes
 * exactly the masked neurons' activations (the layer's other neurons are bit-identical);
 * an empty mask is bit-identical to no mask; pruning the planted unknown neurons costs
 * the reference answers' likelihood less than pruning as many planted multimodal ones
 * (the last layer's read out colour word -> shape word); the mask sources and the
 * query parser, the grades; bad inputs. */
#include "test.h"

#include "vlmn/analysis.h"
#include "vlmn/eval.h"
#include "vlmn/makemodel.h"
#include "vlmn/mask.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"
#include "vlmn/types.h"
#include "core/alloc.h"

#include <cJSON.h>
#include <sys/stat.h>

static char prefix[1024], qadir[1024];

static vlmn_llava *planted(void)
{
    static bool made;
    if (!made) {
        mkdir(test_tmp_dir(), 0777);
        snprintf(prefix, sizeof prefix, "%s/prune_planted", test_tmp_dir());
        snprintf(qadir, sizeof qadir, "%s/prune_qa", test_tmp_dir());
        vlmn_mm_config c;
        CHECK(vlmn_mm_preset("planted", VLMN_TYPE_F32, &c) == VLMN_OK);
        CHECK(vlmn_mm_write_planted(&c, prefix) == VLMN_OK);
        CHECK(vlmn_mm_make_dataset(qadir, 16, 3, VLMN_MM_QA) == VLMN_OK);
        made = true;
    }
    char t[1100], m[1100];
    snprintf(t, sizeof t, "%s-text.gguf", prefix);
    snprintf(m, sizeof m, "%s-mmproj.gguf", prefix);
    vlmn_llava_params p = {.n_threads = 2, .precision = VLMN_PREC_EXACT};
    vlmn_llava *mdl = NULL;
    CHECK(vlmn_llava_load(t, m, &p, &mdl) == VLMN_OK);
    return mdl;
}

/* planted neurons of one type into a mask */
static vlmn_mask *planted_mask(const char *type, int n_layer, int n_ff)
{
    char path[1100];
    snprintf(path, sizeof path, "%s-planted.json", prefix);
    char *txt = test_read_file(path, NULL);
    cJSON *a = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    vlmn_mask *m = NULL;
    CHECK(vlmn_mask_create(n_layer, n_ff, &m) == VLMN_OK);
    cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (strcmp(cJSON_GetObjectItem(e, "type")->valuestring, type)) continue;
        CHECK(vlmn_mask_set(m, cJSON_GetObjectItem(e, "layer")->valueint, cJSON_GetObjectItem(e, "neuron")->valueint) ==
              VLMN_OK);
    }
    cJSON_Delete(a);
    return m;
}

typedef struct sink {
    float *acts; /* [L][T][FF] */
    int64_t T, FF;
} sink;

static void on_capture(void *user, int layer, const float *a, int64_t T, int64_t FF)
{
    sink *s = user;
    s->T = T;
    s->FF = FF;
    memcpy(s->acts + (int64_t)layer * T * FF, a, (size_t)(T * FF) * sizeof(float));
}

TEST(mask_zeroes_exactly_the_masked_neurons)
{
    vlmn_llava *m = planted();
    if (!m) return;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    vlmn_qa_set qa = {0};
    char qp[1100];
    snprintf(qp, sizeof qp, "%s/qa.jsonl", qadir);
    CHECK(vlmn_qa_load(qp, NULL, true, &qa) == VLMN_OK);
    int32_t *ids;
    uint8_t *mod;
    int64_t n;
    CHECK(vlmn_prompt_build(vlmn_llava_tokenizer(m), "llava-v1", qa.items[0].question, qa.items[0].answer,
                            in->n_image_tokens, &ids, &mod, &n) == VLMN_OK);
    vlmn_image *img;
    CHECK(vlmn_img_load(qa.items[0].image, &img) == VLMN_OK);
    float *px = malloc((size_t)3 * in->image_size * in->image_size * sizeof(float));
    CHECK(vlmn_img_preprocess(img, VLMN_IMG_PAD, in->image_size, in->image_mean, in->image_std, px) == VLMN_OK);
    vlmn_img_free(img);
    const int64_t L = in->n_layer, FF = in->n_ff, sz = L * n * FF;
    const int V = in->n_vocab;
    sink base = {.acts = malloc((size_t)sz * sizeof(float))}, got = {.acts = malloc((size_t)sz * sizeof(float))};
    float *lb = malloc((size_t)V * sizeof(float)), *lg = malloc((size_t)V * sizeof(float));
    for (int hook = 0; hook < 2; hook++) {
        vlmn_forward_opts o = {.capture = on_capture, .capture_user = &base, .hook = (vlmn_hook)hook, .logits = lb,
                               .n_logits = 1};
        CHECK(vlmn_llava_forward(m, ids, n, px, &o) == VLMN_OK);
        /* an empty mask: bit-identical activations and logits */
        vlmn_mask *empty;
        CHECK(vlmn_mask_parse("none", (int)L, (int)FF, &empty) == VLMN_OK);
        CHECK(vlmn_mask_rows(empty) == NULL);
        o.neuron_mask = vlmn_mask_rows(empty);
        o.capture_user = &got;
        o.logits = lg;
        CHECK(vlmn_llava_forward(m, ids, n, px, &o) == VLMN_OK);
        CHECK(!memcmp(base.acts, got.acts, (size_t)sz * sizeof(float)));
        CHECK(!memcmp(lb, lg, (size_t)V * sizeof(float)));
        vlmn_mask_free(empty);
        /* the planted visual and multimodal neurons plus a few unplanted ones */
        vlmn_mask *mk = planted_mask("multimodal", (int)L, (int)FF), *vis = planted_mask("visual", (int)L, (int)FF);
        for (int l = 0; l < L; l++)
            for (int j = 0; j < FF; j++)
                if (vlmn_mask_get(vis, l, j) || (j * 7 + l) % 23 == 0) vlmn_mask_set(mk, l, j);
        o.neuron_mask = vlmn_mask_rows(mk);
        CHECK(vlmn_llava_forward(m, ids, n, px, &o) == VLMN_OK);
        int64_t zeroed = 0, bad = 0, nonzero_before = 0;
        for (int l = 0; l < L; l++)
            for (int64_t t = 0; t < n; t++)
                for (int j = 0; j < FF; j++) {
                    int64_t k = ((int64_t)l * n + t) * FF + j;
                    if (vlmn_mask_get(mk, l, j)) {
                        zeroed += got.acts[k] == 0.0f;
                        nonzero_before += base.acts[k] != 0.0f;
                        bad += got.acts[k] != 0.0f;
                    } else {
                        /* the planted model's FFNs add nothing before the last layer, so
                         * every other neuron is unchanged, in its layer and in the later
                         * ones (a model with non-zero ffn_down would change those) */
                        bad += memcmp(&got.acts[k], &base.acts[k], sizeof(float)) != 0;
                    }
                }
        CHECK_EQ_INT(bad, 0);
        CHECK(zeroed == vlmn_mask_count(mk) * n);
        CHECK(nonzero_before > 0);
        /* the last layer's multimodal read-out is gone: the logits change */
        CHECK(memcmp(lb, lg, (size_t)V * sizeof(float)) != 0);
        vlmn_mask_free(mk);
        vlmn_mask_free(vis);
    }
    free(base.acts);
    free(got.acts);
    free(lb);
    free(lg);
    free(px);
    vlmn_free(ids);
    vlmn_free(mod);
    vlmn_qa_free(&qa);
    vlmn_llava_free(m);
}

static double mean_loglik(vlmn_llava *m, const vlmn_qa_set *qa, const vlmn_mask *mk)
{
    double s = 0;
    for (int64_t i = 0; i < qa->n; i++) {
        double ll;
        int nt;
        const vlmn_qa_params qp = {.template_name = "llava-v1", .mode = VLMN_IMG_PAD};
        CHECK(vlmn_qa_loglik(m, &qa->items[i], &qp, vlmn_mask_rows(mk), &ll, &nt) == VLMN_OK);
        CHECK(nt > 0);
        s += ll;
    }
    return s / (double)qa->n;
}

TEST(unknown_neurons_matter_less_than_informative_ones)
{
    vlmn_llava *m = planted();
    if (!m) return;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    vlmn_qa_set qa = {0};
    char qp[1100];
    snprintf(qp, sizeof qp, "%s/qa.jsonl", qadir);
    CHECK(vlmn_qa_load(qp, NULL, true, &qa) == VLMN_OK);
    vlmn_mask *unk = planted_mask("unknown", in->n_layer, in->n_ff);
    vlmn_mask *mm = planted_mask("multimodal", in->n_layer, in->n_ff);
    CHECK(vlmn_mask_count(unk) == vlmn_mask_count(mm) && vlmn_mask_count(unk) == 8);
    double full = mean_loglik(m, &qa, NULL), lu = mean_loglik(m, &qa, unk), lm = mean_loglik(m, &qa, mm);
    fprintf(stderr, "  mean reference log-likelihood: full %.5f, 8 unknown pruned %.5f, 8 multimodal pruned %.5f\n",
            full, lu, lm);
    CHECK(full - lu < full - lm);
    CHECK(full - lm > 0.01);
    vlmn_mask_free(unk);
    vlmn_mask_free(mm);
    vlmn_qa_free(&qa);
    vlmn_llava_free(m);
}

TEST(mask_sources)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/prune_mask.csv", test_tmp_dir());
    FILE *f = fopen(path, "w");
    fputs("layer,neuron\n# comment\n0,5\n3, 63\n\n0,5\n", f);
    fclose(f);
    vlmn_mask *m = NULL;
    CHECK(vlmn_mask_from_csv(path, 4, 64, &m) == VLMN_OK);
    CHECK(m && vlmn_mask_count(m) == 2 && vlmn_mask_get(m, 0, 5) && vlmn_mask_get(m, 3, 63));
    CHECK(m && vlmn_mask_layer_count(m, 1) == 0 && vlmn_mask_rows(m)[1] == NULL);
    vlmn_mask_free(m);
    f = fopen(path, "w");
    fputs("0,5\n1,64\n", f);
    fclose(f);
    CHECK(vlmn_mask_from_csv(path, 4, 64, &m) == VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "line 2") && strstr(vlmn_errmsg(), "neuron 64"));
    f = fopen(path, "w");
    fputs("0;5\n", f);
    fclose(f);
    CHECK(vlmn_mask_from_csv(path, 4, 64, &m) == VLMN_E_FORMAT);
    /* random: the exact global count, and the per-layer counts of another mask */
    CHECK(vlmn_mask_random(0.1, 7, 4, 64, &m) == VLMN_OK);
    CHECK_EQ_INT(vlmn_mask_count(m), 26);
    vlmn_mask *like = NULL, *m2 = NULL;
    CHECK(vlmn_mask_random(0.1, 7, 4, 64, &m2) == VLMN_OK);
    bool same = true;
    for (int l = 0; l < 4; l++)
        for (int j = 0; j < 64; j++) same &= vlmn_mask_get(m, l, j) == vlmn_mask_get(m2, l, j);
    CHECK(same); /* the same seed, the same mask */
    CHECK(vlmn_mask_random_like(m, 99, &like) == VLMN_OK);
    for (int l = 0; l < 4; l++) CHECK_EQ_INT(vlmn_mask_layer_count(like, l), vlmn_mask_layer_count(m, l));
    vlmn_mask_free(m);
    vlmn_mask_free(m2);
    vlmn_mask_free(like);
    CHECK(vlmn_mask_random(1.5, 7, 4, 64, &m) == VLMN_E_RANGE);
    CHECK(vlmn_mask_parse("random:0.5", 4, 64, &m) != VLMN_OK);
    CHECK(vlmn_mask_parse("random:x:1", 4, 64, &m) != VLMN_OK);
    CHECK(vlmn_mask_parse("run:/nonexistent:p_u>=0.5", 4, 64, &m) != VLMN_OK);
}

TEST(query_parser)
{
    vlmn_neuron_class c = {.n_top = 10, .den = 10, .count = {1, 0, 1, 8}, .label = VLMN_NT_UNKNOWN};
    static const struct {
        const char *q;
        int match; /* -1: parse error */
    } cases[] = {
        {"p_u>=0.8", 1}, {"p_u>0.8", 0}, {"p_unknown >= 0.8 & p_v <= 0.1", 1}, {"p_v<0.1", 0},
        {"label=unknown", 1}, {"label==text", 0}, {"p_m=0.1,p_t<0.5", 1}, {"p_u>=1.5", -1},
        {"p_u>=-0.1", -1}, {"p_x>=0.5", -1}, {"p_u", -1}, {"p_u>=", -1}, {"", -1}, {"label=foo", -1},
        {"p_u>=0.5 &", -1}, {"p_u>=0.5 junk", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vlmn_query *q = NULL;
        vlmn_status st = vlmn_query_parse(cases[i].q, &q);
        if (cases[i].match < 0) {
            CHECK_MSG(st != VLMN_OK, "'%s' should not parse", cases[i].q);
        } else {
            CHECK_MSG(st == VLMN_OK, "'%s': %s", cases[i].q, vlmn_errmsg());
            if (q) CHECK_MSG(vlmn_query_match(q, &c) == (cases[i].match == 1), "'%s'", cases[i].q);
        }
        vlmn_query_free(q);
    }
    vlmn_query *q = NULL;
    CHECK(vlmn_query_parse("p_u>=2", &q) == VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "outside [0, 1]") != NULL);
}

TEST(grades)
{
    CHECK_NEAR(vlmn_grade_exact("A red circle.", "a red circle"), 1.0, 0);
    CHECK_NEAR(vlmn_grade_exact("a red square", "a red circle"), 0.0, 0);
    CHECK_NEAR(vlmn_grade_f1("a red square", "a red circle"), 0.5, 1e-12);
    CHECK_NEAR(vlmn_grade_f1("red red circle", "a red circle and a green square"), 2 * (2.0 / 3) * (2.0 / 5) / (2.0 / 3 + 2.0 / 5), 1e-12);
    CHECK_NEAR(vlmn_grade_f1("", ""), 1.0, 0);
    CHECK_NEAR(vlmn_grade_f1("", "x"), 0.0, 0);
}

TEST_MAIN()
