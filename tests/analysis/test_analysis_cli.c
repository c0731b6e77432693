/* End-to-end tests of `vlmn classify`, `vlmn stats` and `vlmn report` on a run recorded
 * from a synthetic dataset whose FULL activations are known: the recorder and run store
 * keep only the top-N / top-8 state, and the classification the CLI writes must equal a
 * direct computation over every counted token of every top sample (plain code below),
 * for the default thresholds and other settings in both normalisation modes.
 * With VLMN_REPORT_FIXTURE=DIR, the case `fixture_for_browser_test` writes a classified
 * run's report into DIR (used by test_report_browser.sh). */
#include "test.h"
#include "vlmn/analysis.h"
#include "vlmn/record.h"
#include "vlmn/model.h"
#include "store/store.h"
#include "core/alloc.h"

#include <cJSON.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { L = 4, F = 24, S = 40, TOPN = 10, NPROMPT = 2, MAXTOK = NPROMPT + 16 + 10 };

static const unsigned char png_red[79] = {137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,16,0,0,0,16,8,2,0,0,0,144,145,104,54,0,0,0,22,73,68,65,84,120,218,99,184,163,161,65,18,98,24,213,48,170,97,248,106,0,0,50,4,44,16,132,36,63,218,0,0,0,0,73,69,78,68,174,66,96,130};
static const unsigned char png_blue[79] = {137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,16,0,0,0,16,8,2,0,0,0,144,145,104,54,0,0,0,22,73,68,65,84,120,218,99,208,8,184,67,18,98,24,213,48,170,97,248,106,0,0,13,136,84,16,190,53,84,146,0,0,0,0,73,69,78,68,174,66,96,130};

/* The dataset: per sample NPROMPT prompt tokens (not counted), n_img image tokens,
 * n_txt text tokens; act[l][s][token][neuron]. */
static int n_img[S], n_txt[S];
static float act[L][S][MAXTOK][F];

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double unif(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void make_data(void)
{
    static const int ni[] = {0, 4, 9, 16}, nt[] = {0, 1, 3, 6, 10};
    for (int s = 0; s < S; s++) {
        n_img[s] = ni[(int)(unif() * 4)];
        n_txt[s] = nt[(int)(unif() * 5)];
        if (n_img[s] + n_txt[s] == 0) n_img[s] = 4;
    }
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) {
            int style = (j + l) % 6;
            double scale = 0.5 + 3 * unif();
            for (int s = 0; s < S; s++) {
                double ss = scale * (0.3 + unif());
                for (int k = 0; k < NPROMPT + n_img[s] + n_txt[s]; k++) {
                    int img = k >= NPROMPT && k < NPROMPT + n_img[s];
                    double u = unif(), a;
                    switch (style) {
                    case 0: a = img ? ss * u : 0.15 * ss * u; break;       /* visual-ish */
                    case 1: a = img ? 0.2 * ss * u : ss * u; break;        /* text-ish */
                    case 2: a = ss * u; break;                             /* both */
                    case 3: a = -0.02 - u; break;                          /* never positive */
                    case 4: a = scale * (int)(u * 11) / 10.0; break;       /* on the floor grid */
                    default: a = ss * u * u - 0.1; break;
                    }
                    /* Prompt tokens are large but must not count. */
                    act[l][s][k][j] = (float)(k < NPROMPT ? 50.0 * u : a);
                }
            }
        }
}

/* Scratch folder: its own one for the browser-test fixture, so both can run at once. */
static const char *base_name(void) { return getenv("VLMN_REPORT_FIXTURE") ? "analysis_cli_fixture" : "analysis_cli"; }
static const char *run_dir(void)
{
    static char d[1024];
    snprintf(d, sizeof d, "%s/%s/run", test_tmp_dir(), base_name());
    return d;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Record the dataset into a finished run directory with the real recorder and store. */
static int make_run(const char *dir)
{
    char base[1024], path[4096], images[2048];
    snprintf(base, sizeof base, "%s", dir);
    char *slash = strrchr(base, '/');
    if (slash) *slash = 0;
    mkdir(base, 0755);
    mkdir(dir, 0755);
    snprintf(images, sizeof images, "%s/images", base);
    mkdir(images, 0755);
    snprintf(path, sizeof path, "%s/red.png", images);
    if (!write_file(path, png_red, sizeof png_red)) return 0;
    snprintf(path, sizeof path, "%s/blue.png", images);
    if (!write_file(path, png_blue, sizeof png_blue)) return 0;
    /* Not an image: the report must not copy it. */
    snprintf(path, sizeof path, "%s/secret.png", images);
    if (!write_file(path, "password=hunter2\n", 17)) return 0;

    vlmn_rec_params p = {L, F, TOPN, 1};
    vlmn_rec *r = NULL;
    if (vlmn_rec_create(&p, &r) != VLMN_OK) return 0;
    snprintf(path, sizeof path, "%s/run.sqlite", dir);
    unlink(path);
    sqlite3 *db = NULL;
    int ok = vlmn_db_open(path, true, &db) == VLMN_OK;
    for (int s = 0; ok && s < S; s++) {
        uint8_t labels[MAXTOK];
        int T = NPROMPT + n_img[s] + n_txt[s];
        for (int k = 0; k < T; k++)
            labels[k] = k < NPROMPT ? VLMN_MOD_PROMPT : k < NPROMPT + n_img[s] ? VLMN_MOD_IMAGE : VLMN_MOD_TEXT;
        ok = vlmn_rec_begin_sample(r, (uint32_t)s, labels, T, false) == VLMN_OK;
        for (int l = 0; ok && l < L; l++) vlmn_rec_capture(r, l, &act[l][s][0][0], T, F);
        ok = ok && vlmn_rec_end_sample(r) == VLMN_OK;
        char id[64];
        snprintf(id, sizeof id, "<b>s%d&'\"", s);
        vlmn_store_sample row = {s, id, s % 5 == 0 ? "secret.png" : s % 2 ? "red.png" : "blue.png", true, NULL,
                                 n_img[s], n_txt[s]};
        ok = ok && vlmn_db_put_sample(db, &row) == VLMN_OK;
    }
    ok = ok && vlmn_db_write_neurons(db, r) == VLMN_OK;
    ok = ok && vlmn_store_write_arrays(dir, r, true) == VLMN_OK;
    ok = ok && vlmn_db_set_meta(db, "model", "%s", "synthetic <script>alert(1)</script>") == VLMN_OK;
    /* Relative, as `vlmn record --images images` stores it: the report finds it next to RUN. */
    ok = ok && vlmn_db_set_meta(db, "images", "%s", "images") == VLMN_OK;
    ok = ok && vlmn_db_set_meta(db, "status", "%s", "complete") == VLMN_OK;
    if (!ok) fprintf(stderr, "  make_run: %s\n", vlmn_errmsg());
    vlmn_db_close(db);
    vlmn_rec_free(r);
    return ok;
}

/* ---- the direct reference ---- */
static double norm(float a, float m, int cont)
{
    if (!(m > 0)) return 0;
    double x = a > 0 ? 10.0 * (double)a / (double)m : 0;
    if (cont) return x;
    x = floor(x);
    return x > 10 ? 10 : x;
}

static void reference(int l, int j, double tv, int nv, double tt, int nt, int cont, int count[4], int *label)
{
    float m = -INFINITY, smax[S];
    for (int s = 0; s < S; s++) {
        smax[s] = -INFINITY;
        for (int k = NPROMPT; k < NPROMPT + n_img[s] + n_txt[s]; k++)
            if (act[l][s][k][j] > smax[s]) smax[s] = act[l][s][k][j];
        if (smax[s] > m) m = smax[s];
    }
    int used[S] = {0};
    memset(count, 0, 4 * sizeof *count);
    for (int r = 0; r < TOPN; r++) {
        int b = -1;
        for (int s = 0; s < S; s++)
            if (!used[s] && (b < 0 || smax[s] > smax[b])) b = s;
        used[b] = 1;
        int hv = 0, ht = 0;
        for (int k = 0; k < n_img[b]; k++) hv += norm(act[l][b][NPROMPT + k][j], m, cont) > tv;
        for (int k = 0; k < n_txt[b]; k++) ht += norm(act[l][b][NPROMPT + n_img[b] + k][j], m, cont) > tt;
        int va = hv > nv, ta = ht > nt;
        count[va && ta ? 2 : va ? 0 : ta ? 1 : 3]++;
    }
    static const int pref[4] = {3, 2, 1, 0};
    int mx = 0;
    for (int t = 0; t < 4; t++) mx = count[t] > mx ? count[t] : mx;
    for (int i = 3; i >= 0; i--)
        if (count[pref[i]] == mx) *label = pref[i];
}

/* Run the CLI; stdout into `out` (NUL-terminated, truncated to n), exit code returned. */
static int vlmn(char *out, size_t n, const char *args)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin) return -1;
    char cmd[4096], tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/%s/stdout.txt", test_tmp_dir(), base_name());
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s' 2>'%s.err'", bin, args, tmp, tmp);
    int rc = system(cmd);
    if (out) {
        out[0] = 0;
        FILE *f = fopen(tmp, "rb");
        if (f) {
            size_t k = fread(out, 1, n - 1, f);
            out[k] = 0;
            fclose(f);
        }
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int have_run;
static int ensure_run(void)
{
    if (!have_run) {
        make_data();
        have_run = make_run(run_dir()) ? 1 : -1;
    }
    return have_run == 1;
}

TEST(cli_classify_matches_full_activation_reference)
{
    CHECK(ensure_run());
    if (have_run != 1) return;
    struct { const char *args; double tv; int nv; double tt; int nt; } set[] = {
        {"", 2, 4, 3, 2},
        {"--tv 0 --nv 0 --tt 0 --nt 0", 0, 0, 0, 0},
        {"--tv=5.5 --nv 7 --tt 1 --nt 5", 5.5, 7, 1, 5},
        {"--tv 8 --nv 1 --tt 6.5 --nt 1", 8, 1, 6.5, 1},
    };
    char db_path[1200], out[4096], args[4096];
    snprintf(db_path, sizeof db_path, "%s/run.sqlite", run_dir());
    int labels_seen[4] = {0};
    for (int cont = 0; cont < 2; cont++)
        for (size_t k = 0; k < VLMN_ARRAY_LEN(set); k++) {
            snprintf(args, sizeof args, "classify '%s' %s --normalize %s", run_dir(), set[k].args,
                     cont ? "continuous" : "floor");
            CHECK_EQ_INT(vlmn(out, sizeof out, args), 0);
            CHECK(strstr(out, "classified 96 neurons") != NULL);
            sqlite3 *db = NULL;
            sqlite3_stmt *q = NULL;
            CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
            CHECK(sqlite3_prepare_v2(db, "SELECT layer, neuron, p_visual, p_text, p_multimodal, p_unknown, label, n_top "
                                     "FROM classification ORDER BY layer, neuron", -1, &q, NULL) == SQLITE_OK);
            int rows = 0, bad = 0;
            while (q && sqlite3_step(q) == SQLITE_ROW) {
                int l = sqlite3_column_int(q, 0), j = sqlite3_column_int(q, 1), cnt[4], lab = -1;
                reference(l, j, set[k].tv, set[k].nv, set[k].tt, set[k].nt, cont, cnt, &lab);
                int ok = sqlite3_column_int(q, 7) == TOPN &&
                         !strcmp((const char *)sqlite3_column_text(q, 6), vlmn_ntype_name(lab));
                for (int t = 0; t < 4; t++) ok = ok && fabs(sqlite3_column_double(q, 2 + t) - cnt[t] / (double)TOPN) < 1e-12;
                if (!ok && bad++ < 3)
                    fprintf(stderr, "  %s: neuron (%d,%d): ref %d/%d/%d/%d %s, got %.2f/%.2f/%.2f/%.2f %s\n", args, l, j,
                            cnt[0], cnt[1], cnt[2], cnt[3], vlmn_ntype_name(lab), sqlite3_column_double(q, 2),
                            sqlite3_column_double(q, 3), sqlite3_column_double(q, 4), sqlite3_column_double(q, 5),
                            sqlite3_column_text(q, 6));
                if (k == 0) labels_seen[lab]++;
                rows++;
            }
            CHECK_EQ_INT(rows, L * F);
            CHECK_EQ_INT(bad, 0);
            sqlite3_finalize(q);
            CHECK(sqlite3_prepare_v2(db, "SELECT t_v, n_v, t_t, n_t, normalize FROM classification_params", -1, &q,
                                     NULL) == SQLITE_OK);
            CHECK(q && sqlite3_step(q) == SQLITE_ROW);
            if (q) {
                CHECK(sqlite3_column_double(q, 0) == set[k].tv && sqlite3_column_int(q, 1) == set[k].nv);
                CHECK(sqlite3_column_double(q, 2) == set[k].tt && sqlite3_column_int(q, 3) == set[k].nt);
                CHECK_EQ_STR((const char *)sqlite3_column_text(q, 4), cont ? "continuous" : "floor");
            }
            sqlite3_finalize(q);
            sqlite3_close(db);
        }
    for (int t = 0; t < 4; t++) CHECK_MSG(labels_seen[t] > 0, "label %d never produced by the fixture", t);
}

TEST(cli_errors)
{
    CHECK(ensure_run());
    char args[4096], out[256];
    snprintf(args, sizeof args, "classify '%s' --nv 8", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 2);
    snprintf(args, sizeof args, "classify '%s' --tt -1", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 2);
    snprintf(args, sizeof args, "classify '%s' --normalize round", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 2);
    snprintf(args, sizeof args, "stats '%s' --top-frac 0", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 2);
    snprintf(args, sizeof args, "report '%s'", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 2);
    CHECK_EQ_INT(vlmn(out, sizeof out, "classify /nonexistent/run"), 1);
    /* A run that was never classified: stats says what to do. */
    char db_path[1200];
    snprintf(db_path, sizeof db_path, "%s/run.sqlite", run_dir());
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "DROP TABLE IF EXISTS classification; DROP TABLE IF EXISTS classification_params", NULL, NULL,
                       NULL) == SQLITE_OK);
    sqlite3_close(db);
    snprintf(args, sizeof args, "stats '%s'", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 1);
    char err[1300], msg[512] = "";
    snprintf(err, sizeof err, "%s/%s/stdout.txt.err", test_tmp_dir(), base_name());
    FILE *f = fopen(err, "r");
    if (f) {
        size_t k = fread(msg, 1, sizeof msg - 1, f);
        msg[k] = 0;
        fclose(f);
    }
    CHECK(strstr(msg, "vlmn classify") != NULL);
}

TEST(cli_stats_json_and_report)
{
    CHECK(ensure_run());
    if (have_run != 1) return;
    static char out[1 << 16];
    char args[4096];
    snprintf(args, sizeof args, "classify '%s'", run_dir());
    CHECK_EQ_INT(vlmn(NULL, 0, args), 0);
    /* Label counts from the reference. */
    int64_t lab_ref[4] = {0};
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) {
            int cnt[4], lab = -1;
            reference(l, j, 2, 4, 3, 2, 0, cnt, &lab);
            lab_ref[lab]++;
        }
    /* `vlmn export RUN neurons` carries the classification columns. */
    snprintf(args, sizeof args, "export '%s' neurons", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 0);
    static const char head[] = "layer,neuron,max_act,min_act,mean,count,p_visual,p_text,p_multimodal,p_unknown,label,";
    CHECK(strncmp(out, head, sizeof head - 1) == 0);
    int rows = 0;
    for (char *line = strchr(out, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        int l, jn, cnt[4], lab = -1;
        double pv, pt, pm, pu;
        char label[16];
        if (sscanf(line + 1, "%d,%d,%*[^,],%*[^,],%*[^,],%*[^,],%lf,%lf,%lf,%lf,%15[a-z]", &l, &jn, &pv, &pt, &pm, &pu,
                   label) != 7) {
            CHECK_MSG(0, "export row: %.60s", line + 1);
            break;
        }
        reference(l, jn, 2, 4, 3, 2, 0, cnt, &lab);
        CHECK_EQ_STR(label, vlmn_ntype_name(lab));
        CHECK_NEAR(pv, cnt[0] / (double)TOPN, 1e-9);
        CHECK_NEAR(pu, cnt[3] / (double)TOPN, 1e-9);
        rows++;
    }
    CHECK_EQ_INT(rows, L * F);
    snprintf(args, sizeof args, "stats '%s' --json --top-frac 0.25", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 0);
    cJSON *j = cJSON_Parse(out);
    CHECK(j != NULL);
    if (j) {
        static const char *names[4] = {"visual", "text", "multimodal", "unknown"};
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "n_neurons")->valuedouble, L * F);
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "top"), "k")->valuedouble, 24);
        for (int t = 0; t < 4; t++) {
            cJSON *lab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "labels"), names[t]);
            CHECK_EQ_INT(cJSON_GetObjectItem(lab, "count")->valuedouble, lab_ref[t]);
            cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "histogram"), names[t]);
            double sum = 0;
            for (int k = 0; k < cJSON_GetArraySize(h); k++) sum += cJSON_GetArrayItem(h, k)->valuedouble;
            CHECK_EQ_INT(sum, L * F);
            cJSON *pl = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "top"), "per_layer"), names[t]);
            CHECK_EQ_INT(cJSON_GetArraySize(pl), L);
            sum = 0;
            for (int k = 0; k < cJSON_GetArraySize(pl); k++) sum += cJSON_GetArrayItem(pl, k)->valuedouble;
            CHECK_EQ_INT(sum, 24);
        }
        cJSON_Delete(j);
    }
    snprintf(args, sizeof args, "stats '%s'", run_dir());
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 0);
    CHECK(strstr(out, "Figure 5") && strstr(out, "Figure 7") && strstr(out, "96 neurons (4 layers x 24)"));

    char rep[1200], html_path[1300];
    snprintf(rep, sizeof rep, "%s/%s/report", test_tmp_dir(), base_name());
    snprintf(args, sizeof args, "report '%s' -o '%s' --neurons 3", run_dir(), rep);
    CHECK_EQ_INT(vlmn(out, sizeof out, args), 0);
    snprintf(html_path, sizeof html_path, "%s/index.html", rep);
    CHECK(strstr(out, html_path) != NULL);
    static char html[1 << 20];
    FILE *f = fopen(html_path, "rb");
    CHECK(f != NULL);
    if (f) {
        size_t k = fread(html, 1, sizeof html - 1, f);
        html[k] = 0;
        fclose(f);
        CHECK(strstr(html, "Figure 5.") && strstr(html, "Figure 6.") && strstr(html, "Figure 7."));
        CHECK(strstr(html, "<svg") != NULL);
        /* Data is escaped; nothing is fetched from elsewhere. */
        CHECK(strstr(html, "<script") == NULL);
        CHECK(strstr(html, "synthetic &lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
        CHECK(strstr(html, "&lt;b&gt;s") != NULL && strstr(html, "&amp;&#39;&quot;") != NULL);
        CHECK(strstr(html, "http://") == NULL || strstr(html, "http://www.w3.org/2000/svg"));
        CHECK(strstr(html, "https://") == NULL);
        CHECK(strstr(html, "src=\"img/") != NULL);
    }
    char img[1400];
    int found = 0;
    for (int s = 0; s < S; s++) {
        snprintf(img, sizeof img, "%s/img/%d.png", rep, s);
        if (s % 5 == 0) CHECK_MSG(access(img, F_OK) != 0, "%s: a non-image was copied", img);
        else found += access(img, R_OK) == 0;
    }
    CHECK(found > 0);
}

TEST(fixture_for_browser_test)
{
    const char *dir = getenv("VLMN_REPORT_FIXTURE");
    if (!dir) return; /* only when test_report_browser.sh asks for it */
    CHECK(ensure_run());
    char args[4096];
    snprintf(args, sizeof args, "classify '%s'", run_dir());
    CHECK_EQ_INT(vlmn(NULL, 0, args), 0);
    snprintf(args, sizeof args, "report '%s' -o '%s' --top-frac 0.25 --neurons 4", run_dir(), dir);
    CHECK_EQ_INT(vlmn(NULL, 0, args), 0);
}

TEST_MAIN()
