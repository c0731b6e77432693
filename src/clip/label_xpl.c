/* Labels as explanations (vlmn label --as-explanations, issue 15): each labelled neuron's
 * rank-1 concept becomes an `explanations` row (explainer "label:<clip>", images "clip")
 * with the sampling key of the samples it was chosen on, so that vlmn simulate / score /
 * stats --table2 score it exactly like an LLM's explanation, on the held-out top ranks
 * 3,7,11,15,19. Flow: label.c -> [this] -> explanations table. docs/clip.md. */
#include "clip/label_int.h"
#include "vlmn/pipeline.h"
#include "core/alloc.h"
#include "explain/explain_int.h"
#include "store/sha256.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

vlmn_status label_xpl_sampling(const char *sspec, const char *clip_name, char key[16])
{
    /* the simulate / score drivers keep explainer names in 256-byte buffers */
    if (strlen(clip_name) > 200)
        return vlmn_error(VLMN_E_ARG, "label: --as-explanations: CLIP name '%.40s...' longer than 200 bytes",
                          clip_name);
    unsigned long long seed;
    int end = 0;
    if (!strcmp(sspec, VLMN_XTOP_SAMPLES)) snprintf(key, 16, "top");
    else if (sscanf(sspec, "random:5:%llu%n", &seed, &end) == 1 && !sspec[end] && sspec[9] >= '0' && sspec[9] <= '9')
        snprintf(key, 16, "random");
    else
        return vlmn_error(VLMN_E_ARG,
                          "label: --as-explanations: --samples %s is not an explainer sampling (" VLMN_XTOP_SAMPLES
                          " as `explain --sampling top`, or random:5:SEED)",
                          sspec);
    return VLMN_OK;
}

vlmn_status label_xpl_heldout(const vlmn_run *run, const char *run_dir, int layer, int neuron,
                              const uint32_t *samples, int64_t n)
{
    int ntop = 0;
    const vlmn_top_entry *te = vlmn_run_top(run, layer, neuron, &ntop);
    for (int r = 0; r < VLMN_SIM_NRANKS && vlmn_sim_ranks[r] <= ntop; r++)
        for (int64_t k = 0; k < n; k++)
            if (samples[k] == te[vlmn_sim_ranks[r] - 1].sample)
                return vlmn_error(VLMN_E_ARG,
                                  "%s: --as-explanations: neuron %d:%d: sample %u is a label sample and its scoring "
                                  "sample of rank %d (simulate uses " VLMN_SIM_SAMPLES "); label it on other samples",
                                  run_dir, layer, neuron, samples[k], vlmn_sim_ranks[r]);
    return VLMN_OK;
}

vlmn_status label_xpl_open(sqlite3 *db, const vlmn_label_opts *o, const char *sspec, const char *sampling,
                           label_xpl *w)
{
    memset(w, 0, sizeof *w);
    w->db = db;
    vlmn_status st;
    if ((st = vlmn_xdb_init(db))) return st;
    snprintf(w->explainer, sizeof w->explainer, "label:%s", o->clip_name);
    snprintf(w->sampling, sizeof w->sampling, "%s", sampling);
    /* the "prompt" of a label: the CLIP name, the samples and the concept list */
    vlmn_sha256 h;
    uint8_t d[32];
    vlmn_sha256_init(&h);
    vlmn_sha256_update(&h, "vlmn-label-v1\n", 14);
    vlmn_sha256_update(&h, o->clip_name, strlen(o->clip_name) + 1);
    vlmn_sha256_update(&h, sspec, strlen(sspec) + 1);
    for (int c = 0; c < o->concepts->n; c++)
        vlmn_sha256_update(&h, o->concepts->items[c], strlen(o->concepts->items[c]) + 1);
    vlmn_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(w->prompt_hash + 2 * i, 3, "%02x", d[i]);
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "clip", o->clip_name);
    cJSON_AddStringToObject(sj, "samples", sspec);
    cJSON_AddStringToObject(sj, "concepts", o->concepts_name ? o->concepts_name : "default");
    cJSON_AddNumberToObject(sj, "n_concepts", o->concepts->n);
    cJSON_AddStringToObject(sj, "rule", "rank-1 concept of vlmn label (Pearson r of its MaskCLIP map)");
    char *sjs = cJSON_PrintUnformatted(sj);
    cJSON_Delete(sj);
    w->settings = sjs ? vlmn_strdup(sjs) : NULL;
    cJSON_free(sjs);
    if (!w->settings) return vlmn_error(VLMN_E_NOMEM, "label: out of memory");
    static const char key[] = "layer=? AND neuron=? AND sampling=? AND explainer=? AND images=?";
    char sql[3][256];
    snprintf(sql[0], sizeof sql[0], "SELECT status, text FROM explanations WHERE %s", key);
    snprintf(sql[1], sizeof sql[1], "DELETE FROM simulations WHERE %s", key);
    snprintf(sql[2], sizeof sql[2], "DELETE FROM scores WHERE %s", key);
    if (sqlite3_prepare_v2(db, sql[0], -1, &w->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql[1], -1, &w->del_sims, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql[2], -1, &w->del_scores, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO explanations (layer, neuron, sampling, explainer, images, kind, "
                           "samples, max_act, text, status, error, prompt_hash, settings, attempts, cached, created) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &w->put, NULL) != SQLITE_OK)
        return vlmn_db_err(db, "explanations");
    return VLMN_OK;
}

vlmn_status label_xpl_put(label_xpl *w, int layer, int neuron, const char *kind, const uint32_t *samples, int64_t n,
                          double max_act, const char *concept, double r, bool *changed)
{
    *changed = false;
    bool ok = !isnan(r);
    xdb_bind_key(w->get, layer, neuron, w->sampling, w->explainer, "clip");
    bool same = false;
    if (sqlite3_step(w->get) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(w->get, 0), *t = (const char *)sqlite3_column_text(w->get, 1);
        same = s && !strcmp(s, ok ? "ok" : "failed") && (ok ? t && !strcmp(t, concept) : !t);
    }
    sqlite3_reset(w->get);
    if (same) return VLMN_OK;
    /* a new or changed label: the old one's simulations and scores no longer apply */
    sqlite3_stmt *del[2] = {w->del_sims, w->del_scores};
    for (int i = 0; i < 2; i++) {
        xdb_bind_key(del[i], layer, neuron, w->sampling, w->explainer, "clip");
        if (sqlite3_step(del[i]) != SQLITE_DONE) return vlmn_db_err(w->db, i ? "scores" : "simulations");
    }
    char list[VLMN_SIM_NRANKS * 12 + 256];
    size_t k0 = (size_t)snprintf(list, sizeof list, "[");
    for (int64_t k = 0; k < n && k0 < sizeof list - 16; k++)
        k0 += (size_t)snprintf(list + k0, sizeof list - k0, "%s%u", k ? "," : "", samples[k]);
    snprintf(list + k0, sizeof list - k0, "]");
    sqlite3_stmt *s = w->put;
    xdb_bind_key(s, layer, neuron, w->sampling, w->explainer, "clip");
    sqlite3_bind_text(s, 6, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, list, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 8, max_act);
    if (ok) sqlite3_bind_text(s, 9, concept, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, 9);
    sqlite3_bind_text(s, 10, ok ? "ok" : "failed", -1, SQLITE_STATIC);
    if (ok) sqlite3_bind_null(s, 11);
    else sqlite3_bind_text(s, 11, "no defined label: constant activations or maps on the label samples", -1,
                           SQLITE_STATIC);
    sqlite3_bind_text(s, 12, w->prompt_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, w->settings, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) return vlmn_db_err(w->db, "explanations");
    *changed = true;
    return VLMN_OK;
}

void label_xpl_close(label_xpl *w)
{
    sqlite3_finalize(w->get);
    sqlite3_finalize(w->put);
    sqlite3_finalize(w->del_sims);
    sqlite3_finalize(w->del_scores);
    vlmn_free(w->settings);
    memset(w, 0, sizeof *w);
}
