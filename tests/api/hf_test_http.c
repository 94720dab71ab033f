/*
 * hf_test_http.c - the API tests' HTTP client and server launcher.
 *
 * See hf_test_http.h for what it is for and the rules it keeps. Two choices
 * worth knowing when reading the code:
 *
 *   1. The server's stderr goes to a file per run (server-N.log in the test's
 *      root directory), not to a pipe: nothing has to keep draining it, the
 *      server can never block on a full pipe, and the file is there for a
 *      post-mortem. The launcher polls that file for the listening line.
 *   2. A request body is sent in slices, and before each slice the socket is
 *      checked for a reply: a server may answer 413 as soon as it sees the
 *      Content-Length, then stop reading, and a client that insisted on
 *      sending all 2 MiB first would only see a reset.
 */
#include "hf_test_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HF_BINARY
#error "HF_BINARY must name the holdfast binary under test"
#endif

/* A reply's header block larger than this is a broken server. */
#define HF_REPLY_HEADER_BYTES_MAX (64 * 1024)
#define HF_REPLY_HEADERS_MAX 64
/* Bodies go out in slices of this, with a look for an early reply between. */
#define HF_SEND_SLICE_BYTES (64 * 1024)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool quiet; /* atomic: hf_test_quiet */

void hf_test_quiet(bool on)
{
    __atomic_store_n(&quiet, on, __ATOMIC_RELEASE);
}

static void say(const char *fmt, ...)
{
    if (__atomic_load_n(&quiet, __ATOMIC_ACQUIRE)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("hf_test: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- the test process ---- */

static int tests_failed;

int hf_tests_done(int failed)
{
    tests_failed = failed;
    return failed;
}

/* LeakSanitizer asks this at exit (a documented weak hook; harmless without
 * the sanitizer). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return tests_failed != 0;
}

/* ---- time ---- */

long long hf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long hf_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hf_sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

long long hf_parse_instant(const char *text)
{
    if (text == NULL || strlen(text) != 24) {
        return -1;
    }
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        bool digit = isdigit((unsigned char)text[i]) != 0;
        if (shape[i] == 'd' ? !digit : text[i] != shape[i]) {
            return -1;
        }
    }
    struct tm tm = {0};
    tm.tm_year = atoi(text) - 1900;
    tm.tm_mon = atoi(text + 5) - 1;
    tm.tm_mday = atoi(text + 8);
    tm.tm_hour = atoi(text + 11);
    tm.tm_min = atoi(text + 14);
    tm.tm_sec = atoi(text + 17);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60) {
        return -1;
    }
    return (long long)timegm(&tm) * 1000 + atoi(text + 20);
}

/* ---- replies ---- */

void hf_response_free(hf_response_t *r)
{
    for (size_t i = 0; i < r->header_count; i++) {
        free(r->header_names[i]);
        free(r->header_values[i]);
    }
    free(r->header_names);
    free(r->header_values);
    free(r->body);
    if (r->json != NULL) {
        json_decref(r->json);
    }
    memset(r, 0, sizeof *r);
}

const char *hf_response_header(const hf_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (strcasecmp(r->header_names[i], name) == 0) {
            return r->header_values[i];
        }
    }
    return NULL;
}

const char *hf_json_str(const json_t *object, const char *key)
{
    json_t *v = json_is_object(object) ? json_object_get(object, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool hf_json_int(const json_t *object, const char *key, long long *out)
{
    json_t *v = json_is_object(object) ? json_object_get(object, key) : NULL;
    if (!json_is_integer(v)) {
        return false;
    }
    *out = (long long)json_integer_value(v);
    return true;
}

static const json_t *error_object(const hf_response_t *r)
{
    json_t *e = json_is_object(r->json) ? json_object_get(r->json, "error") : NULL;
    return json_is_object(e) ? e : NULL;
}

const char *hf_error_code(const hf_response_t *r)
{
    return hf_json_str(error_object(r), "code");
}

const char *hf_error_field(const hf_response_t *r)
{
    return hf_json_str(error_object(r), "field");
}

/* ---- the contract record ---- */

/* A page's or the metrics' text is not checked beyond its type; its start
 * is enough to tell a library's HTML error page. */
#define HF_CONTRACT_TEXT_BYTES_MAX 1024

static pthread_mutex_t contract_lock = PTHREAD_MUTEX_INITIALIZER;
static int contract_fd = -2; /* -2: not opened yet; -1: not recording */

/* The record file of this process; -1 if nothing is recorded. Under
 * contract_lock. */
static int contract_file(void)
{
    if (contract_fd != -2) {
        return contract_fd;
    }
    const char *dir = getenv("HF_CONTRACT_DIR");
    contract_fd = -1;
    if (dir == NULL || dir[0] == '\0') {
        return -1;
    }
    mkdir(dir, 0755); /* the fixture makes it; a suite run alone may not have */
    char exe[256] = "test";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 4] = '\0';
    const char *name = strrchr(exe, '/') != NULL ? strrchr(exe, '/') + 1 : exe;
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%d.jsonl", dir, name, (int)getpid());
    contract_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (contract_fd < 0) {
        say("cannot record replies in %s: %s", path, strerror(errno));
    }
    return contract_fd;
}

static bool is_json_type(const char *type)
{
    return type != NULL && strncasecmp(type, "application/json", 16) == 0;
}

/* The reply and the request it answers, one line, for validate.mjs. */
static void contract_record(const hf_conn_t *c, const hf_response_t *r)
{
    const char *type = hf_response_header(r, "Content-Type");
    size_t shown = is_json_type(type) || r->body_len <= HF_CONTRACT_TEXT_BYTES_MAX
                       ? r->body_len
                       : HF_CONTRACT_TEXT_BYTES_MAX;
    json_t *body = json_stringn(r->body, shown); /* NULL: not UTF-8 (an image) */
    json_t *headers = json_object();
    static const char *const kept[] = {"Allow", "Retry-After", "Idempotent-Replayed"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        const char *v = hf_response_header(r, kept[i]);
        char name[32];
        size_t n = 0;
        for (; kept[i][n] != '\0' && n + 1 < sizeof name; n++) {
            name[n] = (char)tolower((unsigned char)kept[i][n]);
        }
        name[n] = '\0';
        if (v != NULL) {
            json_object_set_new(headers, name, json_string(v));
        }
    }
    json_t *rec = json_pack("{s:s, s:s, s:b, s:i, s:o, s:o, s:o, s:I}", "method", c->method,
                            "target", c->target, "raw", c->raw, "status", r->status,
                            "content_type", type != NULL ? json_string(type) : json_null(),
                            "headers", headers, "body", body != NULL ? body : json_null(),
                            "body_bytes", (json_int_t)r->body_len);
    char *line = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (line == NULL) {
        say("cannot record the reply to %s %.80s", c->method, c->target);
        return;
    }
    pthread_mutex_lock(&contract_lock);
    int fd = contract_file();
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps's NUL becomes the line's end: one write */
    if (fd >= 0 && write(fd, line, len + 1) != (ssize_t)(len + 1)) {
        say("cannot record the reply to %s %.80s: %s", c->method, c->target, strerror(errno));
    }
    pthread_mutex_unlock(&contract_lock);
    free(line);
}

/* ---- connections ---- */

int hf_conn_open(hf_conn_t *c, uint16_t port, const char *bearer)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->port = port;
    c->bearer = bearer;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say("socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = HF_TEST_TIMEOUT_MS / 1000,
                         .tv_usec = (HF_TEST_TIMEOUT_MS % 1000) * 1000};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        say("connect 127.0.0.1:%u: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

void hf_conn_close(hf_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
    c->buf_len = c->buf_cap = 0;
}

static int send_all(hf_conn_t *c, const void *bytes, size_t len)
{
    const char *p = bytes;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Remembers the request a reply will answer. */
static void conn_names_request(hf_conn_t *c, const char *method, size_t method_len,
                               const char *target, size_t target_len, bool raw)
{
    snprintf(c->method, sizeof c->method, "%.*s", (int)method_len, method);
    snprintf(c->target, sizeof c->target, "%.*s", (int)target_len, target);
    c->raw = raw;
}

/* Bytes that begin "METHOD SP TARGET SP HTTP/" start a request; others
 * (a body's next slice, garbage) leave what the connection remembers, or
 * name no request when nothing was sent before. */
int hf_conn_send_raw(hf_conn_t *c, const void *bytes, size_t len)
{
    const char *text = bytes;
    size_t method_len = 0;
    while (method_len < len && method_len < HF_TEST_METHOD_MAX - 1 &&
           isupper((unsigned char)text[method_len])) {
        method_len++;
    }
    const char *target = text + method_len + 1;
    const char *end = method_len > 0 && method_len + 1 < len && text[method_len] == ' '
                          ? memchr(target, ' ', len - method_len - 1)
                          : NULL;
    if (end != NULL && (size_t)(text + len - end) > 6 && memcmp(end, " HTTP/", 6) == 0) {
        conn_names_request(c, text, method_len, target, (size_t)(end - target), true);
    } else if (c->method[0] == '\0' && c->target[0] == '\0') {
        conn_names_request(c, "", 0, "", 0, true);
    }
    return send_all(c, bytes, len);
}

/* Reads more bytes into c->buf. Returns the count, 0 at EOF, -1 on error
 * or timeout. The buffer stays NUL-terminated. */
static ssize_t conn_fill(hf_conn_t *c)
{
    if (c->buf_cap - c->buf_len < 4096) {
        size_t cap = c->buf_cap < 16384 ? 16384 : c->buf_cap * 2;
        char *buf = realloc(c->buf, cap);
        if (buf == NULL) {
            return -1;
        }
        c->buf = buf;
        c->buf_cap = cap;
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + c->buf_len, c->buf_cap - c->buf_len - 1, 0);
    } while (n < 0 && errno == EINTR);
    c->ended = n == 0;
    if (n > 0) {
        c->buf_len += (size_t)n;
    }
    c->buf[c->buf_len] = '\0';
    return n;
}

static void conn_consume(hf_conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->buf_len - n);
    c->buf_len -= n;
    c->buf[c->buf_len] = '\0';
}

/* Index just past the first `needle` in c->buf, filling as needed up to
 * limit bytes. Returns -1 if the connection ends first. */
static long conn_find(hf_conn_t *c, const char *needle, size_t limit)
{
    size_t nlen = strlen(needle);
    size_t from = 0;
    for (;;) {
        for (size_t i = from; i + nlen <= c->buf_len; i++) {
            if (memcmp(c->buf + i, needle, nlen) == 0) {
                return (long)(i + nlen);
            }
        }
        from = c->buf_len >= nlen ? c->buf_len - nlen + 1 : 0;
        if (c->buf_len > limit || conn_fill(c) <= 0) {
            return -1;
        }
    }
}

static int body_append(hf_response_t *r, const char *bytes, size_t len)
{
    char *body = realloc(r->body, r->body_len + len + 1);
    if (body == NULL) {
        return -1;
    }
    memcpy(body + r->body_len, bytes, len);
    r->body = body;
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* Moves n body bytes from the connection to the reply. */
static int conn_take(hf_conn_t *c, hf_response_t *r, size_t n)
{
    while (n > 0) {
        if (c->buf_len == 0 && conn_fill(c) <= 0) {
            return -1;
        }
        size_t k = n < c->buf_len ? n : c->buf_len;
        if (body_append(r, c->buf, k) != 0) {
            return -1;
        }
        conn_consume(c, k);
        n -= k;
    }
    return 0;
}

static int read_chunked(hf_conn_t *c, hf_response_t *r)
{
    for (;;) {
        long eol = conn_find(c, "\r\n", 1024);
        if (eol < 0) {
            return -1;
        }
        char *end;
        unsigned long size = strtoul(c->buf, &end, 16);
        if (end == c->buf) {
            return -1;
        }
        conn_consume(c, (size_t)eol);
        if (size == 0) {
            break;
        }
        if (conn_take(c, r, size) != 0) {
            return -1;
        }
        long crlf = conn_find(c, "\r\n", 2);
        if (crlf != 2) {
            return -1;
        }
        conn_consume(c, 2);
    }
    /* Trailers, if any, up to the empty line. */
    for (;;) {
        long eol = conn_find(c, "\r\n", HF_REPLY_HEADER_BYTES_MAX);
        if (eol < 0) {
            return -1;
        }
        conn_consume(c, (size_t)eol);
        if (eol == 2) {
            return 0;
        }
    }
}

static int read_until_close(hf_conn_t *c, hf_response_t *r)
{
    for (;;) {
        if (c->buf_len > 0) {
            if (body_append(r, c->buf, c->buf_len) != 0) {
                return -1;
            }
            conn_consume(c, c->buf_len);
        }
        ssize_t n = conn_fill(c);
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            return -1;
        }
    }
}

static char *trimmed_dup(const char *start, const char *end)
{
    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    char *s = malloc((size_t)(end - start) + 1);
    if (s != NULL) {
        memcpy(s, start, (size_t)(end - start));
        s[end - start] = '\0';
    }
    return s;
}

/* Parses the header lines of a block that ends with "\r\n\r\n". */
static int parse_headers(hf_response_t *r, const char *block, size_t len)
{
    r->header_names = calloc(HF_REPLY_HEADERS_MAX, sizeof(char *));
    r->header_values = calloc(HF_REPLY_HEADERS_MAX, sizeof(char *));
    if (r->header_names == NULL || r->header_values == NULL) {
        return -1;
    }
    const char *p = strstr(block, "\r\n") + 2; /* past the status line */
    const char *stop = block + len - 2;
    while (p < stop) {
        const char *eol = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || r->header_count == HF_REPLY_HEADERS_MAX) {
            say("bad reply header line: %.*s", (int)(eol - p), p);
            return -1;
        }
        r->header_names[r->header_count] = trimmed_dup(p, colon);
        r->header_values[r->header_count] = trimmed_dup(colon + 1, eol);
        r->header_count++;
        p = eol + 2;
    }
    return 0;
}

static bool header_has_token(const hf_response_t *r, const char *name, const char *token)
{
    const char *v = hf_response_header(r, name);
    size_t n = strlen(token);
    for (; v != NULL && *v != '\0'; v++) {
        if (strncasecmp(v, token, n) == 0) {
            return true;
        }
    }
    return false;
}

static int read_head(hf_conn_t *c, hf_response_t *r)
{
    for (;;) {
        long end = conn_find(c, "\r\n\r\n", HF_REPLY_HEADER_BYTES_MAX);
        if (end < 0) {
            return -1;
        }
        int status = 0;
        if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599) {
            say("bad status line: %.40s", c->buf);
            return -1;
        }
        if (status >= 200) {
            r->status = status;
            char saved = c->buf[end];
            c->buf[end] = '\0';
            int rc = parse_headers(r, c->buf, (size_t)end);
            c->buf[end] = saved;
            conn_consume(c, (size_t)end);
            return rc;
        }
        conn_consume(c, (size_t)end); /* 1xx: the real reply follows */
    }
}

int hf_conn_read(hf_conn_t *c, hf_response_t *r)
{
    memset(r, 0, sizeof *r);
    if (c->fd < 0 || read_head(c, r) != 0) {
        hf_response_free(r);
        return -1;
    }
    int rc = 0;
    const char *length = hf_response_header(r, "Content-Length");
    if (r->status == 204 || r->status == 304) {
        rc = 0;
    } else if (header_has_token(r, "Transfer-Encoding", "chunked")) {
        rc = read_chunked(c, r);
    } else if (length != NULL) {
        rc = conn_take(c, r, (size_t)strtoull(length, NULL, 10));
    } else {
        rc = read_until_close(c, r);
    }
    if (rc != 0) {
        say("reply %d: body cut short", r->status);
        hf_response_free(r);
        return -1;
    }
    if (r->body == NULL) {
        body_append(r, "", 0);
    }
    r->json = json_loadb(r->body, r->body_len, 0, NULL);
    contract_record(c, r);
    return 0;
}

/* Why a read found no reply. errno means nothing when recv() found the
 * end (it returned 0 and set none), so that case is named apart: a server
 * that closed cleanly is not one that reset, nor one that never answered. */
static const char *no_reply_why(const hf_conn_t *c, int err)
{
    if (c->ended) {
        return "the server closed the connection";
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
        return "none before the read timeout";
    }
    return strerror(err);
}

static bool reply_waiting(const hf_conn_t *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

static int send_head(hf_conn_t *c, const char *method, const char *target, const char *headers,
                     const char *body, size_t body_len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&text, &size);
    if (m == NULL) {
        return -1;
    }
    fprintf(m, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", method, target, c->port);
    if (c->bearer != NULL) {
        fprintf(m, "Authorization: Bearer %s\r\n", c->bearer);
    }
    if (headers != NULL) {
        fputs(headers, m);
    }
    if (body != NULL) {
        fprintf(m, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    }
    fputs("\r\n", m);
    fclose(m);
    conn_names_request(c, method, strlen(method), target, strlen(target), false);
    int rc = send_all(c, text, size);
    free(text);
    return rc;
}

int hf_conn_exchange(hf_conn_t *c, const char *method, const char *target, const char *headers,
                     const char *body, size_t body_len, hf_response_t *r)
{
    memset(r, 0, sizeof *r);
    if (c->fd < 0) {
        return -1;
    }
    /* A failed send is not the verdict: the server may have replied and
     * closed (413, 431), so the reply is read in every case. */
    if (send_head(c, method, target, headers, body, body_len) == 0 && body != NULL) {
        size_t sent = 0;
        while (sent < body_len && !reply_waiting(c)) {
            size_t n =
                body_len - sent < HF_SEND_SLICE_BYTES ? body_len - sent : HF_SEND_SLICE_BYTES;
            if (send_all(c, body + sent, n) != 0) {
                break;
            }
            sent += n;
        }
    }
    if (hf_conn_read(c, r) != 0) {
        say("%s %.80s: no reply (%s)", method, target, no_reply_why(c, errno));
        return -1;
    }
    hf_secrets_learn(r->json);
    return 0;
}

/* ---- secrets ---- */

/* A ring of what replies handed out: a test's holds and entries are far
 * fewer. Threads of one test (races) share it, under a lock. */
#define HF_SECRETS_MAX 8192
#define HF_SECRET_TEXT_MAX 63

static struct {
    char id[HF_TEST_ID_MAX];
    char secret[HF_SECRET_TEXT_MAX + 1];
} secrets[HF_SECRETS_MAX];
static size_t secrets_made;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

static void learn_one(const json_t *obj)
{
    const char *id = hf_json_str(obj, "id"), *secret = hf_json_str(obj, "secret");
    if (id == NULL || secret == NULL || strlen(id) >= HF_TEST_ID_MAX ||
        strlen(secret) > HF_SECRET_TEXT_MAX) {
        return;
    }
    pthread_mutex_lock(&secrets_lock);
    size_t i = secrets_made++ % HF_SECRETS_MAX;
    snprintf(secrets[i].id, sizeof secrets[i].id, "%s", id);
    snprintf(secrets[i].secret, sizeof secrets[i].secret, "%s", secret);
    pthread_mutex_unlock(&secrets_lock);
}

void hf_secrets_learn(const json_t *reply)
{
    learn_one(reply);
    learn_one(json_object_get(reply, "hold")); /* a waitlist entry's offer */
}

bool hf_secret_of(const char *id, char *out, size_t size)
{
    bool found = false;
    pthread_mutex_lock(&secrets_lock);
    size_t kept = secrets_made < HF_SECRETS_MAX ? secrets_made : HF_SECRETS_MAX;
    for (size_t k = 1; k <= kept && !found; k++) { /* the newest first */
        size_t i = (secrets_made - k) % HF_SECRETS_MAX;
        if (strcmp(secrets[i].id, id) == 0) {
            snprintf(out, size, "%s", secrets[i].secret);
            found = true;
        }
    }
    pthread_mutex_unlock(&secrets_lock);
    return found;
}

/* The id in /v1/holds/ID[/...] or /v1/waitlist/ID, and the header its
 * secret goes in; false for any other target. */
static bool target_names(const char *target, char *id, const char **header)
{
    static const struct {
        const char *prefix, *header;
    } kinds[] = {{"/v1/holds/", "Hold-Secret"}, {"/v1/waitlist/", "Waitlist-Secret"}};
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(kinds[k].prefix);
        size_t len = strncmp(target, kinds[k].prefix, n) == 0 ? strcspn(target + n, "/?") : 0;
        if (len > 0 && len < HF_TEST_ID_MAX) {
            memcpy(id, target + n, len);
            id[len] = '\0';
            *header = kinds[k].header;
            return true;
        }
    }
    return false;
}

/* headers, and the remembered secret of what target names unless headers
 * send one already; NULL (headers as they are) if there is nothing to add. */
static char *with_secret(const char *target, const char *headers)
{
    char id[HF_TEST_ID_MAX], secret[HF_SECRET_TEXT_MAX + 1];
    const char *header;
    if (!target_names(target, id, &header) || !hf_secret_of(id, secret, sizeof secret) ||
        (headers != NULL && strstr(headers, "-Secret:") != NULL)) {
        return NULL;
    }
    size_t size = (headers ? strlen(headers) : 0) + strlen(header) + strlen(secret) + 8;
    char *all = malloc(size);
    if (all != NULL) {
        snprintf(all, size, "%s%s: %s\r\n", headers ? headers : "", header, secret);
    }
    return all;
}

int hf_call_bytes(const hf_client_t *cl, const char *method, const char *target,
                  const char *headers, const char *body, size_t body_len, hf_response_t *r)
{
    hf_conn_t c;
    memset(r, 0, sizeof *r);
    if (hf_conn_open(&c, cl->port, cl->bearer) != 0) {
        return -1;
    }
    char *all = cl->secrets ? with_secret(target, headers) : NULL;
    int rc = hf_conn_exchange(&c, method, target, all != NULL ? all : headers, body, body_len, r);
    free(all);
    hf_conn_close(&c);
    return rc;
}

int hf_call(const hf_client_t *cl, const char *method, const char *target, const char *headers,
            const char *body, hf_response_t *r)
{
    return hf_call_bytes(cl, method, target, headers, body, body == NULL ? 0 : strlen(body), r);
}

/* ---- the API's own shapes ---- */

int hf_sku_put(const hf_client_t *cl, const char *sku, long long stock)
{
    char target[256], body[64];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    snprintf(body, sizeof body, "{\"stock\": %lld}", stock);
    hf_response_t r;
    if (hf_call(cl, "PUT", target, NULL, body, &r) != 0) {
        return -1;
    }
    int status = r.status;
    if (status != 200 && status != 201) {
        say("PUT %s stock %lld: %d %s", target, stock, status, r.body);
    }
    hf_response_free(&r);
    return status;
}

static bool sku_counts(const json_t *j, hf_sku_counts_t *out)
{
    return hf_json_int(j, "stock", &out->stock) && hf_json_int(j, "held", &out->held) &&
           hf_json_int(j, "sold", &out->sold) && hf_json_int(j, "available", &out->available);
}

int hf_sku_get(const hf_client_t *cl, const char *sku, hf_sku_counts_t *out)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    hf_response_t r;
    if (hf_call(cl, "GET", target, NULL, NULL, &r) != 0) {
        return -1;
    }
    int status = r.status;
    if (status == 200 && !sku_counts(r.json, out)) {
        say("GET %s: counts missing in %s", target, r.body);
        status = -1;
    }
    hf_response_free(&r);
    return status;
}

int hf_hold_create(const hf_client_t *cl, const char *body, const char *idem, char *id_out,
                   hf_response_t *r)
{
    char headers[256] = "";
    if (idem != NULL) {
        snprintf(headers, sizeof headers, "Idempotency-Key: %s\r\n", idem);
    }
    hf_response_t mine;
    hf_response_t *reply = r != NULL ? r : &mine;
    if (hf_call(cl, "POST", "/v1/holds", headers, body, reply) != 0) {
        return -1;
    }
    int status = reply->status;
    const char *id = hf_json_str(reply->json, "id");
    if (status == 201 && id_out != NULL) {
        snprintf(id_out, HF_TEST_ID_MAX, "%s", id != NULL ? id : "");
    }
    if (reply == &mine) {
        hf_response_free(&mine);
    }
    return status;
}

int hf_hold_state(const hf_client_t *cl, const char *id, char *state_out)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    hf_response_t r;
    if (hf_call(cl, "GET", target, NULL, NULL, &r) != 0) {
        return -1;
    }
    const char *state = hf_json_str(r.json, "state");
    snprintf(state_out, 32, "%s", state != NULL ? state : "");
    int status = r.status;
    hf_response_free(&r);
    return status;
}

/* ---- checks ---- */

bool hf_expect_status(const hf_response_t *r, int status)
{
    if (r->status == status) {
        return true;
    }
    say("expected status %d, got %d: %.2000s", status, r->status, r->body ? r->body : "");
    return false;
}

static bool same(const char *want, const char *got)
{
    return got != NULL && strcmp(want, got) == 0;
}

bool hf_expect_error(const hf_response_t *r, int status, const char *code, const char *field)
{
    const json_t *e = error_object(r);
    bool ok = r->status == status && e != NULL && same(code, hf_error_code(r)) &&
              hf_json_str(e, "message") != NULL &&
              (field == NULL || same(field, hf_error_field(r)));
    const char *type = hf_response_header(r, "Content-Type");
    if (ok && (type == NULL || strncasecmp(type, "application/json", 16) != 0)) {
        say("error reply without Content-Type application/json (%s)", type ? type : "none");
        ok = false;
    }
    if (!ok) {
        say("expected %d %s%s%s, got %d: %.2000s", status, code, field ? " field " : "",
            field ? field : "", r->status, r->body ? r->body : "");
    }
    return ok;
}

bool hf_expect_sku(const hf_client_t *cl, const char *sku, long long stock, long long held,
                   long long sold)
{
    hf_sku_counts_t n;
    int status = hf_sku_get(cl, sku, &n);
    if (status != 200) {
        say("GET sku %s: status %d", sku, status);
        return false;
    }
    if (n.stock == stock && n.held == held && n.sold == sold &&
        n.available == stock - held - sold) {
        return true;
    }
    say("sku %s: want stock %lld held %lld sold %lld available %lld; got %lld %lld %lld %lld", sku,
        stock, held, sold, stock - held - sold, n.stock, n.held, n.sold, n.available);
    return false;
}

/* ---- the server under test ---- */

int hf_server_init(hf_server_t *s)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->root, sizeof s->root, "%s/holdfast-api-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(s->root) == NULL) {
        say("mkdtemp %s: %s", s->root, strerror(errno));
        return -1;
    }
    snprintf(s->data_dir, sizeof s->data_dir, "%s/data", s->root);
    if (mkdir(s->data_dir, 0700) != 0) {
        say("mkdir %s: %s", s->data_dir, strerror(errno));
        return -1;
    }
    return hf_server_write_config(s, "{}"); /* the core's contract: defenses off */
}

/* A JSON object's text with "policy": HF_POLICY_OFF as its first member. A
 * text that is not an object (a test of bad configs) stays as it is. */
static void write_with_policy_off(FILE *f, const char *json_text)
{
    const char *p = json_text;
    while (*p == ' ' || *p == '\n') {
        p++;
    }
    if (*p != '{') {
        fputs(json_text, f);
        return;
    }
    p++;
    while (*p == ' ' || *p == '\n') {
        p++;
    }
    fprintf(f, "{\"policy\": %s%s%s", HF_POLICY_OFF, *p == '}' ? "" : ", ", p);
}

int hf_server_write_config(hf_server_t *s, const char *json_text)
{
    snprintf(s->config_path, sizeof s->config_path, "%s/config.json", s->root);
    FILE *f = fopen(s->config_path, "w");
    if (f == NULL) {
        return -1;
    }
    write_with_policy_off(f, json_text);
    return fclose(f) == 0 ? 0 : -1;
}

int hf_server_write_config_raw(hf_server_t *s, const char *json_text)
{
    snprintf(s->config_path, sizeof s->config_path, "%s/config.json", s->root);
    FILE *f = fopen(s->config_path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs(json_text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The child: stderr (and stdout) to the log, then the binary. */
static void exec_server(const char *log_path, char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (log < 0 || null < 0) {
        _exit(126);
    }
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    execv(HF_BINARY, argv);
    _exit(127);
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                break;
            }
            text = grown;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    if (text != NULL) {
        text[len] = '\0';
    }
    if (len_out != NULL) {
        *len_out = len;
    }
    return text;
}

/* The port in a "msg=listening ... addr=HOST:PORT" line, or 0. */
static uint16_t listening_port(const char *log)
{
    for (const char *line = log; line != NULL && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        const char *eol = strchr(line, '\n');
        if (eol == NULL) {
            return 0; /* a line still being written */
        }
        const char *msg = strstr(line, "msg=");
        const char *addr = strstr(line, "addr=");
        if (msg == NULL || addr == NULL || msg > eol || addr > eol ||
            strncmp(msg + 4 + (msg[4] == '"'), "listening", 9) != 0) {
            continue;
        }
        const char *colon = NULL;
        for (const char *p = addr; p < eol && *p != ' '; p++) {
            colon = *p == ':' ? p : colon;
        }
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (port > 0 && port < 65536) {
            return (uint16_t)port;
        }
    }
    return 0;
}

/* ---- the journal in PostgreSQL ---- */

/* HF_TEST_PG_ENV names a file with a line PG_URL=<URI> (the pg test
 * fixture's, tests/cluster): then every server under test is a cluster's
 * node with its journal there, each on a shop of its own, so the suites
 * check the same contract on that journal. NULL when unset. */
const char *hf_test_journal_url(void)
{
    static char url[1024];
    static int state; /* 0: not read, 1: set, -1: unset */
    if (state == 0) {
        state = -1;
        const char *path = getenv("HF_TEST_PG_ENV");
        FILE *f = path && *path ? fopen(path, "r") : NULL;
        char line[1100];
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "PG_URL=", 7) == 0) {
                char *v = line + 7;
                v += *v == '\'' || *v == '"';
                v[strcspn(v, "'\"\r\n")] = '\0';
                snprintf(url, sizeof url, "%s", v);
                state = url[0] != '\0' ? 1 : -1;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
        if (path && *path && state != 1) {
            say("HF_TEST_PG_ENV=%s has no PG_URL line", path);
            abort();
        }
    }
    return state == 1 ? url : NULL;
}

/* The server's shop: named after its root directory, so that it is the
 * same across the restarts of one test and unique to it. */
static void shop_of(const hf_server_t *s, char *out, size_t size)
{
    const char *suffix = strrchr(s->root, '-');
    suffix = suffix ? suffix + 1 : "x";
    int n = snprintf(out, size, "t%d-", (int)getpid());
    for (size_t i = 0; suffix[i] != '\0' && (size_t)n + 1 < size; i++) {
        char ch = suffix[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        /* mkdtemp's letters have two cases: keep them apart */
        out[n++] = ok ? ch : (ch >= 'A' && ch <= 'Z') ? (char)('a' + (ch - 'A') % 26) : '-';
        if (ch >= 'A' && ch <= 'Z' && (size_t)n + 1 < size) {
            out[n++] = '0';
        }
    }
    out[n] = '\0';
}

const char *hf_server_shop(const hf_server_t *s)
{
    static char shop[33];
    if (hf_test_journal_url() == NULL) {
        return "default";
    }
    shop_of(s, shop, sizeof shop);
    return shop;
}

static int build_argv(const hf_server_t *s, const char *const *extra, const char **argv, int max)
{
    static char shop[33];
    int n = 0;
    argv[n++] = HF_BINARY;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data";
    argv[n++] = s->data_dir;
    if (hf_test_journal_url() != NULL) {
        shop_of(s, shop, sizeof shop);
        argv[n++] = "--journal";
        argv[n++] = hf_test_journal_url();
        argv[n++] = "--shop";
        argv[n++] = shop;
        argv[n++] = "--node";
        argv[n++] = "api";
    }
    if (s->config_path[0] != '\0') {
        argv[n++] = "--config";
        argv[n++] = s->config_path;
    }
    for (int i = 0; extra != NULL && extra[i] != NULL && n < max - 1; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return n;
}

/* Polls the log for the listening line; the server may also die first. */
static int await_listening(hf_server_t *s)
{
    long long deadline = hf_now_ms() + HF_TEST_START_MS;
    while (hf_now_ms() < deadline) {
        char *log = read_file(s->log_path, NULL);
        s->port = log ? listening_port(log) : 0;
        free(log);
        if (s->port != 0) {
            return 0;
        }
        int wstatus;
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
            say("the server exited before listening (status 0x%x)", wstatus);
            s->pid = 0;
            return -1;
        }
        hf_sleep_ms(5);
    }
    say("no listening line within %d ms", HF_TEST_START_MS);
    return -1;
}

int hf_server_spawn(hf_server_t *s, const char *const *argv)
{
    snprintf(s->log_path, sizeof s->log_path, "%s/server-%u.log", s->root, s->run_count++);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        exec_server(s->log_path, (char *const *)argv);
    }
    s->pid = pid;
    s->port = 0;
    return 0;
}

int hf_server_start(hf_server_t *s, const char *const *extra)
{
    const char *argv[64];
    build_argv(s, extra, argv, 64);
    if (hf_server_spawn(s, argv) != 0) {
        return -1;
    }
    if (await_listening(s) != 0) {
        s->failed = true;
        if (s->pid != 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
        hf_server_dump_log(s);
        return -1;
    }
    return 0;
}

static int exit_code(int wstatus)
{
    if (WIFEXITED(wstatus)) {
        return WEXITSTATUS(wstatus);
    }
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : -1;
}

/* Waits up to ms for pid; returns its exit code, or -2 if it still runs. */
static int wait_exit(pid_t pid, long long ms)
{
    long long deadline = hf_now_ms() + ms;
    for (;;) {
        int wstatus;
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid) {
            return exit_code(wstatus);
        }
        if (got < 0 || hf_now_ms() >= deadline) {
            return got < 0 ? -1 : -2;
        }
        hf_sleep_ms(2);
    }
}

int hf_server_stop(hf_server_t *s, int sig)
{
    if (s->pid == 0) {
        say("stop: the server is not running");
        return -1;
    }
    kill(s->pid, sig);
    int code = wait_exit(s->pid, HF_TEST_STOP_MS);
    if (code == -2) {
        say("the server outlived signal %d for %d ms; killing it", sig, HF_TEST_STOP_MS);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        code = -1;
    }
    s->pid = 0;
    if (sig != SIGKILL && code != 0) {
        hf_server_dump_log(s);
    }
    return code;
}

static const char *const sanitizer_marks[] = {"AddressSanitizer", "LeakSanitizer",
                                              "runtime error:", "Assertion `", NULL};

bool hf_server_logs_clean(const hf_server_t *s)
{
    bool clean = true;
    for (unsigned i = 0; i < s->run_count; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/server-%u.log", s->root, i);
        char *log = read_file(path, NULL);
        for (int m = 0; log != NULL && sanitizer_marks[m] != NULL; m++) {
            if (strstr(log, sanitizer_marks[m]) != NULL) {
                say("%s reports \"%s\"", path, sanitizer_marks[m]);
                clean = false;
            }
        }
        free(log);
    }
    return clean;
}

void hf_server_dump_log(const hf_server_t *s)
{
    size_t len = 0;
    char *log = read_file(s->log_path, &len);
    if (log == NULL) {
        return;
    }
    size_t from = len > 6000 ? len - 6000 : 0;
    fprintf(stderr, "---- %s (last %zu bytes) ----\n%s\n---- end of log ----\n", s->log_path,
            len - from, log + from);
    free(log);
}

/* Removes a directory tree. Recursion is bounded: the tree is ours (root,
 * data/, and whatever the server keeps in data/) and depth is capped. */
static void remove_tree(const char *path, int depth)
{
    DIR *d = depth < 8 ? opendir(path) : NULL;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
                remove_tree(child, depth + 1);
            } else {
                unlink(child);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

int hf_server_deinit(hf_server_t *s)
{
    if (s->pid != 0) {
        int code = wait_exit(s->pid, 0);
        if (code != -2) {
            say("the server had exited on its own (code %d)", code);
            s->failed = true;
            hf_server_dump_log(s);
        } else {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        s->pid = 0;
    }
    if (s->root[0] != '\0' && !hf_server_logs_clean(s)) {
        s->failed = true;
        hf_server_dump_log(s);
    }
    if (s->root[0] != '\0') {
        if (s->failed || getenv("HF_TEST_KEEP") != NULL) {
            say("kept %s", s->root);
        } else {
            remove_tree(s->root, 0);
        }
    }
    return s->failed ? -1 : 0;
}

/* ---- the command line ---- */

static void drain(int fd, char *buf, size_t size, size_t *len, bool *open_)
{
    char scratch[4096];
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n <= 0) {
        *open_ = false;
        return;
    }
    size_t room = size - 1 - *len;
    size_t k = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, scratch, k);
    *len += k;
    buf[*len] = '\0';
}

static void run_child(int out_fd, int err_fd, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = HF_BINARY;
    for (int i = 0; args[i] != NULL && n < 63; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(HF_BINARY, (char *const *)argv);
    _exit(127);
}

int hf_run(const char *const *argv, int timeout_ms, hf_run_result_t *res)
{
    memset(res, 0, sizeof *res);
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) {
        return res->status = -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        return res->status = -1;
    }
    if (pid == 0) {
        close(out[0]);
        close(err[0]);
        run_child(out[1], err[1], argv);
    }
    close(out[1]);
    close(err[1]);
    size_t out_len = 0, err_len = 0;
    bool out_open = true, err_open = true;
    long long deadline = hf_now_ms() + timeout_ms;
    while ((out_open || err_open) && hf_now_ms() < deadline) {
        struct pollfd p[2] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                              {.fd = err_open ? err[0] : -1, .events = POLLIN}};
        if (poll(p, 2, 20) <= 0) {
            continue;
        }
        if (p[0].revents) {
            drain(out[0], res->out, sizeof res->out, &out_len, &out_open);
        }
        if (p[1].revents) {
            drain(err[0], res->err, sizeof res->err, &err_len, &err_open);
        }
    }
    close(out[0]);
    close(err[0]);
    long long left = deadline - hf_now_ms();
    int code = wait_exit(pid, left > 0 ? left : 0);
    if (code == -2) {
        say("%s %s: still running after %d ms; killed", HF_BINARY, argv[0], timeout_ms);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        code = -1;
    }
    return res->status = code;
}

/* ---- fixtures ---- */

int hf_fixture_setup(void **state, const char *config, bool start)
{
    hf_fixture_t *fx = calloc(1, sizeof *fx);
    if (fx == NULL || hf_server_init(&fx->srv) != 0) {
        free(fx);
        return -1;
    }
    if ((config != NULL && hf_server_write_config(&fx->srv, config) != 0) ||
        (start && hf_server_start(&fx->srv, NULL) != 0)) {
        hf_server_deinit(&fx->srv);
        free(fx);
        return -1;
    }
    fx->cl.port = fx->srv.port;
    *state = fx;
    return 0;
}

int hf_fixture_teardown(void **state)
{
    hf_fixture_t *fx = *state;
    int rc = 0;
    if (fx->srv.pid != 0) {
        int code = hf_server_stop(&fx->srv, SIGTERM);
        if (code != 0) {
            fprintf(stderr, "teardown: SIGTERM ended the server with %d, not 0\n", code);
            rc = -1;
        }
    }
    if (hf_server_deinit(&fx->srv) != 0) {
        rc = -1;
    }
    free(fx);
    return rc;
}
