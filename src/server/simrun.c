/*
 * simrun.c - the dashboard's attack panel: one bounded `holdfast sim --live`
 * run against this very server, started, watched and stopped over the API
 * (admin):
 *
 *   POST   /v1/sim  {"scenario": "merch-2020", "seconds": 60}  -> 202, the run
 *   GET    /v1/sim                                             -> the run
 *   DELETE /v1/sim                                             -> stops it
 *
 * The run's genuine buyers pay, so its purchases are real sales: the three
 * routes answer only on a server started for a demo (--attack-panel on,
 * "attack_panel": true; make demo), and otherwise 403 forbidden with
 * "reason": "attack_panel_off", which is also how the dashboard learns to
 * hide the panel. `holdfast sim --live` itself is an ordinary client, with
 * the same limits as any other.
 *
 * The run is a child process (this binary, `sim --live URL --json`), so it
 * talks HTTP to the server like any client and cannot touch its memory; the
 * URL is the server's own loopback address, and the admin key goes in the
 * child's environment, not its command line. One run at a time, at most
 * SIM_LIVE_SECONDS_MAX seconds and the simulator's own request bound; a
 * reader thread keeps its last progress line and its report (at most
 * SIM_RUN_OUTPUT_BYTES_MAX), and shutdown stops it.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simrun.h"
#include "hf_thread.h"
#include "sim.h"

#define SIM_RUN_OUTPUT_BYTES_MAX (256 * 1024)

static const char *const state_names[] = {"idle",     "running", "stopping",
                                          "finished", "failed",  "stopped"};

/* ------------------------------------------------------------ the child */

/* Appends a pipe's bytes to out (at most max); false at end of file. */
static bool drain_pipe(int fd, char **out, size_t *len, size_t max)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) {
        return n < 0 && errno == EINTR;
    }
    size_t take = *len + (size_t)n > max ? max - *len : (size_t)n;
    char *grown = realloc(*out, *len + take + 1);
    if (grown != NULL) {
        memcpy(grown + *len, chunk, take);
        *len += take;
        grown[*len] = '\0';
        *out = grown;
    }
    return true;
}

/* The last complete line of text, into out. */
static void last_line(const char *text, size_t len, char *out, size_t size)
{
    while (len > 0 && text[len - 1] == '\n') {
        len--;
    }
    size_t start = len;
    while (start > 0 && text[start - 1] != '\n') {
        start--;
    }
    snprintf(out, size, "%.*s", (int)(len - start), text + start);
}

/* Reads the child's output until it ends, then reaps it. */
static void *reader(void *arg)
{
    server_t *s = arg;
    hf_thread_name("hf-simrun");
    sim_run_t *run = &s->sim;
    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    struct pollfd p[2] = {{.fd = run->out_fd, .events = POLLIN}, {.fd = run->err_fd, .events = POLLIN}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                !drain_pipe(p[i].fd, i == 0 ? &out : &err, i == 0 ? &out_len : &err_len,
                            SIM_RUN_OUTPUT_BYTES_MAX)) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
        pthread_mutex_lock(&run->lock);
        if (err_len > 0) {
            last_line(err, err_len, run->progress, sizeof run->progress);
            if (err_len > 4096) { /* only the last lines matter */
                memmove(err, err + err_len - 1024, 1024);
                err_len = 1024;
            }
        }
        pthread_mutex_unlock(&run->lock);
    }
    /* Wait for the end without reaping, then reap under the lock: a kill()
     * from a handler then finds the zombie or pid 0, never a pid reused. */
    siginfo_t info;
    while (waitid(P_PID, (id_t)run->pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&run->lock);
    int status = 0;
    while (waitpid(run->pid, &status, 0) < 0 && errno == EINTR) {
    }
    run->state = run->state == SIM_RUN_STOPPING             ? SIM_RUN_STOPPED
                 : WIFEXITED(status) && WEXITSTATUS(status) == 0 ? SIM_RUN_FINISHED
                                                                 : SIM_RUN_FAILED;
    run->ended_ms = server_now_ms(s);
    free(run->report);
    run->report = out;
    run->pid = 0;
    pthread_mutex_unlock(&run->lock);
    free(err);
    return NULL;
}

/* Spawns `holdfast sim --live URL --json --scenario S --seconds N`. */
static int spawn_run(server_t *s, const char *scenario, int64_t seconds, char *err, size_t size)
{
    sim_run_t *run = &s->sim;
    int out[2], errp[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        snprintf(err, size, "cannot make pipes: %s", strerror(errno));
        return -1;
    }
    char seconds_text[16], key_env[SERVER_KEY_BYTES_MAX + 16];
    snprintf(seconds_text, sizeof seconds_text, "%lld", (long long)seconds);
    snprintf(key_env, sizeof key_env, "HOLDFAST_KEY=%s", s->config.admin_key);
    char *argv[] = {"holdfast", "sim",       "--live",     s->loopback_url, "--json",
                    "--scenario", (char *)scenario, "--seconds", seconds_text, NULL};
    char *envp[] = {key_env, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, errp[1], STDERR_FILENO);
    posix_spawnattr_init(&attr);
    sigset_t none, reset;
    sigemptyset(&none);
    sigemptyset(&reset);
    sigaddset(&reset, SIGPIPE); /* the server ignores it; the child must not */
    sigaddset(&reset, SIGTERM);
    sigaddset(&reset, SIGINT);
    posix_spawnattr_setsigmask(&attr, &none); /* the server's threads block SIGTERM */
    posix_spawnattr_setsigdefault(&attr, &reset);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&run->pid, "/proc/self/exe", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    close(errp[1]);
    if (rc != 0) {
        close(out[0]);
        close(errp[0]);
        run->pid = 0;
        snprintf(err, size, "cannot start the simulator: %s", strerror(rc));
        return -1;
    }
    run->out_fd = out[0];
    run->err_fd = errp[0];
    return 0;
}

/* ------------------------------------------------------------- handlers */

/* The run as JSON (run->lock held). */
static void write_run(request_t *r, const sim_run_t *run)
{
    json_out_t *j = &r->out;
    jw_obj_begin(j);
    jw_kcstr(j, "state", state_names[run->state]);
    if (run->state != SIM_RUN_IDLE) {
        jw_kcstr(j, "scenario", run->scenario);
        jw_kint(j, "seconds", run->seconds);
        jw_key(j, "started_at");
        jw_time(j, run->started_ms);
        if (run->ended_ms > 0) {
            jw_key(j, "ended_at");
            jw_time(j, run->ended_ms);
        }
        jw_kcstr(j, "progress", run->progress);
    }
    jw_key(j, "result");
    /* The simulator's own report, passed on as it wrote it once it parses
     * (a run stopped or failed midway has none). */
    json_t *doc = run->report != NULL ? json_loads(run->report, 0, NULL) : NULL;
    if (doc != NULL) {
        size_t len = strlen(run->report);
        while (len > 0 && run->report[len - 1] == '\n') {
            len--;
        }
        jw_value_raw(j, run->report, len);
        json_decref(doc);
    } else {
        jw_null(j);
    }
    jw_obj_end(j);
}

/* Whether the panel is on; false after the 403 that says how to turn it on. */
static bool panel_on(request_t *r)
{
    if (r->server->config.attack_panel) {
        return true;
    }
    request_error_begin(r, API_ERR_FORBIDDEN,
                        "the attack panel is off: its runs make real sales, so it answers only on a "
                        "server started for a demo (--attack-panel on, or \"attack_panel\": true)");
    jw_kcstr(&r->out, "reason", "attack_panel_off");
    request_error_end(r);
    return false;
}

static bool get_parse(request_t *r, const route_args_t *a, void *args)
{
    (void)a;
    (void)args;
    sim_run_t *run = &r->server->sim;
    if (!panel_on(r)) {
        return false;
    }
    pthread_mutex_lock(&run->lock);
    r->status = 200;
    write_run(r, run);
    pthread_mutex_unlock(&run->lock);
    return true;
}

/* {"scenario": a built-in name, "seconds": 1..600}; false after a reply. */
static bool sim_body(request_t *r, char *scenario, size_t size, int64_t *seconds)
{
    static const char *const fields[] = {"scenario", "seconds", NULL};
    json_t *body = request_body(r, fields, true);
    if (body == NULL) {
        return false;
    }
    const json_t *v = json_object_get(body, "scenario");
    sim_scenario_t s;
    bool ok = request_int(r, body, "seconds", "seconds", 1, SIM_LIVE_SECONDS_MAX, false, seconds);
    if (ok && (!json_is_string(v) || !sim_scenario_builtin(json_string_value(v), &s))) {
        char message[160];
        snprintf(message, sizeof message, "scenario must be one of %s", sim_scenario_names());
        request_invalid_field(r, "scenario", message);
        ok = false;
    }
    if (ok) {
        snprintf(scenario, size, "%s", json_string_value(v));
    }
    json_decref(body);
    return ok;
}

/* Starts a run (run->lock held); false after an error reply. */
static bool start_run(request_t *r, const char *scenario, int64_t seconds)
{
    server_t *s = r->server;
    sim_run_t *run = &s->sim;
    char err[160];
    if (s->loopback_url[0] == '\0') {
        request_error(r, API_ERR_NO_LOOPBACK, "the server listens on no loopback address to attack");
        return false;
    }
    if (run->state == SIM_RUN_RUNNING || run->state == SIM_RUN_STOPPING) {
        request_error(r, API_ERR_SIM_RUNNING, "a run is under way: wait for it or stop it");
        return false;
    }
    if (run->joinable) { /* the last run's reader has set its state: it is done */
        pthread_join(run->thread, NULL);
        run->joinable = false;
    }
    free(run->report);
    run->report = NULL;
    run->progress[0] = '\0';
    if (spawn_run(s, scenario, seconds, err, sizeof err) != 0) {
        request_error(r, API_ERR_OVERLOADED, err);
        return false;
    }
    snprintf(run->scenario, sizeof run->scenario, "%s", scenario);
    run->seconds = seconds;
    run->started_ms = server_now_ms(s);
    run->ended_ms = 0;
    run->state = SIM_RUN_RUNNING;
    if (pthread_create(&run->thread, NULL, reader, s) != 0) {
        kill(run->pid, SIGKILL);
        waitpid(run->pid, NULL, 0);
        close(run->out_fd);
        close(run->err_fd);
        run->state = SIM_RUN_FAILED;
        request_error(r, API_ERR_OVERLOADED, "cannot start a thread to watch the run");
        return false;
    }
    run->joinable = true;
    return true;
}

static bool start_parse(request_t *r, const route_args_t *a, void *args)
{
    (void)a;
    (void)args;
    sim_run_t *run = &r->server->sim;
    char scenario[SIM_NAME_BYTES_MAX];
    int64_t seconds = 60;
    if (!panel_on(r) || !sim_body(r, scenario, sizeof scenario, &seconds)) {
        return false;
    }
    pthread_mutex_lock(&run->lock);
    if (start_run(r, scenario, seconds)) {
        r->status = 202;
        write_run(r, run);
    }
    pthread_mutex_unlock(&run->lock);
    return true;
}

static bool stop_parse(request_t *r, const route_args_t *a, void *args)
{
    (void)a;
    (void)args;
    sim_run_t *run = &r->server->sim;
    if (!panel_on(r)) {
        return false;
    }
    pthread_mutex_lock(&run->lock);
    if (run->state == SIM_RUN_RUNNING) {
        kill(run->pid, SIGTERM);
        run->state = SIM_RUN_STOPPING;
    }
    r->status = 200;
    write_run(r, run);
    pthread_mutex_unlock(&run->lock);
    return true;
}

const handler_t simrun_get_handler = {get_parse, NULL, NULL, NULL};
const handler_t simrun_start_handler = {start_parse, NULL, NULL, NULL};
const handler_t simrun_stop_handler = {stop_parse, NULL, NULL, NULL};

void simrun_init(server_t *s)
{
    pthread_mutex_init(&s->sim.lock, NULL);
}

void simrun_stop(server_t *s)
{
    sim_run_t *run = &s->sim;
    pthread_mutex_lock(&run->lock);
    if (run->state == SIM_RUN_RUNNING || run->state == SIM_RUN_STOPPING) {
        /* SIGKILL: the run keeps nothing worth a clean end, and shutdown
         * must not wait on a child that might not listen */
        kill(run->pid, SIGKILL);
        run->state = SIM_RUN_STOPPING;
    }
    bool join = run->joinable;
    run->joinable = false;
    pthread_mutex_unlock(&run->lock);
    if (join) {
        pthread_join(run->thread, NULL); /* the child is gone: its pipes close */
    }
}

void simrun_deinit(server_t *s)
{
    free(s->sim.report);
    s->sim.report = NULL;
    pthread_mutex_destroy(&s->sim.lock);
}
