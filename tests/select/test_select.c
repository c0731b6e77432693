/* Selection grammar (include/vlmn/select.h): every neuron SPEC term and their AND on
 * a hand-made classification, explicit lists and files, random:K:SEED (determinism,
 * the documented Fisher-Yates/Lemire draw re-implemented here), sample SPECs, and bad
 * SPECs with their one-line messages. */
#include "test.h"
#include "vlmn/analysis.h"
#include "vlmn/select.h"

#include "core/alloc.h"

enum { L = 4, F = 10 };

/* neuron (l, j): label = j % 4, p of the label = (j + 1) / 10 */
static vlmn_classification *make_cls(void)
{
    vlmn_classification *c = NULL;
    if (vlmn_classification_create(L, F, &c)) return NULL;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) {
            vlmn_neuron_class *n = &c->neurons[l * F + j];
            memset(n, 0, sizeof *n);
            n->n_top = n->den = 10;
            n->label = (uint8_t)(j % 4);
            n->count[j % 4] = (uint16_t)(j + 1);
            n->count[(j % 4 + 1) % 4] = (uint16_t)(10 - (j + 1));
        }
    return c;
}

static int64_t count(const char *spec, const vlmn_classification *c, vlmn_status *st_out)
{
    vlmn_nsel *s = NULL;
    vlmn_status st = vlmn_nsel_parse(spec, &s);
    vlmn_neuron_ref *v = NULL;
    int64_t n = -1;
    if (!st) st = vlmn_nsel_resolve(s, L, F, c, &v, &n);
    if (st) n = -1;
    vlmn_free(v);
    vlmn_nsel_free(s);
    if (st_out) *st_out = st;
    return n;
}

TEST(neuron_terms)
{
    vlmn_classification *c = make_cls();
    CHECK(c != NULL);
    if (!c) return;
    CHECK_EQ_INT(count("all", c, NULL), L * F);
    CHECK_EQ_INT(count("label=visual", c, NULL), L * 3);          /* j = 0, 4, 8 */
    CHECK_EQ_INT(count("label=visual,p>=0.5", c, NULL), L * 2);   /* j = 4 (0.5), 8 (0.9) */
    CHECK_EQ_INT(count("label=visual & p>0.5", c, NULL), L * 1);
    CHECK_EQ_INT(count("p>=0.9", c, NULL), L * 3);                /* max p: j = 0 (p_t 0.9), 8 (p_v 0.9), 9 (p_t 1) */
    CHECK_EQ_INT(count("p_v>=0.9", c, NULL), L * 1);
    CHECK_EQ_INT(count("p_visual<0.05", c, NULL), L * 5);         /* j with no visual count */
    CHECK_EQ_INT(count("layer=2", c, NULL), F);
    CHECK_EQ_INT(count("layer=1-3,label=text", c, NULL), 3 * 3);
    CHECK_EQ_INT(count("1:3;2:4;1:3", c, NULL), 2);
    CHECK_EQ_INT(count("1:3;2:4,layer=2", c, NULL), 1);
    CHECK_EQ_INT(count("1:3,label=visual", c, NULL), 0);          /* empty is not an error */
    CHECK_EQ_INT(count("3:9", NULL, NULL), 1);                    /* no class needed */
    /* random: K of what the rest leaves, deterministic, sorted; more than there is: all */
    vlmn_nsel *s = NULL;
    vlmn_neuron_ref *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    CHECK(vlmn_nsel_parse("random:5:42,label=text", &s) == VLMN_OK);
    CHECK(s && vlmn_nsel_resolve(s, L, F, c, &a, &na) == VLMN_OK);
    CHECK(s && vlmn_nsel_resolve(s, L, F, c, &b, &nb) == VLMN_OK);
    CHECK_EQ_INT(na, 5);
    CHECK(a && b && na == nb && !memcmp(a, b, (size_t)na * sizeof *a));
    for (int64_t i = 0; a && i < na; i++) {
        CHECK_EQ_INT(a[i].neuron % 4, 1);
        if (i) CHECK(a[i - 1].layer * F + a[i - 1].neuron < a[i].layer * F + a[i].neuron);
    }
    vlmn_free(a);
    vlmn_free(b);
    vlmn_nsel_free(s);
    CHECK_EQ_INT(count("random:500:1", c, NULL), L * F);
    CHECK_EQ_INT(count("random:0:1", c, NULL), 0);
    vlmn_classification_free(c);
}

/* The documented draw, written again: splitmix64, Lemire, partial Fisher-Yates, sort. */
static uint64_t sm(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int cmp64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

TEST(random_algorithm)
{
    enum { N = 1000, K = 37 };
    static int64_t perm[N], want[K], got[K];
    for (uint64_t seed = 0; seed < 5; seed++) {
        for (int i = 0; i < N; i++) perm[i] = i;
        uint64_t st = seed;
        for (int i = 0; i < K; i++) {
            uint64_t m = (uint64_t)(N - i);
            unsigned __int128 r = (unsigned __int128)sm(&st) * m;
            while ((uint64_t)r < (-m % m)) r = (unsigned __int128)sm(&st) * m;
            int64_t j = i + (int64_t)(r >> 64), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        memcpy(want, perm, sizeof want);
        qsort(want, K, sizeof *want, cmp64);
        CHECK(vlmn_select_random(N, K, seed, got) == VLMN_OK);
        CHECK(!memcmp(want, got, sizeof want));
    }
    CHECK(vlmn_select_random(3, 4, 1, got) == VLMN_E_ARG);
    /* uniform: every index drawn about equally over many seeds */
    static int hits[20];
    for (uint64_t seed = 0; seed < 4000; seed++) {
        CHECK(vlmn_select_random(20, 3, seed, got) == VLMN_OK);
        for (int i = 0; i < 3; i++) hits[got[i]]++;
    }
    for (int i = 0; i < 20; i++) CHECK_MSG(hits[i] > 480 && hits[i] < 720, "index %d drawn %d times of ~600", i, hits[i]);
}

TEST(neuron_file)
{
    char path[600];
    snprintf(path, sizeof path, "%s/select_list.csv", test_tmp_dir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("layer,neuron\n# comment\n\n0,1\n 3 , 9\n0,1\n", f);
    fclose(f);
    char spec[700];
    snprintf(spec, sizeof spec, "file:%s", path);
    CHECK_EQ_INT(count(spec, NULL, NULL), 2);
    snprintf(spec, sizeof spec, "file:%s,layer=3", path);
    CHECK_EQ_INT(count(spec, NULL, NULL), 1);
    f = fopen(path, "w");
    fputs("0,1\n4,0\n", f);
    fclose(f);
    vlmn_status st;
    snprintf(spec, sizeof spec, "file:%s", path);
    CHECK_EQ_INT(count(spec, NULL, &st), -1);
    CHECK(st == VLMN_E_RANGE && strstr(vlmn_errmsg(), "out of range"));
    f = fopen(path, "w");
    fputs("0,1\nzero,1\n", f);
    fclose(f);
    CHECK_EQ_INT(count(spec, NULL, &st), -1);
    CHECK(st == VLMN_E_FORMAT && strstr(vlmn_errmsg(), ":2:"));
    CHECK_EQ_INT(count("file:/nonexistent/x.csv", NULL, &st), -1);
    CHECK(st == VLMN_E_IO);
}

TEST(bad_neuron_specs)
{
    vlmn_classification *c = make_cls();
    static const struct { const char *spec; vlmn_status st; const char *msg; } bad[] = {
        {"", VLMN_E_ARG, "empty"},
        {"colour=red", VLMN_E_ARG, "unknown term"},
        {"label=purple", VLMN_E_ARG, "unknown label"},
        {"p>=1.5", VLMN_E_RANGE, "outside [0, 1]"},
        {"p_u>=-0.1", VLMN_E_RANGE, "outside [0, 1]"},
        {"p_u>=", VLMN_E_ARG, "bad term"},
        {"p_u", VLMN_E_ARG, "bad term"},
        {"p_u>=0.5,", VLMN_E_ARG, "empty term"},
        {"p_u>=0.5 junk", VLMN_E_ARG, "bad term"},
        {"layer=5", VLMN_E_RANGE, "out of range"},
        {"layer=3-1", VLMN_E_ARG, "layer range"},
        {"layer=a", VLMN_E_ARG, "layer range"},
        {"4:0", VLMN_E_RANGE, "out of range"},
        {"0:10", VLMN_E_RANGE, "out of range"},
        {"1:2;", VLMN_E_ARG, "neuron list"},
        {"1:x", VLMN_E_ARG, "neuron list"},
        {"random:5", VLMN_E_ARG, "random:K:SEED"},
        {"random:-1:3", VLMN_E_ARG, "random:K:SEED"},
        {"random:1:2,random:3:4", VLMN_E_ARG, "more than one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vlmn_status st;
        CHECK_MSG(count(bad[i].spec, c, &st) == -1, "'%s' accepted", bad[i].spec);
        CHECK_MSG(st == bad[i].st, "'%s': status %d, want %d (%s)", bad[i].spec, st, bad[i].st, vlmn_errmsg());
        CHECK_MSG(strstr(vlmn_errmsg(), bad[i].msg) && !strchr(vlmn_errmsg(), '\n'), "'%s': message '%s'", bad[i].spec,
                  vlmn_errmsg());
    }
    /* class terms without a classification */
    vlmn_status st;
    CHECK_EQ_INT(count("label=text", NULL, &st), -1);
    CHECK(st == VLMN_E_ARG && strstr(vlmn_errmsg(), "classified run"));
    vlmn_classification_free(c);
}

TEST(sample_specs)
{
    static const char *good[] = {"top:1,5,9,13,17", "top:1-20", "top:3", "random:5:7", "ids:3,17", "ids:0-4,9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        vlmn_ssel *s = NULL;
        CHECK_MSG(vlmn_ssel_parse(good[i], &s) == VLMN_OK, "'%s': %s", good[i], vlmn_errmsg());
        vlmn_ssel_free(s);
    }
    static const struct { const char *spec; vlmn_status st; const char *msg; } bad[] = {
        {"", VLMN_E_ARG, "empty"},
        {"best:3", VLMN_E_ARG, "unknown"},
        {"top:", VLMN_E_ARG, "list"},
        {"top:0", VLMN_E_RANGE, "out of range"},
        {"top:1001", VLMN_E_RANGE, "out of range"},
        {"top:5-2", VLMN_E_ARG, "list"},
        {"top:1,", VLMN_E_ARG, "list"},
        {"top:1,,2", VLMN_E_ARG, "list"},
        {"ids:x", VLMN_E_ARG, "list"},
        {"ids:1-99999999", VLMN_E_RANGE, "more than"},
        {"random:0:1", VLMN_E_ARG, "K >= 1"},
        {"random:3", VLMN_E_ARG, "random:K:SEED"},
        {"random:3:x", VLMN_E_ARG, "random:K:SEED"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vlmn_ssel *s = NULL;
        vlmn_status st = vlmn_ssel_parse(bad[i].spec, &s);
        CHECK_MSG(st == bad[i].st, "'%s': status %d, want %d (%s)", bad[i].spec, st, bad[i].st, vlmn_errmsg());
        CHECK_MSG(st && strstr(vlmn_errmsg(), bad[i].msg), "'%s': message '%s'", bad[i].spec, vlmn_errmsg());
        CHECK(s == NULL);
        vlmn_ssel_free(s);
    }
}

TEST_MAIN()
