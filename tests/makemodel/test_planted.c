/* End-to-end check of the planted model: generate it and a small demo dataset with the
 * CLI, run `vlmn probe` on the samples and check every planted neuron from the raw
 * activations: visual neurons fire on image patches of their colour only, text neurons
 * on their word only, multi-modal neurons on both, unknown neurons never (<= 0). */
#include "test.h"
#include "vlmn/npy.h"
#include "makemodel/palette.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

#define N_SAMPLES 8
#define FIRE 3.0f     /* a planted neuron's peak is ~7.8; "fires" means above this */
#define QUIET 0.05f   /* and "does not fire" means at most this */

static cJSON *load_json(const char *path)
{
    char *t = test_read_file(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK_MSG(j != NULL, "cannot read %s", path);
    return j;
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
    return rc;
}

static bool has(cJSON *shapes, const char *key, const char *value)
{
    cJSON *s;
    cJSON_ArrayForEach(s, shapes) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(s, key));
        if (v && !strcmp(v, value)) return true;
    }
    return false;
}

typedef struct stats { float max_img, max_txt, max_all; int n_img_fire, n_txt_fire; } stats;

/* Probe sample i and return its activations and token modalities. */
static vlmn_npy *probe(const char *bin, const char *dir, const char *prefix, cJSON *entry, const char *out,
                       const char *extra, char **mod, int64_t *n_tok)
{
    const char *image = cJSON_GetStringValue(cJSON_GetObjectItem(entry, "image"));
    cJSON *conv = cJSON_GetObjectItem(entry, "conversations");
    const char *answer = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(conv, 1), "value"));
    if (!image || !answer || strchr(answer, '\'')) return NULL;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' probe -m '%s-text.gguf' --mmproj '%s-mmproj.gguf' --image '%s/%s' "
             "--question 'Describe the image in detail.' --answer '%s' -t 2 %s -o '%s'",
             bin, prefix, prefix, dir, image, answer, extra, out);
    if (run(cmd)) return NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/activations.npy", out);
    vlmn_npy *a = NULL;
    CHECK_EQ_INT(vlmn_npy_read(path, &a), VLMN_OK);
    snprintf(path, sizeof path, "%s/tokens.json", out);
    cJSON *toks = load_json(path);
    if (!a || !toks || a->ndim != 3 || a->dtype != VLMN_NPY_F32 || a->shape[1] != cJSON_GetArraySize(toks)) {
        CHECK(!"probe output malformed");
        cJSON_Delete(toks);
        vlmn_npy_free(a);
        return NULL;
    }
    *n_tok = a->shape[1];
    *mod = calloc((size_t)*n_tok, 1);
    int k = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, toks) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(t, "modality"));
        (*mod)[k++] = m && !strcmp(m, "image") ? 'i' : m && !strcmp(m, "text") ? 't' : 'p';
    }
    cJSON_Delete(toks);
    return a;
}

static stats neuron_stats(const vlmn_npy *a, const char *mod, int layer, int neuron)
{
    stats s = {-1e30f, -1e30f, -1e30f, 0, 0};
    int64_t T = a->shape[1], F = a->shape[2];
    const float *v = a->data;
    for (int64_t t = 0; t < T; t++) {
        float x = v[((int64_t)layer * T + t) * F + neuron];
        if (x > s.max_all) s.max_all = x;
        if (mod[t] == 'i') {
            if (x > s.max_img) s.max_img = x;
            s.n_img_fire += x > FIRE;
        } else if (mod[t] == 't') {
            if (x > s.max_txt) s.max_txt = x;
            s.n_txt_fire += x > FIRE;
        }
    }
    return s;
}

TEST(planted_neurons_fire_as_designed)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin) {
        CHECK(!"VLMN_BIN not set");
        return;
    }
    char dir[1024], prefix[1024], out[1100], cmd[4096], path[2048];
    mkdir(test_tmp_dir(), 0777);
    snprintf(dir, sizeof dir, "%s/planted_ds", test_tmp_dir());
    snprintf(prefix, sizeof prefix, "%s/planted_m", test_tmp_dir());
    snprintf(out, sizeof out, "%s/planted_probe", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "'%s' make-model --preset planted --seed 11 -o '%s' > /dev/null", bin, prefix);
    if (run(cmd)) return;
    snprintf(cmd, sizeof cmd, "'%s' make-dataset --preset planted -n %d --seed 4 -o '%s'", bin, N_SAMPLES, dir);
    if (run(cmd)) return;
    snprintf(path, sizeof path, "%s-planted.json", prefix);
    cJSON *planted = load_json(path);
    snprintf(path, sizeof path, "%s/data.json", dir);
    cJSON *data = load_json(path);
    snprintf(path, sizeof path, "%s/shapes.json", dir);
    cJSON *truth = load_json(path);
    if (!planted || !data || !truth) goto done;
    CHECK_EQ_INT(cJSON_GetArraySize(planted), 32);

    int checked[4] = {0}, fired[4] = {0};
    for (int i = 0; i < N_SAMPLES; i++) {
        char *mod = NULL;
        int64_t n_tok = 0;
        vlmn_npy *a = probe(bin, dir, prefix, cJSON_GetArrayItem(data, i), out, "", &mod, &n_tok);
        if (!a) continue;
        cJSON *shapes = cJSON_GetObjectItem(cJSON_GetArrayItem(truth, i), "shapes");
        cJSON *n;
        cJSON_ArrayForEach(n, planted) {
            int layer = cJSON_GetObjectItem(n, "layer")->valueint, neuron = cJSON_GetObjectItem(n, "neuron")->valueint;
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(n, "type"));
            const char *feat = cJSON_GetStringValue(cJSON_GetObjectItem(n, "feature"));
            stats s = neuron_stats(a, mod, layer, neuron);
            if (!strcmp(type, "unknown")) {
                CHECK_MSG(s.max_all <= 0, "sample %d: unknown L%d/%d reaches %g", i, layer, neuron, s.max_all);
                checked[3]++;
                continue;
            }
            bool visual = !strcmp(type, "visual"), text = !strcmp(type, "text"), multi = !strcmp(type, "multimodal");
            CHECK(feat && (visual || text || multi));
            if (!feat) continue;
            bool present = has(shapes, text ? "shape" : "color", feat);
            int k = visual ? 0 : text ? 1 : 2;
            checked[k]++;
            fired[k] += present;
            /* the image side: visual/multimodal fire on > 4 patches of their colour
             * (the paper's n_v), far above everything else */
            bool want_img = (visual || multi) && present, want_txt = (text || multi) && present;
            if (want_img)
                CHECK_MSG(s.max_img > FIRE && s.n_img_fire > 4, "sample %d: %s %s L%d/%d image max %g (%d tokens)", i, type,
                          feat, layer, neuron, s.max_img, s.n_img_fire);
            else
                CHECK_MSG(s.max_img <= QUIET, "sample %d: %s %s L%d/%d fires on the image (%g)", i, type, feat, layer,
                          neuron, s.max_img);
            if (want_txt)
                CHECK_MSG(s.max_txt > FIRE && s.n_txt_fire > 2, "sample %d: %s %s L%d/%d text max %g (%d tokens)", i, type,
                          feat, layer, neuron, s.max_txt, s.n_txt_fire);
            else
                CHECK_MSG(s.max_txt <= QUIET, "sample %d: %s %s L%d/%d fires on the text (%g)", i, type, feat, layer,
                          neuron, s.max_txt);
        }
        free(mod);
        vlmn_npy_free(a);
    }
    /* the samples did exercise every kind of planted neuron, firing and silent */
    for (int k = 0; k < 3; k++) CHECK(fired[k] > 0 && fired[k] < checked[k]);
    CHECK(checked[3] > 0);

    /* the swiglu hook keeps the signs: unknown neurons stay <= 0, planted ones fire */
    {
        char *mod = NULL;
        int64_t n_tok = 0;
        vlmn_npy *a = probe(bin, dir, prefix, cJSON_GetArrayItem(data, 0), out, "--hook swiglu", &mod, &n_tok);
        cJSON *n;
        float best = 0;
        cJSON_ArrayForEach(n, planted) {
            if (!a) break;
            stats s = neuron_stats(a, mod, cJSON_GetObjectItem(n, "layer")->valueint, cJSON_GetObjectItem(n, "neuron")->valueint);
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(n, "type")), "unknown")) CHECK(s.max_all <= 0);
            else if (s.max_all > best) best = s.max_all;
        }
        CHECK(!a || best > FIRE);
        free(mod);
        vlmn_npy_free(a);
    }
done:
    cJSON_Delete(planted);
    cJSON_Delete(data);
    cJSON_Delete(truth);
}

TEST_MAIN()
