/* Shared by the end-to-end tests that drive the vlmn binary (tests/trace, tests/record):
 * run it, lay out one case's scratch folder (VLMN_TMP/NAME: model pair, dataset, run),
 * and `vlmn probe` one dataset sample into activations.npy [L, T, F] + tokens.json,
 * read back here independently of the code under test. */
#ifndef VLMN_TESTS_E2E_FIXTURE_H
#define VLMN_TESTS_E2E_FIXTURE_H

#include "test.h"
#include "vlmn/dataset.h"
#include "vlmn/npy.h"

#include <cjson/cJSON.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/wait.h>

extern char **environ;

/* Runs argv (argv[0] a path) and waits; its exit status, -1 when it could not run. */
static inline int e2e_run(char *const argv[])
{
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ)) return -1;
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The files of one test case, in a fresh scratch folder VLMN_TMP/NAME: the model pair
 * STEM-{text,mmproj}.gguf, the dataset ds/DATA_NAME and the run. */
typedef struct e2e_case {
    char dir[512], prefix[600], text[700], mmproj[700], dsdir[600], data[700], run[600];
} e2e_case;

static inline bool e2e_case_init(e2e_case *c, const char *name, const char *stem, const char *data_name)
{
    char cmd[2048];
    snprintf(c->dir, sizeof c->dir, "%s/%s", test_tmp_dir(), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", c->dir, c->dir);
    snprintf(c->prefix, sizeof c->prefix, "%s/%s", c->dir, stem);
    snprintf(c->text, sizeof c->text, "%s-text.gguf", c->prefix);
    snprintf(c->mmproj, sizeof c->mmproj, "%s-mmproj.gguf", c->prefix);
    snprintf(c->dsdir, sizeof c->dsdir, "%s/ds", c->dir);
    snprintf(c->data, sizeof c->data, "%s/%s", c->dsdir, data_name);
    snprintf(c->run, sizeof c->run, "%s/run", c->dir);
    return system(cmd) == 0;
}

/* One sample's `vlmn probe` output. */
typedef struct e2e_probe {
    vlmn_npy *acts; /* [L, T, F] */
    cJSON *tokens;  /* [{id, piece, modality}] */
    char image[1400];
} e2e_probe;

/* `vlmn probe` of dataset sample `sample` of case c (template `tmpl`, NULL for the
 * default) into c->dir/probe<sample>; false when it fails or its output is malformed. */
static inline bool e2e_probe_sample(const e2e_case *c, uint32_t sample, const char *tmpl, e2e_probe *po)
{
    vlmn_dataset *ds = NULL;
    if (vlmn_ds_open(c->data, VLMN_DS_AUTO, &ds)) return false;
    vlmn_sample s;
    bool eof = false, ok = false;
    for (uint32_t i = 0; i <= sample; i++)
        if (vlmn_ds_next(ds, &s, &eof) || eof) goto out;
    char out[800], npy[900], tok[900];
    snprintf(po->image, sizeof po->image, "%s/%s", c->dsdir, s.image);
    snprintf(out, sizeof out, "%s/probe%u", c->dir, sample);
    char *a[] = {(char *)getenv("VLMN_BIN"), "probe", "-m", (char *)c->text, "--mmproj", (char *)c->mmproj,
                 "--image", po->image, "--question", (char *)s.question, "--answer", (char *)s.answer,
                 "-t", "1", "-o", out, tmpl ? "--template" : NULL, (char *)tmpl, NULL};
    if (e2e_run(a)) goto out;
    snprintf(npy, sizeof npy, "%s/activations.npy", out);
    snprintf(tok, sizeof tok, "%s/tokens.json", out);
    char *js = test_read_file(tok, NULL);
    po->tokens = js ? cJSON_Parse(js) : NULL;
    free(js);
    ok = vlmn_npy_read(npy, &po->acts) == VLMN_OK && po->tokens && po->acts->ndim == 3 &&
         po->acts->dtype == VLMN_NPY_F32;
out:
    vlmn_ds_close(ds);
    return ok;
}

static inline void e2e_probe_free(e2e_probe *po)
{
    vlmn_npy_free(po->acts);
    cJSON_Delete(po->tokens);
    po->acts = NULL;
    po->tokens = NULL;
}

/* Token t's modality in the probe's tokens.json: 0 image, 1 text, 2 neither (prompt). */
static inline int e2e_probe_modality(const e2e_probe *po, int64_t t)
{
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(po->tokens, (int)t), "modality"));
    return m && !strcmp(m, "image") ? 0 : m && !strcmp(m, "text") ? 1 : 2;
}

/* How many of the n traced activations of (layer, neuron) differ bitwise from the
 * probe's at the same positions. */
static inline int64_t e2e_probe_mismatches(const e2e_probe *po, int layer, int neuron, const float *acts, int64_t n)
{
    int64_t T = po->acts->shape[1], F = po->acts->shape[2], bad = 0;
    const float *P = po->acts->data;
    for (int64_t p = 0; acts && p < T && p < n; p++)
        if (memcmp(&acts[p], &P[((int64_t)layer * T + p) * F + neuron], 4)) bad++;
    return bad;
}

#endif
