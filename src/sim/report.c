/*
 * report.c - a comparison of runs, as a table for people or JSON for
 * programs. The same figures in both, from sim_result_t.
 */
#include <inttypes.h>
#include <string.h>

#include "sim.h"

/* A share of a whole, in percent; -1 when there is no whole. */
static double pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : -1.0;
}

void sim_report_table(FILE *out, const sim_scenario_t *s, const sim_result_t *r, uint32_t count,
                      const sim_result_t *control)
{
    fprintf(out, "scenario %s: %s\n", s->name, s->story ? s->story : "");
    bool scalpers = s->scalpers > 0; /* their column only where there are some */
    fprintf(out, "%u genuine buyers, %u hoarders, ", s->genuine, s->attackers);
    if (scalpers) {
        fprintf(out, "%u scalpers after %u units each, ", s->scalpers, s->scalper_units);
    }
    fprintf(out, "%u skus, %.1f h\n\n", s->sku_count, (double)s->duration_ms / 3.6e6);
    fprintf(out, "%-14s %9s %8s %9s %9s %9s %9s %9s %9s %9s %9s %10s %9s %10s", "policy",
            "units", "of ctrl", "buyers", "sold-out", "challngd", "proof s", "denied", "burdened",
            "atk u-h", "atk ids", "atk cpu s", "oversold", "revenue");
    fprintf(out, scalpers ? " %9s\n" : "\n", "scalped");
    for (uint32_t i = 0; i < count; i++) {
        const sim_result_t *x = &r[i];
        double of = control ? pct((double)x->genuine_units_bought,
                                  (double)control[i].genuine_units_bought)
                            : -1.0;
        char of_text[16];
        if (of < 0) {
            snprintf(of_text, sizeof of_text, "-");
        } else {
            snprintf(of_text, sizeof of_text, "%.0f%%", of);
        }
        fprintf(out,
                "%-14s %9" PRIu64 " %8s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9.1f %9" PRIu64
                " %9" PRIu64 " %9.0f %9" PRIu64 " %10.0f %9" PRIu64 " %10.2f",
                x->policy, x->genuine_units_bought, of_text, x->genuine_buyers_served,
                x->genuine_saw_sold_out_while_held, x->genuine_challenged, x->genuine_proof_s,
                x->genuine_denied, x->genuine_burdened, x->attacker_unit_hours,
                x->attacker_identities,
                x->attacker_cpu_s, x->oversells, (double)x->revenue_cents / 100.0);
        if (scalpers) {
            fprintf(out, " %9" PRIu64, x->scalper_units_bought);
        }
        fputc('\n', out);
    }
    fprintf(out,
            "\nunits: units genuine buyers bought; of ctrl: of the same policy without the "
            "attack;\nbuyers: genuine buyers served; sold-out: buyers told \"sold out\" while "
            "units sat in holds;\nchallngd/denied: genuine buyers asked a proof of work / refused "
            "by a rule;\nburdened: genuine buyers refused by a rule or kept over a second by proofs;\n"
            "proof s: browser seconds all genuine buyers spent on proofs;\n"
            "atk u-h: units held by hoarders x hours; atk ids: identities they used;\n"
            "atk cpu s: CPU seconds they spent on proofs; oversold: paid, then refunded (no "
            "holds).\n");
    if (scalpers) {
        fprintf(out, "scalped: units scalper bots bought (to resell; their money counts in "
                     "revenue).\n");
    }
}

static void json_result(FILE *out, const sim_result_t *x, const sim_result_t *control);

void sim_report_live(FILE *out, bool json, const sim_scenario_t *s, const sim_result_t *r,
                     const sim_live_report_t *lr, const char *url)
{
    if (json) {
        fprintf(out,
                "{\"scenario\": \"%s\", \"live\": {\"url\": \"%s\", \"speed\": %.3f, "
                "\"wall_s\": %.3f, \"policy_read\": %s, \"stopped_at_requests\": %s, "
                "\"requests\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"status_2xx\": %" PRIu64
                ", \"status_4xx\": %" PRIu64 ", \"status_5xx\": %" PRIu64
                ", \"proofs_solved\": %" PRIu64 ", \"proof_wall_s\": %.3f}, \"genuine\": %u, "
                "\"attackers\": %u, \"duration_ms\": %" PRId64 ", \"results\": [\n  ",
                s->name, url, lr->speed, lr->wall_s, lr->policy_read ? "true" : "false",
                lr->stopped_at_requests ? "true" : "false", lr->requests, lr->failed,
                lr->status[2], lr->status[4], lr->status[5], lr->proofs_solved, lr->proof_wall_s,
                s->genuine, s->attackers, s->duration_ms);
        json_result(out, r, NULL);
        fprintf(out, "]}\n");
        return;
    }
    fprintf(out, "live against %s: %.1f h of the scenario in %.1f s (x%.0f)%s\n", url,
            (double)s->duration_ms / 3.6e6, lr->wall_s, lr->speed,
            lr->stopped_at_requests ? ", stopped at the request limit" : "");
    fprintf(out, "the server's policy%s; %" PRIu64 " requests: %" PRIu64 " 2xx, %" PRIu64
            " 4xx, %" PRIu64 " 5xx, %" PRIu64 " failed; %" PRIu64 " proofs solved (%.1f s)\n",
            lr->policy_read ? "" : " (not readable without the admin key: defaults assumed)",
            lr->requests, lr->status[2], lr->status[4], lr->status[5], lr->failed,
            lr->proofs_solved, lr->proof_wall_s);
    if (lr->failed > 0) {
        fprintf(out, "last failure: %s\n", lr->last_error);
    }
    sim_report_table(out, s, r, 1, NULL);
}

static void json_result(FILE *out, const sim_result_t *x, const sim_result_t *control)
{
    fprintf(out,
            "{\"policy\": \"%s\", \"genuine_buyers\": %" PRIu64 ", \"genuine_units_wanted\": %" PRIu64
            ", \"genuine_units_bought\": %" PRIu64 ", \"genuine_buyers_served\": %" PRIu64
            ", \"genuine_saw_sold_out_while_held\": %" PRIu64 ", \"genuine_challenged\": %" PRIu64
            ", \"genuine_denied\": %" PRIu64 ", \"genuine_burdened\": %" PRIu64
            ", \"genuine_waitlisted\": %" PRIu64
            ", \"genuine_served_from_waitlist\": %" PRIu64 ", \"genuine_proof_s\": %.3f"
            ", \"attacker_unit_hours\": %.3f, \"attacker_holds\": %" PRIu64
            ", \"attacker_identities\": %" PRIu64 ", \"attacker_denied\": %" PRIu64
            ", \"attacker_challenged\": %" PRIu64 ", \"attacker_cpu_s\": %.3f"
            ", \"oversells\": %" PRIu64 ", \"revenue_cents\": %" PRId64 ", \"units_sold\": %" PRIu64
            ", \"events\": %" PRIu64 ", \"scalper_units_bought\": %" PRIu64,
            x->policy, x->genuine_buyers, x->genuine_units_wanted, x->genuine_units_bought,
            x->genuine_buyers_served, x->genuine_saw_sold_out_while_held, x->genuine_challenged,
            x->genuine_denied, x->genuine_burdened, x->genuine_waitlisted,
            x->genuine_served_from_waitlist,
            x->genuine_proof_s, x->attacker_unit_hours, x->attacker_holds,
            x->attacker_identities, x->attacker_denied, x->attacker_challenged, x->attacker_cpu_s,
            x->oversells, x->revenue_cents, x->units_sold, x->events, x->scalper_units_bought);
    if (control != NULL) {
        /* The same run without the attack, whole: its burden counts too. */
        fprintf(out, ", \"control_units_bought\": %" PRIu64 ", \"control\": ",
                control->genuine_units_bought);
        json_result(out, control, NULL);
    }
    fprintf(out, "}");
}

void sim_report_json(FILE *out, const sim_scenario_t *s, uint64_t seed, const sim_result_t *r,
                     uint32_t count, const sim_result_t *control)
{
    fprintf(out,
            "{\"scenario\": \"%s\", \"seed\": %" PRIu64 ", \"genuine\": %u, \"attackers\": %u, "
            "\"scalpers\": %u, \"duration_ms\": %" PRId64 ", \"results\": [",
            s->name, seed, s->genuine, s->attackers, s->scalpers, s->duration_ms);
    for (uint32_t i = 0; i < count; i++) {
        fprintf(out, "%s\n  ", i ? "," : "");
        json_result(out, &r[i], control ? &control[i] : NULL);
    }
    fprintf(out, "]}\n");
}
