/*
 * http_client.c - one keep-alive HTTP/1.1 connection to loopback (see
 * http_client.h).
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

/* ------------------------------------------------------------------- URL */

static bool loopback_v4(const char *host, struct sockaddr_in *a)
{
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
        return false;
    }
    a->sin_family = AF_INET;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

static bool loopback_v6(const char *host, struct sockaddr_in6 *a)
{
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
        return false;
    }
    a->sin6_family = AF_INET6;
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
}

/* Splits "HOST[:PORT][/]" (HOST may be "[v6]"); false if malformed. */
static bool split_authority(const char *s, char *host, size_t host_size, long *port)
{
    const char *end;
    if (*s == '[') {
        end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= host_size) {
            return false;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        end++;
    } else {
        end = s + strcspn(s, ":/");
        if (end == s || (size_t)(end - s) >= host_size) {
            return false;
        }
        memcpy(host, s, (size_t)(end - s));
        host[end - s] = '\0';
    }
    *port = 80;
    if (*end == ':') {
        char *after;
        errno = 0;
        *port = strtol(end + 1, &after, 10);
        if (after == end + 1 || errno != 0 || *port < 1 || *port > 65535) {
            return false;
        }
        end = after;
    }
    return strcmp(end, "") == 0 || strcmp(end, "/") == 0;
}

int http_client_init(http_client_t *c, const char *url, const char *key, char *err,
                     size_t err_size)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    char host[64];
    long port;
    if (strlen(url) > HTTP_URL_BYTES_MAX || strncmp(url, "http://", 7) != 0 ||
        !split_authority(url + 7, host, sizeof host, &port)) {
        snprintf(err, err_size, "%.80s is not a URL of the form http://127.0.0.1:PORT", url);
        return -1;
    }
    const char *literal = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&c->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&c->addr;
    if (loopback_v4(literal, v4)) {
        v4->sin_port = htons((uint16_t)port);
        c->addr_len = sizeof *v4;
    } else if (loopback_v6(literal, v6)) {
        v6->sin6_port = htons((uint16_t)port);
        c->addr_len = sizeof *v6;
    } else {
        snprintf(err, err_size,
                 "%s is not this machine: a live run talks to loopback only "
                 "(127.0.0.0/8, ::1 or localhost)",
                 host);
        return -1;
    }
    if (key != NULL && strlen(key) > HTTP_KEY_BYTES_MAX) {
        snprintf(err, err_size, "the API key is longer than %d bytes", HTTP_KEY_BYTES_MAX);
        return -1;
    }
    snprintf(c->host, sizeof c->host, "%s", url + 7);
    c->host[strcspn(c->host, "/")] = '\0';
    snprintf(c->key, sizeof c->key, "%s", key != NULL ? key : "");
    c->cap = HTTP_HEAD_BYTES_MAX + 1;
    c->buf = malloc(c->cap);
    if (c->buf == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

void http_client_deinit(http_client_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->buf);
    c->buf = NULL;
    c->fd = -1;
}

/* ------------------------------------------------------------ connection */

static int connect_now(http_client_t *c, char *err, size_t err_size)
{
    c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(err, err_size, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = HTTP_TIMEOUT_MS / 1000,
                         .tv_usec = HTTP_TIMEOUT_MS % 1000 * 1000};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&c->addr, c->addr_len) != 0) {
        snprintf(err, err_size, "cannot connect to %s: %s", c->host, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->reconnects++;
    return 0;
}

static void drop(http_client_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

static int send_all(http_client_t *c, struct iovec *iov, int count)
{
    while (count > 0) {
        ssize_t n = writev(c->fd, iov, count);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- reply */

/* Reads into buf[have..] at least one byte; 0 on end of file, -1 on error. */
static ssize_t read_more(http_client_t *c, size_t have)
{
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + have, c->cap - 1 - have, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* The value of header name in head (NUL-terminated), or NULL. */
static const char *header(const char *head, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
            return line + len + 1 + strspn(line + len + 1, " \t");
        }
    }
    return NULL;
}

/* Parses the head in buf[0..head_len) (its blank line included). */
static int parse_head(http_client_t *c, size_t head_len, http_reply_t *out, size_t *body_len,
                      bool *close_after)
{
    char saved = c->buf[head_len];
    c->buf[head_len] = '\0';
    int status = 0;
    int rc = sscanf(c->buf, "HTTP/1.%*1[01] %3d", &status) == 1 && status >= 100 && status <= 599
                 ? 0
                 : -1;
    const char *length = header(c->buf, "Content-Length");
    char *end = NULL;
    unsigned long long n = length != NULL ? strtoull(length, &end, 10) : 0;
    if (length == NULL || end == length || n > HTTP_BODY_BYTES_MAX) {
        rc = -1;
    }
    const char *conn = header(c->buf, "Connection");
    *close_after = conn != NULL && strncasecmp(conn, "close", 5) == 0;
    c->buf[head_len] = saved;
    out->status = status;
    *body_len = (size_t)n;
    return rc;
}

/* 1: the connection was closed before any byte (stale); 0: a reply; -1. */
static int read_reply(http_client_t *c, http_reply_t *out, char *err, size_t err_size)
{
    size_t have = 0;
    char *blank = NULL;
    while (blank == NULL) {
        if (have == HTTP_HEAD_BYTES_MAX) {
            snprintf(err, err_size, "a reply's head is longer than %d bytes", HTTP_HEAD_BYTES_MAX);
            return -1;
        }
        ssize_t n = read_more(c, have);
        if (n == 0 && have == 0) {
            return 1;
        }
        if (n <= 0) {
            snprintf(err, err_size, "no reply from %s: %s", c->host,
                     n == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        have += (size_t)n;
        c->buf[have] = '\0';
        blank = strstr(c->buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(blank + 4 - c->buf), body_len;
    bool close_after;
    if (parse_head(c, head_len, out, &body_len, &close_after) != 0) {
        snprintf(err, err_size, "a malformed reply from %s (no status or Content-Length)",
                 c->host);
        return -1;
    }
    if (head_len + body_len + 1 > c->cap) {
        char *bigger = realloc(c->buf, head_len + body_len + 1);
        if (bigger == NULL) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        c->buf = bigger;
        c->cap = head_len + body_len + 1;
    }
    while (have < head_len + body_len) {
        ssize_t n = read_more(c, have);
        if (n <= 0) {
            snprintf(err, err_size, "a reply from %s was cut short", c->host);
            return -1;
        }
        have += (size_t)n;
    }
    c->buf[head_len + body_len] = '\0';
    out->body = c->buf + head_len;
    out->body_len = body_len;
    if (close_after) {
        drop(c);
    }
    return 0;
}

/* ---------------------------------------------------------------- request */

static int exchange(http_client_t *c, const char *head, size_t head_len, const char *body,
                    size_t body_len, http_reply_t *out, char *err, size_t err_size)
{
    struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
    if (send_all(c, iov, body_len > 0 ? 2 : 1) != 0) {
        return 1; /* closed under us: the server has not read this request */
    }
    return read_reply(c, out, err, err_size);
}

int http_request(http_client_t *c, const char *method, const char *path, const char *extra_header,
                 const char *body, size_t body_len, http_reply_t *out, char *err,
                 size_t err_size)
{
    char head[1024];
    int len = snprintf(head, sizeof head,
                       "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s%s"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                       method, path, c->host, c->key[0] ? "Authorization: Bearer " : "", c->key,
                       c->key[0] ? "\r\n" : "", extra_header ? extra_header : "",
                       extra_header ? "\r\n" : "", body_len);
    assert(len > 0);
    if ((size_t)len >= sizeof head) {
        snprintf(err, err_size, "a request's head is too long (%.60s)", path);
        return -1;
    }
    c->requests++;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = c->fd < 0;
        if (fresh && connect_now(c, err, err_size) != 0) {
            return -1;
        }
        int rc = exchange(c, head, (size_t)len, body, body ? body_len : 0, out, err, err_size);
        if (rc == 0) {
            return 0;
        }
        drop(c);
        if (rc < 0 || fresh) {
            if (rc > 0) {
                snprintf(err, err_size, "%s closed the connection without a reply", c->host);
            }
            return -1;
        }
    }
    return -1;
}
