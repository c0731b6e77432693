/* `vlmn score` and `vlmn stats --table2` on a run: per explanation, the simulations of
 * each simulator concatenated over the sample ranks and scored per A.3 (score.c) into
 * the scores table; Table 2 as means per kind and sampling with bootstrap intervals.
 * Also the table of visual simulators other modules register.
 * Flow: simulations table -> [this] -> scores table -> stats output. */
#include "vlmn/pipeline.h"
#include "vlmn/run.h"
#include "core/alloc.h"
#include "store/store.h"
#include "explain/explain_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct fvec {
    float *p;
    int n, cap;
} fvec;

static bool fvec_add(fvec *v, const void *blob, int bytes)
{
    int k = bytes / (int)sizeof(float);
    if (v->n + k > v->cap) {
        int cap = v->cap ? v->cap : 256;
        while (cap < v->n + k) cap *= 2;
        float *p = vlmn_realloc(v->p, (size_t)cap * sizeof *p);
        if (!p) return false;
        v->p = p;
        v->cap = cap;
    }
    if (k) memcpy(v->p + v->n, blob, (size_t)k * sizeof(float));
    v->n += k;
    return true;
}

/* One simulator's vectors for one explanation and modality. */
typedef struct simset {
    char name[300];  /* "SIMULATOR:MODE" */
    fvec real, sim;
    int mismatch;
} simset;

static void simset_free(simset *s, int n)
{
    for (int i = 0; i < n; i++) {
        vlmn_free(s[i].real.p);
        vlmn_free(s[i].sim.p);
    }
    vlmn_free(s);
}

static vlmn_status load_sets(sqlite3_stmt *q, int L, int N, const char *sampling, const char *explainer,
                             const char *images, const char *modality, simset **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    xdb_bind_key(q, L, N, sampling, explainer, images);
    sqlite3_bind_text(q, 6, modality, -1, SQLITE_STATIC);
    simset *s = NULL;
    int n = 0, cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char name[300];
        snprintf(name, sizeof name, "%s:%s", (const char *)sqlite3_column_text(q, 0),
                 (const char *)sqlite3_column_text(q, 1));
        int k = n - 1;
        if (n == 0 || strcmp(s[k].name, name)) {
            simset *t = vlmn_grow(s, n, &cap, sizeof *s);
            if (!t) goto oom;
            s = t;
            memset(&s[n], 0, sizeof s[n]);
            snprintf(s[n].name, sizeof s[n].name, "%s", name);
            k = n++;
        }
        int rb = sqlite3_column_bytes(q, 3), sb = sqlite3_column_bytes(q, 2);
        const void *real = sqlite3_column_blob(q, 3), *sim = sqlite3_column_blob(q, 2);
        if (rb != sb || rb % (int)sizeof(float)) continue; /* never scored from inconsistent rows */
        if (!fvec_add(&s[k].real, real, rb) || !fvec_add(&s[k].sim, sim, sb)) goto oom;
        s[k].mismatch += sqlite3_column_int(q, 4);
    }
    sqlite3_reset(q);
    *out = s;
    *n_out = n;
    return VLMN_OK;
oom:
    sqlite3_reset(q);
    simset_free(s, n);
    return vlmn_error(VLMN_E_NOMEM, "score: out of memory");
}

static vlmn_status put_score(sqlite3 *db, sqlite3_stmt *ins, int L, int N, const char *sampling, const char *explainer,
                             const char *images, const char *simname, vlmn_xkind k, const vlmn_xscore *s, int mismatch,
                             int64_t *n_scored, int64_t *n_undef)
{
    xdb_bind_key(ins, L, N, sampling, explainer, images);
    sqlite3_bind_text(ins, 6, simname, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 7, "pearson", -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 8, vlmn_xkind_name(k), -1, SQLITE_STATIC);
    const double v[3] = {s->score, s->visual, s->text};
    for (int i = 0; i < 3; i++) {
        if (isnan(v[i])) sqlite3_bind_null(ins, 9 + i);
        else sqlite3_bind_double(ins, 9 + i, v[i]);
    }
    sqlite3_bind_int(ins, 12, s->n_visual);
    sqlite3_bind_int(ins, 13, s->n_text);
    sqlite3_bind_int(ins, 14, mismatch);
    if (s->note) sqlite3_bind_text(ins, 15, s->note, -1, SQLITE_STATIC);
    else sqlite3_bind_null(ins, 15);
    if (sqlite3_step(ins) != SQLITE_DONE) return vlmn_db_err(db, "scores");
    (*n_scored)++;
    if (isnan(s->score)) (*n_undef)++;
    return VLMN_OK;
}

vlmn_status vlmn_score_run(const char *run_dir, int64_t *n_scored, int64_t *n_undefined)
{
    *n_scored = *n_undefined = 0;
    vlmn_run *run = NULL;
    vlmn_status st;
    sqlite3_stmt *ex = NULL, *q = NULL, *ins = NULL;
    if ((st = vlmn_run_open(run_dir, &run))) return st;
    sqlite3 *db = vlmn_run_db(run);
    if ((st = vlmn_xdb_init(db))) goto out;
    if (sqlite3_prepare_v2(db, "SELECT layer, neuron, sampling, explainer, images, kind FROM explanations WHERE status='ok'",
                           -1, &ex, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT simulator, mode, sim, real, n_mismatch FROM simulations WHERE layer=? AND neuron=? "
                           "AND sampling=? AND explainer=? AND images=? AND modality=? AND status='ok' "
                           "ORDER BY simulator, mode, rank",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO scores (layer, neuron, sampling, explainer, images, simulator, "
                           "scorer, kind, score, score_visual, score_text, n_visual, n_text, n_mismatch, note, created) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &ins, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "scores");
        goto out;
    }
    if ((st = vlmn_db_exec(db, "BEGIN; DELETE FROM scores WHERE scorer='pearson';"))) goto out;
    while (sqlite3_step(ex) == SQLITE_ROW) {
        int L = sqlite3_column_int(ex, 0), N = sqlite3_column_int(ex, 1);
        char sampling[32], explainer[256], images[32];
        snprintf(sampling, sizeof sampling, "%s", (const char *)sqlite3_column_text(ex, 2));
        snprintf(explainer, sizeof explainer, "%s", (const char *)sqlite3_column_text(ex, 3));
        snprintf(images, sizeof images, "%s", (const char *)sqlite3_column_text(ex, 4));
        vlmn_xkind k;
        if (vlmn_xkind_parse((const char *)sqlite3_column_text(ex, 5), &k)) continue;
        simset *ts = NULL, *vs = NULL;
        int nt = 0, nv = 0;
        if ((st = load_sets(q, L, N, sampling, explainer, images, "text", &ts, &nt)) ||
            (st = load_sets(q, L, N, sampling, explainer, images, "visual", &vs, &nv))) {
            simset_free(ts, nt);
            goto rollback;
        }
        /* combinations: visual neurons x visual sims, text x text, multi-modal x both
         * (a missing part is scored as undefined with its note) */
        int nt_c = k == VLMN_XK_VISUAL ? 1 : nt, nv_c = k == VLMN_XK_TEXT ? 1 : nv;
        if (k == VLMN_XK_MULTIMODAL && nt_c == 0 && nv_c > 0) nt_c = 1;
        if (k == VLMN_XK_MULTIMODAL && nv_c == 0 && nt_c > 0) nv_c = 1;
        for (int a = 0; a < nt_c && !st; a++)
            for (int b = 0; b < nv_c && !st; b++) {
                const simset *t = (k != VLMN_XK_VISUAL && a < nt) ? &ts[a] : NULL;
                const simset *v = (k != VLMN_XK_TEXT && b < nv) ? &vs[b] : NULL;
                if (!t && !v) continue;
                char name[620];
                snprintf(name, sizeof name, "%s%s%s", t ? t->name : "", t && v ? "+" : "", v ? v->name : "");
                vlmn_xscore s;
                vlmn_score_neuron(k, v ? v->real.p : NULL, v ? v->sim.p : NULL, v ? v->real.n : 0, t ? t->real.p : NULL,
                                  t ? t->sim.p : NULL, t ? t->real.n : 0, &s);
                st = put_score(db, ins, L, N, sampling, explainer, images, name, k, &s,
                               (t ? t->mismatch : 0) + (v ? v->mismatch : 0), n_scored, n_undefined);
            }
        simset_free(ts, nt);
        simset_free(vs, nv);
        if (st) goto rollback;
    }
    st = vlmn_db_exec(db, "COMMIT");
    goto out;
rollback:
    vlmn_db_exec(db, "ROLLBACK");
out:
    sqlite3_finalize(ex);
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    vlmn_run_close(run);
    return st;
}

static const char *ROW_NAMES[3] = {"Visual neurons", "Text neurons", "Multi-modal neurons"};

vlmn_status vlmn_table2(const char *run_dir, int n_boot, bool json, FILE *f)
{
    vlmn_run *run = NULL;
    vlmn_status st;
    sqlite3_stmt *g = NULL, *q = NULL;
    if ((st = vlmn_run_open(run_dir, &run))) return st;
    sqlite3 *db = vlmn_run_db(run);
    cJSON *root = json ? cJSON_CreateArray() : NULL;
    double *x = NULL;
    if ((st = vlmn_xdb_init(db))) goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT explainer, simulator, images = 'raw', scorer, CASE scorer WHEN 'pearson' "
                           "THEN 0 WHEN 'detection' THEN 1 ELSE 2 END AS o FROM scores ORDER BY 1, 3, o, 2",
                           -1, &g, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT score, accuracy FROM scores WHERE scorer=?6 AND explainer=?1 AND simulator=?2 AND "
                           "(images = 'raw') = ?3 AND kind=?4 AND sampling=?5 ORDER BY layer, neuron",
                           -1, &q, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "scores");
        goto out;
    }
    int groups = 0;
    while (sqlite3_step(g) == SQLITE_ROW) {
        const char *explainer = (const char *)sqlite3_column_text(g, 0), *simulator = (const char *)sqlite3_column_text(g, 1);
        int raw = sqlite3_column_int(g, 2);
        const char *scorer = (const char *)sqlite3_column_text(g, 3);
        bool pearson = !strcmp(scorer, "pearson");
        int w = pearson ? 32 : 44;
        cJSON *jg = NULL;
        if (json) {
            jg = cJSON_CreateObject();
            cJSON_AddItemToArray(root, jg);
            cJSON_AddStringToObject(jg, "explainer", explainer);
            cJSON_AddStringToObject(jg, "simulator", simulator);
            /* label:<clip> explanations (vlmn label --as-explanations) saw the images through CLIP */
            cJSON_AddStringToObject(jg, "images", raw ? "raw" : !strncmp(explainer, "label:", 6) ? "clip" : "modulated");
            cJSON_AddStringToObject(jg, "scorer", scorer);
        } else if (pearson) {
            fprintf(f, "%sTable 2: explainer %s, simulator %s%s (Pearson r, mean [95%% bootstrap CI], n scored / "
                       "undefined)\n",
                    groups ? "\n" : "", explainer, simulator, raw ? ", raw images (B.3)" : "");
            fprintf(f, "%-20s  %-32s  %-32s\n", "Neuron category", "Top sampling", "Random sampling");
        } else {
            fprintf(f, "%sTable 2, %s scorer: explainer %s, scorer model %s%s (AUROC, mean [95%% bootstrap CI], n "
                       "scored / undefined, mean accuracy)\n",
                    groups ? "\n" : "", scorer, explainer, simulator, raw ? ", raw images (B.3)" : "");
            fprintf(f, "%-20s  %-44s  %-44s\n", "Neuron category", "Top sampling", "Random sampling");
        }
        groups++;
        for (int k = 0; k < 3; k++) {
            if (!json) fprintf(f, "%-20s", ROW_NAMES[k]);
            for (int smp = 0; smp < 2; smp++) {
                sqlite3_reset(q);
                sqlite3_bind_text(q, 1, explainer, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 2, simulator, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(q, 3, raw);
                sqlite3_bind_text(q, 4, vlmn_xkind_name((vlmn_xkind)k), -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 5, smp ? "random" : "top", -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 6, scorer, -1, SQLITE_TRANSIENT);
                int n = 0, nu = 0, cap = 0, na = 0;
                double acc = 0;
                while (sqlite3_step(q) == SQLITE_ROW) {
                    if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
                        acc += sqlite3_column_double(q, 1);
                        na++;
                    }
                    if (sqlite3_column_type(q, 0) == SQLITE_NULL) {
                        nu++;
                        continue;
                    }
                    double *t = vlmn_grow(x, n, &cap, sizeof *x);
                    if (!t) {
                        st = vlmn_error(VLMN_E_NOMEM, "table2: out of memory");
                        goto out;
                    }
                    x = t;
                    x[n++] = sqlite3_column_double(q, 0);
                }
                double m = NAN, lo = NAN, hi = NAN;
                if (n) vlmn_bootstrap_mean(x, n, n_boot, 20240101u + (uint64_t)(k * 2 + smp), &m, &lo, &hi);
                if (json) {
                    char key[64];
                    snprintf(key, sizeof key, "%s_%s", vlmn_xkind_name((vlmn_xkind)k), smp ? "random" : "top");
                    cJSON *c = cJSON_AddObjectToObject(jg, key);
                    if (n) {
                        cJSON_AddNumberToObject(c, "mean", m);
                        cJSON_AddNumberToObject(c, "ci_lo", lo);
                        cJSON_AddNumberToObject(c, "ci_hi", hi);
                    } else {
                        cJSON_AddNullToObject(c, "mean");
                    }
                    cJSON_AddNumberToObject(c, "n", n);
                    cJSON_AddNumberToObject(c, "n_undefined", nu);
                    if (!pearson) {
                        if (na) cJSON_AddNumberToObject(c, "accuracy", acc / na);
                        else cJSON_AddNullToObject(c, "accuracy");
                    }
                } else {
                    char cell[96], a[24] = "";
                    if (!pearson && na) snprintf(a, sizeof a, " acc=%.3f", acc / na);
                    if (n) snprintf(cell, sizeof cell, "%.3f [%.3f, %.3f] n=%d/%d%s", m, lo, hi, n, nu, a);
                    else snprintf(cell, sizeof cell, "- n=0/%d%s", nu, a);
                    fprintf(f, "  %-*s", w, cell);
                }
            }
            if (!json) fprintf(f, "\n");
        }
    }
    if (json) {
        char *s = cJSON_PrintUnformatted(root);
        fprintf(f, "%s\n", s ? s : "[]");
        cJSON_free(s);
    } else if (!groups) {
        fprintf(f, "Table 2: no scores in %s (run vlmn explain, simulate, score)\n", run_dir);
    }
out:
    cJSON_Delete(root);
    vlmn_free(x);
    sqlite3_finalize(g);
    sqlite3_finalize(q);
    vlmn_run_close(run);
    return st;
}

/* ---- visual simulator table ---- */

#define MAX_VISUAL_SIMS 8
static struct {
    char name[32];
    vlmn_visual_sim_create_fn fn;
} g_visual[MAX_VISUAL_SIMS];
static int g_n_visual;

vlmn_status vlmn_visual_sim_register(const char *name, vlmn_visual_sim_create_fn fn)
{
    for (int i = 0; i < g_n_visual; i++)
        if (!strcmp(g_visual[i].name, name)) {
            g_visual[i].fn = fn;
            return VLMN_OK;
        }
    if (g_n_visual == MAX_VISUAL_SIMS || strlen(name) >= sizeof g_visual[0].name)
        return vlmn_error(VLMN_E_RANGE, "visual simulator %s: table full or name too long", name);
    snprintf(g_visual[g_n_visual].name, sizeof g_visual[0].name, "%s", name);
    g_visual[g_n_visual++].fn = fn;
    return VLMN_OK;
}

vlmn_status vlmn_visual_sim_create(const char *name, const char *arg, const vlmn_llm_opts *llm, vlmn_simulator *out)
{
    for (int i = 0; i < g_n_visual; i++)
        if (!strcmp(g_visual[i].name, name)) return g_visual[i].fn(arg, llm, out);
    return vlmn_error(VLMN_E_NOTFOUND, "visual simulator '%s' is not built into this vlmn (registered: %d)", name,
                      g_n_visual);
}
