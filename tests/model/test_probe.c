/* `vlmn probe` end to end (PNG decoding, LLaVA preprocessing, prompt templates and
 * tokenizer, engine, .npy/.json output) against the float64 reference, which did the
 * same with PIL and sentencepiece (tests/reference/llava_ref.py, probe_* goldens). */
#include "test.h"

#include "vlmn/npy.h"

#include <cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

/* Run the CLI with `args` into a fresh folder and compare with golden `name`. */
static void probe_case(const char *name, const char *golden, const char *args, double tol)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    char out[PATH_MAX + 64], cmd[3 * PATH_MAX], tmp[PATH_MAX];
    if (!realpath(test_tmp_dir(), tmp)) snprintf(tmp, sizeof tmp, "%s", test_tmp_dir());
    snprintf(out, sizeof out, "%s/probe_%s", tmp, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cd '%s/engine' && '%s' probe %s -t 2 -o '%s'", out, test_data_dir(), bin,
             args, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s: exit %d", cmd, rc);
    if (rc) return;

    vlmn_npy *a = NULL, *g = NULL;
    char p[PATH_MAX + 4096];
    snprintf(p, sizeof p, "%s/activations.npy", out);
    CHECK_EQ_INT(vlmn_npy_read(p, &a), VLMN_OK);
    snprintf(p, sizeof p, "%s/engine/%s.npy", test_data_dir(), golden);
    CHECK_EQ_INT(vlmn_npy_read(p, &g), VLMN_OK);
    if (a && g) {
        CHECK_EQ_INT(a->dtype, VLMN_NPY_F32);
        CHECK_EQ_INT(a->ndim, 3);
        bool same = a->ndim == 3 && a->shape[0] == g->shape[0] && a->shape[1] == g->shape[1] && a->shape[2] == g->shape[2];
        CHECK_MSG(same, "%s: shape [%lld, %lld, %lld] vs golden [%lld, %lld, %lld]", name, (long long)a->shape[0],
                  (long long)a->shape[1], (long long)a->shape[2], (long long)g->shape[0], (long long)g->shape[1],
                  (long long)g->shape[2]);
        if (same) {
            int64_t blk = g->shape[1] * g->shape[2];
            fprintf(stderr, "  %-12s", name);
            for (int64_t l = 0; l < g->shape[0]; l++) {
                const float *x = (const float *)a->data + l * blk, *y = (const float *)g->data + l * blk;
                double num = 0, den = 0;
                for (int64_t i = 0; i < blk; i++) {
                    num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                    den += (double)y[i] * y[i];
                }
                double e = sqrt(num / den);
                fprintf(stderr, " %.2e", e);
                CHECK_MSG(e <= tol, "%s layer block %lld: normwise error %.3e > %.0e", name, (long long)l, e, tol);
            }
            fputc('\n', stderr);
        }
    }
    vlmn_npy_free(a);
    vlmn_npy_free(g);

    snprintf(p, sizeof p, "%s/tokens.json", out);
    char *t1 = test_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/engine/%s.tokens.json", test_data_dir(), name);
    char *t2 = test_read_file(p, NULL);
    CHECK(t1 && t2);
    cJSON *j1 = t1 ? cJSON_Parse(t1) : NULL, *j2 = t2 ? cJSON_Parse(t2) : NULL;
    CHECK(j1 && j2);
    if (j1 && j2) {
        CHECK_EQ_INT(cJSON_GetArraySize(j1), cJSON_GetArraySize(j2));
        int n = cJSON_GetArraySize(j2), bad = 0;
        for (int i = 0; i < n && bad < 3; i++) {
            cJSON *x = cJSON_GetArrayItem(j1, i), *y = cJSON_GetArrayItem(j2, i);
            if (!x || !cJSON_Compare(x, y, true)) {
                char *sx = x ? cJSON_PrintUnformatted(x) : NULL, *sy = cJSON_PrintUnformatted(y);
                fprintf(stderr, "  %s position %d: %s, reference %s\n", name, i, sx ? sx : "(none)", sy);
                free(sx);
                free(sy);
                bad++;
            }
        }
        CHECK_EQ_INT(bad, 0);
    }
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    free(t1);
    free(t2);
}

TEST(probe_llava_v1_exact)
{
    /* same model, image, prompt and hook as the engine test's f32_v1_silu golden */
    probe_case("probe_v1", "f32_v1_silu",
               "-m f32.text.gguf --mmproj f32.mmproj.gguf --image img_wide.png --question 'What is in the image?' "
               "--answer 'A red square on a blue background.' --exact",
               1e-4);
}

TEST(probe_plain_swiglu_layers_fast)
{
    probe_case("probe_plain", "probe_plain",
               "-m bf16.text.gguf --mmproj bf16.mmproj.gguf --image img_tall.png --template plain "
               "--answer 'Two cats sleep on a sofa.' --hook swiglu --layers 0,2",
               1e-2);
}

TEST(probe_raw_prompt_crop_exact)
{
    probe_case("probe_raw", "probe_raw",
               "-m f16.text.gguf --mmproj f16.mmproj.gguf --image img_wide.png --mode crop "
               "--prompt \"$(printf 'USER: <image>\\nDescribe the image. ASSISTANT:')\" --layers 1 --exact",
               1e-4);
}

TEST(probe_jpeg_q8_0_exact)
{
    probe_case("probe_jpeg", "probe_jpeg",
               "-m q8_0.text.gguf --mmproj q8_0.mmproj.gguf --image img_tall.jpg --template plain "
               "--answer 'A dog runs in the park.' --layers 2 --exact",
               1e-4);
}

TEST_MAIN()
