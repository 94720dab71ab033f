/*
 * hf_thread.h - names for the server's own threads, so that `top -H`,
 * `ps -L`, perf and the benchmark's per-thread CPU tell them apart (the
 * HTTP library names its own: MHD-worker, MHD-single). The main thread
 * keeps the program's name; it runs the clock tick.
 */
#ifndef HF_THREAD_H
#define HF_THREAD_H

#include <assert.h>
#include <string.h>
#include <sys/prctl.h>

/* Linux keeps 15 bytes of a thread's name and a NUL. */
#define HF_THREAD_NAME_BYTES_MAX 15

/* Names the calling thread. A failure changes nothing but the name shown. */
static inline void hf_thread_name(const char *name)
{
    assert(strlen(name) <= HF_THREAD_NAME_BYTES_MAX);
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

#endif
