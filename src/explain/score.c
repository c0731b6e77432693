/* Scoring of simulations (paper A.3, after Bills et al.): Pearson r of simulated and
 * real activations per modality, the per-type neuron score, and the bootstrap interval
 * of Table 2's means. Flow: simulations table -> [this] -> scores table, stats. */
#include "vlmn/explain.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Two-pass in double: means first, then centred sums (no cancellation of raw sums). */
double vlmn_pearson(const float *x, const float *y, int n, int *n_used)
{
    double sx = 0, sy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i])) continue;
        sx += x[i];
        sy += y[i];
        m++;
    }
    if (n_used) *n_used = m;
    if (m < 2) return NAN;
    double mx = sx / m, my = sy / m, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i])) continue;
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx == 0 || syy == 0) return NAN;
    return sxy / (sqrt(sxx) * sqrt(syy));
}

static bool constant(const float *v, const float *other, int n)
{
    float first = NAN;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i]) || isnan(other[i])) continue;
        if (isnan(first)) first = v[i];
        else if (v[i] != first) return false;
    }
    return true;
}

/* r of (real, sim) or the documented values for constant vectors. */
static double part(const float *real, const float *sim, int n, int *used, const char **note, const char *real_c,
                   const char *sim_c, const char *none)
{
    *used = 0;
    if (!real || n <= 0) {
        *note = none;
        return NAN;
    }
    double r = vlmn_pearson(real, sim, n, used);
    if (!isnan(r)) return r;
    if (*used < 2) {
        *note = none;
        return NAN;
    }
    if (constant(real, sim, n)) {
        *note = real_c;
        return NAN;
    }
    (void)sim_c;
    return 0.0; /* simulation constant, real varies */
}

void vlmn_score_neuron(vlmn_xkind k, const float *real_v, const float *sim_v, int n_v, const float *real_t,
                       const float *sim_t, int n_t, vlmn_xscore *out)
{
    memset(out, 0, sizeof *out);
    const char *nv = NULL, *nt = NULL;
    out->visual = k == VLMN_XK_TEXT ? NAN
                                    : part(real_v, sim_v, n_v, &out->n_visual, &nv, "visual: constant real activations",
                                           "visual: constant simulation", "visual: no simulated visual tokens");
    out->text = k == VLMN_XK_VISUAL ? NAN
                                    : part(real_t, sim_t, n_t, &out->n_text, &nt, "text: constant real activations",
                                           "text: constant simulation", "text: no simulated text tokens");
    if (k == VLMN_XK_VISUAL) {
        out->score = out->visual;
        out->note = nv;
    } else if (k == VLMN_XK_TEXT) {
        out->score = out->text;
        out->note = nt;
    } else {
        out->score = (isnan(out->visual) || isnan(out->text)) ? NAN : 0.5 * (out->visual + out->text);
        out->note = nv ? nv : nt;
    }
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void vlmn_bootstrap_mean(const double *x, int n, int n_boot, uint64_t seed, double *mean, double *lo, double *hi)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : NAN;
    *lo = *hi = *mean;
    if (n < 2 || n_boot < 2) return;
    double *b = vlmn_malloc((size_t)n_boot * sizeof *b);
    if (!b) return;
    uint64_t st = seed;
    for (int k = 0; k < n_boot; k++) {
        double t = 0;
        for (int i = 0; i < n; i++) t += x[splitmix(&st) % (uint64_t)n];
        b[k] = t / n;
    }
    qsort(b, (size_t)n_boot, sizeof *b, cmp_d);
    *lo = b[(int)floor(0.025 * (n_boot - 1))];
    *hi = b[(int)ceil(0.975 * (n_boot - 1))];
    vlmn_free(b);
}

/* ---- AUROC (detection and fuzzing scorers) ---- */

typedef struct scored {
    double s;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x < y ? -1 : x > y;
}

/* Mann-Whitney: U = (sum of the positives' mid-ranks) - n_pos (n_pos + 1) / 2 over the
 * pooled scores sorted ascending, AUROC = U / (n_pos n_neg). Tied scores share their mean
 * rank, so a tied (positive, negative) pair counts 1/2. Ranks and their sums are exact
 * half-integers in double. */
double vlmn_auroc(const double *score, const int *label, int n, int *n_pos, int *n_neg)
{
    int np = 0, nn = 0;
    scored *v = vlmn_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return NAN;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(score[i])) continue;
        v[m++] = (scored){score[i], label[i] != 0};
        if (label[i]) np++;
        else nn++;
    }
    if (n_pos) *n_pos = np;
    if (n_neg) *n_neg = nn;
    if (!np || !nn) {
        vlmn_free(v);
        return NAN;
    }
    qsort(v, (size_t)m, sizeof *v, cmp_scored);
    double rsum = 0;
    for (int i = 0; i < m;) {
        int j = i;
        int pos = 0;
        while (j < m && v[j].s == v[i].s) pos += v[j++].pos;
        double mid = 0.5 * ((double)(i + 1) + (double)j); /* mean of ranks i+1 .. j */
        rsum += mid * pos;
        i = j;
    }
    vlmn_free(v);
    double u = rsum - 0.5 * (double)np * (double)(np + 1);
    return u / ((double)np * (double)nn);
}
