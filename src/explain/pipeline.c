/* The explain -> simulate -> score pipeline on a run (paper 4.6, Table 2): neuron and
 * sample selection (select.h), per-token activations and pictures from the trace store
 * (trace.h, draw.h), requests through the llm client, one committed row per answered
 * item in RUN/run.sqlite (so a killed run resumes without asking twice), and the Table 2
 * aggregation. Flow: run + traces -> [this] -> run tables -> stats. docs/explain.md. */
#include "vlmn/explain.h"
#include "vlmn/pipeline.h"
#include "vlmn/draw.h"
#include "vlmn/select.h"
#include "vlmn/trace.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "store/store.h"
#include "explain/explain_int.h"
#include "store/sha256.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHUNK 256 /* items built and sent per batch (bounds the memory of PNG bodies) */

const int vlmn_sim_ranks[VLMN_SIM_NRANKS] = {3, 7, 11, 15, 19};

/* Kind of a neuron from the classification table; *found false when unclassified or
 * unknown. */
static vlmn_status neuron_kind(sqlite3 *db, int layer, int neuron, vlmn_xkind *k, bool *found)
{
    *found = false;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT label FROM classification WHERE layer = ? AND neuron = ?", -1, &s, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(s);
        return vlmn_error(VLMN_E_NOTFOUND, "%s: not classified (run `vlmn classify` first, or give --kind)",
                          sqlite3_db_filename(db, "main"));
    }
    sqlite3_bind_int(s, 1, layer);
    sqlite3_bind_int(s, 2, neuron);
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *l = (const char *)sqlite3_column_text(s, 0);
        if (l && vlmn_xkind_parse(l, k) == VLMN_OK) *found = true;
        vlmn_clear_error();
    }
    sqlite3_finalize(s);
    return VLMN_OK;
}

void xload_free(xload *l)
{
    vlmn_trace_sample_free(l->ts);
    vlmn_free(l->acts);
    vlmn_free(l->tok);
    vlmn_free(l->tacts);
    vlmn_free(l->vacts);
    vlmn_free(l->png);
    memset(l, 0, sizeof *l);
}

vlmn_status xload_get(vlmn_traces *tr, int layer, int neuron, uint32_t sample, float neuron_max, bool want_png,
                             const vlmn_draw_opts *dopt, xload *l)
{
    memset(l, 0, sizeof *l);
    int64_t n = 0;
    vlmn_status st;
    if ((st = vlmn_traces_get(tr, layer, neuron, sample, &l->acts, &n)) || (st = vlmn_traces_sample(tr, sample, &l->ts)))
        return st;
    if (n != l->ts->n_tokens)
        return vlmn_error(VLMN_E_MISMATCH, "trace %d:%d sample %u: %lld activations for %lld positions", layer, neuron,
                          sample, (long long)n, (long long)l->ts->n_tokens);
    size_t cap = (size_t)(n ? n : 1);
    if (!(l->tok = vlmn_calloc(cap, sizeof *l->tok)) || !(l->tacts = vlmn_calloc(cap, sizeof *l->tacts)) ||
        !(l->vacts = vlmn_calloc(cap, sizeof *l->vacts)))
        return vlmn_error(VLMN_E_NOMEM, "explain: out of memory");
    int nt = 0, nv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (l->ts->modality[i] == VLMN_TRACE_TEXT) {
            l->tok[nt] = l->ts->pieces[i];
            l->tacts[nt++] = l->acts[i];
        } else if (l->ts->modality[i] == VLMN_TRACE_VISUAL) {
            l->vacts[nv++] = l->acts[i];
        }
    }
    l->x = (vlmn_xsample){.sample_index = sample,
                          .n_text = nt,
                          .text_tokens = l->tok,
                          .text_acts = l->tacts,
                          .n_visual = nv,
                          .visual_acts = l->vacts,
                          .grid_w = l->ts->n_grids ? l->ts->grids[0].cols : 0,
                          .grid_h = l->ts->n_grids ? l->ts->grids[0].rows : 0,
                          .n_grids = l->ts->n_grids,
                          .grids = l->ts->grids};
    if (want_png && l->ts->n_grids > 0) {
        if (!l->ts->image_path) return vlmn_error(VLMN_E_NOTFOUND, "sample %u: no image path in the trace store", sample);
        vlmn_image *img = NULL, *pic = NULL;
        size_t len = 0;
        if ((st = vlmn_img_load(l->ts->image_path, &img))) return st;
        l->x.image_w = img->w;
        l->x.image_h = img->h;
        st = vlmn_draw_image(img, l->ts->grids, l->ts->n_grids, l->acts, n, neuron_max, dopt, &pic);
        if (!st) st = vlmn_draw_png(pic, &l->png, &len);
        vlmn_img_free(img);
        vlmn_img_free(pic);
        if (st) return st;
        l->x.png = l->png;
        l->x.png_len = len;
    }
    return VLMN_OK;
}

void vlmn_xrun_opts_default(vlmn_xrun_opts *o)
{
    memset(o, 0, sizeof *o);
    vlmn_llm_opts_default(&o->llm);
    vlmn_xprompt_opts_default(&o->prompt);
    o->sampling = "top";
    o->images = "modulated";
    o->random_seed = 1;
    o->textsim = VLMN_TEXTSIM_JSON;
}

vlmn_status xrun_open(const vlmn_xrun_opts *o, vlmn_run **run, sqlite3 **db, vlmn_traces **tr, vlmn_llm **c,
                            char *cache_buf, size_t cache_n)
{
    vlmn_status st;
    if ((st = vlmn_run_open(o->run_dir, run))) return st;
    *db = vlmn_run_db(*run);
    if ((st = vlmn_xdb_init(*db))) return st;
    if (tr && (st = vlmn_traces_open(o->run_dir, tr)))
        return vlmn_error_prefix(st, "%s: no trace store (run `vlmn trace` first)", o->run_dir);
    vlmn_llm_opts lo = o->llm;
    if (!lo.cache_path && !o->no_cache) {
        snprintf(cache_buf, cache_n, "%s/llm-cache.sqlite", o->run_dir);
        lo.cache_path = cache_buf;
        lo.cache_read = true;
    }
    if (c && (st = vlmn_llm_create(&lo, c))) return st;
    return VLMN_OK;
}

static void examples_sha(const vlmn_xrun_opts *o, char hex[65])
{
    const char *t = vlmn_xexamples_default_text();
    unsigned char *b = NULL;
    size_t n = 0;
    vlmn_sha256 h;
    uint8_t d[32];
    vlmn_sha256_init(&h);
    if (o->examples_path && vlmn_file_read(o->examples_path, 64u << 20, "examples file", &b, &n) == VLMN_OK) vlmn_sha256_update(&h, b, n);
    else vlmn_sha256_update(&h, t, strlen(t));
    vlmn_free(b);
    vlmn_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------------ explain */

typedef struct xitem {
    int layer, neuron;
    vlmn_xkind kind;
    float max_act;
    char samples[256];
    char *body;
} xitem;

typedef struct xctx {
    sqlite3 *db;
    sqlite3_stmt *ins;
    const vlmn_xrun_opts *o;
    const char *settings;
    xitem *xi;
    vlmn_xrun_summary *sum;
} xctx;

static vlmn_status explain_done(vlmn_llm_item *it, void *user)
{
    xctx *c = user;
    xitem *x = it->user;
    char *text = NULL;
    const char *err = it->error;
    int64_t pt = -1, ct = -1;
    if (it->state == VLMN_LLM_ANSWERED) {
        if (vlmn_explain_parse(it->reply, it->reply_len, &text)) err = vlmn_errmsg();
        vlmn_llm_reply r;
        if (vlmn_llm_chat_parse(it->reply, it->reply_len, &r) == VLMN_OK) {
            pt = r.prompt_tokens;
            ct = r.completion_tokens;
            vlmn_llm_reply_free(&r);
        }
    }
    sqlite3_stmt *s = c->ins;
    xdb_bind_key(s, x->layer, x->neuron, c->o->sampling, c->o->prompt.model,
                 x->kind == VLMN_XK_TEXT ? "none" : c->o->images);
    sqlite3_bind_text(s, 6, vlmn_xkind_name(x->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, x->samples, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 8, x->max_act);
    if (text) sqlite3_bind_text(s, 9, text, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 9);
    sqlite3_bind_text(s, 10, text ? "ok" : "failed", -1, SQLITE_STATIC);
    if (text) sqlite3_bind_null(s, 11);
    else sqlite3_bind_text(s, 11, err ? err : "unknown error", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 12, it->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, c->settings, -1, SQLITE_STATIC);
    if (pt >= 0) sqlite3_bind_int64(s, 14, pt);
    else sqlite3_bind_null(s, 14);
    if (ct >= 0) sqlite3_bind_int64(s, 15, ct);
    else sqlite3_bind_null(s, 15);
    sqlite3_bind_int(s, 16, it->attempts);
    sqlite3_bind_int(s, 17, it->cached);
    int rc = sqlite3_step(s);
    if (text) c->sum->answered++;
    else {
        c->sum->failed++;
        if (c->o->progress)
            fprintf(c->o->progress, "explain: %d:%d failed: %s\n", x->layer, x->neuron, err ? err : "unknown error");
    }
    if (c->o->out)
        fprintf(c->o->out, "%d:%d\t%s\t%s\t%s\n", x->layer, x->neuron, vlmn_xkind_name(x->kind), text ? "ok" : "failed",
                text ? text : (err ? err : ""));
    vlmn_free(text);
    return rc == SQLITE_DONE ? VLMN_OK : vlmn_db_err(c->db, "explanations");
}

static bool explained(sqlite3_stmt *q, int layer, int neuron, const char *sampling, const char *model,
                      const char *images)
{
    xdb_bind_key(q, layer, neuron, sampling, model, images);
    bool r = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_reset(q);
    return r;
}

vlmn_status xrun_send(vlmn_llm *cl, vlmn_llm_item *items, size_t n, vlmn_llm_done_fn done, void *ctx)
{
    vlmn_status st = vlmn_llm_run(cl, items, n, done, ctx);
    for (size_t i = 0; i < n; i++) {
        vlmn_llm_item_clear(&items[i]);
        vlmn_free((char *)items[i].body);
        items[i].body = NULL;
    }
    return st;
}

vlmn_status vlmn_explain_run(const vlmn_xrun_opts *o, vlmn_xrun_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    vlmn_run *run = NULL;
    sqlite3 *db = NULL;
    vlmn_traces *tr = NULL;
    vlmn_llm *cl = NULL;
    vlmn_selection *sel = NULL;
    sqlite3_stmt *q = NULL, *ins = NULL;
    vlmn_xexamples ex = {0};
    xitem *xi = NULL;
    vlmn_llm_item *items = NULL;
    char cache[4200], settings[2048], sspec[64], sha[65];
    vlmn_status st;
    bool top = !strcmp(o->sampling, "top");
    if (!top && strcmp(o->sampling, "random")) return vlmn_error(VLMN_E_ARG, "--sampling %s: top or random", o->sampling);
    if (strcmp(o->images, "modulated") && strcmp(o->images, "raw"))
        return vlmn_error(VLMN_E_ARG, "--images %s: modulated or raw", o->images);
    if (!o->prompt.model || !*o->prompt.model) return vlmn_error(VLMN_E_ARG, "no --explainer model");
    if ((st = o->examples_path ? vlmn_xexamples_load(o->examples_path, &ex) : vlmn_xexamples_default(&ex))) goto out;
    if ((st = xrun_open(o, &run, &db, &tr, &cl, cache, sizeof cache))) goto out;
    if (top) snprintf(sspec, sizeof sspec, "%s", VLMN_XTOP_SAMPLES);
    else snprintf(sspec, sizeof sspec, "random:5:%llu", (unsigned long long)o->random_seed);
    if ((st = vlmn_select(run, o->neurons, sspec, &sel))) goto out;
    examples_sha(o, sha);
    char seed[32] = "null";
    if (o->prompt.has_seed) snprintf(seed, sizeof seed, "%lld", (long long)o->prompt.seed);
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "base_url", o->llm.base_url ? o->llm.base_url : "");
    cJSON_AddNumberToObject(sj, "temperature", o->prompt.temperature);
    cJSON_AddNumberToObject(sj, "max_tokens", o->prompt.max_tokens);
    cJSON_AddRawToObject(sj, "seed", seed);
    cJSON_AddStringToObject(sj, "samples", sspec);
    cJSON_AddStringToObject(sj, "examples", o->examples_path ? o->examples_path : "default");
    cJSON_AddStringToObject(sj, "examples_sha256", sha);
    cJSON_AddStringToObject(sj, "prompt", "fig10-v1");
    char *sjs = cJSON_PrintUnformatted(sj);
    cJSON_Delete(sj);
    snprintf(settings, sizeof settings, "%s", sjs ? sjs : "{}");
    cJSON_free(sjs);
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM explanations WHERE layer=? AND neuron=? AND sampling=? AND explainer=? AND "
                           "images=? AND status='ok'",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO explanations (layer, neuron, sampling, explainer, images, kind, "
                           "samples, max_act, text, status, error, prompt_hash, settings, prompt_tokens, "
                           "completion_tokens, attempts, cached, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                           "strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &ins, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "explanations");
        goto out;
    }
    xi = vlmn_calloc(CHUNK, sizeof *xi);
    items = vlmn_calloc(CHUNK, sizeof *items);
    if (!xi || !items) {
        st = vlmn_error(VLMN_E_NOMEM, "explain: out of memory");
        goto out;
    }
    xctx ctx = {.db = db, .ins = ins, .o = o, .settings = settings, .xi = xi, .sum = sum};
    vlmn_draw_opts dopt = {.mode = !strcmp(o->images, "raw") ? VLMN_DRAW_RAW : VLMN_DRAW_MODULATED};
    size_t n = 0;
    /* first pass: every needed pair must be traced (nothing is sent otherwise) */
    for (int64_t i = 0; i < sel->n_neurons; i++)
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++)
            if (!vlmn_traces_has(tr, sel->neurons[i].layer, sel->neurons[i].neuron, sel->samples[k])) sum->missing++;
    if (sum->missing) {
        st = vlmn_error(VLMN_E_NOTFOUND,
                        "%s: %lld (neuron, sample) pairs are not traced; run `vlmn trace %s --neurons '%s' --samples "
                        "%s` first",
                        o->run_dir, (long long)sum->missing, o->run_dir, o->neurons, sspec);
        goto out;
    }
    for (int64_t i = 0; i < sel->n_neurons; i++) {
        int L = sel->neurons[i].layer, N = sel->neurons[i].neuron;
        sum->neurons++;
        vlmn_xkind kind = o->kind;
        bool found = o->force_kind;
        if (!found && (st = neuron_kind(db, L, N, &kind, &found))) goto out;
        if (!found) {
            sum->skipped++;
            if (o->progress) fprintf(o->progress, "explain: %d:%d is unknown or unclassified: skipped\n", L, N);
            continue;
        }
        const char *images = kind == VLMN_XK_TEXT ? "none" : o->images;
        if (explained(q, L, N, o->sampling, o->prompt.model, images)) {
            sum->already++;
            continue;
        }
        const vlmn_neuron_stats *ns = vlmn_run_stats(run, L, N);
        xitem *x = &xi[n];
        *x = (xitem){.layer = L, .neuron = N, .kind = kind, .max_act = ns ? ns->max_act : 0};
        int ns_ = (int)(sel->off[i + 1] - sel->off[i]);
        xload ld[5];
        vlmn_xsample xs[5];
        int nl = 0;
        size_t k0 = 0;
        k0 += (size_t)snprintf(x->samples, sizeof x->samples, "[");
        for (int k = 0; k < ns_ && k < 5; k++) {
            uint32_t smp = sel->samples[sel->off[i] + k];
            if ((st = xload_get(tr, L, N, smp, x->max_act, kind != VLMN_XK_TEXT, &dopt, &ld[nl]))) {
                xload_free(&ld[nl]);
                for (int j = 0; j < nl; j++) xload_free(&ld[j]);
                goto out;
            }
            xs[nl] = ld[nl].x;
            nl++;
            k0 += (size_t)snprintf(x->samples + k0, sizeof x->samples - k0, "%s%u", k ? "," : "", smp);
        }
        snprintf(x->samples + k0, sizeof x->samples - k0, "]");
        st = nl ? vlmn_explain_body(kind, &ex, xs, nl, x->max_act, &o->prompt, &x->body)
                : vlmn_error(VLMN_E_NOTFOUND, "%d:%d: no samples", L, N);
        for (int j = 0; j < nl; j++) xload_free(&ld[j]);
        if (st) goto out;
        items[n] = (vlmn_llm_item){.path = "/chat/completions", .body = x->body, .check = vlmn_explain_check, .user = x};
        n++;
        if (n == CHUNK) {
            if ((st = xrun_send(cl, items, n, explain_done, &ctx))) goto out;
            n = 0;
        }
    }
    if (n && (st = xrun_send(cl, items, n, explain_done, &ctx))) goto out;
    n = 0;
    sum->llm = *vlmn_llm_get_stats(cl);
out:
    if (items)
        for (size_t i = 0; i < CHUNK; i++) vlmn_free((char *)items[i].body), vlmn_llm_item_clear(&items[i]);
    vlmn_free(items);
    vlmn_free(xi);
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    vlmn_selection_free(sel);
    vlmn_xexamples_free(&ex);
    vlmn_llm_free(cl);
    vlmn_traces_close(tr);
    vlmn_run_close(run);
    return st;
}

/* ------------------------------------------------------------------ simulate */

typedef struct sitem {
    int layer, neuron, rank;
    char sampling[16], explainer[256], images[16];
    vlmn_xkind kind;
    xload ld;
    char *body;
    vlmn_simulator *sim;
} sitem;

/* check() of a simulator that checks replies against the sample (check_sample). */
static vlmn_status sim_check(const char *body, size_t len, void *user)
{
    sitem *x = user;
    return x->sim->check_sample(x->sim->self, &x->ld.x, body, len);
}

typedef struct sctx {
    sqlite3 *db;
    sqlite3_stmt *ins;
    const vlmn_xrun_opts *o;
    vlmn_simulator *sim;
    const char *simname;
    sitem *si;
    vlmn_xrun_summary *sum;
} sctx;

static vlmn_status put_sim(sctx *c, sitem *x, const float *sim, int n, const float *real, int n_mis, const char *err,
                           const vlmn_llm_item *it, int64_t pt, int64_t ct)
{
    sqlite3_stmt *s = c->ins;
    xdb_bind_key(s, x->layer, x->neuron, x->sampling, x->explainer, x->images);
    sqlite3_bind_text(s, 6, c->simname, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, c->sim->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, c->sim->modality == VLMN_SIM_TEXT ? "text" : "visual", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, x->ld.x.sample_index);
    sqlite3_bind_int(s, 10, x->rank);
    sqlite3_bind_int(s, 11, n);
    if (sim && !err) sqlite3_bind_blob(s, 12, sim, n * (int)sizeof(float), SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 12);
    sqlite3_bind_blob(s, 13, real ? (const void *)real : "", n * (int)sizeof(float), SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 14, n_mis);
    sqlite3_bind_text(s, 15, err ? "failed" : "ok", -1, SQLITE_STATIC);
    if (err) sqlite3_bind_text(s, 16, err, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 16);
    if (it) sqlite3_bind_text(s, 17, it->key, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, 17);
    if (pt >= 0) sqlite3_bind_int64(s, 18, pt);
    else sqlite3_bind_null(s, 18);
    if (ct >= 0) sqlite3_bind_int64(s, 19, ct);
    else sqlite3_bind_null(s, 19);
    sqlite3_bind_int(s, 20, it ? it->attempts : 0);
    sqlite3_bind_int(s, 21, it ? it->cached : 0);
    if (sqlite3_step(s) != SQLITE_DONE) return vlmn_db_err(c->db, "simulations");
    if (err) {
        c->sum->failed++;
        if (c->o->progress)
            fprintf(c->o->progress, "simulate: %d:%d sample %lld failed: %s\n", x->layer, x->neuron,
                    (long long)x->ld.x.sample_index, err);
    } else {
        c->sum->answered++;
        c->sum->mismatches += n_mis;
        if (n_mis && c->o->progress)
            fprintf(c->o->progress, "simulate: %d:%d sample %lld: %d returned tokens do not match the real ones\n",
                    x->layer, x->neuron, (long long)x->ld.x.sample_index, n_mis);
    }
    return VLMN_OK;
}

static const float *real_of(const vlmn_simulator *sim, const xload *l, int *n)
{
    *n = sim->modality == VLMN_SIM_TEXT ? l->x.n_text : l->x.n_visual;
    return sim->modality == VLMN_SIM_TEXT ? l->x.text_acts : l->x.visual_acts;
}

static vlmn_status sim_done(vlmn_llm_item *it, void *user)
{
    sctx *c = user;
    sitem *x = it->user;
    int n;
    const float *real = real_of(c->sim, &x->ld, &n);
    float *sim = vlmn_calloc((size_t)(n ? n : 1), sizeof *sim);
    if (!sim) return vlmn_error(VLMN_E_NOMEM, "simulate: out of memory");
    int mis = 0;
    const char *err = it->error;
    int64_t pt = -1, ct = -1;
    if (it->state == VLMN_LLM_ANSWERED) {
        if (c->sim->parse(c->sim->self, &x->ld.x, it->reply, it->reply_len, sim, &mis)) err = vlmn_errmsg();
        vlmn_llm_reply r;
        /* token counts of chat replies (other protocols have none; err must survive) */
        if (c->sim->modality == VLMN_SIM_TEXT && !err && vlmn_llm_chat_parse(it->reply, it->reply_len, &r) == VLMN_OK) {
            pt = r.prompt_tokens;
            ct = r.completion_tokens;
            vlmn_llm_reply_free(&r);
        }
    }
    vlmn_status st = put_sim(c, x, sim, n, real, mis, it->state == VLMN_LLM_ANSWERED && !err ? NULL : (err ? err : "failed"),
                             it, pt, ct);
    vlmn_free(sim);
    xload_free(&x->ld);
    return st;
}

vlmn_status vlmn_simulate_run(const vlmn_xrun_opts *o, vlmn_simulator *sim, const char *simname,
                              vlmn_xrun_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    vlmn_run *run = NULL;
    sqlite3 *db = NULL;
    vlmn_traces *tr = NULL;
    vlmn_llm *cl = NULL;
    sqlite3_stmt *ex = NULL, *q = NULL, *ins = NULL;
    sitem *si = NULL;
    vlmn_llm_item *items = NULL;
    char cache[4200];
    vlmn_status st;
    if ((st = xrun_open(o, &run, &db, &tr, sim->build ? &cl : NULL, cache, sizeof cache))) goto out;
    if ((st = xdb_explanations(db, o->filter_explainer, o->filter_sampling, &ex))) goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM simulations WHERE layer=? AND neuron=? AND sampling=? AND explainer=? AND "
                           "images=? AND simulator=? AND mode=? AND modality=? AND sample_index=? AND status='ok'",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO simulations (layer, neuron, sampling, explainer, images, simulator, "
                           "mode, modality, sample_index, rank, n, sim, real, n_mismatch, status, error, prompt_hash, "
                           "prompt_tokens, completion_tokens, attempts, cached, created) VALUES "
                           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &ins, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "simulations");
        goto out;
    }
    si = vlmn_calloc(CHUNK, sizeof *si);
    items = vlmn_calloc(CHUNK, sizeof *items);
    if (!si || !items) {
        st = vlmn_error(VLMN_E_NOMEM, "simulate: out of memory");
        goto out;
    }
    sctx ctx = {.db = db, .ins = ins, .o = o, .sim = sim, .simname = simname, .si = si, .sum = sum};
    const char *modality = sim->modality == VLMN_SIM_TEXT ? "text" : "visual";
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(ex)) == SQLITE_ROW) {
        int L = sqlite3_column_int(ex, 0), N = sqlite3_column_int(ex, 1);
        vlmn_xkind kind;
        if (vlmn_xkind_parse((const char *)sqlite3_column_text(ex, 5), &kind)) continue;
        /* text simulators serve text and multi-modal neurons, visual ones visual and multi-modal */
        if ((sim->modality == VLMN_SIM_TEXT && kind == VLMN_XK_VISUAL) ||
            (sim->modality == VLMN_SIM_VISUAL && kind == VLMN_XK_TEXT))
            continue;
        const char *expl = (const char *)sqlite3_column_text(ex, 6);
        sum->neurons++;
        int ntop = 0;
        const vlmn_top_entry *te = vlmn_run_top(run, L, N, &ntop);
        const vlmn_neuron_stats *ns = vlmn_run_stats(run, L, N);
        for (int r = 0; r < VLMN_SIM_NRANKS; r++) {
            if (vlmn_sim_ranks[r] > ntop) {
                sum->missing++;
                continue;
            }
            uint32_t smp = te[vlmn_sim_ranks[r] - 1].sample;
            sitem *x = &si[n];
            memset(x, 0, sizeof *x);
            x->layer = L;
            x->neuron = N;
            x->rank = vlmn_sim_ranks[r];
            x->kind = kind;
            snprintf(x->sampling, sizeof x->sampling, "%s", (const char *)sqlite3_column_text(ex, 2));
            snprintf(x->explainer, sizeof x->explainer, "%s", (const char *)sqlite3_column_text(ex, 3));
            snprintf(x->images, sizeof x->images, "%s", (const char *)sqlite3_column_text(ex, 4));
            xdb_bind_key(q, L, N, x->sampling, x->explainer, x->images);
            sqlite3_bind_text(q, 6, simname, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 7, sim->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 8, modality, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 9, smp);
            bool done = sqlite3_step(q) == SQLITE_ROW;
            sqlite3_reset(q);
            if (done) {
                sum->already++;
                continue;
            }
            if (!vlmn_traces_has(tr, L, N, smp)) {
                sum->missing++;
                if (o->progress)
                    fprintf(o->progress, "simulate: %d:%d sample %u (rank %d) is not traced: skipped\n", L, N, smp,
                            vlmn_sim_ranks[r]);
                continue;
            }
            vlmn_draw_opts dopt = {.mode = VLMN_DRAW_RAW};
            if ((st = xload_get(tr, L, N, smp, ns ? ns->max_act : 0, sim->modality == VLMN_SIM_VISUAL, &dopt, &x->ld))) {
                xload_free(&x->ld);
                goto out;
            }
            int nreal;
            const float *real = real_of(sim, &x->ld, &nreal);
            if (nreal == 0 || !sim->build) {
                /* nothing to simulate, or a local simulator: computed here */
                float *sv = vlmn_calloc((size_t)(nreal ? nreal : 1), sizeof *sv);
                if (!sv) {
                    st = vlmn_error(VLMN_E_NOMEM, "simulate: out of memory");
                    xload_free(&x->ld);
                    goto out;
                }
                const char *err = NULL;
                if (nreal && sim->local(sim->self, expl, &x->ld.x, sv)) err = vlmn_errmsg();
                st = put_sim(&ctx, x, sv, nreal, real, 0, err, NULL, -1, -1);
                vlmn_free(sv);
                xload_free(&x->ld);
                if (st) goto out;
                continue;
            }
            const char *path;
            if ((st = sim->build(sim->self, kind, expl, &x->ld.x, &path, &x->body))) {
                xload_free(&x->ld);
                goto out;
            }
            x->sim = sim;
            items[n] = (vlmn_llm_item){
                .path = path, .body = x->body, .check = sim->check_sample ? sim_check : sim->check, .user = x};
            n++;
            if (n == CHUNK) {
                if ((st = xrun_send(cl, items, n, sim_done, &ctx))) goto out;
                n = 0;
            }
        }
    }
    if (rc != SQLITE_DONE) {
        st = vlmn_db_err(db, "explanations");
        goto out;
    }
    if (n && (st = xrun_send(cl, items, n, sim_done, &ctx))) goto out;
    n = 0;
    if (cl) sum->llm = *vlmn_llm_get_stats(cl);
out:
    if (items)
        for (size_t i = 0; i < CHUNK; i++) {
            vlmn_free((char *)items[i].body);
            vlmn_llm_item_clear(&items[i]);
            xload_free(&si[i].ld);
        }
    vlmn_free(items);
    vlmn_free(si);
    sqlite3_finalize(ex);
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    vlmn_llm_free(cl);
    vlmn_traces_close(tr);
    vlmn_run_close(run);
    return st;
}
