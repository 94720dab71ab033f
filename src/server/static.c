/*
 * static.c - the web pages: the demo shop at /, the operator's dashboard at
 * /admin, their scripts, the proof-of-work solver, and the chart library
 * that npm installed (web/node_modules), all read from the web directory
 * (--web, web_dir).
 *
 * Only what is listed here is served: a path names a directory from a fixed
 * list and one file in it, of [A-Za-z0-9._-] without a leading dot, so no
 * request can reach a file outside those directories; and a symbolic link
 * inside the web directory that leads out of it is not followed, so a
 * stray link cannot publish the rest of the disk. The pages are public; the
 * data they show comes from the API, behind its keys.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static.h"

/* URL prefix -> directory under the web directory. */
static const struct {
    const char *url;
    const char *dir;
} dirs[] = {
    {"/shop/", "shop"},
    {"/admin/", "admin"},
    {"/pow/", "pow"},
    {"/vendor/uplot/", "node_modules/uplot/dist"},
};

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
    /* The proof-of-work engine (web/pow/pow.wasm); browsers compile a module
     * as it streams in only when it comes with this type. */
    {".wasm", "application/wasm"},
};

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return NULL;
}

static bool file_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= 128 && name[0] != '.' &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* The file a URL names under the web directory, or false. */
static bool path_for(const server_t *s, const char *url, char *path, size_t size,
                     const char **type)
{
    const char *dir = NULL, *name = NULL;
    if (strcmp(url, "/") == 0) {
        dir = "shop", name = "index.html";
    } else if (strcmp(url, "/admin") == 0) {
        dir = "admin", name = "index.html";
    }
    for (size_t i = 0; dir == NULL && i < sizeof dirs / sizeof dirs[0]; i++) {
        size_t len = strlen(dirs[i].url);
        if (strncmp(url, dirs[i].url, len) == 0) {
            dir = dirs[i].dir;
            name = url[len] == '\0' ? "index.html" : url + len;
        }
    }
    *type = name != NULL ? type_of(name) : NULL;
    if (dir == NULL || !file_name_ok(name) || *type == NULL) {
        return false;
    }
    int n = snprintf(path, size, "%s/%s/%s", s->config.web_dir, dir, name);
    return n > 0 && (size_t)n < size;
}

/* Opens path only if, with every link resolved, it is still inside the web
 * directory; NULL otherwise. */
static FILE *open_inside(const char *web_dir, const char *path)
{
    char base[PATH_MAX], real[PATH_MAX];
    if (realpath(web_dir, base) == NULL || realpath(path, real) == NULL) {
        return NULL;
    }
    size_t n = strlen(base);
    if (strncmp(real, base, n) != 0 || (real[n] != '/' && base[n - 1] != '/')) {
        return NULL;
    }
    /* The last step of the resolved path is no link; if one appears
     * there meanwhile, O_NOFOLLOW refuses it. */
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (f == NULL && fd >= 0) {
        close(fd);
    }
    return f;
}

/* Reads the whole file into r->out; NULL, or why not. */
static const char *read_file(request_t *r, const char *path)
{
    FILE *f = open_inside(r->server->config.web_dir, path);
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > HF_STATIC_BYTES_MAX) {
        bool big = f != NULL && S_ISREG(st.st_mode) && st.st_size > HF_STATIC_BYTES_MAX;
        if (f != NULL) {
            fclose(f);
        }
        return big ? "that page is over the 2 MiB a page may have" : "no such page";
    }
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        jw_raw(&r->out, chunk, n);
    }
    bool ok = !ferror(f);
    fclose(f);
    return ok ? NULL : "that page cannot be read";
}

static bool pages_parse(request_t *r, const route_args_t *a, void *args)
{
    (void)a;
    (void)args;
    char path[PATH_MAX + 256];
    const char *type;
    if (r->server->config.web_dir[0] == '\0') {
        request_error(r, API_ERR_NOT_FOUND, "this server serves no web pages (--web \"\")");
        return false;
    }
    const char *why = path_for(r->server, r->url, path, sizeof path, &type)
                          ? read_file(r, path)
                          : "no such page";
    if (why != NULL) {
        json_out_reset(&r->out);
        request_error(r, API_ERR_NOT_FOUND, why);
        return false;
    }
    r->status = 200;
    r->content_type = type;
    return true;
}

const handler_t static_pages_handler = {pages_parse, NULL, NULL, NULL};
