/* The LLM judge of prune-eval (paper B.1, Table 3): Video-ChatGPT's evaluation
 * protocol (evaluate_activitynet_qa.py: yes/no + score 0..5, answered as a Python dict
 * string), through the project's LLM client. Malformed replies are retried by the
 * client and, if still malformed, counted as failures (NULL grade), never as "no".
 * Flow: answers table -> [this] -> judge_* columns. See docs/explain.md (judge). */
#include "vlmn/eval.h"
#include "vlmn/llm.h"
#include "core/alloc.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char JUDGE_SYSTEM[] =
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer "
    "pairs. Your task is to compare the predicted answer with the correct answer and determine if they match "
    "meaningfully. Here's how you can accomplish the task:------##INSTRUCTIONS: - Focus on the meaningful match "
    "between the predicted answer and the correct answer.\n- Consider synonyms or paraphrases as valid matches.\n- "
    "Evaluate the correctness of the prediction compared to the answer.";
static const char JUDGE_USER_TAIL[] =
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 "
    "indicating the highest meaningful match. Please generate the response in the form of a Python dictionary string "
    "with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in "
    "INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary "
    "string. For example, your response should look like this: {'pred': 'yes', 'score': 4.8}.";

vlmn_status vlmn_judge_body(const char *model, const char *question, const char *reference, const char *answer,
                            char **json)
{
    size_t n = strlen(question) + strlen(reference) + strlen(answer) + sizeof JUDGE_USER_TAIL + 128;
    char *user = vlmn_malloc(n);
    if (!user) return vlmn_error(VLMN_E_NOMEM, "judge: out of memory");
    snprintf(user, n,
             "Please evaluate the following video-based question-answer pair:\n\nQuestion: %s\nCorrect Answer: %s\n"
             "Predicted Answer: %s\n\n%s",
             question, reference, answer, JUDGE_USER_TAIL);
    vlmn_llm_part ps = {.kind = VLMN_LLM_TEXT, .text = JUDGE_SYSTEM}, pu = {.kind = VLMN_LLM_TEXT, .text = user};
    vlmn_llm_msg m[2] = {{.role = "system", .parts = &ps, .n_parts = 1}, {.role = "user", .parts = &pu, .n_parts = 1}};
    /* temperature 0 as the reference scripts; max_tokens left to the server */
    vlmn_llm_chat c = {.model = model, .msgs = m, .n_msgs = 2, .temperature = 0, .max_tokens = 0};
    vlmn_status st = vlmn_llm_chat_body(&c, json);
    vlmn_free(user);
    return st;
}

/* Value text after key `k` ('k' or "k", then ':'), or NULL. */
static const char *after_key(const char *s, const char *k)
{
    size_t kl = strlen(k);
    for (const char *p = s; (p = strstr(p, k)); p++) {
        if (p == s || (p[-1] != '\'' && p[-1] != '"') || (p[kl] != '\'' && p[kl] != '"')) continue;
        const char *q = p + kl + 1;
        while (*q == ' ' || *q == '\t' || *q == '\n') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n') q++;
        return q;
    }
    return NULL;
}

/* Lenient reading of "{'pred': 'yes', 'score': 4}" (single or double quotes, code
 * fences and text around it, score as a number or a quoted number, in [0, 5]). */
vlmn_status vlmn_judge_parse(const char *content, int *yes, double *score)
{
    const char *p = after_key(content, "pred"), *s = after_key(content, "score");
    if (!p || !s) return vlmn_error(VLMN_E_FORMAT, "judge reply: no 'pred' and 'score' keys");
    if (*p == '\'' || *p == '"') p++;
    if (!strncasecmp(p, "yes", 3) && !isalpha((unsigned char)p[3])) *yes = 1;
    else if (!strncasecmp(p, "no", 2) && !isalpha((unsigned char)p[2])) *yes = 0;
    else return vlmn_error(VLMN_E_FORMAT, "judge reply: 'pred' is neither yes nor no");
    if (*s == '\'' || *s == '"') s++;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0 && v <= 5)) return vlmn_error(VLMN_E_FORMAT, "judge reply: 'score' is not a number in 0..5");
    *score = v;
    return VLMN_OK;
}

static vlmn_status judge_check(const char *body, size_t len, void *user)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(body, len, &r);
    if (st) return st;
    int y;
    double s;
    st = vlmn_judge_parse(r.content, &y, &s);
    vlmn_llm_reply_free(&r);
    return st;
}

typedef struct jrow {
    char *config;
    int64_t item;
    char *body;
} jrow;

typedef struct jctx {
    sqlite3 *db;
    sqlite3_stmt *up;
    const char *model, *path;
    int64_t judged, failed;
    FILE *progress;
} jctx;

static vlmn_status judge_done(vlmn_llm_item *it, void *user)
{
    jctx *c = user;
    jrow *r = it->user;
    int yes = -1;
    double score = 0;
    const char *err = it->error;
    if (it->state == VLMN_LLM_ANSWERED) {
        vlmn_llm_reply rep;
        if (vlmn_llm_chat_parse(it->reply, it->reply_len, &rep) == VLMN_OK) {
            if (vlmn_judge_parse(rep.content, &yes, &score)) yes = -1, err = vlmn_errmsg();
            vlmn_llm_reply_free(&rep);
        } else {
            err = vlmn_errmsg();
        }
    }
    sqlite3_reset(c->up);
    if (yes >= 0) {
        sqlite3_bind_int(c->up, 1, yes);
        sqlite3_bind_double(c->up, 2, score);
        c->judged++;
    } else {
        /* a failure: no grade (NULL), so it is neither yes nor no in Table 3 */
        sqlite3_bind_null(c->up, 1);
        sqlite3_bind_null(c->up, 2);
        c->failed++;
        if (c->progress)
            fprintf(c->progress, "vlmn prune-eval: judge failed on %s item %lld: %s\n", r->config, (long long)r->item,
                    err ? err : "unknown error");
    }
    sqlite3_bind_text(c->up, 3, c->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->up, 4, r->config, -1, SQLITE_STATIC);
    sqlite3_bind_int64(c->up, 5, r->item);
    if (sqlite3_step(c->up) != SQLITE_DONE)
        return vlmn_error(VLMN_E_DB, "%s: judge grades: %s", c->path, sqlite3_errmsg(c->db));
    return VLMN_OK;
}

vlmn_status vlmn_judge_answers(sqlite3 *db, const char *path, const char *model, const vlmn_llm_opts *lo,
                               FILE *progress, int64_t *n_judged, int64_t *n_failed)
{
    *n_judged = *n_failed = 0;
    vlmn_llm *cl = NULL;
    sqlite3_stmt *sel = NULL, *up = NULL;
    jrow *rows = NULL;
    vlmn_llm_item *items = NULL;
    size_t n = 0, cap = 0;
    vlmn_status st = vlmn_llm_create(lo, &cl);
    if (st) return st;
    /* every answer without a grade by this judge (failures are asked again on a rerun) */
    if (sqlite3_prepare_v2(db,
                           "SELECT config, item, question, reference, answer FROM answers WHERE judge_yes IS NULL OR "
                           "judge_model IS NOT ? ORDER BY config, item",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE answers SET judge_yes=?, judge_score=?, judge_model=? WHERE config=? AND item=?",
                           -1, &up, NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: judge: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(sel, 1, model, -1, SQLITE_STATIC);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            jrow *t = vlmn_realloc(rows, cap * sizeof *t);
            if (!t) goto oom;
            rows = t;
        }
        jrow *r = &rows[n];
        memset(r, 0, sizeof *r);
        r->item = sqlite3_column_int64(sel, 1);
        n++;
        if (!(r->config = vlmn_strdup((const char *)sqlite3_column_text(sel, 0)))) goto oom;
        if ((st = vlmn_judge_body(model, (const char *)sqlite3_column_text(sel, 2),
                                  (const char *)sqlite3_column_text(sel, 3), (const char *)sqlite3_column_text(sel, 4),
                                  &r->body)))
            goto out;
    }
    sqlite3_finalize(sel);
    sel = NULL;
    if (n && !(items = vlmn_calloc(n, sizeof *items))) goto oom;
    for (size_t i = 0; i < n; i++)
        items[i] = (vlmn_llm_item){.path = "/chat/completions", .body = rows[i].body, .check = judge_check, .user = &rows[i]};
    jctx c = {.db = db, .up = up, .model = model, .path = path, .progress = progress};
    if (n) st = vlmn_llm_run(cl, items, n, judge_done, &c);
    *n_judged = c.judged;
    *n_failed = c.failed;
    if (progress && n) {
        char line[600];
        vlmn_llm_stats_line(vlmn_llm_get_stats(cl), line, sizeof line);
        fprintf(progress, "vlmn prune-eval: judge %s: %lld graded, %lld failed; %s\n", model, (long long)c.judged,
                (long long)c.failed, line);
    }
    goto out;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "judge: out of memory");
out:
    for (size_t i = 0; i < n; i++) {
        if (items) vlmn_llm_item_clear(&items[i]);
        vlmn_free(rows[i].config);
        vlmn_free(rows[i].body);
    }
    vlmn_free(items);
    vlmn_free(rows);
    sqlite3_finalize(sel);
    sqlite3_finalize(up);
    vlmn_llm_free(cl);
    return st;
}
