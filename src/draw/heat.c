/* Token heat maps of one neuron on one sample (include/vlmn/draw.h): every token
 * string escaped, on a green background whose opacity is a = clamp(act / neuron_max,
 * 0, 1); the image positions as one "<image>" box shaded by their maximum. HTML
 * fragment for the browser/explainer, SVG for papers. */
#include "vlmn/draw.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double heat_a(float act, float neuron_max)
{
    if (!(neuron_max > 0)) return 0;
    double a = act / neuron_max;
    return a > 0 ? (a < 1 ? a : 1) : 0;
}

/* Escaped display text of a piece: SentencePiece's U+2581 becomes a space, markup
 * characters entities, control characters (invalid in XML) U+FFFD. */
static void add_escaped(vlmn_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (p[0] == 0xE2 && p[1] == 0x96 && p[2] == 0x81) {
            vlmn_buf_adds(b, " ");
            p += 2;
        } else if (*p == '&') vlmn_buf_adds(b, "&amp;");
        else if (*p == '<') vlmn_buf_adds(b, "&lt;");
        else if (*p == '>') vlmn_buf_adds(b, "&gt;");
        else if (*p == '"') vlmn_buf_adds(b, "&quot;");
        else if (*p == '\'') vlmn_buf_adds(b, "&#39;");
        else if (*p < 0x20 || *p == 0x7f) vlmn_buf_adds(b, "\xEF\xBF\xBD");
        else vlmn_buf_add(b, p, 1);
    }
}

/* Display width in characters (UTF-8 code points, U+2581 one). */
static int n_chars(const char *s)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    return n;
}

/* The image positions' maximum and count. */
static float image_max(const vlmn_trace_sample *s, const float *acts, int64_t *n_img)
{
    float m = -INFINITY;
    *n_img = 0;
    for (int64_t i = 0; i < s->n_tokens; i++)
        if (s->modality[i] == VLMN_TRACE_VISUAL) {
            (*n_img)++;
            if (acts[i] > m) m = acts[i];
        }
    return m;
}

static vlmn_status finish(vlmn_buf *b, char **out, size_t *len)
{
    if (b->oom) {
        vlmn_free(b->p);
        return vlmn_error(VLMN_E_NOMEM, "heat: out of memory");
    }
    *out = b->p;
    *len = b->n;
    return VLMN_OK;
}

vlmn_status vlmn_draw_heat_html(const vlmn_trace_sample *s, const float *acts, float neuron_max,
                                const vlmn_heat_opts *o, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    bool all = o && o->all_tokens;
    vlmn_buf b = {0};
    vlmn_buf_adds(&b, "<div class=\"vlmn-heat\" style=\"font-family:monospace;line-height:1.9;white-space:pre-wrap\">");
    bool img_done = false;
    for (int64_t i = 0; i < s->n_tokens; i++) {
        int md = s->modality[i];
        if (md == VLMN_TRACE_VISUAL) {
            if (img_done) continue;
            img_done = true;
            int64_t ni;
            float m = image_max(s, acts, &ni);
            char t[200];
            snprintf(t, sizeof t, "<span title=\"%lld image tokens, max %.4g\" style=\"background:rgba(0,160,0,%.3f);"
                                  "border:1px solid #6a6\">&lt;image&gt;</span>",
                     (long long)ni, (double)m, heat_a(m, neuron_max));
            vlmn_buf_adds(&b, t);
            continue;
        }
        char t[160];
        if (md == VLMN_TRACE_OTHER && !all)
            snprintf(t, sizeof t, "<span title=\"%.4g\" style=\"color:#999\">", (double)acts[i]);
        else
            snprintf(t, sizeof t, "<span title=\"%.4g\" style=\"background:rgba(0,160,0,%.3f)\">", (double)acts[i],
                     heat_a(acts[i], neuron_max));
        vlmn_buf_adds(&b, t);
        add_escaped(&b, s->pieces[i] ? s->pieces[i] : "");
        vlmn_buf_adds(&b, "</span>");
    }
    vlmn_buf_adds(&b, "</div>\n");
    return finish(&b, out, len);
}

vlmn_status vlmn_draw_heat_svg(const vlmn_trace_sample *s, const float *acts, float neuron_max,
                               const vlmn_heat_opts *o, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    bool all = o && o->all_tokens;
    const int W = o && o->svg_width > 0 ? o->svg_width : 800, CW = 8, LH = 22, PAD = 4;
    vlmn_buf body = {0}, b = {0};
    int x = PAD, y = PAD;
    bool img_done = false;
    char t[320];
    for (int64_t i = 0; i < s->n_tokens; i++) {
        int md = s->modality[i];
        const char *piece = s->pieces[i] ? s->pieces[i] : "";
        double a;
        float act = acts[i];
        if (md == VLMN_TRACE_VISUAL) {
            if (img_done) continue;
            img_done = true;
            int64_t ni;
            act = image_max(s, acts, &ni);
            piece = "<image>";
        }
        a = md == VLMN_TRACE_OTHER && !all ? 0 : heat_a(act, neuron_max);
        int wpx = n_chars(piece) * CW + 2;
        if (x + wpx > W - PAD && x > PAD) {
            x = PAD;
            y += LH;
        }
        snprintf(t, sizeof t, "<g><title>%.4g</title><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(0,160,0)\" "
                              "fill-opacity=\"%.3f\"/><text x=\"%d\" y=\"%d\"%s>",
                 (double)act, x, y, wpx, LH - 4, a, x + 1, y + LH - 9,
                 md == VLMN_TRACE_OTHER && !all ? " fill=\"#999\"" : "");
        vlmn_buf_adds(&body, t);
        add_escaped(&body, piece);
        vlmn_buf_adds(&body, "</text></g>\n");
        x += wpx;
    }
    snprintf(t, sizeof t,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" "
             "font-size=\"13\" xml:space=\"preserve\">\n",
             W, y + LH + PAD);
    vlmn_buf_adds(&b, t);
    if (body.p) vlmn_buf_add(&b, body.p, body.n);
    vlmn_buf_adds(&b, "</svg>\n");
    if (body.oom) b.oom = true;
    vlmn_free(body.p);
    return finish(&b, out, len);
}
