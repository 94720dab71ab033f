/*
 * errors.c - the table of errors.h.
 */
#include "errors.h"

#include <assert.h>

static const api_error_info_t rows[API_ERROR_COUNT] = {
#define API_ERROR_ROW(name, status, code, meaning) [API_ERR_##name] = {status, code, meaning},
    API_ERRORS(API_ERROR_ROW)
#undef API_ERROR_ROW
};

const api_error_info_t *api_error(api_error_t e)
{
    assert(e < API_ERROR_COUNT);
    return &rows[e];
}
