/*
 * plot.c - SVG plots of a comparison: units available, held and sold over
 * time under each policy, and genuine fill per policy against its control.
 * Plain SVG written by hand: no library, and the same run gives the same
 * bytes.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define W 720
#define H 360
#define PAD_L 60
#define PAD_R 20
#define PAD_T 40
#define PAD_B 50

static void header(FILE *f, const char *title)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"24\" font-size=\"15\">%s</text>\n",
            W, H, W, H, PAD_L, title);
}

static double x_of(int64_t t_ms, int64_t duration_ms)
{
    return PAD_L + (double)(W - PAD_L - PAD_R) * (double)t_ms / (double)duration_ms;
}

static double y_of(double v, double top)
{
    return PAD_T + (double)(H - PAD_T - PAD_B) * (1.0 - v / top);
}

static void axes(FILE *f, double top, int64_t duration_ms, const char *y_label)
{
    double hours = (double)duration_ms / 3.6e6;
    fprintf(f, "<g stroke=\"#999\">\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
            PAD_L, H - PAD_B, W - PAD_R, H - PAD_B);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n</g>\n", PAD_L, PAD_T, PAD_L,
            H - PAD_B);
    for (int k = 0; k <= 4; k++) {
        double v = top * k / 4.0;
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", PAD_L - 6,
                y_of(v, top) + 4, v);
        double h = hours * k / 4.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0fh</text>\n",
                x_of((int64_t)(h * 3.6e6), duration_ms), H - PAD_B + 18, h);
    }
    fprintf(f, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" "
               "text-anchor=\"middle\">%s</text>\n",
            H / 2, H / 2, y_label);
}

static void series(FILE *f, const sim_result_t *r, const int64_t *v, double top,
                   int64_t duration_ms, const char *color, const char *name, int legend)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (uint32_t i = 0; i < r->samples; i++) {
        fprintf(f, "%.1f,%.1f ", x_of(r->sample_ms[i], duration_ms), y_of((double)v[i], top));
    }
    fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", W - PAD_R - 200 + legend * 70,
            PAD_T - 8, color, name);
}

/* Units available, held and sold over time under one policy. */
static int plot_series(const char *path, const sim_scenario_t *s, const sim_result_t *r)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    double top = 0;
    for (uint32_t k = 0; k < s->sku_count; k++) {
        top += (double)s->skus[k].stock;
    }
    char title[160];
    snprintf(title, sizeof title, "%s under %s: units over time", s->name, r->policy);
    header(f, title);
    axes(f, top, s->duration_ms, "units");
    series(f, r, r->sample_available, top, s->duration_ms, "#2a9d8f", "available", 0);
    series(f, r, r->sample_held, top, s->duration_ms, "#e76f51", "held", 1);
    series(f, r, r->sample_sold, top, s->duration_ms, "#264653", "sold", 2);
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* Genuine units bought per policy, as a share of the same policy without
 * the attack. */
static int plot_fill(const char *path, const sim_scenario_t *s, const sim_result_t *r,
                     const sim_result_t *control, uint32_t count)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    char title[160];
    snprintf(title, sizeof title, "%s: genuine demand served, %% of the same policy unattacked",
             s->name);
    header(f, title);
    double slot = (double)(W - PAD_L - PAD_R) / count;
    for (int k = 0; k <= 4; k++) {
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n", PAD_L - 6,
                y_of(25.0 * k, 100.0) + 4, 25 * k);
    }
    for (uint32_t i = 0; i < count; i++) {
        double whole = (double)control[i].genuine_units_bought;
        double pct = whole > 0 ? 100.0 * (double)r[i].genuine_units_bought / whole : 0;
        double shown = pct > 100 ? 100 : pct;
        double x = PAD_L + slot * i + slot * 0.15;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f%%</text>\n"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                x, y_of(shown, 100.0), slot * 0.7, y_of(0, 100.0) - y_of(shown, 100.0),
                pct >= 90 ? "#2a9d8f" : pct >= 50 ? "#e9c46a" : "#e76f51", x + slot * 0.35,
                y_of(shown, 100.0) - 6, pct, x + slot * 0.35, H - PAD_B + 18, r[i].policy);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

int sim_plot(const char *dir, const sim_scenario_t *s, const sim_result_t *r,
             const sim_result_t *control, uint32_t count)
{
    char path[4096];
    for (uint32_t i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s-%s.svg", dir, s->name, r[i].policy);
        if (r[i].samples < 2 || plot_series(path, s, &r[i]) != 0) {
            return -1;
        }
    }
    if (control == NULL) {
        return 0; /* a live run has no control to measure fill against */
    }
    snprintf(path, sizeof path, "%s/%s-fill.svg", dir, s->name);
    return plot_fill(path, s, r, control, count);
}
