/*
 * listener.c - the server's own accept loop: every connection is admitted
 * through the connection table (conns.h) before the HTTP library sees it,
 * and one past a cap is answered 503 overloaded and closed at once, instead
 * of waiting unanswered in the listen backlog.
 *
 * One thread accepts, waits for heads, and reaps, on one epoll set:
 *   - it accepts, and admits or refuses, what the listening socket has;
 *   - an admitted connection waits in the set until its first request head
 *     is all in the socket's buffer (looked at with MSG_PEEK, nothing read),
 *     and only then goes to the library (MHD_add_connection; the library has
 *     no listening socket of its own). So connections that send nothing or
 *     dribble their head cost an fd and an epoll entry, never a place in the
 *     HTTP threads' poll() sets, whose every turn costs time per connection;
 *   - every REAP_MS it shuts down connections past their deadline (a waiting
 *     one then reads as ended, and is closed here).
 * Looking at a head costs the bytes queued so far, every time more arrive;
 * a connection gets PEEK_BUDGET_BYTES of that in all, then goes to the
 * library as it is (which answers or waits, within the same deadlines).
 *
 * The library tells us where each connection is (listener_on_connection,
 * listener_on_request_line, and the request callbacks in http.c through
 * listener_enter), which moves its phase in the table.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "errors.h"
#include "hf_thread.h"
#include "listener.h"

/* Deadlines are enforced to within this; a scan of 60,000 slots takes
 * about 50 us, so the reaper costs nothing worth measuring. */
#define REAP_MS 50
/* Connections accepted per wake-up before the reaper gets its turn. */
#define ACCEPT_BATCH_MAX 256
#define EVENTS_MAX 256
/* A refused client's request bytes read (and dropped) before the close, so
 * that the close sends a FIN, not a reset that could destroy the 503. */
#define REFUSED_DRAIN_BYTES_MAX 16384
/* Out of file descriptors: wait this long before accepting again, rather
 * than spin on a listening socket that stays readable. */
#define ACCEPT_BACKOFF_MS 10
/* A head looked at while it waits: as much as the library takes for one
 * (its memory limit per connection, http.c); a fuller buffer goes over. */
#define PEEK_BYTES_MAX (2 * HF_HEADER_BYTES_MAX)
/* Looking costs the bytes queued each time; four full looks, then over. */
#define PEEK_BUDGET_BYTES (4 * PEEK_BYTES_MAX)

/* A line for connections closed unread at most this often (a storm of
 * them, out of memory say, must not flood the log). */
#define CLOSED_UNREAD_LOG_MS 1000

/* The epoll set's own entries; a waiting connection's is its slot and fd. */
#define EVENT_LISTEN UINT64_MAX
#define EVENT_WAKE (UINT64_MAX - 1)

/* ----------------------------------------------------------- descriptors */

/* File descriptors the server needs besides its connections: the journal
 * and snapshots, web pages being read, the simulator's pipes, the
 * library's own. */
#define FDS_OTHER_MAX 256
/* Connections the library may hold beyond our count, closed by us but not
 * yet by it (its limit is set this much above ours). */
#define LIBRARY_SLACK 256
/* The fd map has one entry per possible fd: no more than this (4 MiB). */
#define FD_LIMIT_MAX (1u << 20)

uint32_t listener_library_limit(const server_config_t *c)
{
    return c->connections_max + 2 * c->connections_reserve + LIBRARY_SLACK;
}

int listener_fit_fds(const server_config_t *c, uint32_t *fd_limit)
{
    uint64_t needed = (uint64_t)listener_library_limit(c) + FDS_OTHER_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "level=error msg=\"cannot read the file descriptor limit\" err=\"%s\"\n",
                strerror(errno));
        return -1;
    }
    rlim_t want = rl.rlim_cur;
    if (want < needed) {
        want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > needed ? needed : rl.rlim_max;
    }
    if (want == RLIM_INFINITY || want > FD_LIMIT_MAX) {
        want = needed > FD_LIMIT_MAX ? needed : FD_LIMIT_MAX;
    }
    if (want != rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            fprintf(stderr, "level=error msg=\"cannot set the file descriptor limit\" "
                            "limit=%llu err=\"%s\"\n",
                    (unsigned long long)want, strerror(errno));
            return -1;
        }
    }
    if (want < needed) {
        fprintf(stderr,
                "level=error msg=\"not enough file descriptors for the connections: lower "
                "connections_max or raise the hard limit (ulimit -Hn, LimitNOFILE=)\" "
                "connections_max=%u connections_reserve=%u needed=%llu limit=%llu\n",
                c->connections_max, c->connections_reserve, (unsigned long long)needed,
                (unsigned long long)want);
        return -1;
    }
    *fd_limit = (uint32_t)want;
    return 0;
}

/* -------------------------------------------------------------- refusals */

/* The whole reply to a refused connection, written once at start. */
static void refusal_make(server_t *s, conns_refusal_t why, const char *message)
{
    const api_error_info_t *e = api_error(API_ERR_OVERLOADED);
    assert(e->status == 503); /* the status line below */
    json_out_t body;
    json_out_init(&body);
    jw_obj_begin(&body);
    jw_key(&body, "error");
    jw_obj_begin(&body);
    jw_kcstr(&body, "code", e->code);
    jw_kcstr(&body, "message", message);
    jw_kcstr(&body, "reason", why == CONNS_REFUSED_ADDRESS ? "connections_per_address"
                                                           : "connections");
    jw_obj_end(&body);
    jw_obj_end(&body);
    json_out_t *r = &s->refusals[why];
    json_out_init(r);
    jw_rawf(r,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Retry-After: %d\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
            HF_RETRY_AFTER_S, body.size);
    jw_raw(r, body.data, body.size);
    json_out_free(&body);
}

/* Answers 503 and closes. The socket is new, so the reply fits its send
 * buffer and a non-blocking send takes it whole. */
static void refuse(server_t *s, int fd, conns_refusal_t why)
{
    const json_out_t *r = &s->refusals[why == CONNS_REFUSED_ADDRESS ? why : CONNS_REFUSED_FULL];
    ssize_t sent = send(fd, r->data, r->size, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)sent; /* a client gone already needs no reply */
    shutdown(fd, SHUT_WR);
    char scratch[4096];
    for (size_t drained = 0; drained < REFUSED_DRAIN_BYTES_MAX;) {
        ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        drained += (size_t)n;
    }
    close(fd);
}

/* ------------------------------------------------------------ the thread */

static uint64_t event_of(uint32_t index, int fd)
{
    return (uint64_t)index << 32 | (uint32_t)fd;
}

typedef enum { HEAD_PARTIAL, HEAD_IN, HEAD_GONE } head_state_t;

/* Looks at what a waiting connection has sent. HEAD_IN: the head is all in,
 * or no more can come (the client shut its side, or the buffer or budget is
 * spent): the library answers what there is. */
static head_state_t head_state(server_t *s, uint32_t index, int fd, bool ended)
{
    static char head[PEEK_BYTES_MAX]; /* the accept thread's only */
    ssize_t n = recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return HEAD_PARTIAL;
    }
    if (n <= 0) {
        return HEAD_GONE; /* closed, reset, or shut down by the reaper */
    }
    bool complete = memmem(head, (size_t)n, "\r\n\r\n", 4) != NULL;
    bool spent = !conns_peeked(&s->conns, index, (size_t)n, PEEK_BUDGET_BYTES);
    return complete || spent || ended || (size_t)n == sizeof head ? HEAD_IN : HEAD_PARTIAL;
}

/* A connection admitted, then closed by this thread with no reply and its
 * request unread (its client sees a reset): counted as refused
 * {reason="error"} and logged, at most one line per CLOSED_UNREAD_LOG_MS
 * with how many were closed since, so that a client's "connection reset"
 * can always be traced to here. */
static void closed_unread(server_t *s, const char *why, int err)
{
    static int64_t logged_ms;   /* the accept thread's only */
    static uint64_t unlogged;
    conns_count_refusal(&s->conns, CONNS_REFUSED_ERROR);
    int64_t now_ms = server_mono_ms();
    if (logged_ms != 0 && now_ms - logged_ms < CLOSED_UNREAD_LOG_MS) {
        unlogged++;
        return;
    }
    fprintf(stderr,
            "level=warn msg=\"a connection was closed unread\" why=\"%s\" err=\"%s\" "
            "closed_since_last_line=%llu\n",
            why, strerror(err), (unsigned long long)unlogged);
    logged_ms = now_ms;
    unlogged = 0;
}

/* Gives a connection whose head is in to the library. */
static void hand_over(server_t *s, uint32_t index, int fd, const struct sockaddr *a,
                      socklen_t len)
{
    conns_hand_over(&s->conns, index);
    if (MHD_add_connection(s->daemon, fd, a, len) != MHD_YES) {
        /* The library closed fd; only this thread admits fds, so the
         * number is no one else's slot yet. */
        int err = errno;
        conns_closed(&s->conns, fd);
        closed_unread(s, "the HTTP library would not take it", err);
    }
}

static void end_waiting(server_t *s, int fd)
{
    conns_closed(&s->conns, fd);
    close(fd);
}

/* Admits or refuses one accepted connection. An admitted one goes to the
 * library at once if its head is in already (a client that sends its
 * request with the handshake's last packet), else waits in the set. */
static void take(server_t *s, int fd, const struct sockaddr_storage *a, socklen_t len)
{
    conns_refusal_t why;
    uint32_t index;
    conns_admission_t pool = conns_open(&s->conns, fd, (const struct sockaddr *)a, len,
                                        server_mono_ms(), &why, &index);
    if (pool == CONNS_REFUSED) {
        refuse(s, fd, why);
        return;
    }
    head_state_t head = head_state(s, index, fd, false);
    if (head == HEAD_IN) {
        hand_over(s, index, fd, (const struct sockaddr *)a, len);
        return;
    }
    /* Edge-triggered: a dribbled head wakes us once per arrival, not on
     * every turn while it sits incomplete. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                             .data.u64 = event_of(index, fd)};
    if (head == HEAD_GONE) {
        end_waiting(s, fd); /* its client left first */
    } else if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = errno;
        end_waiting(s, fd);
        closed_unread(s, "cannot wait for its request head", err);
    }
}

/* Accepts what is waiting, up to a batch. Returns false when out of
 * descriptors (the caller backs off). */
static bool accept_batch(server_t *s)
{
    for (int i = 0; i < ACCEPT_BATCH_MAX; i++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof a;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&a, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take(s, fd, &a, len);
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            conns_count_refusal(&s->conns, CONNS_REFUSED_ERROR);
            return false;
        } else if (errno != EINTR && errno != ECONNABORTED) {
            return true; /* EAGAIN: nothing more waits */
        }
    }
    return true;
}

/* Bytes arrived on a waiting connection, or it ended. */
static void on_waiting(server_t *s, uint64_t event, uint32_t flags)
{
    uint32_t index = (uint32_t)(event >> 32);
    int fd = (int)(uint32_t)event;
    bool ended = (flags & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    head_state_t head = head_state(s, index, fd, ended);
    if (head == HEAD_PARTIAL) {
        return;
    }
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (head == HEAD_GONE || getpeername(fd, (struct sockaddr *)&a, &len) != 0) {
        end_waiting(s, fd);
        return;
    }
    hand_over(s, index, fd, (struct sockaddr *)&a, len);
}

/* Stops polling the listening socket for a while (out of descriptors), or
 * starts again. */
static void listen_pause(server_t *s, bool pause)
{
    struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.u64 = EVENT_LISTEN};
    epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, s->listen_fd, &ev);
}

static void *accept_main(void *arg)
{
    server_t *s = arg;
    hf_thread_name("hf-accept");
    int64_t reap_at_ms = server_mono_ms() + REAP_MS;
    int64_t paused_until_ms = 0;
    struct epoll_event events[EVENTS_MAX];
    for (;;) {
        int64_t now_ms = server_mono_ms();
        if (now_ms >= reap_at_ms) {
            conns_reap(&s->conns, now_ms);
            reap_at_ms = now_ms + REAP_MS;
        }
        if (paused_until_ms != 0 && now_ms >= paused_until_ms) {
            listen_pause(s, false);
            paused_until_ms = 0;
        }
        int64_t wake_ms = paused_until_ms != 0 && paused_until_ms < reap_at_ms ? paused_until_ms
                                                                              : reap_at_ms;
        int n = epoll_wait(s->epoll_fd, events, EVENTS_MAX, (int)(wake_ms - now_ms));
        for (int i = 0; i < n; i++) {
            uint64_t event = events[i].data.u64;
            if (event == EVENT_WAKE) {
                return NULL;
            }
            if (event != EVENT_LISTEN) {
                on_waiting(s, event, events[i].events);
            } else if (!accept_batch(s)) {
                listen_pause(s, true);
                paused_until_ms = server_mono_ms() + ACCEPT_BACKOFF_MS;
            }
        }
    }
}

/* The epoll set with the listening socket and the wake pipe in it. */
static int epoll_make(server_t *s)
{
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.u64 = EVENT_LISTEN};
    struct epoll_event wake_ev = {.events = EPOLLIN, .data.u64 = EVENT_WAKE};
    if (s->epoll_fd < 0 || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &listen_ev) != 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->wake_fds[0], &wake_ev) != 0) {
        return -1;
    }
    return 0;
}

int listener_start(server_t *s, int listen_fd, uint32_t fd_limit)
{
    const server_config_t *c = &s->config;
    conns_config_t cc = {
        .max = c->connections_max,
        .reserve = c->connections_reserve,
        .per_address_max = c->connections_per_address_max,
        .fd_limit = fd_limit,
        .head_ms = c->head_timeout_ms,
        .body_ms = c->body_timeout_ms,
        .idle_ms = c->idle_timeout_ms,
    };
    if (RAND_bytes((unsigned char *)cc.seed, sizeof cc.seed) != 1 ||
        conns_init(&s->conns, &cc) != 0) {
        fprintf(stderr, "level=error msg=\"cannot reserve the connection table\"\n");
        return -1;
    }
    s->conns_ready = true;
    char text[256];
    snprintf(text, sizeof text, "too many open connections from your address (at most %u)",
             c->connections_per_address_max);
    refusal_make(s, CONNS_REFUSED_ADDRESS, text);
    snprintf(text, sizeof text, "the server has all the connections it takes (%u)",
             c->connections_max);
    refusal_make(s, CONNS_REFUSED_FULL, text);
    s->listen_fd = listen_fd;
    if (fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) != 0 ||
        pipe2(s->wake_fds, O_CLOEXEC) != 0 || epoll_make(s) != 0 ||
        pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
        fprintf(stderr, "level=error msg=\"cannot start the accept thread\" err=\"%s\"\n",
                strerror(errno));
        return -1;
    }
    s->accepting = true;
    return 0;
}

void listener_stop(server_t *s)
{
    if (s->accepting) {
        char stop = 1;
        ssize_t n = write(s->wake_fds[1], &stop, 1);
        assert(n == 1);
        pthread_join(s->accept_thread, NULL);
        s->accepting = false;
        conns_close_waiting(&s->conns); /* no request of theirs had begun */
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd); /* new clients are refused by the kernel now */
        s->listen_fd = -1;
    }
}

/* After the library stopped: no callback can reach the table any more. */
void listener_deinit(server_t *s)
{
    listener_stop(s);
    for (int i = 0; i < 2; i++) {
        if (s->wake_fds[i] >= 0) {
            close(s->wake_fds[i]);
            s->wake_fds[i] = -1;
        }
    }
    if (s->epoll_fd >= 0) {
        close(s->epoll_fd);
        s->epoll_fd = -1;
    }
    for (int i = 0; i < CONNS_REFUSAL_COUNT; i++) {
        json_out_free(&s->refusals[i]);
    }
    if (s->conns_ready) {
        assert(conns_check(&s->conns));
        conns_deinit(&s->conns);
        s->conns_ready = false;
    }
}

/* ------------------------------------------------- the library's notices */

void listener_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe)
{
    server_t *s = cls;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = info != NULL ? info->connect_fd : -1;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = conns_started(&s->conns, fd);
    } else {
        conns_closed(&s->conns, fd);
        *socket_context = NULL;
    }
}

static conn_t *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

/* The request line is in: a kept-alive connection's next head begins. */
void *listener_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    server_t *s = cls;
    conn_t *c = slot_of(conn);
    if (c != NULL) {
        conn_enter(&s->conns, c, CONN_HEAD, server_mono_ms());
    }
    return NULL; /* on_request makes the request's state */
}

conn_t *listener_slot(struct MHD_Connection *conn)
{
    return slot_of(conn);
}

void listener_enter(server_t *s, conn_t *c, conn_phase_t p)
{
    if (c != NULL) {
        conn_enter(&s->conns, c, p, server_mono_ms());
    }
}
