/* Internals of vlmn label (label.c) shared with label_xpl.c: labels as explanations. */
#ifndef VLMN_LABEL_INT_H
#define VLMN_LABEL_INT_H

#include "vlmn/clip.h"
#include "vlmn/run.h"

#include <sqlite3.h>

/* The explanations.sampling key of a label sample SPEC: "top" for the explainer's
 * top:1,5,9,13,17, "random" for random:5:SEED; VLMN_E_ARG for any other SPEC (or a CLIP
 * name too long for an explainer name). */
vlmn_status label_xpl_sampling(const char *sspec, const char *clip_name, char key[16]);
/* VLMN_E_ARG when one of the neuron's label samples is one of its scoring samples
 * (the top ranks vlmn simulate uses). */
vlmn_status label_xpl_heldout(const vlmn_run *run, const char *run_dir, int layer, int neuron,
                              const uint32_t *samples, int64_t n);

/* Writes label explanations inside the caller's transaction. */
typedef struct label_xpl {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *del_sims, *del_scores;
    char explainer[300], sampling[16], prompt_hash[65];
    char *settings;
} label_xpl;

vlmn_status label_xpl_open(sqlite3 *db, const vlmn_label_opts *o, const char *sspec, const char *sampling,
                           label_xpl *w);
/* One neuron's row: kind "visual" | "multimodal", its label samples, its rank-1 concept
 * and r (NaN: a 'failed' row). *changed: a row was written (false: the same text was
 * already stored). */
vlmn_status label_xpl_put(label_xpl *w, int layer, int neuron, const char *kind, const uint32_t *samples, int64_t n,
                          double max_act, const char *concept, double r, bool *changed);
void label_xpl_close(label_xpl *w);

#endif
