/*
 * errors.h - every error code the HTTP API answers with: its status and
 * what it means, in one table (docs/API.md's "Errors" lists the same, and
 * tests/contract checks every reply against docs/openapi.yaml). A handler
 * names a row; the status and the code on the wire come from here, so a
 * code can never go out with another status.
 */
#ifndef HF_SERVER_ERRORS_H
#define HF_SERVER_ERRORS_H

/* X(name, status, code, meaning): the meaning is the message when the
 * handler has nothing more precise to say. */
#define API_ERRORS(X)                                                                              \
    X(INVALID_JSON, 400, "invalid_json", "the body is not a JSON object")                          \
    X(INVALID_FIELD, 400, "invalid_field", "a field is not valid")                                 \
    X(UNKNOWN_FIELD, 400, "unknown_field", "a field or query parameter this route does not take")  \
    X(UNAUTHORIZED, 401, "unauthorized", "no known key was sent")                                  \
    X(FORBIDDEN, 403, "forbidden", "this needs the admin key")                                     \
    X(HOLD_SECRET_REQUIRED, 403, "hold_secret_required", "this hold needs its Hold-Secret")        \
    X(HOLD_SECRET_WRONG, 403, "hold_secret_wrong", "the Hold-Secret is not this hold's")           \
    X(WAITLIST_SECRET_REQUIRED, 403, "waitlist_secret_required",                                   \
      "this entry needs its Waitlist-Secret")                                                      \
    X(WAITLIST_SECRET_WRONG, 403, "waitlist_secret_wrong",                                         \
      "the Waitlist-Secret is not this entry's")                                                   \
    X(NOT_FOUND, 404, "not_found", "no such thing")                                                \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "the path takes other methods")               \
    X(INSUFFICIENT_STOCK, 409, "insufficient_stock", "not enough units available")                 \
    X(STOCK_BELOW_COMMITTED, 409, "stock_below_committed", "the stock would be below held + sold") \
    X(HOLD_COMMITTED, 409, "hold_committed", "the hold is committed")                              \
    X(WAITLIST_OFF, 409, "waitlist_off", "this sku has no waitlist")                               \
    X(UNITS_AVAILABLE, 409, "units_available", "the units are available: hold them instead")       \
    X(ALREADY_WAITING, 409, "already_waiting", "this customer already waits for this sku")         \
    X(WAIT_FINISHED, 409, "wait_finished", "the waitlist entry is finished")                       \
    X(SIM_RUNNING, 409, "sim_running", "a run is going on")                                        \
    X(NO_LOOPBACK, 409, "no_loopback", "the server listens on no loopback address")                \
    X(HOLD_EXPIRED, 410, "hold_expired", "the hold expired")                                       \
    X(HOLD_RELEASED, 410, "hold_released", "the hold was released")                                \
    X(BODY_TOO_LARGE, 413, "body_too_large", "the body is over 65,536 bytes")                      \
    X(IDEMPOTENCY_MISMATCH, 422, "idempotency_mismatch",                                           \
      "this Idempotency-Key was used for another request")                                         \
    X(CHALLENGE_REQUIRED, 428, "challenge_required", "a proof of work is required")                \
    X(POLICY_DENIED, 429, "policy_denied", "refused by the shop's policy")                         \
    X(HEADER_TOO_LARGE, 431, "header_too_large", "the request headers are too large")              \
    X(OVERLOADED, 503, "overloaded", "a table or a cap is full")                                   \
    X(STORAGE_UNAVAILABLE, 503, "storage_unavailable", "the journal failed")                       \
    X(NOT_OWNER, 503, "not_owner", "this node does not serve the shop now")                        \
    X(SHOP_ELSEWHERE, 307, "not_owner", "another node serves this shop")                           \
    X(OUTCOME_UNKNOWN, 503, "outcome_unknown", "whether this change was kept is not known")

typedef enum {
#define API_ERROR_ENUM(name, status, code, meaning) API_ERR_##name,
    API_ERRORS(API_ERROR_ENUM)
#undef API_ERROR_ENUM
        API_ERROR_COUNT
} api_error_t;

typedef struct {
    int status;
    const char *code;
    const char *meaning;
} api_error_info_t;

/* The row of e (e < API_ERROR_COUNT). */
const api_error_info_t *api_error(api_error_t e);

#endif
