/* `vlmn score --scorer detection|fuzzing` on a run: for every stored explanation, its
 * examples (detection: top ranks 3,7,11,15,19 as positives and as many inactive random
 * samples as negatives; fuzzing: the same top samples with their truly active text tokens
 * highlighted, and fuzzed copies with as many random tokens highlighted), one request
 * through the llm client, and its AUROC and accuracy as one committed row of the scores
 * table (scorer = 'detection' / 'fuzzing', simulator = the scorer model), so a killed run
 * resumes where it stopped. Flow: explanations + traces -> [this] -> scores -> stats.
 * docs/explain.md "Detection and fuzzing scorers". */
#include "vlmn/pipeline.h"
#include "vlmn/select.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "store/store.h"
#include "explain/explain_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHUNK 64
#define NPOS 5
#define MAX_EX (4 * NPOS)
#define MAX_NEG 1024

static const int POS_RANKS[NPOS] = {3, 7, 11, 15, 19};

void vlmn_drun_opts_default(vlmn_drun_opts *o)
{
    memset(o, 0, sizeof *o);
    vlmn_xrun_opts_default(&o->x);
    o->x.prompt.temperature = 0;
    o->x.prompt.max_tokens = 0;
    o->negatives = "random:10:1";
    o->active_frac = 0.5;
    o->shuffle_seed = 1;
}

typedef struct ditem {
    int layer, neuron;
    char sampling[32], explainer[256], images[32];
    vlmn_xkind kind;
    vlmn_dmode mode;
    int n;
    int label[MAX_EX];
    int64_t sample[MAX_EX];
    char note[200];
    char *body;
} ditem;

typedef struct dctx {
    sqlite3 *db;
    sqlite3_stmt *ins;
    const vlmn_drun_opts *o;
    vlmn_xrun_summary *sum;
} dctx;

static vlmn_status dcheck(const char *body, size_t len, void *user)
{
    ditem *x = user;
    int ans[MAX_EX];
    double prob[MAX_EX];
    bool hp;
    return vlmn_dscore_parse(x->mode, body, len, x->n, ans, prob, &hp);
}

static vlmn_status put_row(dctx *c, ditem *x, double auroc, double acc, int np, int nn, const char *detail,
                           const char *note)
{
    sqlite3_stmt *s = c->ins;
    xdb_bind_key(s, x->layer, x->neuron, x->sampling, x->explainer, x->images);
    sqlite3_bind_text(s, 6, c->o->x.prompt.model, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, vlmn_dscorer_name(c->o->scorer), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, vlmn_xkind_name(x->kind), -1, SQLITE_STATIC);
    if (isnan(auroc)) sqlite3_bind_null(s, 9);
    else sqlite3_bind_double(s, 9, auroc);
    if (note && *note) sqlite3_bind_text(s, 10, note, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 10);
    if (isnan(acc)) sqlite3_bind_null(s, 11);
    else sqlite3_bind_double(s, 11, acc);
    sqlite3_bind_int(s, 12, np);
    sqlite3_bind_int(s, 13, nn);
    sqlite3_bind_text(s, 14, detail, -1, SQLITE_TRANSIENT);
    return sqlite3_step(s) == SQLITE_DONE ? VLMN_OK : vlmn_db_err(c->db, "scores");
}

/* Appends "; what" (or "what" to an empty note). */
static void note_add(char *note, size_t n, const char *what)
{
    size_t k = strlen(note);
    snprintf(note + k, n - k, "%s%s", k ? "; " : "", what);
}

static vlmn_status ddone(vlmn_llm_item *it, void *user)
{
    dctx *c = user;
    ditem *x = it->user;
    const char *err = it->error;
    int ans[MAX_EX];
    double prob[MAX_EX];
    bool hp = false;
    if (it->state == VLMN_LLM_ANSWERED && vlmn_dscore_parse(x->mode, it->reply, it->reply_len, x->n, ans, prob, &hp))
        err = vlmn_errmsg();
    if (it->state != VLMN_LLM_ANSWERED || err) {
        c->sum->failed++;
        if (c->o->x.progress)
            fprintf(c->o->x.progress, "%s: %d:%d (%s, %s) failed: %s\n", vlmn_dscorer_name(c->o->scorer), x->layer,
                    x->neuron, x->sampling, x->explainer, err ? err : "unknown error");
        return VLMN_OK; /* no row: a rerun asks again */
    }
    int np = 0, nn = 0, right = 0;
    double auroc = vlmn_auroc(prob, x->label, x->n, &np, &nn);
    for (int i = 0; i < x->n; i++) right += ans[i] == x->label[i];
    double acc = x->n ? (double)right / x->n : NAN;
    char note[400];
    snprintf(note, sizeof note, "%s", x->note);
    if (isnan(auroc)) note_add(note, sizeof note, "AUROC undefined: one class is empty");
    if (x->mode == VLMN_DMODE_LOGPROB && !hp)
        note_add(note, sizeof note, "no usable logprobs: AUROC of the 0/1 answers");
    cJSON *d = cJSON_CreateObject();
    static const char *const MODES[3] = {"json", "logprob", "plain"};
    cJSON_AddStringToObject(d, "mode", MODES[x->mode]);
    if (c->o->scorer == VLMN_DS_DETECTION) cJSON_AddStringToObject(d, "negatives", c->o->negatives);
    cJSON_AddNumberToObject(d, "active_frac", c->o->active_frac);
    cJSON_AddNumberToObject(d, "shuffle_seed", (double)c->o->shuffle_seed);
    cJSON_AddStringToObject(d, "request", it->key);
    cJSON *arr = cJSON_AddArrayToObject(d, "examples");
    for (int i = 0; i < x->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "sample", (double)x->sample[i]);
        cJSON_AddNumberToObject(e, "label", x->label[i]);
        cJSON_AddNumberToObject(e, "answer", ans[i]);
        if (hp) cJSON_AddNumberToObject(e, "p", prob[i]);
        cJSON_AddItemToArray(arr, e);
    }
    char *ds = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    vlmn_status st = put_row(c, x, auroc, acc, np, nn, ds ? ds : "{}", note);
    cJSON_free(ds);
    if (!st) c->sum->answered++;
    return st;
}

/* Max activation of a sample over the tokens of the neuron's kind (text, image, both). */
static float kind_max(vlmn_xkind k, const vlmn_xsample *x)
{
    float m = -INFINITY;
    if (k != VLMN_XK_VISUAL)
        for (int i = 0; i < x->n_text; i++) m = x->text_acts[i] > m ? x->text_acts[i] : m;
    if (k != VLMN_XK_TEXT)
        for (int i = 0; i < x->n_visual; i++) m = x->visual_acts[i] > m ? x->visual_acts[i] : m;
    return m;
}

static bool in_top(const vlmn_top_entry *te, int ntop, uint32_t s)
{
    for (int i = 0; i < ntop; i++)
        if (te[i].sample == s) return true;
    return false;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Appends "L:N" to a ';'-list once. */
static bool add_neuron(vlmn_buf *b, int L, int N, int *count)
{
    char t[32];
    snprintf(t, sizeof t, "%d:%d", L, N);
    size_t n = strlen(t);
    const char *s = b->n ? b->p : "";
    for (const char *p = s; b->n && (p = strstr(p, t)); p++)
        if ((p == s || p[-1] == ';') && (p[n] == ';' || p[n] == 0)) return true;
    (*count)++;
    if (b->n) vlmn_buf_adds(b, ";");
    vlmn_buf_add(b, t, n);
    return !b->oom;
}

/* The untraced neurons as a SPEC: inline when short, else a CSV file in the run. */
static void missing_spec(const char *run_dir, vlmn_buf *b, char *out, size_t n)
{
    if (b->n < 400) {
        snprintf(out, n, "%s", b->p ? b->p : "");
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/untraced-neurons.csv", run_dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "layer,neuron\n");
        for (size_t i = 0; i < b->n; i++) {
            char ch = b->p[i];
            fputc(ch == ';' ? '\n' : ch == ':' ? ',' : ch, f);
        }
        fputc('\n', f);
        fclose(f);
    }
    snprintf(out, n, "file:%s", path);
}

typedef struct ex_src {
    xload ld;
    bool shared; /* a fuzzed copy: ld.x points into the previous entry's arrays */
    int label;
    uint8_t *hl;
} ex_src;

static void src_free(ex_src *s, int n)
{
    for (int i = 0; i < n; i++) {
        if (!s[i].shared) xload_free(&s[i].ld);
        vlmn_free(s[i].hl);
        memset(&s[i], 0, sizeof s[i]);
    }
}

vlmn_status vlmn_dscore_run(const vlmn_drun_opts *o, vlmn_xrun_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    const vlmn_xrun_opts *xo = &o->x;
    const bool det = o->scorer == VLMN_DS_DETECTION;
    const char *sname = vlmn_dscorer_name(o->scorer);
    vlmn_run *run = NULL;
    sqlite3 *db = NULL;
    vlmn_traces *tr = NULL;
    vlmn_llm *cl = NULL;
    vlmn_selection *neg = NULL;
    sqlite3_stmt *ex = NULL, *q = NULL, *ins = NULL;
    ditem *di = NULL;
    vlmn_llm_item *items = NULL;
    vlmn_buf miss_pos = {0}, miss_neg = {0};
    ex_src src[MAX_EX];
    int nsrc = 0;
    char cache[4200];
    vlmn_status st;
    memset(src, 0, sizeof src);
    if (!xo->prompt.model || !*xo->prompt.model) return vlmn_error(VLMN_E_ARG, "no --scorer-model");
    if (!(o->active_frac > 0 && o->active_frac <= 1))
        return vlmn_error(VLMN_E_ARG, "--active-frac %g: must be in (0, 1]", o->active_frac);
    if ((st = xrun_open(xo, &run, &db, &tr, NULL, cache, sizeof cache))) goto out;
    if (det) {
        if (strncmp(o->negatives, "random:", 7)) {
            st = vlmn_error(VLMN_E_ARG, "--negatives %s: must be random:K:SEED", o->negatives);
            goto out;
        }
        if ((st = vlmn_select(run, "0:0", o->negatives, &neg))) goto out;
        if (neg->off[1] > MAX_NEG) {
            st = vlmn_error(VLMN_E_RANGE, "--negatives %s: at most %d samples", o->negatives, MAX_NEG);
            goto out;
        }
    }
    if ((st = xdb_explanations(db, xo->filter_explainer, xo->filter_sampling, &ex))) goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM scores WHERE layer=? AND neuron=? AND sampling=? AND explainer=? AND "
                           "images=? AND simulator=? AND scorer=?",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO scores (layer, neuron, sampling, explainer, images, simulator, "
                           "scorer, kind, score, score_visual, score_text, n_visual, n_text, n_mismatch, note, "
                           "accuracy, n_pos, n_neg, detail, created) VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,0,0,0,?,?,?,?,"
                           "?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &ins, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "scores");
        goto out;
    }

    /* first pass: every needed (neuron, sample) pair must be traced; nothing is sent otherwise */
    int rc, n_mp = 0, n_mn = 0;
    while ((rc = sqlite3_step(ex)) == SQLITE_ROW) {
        int L = sqlite3_column_int(ex, 0), N = sqlite3_column_int(ex, 1);
        vlmn_xkind k;
        if (vlmn_xkind_parse((const char *)sqlite3_column_text(ex, 5), &k) || (!det && k == VLMN_XK_VISUAL)) {
            vlmn_clear_error();
            continue;
        }
        int ntop = 0;
        const vlmn_top_entry *te = vlmn_run_top(run, L, N, &ntop);
        for (int r = 0; r < NPOS; r++)
            if (POS_RANKS[r] <= ntop && !vlmn_traces_has(tr, L, N, te[POS_RANKS[r] - 1].sample) &&
                !add_neuron(&miss_pos, L, N, &n_mp))
                goto oom;
        for (int64_t j = 0; det && j < neg->off[1]; j++)
            if (!in_top(te, ntop, neg->samples[j]) && !vlmn_traces_has(tr, L, N, neg->samples[j]) &&
                !add_neuron(&miss_neg, L, N, &n_mn))
                goto oom;
    }
    if (rc != SQLITE_DONE) {
        st = vlmn_db_err(db, "explanations");
        goto out;
    }
    if (n_mp || n_mn) {
        char spec[4400];
        const char *what = n_mp ? "top samples" : "random samples";
        missing_spec(xo->run_dir, n_mp ? &miss_pos : &miss_neg, spec, sizeof spec);
        if (!n_mp || !n_mn) {
            st = vlmn_error(VLMN_E_NOTFOUND,
                            "%s: %d neurons' %s are not traced; run `vlmn trace %s --neurons '%s' --samples %s` first",
                            xo->run_dir, n_mp ? n_mp : n_mn, what, xo->run_dir, spec,
                            n_mp ? "top:3,7,11,15,19" : o->negatives);
        } else {
            char spec2[4400];
            missing_spec(xo->run_dir, &miss_neg, spec2, sizeof spec2);
            st = vlmn_error(VLMN_E_NOTFOUND,
                            "%s: untraced samples; run `vlmn trace %s --neurons '%s' --samples top:3,7,11,15,19` "
                            "and `vlmn trace %s --neurons '%s' --samples %s` first",
                            xo->run_dir, xo->run_dir, spec, xo->run_dir, spec2, o->negatives);
        }
        sum->missing = n_mp + n_mn;
        goto out;
    }

    vlmn_llm_opts lo = xo->llm;
    if (!lo.cache_path && !xo->no_cache) {
        lo.cache_path = cache;
        lo.cache_read = true;
    }
    if ((st = vlmn_llm_create(&lo, &cl))) goto out;
    di = vlmn_calloc(CHUNK, sizeof *di);
    items = vlmn_calloc(CHUNK, sizeof *items);
    if (!di || !items) goto oom;
    dctx ctx = {.db = db, .ins = ins, .o = o, .sum = sum};
    vlmn_draw_opts dopt = {.mode = VLMN_DRAW_RAW};
    size_t n = 0;
    int64_t skipped_visual = 0;
    sqlite3_reset(ex);
    while ((rc = sqlite3_step(ex)) == SQLITE_ROW) {
        int L = sqlite3_column_int(ex, 0), N = sqlite3_column_int(ex, 1);
        vlmn_xkind kind;
        if (vlmn_xkind_parse((const char *)sqlite3_column_text(ex, 5), &kind)) {
            vlmn_clear_error();
            continue;
        }
        sum->neurons++;
        if (!det && kind == VLMN_XK_VISUAL) {
            sum->skipped++;
            skipped_visual++;
            continue;
        }
        ditem *x = &di[n];
        memset(x, 0, sizeof *x);
        x->layer = L;
        x->neuron = N;
        x->kind = kind;
        x->mode = o->mode;
        snprintf(x->sampling, sizeof x->sampling, "%s", (const char *)sqlite3_column_text(ex, 2));
        snprintf(x->explainer, sizeof x->explainer, "%s", (const char *)sqlite3_column_text(ex, 3));
        snprintf(x->images, sizeof x->images, "%s", (const char *)sqlite3_column_text(ex, 4));
        xdb_bind_key(q, L, N, x->sampling, x->explainer, x->images);
        sqlite3_bind_text(q, 6, xo->prompt.model, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, sname, -1, SQLITE_STATIC);
        bool done = sqlite3_step(q) == SQLITE_ROW;
        sqlite3_reset(q);
        if (done) {
            sum->already++;
            continue;
        }
        const char *expl = (const char *)sqlite3_column_text(ex, 6);
        int ntop = 0;
        const vlmn_top_entry *te = vlmn_run_top(run, L, N, &ntop);
        const vlmn_neuron_stats *ns = vlmn_run_stats(run, L, N);
        float max_act = ns ? ns->max_act : 0;
        bool png = det && kind != VLMN_XK_TEXT;
        uint64_t rng = mix(o->shuffle_seed, ((uint64_t)(uint32_t)L << 32) | (uint32_t)N);
        int npos = 0, nneg = 0, no_hl = 0, nfz = 0;
        nsrc = 0;
        for (int r = 0; r < NPOS; r++) {
            if (POS_RANKS[r] > ntop) continue;
            uint32_t smp = te[POS_RANKS[r] - 1].sample;
            ex_src *e = &src[nsrc];
            memset(e, 0, sizeof *e);
            nsrc++; /* freed on error too */
            if ((st = xload_get(tr, L, N, smp, max_act, png, &dopt, &e->ld))) goto out;
            e->label = 1;
            npos++;
            if (!det) {
                int nt = e->ld.x.n_text;
                uint8_t *act = vlmn_calloc((size_t)(nt ? nt : 1), 1), *fz = vlmn_calloc((size_t)(nt ? nt : 1), 1);
                if (!act || !fz) {
                    vlmn_free(act);
                    vlmn_free(fz);
                    goto oom;
                }
                int c = vlmn_fuzz_active(e->ld.x.text_acts, nt, o->active_frac, act);
                if (!c) { /* nothing active in its text: not shown */
                    vlmn_free(act);
                    vlmn_free(fz);
                    xload_free(&e->ld);
                    nsrc--;
                    npos--;
                    no_hl++;
                    continue;
                }
                e->hl = act;
                if (vlmn_fuzz_random(act, nt, c, &rng, fz) > 0) {
                    ex_src *f = &src[nsrc++];
                    memset(f, 0, sizeof *f);
                    f->ld.x = e->ld.x; /* shares e's arrays (e owns them) */
                    f->shared = true;
                    f->label = 0;
                    f->hl = fz;
                    nfz++;
                } else {
                    vlmn_free(fz);
                }
            }
        }
        for (int64_t j = 0; det && j < neg->off[1] && nneg < npos; j++) {
            uint32_t smp = neg->samples[j];
            if (in_top(te, ntop, smp)) continue;
            ex_src *e = &src[nsrc];
            memset(e, 0, sizeof *e);
            nsrc++; /* freed on error too */
            if ((st = xload_get(tr, L, N, smp, max_act, false, &dopt, &e->ld))) goto out;
            float m = kind_max(kind, &e->ld.x);
            xload_free(&e->ld);
            if (m >= o->active_frac * max_act) { /* active: not a negative */
                nsrc--;
                continue;
            }
            if ((st = xload_get(tr, L, N, smp, max_act, png, &dopt, &e->ld))) goto out;
            e->label = 0;
            nneg++;
        }
        char what[96];
        if (det && nneg < npos) {
            snprintf(what, sizeof what, "%d inactive random samples for %d top samples", nneg, npos);
            note_add(x->note, sizeof x->note, what);
        }
        if (!det && no_hl) {
            snprintf(what, sizeof what, "%d top samples without active text tokens", no_hl);
            note_add(x->note, sizeof x->note, what);
        }
        if (!det && nfz < npos) {
            snprintf(what, sizeof what, "%d samples without tokens to fuzz", npos - nfz);
            note_add(x->note, sizeof x->note, what);
        }
        /* the examples in a shuffled order (fixed by the seed and the neuron) */
        int ord[MAX_EX];
        for (int i = 0; i < nsrc; i++) ord[i] = i;
        for (int i = nsrc - 1; i > 0; i--) {
            rng = mix(rng, (uint64_t)i);
            int j = (int)(rng % (uint64_t)(i + 1)), t = ord[i];
            ord[i] = ord[j];
            ord[j] = t;
        }
        vlmn_dexample dx[MAX_EX];
        for (int i = 0; i < nsrc; i++) {
            const ex_src *e = &src[ord[i]];
            dx[i] = (vlmn_dexample){.n_text = e->ld.x.n_text,
                                    .text_tokens = e->ld.x.text_tokens,
                                    .highlight = e->hl,
                                    .png = e->ld.x.png,
                                    .png_len = e->ld.x.png_len};
            x->label[i] = e->label;
            x->sample[i] = e->ld.x.sample_index;
        }
        x->n = nsrc;
        if (nsrc == 0) {
            st = put_row(&ctx, x, NAN, NAN, 0, 0, "{}", *x->note ? x->note : "no examples");
        } else {
            st = vlmn_dscore_body(o->scorer, o->mode, &xo->prompt, expl, dx, nsrc, &x->body);
        }
        src_free(src, nsrc);
        nsrc = 0;
        if (st) goto out;
        if (!x->body) continue;
        items[n] = (vlmn_llm_item){.path = "/chat/completions", .body = x->body, .check = dcheck, .user = x};
        n++;
        if (n == CHUNK) {
            if ((st = xrun_send(cl, items, n, ddone, &ctx))) goto out;
            n = 0;
        }
    }
    if (rc != SQLITE_DONE) {
        st = vlmn_db_err(db, "explanations");
        goto out;
    }
    if (n && (st = xrun_send(cl, items, n, ddone, &ctx))) goto out;
    n = 0;
    if (skipped_visual && xo->progress)
        fprintf(xo->progress, "fuzzing: %lld visual neurons skipped (fuzzing highlights text tokens only)\n",
                (long long)skipped_visual);
    sum->llm = *vlmn_llm_get_stats(cl);
    goto out;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", sname);
out:
    src_free(src, nsrc);
    if (items)
        for (size_t i = 0; i < CHUNK; i++) vlmn_free((char *)items[i].body), vlmn_llm_item_clear(&items[i]);
    vlmn_free(items);
    vlmn_free(di);
    vlmn_free(miss_pos.p);
    vlmn_free(miss_neg.p);
    sqlite3_finalize(ex);
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    vlmn_selection_free(neg);
    vlmn_llm_free(cl);
    vlmn_traces_close(tr);
    vlmn_run_close(run);
    return st;
}
