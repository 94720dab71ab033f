/*
 * pow.ts - answers a 428's proof-of-work challenge with the project's own
 * solver: web/pow/solver.js and its engine pow.wasm (SHA-256 compiled from
 * web/pow/pow_wasm.c), which `npm run build` copies into dist/pow/ beside
 * this module. solver.js runs in Node as it does in a browser: pow.wasm
 * when it loads and passes its self-test, millions of hashes a second,
 * else WebCrypto (node:crypto's), many times slower, with one warning on
 * the console. Nothing is hashed here.
 *
 * The search runs on the calling thread in slices of 65,536 hashes (10-20
 * ms), yielding to the event loop between them, so other requests go on
 * meanwhile; the signal is checked between slices.
 */
import type { Challenge } from './wire.js';

/* A solved challenge: the Holdfast-Proof header's value, and what it took. */
export interface Proof {
    header: string;
    engine: string;
    tries: number;
}

/* What answers a challenge; a caller may give its own (a worker pool, or
 * `holdfast solve PREFIX BITS`). It must give up when signal aborts. */
export type Solver = (challenge: Challenge, signal: AbortSignal) => Promise<Proof>;

/* solver.js's interface, as far as the client uses it. */
interface SolverModule {
    solve(prefix: string, bits: number, options: {
        triesMax?: number;
        onProgress?: (tries: number) => void;
    }): Promise<{ nonce: string; tries: number; engine: string } | null>;
}

/* 2^(bits + 8) tries: 256 times the average, so running out means a broken
 * solver, not bad luck (the chance is e^-256). */
const TRIES_FACTOR_LOG2 = 8;
const TRIES_MAX_LOG2 = 40;

let loading: Promise<SolverModule> | undefined;

function loadSolver(): Promise<SolverModule> {
    loading ??= (import(new URL('./pow/solver.js', import.meta.url).href) as Promise<SolverModule>)
        .catch((err: unknown) => {
            loading = undefined; /* a later call may find it built */
            throw new Error(`the proof-of-work solver is missing from dist/pow (npm run build): ${
                String((err as Error | null)?.message ?? err)}`);
        });
    return loading;
}

export const projectSolver: Solver = async (challenge, signal) => {
    const pow = await loadSolver();
    const triesMax = 2 ** Math.min(challenge.bits + TRIES_FACTOR_LOG2, TRIES_MAX_LOG2);
    const found = await pow.solve(challenge.prefix, challenge.bits, {
        triesMax,
        onProgress: () => {
            if (signal.aborted) {
                throw new Error('the proof of work was given up (deadline or caller)');
            }
        },
    });
    if (found === null) {
        throw new Error(`no nonce found in ${triesMax} tries for ${challenge.bits} bits`);
    }
    return { header: `${challenge.prefix}:${found.nonce}`, engine: found.engine,
             tries: found.tries };
};
