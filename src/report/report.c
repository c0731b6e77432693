/* The HTML report of a classified run (vlmn report): Figures 5-7 and Table 3 of the paper
 * as inline SVG, the most confident neurons of each type with their top samples, and the
 * run's provenance, in one index.html that opens from disk without any network access. */
#include "vlmn/report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "report/svg.h"

#define REPORT_MAX_IMAGE_BYTES (32u << 20)

static const char *const type_name[VLMN_NT_COUNT] = {"visual", "text", "multi-modal", "unknown"};
static const char *const type_sym[VLMN_NT_COUNT] = {"p<sub>v</sub>", "p<sub>t</sub>", "p<sub>m</sub>",
                                                    "p<sub>u</sub>"};
static const char *const type_sym_plain[VLMN_NT_COUNT] = {"p_v", "p_t", "p_m", "p_u"};
static const char *const type_color[VLMN_NT_COUNT] = {"#3a78b5", "#3b9a48", "#8e5db8", "#8a8a8a"};

void vlmn_report_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        switch (ch) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* Control characters are not allowed in HTML text; show them as '?'. */
            fputc(ch < 0x20 && ch != '\n' && ch != '\t' ? '?' : ch, f);
        }
    }
}

static const char css[] =
    "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#222;margin:0;background:#fafafa}"
    "main{max-width:1160px;margin:0 auto;padding:18px 28px 40px;background:#fff}"
    "h1{font-size:26px;margin:6px 0 4px}h2{font-size:20px;margin:30px 0 8px;border-bottom:1px solid #ddd;"
    "padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}"
    "p.sub{color:#555;margin:0 0 10px}nav a{margin-right:14px;color:#2a5d9f}"
    ".grid{display:grid;grid-template-columns:repeat(2,1fr);gap:8px 18px}"
    "figure{margin:0}figcaption,p.caption{font-size:14px;color:#333;margin:6px 0 0;line-height:1.45}"
    "svg.chart{max-width:100%;height:auto;background:#fff}"
    "svg .ct{font-size:13px;font-weight:bold;fill:#222}svg .tk{font-size:11px;fill:#333}"
    "svg .at{font-size:12px;fill:#222}svg .an{font-size:10px;fill:#444}"
    "svg .ax{stroke:#333;stroke-width:1}svg .grid{stroke:#e4e4e4;stroke-width:1}"
    "table{border-collapse:collapse;font-size:13px;margin:6px 0}"
    "th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f1f1f1}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".kv td:first-child{font-weight:bold;white-space:nowrap}.kv td{word-break:break-all}"
    ".samples span{display:inline-block;margin:0 6px 2px 0;text-align:center;font-size:11px;max-width:76px;"
    "vertical-align:top}.samples i{display:block;font-style:normal;color:#666;font-size:10px;word-break:break-all}"
    ".samples img{width:64px;height:64px;object-fit:cover;display:block;border:1px solid #ccc}"
    ".sw{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px}";

static double pct(int64_t k, int64_t n) { return n > 0 ? 100.0 * (double)k / (double)n : 0.0; }

static void write_rule(FILE *f, const vlmn_classification *c)
{
    const vlmn_classify_params *p = &c->params;
    fprintf(f,
            "<section id=\"rule\"><h2>How neurons are classified</h2><p>For each neuron, its activations are "
            "normalised to 0&#8211;10 by its maximum over the whole dataset (%s). On each of the neuron's top "
            "samples, the sample is <i>visual-activated</i> when more than n<sub>v</sub> = %d image tokens have a "
            "normalised activation above T<sub>v</sub> = %g, and <i>text-activated</i> when more than "
            "n<sub>t</sub> = %d text tokens are above T<sub>t</sub> = %g. A sample is visual (visual-activated "
            "only), text (text-activated only), multi-modal (both) or unknown (neither). The fractions of the four "
            "kinds among the neuron's top samples are its probabilities (p<sub>v</sub>, p<sub>t</sub>, "
            "p<sub>m</sub>, p<sub>u</sub>), and its class is the most probable type (a tie goes to the less "
            "specific type: unknown, then multi-modal, then text, then visual).</p></section>\n",
            p->norm == VLMN_NORM_FLOOR ? "floor(10&#183;a / max), as Bills et al."
                                       : "10&#183;a / max, not rounded",
            p->n_v, p->t_v, p->n_t, p->t_t);
}

static void write_fig5(FILE *f, const vlmn_stats *s)
{
    static const char *const edges[VLMN_STATS_BINS + 1] = {"0", "0.1", "0.2", "0.3", "0.4", "0.5",
                                                           "0.6", "0.7", "0.8", "0.9", "1"};
    static const char *const letters = "abcd";
    char all[32];
    fputs("<section id=\"fig5\"><h2>Probability of each neuron type</h2><figure><div class=\"grid\">\n", f);
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        double v[VLMN_STATS_BINS];
        char ann[VLMN_STATS_BINS][32];
        const char *annp[VLMN_STATS_BINS];
        for (int k = 0; k < VLMN_STATS_BINS; k++) {
            v[k] = (double)s->hist[t][k];
            svg_fmt_count(ann[k], sizeof ann[k], s->hist[t][k]);
            annp[k] = ann[k];
        }
        char title[128], xt[96];
        snprintf(title, sizeof title, "(%c) %s: %.1f%% of neurons have %s > %.1f", letters[t], type_name[t],
                 pct(s->above[t], s->n_neurons), type_sym_plain[t], s->above_threshold);
        snprintf(xt, sizeof xt, "probability %s of being a%s %s neuron", type_sym_plain[t],
                 t == VLMN_NT_UNKNOWN ? "n" : "", type_name[t]);
        svg_bar_chart ch = {.title = title, .x_title = xt, .y_title = "number of neurons", .n = VLMN_STATS_BINS,
                            .values = v, .edge_labels = edges, .annotations = annp, .color = type_color[t],
                            .width = 560, .height = 300};
        svg_bar_chart_write(f, &ch);
    }
    fprintf(f,
            "</div><figcaption><b>Figure 5.</b> Histogram for the probability p<sub>v</sub>, p<sub>t</sub>, "
            "p<sub>m</sub> and p<sub>u</sub> of belonging to the visual, text, multi-modal and unknown neuron "
            "types, over all %s neurons. Bins of 0.1: [0, 0.1), [0.1, 0.2), &#8230;, [0.9, 1] (the last bin "
            "includes 1). Neurons with probability above %.1f: visual %.1f%%, text %.1f%%, multi-modal %.1f%%, "
            "unknown %.1f%% (the paper reports 5.4%%, 14.2%%, 5.5%% and 5.7%% for LLaVA-1.5-7B)."
            "</figcaption></figure></section>\n",
            svg_fmt_count(all, sizeof all, s->n_neurons), s->above_threshold, pct(s->above[0], s->n_neurons),
            pct(s->above[1], s->n_neurons), pct(s->above[2], s->n_neurons), pct(s->above[3], s->n_neurons));
}

static void write_fig6(FILE *f, const vlmn_stats *s)
{
    static const char *const cats[VLMN_NT_COUNT] = {"visual-prone", "text-prone", "multimodal-prone", "unknown"};
    double v[VLMN_NT_COUNT];
    char ann[VLMN_NT_COUNT][48];
    const char *annp[VLMN_NT_COUNT];
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char cnt[32];
        v[t] = (double)s->label_count[t];
        snprintf(ann[t], sizeof ann[t], "%s (%.1f%%)", svg_fmt_count(cnt, sizeof cnt, s->label_count[t]),
                 pct(s->label_count[t], s->n_neurons));
        annp[t] = ann[t];
    }
    fputs("<section id=\"fig6\"><h2>Class distribution</h2><figure>\n", f);
    svg_bar_chart ch = {.title = "Neurons per class (most probable type)", .x_title = "neuron class",
                        .y_title = "number of neurons", .n = VLMN_NT_COUNT, .values = v, .cat_labels = cats,
                        .label_every = 1, .annotations = annp, .colors = type_color, .width = 620, .height = 320};
    svg_bar_chart_write(f, &ch);
    fputs("<figcaption><b>Figure 6.</b> Distribution of the four types of neurons (visual-prone, text-prone, "
          "multimodal-prone and unknown neurons) when the determination of the neuron type is treated as a "
          "classification problem: each neuron is given the type of highest probability.</figcaption>"
          "</figure></section>\n",
          f);
}

static void write_fig7(FILE *f, const vlmn_stats *s)
{
    static const char *const letters = "abcd";
    double *v = vlmn_malloc((size_t)s->n_layers * sizeof *v);
    char (*lab)[16] = vlmn_malloc((size_t)s->n_layers * sizeof *lab);
    const char **labp = vlmn_malloc((size_t)s->n_layers * sizeof *labp);
    fputs("<section id=\"fig7\"><h2>Neuron types across layers</h2><figure><div class=\"grid\">\n", f);
    if (v && lab && labp) {
        for (int l = 0; l < s->n_layers; l++) {
            snprintf(lab[l], sizeof lab[l], "%d", l);
            labp[l] = lab[l];
        }
        for (int t = 0; t < VLMN_NT_COUNT; t++) {
            for (int l = 0; l < s->n_layers; l++) v[l] = (double)s->per_layer[t][l];
            char title[96];
            snprintf(title, sizeof title, "(%c) %s neurons", letters[t], type_name[t]);
            svg_bar_chart ch = {.title = title, .x_title = "layer", .y_title = "number of neurons",
                                .n = s->n_layers, .values = v, .cat_labels = labp, .color = type_color[t],
                                .width = 560, .height = 280};
            svg_bar_chart_write(f, &ch);
        }
    } else {
        fputs("<p>(out of memory drawing this figure)</p>", f);
    }
    char k[32], all[32];
    fprintf(f,
            "</div><figcaption><b>Figure 7.</b> The distribution of special neurons over different layers. "
            "(a)&#8211;(d): for each type, the top %g%% of all neurons (%s of %s) ranked by that type's "
            "probability (ties: lower layer, then lower neuron index first), counted per layer. The horizontal "
            "axis is the model layer, from 0 to %d; the vertical axis the number of selected neurons in that "
            "layer. Lowest selected probability:",
            100 * s->top_frac, svg_fmt_count(k, sizeof k, s->top_k), svg_fmt_count(all, sizeof all, s->n_neurons),
            s->n_layers - 1);
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char a[32], b[32];
        fprintf(f, " %s %.2f", type_sym[t], s->top_min_p[t]);
        if (s->top_tied[t] > s->top_tied_in[t])
            fprintf(f, " (%s of the %s neurons at this value selected)", svg_fmt_count(a, sizeof a, s->top_tied_in[t]),
                    svg_fmt_count(b, sizeof b, s->top_tied[t]));
        fputs(t < VLMN_NT_COUNT - 1 ? "," : ".", f);
    }
    fputs("</figcaption></figure></section>\n", f);
    vlmn_free(v);
    vlmn_free(lab);
    vlmn_free(labp);
}

static void write_prune(FILE *f, const vlmn_stats *s)
{
    fputs("<section id=\"prune\"><h2>Pruning candidates</h2><table><tr><th>neurons with</th><th>count</th>"
          "<th>share of all neurons</th></tr>\n",
          f);
    for (int k = 0; k < VLMN_STATS_N_PRUNE; k++) {
        char c[32];
        fprintf(f, "<tr><td>p<sub>u</sub> &#8805; %.1f</td><td class=\"n\">%s</td><td class=\"n\">%.1f%%</td></tr>\n",
                s->prune_tau[k], svg_fmt_count(c, sizeof c, s->prune_count[k]), pct(s->prune_count[k], s->n_neurons));
    }
    fputs("</table><p class=\"caption\"><b>Table 3 (Appendix B.1).</b> Neurons whose probability of being unknown "
          "is at least &#964;; the paper prunes them (3.2% to 14.6% of LLaVA-1.5-7B's neurons for &#964; = 0.9 "
          "to 0.6) and finds a smaller drop in VQA accuracy than pruning as many random neurons.</p></section>\n",
          f);
}

/* Keep the extension of an image path when it is short and alphanumeric. */
static void image_ext(const char *path, char *ext, size_t n)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    snprintf(ext, n, "img");
    if (!dot || (slash && dot < slash) || strlen(dot + 1) > 5 || !dot[1]) return;
    for (const char *p = dot + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return;
    snprintf(ext, n, "%s", dot + 1);
}

/* JPEG, PNG, GIF, WebP or BMP by their first bytes: a report may be shared, so a path in
 * the run database never gets an arbitrary file copied into it. */
static int looks_like_image(const unsigned char *h, ssize_t n)
{
    return (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) ||
           (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8)) || (n >= 6 && !memcmp(h, "GIF8", 4)) ||
           (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4)) || (n >= 2 && h[0] == 'B' && h[1] == 'M');
}

static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, ok = 0;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)REPORT_MAX_IMAGE_BYTES)
        goto done;
    char buf[65536];
    ssize_t r = read(in, buf, sizeof buf);
    if (!looks_like_image((const unsigned char *)buf, r)) goto done;
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) goto done;
    do
        if (write(out, buf, (size_t)r) != r) goto done;
    while ((r = read(in, buf, sizeof buf)) > 0);
    ok = r == 0;
done:
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0) ok = 0;
    if (!ok && out >= 0) unlink(dst);
    return ok;
}

struct copied {
    int64_t *sample;
    char (*name)[48];
    int n, cap;
};

/* The image of a sample copied into dir/img/ (once); its relative name or NULL. */
static const char *image_for(struct copied *cp, const char *dir, const vlmn_report_sample *s)
{
    for (int i = 0; i < cp->n; i++)
        if (cp->sample[i] == s->sample) return cp->name[i][0] ? cp->name[i] : NULL;
    if (cp->n == cp->cap) return NULL;
    int i = cp->n++;
    cp->sample[i] = s->sample;
    cp->name[i][0] = 0;
    if (!s->image[0]) return NULL;
    char ext[8], name[48], dst[4096], imgdir[4096];
    image_ext(s->image, ext, sizeof ext);
    snprintf(name, sizeof name, "img/%lld.%s", (long long)s->sample, ext);
    snprintf(imgdir, sizeof imgdir, "%s/img", dir);
    if (mkdir(imgdir, 0777) != 0 && errno != EEXIST) return NULL;
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    if (!copy_file(s->image, dst)) return NULL;
    memcpy(cp->name[i], name, sizeof name);
    return cp->name[i];
}

static vlmn_status write_neurons(FILE *f, const char *dir, const vlmn_report_input *in)
{
    const vlmn_classification *c = in->cls;
    int64_t n = (int64_t)c->n_layers * c->n_ff;
    int64_t k = in->n_confident > 0 ? in->n_confident : 10;
    if (k > n) k = n;
    vlmn_status st = VLMN_OK;
    int64_t *idx = vlmn_malloc((size_t)k * sizeof *idx);
    struct copied cp = {0};
    cp.cap = (int)(VLMN_NT_COUNT * k * VLMN_REPORT_MAX_SAMPLES);
    cp.sample = vlmn_malloc((size_t)cp.cap * sizeof *cp.sample);
    cp.name = vlmn_malloc((size_t)cp.cap * sizeof *cp.name);
    if (!idx || !cp.sample || !cp.name) {
        st = vlmn_error(VLMN_E_NOMEM, "report: out of memory");
        goto done;
    }
    fputs("<section id=\"neurons\"><h2>Most confident neurons of each type</h2>\n", f);
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        if ((st = vlmn_stats_rank(c, t, k, idx))) goto done;
        fprintf(f, "<h3><span class=\"sw\" style=\"background:%s\"></span>%s neurons (highest %s)</h3>\n",
                type_color[t], type_name[t], type_sym[t]);
        fprintf(f, "<table><tr><th>#</th><th>layer</th><th>neuron</th><th>%s</th><th>class</th>"
                   "<th>p<sub>v</sub> / p<sub>t</sub> / p<sub>m</sub> / p<sub>u</sub></th><th>max act.</th>"
                   "<th>top samples (dataset index, max activation, id)</th></tr>\n",
                type_sym[t]);
        for (int64_t r = 0; r < k; r++) {
            const vlmn_neuron_class *nc = &c->neurons[idx[r]];
            int layer = (int)(idx[r] / c->n_ff), neuron = (int)(idx[r] % c->n_ff);
            fprintf(f,
                    "<tr><td class=\"n\">%lld</td><td class=\"n\">%d</td><td class=\"n\">%d</td>"
                    "<td class=\"n\">%.2f</td><td>%s</td><td>%.2f / %.2f / %.2f / %.2f</td><td class=\"n\">%.4g</td>"
                    "<td class=\"samples\">",
                    (long long)r + 1, layer, neuron, vlmn_neuron_p(nc, t), vlmn_ntype_name(nc->label),
                    vlmn_neuron_p(nc, 0), vlmn_neuron_p(nc, 1), vlmn_neuron_p(nc, 2), vlmn_neuron_p(nc, 3),
                    (double)nc->max_act);
            vlmn_report_sample smp[VLMN_REPORT_MAX_SAMPLES];
            int ns = in->samples ? in->samples(in->ctx, layer, neuron, smp, VLMN_REPORT_MAX_SAMPLES) : 0;
            if (ns > VLMN_REPORT_MAX_SAMPLES) ns = VLMN_REPORT_MAX_SAMPLES;
            for (int i = 0; i < ns; i++) {
                smp[i].id[sizeof smp[i].id - 1] = 0;
                smp[i].image[sizeof smp[i].image - 1] = 0;
                const char *img = image_for(&cp, dir, &smp[i]);
                fputs("<span title=\"", f);
                if (smp[i].id[0]) {
                    fputs("id ", f);
                    vlmn_report_escape(f, smp[i].id);
                }
                if (smp[i].image[0]) {
                    fputs(smp[i].id[0] ? ", " : "", f);
                    vlmn_report_escape(f, smp[i].image);
                }
                fputs("\">", f);
                if (img) {
                    fputs("<img alt=\"sample image\" src=\"", f);
                    vlmn_report_escape(f, img);
                    fputs("\">", f);
                }
                fprintf(f, "#%lld, %.3g", (long long)smp[i].sample, (double)smp[i].max_act);
                if (smp[i].id[0]) {
                    fputs("<i>", f);
                    vlmn_report_escape(f, smp[i].id);
                    fputs("</i>", f);
                }
                fputs("</span>", f);
            }
            if (ns == 0) fputs("&#8211;", f);
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("</section>\n", f);
done:
    vlmn_free(idx);
    vlmn_free(cp.sample);
    vlmn_free(cp.name);
    return st;
}

/* Table 2 as `vlmn stats --table2` prints it, and the scored explanations of each type
 * (the caller passes them best first). */
static void write_num(FILE *f, double v)
{
    if (isnan(v)) fputs("<td class=\"n\">&#8211;</td>", f);
    else fprintf(f, "<td class=\"n\">%.3f</td>", v);
}

/* The LLM-free labels (vlmn label): each listed neuron's rank-1 concept next to its
 * best-scored other explanation. */
static void write_labels(FILE *f, const vlmn_report_input *in)
{
    static const char *const kinds[2] = {"visual", "multimodal"};
    for (int k = 0; k < 2; k++) {
        int shown = 0;
        for (int i = 0; i < in->n_labels; i++) {
            const vlmn_report_label *l = &in->labels[i];
            if (!l->kind || strcmp(l->kind, kinds[k])) continue;
            if (!shown++)
                fprintf(f, "<h3 id=\"labels-%s\">Labels of %s neurons</h3><table class=\"labels\"><tr><th>layer</th>"
                           "<th>neuron</th><th>label</th><th>r</th><th>held-out score</th><th>CLIP</th>"
                           "<th>samples</th><th>explanation</th><th>explainer</th><th>score</th></tr>\n",
                        kinds[k], k == 0 ? "visual" : "multi-modal");
            fprintf(f, "<tr><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"expl\">", l->layer, l->neuron);
            vlmn_report_escape(f, l->concept ? l->concept : "");
            fputs("</td>", f);
            write_num(f, l->score);
            write_num(f, l->heldout);
            fputs("<td>", f);
            vlmn_report_escape(f, l->clip ? l->clip : "");
            fprintf(f, "</td><td>%d (", l->n_samples);
            vlmn_report_escape(f, l->samples && l->samples[0] ? l->samples : "?");
            fputs(")</td><td class=\"expl\">", f);
            vlmn_report_escape(f, l->explanation ? l->explanation : "");
            fputs("</td><td>", f);
            vlmn_report_escape(f, l->explainer ? l->explainer : "");
            fputs("</td>", f);
            if (l->explanation) write_num(f, l->expl_score);
            else fputs("<td></td>", f);
            fputs("</tr>\n", f);
        }
        if (shown) fputs("</table>\n", f);
    }
    fputs("<p class=\"caption\"><b>Labels.</b> LLM-free labels from <code>vlmn label</code>, best first: the concept "
          "(from the concept list) whose CLIP patch-similarity map (MaskCLIP, calibrated as 10 &#183; clamp(cos, 0, 1)) "
          "correlates best with the neuron's real activations; <i>r</i> is that Pearson correlation over the image "
          "tokens of the samples it was chosen on, so it is not held out. <i>Held-out score</i>: the label stored as "
          "an explanation (<code>--as-explanations</code>, explainer label:CLIP, chosen on ranks 1, 5, 9, 13, 17), "
          "simulated and scored like the LLM explanations, Pearson r on ranks 3, 7, 11, 15, 19 (the best over "
          "simulators). <i>Explanation</i>: the neuron's best-scored other explanation and its score.</p>\n",
          f);
}

static void write_explanations(FILE *f, const vlmn_report_input *in)
{
    fputs("<section id=\"explanations\"><h2>Explanations and their scores</h2>\n", f);
    if (in->table2) {
        fputs("<pre class=\"t2\">", f);
        vlmn_report_escape(f, in->table2);
        fputs("</pre><p class=\"caption\"><b>Table 2.</b> Mean explanation score (Pearson r of simulated and real "
              "activations, paper A.3) per neuron type, for explanations from the top samples (ranks 1, 5, 9, 13, 17) "
              "and from 5 random samples, simulated on ranks 3, 7, 11, 15, 19.</p>\n",
              f);
    }
    static const char *const kinds[3] = {"visual", "text", "multimodal"};
    for (int k = 0; k < 3; k++) {
        int shown = 0;
        for (int i = 0; i < in->n_expl; i++) {
            const vlmn_report_expl *e = &in->expl[i];
            if (!e->kind || strcmp(e->kind, kinds[k])) continue;
            if (!shown++)
                fprintf(f, "<h3>%s neurons</h3><table><tr><th>layer</th><th>neuron</th><th>sampling</th>"
                           "<th>explainer</th><th>simulator</th><th>explanation</th><th>score</th></tr>\n",
                        k == 0 ? "Visual" : k == 1 ? "Text" : "Multi-modal");
            fprintf(f, "<tr><td class=\"n\">%d</td><td class=\"n\">%d</td><td>", e->layer, e->neuron);
            vlmn_report_escape(f, e->sampling ? e->sampling : "");
            fputs("</td><td>", f);
            vlmn_report_escape(f, e->explainer ? e->explainer : "");
            fputs("</td><td>", f);
            vlmn_report_escape(f, e->simulator ? e->simulator : "");
            fputs("</td><td class=\"expl\">", f);
            vlmn_report_escape(f, e->text ? e->text : "");
            if (isnan(e->score)) fputs("</td><td class=\"n\">undefined</td></tr>\n", f);
            else fprintf(f, "</td><td class=\"n\">%.3f</td></tr>\n", e->score);
        }
        if (shown) fputs("</table>\n", f);
    }
    if (in->n_labels > 0) write_labels(f, in);
    fputs("</section>\n", f);
}

static void write_provenance(FILE *f, const vlmn_report_input *in)
{
    const vlmn_classify_params *p = &in->cls->params;
    fputs("<section id=\"provenance\"><h2>Provenance</h2><table class=\"kv\">\n", f);
    for (int i = 0; i < in->n_provenance; i++) {
        fputs("<tr><td>", f);
        vlmn_report_escape(f, in->provenance[i].key);
        fputs("</td><td>", f);
        vlmn_report_escape(f, in->provenance[i].value);
        fputs("</td></tr>\n", f);
    }
    fprintf(f,
            "<tr><td>classification</td><td>T_v=%g n_v=%d T_t=%g n_t=%d normalize=%s</td></tr>\n"
            "<tr><td>report</td><td>vlmn %s</td></tr></table></section>\n",
            p->t_v, p->n_v, p->t_t, p->n_t, vlmn_norm_name(p->norm), vlmn_version());
}

static vlmn_status write_page(FILE *f, const char *dir, const vlmn_report_input *in)
{
    const vlmn_stats *s = in->stats;
    const char *title = in->title ? in->title : "run";
    char when[32], cnt[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>vlmn report: ",
          f);
    vlmn_report_escape(f, title);
    fprintf(f, "</title><style>%s</style></head><body><main>\n<h1>Neuron types of ", css);
    vlmn_report_escape(f, title);
    fprintf(f,
            "</h1><p class=\"sub\">%s neurons (%d layers &#215; %d FFN neurons), classified as visual, text, "
            "multi-modal or unknown following &#8220;Deciphering Functions of Neurons in Vision-Language "
            "Models&#8221; (sections 3.2, 4.3, 4.4). Generated by vlmn %s on %s.</p>\n",
            svg_fmt_count(cnt, sizeof cnt, s->n_neurons), s->n_layers, s->n_ff, vlmn_version(), when);
    fputs("<nav><a href=\"#rule\">rule</a><a href=\"#fig5\">Figure 5</a><a href=\"#fig6\">Figure 6</a>"
          "<a href=\"#fig7\">Figure 7</a><a href=\"#prune\">Table 3</a><a href=\"#neurons\">neurons</a>",
          f);
    bool expl = in->table2 || in->n_expl > 0 || in->n_labels > 0;
    if (expl) fputs("<a href=\"#explanations\">explanations</a>", f);
    fputs("<a href=\"#provenance\">provenance</a></nav>\n", f);
    write_rule(f, in->cls);
    write_fig5(f, s);
    write_fig6(f, s);
    write_fig7(f, s);
    write_prune(f, s);
    vlmn_status st = write_neurons(f, dir, in);
    if (st) return st;
    if (expl) write_explanations(f, in);
    write_provenance(f, in);
    fputs("</main></body></html>\n", f);
    return VLMN_OK;
}

vlmn_status vlmn_report_write(const char *dir, const vlmn_report_input *in)
{
    if (!in || !in->cls || !in->stats || in->stats->n_layers != in->cls->n_layers ||
        in->stats->n_ff != in->cls->n_ff)
        return vlmn_error(VLMN_E_ARG, "report: classification and statistics do not match");
    struct stat st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return vlmn_error(VLMN_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return vlmn_error(VLMN_E_IO, "%s: not a directory", dir);
    char tmp[4096], path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/index.html", dir) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/index.html.tmp", dir) >= sizeof tmp)
        return vlmn_error(VLMN_E_ARG, "%s: path too long", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    vlmn_status s = write_page(f, dir, in);
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
    if (fclose(f) != 0) bad = 1;
    if (!s && bad) s = vlmn_error(VLMN_E_IO, "%s: write failed", tmp);
    if (!s && rename(tmp, path) != 0) s = vlmn_error(VLMN_E_IO, "%s: rename failed: %s", path, strerror(errno));
    if (s) unlink(tmp);
    return s;
}

void vlmn_report_write_figures(FILE *f, const vlmn_stats *s)
{
    write_fig5(f, s);
    write_fig6(f, s);
    write_fig7(f, s);
    write_prune(f, s);
}

const char *vlmn_report_css(void) { return css; }
