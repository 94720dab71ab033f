/*
 * json_out.c - the reply writer.
 */
#include "json_out.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void json_out_init(json_out_t *j)
{
    memset(j, 0, sizeof *j);
}

void json_out_free(json_out_t *j)
{
    free(j->data);
    memset(j, 0, sizeof *j);
}

void json_out_reset(json_out_t *j)
{
    j->size = 0;
    j->depth = 0;
    j->has_member[0] = false;
    j->after_key = false;
}

static void reserve(json_out_t *j, size_t more)
{
    if (j->size + more + 1 <= j->capacity) {
        return;
    }
    size_t capacity = j->capacity < 1024 ? 1024 : j->capacity;
    while (capacity < j->size + more + 1) {
        capacity *= 2;
    }
    char *data = realloc(j->data, capacity);
    if (data == NULL) {
        fprintf(stderr, "level=fatal msg=\"out of memory writing a reply\"\n");
        abort();
    }
    j->data = data;
    j->capacity = capacity;
}

void jw_raw(json_out_t *j, const char *s, size_t len)
{
    reserve(j, len);
    memcpy(j->data + j->size, s, len);
    j->size += len;
    j->data[j->size] = '\0';
}

void jw_rawf(json_out_t *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    reserve(j, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(j->data + j->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    j->size += (size_t)n;
}

/* Writes the comma that separates this value from the previous one; a value
 * right after its key needs none. */
static void separate(json_out_t *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0 && j->has_member[j->depth]) {
        jw_raw(j, ",", 1);
    }
    j->has_member[j->depth] = true;
}

static void open_(json_out_t *j, const char *c)
{
    separate(j);
    jw_raw(j, c, 1);
    assert(j->depth + 1 < JSON_OUT_DEPTH_MAX);
    j->has_member[++j->depth] = false;
}

static void close_(json_out_t *j, const char *c)
{
    assert(j->depth > 0);
    j->depth--;
    jw_raw(j, c, 1);
}

void jw_value_raw(json_out_t *j, const char *s, size_t len)
{
    separate(j);
    jw_raw(j, s, len);
}

/* Ratios for people: four decimals say all that a rate needs. */
void jw_double(json_out_t *j, double v)
{
    assert(v == v && v > -1e15 && v < 1e15); /* finite: JSON has no NaN */
    separate(j);
    jw_rawf(j, "%.4f", v);
}

void jw_obj_begin(json_out_t *j)
{
    open_(j, "{");
}

void jw_obj_end(json_out_t *j)
{
    close_(j, "}");
}

void jw_arr_begin(json_out_t *j)
{
    open_(j, "[");
}

void jw_arr_end(json_out_t *j)
{
    close_(j, "]");
}

/* The length of the UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                            : c >= 0xf0 && c <= 0xf4 ? 4
                                                     : 0;
    if (n == 0 || n > left) {
        return 0;
    }
    /* The second byte's range depends on the first; the rest are 80-BF. */
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf)) {
            return 0;
        }
    }
    return n;
}

/* How many bytes at s go into a JSON string as they are: a printable ASCII
 * character but '"' and '\\', or a whole UTF-8 sequence; 0 for a byte that
 * needs escaping or replacing. */
static size_t plain_bytes(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c >= 0x80) {
        return utf8_sequence(s, left);
    }
    return c >= 0x20 && c != 0x7f && c != '"' && c != '\\';
}

/* A JSON string, its plain runs copied at once. Text cut short to fit a
 * message can end in part of a character, and a reply must stay valid UTF-8
 * whatever it quotes: a byte that starts no valid sequence is written as
 * U+FFFD. */
static void escaped(json_out_t *j, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    reserve(j, len + 2);
    jw_raw(j, "\"", 1);
    size_t run = 0; /* the start of the plain bytes not yet written */
    for (size_t i = 0; i < len;) {
        size_t n = plain_bytes(u + i, len - i);
        if (n > 0) {
            i += n;
            continue;
        }
        jw_raw(j, s + run, i - run);
        if (u[i] == '"' || u[i] == '\\') {
            char pair[2] = {'\\', (char)u[i]};
            jw_raw(j, pair, 2);
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            char text[8];
            snprintf(text, sizeof text, "\\u%04x", u[i]);
            jw_raw(j, text, 6);
        } else {
            jw_raw(j, "\xef\xbf\xbd", 3);
        }
        run = ++i;
    }
    jw_raw(j, s + run, len - run);
    jw_raw(j, "\"", 1);
}

void jw_key(json_out_t *j, const char *key)
{
    separate(j);
    escaped(j, key, strlen(key));
    jw_raw(j, ":", 1);
    j->after_key = true;
}

void jw_str(json_out_t *j, const char *s, size_t len)
{
    separate(j);
    escaped(j, s, len);
}

void jw_cstr(json_out_t *j, const char *s)
{
    jw_str(j, s, strlen(s));
}

/* By hand, not printf: a history reply has thousands of integers and every
 * hold reply several, and printf's format parsing cost more than the digits. */
void jw_int(json_out_t *j, int64_t v)
{
    separate(j);
    char digits[24]; /* 19 digits and a sign */
    char *p = digits + sizeof digits;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    jw_raw(j, p, (size_t)(digits + sizeof digits - p));
}

void jw_null(json_out_t *j)
{
    separate(j);
    jw_raw(j, "null", 4);
}

void jw_time(json_out_t *j, int64_t epoch_ms)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char text[40];
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%03dZ", (int)(epoch_ms % 1000));
    jw_cstr(j, text);
}

void jw_kstr(json_out_t *j, const char *key, const char *s, size_t len)
{
    jw_key(j, key);
    jw_str(j, s, len);
}

void jw_kcstr(json_out_t *j, const char *key, const char *s)
{
    jw_key(j, key);
    jw_cstr(j, s);
}

void jw_kint(json_out_t *j, const char *key, int64_t v)
{
    jw_key(j, key);
    jw_int(j, v);
}
