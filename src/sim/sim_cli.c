/*
 * sim_cli.c - `holdfast sim`: runs a scenario under one or more policies,
 * each also without the attack (its control), and reports.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sim.h"

static const char usage[] =
    "usage: holdfast sim [options]\n"
    "\n"
    "  --scenario NAME|FILE  %s (default merch-2020),\n"
    "                      or a JSON file (\"base\": a built-in, then any field)\n"
    "  --policy NAME|FILE  one policy: %s, or a policy document (JSON)\n"
    "  --compare A,B,...   several policies, side by side (default: all of them)\n"
    "  --seed N            the run's seed (default 1): the same seed, the same output\n"
    "  --genuine N         genuine buyers instead of the scenario's (0-10000000)\n"
    "  --attackers N       hoarders instead of the scenario's (0-1000000)\n"
    "  --ablation          the policy (default: default) and the same with each defense\n"
    "                      off in turn: what each one buys against this attack\n"
    "  --json              JSON instead of the table\n"
    "  --out DIR           also write SVG plots there (made if missing): units over time\n"
    "                      per policy, and genuine fill per policy\n"
    "\n"
    "Each policy runs twice: with the scenario's attack and without it (its control),\n"
    "so that \"of ctrl\" says how much of the genuine demand the attack took away.\n"
    "\n"
    "  --live URL          instead, play the scenario against a running server on this\n"
    "                      machine (http://127.0.0.1:PORT; loopback only): its catalog,\n"
    "                      its policy, populations scaled to its stock\n"
    "  --seconds N         a live run's length in wall time, 1-600 (default 120): the\n"
    "                      whole scenario is played in it, the server keeps its own clock\n"
    "  --requests N        at most this many requests, 10-1000000 (default 100000)\n"
    "  --key KEY           the API key to send (default: $HOLDFAST_KEY); the admin key\n"
    "                      also lets the run read the policy\n";

typedef struct {
    const char *scenario;
    char compare[256];
    uint64_t seed;
    bool json;
    bool ablation;
    int64_t genuine, attackers; /* -1: the scenario's */
    const char *out_dir;
    bool compare_given;
    const char *live_url, *key;
    int64_t seconds, requests;
} sim_args_t;

/* A number in [lo, hi], or false. */
static bool number(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi) {
        return false;
    }
    *out = n;
    return true;
}

static int bad(const char *what, const char *value)
{
    fprintf(stderr, "holdfast sim: %s \"%s\" (see holdfast sim --help)\n", what, value);
    return 2;
}

static int parse(int argc, char **argv, sim_args_t *a)
{
    a->scenario = "merch-2020";
    snprintf(a->compare, sizeof a->compare, "none,naive,quantity-cap,default,strict");
    a->seed = 1;
    a->genuine = a->attackers = -1;
    a->seconds = 120;
    a->requests = 100000;
    a->key = getenv("HOLDFAST_KEY");
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(argv[i], "--ablation") == 0) {
            a->ablation = true;
            continue;
        }
        if (v == NULL) {
            return bad("missing a value after", argv[i]);
        }
        if (strcmp(argv[i], "--scenario") == 0) {
            a->scenario = v;
        } else if (strcmp(argv[i], "--policy") == 0 || strcmp(argv[i], "--compare") == 0) {
            if (strlen(v) >= sizeof a->compare) {
                return bad("too long a list of policies", v);
            }
            snprintf(a->compare, sizeof a->compare, "%s", v);
            a->compare_given = true;
        } else if (strcmp(argv[i], "--live") == 0) {
            a->live_url = v;
        } else if (strcmp(argv[i], "--key") == 0) {
            a->key = v;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            if (!number(v, 1, SIM_LIVE_SECONDS_MAX, &a->seconds)) {
                return bad("--seconds must be 1 to 600, not", v);
            }
        } else if (strcmp(argv[i], "--requests") == 0) {
            if (!number(v, SIM_LIVE_REQUESTS_MIN, SIM_LIVE_REQUESTS_MAX, &a->requests)) {
                return bad("--requests must be 10 to 1000000, not", v);
            }
        } else if (strcmp(argv[i], "--out") == 0) {
            a->out_dir = v;
        } else if (strcmp(argv[i], "--genuine") == 0) {
            if (!number(v, 0, SIM_GENUINE_MAX, &a->genuine)) {
                return bad("--genuine must be 0 to 10000000, not", v);
            }
        } else if (strcmp(argv[i], "--attackers") == 0) {
            if (!number(v, 0, SIM_ATTACKERS_MAX, &a->attackers)) {
                return bad("--attackers must be 0 to 1000000, not", v);
            }
        } else if (strcmp(argv[i], "--seed") == 0) {
            char *end;
            errno = 0;
            a->seed = strtoull(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno != 0) {
                return bad("--seed must be a number, not", v);
            }
        } else {
            return bad("unknown option", argv[i]);
        }
        i++;
    }
    return 0;
}

static int policies_of(const char *list, sim_policy_t *out, uint32_t *count)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    *count = 0;
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        if (*count == 8) {
            return bad("at most 8 policies in", list);
        }
        char err[256];
        bool file = strchr(name, '/') != NULL || strstr(name, ".json") != NULL;
        if (file && !sim_policy_file(name, &out[(*count)++], err, sizeof err)) {
            fprintf(stderr, "holdfast sim: %s\n", err);
            return 2;
        }
        if (!file && !sim_policy_builtin(name, &out[(*count)++])) {
            return bad("unknown policy", name);
        }
    }
    return *count == 0 ? bad("no policy in", list) : 0;
}

/* The one policy given, then the same with each defense off in turn. */
static int ablation_of(sim_policy_t *policies, uint32_t *count)
{
    if (*count != 1) {
        return bad("--ablation takes one policy, not", "--compare");
    }
    assert(1 + sim_ablation_count() <= SIM_POLICIES_MAX);
    for (uint32_t i = 0; i < sim_ablation_count(); i++) {
        sim_policy_ablated(&policies[0], i, &policies[1 + i]);
    }
    *count = 1 + sim_ablation_count();
    return 0;
}

/* One run, its wall time on stderr (stdout stays the same for a seed). */
static int timed_run(const sim_scenario_t *s, const sim_policy_t *p, const sim_options_t *o,
                     sim_result_t *r, char *err, size_t err_size)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = sim_run(s, p, o, r, err, err_size);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0) {
        fprintf(stderr, "sim: %s under %s: %llu events in %.2f s\n", s->name, p->name,
                (unsigned long long)r->events,
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    return rc;
}

/* A live run: checks what only applies to one, runs, reports. */
static int live_main(const sim_args_t *a, sim_scenario_t *s)
{
    if (a->compare_given) {
        return bad("a live run plays against the server's own policy: drop", "--policy/--compare");
    }
    if (a->genuine > (int64_t)SIM_LIVE_GENUINE_MAX || a->attackers > (int64_t)SIM_LIVE_ATTACKERS_MAX) {
        fprintf(stderr, "holdfast sim: a live run has at most %u genuine buyers and %u hoarders\n",
                SIM_LIVE_GENUINE_MAX, SIM_LIVE_ATTACKERS_MAX);
        return 2;
    }
    sim_live_options_t lo = {.url = a->live_url, .key = a->key, .seconds = (uint32_t)a->seconds,
                             .requests_max = (uint64_t)a->requests, .genuine = a->genuine,
                             .attackers = a->attackers, .progress = stderr};
    sim_options_t o = {.seed = a->seed, .samples = a->out_dir != NULL ? 97 : 0};
    sim_result_t r;
    sim_live_report_t lr;
    char err[256] = "";
    if (sim_live(s, &lo, &o, &r, &lr, err, sizeof err) != 0) {
        fprintf(stderr, "holdfast sim: %s\n", err);
        sim_result_free(&r);
        return strstr(err, "loopback") != NULL || strstr(err, "not a URL") != NULL ? 2 : 1;
    }
    sim_report_live(stdout, a->json, s, &r, &lr, a->live_url);
    int rc = 0;
    if (a->out_dir != NULL && sim_plot(a->out_dir, s, &r, NULL, 1) != 0) {
        fprintf(stderr, "holdfast sim: cannot write the plots in %s\n", a->out_dir);
        rc = 1;
    }
    sim_result_free(&r);
    return rc;
}

int sim_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(usage, sim_scenario_names(), sim_policy_names());
            return 0;
        }
    }
    sim_args_t a = {0};
    sim_scenario_t attack, control;
    sim_policy_t policies[SIM_POLICIES_MAX];
    uint32_t n;
    int rc = parse(argc, argv, &a);
    char err[256] = "";
    bool file = strchr(a.scenario, '/') != NULL || strstr(a.scenario, ".json") != NULL;
    if (rc == 0 && file && !sim_scenario_file(a.scenario, &attack, err, sizeof err)) {
        fprintf(stderr, "holdfast sim: %s\n", err);
        rc = 2;
    }
    if (rc == 0 && !file && !sim_scenario_builtin(a.scenario, &attack)) {
        rc = bad("unknown scenario", a.scenario);
    }
    if (rc == 0 && a.out_dir != NULL && mkdir(a.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "holdfast sim: cannot make %s: %s\n", a.out_dir, strerror(errno));
        return 1;
    }
    if (rc == 0 && a.live_url != NULL) {
        return live_main(&a, &attack);
    }
    if (rc == 0) {
        rc = policies_of(a.ablation && !a.compare_given ? "default" : a.compare, policies, &n);
    }
    if (rc == 0 && a.ablation) {
        rc = ablation_of(policies, &n);
    }
    if (rc != 0) {
        return rc;
    }
    if (a.genuine >= 0) {
        attack.genuine = (uint32_t)a.genuine;
    }
    if (a.attackers >= 0) {
        attack.attackers = (uint32_t)a.attackers;
    }
    control = attack;
    control.attackers = 0;
    control.scalpers = 0;
    sim_result_t results[SIM_POLICIES_MAX], controls[SIM_POLICIES_MAX];
    sim_options_t o = {.seed = a.seed, .samples = a.out_dir != NULL ? 97 : 0};
    err[0] = '\0';
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (timed_run(&attack, &policies[i], &o, &results[i], err, sizeof err) != 0 ||
            timed_run(&control, &policies[i], &o, &controls[i], err, sizeof err) != 0) {
            fprintf(stderr, "holdfast sim: %s\n", err);
            return 1;
        }
    }
    if (a.json) {
        sim_report_json(stdout, &attack, a.seed, results, n, controls);
    } else {
        sim_report_table(stdout, &attack, results, n, controls);
    }
    if (a.out_dir != NULL && sim_plot(a.out_dir, &attack, results, controls, n) != 0) {
        fprintf(stderr, "holdfast sim: cannot write the plots in %s\n", a.out_dir);
        rc = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        sim_result_free(&results[i]);
        sim_result_free(&controls[i]);
    }
    return rc;
}
