/* End to end: `vlmn record` over 40 generated samples with a tiny model must give
 * the global maxima, statistics and top-N lists (with their top-8 image/text values)
 * that a brute-force pass over `vlmn probe` outputs of every sample gives
 * (activations.npy + tokens.json per sample, read here independently). */
#include "test.h"
#include "vlmn/dataset.h"
#include "vlmn/npy.h"
#include "vlmn/record.h"
#include "vlmn/run.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { NS = 40, TOPN = 5 };

static int run_argv(char *const argv[])
{
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ)) return -1;
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

typedef struct {
    int64_t T;
    uint8_t *cls; /* 0 image, 1 text, 2 not counted */
    float *acts;  /* [L][T][F] */
} probe_t;

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

TEST(record_equals_probe_brute_force)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin) {
        CHECK_MSG(0, "VLMN_BIN not set");
        return;
    }
    char dir[512], prefix[600], text[700], mmproj[700], dsdir[600], data[700], run[600];
    snprintf(dir, sizeof dir, "%s/rec_vs_probe", test_tmp_dir());
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(prefix, sizeof prefix, "%s/tiny", dir);
    snprintf(text, sizeof text, "%s-text.gguf", prefix);
    snprintf(mmproj, sizeof mmproj, "%s-mmproj.gguf", prefix);
    snprintf(dsdir, sizeof dsdir, "%s/ds", dir);
    snprintf(data, sizeof data, "%s/data.json", dsdir);
    snprintf(run, sizeof run, "%s/run", dir);
    {
        char *a[] = {(char *)bin, "make-model", "--preset", "tiny", "--seed", "3", "-q", "-o", prefix, NULL};
        CHECK_EQ_INT(run_argv(a), 0);
        char *b[] = {(char *)bin, "make-dataset", "-n", "40", "--seed", "5", "-o", dsdir, NULL};
        CHECK_EQ_INT(run_argv(b), 0);
        char *c[] = {(char *)bin, "record", "-m", text, "--mmproj", mmproj, "--data", data, "--images", dsdir,
                     "-o", run, "--top-n", "5", "-t", "1", "--checkpoint-every", "16", "-q", NULL};
        CHECK_EQ_INT(run_argv(c), 0);
    }
    /* probe every sample */
    vlmn_dataset *ds = NULL;
    CHECK(vlmn_ds_open(data, VLMN_DS_AUTO, &ds) == VLMN_OK);
    if (!ds) return;
    static probe_t P[NS];
    int L = 0, F = 0, ns = 0;
    vlmn_sample s;
    bool eof;
    while (ns < NS && vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof) {
        char img[1200], out[700], npy[800], tok[800];
        snprintf(img, sizeof img, "%s/%s", dsdir, s.image);
        snprintf(out, sizeof out, "%s/p%d", dir, ns);
        char *a[] = {(char *)bin, "probe", "-m", text, "--mmproj", mmproj, "--image", img, "--question",
                     (char *)s.question, "--answer", (char *)s.answer, "-t", "1", "-o", out, NULL};
        if (run_argv(a) != 0) {
            CHECK_MSG(0, "probe of sample %d failed", ns);
            break;
        }
        snprintf(npy, sizeof npy, "%s/activations.npy", out);
        snprintf(tok, sizeof tok, "%s/tokens.json", out);
        vlmn_npy *arr = NULL;
        CHECK(vlmn_npy_read(npy, &arr) == VLMN_OK);
        char *js = read_all(tok);
        cJSON *j = js ? cJSON_Parse(js) : NULL;
        free(js);
        if (!arr || !j || arr->ndim != 3 || arr->dtype != VLMN_NPY_F32) {
            CHECK_MSG(0, "sample %d: bad probe output", ns);
            vlmn_npy_free(arr);
            cJSON_Delete(j);
            break;
        }
        L = (int)arr->shape[0];
        F = (int)arr->shape[2];
        P[ns].T = arr->shape[1];
        P[ns].acts = malloc(arr->count * sizeof(float));
        memcpy(P[ns].acts, arr->data, arr->count * sizeof(float));
        P[ns].cls = malloc((size_t)P[ns].T);
        CHECK_EQ_INT(cJSON_GetArraySize(j), P[ns].T);
        for (int64_t t = 0; t < P[ns].T; t++) {
            const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, (int)t), "modality"));
            P[ns].cls[t] = m && !strcmp(m, "image") ? 0 : m && !strcmp(m, "text") ? 1 : 2;
        }
        vlmn_npy_free(arr);
        cJSON_Delete(j);
        ns++;
    }
    vlmn_ds_close(ds);
    CHECK_EQ_INT(ns, NS);

    vlmn_run *r = NULL;
    CHECK(vlmn_run_open(run, &r) == VLMN_OK);
    if (!r || ns != NS) goto out;
    CHECK_EQ_INT(vlmn_run_n_layers(r), L);
    CHECK_EQ_INT(vlmn_run_n_ff(r), F);
    CHECK_EQ_INT(vlmn_run_n_samples(r), NS);
    int bad = 0;
    for (int l = 0; l < L && bad < 5; l++)
        for (int k = 0; k < F && bad < 5; k++) {
            float smax[NS], gmax = -INFINITY, gmin = INFINITY;
            double sum = 0;
            uint64_t cnt = 0;
            for (int i = 0; i < NS; i++) {
                smax[i] = -INFINITY;
                for (int64_t t = 0; t < P[i].T; t++) {
                    if (P[i].cls[t] == 2) continue;
                    float v = P[i].acts[((int64_t)l * P[i].T + t) * F + k];
                    smax[i] = v > smax[i] ? v : smax[i];
                    gmax = v > gmax ? v : gmax;
                    gmin = v < gmin ? v : gmin;
                    sum += v;
                    cnt++;
                }
            }
            const vlmn_neuron_stats *st = vlmn_run_stats(r, l, k);
            if (st->max_act != gmax || st->min_act != gmin || st->count != cnt ||
                fabs(st->sum - sum) > 1e-6 * (1 + fabs(sum))) {
                CHECK_MSG(0, "neuron %d/%d: max %.9g min %.9g count %llu, probe %.9g %.9g %llu", l, k, st->max_act,
                          st->min_act, (unsigned long long)st->count, gmax, gmin, (unsigned long long)cnt);
                bad++;
            }
            int n;
            const vlmn_top_entry *top = vlmn_run_top(r, l, k, &n);
            CHECK_EQ_INT(n, TOPN);
            bool used[NS] = {0};
            for (int rank = 0; rank < n && rank < TOPN; rank++) {
                int best = -1;
                for (int i = 0; i < NS; i++)
                    if (!used[i] && (best < 0 || smax[i] > smax[best])) best = i; /* ties: lower index */
                used[best] = true;
                float im[4096], tx[4096];
                int ni = 0, nt = 0;
                for (int64_t t = 0; t < P[best].T && ni < 4096 && nt < 4096; t++) {
                    float v = P[best].acts[((int64_t)l * P[best].T + t) * F + k];
                    if (P[best].cls[t] == 0) im[ni++] = v;
                    else if (P[best].cls[t] == 1) tx[nt++] = v;
                }
                qsort(im, (size_t)ni, sizeof(float), cmp_desc);
                qsort(tx, (size_t)nt, sizeof(float), cmp_desc);
                bool ok = top[rank].sample == (uint32_t)best && top[rank].max_act == smax[best];
                for (int q = 0; q < VLMN_TOP_TOKENS; q++)
                    ok = ok && top[rank].img[q] == (q < ni ? im[q] : -INFINITY) &&
                         top[rank].txt[q] == (q < nt ? tx[q] : -INFINITY);
                if (!ok) {
                    CHECK_MSG(0, "neuron %d/%d rank %d: sample %u max %.9g, probe: sample %d max %.9g", l, k, rank + 1,
                              top[rank].sample, top[rank].max_act, best, smax[best]);
                    bad++;
                }
            }
        }
    /* the samples table counts the probe's labels */
    sqlite3 *db = vlmn_run_db(r);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "SELECT sample_index, n_image_tokens, n_text_tokens FROM samples ORDER BY 1", -1, &q,
                             NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int i = sqlite3_column_int(q, 0);
        int64_t ni = 0, nt = 0;
        for (int64_t t = 0; i < NS && t < P[i].T; t++) {
            ni += P[i].cls[t] == 0;
            nt += P[i].cls[t] == 1;
        }
        CHECK_EQ_INT(sqlite3_column_int64(q, 1), ni);
        CHECK_EQ_INT(sqlite3_column_int64(q, 2), nt);
    }
    sqlite3_finalize(q);
out:
    vlmn_run_close(r);
    for (int i = 0; i < ns; i++) {
        free(P[i].acts);
        free(P[i].cls);
    }
}

TEST_MAIN()
