/* LLM-free neuron labels (issue 15): every concept of a list is run through the CLIP
 * simulator's map on a neuron's traced samples, and the concepts whose maps correlate
 * best (Pearson r over the concatenated visual tokens) with the real activations are
 * kept in RUN/run.sqlite `labels`. Work is sample-major: one vision pass per distinct
 * sample, one text pass per concept, and per (neuron, concept) running sums.
 * With as_explanations the rank-1 concepts also become explanations (label_xpl.c).
 * Flow: run + traces + concepts -> [this] -> clip towers -> labels (+ explanations). docs/clip.md. */
#include "clip/label_int.h"
#include "vlmn/image.h"
#include "vlmn/pipeline.h"
#include "vlmn/run.h"
#include "vlmn/select.h"
#include "vlmn/trace.h"
#include "store/store.h"
#include "core/alloc.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static const char LABELS_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS labels ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, clip TEXT NOT NULL, concept TEXT NOT NULL,"
    "  rank INTEGER NOT NULL, score REAL, n_samples INTEGER NOT NULL, created TEXT NOT NULL, samples TEXT,"
    "  PRIMARY KEY (layer, neuron, clip, rank)) WITHOUT ROWID;";

/* The samples column (the sample SPEC labelled on) came after the first labels tables. */
static vlmn_status labels_schema(sqlite3 *db, const char *run_dir)
{
    char *err = NULL;
    if (sqlite3_exec(db, LABELS_SCHEMA, NULL, NULL, &err) == SQLITE_OK) {
        if (vlmn_db_has_column(db, "labels", "samples") || sqlite3_exec(db, "ALTER TABLE labels ADD COLUMN samples TEXT", NULL, NULL, &err) == SQLITE_OK)
            return VLMN_OK;
    }
    vlmn_status st = vlmn_error(VLMN_E_DB, "%s: labels table: %s", run_dir, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return st;
}

static const char *label_samples(const vlmn_label_opts *o)
{
    return o->samples ? o->samples : o->as_explanations ? VLMN_XTOP_SAMPLES : VLMN_SIM_SAMPLES;
}

void vlmn_label_opts_default(vlmn_label_opts *o)
{
    memset(o, 0, sizeof *o);
    o->top_k = 5;
    o->clip_name = "clip";
}

/* What prepare() resolves: the selection and which of its neurons are labelled. */
typedef struct lprep {
    vlmn_run *run;
    vlmn_traces *tr;
    vlmn_selection *sel;
    int64_t *keep;  /* indices into sel->neurons */
    bool *multimodal; /* [n_keep]: classified multimodal (else visual) */
    int64_t n_keep, skipped;
    char sampling[16]; /* as_explanations: the explanations.sampling key */
} lprep;

static void lprep_free(lprep *p)
{
    vlmn_free(p->keep);
    vlmn_free(p->multimodal);
    vlmn_selection_free(p->sel);
    vlmn_traces_close(p->tr);
    vlmn_run_close(p->run);
    memset(p, 0, sizeof *p);
}

static vlmn_status prepare(const vlmn_label_opts *o, lprep *p)
{
    memset(p, 0, sizeof *p);
    vlmn_status st;
    if (!o->run_dir) return vlmn_error(VLMN_E_ARG, "label: no run");
    if (o->top_k < 1) return vlmn_error(VLMN_E_ARG, "label: --top must be >= 1");
    if ((st = vlmn_run_open(o->run_dir, &p->run))) return st;
    if ((st = vlmn_traces_open(o->run_dir, &p->tr)))
        return vlmn_error_prefix(st, "%s: no trace store (run `vlmn trace` first)", o->run_dir);
    const char *sspec = label_samples(o);
    if (o->as_explanations && (st = label_xpl_sampling(sspec, o->clip_name, p->sampling))) return st;
    if ((st = vlmn_select(p->run, o->neurons ? o->neurons : "all", sspec, &p->sel))) return st;
    sqlite3 *db = vlmn_run_db(p->run);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT label FROM classification WHERE layer = ? AND neuron = ?", -1, &q, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(q);
        return vlmn_error(VLMN_E_NOTFOUND, "%s: not classified (run `vlmn classify %s` first)", o->run_dir,
                          o->run_dir);
    }
    p->keep = vlmn_malloc((size_t)(p->sel->n_neurons ? p->sel->n_neurons : 1) * sizeof *p->keep);
    p->multimodal = vlmn_malloc((size_t)(p->sel->n_neurons ? p->sel->n_neurons : 1) * sizeof *p->multimodal);
    if (!p->keep || !p->multimodal) {
        sqlite3_finalize(q);
        return vlmn_error(VLMN_E_NOMEM, "label: out of memory");
    }
    int64_t missing = 0;
    char cmd_neurons[2048] = "";
    size_t cn = 0;
    bool overflow = false;
    for (int64_t i = 0; i < p->sel->n_neurons; i++) {
        int L = p->sel->neurons[i].layer, N = p->sel->neurons[i].neuron;
        int64_t a = p->sel->off[i], b = p->sel->off[i + 1], have = 0;
        for (int64_t k = a; k < b; k++) have += vlmn_traces_has(p->tr, L, N, p->sel->samples[k]);
        if (!o->neurons && have == 0) continue; /* default: the traced neurons only */
        sqlite3_reset(q);
        sqlite3_bind_int(q, 1, L);
        sqlite3_bind_int(q, 2, N);
        const char *lab = sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
        if (!lab || (strcmp(lab, "visual") && strcmp(lab, "multimodal"))) {
            p->skipped++;
            continue;
        }
        if (o->as_explanations &&
            (st = label_xpl_heldout(p->run, o->run_dir, L, N, p->sel->samples + a, b - a))) {
            sqlite3_finalize(q);
            return st;
        }
        p->multimodal[p->n_keep] = !strcmp(lab, "multimodal");
        if (have < b - a) {
            missing += b - a - have;
            int w = snprintf(cmd_neurons + cn, sizeof cmd_neurons - cn, "%s%d:%d", cn ? ";" : "", L, N);
            if (w < 0 || (size_t)w >= sizeof cmd_neurons - cn) overflow = true;
            else cn += (size_t)w;
        }
        p->keep[p->n_keep++] = i;
    }
    sqlite3_finalize(q);
    if (!o->neurons && p->n_keep == 0 && p->skipped == 0)
        return vlmn_error(VLMN_E_NOTFOUND,
                          "%s: no neuron is traced on samples %s; run `vlmn trace %s --neurons SPEC --samples %s` "
                          "first",
                          o->run_dir, sspec, o->run_dir, sspec);
    if (missing)
        return vlmn_error(VLMN_E_NOTFOUND,
                          "%s: %lld (neuron, sample) pairs are not traced; run `vlmn trace %s --neurons '%s' "
                          "--samples %s` first",
                          o->run_dir, (long long)missing, o->run_dir,
                          overflow ? (o->neurons ? o->neurons : "all") : cmd_neurons, sspec);
    return VLMN_OK;
}

vlmn_status vlmn_label_check(const vlmn_label_opts *o)
{
    lprep p;
    vlmn_status st = prepare(o, &p);
    lprep_free(&p);
    return st;
}

typedef struct lpair {
    uint32_t sample;
    int64_t k; /* index into keep */
} lpair;

static int pair_cmp(const void *a, const void *b)
{
    const lpair *x = a, *y = b;
    if (x->sample != y->sample) return x->sample < y->sample ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

/* Running sums of one neuron's real activations (shifted by the first value) and, per
 * concept, of its simulated ones (shifted likewise), so constant vectors give exact 0. */
typedef struct lreal {
    double kx, sx, sxx;
    int64_t m;
    int n_samples;
} lreal;
typedef struct lsim {
    double ky, sy, syy, sxy;
} lsim;

static double corr(const lreal *x, const lsim *y)
{
    if (x->m < 2) return NAN;
    double m = (double)x->m;
    double vx = x->sxx - x->sx * x->sx / m, vy = y->syy - y->sy * y->sy / m, c = y->sxy - x->sx * y->sy / m;
    if (!(vx > 0) || !(vy > 0)) return NAN;
    double r = c / sqrt(vx * vy);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

typedef struct lrank {
    double r;
    int c;
} lrank;

static int rank_cmp(const void *a, const void *b)
{
    const lrank *x = a, *y = b;
    bool nx = isnan(x->r), ny = isnan(y->r);
    if (nx != ny) return nx ? 1 : -1;
    if (!nx && x->r != y->r) return x->r > y->r ? -1 : 1;
    return x->c - y->c;
}

vlmn_status vlmn_label_run(const vlmn_label_opts *o, vlmn_clip *clip, vlmn_clip_tokenize_fn tokenize, void *tok_user,
                           vlmn_label_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    if (!clip || !tokenize || !o->concepts || o->concepts->n < 1)
        return vlmn_error(VLMN_E_ARG, "label: needs a CLIP model, a tokenizer and concepts");
    lprep p;
    vlmn_status st = prepare(o, &p);
    const vlmn_clip_info *I = vlmn_clip_get_info(clip);
    const int C = o->concepts->n, D = I->proj_dim, G = I->grid;
    float *temb = NULL, *pe = NULL, *maps = NULL, *vis = NULL;
    int32_t *ids = NULL;
    lpair *pairs = NULL;
    lreal *real = NULL;
    lsim *sims = NULL;
    lrank *rk = NULL;
    uint8_t *ky_set = NULL;
    sqlite3_stmt *del = NULL, *ins = NULL;
    vlmn_trace_sample *ts = NULL;
    vlmn_image *img = NULL;
    float *acts = NULL;
    bool in_tx = false;
    label_xpl xw = {0};
    if (st) goto out;
    sum->skipped = p.skipped;
    sqlite3 *db = vlmn_run_db(p.run);
    /* one text pass per concept */
    temb = vlmn_malloc((size_t)C * D * sizeof *temb);
    ids = vlmn_malloc((size_t)I->t_ctx * sizeof *ids);
    real = vlmn_calloc((size_t)(p.n_keep ? p.n_keep : 1), sizeof *real);
    sims = vlmn_calloc((size_t)(p.n_keep ? p.n_keep : 1) * C, sizeof *sims);
    ky_set = vlmn_calloc((size_t)(p.n_keep ? p.n_keep : 1) * C + 1, 1);
    rk = vlmn_malloc((size_t)C * sizeof *rk);
    if (!temb || !ids || !real || !sims || !ky_set || !rk) {
        st = vlmn_error(VLMN_E_NOMEM, "label: out of memory");
        goto out;
    }
    for (int c = 0; c < C && p.n_keep; c++) {
        int n = 0;
        if ((st = tokenize(tok_user, o->concepts->items[c], ids, I->t_ctx, &n))) goto out;
        if (n < 1 || n > I->t_ctx) {
            st = vlmn_error(VLMN_E_RANGE, "clip: the tokenizer returned %d ids for \"%s\"", n, o->concepts->items[c]);
            goto out;
        }
        if ((st = vlmn_clip_text(clip, ids, n, temb + (size_t)c * D))) goto out;
    }
    /* (sample, neuron) pairs, sample-major */
    int64_t np = 0;
    for (int64_t k = 0; k < p.n_keep; k++) np += p.sel->off[p.keep[k] + 1] - p.sel->off[p.keep[k]];
    pairs = vlmn_malloc((size_t)(np ? np : 1) * sizeof *pairs);
    if (!pairs) {
        st = vlmn_error(VLMN_E_NOMEM, "label: out of memory");
        goto out;
    }
    np = 0;
    for (int64_t k = 0; k < p.n_keep; k++)
        for (int64_t j = p.sel->off[p.keep[k]]; j < p.sel->off[p.keep[k] + 1]; j++)
            pairs[np++] = (lpair){p.sel->samples[j], k};
    qsort(pairs, (size_t)np, sizeof *pairs, pair_cmp);
    for (int64_t a = 0; a < np;) {
        int64_t b = a;
        while (b < np && pairs[b].sample == pairs[a].sample) b++;
        uint32_t smp = pairs[a].sample;
        if ((st = vlmn_traces_sample(p.tr, smp, &ts))) goto out;
        int nv = 0;
        for (int64_t i = 0; i < ts->n_tokens; i++) nv += ts->modality[i] == VLMN_TRACE_VISUAL;
        if (ts->n_grids > 0 && nv > 0) {
            if (!ts->image_path) {
                st = vlmn_error(VLMN_E_NOTFOUND, "sample %u: no image path in the trace store", smp);
                goto out;
            }
            if ((st = vlmn_img_load(ts->image_path, &img))) goto out;
            pe = vlmn_malloc((size_t)ts->n_grids * G * G * D * sizeof *pe);
            maps = vlmn_malloc((size_t)C * nv * sizeof *maps);
            vis = vlmn_malloc((size_t)nv * sizeof *vis);
            if (!pe || !maps || !vis) {
                st = vlmn_error(VLMN_E_NOMEM, "label: out of memory");
                goto out;
            }
            if ((st = vlmn_clip_sample_patches(clip, img, ts->grids, ts->n_grids, nv, smp, pe))) goto out;
            for (int c = 0; c < C; c++)
                if ((st = vlmn_clip_sample_map(clip, pe, ts->grids, ts->n_grids, temb + (size_t)c * D,
                                               maps + (size_t)c * nv)))
                    goto out;
            sum->samples++;
            for (int64_t j = a; j < b; j++) {
                int64_t k = pairs[j].k;
                const vlmn_neuron_ref *nr = &p.sel->neurons[p.keep[k]];
                int64_t n = 0;
                if ((st = vlmn_traces_get(p.tr, nr->layer, nr->neuron, smp, &acts, &n))) goto out;
                if (n != ts->n_tokens) {
                    st = vlmn_error(VLMN_E_MISMATCH, "trace %d:%d sample %u: %lld activations for %lld positions",
                                    nr->layer, nr->neuron, smp, (long long)n, (long long)ts->n_tokens);
                    goto out;
                }
                int v = 0;
                for (int64_t i = 0; i < n; i++)
                    if (ts->modality[i] == VLMN_TRACE_VISUAL) vis[v++] = acts[i];
                vlmn_free(acts);
                acts = NULL;
                lreal *R = &real[k];
                R->n_samples++;
                for (int i = 0; i < nv; i++) {
                    if (isnan(vis[i])) continue;
                    if (R->m == 0) R->kx = vis[i];
                    double dx = vis[i] - R->kx;
                    R->sx += dx;
                    R->sxx += dx * dx;
                    R->m++;
                    for (int c = 0; c < C; c++) {
                        lsim *S = &sims[k * C + c];
                        double y = maps[(size_t)c * nv + i];
                        if (!ky_set[k * C + c]) {
                            S->ky = y;
                            ky_set[k * C + c] = 1;
                        }
                        double dy = y - S->ky;
                        S->sy += dy;
                        S->syy += dy * dy;
                        S->sxy += dx * dy;
                    }
                }
            }
            vlmn_img_free(img);
            img = NULL;
            vlmn_free(pe);
            vlmn_free(maps);
            vlmn_free(vis);
            pe = maps = vis = NULL;
        }
        vlmn_trace_sample_free(ts);
        ts = NULL;
        a = b;
    }
    /* results */
    if ((st = labels_schema(db, o->run_dir))) goto out;
    if (o->as_explanations && (st = label_xpl_open(db, o, label_samples(o), p.sampling, &xw))) goto out;
    if (sqlite3_prepare_v2(db, "DELETE FROM labels WHERE layer=? AND neuron=? AND clip=?", -1, &del, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO labels (layer, neuron, clip, concept, rank, score, n_samples, samples, "
                           "created) VALUES (?,?,?,?,?,?,?,?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr;
    in_tx = true;
    int K = o->top_k < C ? o->top_k : C;
    for (int64_t k = 0; k < p.n_keep; k++) {
        const vlmn_neuron_ref *nr = &p.sel->neurons[p.keep[k]];
        for (int c = 0; c < C; c++) rk[c] = (lrank){corr(&real[k], &sims[k * C + c]), c};
        qsort(rk, (size_t)C, sizeof *rk, rank_cmp);
        sqlite3_reset(del);
        sqlite3_bind_int(del, 1, nr->layer);
        sqlite3_bind_int(del, 2, nr->neuron);
        sqlite3_bind_text(del, 3, o->clip_name, -1, SQLITE_STATIC);
        if (sqlite3_step(del) != SQLITE_DONE) goto dberr;
        for (int j = 0; j < K; j++) {
            sqlite3_reset(ins);
            sqlite3_bind_int(ins, 1, nr->layer);
            sqlite3_bind_int(ins, 2, nr->neuron);
            sqlite3_bind_text(ins, 3, o->clip_name, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, o->concepts->items[rk[j].c], -1, SQLITE_STATIC);
            sqlite3_bind_int(ins, 5, j + 1);
            if (isnan(rk[j].r)) sqlite3_bind_null(ins, 6);
            else sqlite3_bind_double(ins, 6, rk[j].r);
            sqlite3_bind_int(ins, 7, real[k].n_samples);
            sqlite3_bind_text(ins, 8, label_samples(o), -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) goto dberr;
            if (o->out) {
                if (isnan(rk[j].r))
                    fprintf(o->out, "%d:%d\t%s\tnan\n", nr->layer, nr->neuron, o->concepts->items[rk[j].c]);
                else
                    fprintf(o->out, "%d:%d\t%s\t%.4f\n", nr->layer, nr->neuron, o->concepts->items[rk[j].c],
                            rk[j].r);
            }
        }
        sum->neurons++;
        if (o->as_explanations) {
            const vlmn_neuron_stats *ns = vlmn_run_stats(p.run, nr->layer, nr->neuron);
            int64_t a = p.sel->off[p.keep[k]];
            bool changed = false;
            if ((st = label_xpl_put(&xw, nr->layer, nr->neuron, p.multimodal[k] ? "multimodal" : "visual",
                                    p.sel->samples + a, p.sel->off[p.keep[k] + 1] - a, ns ? ns->max_act : 0,
                                    o->concepts->items[rk[0].c], rk[0].r, &changed)))
                goto out;
            if (changed) sum->expl_new++;
            else sum->expl_same++;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto dberr;
    in_tx = false;
    goto out;
dberr:
    st = vlmn_error(VLMN_E_DB, "%s: labels table: %s", o->run_dir, sqlite3_errmsg(vlmn_run_db(p.run)));
out:
    if (in_tx) sqlite3_exec(vlmn_run_db(p.run), "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    label_xpl_close(&xw);
    vlmn_trace_sample_free(ts);
    vlmn_img_free(img);
    vlmn_free(acts);
    vlmn_free(pe);
    vlmn_free(maps);
    vlmn_free(vis);
    vlmn_free(temb);
    vlmn_free(ids);
    vlmn_free(pairs);
    vlmn_free(real);
    vlmn_free(sims);
    vlmn_free(ky_set);
    vlmn_free(rk);
    lprep_free(&p);
    return st;
}
