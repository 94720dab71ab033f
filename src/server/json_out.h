/*
 * json_out.h - a small JSON writer for replies (server-private).
 *
 * Replies are built straight into a growing buffer: faster than building a
 * jansson tree for every reply, and the shapes are few and fixed. Strings are
 * escaped per RFC 8259, so a customer name can never break the document.
 * Commas are placed automatically: the writer remembers whether the current
 * object or array already has a member.
 */
#ifndef HF_JSON_OUT_H
#define HF_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_OUT_DEPTH_MAX 8

typedef struct {
    char *data;
    size_t size, capacity;
    int depth;
    bool has_member[JSON_OUT_DEPTH_MAX];
    bool after_key;
} json_out_t;

void json_out_init(json_out_t *j);
void json_out_free(json_out_t *j);
void json_out_reset(json_out_t *j);

void jw_obj_begin(json_out_t *j);
void jw_obj_end(json_out_t *j);
void jw_arr_begin(json_out_t *j);
void jw_arr_end(json_out_t *j);
/* Starts a member of the current object; the value is written next. */
void jw_key(json_out_t *j, const char *key);
void jw_str(json_out_t *j, const char *s, size_t len);
void jw_cstr(json_out_t *j, const char *s);
void jw_int(json_out_t *j, int64_t v);
void jw_null(json_out_t *j);
/* An RFC 3339 UTC instant with milliseconds, from ms since the epoch. */
void jw_time(json_out_t *j, int64_t epoch_ms);

/* Shorthands for a member. */
void jw_kstr(json_out_t *j, const char *key, const char *s, size_t len);
void jw_kcstr(json_out_t *j, const char *key, const char *s);
void jw_kint(json_out_t *j, const char *key, int64_t v);

/* Plain text appends (for the metrics page). */
void jw_raw(json_out_t *j, const char *s, size_t len);
/* A value already in JSON (a member's value or an array element). */
void jw_value_raw(json_out_t *j, const char *s, size_t len);
void jw_double(json_out_t *j, double v);
void jw_rawf(json_out_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
