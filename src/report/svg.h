/* Inline SVG bar charts for the HTML report (module-internal): axes, nice ticks, axis
 * titles and bar annotations, no scripts and no external resources. */
#ifndef VLMN_REPORT_SVG_H
#define VLMN_REPORT_SVG_H

#include <stdio.h>

typedef struct svg_bar_chart {
    const char *title;            /* above the plot */
    const char *x_title;
    const char *y_title;
    int n;                        /* bars */
    const double *values;         /* [n], >= 0 */
    /* Histogram mode: edge_labels[n + 1] under the bin edges, bars touch. Otherwise
     * cat_labels[n] under the bar centres (every `label_every`-th, 0 = automatic). */
    const char *const *edge_labels;
    const char *const *cat_labels;
    int label_every;
    const char *const *annotations; /* [n] text above each bar, or NULL */
    const char *color;            /* one fill for all bars ... */
    const char *const *colors;    /* ... or one per bar */
    int width, height;
} svg_bar_chart;

void svg_bar_chart_write(FILE *f, const svg_bar_chart *c);

/* "1234567" -> "1,234,567" into buf. */
const char *svg_fmt_count(char *buf, size_t n, long long v);

#endif
