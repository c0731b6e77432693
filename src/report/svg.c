/* Inline SVG bar charts for the HTML report: a plot area with a y axis of "nice" ticks
 * (1, 2, 5 x 10^k steps) and light grid lines, an x axis with bin-edge or category
 * labels, axis titles, and optional per-bar annotations. */
#include "report/svg.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "vlmn/report.h"

const char *svg_fmt_count(char *buf, size_t n, long long v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%lld", v < 0 ? -v : v);
    size_t o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (int i = 0; i < len && o + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 1 < n) buf[o++] = ',';
        if (o + 1 < n) buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

/* Step of about max/5 rounded to 1, 2 or 5 times a power of ten (at least 1: counts). */
static double nice_step(double max)
{
    double raw = max / 5;
    if (raw <= 1) return 1;
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/* Text with the paper's notation: "p_v" is drawn as p with a subscript v (a '_' before
 * a letter starts a one-letter subscript); everything else is escaped as is. */
static void text(FILE *f, double x, double y, const char *anchor, const char *cls, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
    char one[2] = {0, 0};
    for (; s && *s; s++) {
        if (s[0] == '_' && ((s[1] >= 'a' && s[1] <= 'z') || (s[1] >= 'A' && s[1] <= 'Z'))) {
            fprintf(f, "<tspan dy=\"3\" font-size=\"75%%\">%c</tspan><tspan dy=\"-3\">&#8203;</tspan>", s[1]);
            s++;
            continue;
        }
        one[0] = *s;
        vlmn_report_escape(f, one);
    }
    fputs("</text>", f);
}

void svg_bar_chart_write(FILE *f, const svg_bar_chart *c)
{
    const double W = c->width > 0 ? c->width : 520, H = c->height > 0 ? c->height : 300;
    double vmax = 0;
    for (int i = 0; i < c->n; i++)
        if (c->values[i] > vmax) vmax = c->values[i];
    double step = nice_step(vmax);
    double ymax = vmax > 0 ? ceil(vmax / step) * step : step;
    /* Leave head room for annotations above the tallest bar. */
    if (c->annotations && vmax > 0 && vmax / ymax > 0.88) ymax += step;
    /* Left margin: the y title plus the widest tick label (about 6.5 px a character). */
    char widest[32];
    svg_fmt_count(widest, sizeof widest, (long long)llround(ymax));
    const double ml = 34 + 6.5 * (double)strlen(widest), mr = 14, mt = c->title ? 30 : 12, mb = 52;
    const double pw = W - ml - mr, ph = H - mt - mb;

    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
               "height=\"%.0f\" role=\"img\" aria-label=\"",
            W, H, W, H);
    vlmn_report_escape(f, c->title ? c->title : "");
    fputs("\">", f);
    if (c->title) text(f, ml + pw / 2, 18, "middle", "ct", c->title);

    /* y grid, ticks and labels */
    for (double v = 0; v <= ymax + step / 2; v += step) {
        double y = mt + ph - v / ymax * ph;
        char lab[32];
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>", ml, y, ml + pw, y,
                v == 0 ? "ax" : "grid");
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", ml - 4, y, ml, y);
        text(f, ml - 7, y + 4, "end", "tk", svg_fmt_count(lab, sizeof lab, (long long)llround(v)));
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", ml, mt, ml, mt + ph);

    /* bars */
    int hist = c->edge_labels != NULL;
    double slot = c->n > 0 ? pw / c->n : pw;
    double bw = hist ? slot - 1 : slot * 0.72;
    for (int i = 0; i < c->n; i++) {
        double h = c->values[i] / ymax * ph;
        double x = ml + i * slot + (slot - bw) / 2;
        const char *fill = c->colors ? c->colors[i] : c->color ? c->color : "#4477aa";
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>", x,
                mt + ph - h, bw, h, fill);
        if (hist && c->edge_labels)
            fprintf(f, "%s&#8211;%s: ", c->edge_labels[i], c->edge_labels[i + 1]);
        else if (c->cat_labels)
            vlmn_report_escape(f, c->cat_labels[i]), fputs(": ", f);
        char lab[32];
        fprintf(f, "%s</title></rect>", svg_fmt_count(lab, sizeof lab, (long long)llround(c->values[i])));
        if (c->annotations && c->annotations[i])
            text(f, x + bw / 2, mt + ph - h - 5, "middle", "an", c->annotations[i]);
    }

    /* x ticks and labels */
    if (hist) {
        for (int i = 0; i <= c->n; i++) {
            double x = ml + i * slot;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", x, mt + ph, x,
                    mt + ph + 4);
            if (i % (c->label_every > 0 ? c->label_every : 1) == 0)
                text(f, x, mt + ph + 17, "middle", "tk", c->edge_labels[i]);
        }
    } else if (c->cat_labels) {
        int every = c->label_every;
        if (every <= 0) {
            /* about 26 px per label; steps of 1, 2, 4, 5, 8, 10, ... */
            static const int steps[] = {1, 2, 4, 5, 8, 10, 20, 25, 50, 100, 200, 500, 1000};
            every = steps[VLMN_ARRAY_LEN(steps) - 1];
            for (size_t k = 0; k < VLMN_ARRAY_LEN(steps); k++)
                if (steps[k] * slot >= 26) {
                    every = steps[k];
                    break;
                }
        }
        for (int i = 0; i < c->n; i++) {
            double x = ml + i * slot + slot / 2;
            if (i % every) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", x, mt + ph, x,
                    mt + ph + 4);
            text(f, x, mt + ph + 17, "middle", "tk", c->cat_labels[i]);
        }
    }
    if (c->x_title) text(f, ml + pw / 2, H - 10, "middle", "at", c->x_title);
    if (c->y_title) {
        fprintf(f, "<g transform=\"translate(15 %.1f) rotate(-90)\">", mt + ph / 2);
        text(f, 0, 0, "middle", "at", c->y_title);
        fputs("</g>", f);
    }
    fputs("</svg>\n", f);
}
