/*
 * hf_mix.h - splitmix64, the one 64-bit mixer every layer uses: the guard's
 * hash index, the journal's integrity chain, the simulator's and the tests'
 * random streams. Its finaliser sends every input bit to every output bit;
 * its stream gives each seed a sequence of its own.
 */
#ifndef HF_MIX_H
#define HF_MIX_H

#include <stdint.h>

static inline uint64_t hf_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The next value of the stream whose state is *state. */
static inline uint64_t hf_splitmix64(uint64_t *state)
{
    return hf_mix64(*state += 0x9e3779b97f4a7c15ull);
}

#endif
