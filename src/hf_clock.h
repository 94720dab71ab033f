/*
 * hf_clock.h - the clocks every layer reads: monotonic time for deadlines
 * and durations, wall-clock time for instants a shop sees. One place, so
 * that no two layers round them differently. (The engine and the guard
 * never read a clock: time is passed in.)
 */
#ifndef HF_CLOCK_H
#define HF_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t hf_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t hf_mono_ms(void)
{
    return hf_mono_us() / 1000;
}

static inline int64_t hf_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
