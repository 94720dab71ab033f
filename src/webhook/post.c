/*
 * post.c - one HTTP/1.1 POST over a fresh connection, bounded in time and
 * bytes, that an owner can cut short (webhook.h's delivery threads).
 *
 * Only what delivery needs: connect to an address (no name lookups), send
 * the head and the body, read the status line, close. The reply's body is
 * not read: a receiver says all we need in its status. Every step waits in
 * poll() until the attempt's deadline, and also on cancel_fd, which the
 * owner makes readable to end every attempt at once (shutdown).
 */
#include "post.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"

/* A status line and headers fit; a receiver's body is never read. */
#define POST_REPLY_BYTES_MAX 4096


/* Waits for events on fd until deadline; 1 ready, 0 timed out or
 * cancelled (why in err), -1 error. */
static int wait_fd(int fd, short events, int cancel_fd, int64_t deadline_ms, char *err,
                   size_t err_size)
{
    for (;;) {
        int64_t left = deadline_ms - hf_mono_ms();
        if (left <= 0) {
            snprintf(err, err_size, "timed out");
            return 0;
        }
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = cancel_fd, .events = POLLIN}};
        int n = poll(p, cancel_fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, err_size, "poll: %s", strerror(errno));
            return -1;
        }
        if (n > 0 && cancel_fd >= 0 && (p[1].revents & POLLIN)) {
            snprintf(err, err_size, "stopped");
            return 0;
        }
        if (n > 0) {
            return 1;
        }
    }
}

static int connect_to(const webhook_endpoint_t *e, int cancel_fd, int64_t deadline_ms, char *err,
                      size_t err_size)
{
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_size, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&e->addr, e->addr_len) != 0 &&
        errno != EINPROGRESS) {
        snprintf(err, err_size, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (wait_fd(fd, POLLOUT, cancel_fd, deadline_ms, err, err_size) != 1) {
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
        snprintf(err, err_size, "connect: %s", strerror(so_error != 0 ? so_error : errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *data, size_t size, int cancel_fd, int64_t deadline_ms,
                    char *err, size_t err_size)
{
    while (size > 0) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            size -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, err_size, "send: %s", strerror(errno));
            return -1;
        }
        if (wait_fd(fd, POLLOUT, cancel_fd, deadline_ms, err, err_size) != 1) {
            return -1;
        }
    }
    return 0;
}

/* Reads until the status line is complete; its code, or -1. */
static int read_status(int fd, int cancel_fd, int64_t deadline_ms, char *err, size_t err_size)
{
    char buf[POST_REPLY_BYTES_MAX + 1];
    size_t len = 0;
    while (len < POST_REPLY_BYTES_MAX) {
        ssize_t n = recv(fd, buf + len, POST_REPLY_BYTES_MAX - len, 0);
        if (n == 0) {
            snprintf(err, err_size, "closed without a reply");
            return -1;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, err_size, "recv: %s", strerror(errno));
            return -1;
        }
        if (n < 0) {
            if (wait_fd(fd, POLLIN, cancel_fd, deadline_ms, err, err_size) != 1) {
                return -1;
            }
            continue;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n") != NULL) {
            int status;
            if (sscanf(buf, "HTTP/1.%*1[01] %3d", &status) == 1 && status >= 100 &&
                status <= 599) {
                return status;
            }
            break;
        }
    }
    snprintf(err, err_size, "a malformed reply");
    return -1;
}

int webhook_post(const webhook_endpoint_t *e, const char *head, size_t head_len,
                 const char *body, size_t body_len, uint32_t timeout_ms, int cancel_fd, char *err,
                 size_t err_size)
{
    int64_t deadline_ms = hf_mono_ms() + timeout_ms;
    int fd = connect_to(e, cancel_fd, deadline_ms, err, err_size);
    if (fd < 0) {
        return -1;
    }
    int status = -1;
    if (send_all(fd, head, head_len, cancel_fd, deadline_ms, err, err_size) == 0 &&
        send_all(fd, body, body_len, cancel_fd, deadline_ms, err, err_size) == 0) {
        status = read_status(fd, cancel_fd, deadline_ms, err, err_size);
    }
    close(fd);
    return status;
}
