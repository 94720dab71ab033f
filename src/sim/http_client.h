/*
 * http_client.h - the smallest HTTP/1.1 client the live simulator needs: one
 * keep-alive connection to a holdfast server on this machine.
 *
 * Loopback only, by construction: the URL's host must be an IPv4 address in
 * 127.0.0.0/8, the IPv6 address ::1, or "localhost" (taken as 127.0.0.1; no
 * name is ever looked up), so a simulated attack can never leave the machine.
 * Plain http, no proxies, no redirects. Replies must say their length
 * (Content-Length), as holdfast's do.
 *
 * Every call is bounded: a request waits at most HTTP_TIMEOUT_MS for each
 * read or write, a reply's head is at most HTTP_HEAD_BYTES_MAX and its body
 * at most HTTP_BODY_BYTES_MAX.
 */
#ifndef HF_HTTP_CLIENT_H
#define HF_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_TIMEOUT_MS 10000
#define HTTP_HEAD_BYTES_MAX 16384
#define HTTP_BODY_BYTES_MAX (4u << 20)
#define HTTP_KEY_BYTES_MAX 256
#define HTTP_URL_BYTES_MAX 256

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[64]; /* the Host header: as written in the URL */
    char key[HTTP_KEY_BYTES_MAX + 1];
    int fd; /* -1: not connected */
    char *buf;
    size_t cap;
    uint64_t requests, reconnects;
} http_client_t;

typedef struct {
    int status;       /* 100-599 */
    const char *body; /* NUL-terminated, in the client's buffer: good until the next call */
    size_t body_len;
} http_reply_t;

/* Reads url ("http://127.0.0.1:8080", a trailing '/' allowed, no path) and
 * key (NULL or "": no Authorization header). 0, or -1 with a message in err
 * if the URL is malformed or names anything but loopback. Does not connect. */
int http_client_init(http_client_t *c, const char *url, const char *key, char *err,
                     size_t err_size);
void http_client_deinit(http_client_t *c);

/* Sends one request (body may be NULL; extra_header is NULL or one
 * "Name: value" line without CRLF) and reads the reply. 0, or -1 with a
 * message in err when no reply came (refused, timed out, malformed). A kept
 * connection that the server closed while idle answers a request with an
 * end of file before any byte: the server never read that request, so it is
 * sent once more on a new connection. */
int http_request(http_client_t *c, const char *method, const char *path, const char *extra_header,
                 const char *body, size_t body_len, http_reply_t *out, char *err,
                 size_t err_size);

#endif
