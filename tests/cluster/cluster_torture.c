/*
 * cluster_torture.c - `make cluster-test`: three nodes of one shop, with
 * the journal in PostgreSQL (a primary and a synchronous standby), failed
 * over and over under load; after every fault, each change the cluster
 * acknowledged must be there.
 *
 *   make cluster-test                     100 kills, 20 database failovers,
 *                                         10 pauses, 10 partitions
 *   CLUSTER_KILLS=3 CLUSTER_DB_FAILOVERS=1 CLUSTER_STOPS=1 \
 *   CLUSTER_PARTITIONS=1 CLUSTER_SEED=7 build/cluster/tests/cluster/cluster_torture
 *
 * The rounds, in an order drawn from the seed, each under load and each
 * followed by the check (tests/torture/model.h: every acknowledged change
 * present, every sku adding up):
 *   kill       kill -9 of the node that owns the shop;
 *   stop       SIGSTOP of the owner for lease_ms + 1 s, then SIGCONT, and at
 *              once requests to it: none may be acknowledged (it answers
 *              503 not_owner, or drops them), and it must exit with 75;
 *   db         a PostgreSQL failover: the primary killed and the standby
 *              promoted (tests/cluster/pg.sh kill-primary, promote), which
 *              then takes commits alone, as Patroni's synchronous_mode
 *              does until a new standby streams; once the shop serves
 *              again, the old primary is rebuilt as the new synchronous
 *              standby (pg.sh rejoin), under load;
 *   partition  the owner cut off from PostgreSQL for 3 leases, then healed:
 *              it must stop acknowledging and exit with 75.
 * Each round's failover time runs from the fault to the first hold created
 * (201) by a node process other than the faulted one, for a request sent
 * after the fault.
 *
 * The nodes: the real binary (HF_BINARY), each on a fixed loopback port and
 * a data directory of its own, lease_ms CLUSTER_LEASE_MS, the defenses off
 * (hf_server_write_config). A supervisor thread restarts any node that
 * exits, CLUSTER_RESTART_LEASES leases later, as a real one would (were it
 * restarted at once under the same name it would retake the shop itself,
 * and no other node's takeover would be measured); it counts exit statuses:
 * 75 (the lease lost) and 137 (our kill -9) are expected, anything else
 * fails the run. Standbys do not listen, so a client finds the owner by
 * trying the nodes in turn: a refused connection, a dropped one, a 503
 * not_owner or a standby's 307 sends it to the next.
 *
 * The partition. Each node reaches PostgreSQL through a TCP proxy in this
 * process (a port per node and per database server), which can stop
 * forwarding a node's bytes in both directions while keeping its sockets
 * open: the loopback kernel still acknowledges what the node sends, so its
 * libpq waits for replies that do not come, as behind a silent network
 * (where TCP_USER_TIMEOUT would end the wait sooner). A network namespace
 * would cut deeper but needs CAP_NET_ADMIN and addresses other than
 * 127.0.0.1; the proxy keeps the test on loopback and runnable anywhere.
 * The supervisor does not restart a cut-off node until the network heals.
 *
 * Prints the seed first and a summary last; exits 1 if an acknowledged
 * change was lost, a sku disagreed, a paused node acknowledged a request,
 * a node exited otherwise than expected or the shop did not come back
 * within CLUSTER_BACK_MS; 77 if PostgreSQL 15 is not installed.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_test_http.h"
#include "model.h"

#define CLUSTER_NODES 3
#define CLUSTER_WORKERS 4
#define CLUSTER_SHOP "torture"
#define CLUSTER_LEASE_MS 1000
#define CLUSTER_COMPACT_RECORDS 200
/* A dead node is started again this many leases after it exited. */
#define CLUSTER_RESTART_LEASES 2
/* After a fault the shop must serve again within this. */
#define CLUSTER_BACK_MS 30000
/* A paused node, resumed, must have exited within this. */
#define CLUSTER_EXIT_WAIT_MS 5000
/* Requests sent to a paused node right after SIGCONT. */
#define CLUSTER_PROBES 4
/* Acknowledgements before the fault, and after the shop is back. */
#define CLUSTER_ACKS_MIN 20
#define CLUSTER_ACKS_MAX 300
#define CLUSTER_ACKS_AFTER 10
/* A client that found no node listening waits this long before the next. */
#define CLUSTER_BACKOFF_MS 20
#define CLUSTER_SUPERVISE_MS 10
#define CLUSTER_PORT_MIN 20000 /* below the ephemeral range, as pg.sh's */
#define CLUSTER_PORT_SPAN 12000
#define CLUSTER_PORT_TRIES 200
#define CLUSTER_ROUNDS_MAX 100000
#define CLUSTER_EXIT_STATUSES 256

/* The proxy: two database servers (PG_URL's hosts), a pipe per connection. */
#define PG_HOSTS 2
#define PROXY_PIPES 64
#define PROXY_BUF_BYTES 65536
#define PROXY_POLL_MS 20

#ifndef PGH_BIN_DEFAULT
#define PGH_BIN_DEFAULT "/usr/lib/postgresql/15/bin"
#endif
#define SKIPPED 77

typedef enum { FAULT_KILL, FAULT_STOP, FAULT_DB, FAULT_PARTITION, FAULT_KINDS } fault_t;
static const char *const fault_names[] = {"kill", "stop", "db", "partition"};

typedef struct {
    int fd[2];                    /* 0: the node's side, 1: the database's */
    char buf[2][PROXY_BUF_BYTES]; /* buf[d]: read from fd[d], for fd[1 - d] */
    size_t len[2], off[2];
    int node;
    bool used;
} pipe_t;

typedef struct {
    int listen_fd[CLUSTER_NODES][PG_HOSTS];
    uint16_t listen_port[CLUSTER_NODES][PG_HOSTS];
    uint16_t target_port[PG_HOSTS]; /* atomic: a failover may move them */
    bool cut[CLUSTER_NODES];        /* atomic */
    bool stopping;                  /* atomic */
    pipe_t *pipes;
    pthread_t thread;
} proxy_t;

typedef struct {
    hf_server_t srv;
    char name[8];
    uint16_t port;
    char journal_url[512];
    uint32_t generation; /* starts so far */
    uint32_t exits;      /* of this node */
    int last_status;
    long long exited_ms; /* when it was found dead (pid 0) */
} node_t;

/* A client thread of the load: the model's worker, on whichever node. */
typedef struct cluster_s cluster_t;
typedef struct {
    cluster_t *c;
    worker_t *w;
    checker_t k; /* its connection, for its requests and its settling */
    int node;
    uint32_t generation;
} client_t;

struct cluster_s {
    model_t m;
    worker_t workers[CLUSTER_WORKERS + 1]; /* the last: the stop round's probes */
    client_t clients[CLUSTER_WORKERS];
    checker_t k; /* the checks' */
    int k_node;
    uint32_t k_generation;
    node_t nodes[CLUSTER_NODES];
    proxy_t proxy;
    char pg_dir[192];
    bool pg_started;
    uint32_t lease_ms;
    /* under lock */
    pthread_mutex_t lock;
    bool load_stopping, supervising;
    bool hold_restarts; /* a database failover is under way, or the run ends */
    bool ending;        /* SIGTERM sent to every node */
    uint64_t exits_by_status[CLUSTER_EXIT_STATUSES];
    uint64_t bad_exits;
    pthread_t supervisor;
    /* the fault under way (under m.lock) */
    bool fault_open;
    fault_t fault_kind;
    long long fault_ms, failover_ms;
    int fault_node;
    uint32_t fault_generation;
    long long stopped_ms; /* a stop round: since when the node is stopped, or 0 */
    uint64_t acked_after_resume;
    /* figures */
    long long *times[FAULT_KINDS];
    uint32_t time_count[FAULT_KINDS], rounds[FAULT_KINDS];
    long long *db_times; /* how long pg.sh kill-primary and promote took */
    uint32_t db_time_count;
    uint64_t probes_503, probes_dropped, failures;
};

static char pg_sh_stop_dir[192]; /* for the signal handler */

/* ---------------------------------------------------------------- helpers */

static void sleep_ms(long long ms)
{
    hf_sleep_ms(ms);
}

static int exit_code(int wstatus)
{
    if (WIFEXITED(wstatus)) {
        return WEXITSTATUS(wstatus);
    }
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 255;
}

/* Runs `bash pg.sh CMD DIR`, its output to ours; its exit status. */
static int pg_sh(const char *cmd, const char *dir, const char *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1); /* its env listing; what went wrong goes to stderr */
        execlp("bash", "bash", HF_PG_SH, cmd, dir, arg, (char *)NULL);
        _exit(127);
    }
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    return exit_code(wstatus);
}

/* SIGINT/SIGTERM: the database servers must not outlive the run. */
static void on_signal(int sig)
{
    if (pg_sh_stop_dir[0] != '\0') {
        pid_t pid = fork();
        if (pid == 0) {
            execlp("bash", "bash", HF_PG_SH, "stop", pg_sh_stop_dir, (char *)NULL);
            _exit(127);
        }
        if (pid > 0) {
            waitpid(pid, NULL, 0);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int listen_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* A port nothing listens on now, from the range no client socket uses. */
static uint16_t free_port(uint64_t *rng)
{
    for (int i = 0; i < CLUSTER_PORT_TRIES; i++) {
        uint16_t port = (uint16_t)(CLUSTER_PORT_MIN + model_below(rng, CLUSTER_PORT_SPAN));
        int fd = listen_on(port);
        if (fd >= 0) {
            close(fd);
            return port;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the proxy */

static void pipe_close(pipe_t *p)
{
    close(p->fd[0]);
    close(p->fd[1]);
    p->used = false;
}

static void proxy_accept(proxy_t *x, int node, int host)
{
    int fd = accept4(x->listen_fd[node][host], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        return;
    }
    pipe_t *p = NULL;
    for (int i = 0; i < PROXY_PIPES && p == NULL; i++) {
        p = x->pipes[i].used ? NULL : &x->pipes[i];
    }
    /* A server that is down: the other one. libpq moves on to a URI's next
     * host when a host refuses or times out, but takes a connection that
     * was accepted and then closed for the server's own failure, and stops
     * there; a dead primary behind this proxy would then hide the promoted
     * standby from every node that tries the hosts in that order. */
    int up = -1;
    for (int k = 0; k < PG_HOSTS && p != NULL && up < 0; k++) {
        int h = (host + k) % PG_HOSTS;
        struct sockaddr_in a = {
            .sin_family = AF_INET,
            .sin_port = htons(__atomic_load_n(&x->target_port[h], __ATOMIC_ACQUIRE))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (up >= 0 && connect(up, (struct sockaddr *)&a, sizeof a) != 0) {
            close(up);
            up = -1;
        }
    }
    if (up < 0) {
        close(fd); /* both down: as a refusal, as near as an accepted socket gets */
        return;
    }
    fcntl(up, F_SETFL, O_NONBLOCK);
    *p = (pipe_t){.fd = {fd, up}, .node = node, .used = true};
}

/* Moves what poll said could move; false if the pipe ended. */
static bool pipe_pump(pipe_t *p, const struct pollfd *pf)
{
    for (int d = 0; d < 2; d++) {
        const struct pollfd *from = &pf[d], *to = &pf[1 - d];
        if (p->len[d] == 0 && (from->revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(p->fd[d], p->buf[d], sizeof p->buf[d]);
            if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
                return false;
            }
            p->len[d] = n > 0 ? (size_t)n : 0;
            p->off[d] = 0;
        } else if (p->len[d] > 0 && (to->revents & (POLLOUT | POLLHUP | POLLERR))) {
            ssize_t n = write(p->fd[1 - d], p->buf[d] + p->off[d], p->len[d] - p->off[d]);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return false;
            }
            p->off[d] += n > 0 ? (size_t)n : 0;
            p->len[d] = p->off[d] == p->len[d] ? 0 : p->len[d];
        }
    }
    return true;
}

static void *proxy_run(void *arg)
{
    proxy_t *x = arg;
    enum { LISTENERS = CLUSTER_NODES * PG_HOSTS };
    struct pollfd pf[LISTENERS + 2 * PROXY_PIPES];
    int pipe_at[PROXY_PIPES];
    while (!__atomic_load_n(&x->stopping, __ATOMIC_ACQUIRE)) {
        nfds_t n = 0;
        for (int i = 0; i < CLUSTER_NODES; i++) {
            for (int h = 0; h < PG_HOSTS; h++) {
                pf[n++] = (struct pollfd){.fd = x->listen_fd[i][h], .events = POLLIN};
            }
        }
        for (int i = 0; i < PROXY_PIPES; i++) {
            pipe_t *p = &x->pipes[i];
            pipe_at[i] = -1;
            if (!p->used || __atomic_load_n(&x->cut[p->node], __ATOMIC_ACQUIRE)) {
                continue; /* cut off: its bytes wait, its sockets stay open */
            }
            pipe_at[i] = (int)n;
            for (int d = 0; d < 2; d++) {
                short ev =
                    (short)((p->len[d] == 0 ? POLLIN : 0) | (p->len[1 - d] > 0 ? POLLOUT : 0));
                pf[n++] = (struct pollfd){.fd = p->fd[d], .events = ev};
            }
        }
        if (poll(pf, n, PROXY_POLL_MS) <= 0) {
            continue;
        }
        for (int i = 0; i < PROXY_PIPES; i++) {
            if (pipe_at[i] >= 0 && !pipe_pump(&x->pipes[i], &pf[pipe_at[i]])) {
                pipe_close(&x->pipes[i]);
            }
        }
        for (int l = 0; l < LISTENERS; l++) {
            if (pf[l].revents & POLLIN) {
                proxy_accept(x, l / PG_HOSTS, l % PG_HOSTS);
            }
        }
    }
    return NULL;
}

static int proxy_start(proxy_t *x, uint64_t *rng)
{
    x->pipes = calloc(PROXY_PIPES, sizeof *x->pipes);
    if (x->pipes == NULL) {
        return -1;
    }
    for (int i = 0; i < CLUSTER_NODES; i++) {
        for (int h = 0; h < PG_HOSTS; h++) {
            x->listen_fd[i][h] = -1;
            for (int t = 0; t < CLUSTER_PORT_TRIES && x->listen_fd[i][h] < 0; t++) {
                x->listen_port[i][h] = free_port(rng);
                x->listen_fd[i][h] = listen_on(x->listen_port[i][h]);
            }
            if (x->listen_fd[i][h] < 0) {
                model_report("the proxy found no port to listen on");
                return -1;
            }
        }
    }
    return pthread_create(&x->thread, NULL, proxy_run, x) == 0 ? 0 : -1;
}

static void proxy_stop(proxy_t *x)
{
    if (x->pipes == NULL) {
        return;
    }
    __atomic_store_n(&x->stopping, true, __ATOMIC_RELEASE);
    pthread_join(x->thread, NULL);
    for (int i = 0; i < PROXY_PIPES; i++) {
        if (x->pipes[i].used) {
            pipe_close(&x->pipes[i]);
        }
    }
    for (int i = 0; i < CLUSTER_NODES; i++) {
        for (int h = 0; h < PG_HOSTS; h++) {
            close(x->listen_fd[i][h]);
        }
    }
    free(x->pipes);
    x->pipes = NULL;
}

/* ---------------------------------------------------------- the database */

/* DIR/env's PG_URL (pg.sh): the ports of its hosts, in order, and the rest
 * of it after the host list ("/holdfast?..."). */
static int read_pg_env(const char *dir, uint16_t ports[PG_HOSTS], char *tail, size_t tail_size)
{
    char path[256], line[1024];
    snprintf(path, sizeof path, "%s/env", dir);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "PG_URL='", 8) != 0) {
            continue;
        }
        char *hosts = strchr(line, '@'), *slash = hosts ? strchr(hosts, '/') : NULL;
        if (slash == NULL) {
            break;
        }
        snprintf(tail, tail_size, "%.*s", (int)strcspn(slash, "'\n"), slash);
        for (char *h = hosts + 1; h != NULL && h < slash && found < PG_HOSTS; found++) {
            char *colon = strchr(h, ':');
            ports[found] = (uint16_t)(colon && colon < slash ? strtol(colon + 1, NULL, 10) : 0);
            h = strchr(h, ',');
            h = h && h < slash ? h + 1 : NULL;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    if (found != PG_HOSTS || ports[0] == 0 || ports[1] == 0) {
        model_report("%s has no PG_URL with a primary and a standby", path);
        return -1;
    }
    return 0;
}

/* The proxy forwards to wherever PG_URL's hosts are now. */
static int follow_pg(cluster_t *c)
{
    uint16_t ports[PG_HOSTS];
    char tail[256];
    if (read_pg_env(c->pg_dir, ports, tail, sizeof tail) != 0) {
        return -1;
    }
    for (int h = 0; h < PG_HOSTS; h++) {
        __atomic_store_n(&c->proxy.target_port[h], ports[h], __ATOMIC_RELEASE);
    }
    for (int i = 0; i < CLUSTER_NODES; i++) {
        snprintf(c->nodes[i].journal_url, sizeof c->nodes[i].journal_url,
                 "postgresql://holdfast@127.0.0.1:%u,127.0.0.1:%u%s", c->proxy.listen_port[i][0],
                 c->proxy.listen_port[i][1], tail);
    }
    return 0;
}

static bool pg_installed(void)
{
    const char *bin = getenv("PGH_BIN");
    char path[256];
    const char *const programs[] = {"initdb", "postgres", "pg_ctl", "pg_basebackup", "psql", NULL};
    for (int i = 0; programs[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s/%s", bin && *bin ? bin : PGH_BIN_DEFAULT, programs[i]);
        if (access(path, X_OK) != 0) {
            return false;
        }
    }
    return true;
}

/* ----------------------------------------------------------- the nodes */

/* Starts node i (lock held); it waits for the shop's lease, then listens. */
static int node_start(cluster_t *c, int i)
{
    node_t *n = &c->nodes[i];
    char listen[32], lease[16];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", n->port);
    snprintf(lease, sizeof lease, "%u", c->lease_ms);
    const char *argv[] = {HF_BINARY,      "serve",         "--listen",   listen,
                          "--data",       n->srv.data_dir, "--config",   n->srv.config_path,
                          "--journal",    n->journal_url,  "--shop",     CLUSTER_SHOP,
                          "--node",       n->name,         "--lease-ms", lease,
                          "--access-log", "off",           NULL};
    if (hf_server_spawn(&n->srv, argv) != 0) {
        return -1;
    }
    n->generation++;
    return 0;
}

static void count_exit(cluster_t *c, int i, int status)
{
    node_t *n = &c->nodes[i];
    n->exits++;
    n->last_status = status;
    n->exited_ms = hf_now_ms();
    c->exits_by_status[status < CLUSTER_EXIT_STATUSES ? status : CLUSTER_EXIT_STATUSES - 1]++;
    /* At the end: 0, or SIGTERM's own status for a node just started,
     * that had no handler yet. */
    bool ending = c->ending && (status == 0 || status == 128 + SIGTERM);
    bool expected = status == 75 || status == 128 + SIGKILL || ending;
    if (!expected) {
        model_report("node %s exited with status %d", n->name, status);
        hf_server_dump_log(&n->srv);
        c->bad_exits++;
    }
}

/* Reaps the nodes that exited and starts them again, in time. */
static void *supervise(void *arg)
{
    cluster_t *c = arg;
    pthread_mutex_lock(&c->lock);
    while (c->supervising) {
        long long now_ms = hf_now_ms();
        for (int i = 0; i < CLUSTER_NODES; i++) {
            node_t *n = &c->nodes[i];
            int wstatus;
            if (n->srv.pid != 0 && waitpid(n->srv.pid, &wstatus, WNOHANG) == n->srv.pid) {
                n->srv.pid = 0;
                count_exit(c, i, exit_code(wstatus));
            }
            bool cut = __atomic_load_n(&c->proxy.cut[i], __ATOMIC_ACQUIRE);
            if (n->srv.pid == 0 && !cut && !c->hold_restarts &&
                now_ms >= n->exited_ms + (long long)c->lease_ms * CLUSTER_RESTART_LEASES &&
                node_start(c, i) != 0) {
                model_report("node %s could not be started", n->name);
                c->bad_exits++;
                n->exited_ms = now_ms;
            }
        }
        pthread_mutex_unlock(&c->lock);
        sleep_ms(CLUSTER_SUPERVISE_MS);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Connects to the next node that listens, from the one after *node,
 * until deadline_ms; false if none did. */
static bool connect_any(cluster_t *c, hf_conn_t *conn, int *node, uint32_t *generation,
                        long long deadline_ms)
{
    hf_conn_close(conn);
    for (;;) {
        for (int k = 0; k < CLUSTER_NODES; k++) {
            *node = (*node + 1) % CLUSTER_NODES;
            pthread_mutex_lock(&c->lock);
            *generation = c->nodes[*node].generation;
            uint16_t port = c->nodes[*node].port;
            pthread_mutex_unlock(&c->lock);
            if (hf_conn_open(conn, port, NULL) == 0) {
                return true;
            }
        }
        if (hf_now_ms() >= deadline_ms) {
            return false;
        }
        sleep_ms(CLUSTER_BACKOFF_MS);
    }
}

/* A checker's reconnect (model.h): the next node that serves. */
static bool client_reconnect(void *ctx, hf_conn_t *conn)
{
    client_t *cl = ctx;
    return connect_any(cl->c, conn, &cl->node, &cl->generation, hf_now_ms() + CLUSTER_BACK_MS);
}

static bool checker_reconnect(void *ctx, hf_conn_t *conn)
{
    cluster_t *c = ctx;
    return connect_any(c, conn, &c->k_node, &c->k_generation, hf_now_ms() + CLUSTER_BACK_MS);
}

/* The node that serves the shop now (a GET answered 200), or -1. */
static int find_owner(cluster_t *c, long long deadline_ms)
{
    do {
        for (int i = 0; i < CLUSTER_NODES; i++) {
            hf_conn_t conn;
            hf_response_t r;
            pthread_mutex_lock(&c->lock);
            uint16_t port = c->nodes[i].port;
            pthread_mutex_unlock(&c->lock);
            if (hf_conn_open(&conn, port, NULL) != 0) {
                continue;
            }
            int status = hf_conn_exchange(&conn, "GET", "/v1/skus/t0", NULL, NULL, 0, &r) == 0
                             ? r.status
                             : 0;
            if (status != 0) {
                hf_response_free(&r);
            }
            hf_conn_close(&conn);
            if (status == 200) {
                return i;
            }
        }
        sleep_ms(CLUSTER_BACKOFF_MS);
    } while (hf_now_ms() < deadline_ms);
    return -1;
}

/* ------------------------------------------------------------ the load */

static bool not_owner(const hf_response_t *r)
{
    return model_not_serving(r);
}

/* An acknowledged hold (m.lock held): the round's failover time, if it is
 * the first since the fault from another process; a paused node's
 * acknowledgement of a request sent after SIGSTOP is a failure. */
static void served(cluster_t *c, const client_t *cl, const op_t *op, const hf_response_t *r,
                   long long sent_ms)
{
    bool faulted = cl->node == c->fault_node && cl->generation == c->fault_generation;
    if (c->fault_open && c->fault_kind == FAULT_STOP && faulted && c->stopped_ms > 0 &&
        sent_ms >= c->stopped_ms && r->status >= 200 && r->status < 300) {
        model_report("node %s, paused, acknowledged a request sent after SIGSTOP: %d %.200s",
                     c->nodes[cl->node].name, r->status, r->body);
        c->acked_after_resume++;
    }
    if (c->fault_open && c->failover_ms < 0 && op->kind == OP_CREATE && r->status == 201 &&
        sent_ms >= c->fault_ms && !faulted) {
        c->failover_ms = hf_now_ms() - c->fault_ms;
        pthread_cond_broadcast(&c->m.acked);
    }
}

static bool load_stopping(cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    bool stopping = c->load_stopping;
    pthread_mutex_unlock(&c->lock);
    return stopping;
}

/* Sends requests to whichever node serves, until the round ends. A request
 * without a reply (or answered 503 not_owner) is settled on the next node
 * before anything else is sent. */
static void *client_run(void *arg)
{
    client_t *cl = arg;
    cluster_t *c = cl->c;
    worker_t *w = cl->w;
    model_t *m = &c->m;
    while (!load_stopping(c)) {
        if (cl->k.conn.fd < 0 && !connect_any(c, &cl->k.conn, &cl->node, &cl->generation,
                                              hf_now_ms() + CLUSTER_BACKOFF_MS)) {
            continue;
        }
        if (w->doubt.kind != OP_NONE) {
            model_settle_one(&cl->k, w);
            continue;
        }
        op_t op;
        hf_response_t r;
        model_choose(w, &op);
        long long sent_ms = hf_now_ms();
        if (model_send(w, &cl->k.conn, &op, &r) != 0) {
            w->doubt = op; /* maybe applied, maybe not */
            hf_conn_close(&cl->k.conn);
            continue;
        }
        if (not_owner(&r)) {
            w->doubt = op;
            hf_conn_close(&cl->k.conn);
            sleep_ms(CLUSTER_BACKOFF_MS); /* as a client honours Retry-After */
        } else {
            pthread_mutex_lock(&m->lock);
            model_record(w, &op, &r);
            served(c, cl, &op, &r, sent_ms);
            pthread_mutex_unlock(&m->lock);
        }
        hf_response_free(&r);
    }
    hf_conn_close(&cl->k.conn);
    return NULL;
}

static void load_start(cluster_t *c, uint64_t seed)
{
    c->m.round++;
    c->m.round_acks = 0;
    c->load_stopping = false;
    for (uint32_t i = 0; i < CLUSTER_WORKERS; i++) {
        client_t *cl = &c->clients[i];
        cl->w->rng = seed ^ ((uint64_t)c->m.round << 20) ^ (i + 1);
        if (pthread_create(&cl->w->thread, NULL, client_run, cl) != 0) {
            fprintf(stderr, "cluster: cannot start a client thread\n");
            exit(2);
        }
    }
}

static void load_stop(cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->load_stopping = true;
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < CLUSTER_WORKERS; i++) {
        pthread_join(c->workers[i].thread, NULL);
    }
}

/* Waits until the round has acks more acknowledgements; false on timeout. */
static bool await_acks(cluster_t *c, uint64_t acks)
{
    model_t *m = &c->m;
    long long deadline_ms = hf_now_ms() + CLUSTER_BACK_MS;
    pthread_mutex_lock(&m->lock);
    uint64_t want = m->round_acks + acks;
    while (m->round_acks < want && hf_now_ms() < deadline_ms) {
        pthread_mutex_unlock(&m->lock);
        sleep_ms(CLUSTER_BACKOFF_MS);
        pthread_mutex_lock(&m->lock);
    }
    bool got = m->round_acks >= want;
    pthread_mutex_unlock(&m->lock);
    if (!got) {
        model_report("round %u: no %llu acknowledgements within %d ms", m->round,
                     (unsigned long long)acks, CLUSTER_BACK_MS);
    }
    return got;
}

/* ----------------------------------------------------------- the faults */

static void fault_open(cluster_t *c, fault_t kind, int node)
{
    pthread_mutex_lock(&c->lock);
    uint32_t generation = c->nodes[node].generation;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&c->m.lock);
    c->fault_open = true;
    c->fault_kind = kind;
    c->fault_node = node;
    c->fault_generation = generation;
    c->fault_ms = hf_now_ms();
    c->failover_ms = -1;
    c->stopped_ms = 0;
    pthread_mutex_unlock(&c->m.lock);
}

/* Waits for the round's failover (a hold made elsewhere); false if none
 * came within CLUSTER_BACK_MS of the fault. */
static bool await_failover(cluster_t *c)
{
    model_t *m = &c->m;
    pthread_mutex_lock(&m->lock);
    while (c->failover_ms < 0 && hf_now_ms() < c->fault_ms + CLUSTER_BACK_MS) {
        pthread_mutex_unlock(&m->lock);
        sleep_ms(CLUSTER_BACKOFF_MS);
        pthread_mutex_lock(&m->lock);
    }
    long long took_ms = c->failover_ms;
    pthread_mutex_unlock(&m->lock);
    if (took_ms < 0) {
        model_report("round %u (%s): the shop did not serve again within %d ms", m->round,
                     fault_names[c->fault_kind], CLUSTER_BACK_MS);
        return false;
    }
    c->times[c->fault_kind][c->time_count[c->fault_kind]++] = took_ms;
    return true;
}

static void fault_close(cluster_t *c)
{
    pthread_mutex_lock(&c->m.lock);
    c->fault_open = false;
    pthread_mutex_unlock(&c->m.lock);
}

static void signal_node(cluster_t *c, int node, int sig)
{
    pthread_mutex_lock(&c->lock);
    if (c->nodes[node].srv.pid != 0) {
        kill(c->nodes[node].srv.pid, sig);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Waits until node has exited after exits_before exits; its status, or -1
 * if it still runs at deadline_ms. */
static int await_exit(cluster_t *c, int node, uint32_t exits_before, long long deadline_ms)
{
    for (;;) {
        pthread_mutex_lock(&c->lock);
        int status = c->nodes[node].exits > exits_before ? c->nodes[node].last_status : -1;
        pthread_mutex_unlock(&c->lock);
        if (status >= 0 || hf_now_ms() >= deadline_ms) {
            return status;
        }
        sleep_ms(CLUSTER_BACKOFF_MS);
    }
}

static uint32_t exits_of(cluster_t *c, int node)
{
    pthread_mutex_lock(&c->lock);
    uint32_t exits = c->nodes[node].exits;
    pthread_mutex_unlock(&c->lock);
    return exits;
}

/* Right after SIGCONT: holds asked of the resumed node, each on a fresh
 * connection; none may be acknowledged. One without a reply is the probe
 * worker's doubt, settled with the round's. */
static bool probe_resumed(cluster_t *c, int node)
{
    worker_t *probe = &c->workers[CLUSTER_WORKERS];
    bool ok = true;
    for (int i = 0; i < CLUSTER_PROBES && probe->doubt.kind == OP_NONE; i++) {
        hf_conn_t conn;
        if (hf_conn_open(&conn, c->nodes[node].port, NULL) != 0) {
            c->probes_dropped++; /* it has exited: the connection is refused */
            continue;
        }
        op_t op;
        hf_response_t r;
        model_choose(probe, &op);
        if (model_send(probe, &conn, &op, &r) != 0) {
            probe->doubt = op;
            c->probes_dropped++;
            hf_conn_close(&conn);
            continue;
        }
        if (r.status >= 200 && r.status < 300) {
            model_report("node %s, resumed past its lease, acknowledged a request: %d %.200s",
                         c->nodes[node].name, r.status, r.body);
            c->acked_after_resume++;
            ok = false;
            pthread_mutex_lock(&c->m.lock);
            model_record(probe, &op, &r);
            pthread_mutex_unlock(&c->m.lock);
        } else if (!not_owner(&r)) {
            model_report("node %s, resumed, answered %d %.200s", c->nodes[node].name, r.status,
                         r.body);
            ok = false;
        } else {
            c->probes_503++;
        }
        hf_response_free(&r);
        hf_conn_close(&conn);
    }
    return ok;
}

/* Whether every thread of pid is stopped (state T in /proc). */
static bool all_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    bool stopped = d != NULL;
    struct dirent *e;
    while (stopped && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char stat[128], text[512] = "";
        snprintf(stat, sizeof stat, "%s/%.32s/stat", path, e->d_name);
        FILE *f = fopen(stat, "r");
        if (f != NULL) {
            size_t n = fread(text, 1, sizeof text - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        const char *state = strrchr(text, ')'); /* the name may hold anything */
        stopped = state != NULL && (state[2] == 'T' || state[2] == 't');
    }
    if (d != NULL) {
        closedir(d);
    }
    return stopped;
}

/* SIGSTOP, and the time from which no thread of the node runs (0: it did
 * not stop within CLUSTER_EXIT_WAIT_MS). */
static long long stop_node(cluster_t *c, int node)
{
    pthread_mutex_lock(&c->lock);
    pid_t pid = c->nodes[node].srv.pid;
    pthread_mutex_unlock(&c->lock);
    if (pid == 0 || kill(pid, SIGSTOP) != 0) {
        return 0;
    }
    long long deadline_ms = hf_now_ms() + CLUSTER_EXIT_WAIT_MS;
    while (!all_stopped(pid)) {
        if (hf_now_ms() >= deadline_ms) {
            return 0;
        }
        sleep_ms(1);
    }
    return hf_now_ms();
}

static bool round_stop(cluster_t *c, int owner)
{
    uint32_t exits = exits_of(c, owner);
    long long stopped_ms = stop_node(c, owner);
    if (stopped_ms == 0) {
        model_report("node %s did not stop on SIGSTOP", c->nodes[owner].name);
        return false;
    }
    pthread_mutex_lock(&c->m.lock);
    c->stopped_ms = stopped_ms;
    pthread_mutex_unlock(&c->m.lock);
    sleep_ms(c->lease_ms + 1000); /* the pause itself, not a wait for anything */
    signal_node(c, owner, SIGCONT);
    bool ok = probe_resumed(c, owner);
    int status = await_exit(c, owner, exits, hf_now_ms() + CLUSTER_EXIT_WAIT_MS);
    if (status != 75) {
        model_report("node %s, resumed past its lease, %s %d", c->nodes[owner].name,
                     status < 0 ? "still runs after ms:" : "exited with status",
                     status < 0 ? CLUSTER_EXIT_WAIT_MS : status);
        ok = false;
    }
    return await_failover(c) && ok;
}

static bool round_partition(cluster_t *c, int owner)
{
    uint32_t exits = exits_of(c, owner);
    __atomic_store_n(&c->proxy.cut[owner], true, __ATOMIC_RELEASE);
    bool ok = await_failover(c);
    long long heal_ms = c->fault_ms + 3LL * c->lease_ms;
    long long now_ms = hf_now_ms();
    sleep_ms(heal_ms > now_ms ? heal_ms - now_ms : 0); /* the partition's length */
    int status = await_exit(c, owner, exits, hf_now_ms() + CLUSTER_EXIT_WAIT_MS);
    __atomic_store_n(&c->proxy.cut[owner], false, __ATOMIC_RELEASE);
    if (status != 75) {
        model_report("node %s, cut off from PostgreSQL, %s %d", c->nodes[owner].name,
                     status < 0 ? "still runs after ms:" : "exited with status",
                     status < 0 ? CLUSTER_EXIT_WAIT_MS : status);
        ok = false;
    }
    return ok;
}

static bool round_db(cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->hold_restarts = true;
    pthread_mutex_unlock(&c->lock);
    long long started_ms = hf_now_ms();
    int status = pg_sh("kill-primary", c->pg_dir, NULL);
    status = status == 0 ? pg_sh("promote", c->pg_dir, NULL) : status;
    c->db_times[c->db_time_count++] = hf_now_ms() - started_ms;
    bool ok = status == 0 && follow_pg(c) == 0;
    if (status != 0) {
        model_report("pg.sh kill-primary, promote %s failed with status %d", c->pg_dir, status);
    }
    pthread_mutex_lock(&c->lock);
    c->hold_restarts = false;
    pthread_mutex_unlock(&c->lock);
    ok = ok && await_failover(c);
    /* A new synchronous standby, the shop under load: commits wait for it
     * from when it is named until it streams. */
    status = ok ? pg_sh("rejoin", c->pg_dir, NULL) : 0;
    if (status != 0) {
        model_report("pg.sh rejoin %s failed with status %d", c->pg_dir, status);
    }
    return ok && status == 0 && follow_pg(c) == 0;
}

/* One round: load, the fault, the shop back, then the settling and check. */
static bool round_run(cluster_t *c, fault_t kind, uint64_t seed, uint64_t *rng)
{
    load_start(c, seed);
    bool ok = await_acks(c, CLUSTER_ACKS_MIN + model_below(rng, CLUSTER_ACKS_MAX));
    int owner = ok ? find_owner(c, hf_now_ms() + CLUSTER_BACK_MS) : -1;
    ok = ok && owner >= 0;
    if (ok) {
        fault_open(c, kind, owner);
        if (kind == FAULT_KILL) {
            signal_node(c, owner, SIGKILL);
            ok = await_failover(c);
        } else if (kind == FAULT_STOP) {
            ok = round_stop(c, owner);
        } else if (kind == FAULT_DB) {
            ok = round_db(c);
        } else {
            ok = round_partition(c, owner);
        }
        ok = await_acks(c, CLUSTER_ACKS_AFTER) && ok;
        fault_close(c);
    }
    load_stop(c);
    c->rounds[kind]++;
    for (uint32_t i = 0; i <= CLUSTER_WORKERS; i++) {
        model_settle_one(&c->k, &c->workers[i]);
    }
    model_check(&c->k);
    hf_conn_close(&c->k.conn);
    printf("cluster: round %u %s%s%s: failover %lld ms, %llu acknowledged changes checked\n",
           c->m.round, fault_names[kind], owner >= 0 ? " of " : "",
           owner >= 0 ? c->nodes[owner].name : "", c->failover_ms,
           (unsigned long long)c->m.acks_checked);
    fflush(stdout);
    return ok;
}

/* ------------------------------------------------------------- the run */

static int compare_ms(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void print_times(const char *what, const char *kind, long long *t, uint32_t n)
{
    if (n == 0) {
        return;
    }
    qsort(t, n, sizeof *t, compare_ms);
    printf("cluster: %s %s (ms, %u rounds): min %lld p50 %lld p99 %lld max %lld\n", what, kind, n,
           t[0], t[(n - 1) / 2], t[(n * 99 - 1) / 100], t[n - 1]);
}

static void summary(cluster_t *c, long long duration_ms)
{
    const model_t *m = &c->m;
    printf("cluster: rounds: kill %u, stop %u, db %u, partition %u; acknowledged changes "
           "checked %llu (holds read back %llu, sku reads %llu); in doubt: kept %llu, not kept "
           "%llu; lost %llu, skus disagreeing %llu, unexpected replies %llu, acknowledged by a "
           "resumed node %llu (its probes: 503 not_owner %llu, dropped or refused %llu); "
           "duration %.1f s\n",
           c->rounds[FAULT_KILL], c->rounds[FAULT_STOP], c->rounds[FAULT_DB],
           c->rounds[FAULT_PARTITION], (unsigned long long)m->acks_checked,
           (unsigned long long)m->holds_read, (unsigned long long)m->skus_read,
           (unsigned long long)m->settled_kept, (unsigned long long)m->settled_dropped,
           (unsigned long long)m->lost, (unsigned long long)m->disagreed,
           (unsigned long long)m->unexpected, (unsigned long long)c->acked_after_resume,
           (unsigned long long)c->probes_503, (unsigned long long)c->probes_dropped,
           (double)duration_ms / 1000);
    for (int k = 0; k < FAULT_KINDS; k++) {
        print_times("failover time after", fault_names[k], c->times[k], c->time_count[k]);
    }
    print_times("of which", "pg.sh kill-primary and promote", c->db_times,
                c->db_time_count);
    printf("cluster: node exits by status:");
    for (int s = 0; s < CLUSTER_EXIT_STATUSES; s++) {
        if (c->exits_by_status[s] > 0) {
            printf(" %d: %llu", s, (unsigned long long)c->exits_by_status[s]);
        }
    }
    printf("; unexpected %llu\n", (unsigned long long)c->bad_exits);
    fflush(stdout);
}

static int setup(cluster_t *c, uint64_t *rng)
{
    char config[128];
    snprintf(config, sizeof config, "{\"compact_records\": %u, \"durability\": \"durable\"}",
             CLUSTER_COMPACT_RECORDS);
    for (int i = 0; i < CLUSTER_NODES; i++) {
        node_t *n = &c->nodes[i];
        snprintf(n->name, sizeof n->name, "n%d", i + 1);
        n->port = free_port(rng);
        n->exited_ms = -(long long)c->lease_ms * CLUSTER_RESTART_LEASES; /* start at once */
        if (hf_server_init(&n->srv) != 0 || hf_server_write_config(&n->srv, config) != 0 ||
            n->port == 0) {
            return -1;
        }
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(c->pg_dir, sizeof c->pg_dir, "%s/holdfast-cluster-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(c->pg_dir) == NULL || chmod(c->pg_dir, 0755) != 0) {
        return -1;
    }
    snprintf(pg_sh_stop_dir, sizeof pg_sh_stop_dir, "%s", c->pg_dir);
    c->pg_started = true;
    if (pg_sh("start", c->pg_dir, "--standby") != 0) {
        model_report("pg.sh start %s --standby failed", c->pg_dir);
        return -1;
    }
    if (proxy_start(&c->proxy, rng) != 0 || follow_pg(c) != 0) {
        return -1;
    }
    c->supervising = true;
    if (pthread_create(&c->supervisor, NULL, supervise, c) != 0) {
        c->supervising = false;
        return -1;
    }
    /* The first owner, and the skus' first stock: round 0's changes. */
    if (!connect_any(c, &c->k.conn, &c->k_node, &c->k_generation, hf_now_ms() + CLUSTER_BACK_MS) ||
        model_first_stock(&c->k) != 0) {
        model_report("no node served the shop within %d ms of the start", CLUSTER_BACK_MS);
        return -1;
    }
    model_check(&c->k);
    hf_conn_close(&c->k.conn);
    return 0;
}

/* SIGTERM to every node (a standby waiting for the lease ends with 0 too),
 * reaped by the supervisor: the nodes die with the thread that started
 * them (PR_SET_PDEATHSIG), so it stops last. */
static void stop_nodes(cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->ending = c->hold_restarts = true;
    for (int i = 0; i < CLUSTER_NODES; i++) {
        if (c->nodes[i].srv.pid != 0) {
            kill(c->nodes[i].srv.pid, SIGTERM);
        }
    }
    pthread_mutex_unlock(&c->lock);
    long long deadline_ms = hf_now_ms() + HF_TEST_STOP_MS;
    for (int i = 0; i < CLUSTER_NODES; i++) {
        while (hf_now_ms() < deadline_ms) {
            pthread_mutex_lock(&c->lock);
            pid_t pid = c->nodes[i].srv.pid;
            pthread_mutex_unlock(&c->lock);
            if (pid == 0) {
                break;
            }
            sleep_ms(CLUSTER_SUPERVISE_MS);
        }
    }
    pthread_mutex_lock(&c->lock);
    c->supervising = false;
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->supervisor, NULL);
    for (int i = 0; i < CLUSTER_NODES; i++) {
        if (c->nodes[i].srv.pid != 0) {
            model_report("node %s outlived SIGTERM for %d ms", c->nodes[i].name, HF_TEST_STOP_MS);
            c->bad_exits++;
        }
    }
}

/* Stops every node, the proxy and the database. 0 if all was clean. */
static int teardown(cluster_t *c, bool failed)
{
    int rc = 0;
    if (c->supervising) {
        stop_nodes(c);
    }
    rc = c->bad_exits > 0 ? -1 : 0;
    for (int i = 0; i < CLUSTER_NODES; i++) {
        node_t *n = &c->nodes[i];
        if (n->srv.root[0] != '\0') {
            if (!hf_server_logs_clean(&n->srv)) {
                rc = -1;
            }
            n->srv.failed |= failed || rc != 0; /* keep its logs to look at */
            hf_server_deinit(&n->srv);
        }
    }
    proxy_stop(&c->proxy);
    if (c->pg_started) {
        rc |= pg_sh(failed || rc != 0 ? "stop" : "destroy", c->pg_dir, NULL) == 0 ? 0 : -1;
        if (!failed && rc == 0) {
            rmdir(c->pg_dir);
        } else {
            printf("cluster: PostgreSQL's data and logs are kept in %s\n", c->pg_dir);
        }
        pg_sh_stop_dir[0] = '\0';
    }
    return rc;
}

/* The rounds' kinds, in an order drawn from the seed. */
static fault_t *plan(const uint32_t counts[FAULT_KINDS], uint32_t *total, uint64_t *rng)
{
    *total = 0;
    for (int k = 0; k < FAULT_KINDS; k++) {
        *total += counts[k];
    }
    fault_t *order = calloc(*total + 1, sizeof *order);
    if (order == NULL) {
        exit(2);
    }
    uint32_t n = 0;
    for (int k = 0; k < FAULT_KINDS; k++) {
        for (uint32_t i = 0; i < counts[k]; i++) {
            order[n++] = (fault_t)k;
        }
    }
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = model_below(rng, i);
        fault_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    return order;
}

static bool healthy(const cluster_t *c)
{
    return c->m.lost + c->m.disagreed + c->m.unexpected + c->acked_after_resume + c->bad_exits +
               c->failures ==
           0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static cluster_t c;
    model_init(&c.m, "cluster");
    uint64_t seed = (uint64_t)model_env_number("CLUSTER_SEED", hf_wall_ms(), 0, INT64_MAX);
    uint32_t counts[FAULT_KINDS];
    counts[FAULT_KILL] = (uint32_t)model_env_number("CLUSTER_KILLS", 100, 0, CLUSTER_ROUNDS_MAX);
    counts[FAULT_STOP] = (uint32_t)model_env_number("CLUSTER_STOPS", 10, 0, CLUSTER_ROUNDS_MAX);
    counts[FAULT_DB] =
        (uint32_t)model_env_number("CLUSTER_DB_FAILOVERS", 20, 0, CLUSTER_ROUNDS_MAX);
    counts[FAULT_PARTITION] =
        (uint32_t)model_env_number("CLUSTER_PARTITIONS", 10, 0, CLUSTER_ROUNDS_MAX);
    c.lease_ms = (uint32_t)model_env_number("CLUSTER_LEASE_MS", CLUSTER_LEASE_MS, 500, 60000);
    printf("cluster: seed %llu (CLUSTER_SEED=%llu repeats the choices); rounds: kill %u, stop "
           "%u, db %u, partition %u; %d nodes, %d clients, lease_ms %u\n",
           (unsigned long long)seed, (unsigned long long)seed, counts[FAULT_KILL],
           counts[FAULT_STOP], counts[FAULT_DB], counts[FAULT_PARTITION], CLUSTER_NODES,
           CLUSTER_WORKERS, c.lease_ms);
    fflush(stdout);
    if (!pg_installed()) {
        printf("cluster: SKIP: PostgreSQL 15 is not installed (scripts/deps.sh test installs "
               "postgresql-15)\n");
        return SKIPPED;
    }
    signal(SIGINT, on_signal);
    hf_test_quiet(true); /* refused connections are what a failover looks like */
    signal(SIGTERM, on_signal);
    uint64_t rng = seed;
    pthread_mutex_init(&c.lock, NULL);
    c.k = (checker_t){
        .m = &c.m, .conn = {.fd = -1}, .rng = seed ^ 1, .reconnect = checker_reconnect, .ctx = &c};
    c.k_node = CLUSTER_NODES - 1;
    for (uint32_t i = 0; i <= CLUSTER_WORKERS; i++) {
        c.workers[i] = (worker_t){.m = &c.m, .index = i, .workers = CLUSTER_WORKERS, .seed = seed};
    }
    for (uint32_t i = 0; i < CLUSTER_WORKERS; i++) {
        c.clients[i] = (client_t){.c = &c, .w = &c.workers[i], .node = (int)i % CLUSTER_NODES};
        c.clients[i].k = (checker_t){.m = &c.m,
                                     .conn = {.fd = -1},
                                     .rng = seed ^ (i + 2),
                                     .reconnect = client_reconnect,
                                     .ctx = &c.clients[i]};
    }
    uint32_t total;
    fault_t *order = plan(counts, &total, &rng);
    for (int k = 0; k < FAULT_KINDS; k++) {
        c.times[k] = calloc(counts[k] + 1, sizeof *c.times[k]);
    }
    c.db_times = calloc(counts[FAULT_DB] + 1, sizeof *c.db_times);
    long long started_ms = hf_now_ms();
    bool ok = setup(&c, &rng) == 0;
    for (uint32_t r = 0; ok && r < total && healthy(&c); r++) {
        if (!round_run(&c, order[r], seed, &rng)) {
            c.failures++;
        }
    }
    ok = ok && healthy(&c);
    ok = teardown(&c, !ok) == 0 && ok;
    summary(&c, hf_now_ms() - started_ms);
    model_free(&c.m, c.workers, CLUSTER_WORKERS + 1);
    for (int k = 0; k < FAULT_KINDS; k++) {
        free(c.times[k]);
    }
    free(c.db_times);
    free(order);
    return ok ? 0 : 1;
}
