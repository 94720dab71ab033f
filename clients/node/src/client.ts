/*
 * client.ts - HoldfastClient: the API's shop calls, each sent until it has
 * an answer it can trust, within bounds.
 *
 * What every call does:
 *   1. A write (POST, DELETE) carries an Idempotency-Key: the caller's, or a
 *      new random one. Every retry of the call sends the same key, so the
 *      server applies a hold's create once however often it is sent.
 *   2. Each request has its own deadline (timeoutMs, an AbortController),
 *      and the caller's signal ends the call at any point.
 *   3. No answer (a network error, a deadline), a 503 (overloaded,
 *      outcome_unknown, storage_unavailable) or another 5xx is retried after
 *      a pause that doubles from backoffMs up to backoffMaxMs, with jitter
 *      (or the server's Retry-After), at most attemptsMax requests in all.
 *      Only calls that are safe to repeat are retried this way (see
 *      RETRY_ALWAYS below); a waitlist join only after failures that say
 *      nothing was applied.
 *   4. A 428 challenge_required is answered with a proof of work (pow.ts)
 *      and the same request, same key, is sent again with Holdfast-Proof,
 *      at most challengeRoundsMax times (a proof whose price rose meanwhile
 *      is challenged again). A price over challengeBitsMax is not paid: the
 *      428 is thrown, with its challenge, for the shopper's browser to solve.
 *   5. Any other 4xx is thrown at once as a HoldfastError with the server's
 *      code, message, field and the rest of its error object.
 *
 * Secrets: a hold's secret comes back once, in the create's reply, and is
 * the caller's to keep (with the shopper's cart, never shown to another
 * shopper); every later call on the hold takes it back (HoldRef) and sends
 * it in the Hold-Secret header, never in a URL. The client logs nothing;
 * its events (onEvent) and errors carry no header, body or secret.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';

import { HoldfastError, type TransportErrorCode } from './errors.js';
import { projectSolver, type Proof, type Solver } from './pow.js';
import { exchange, makeAgent, TransportFailure, type Reply } from './transport.js';
import type {
    ApiErrorBody, Challenge, Hold, HoldCommitRequest, HoldCreateRequest, HoldExtendRequest, Sku,
    WaitlistEntry, WaitlistJoinRequest,
} from './wire.js';

export interface ClientOptions {
    /* The server, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
    baseUrl: string | URL;
    /* A shop key (Authorization: Bearer), when the server has keys. */
    apiKey?: string;
    /* One request's deadline, from sending it to the last byte of its reply. */
    timeoutMs?: number;
    /* Requests per call at most, the first included, before a failure that
     * may pass on a retry is thrown. Challenges answered do not count. */
    attemptsMax?: number;
    /* The first pause before a retry; it doubles up to backoffMaxMs. */
    backoffMs?: number;
    backoffMaxMs?: number;
    /* Connections to the server at once (the server's default cap is 64 per
     * client address; several backends behind one NAT share it). */
    connectionsMax?: number;
    /* An idle pooled connection is closed after this, before the server's
     * own idle deadline (15 s by default) can close it under a request. */
    idleSocketMs?: number;
    /* false: a 428 is thrown, not solved. */
    solveChallenges?: boolean;
    /* The most bits paid here (2^bits hashes on average); a dearer 428 is
     * thrown with its challenge. */
    challengeBitsMax?: number;
    /* How long one proof of work may take (and never past its expiry). */
    challengeTimeoutMs?: number;
    /* Solves challenges; the project's solver by default. */
    solver?: Solver;
    /* Told about retries, challenges and replies; never about secrets. */
    onEvent?: (event: ClientEvent) => void;
}

export interface CallOptions {
    /* Ends the call: rejects with code `aborted`. */
    signal?: AbortSignal;
    /* This call's per-request deadline. */
    timeoutMs?: number;
    /* The write's key: pass the same one to repeat a write whose outcome is
     * unknown (HoldfastError.idempotencyKey). 1-64 printable ASCII bytes,
     * as hard to guess as a secret: a create replayed with its key returns
     * the hold's secret. */
    idempotencyKey?: string;
    /* A create's Holdfast-Proof (`PREFIX:NONCE`), solved elsewhere: by the
     * shopper's browser, for a challenge this client handed back. It is
     * good only for the same request (body and all) that was challenged. */
    proof?: string;
}

/* A hold as later calls name it: its id and its secret. A created Hold is
 * one. The admin key needs no secret. */
export interface HoldRef {
    id: string;
    secret?: string | undefined;
}

export interface WaitlistRef {
    id: string;
    secret?: string | undefined;
}

/* A create's reply: the hold with its secret. */
export type CreatedHold = Hold & { secret: string };
export type JoinedEntry = WaitlistEntry & { secret: string };
export type BuyNowRequest = Omit<HoldCreateRequest, 'commit' | 'ttl_ms'>;

/* `route` is the path's pattern (`/v1/holds/{id}/commit`): no ids, no
 * secrets. */
export type ClientEvent =
    | { type: 'retry'; method: string; route: string; attempt: number; delayMs: number;
        reason: string }
    | { type: 'challenge'; method: string; route: string; rule: string | undefined; bits: number;
        engine: string; tries: number }
    | { type: 'reply'; method: string; route: string; status: number; attempts: number;
        replayed: boolean };

export const DEFAULTS = Object.freeze({
    timeoutMs: 10_000,
    attemptsMax: 4,
    backoffMs: 100,
    backoffMaxMs: 2_000,
    /* The server's Retry-After is 2 s; a larger one is not waited out. */
    retryAfterMaxMs: 5_000,
    connectionsMax: 16,
    idleSocketMs: 4_000,
    /* The default policy's bits_max is 22: a second or so of hashing here. */
    challengeBitsMax: 24,
    challengeTimeoutMs: 30_000,
    challengeRoundsMax: 3,
});

/* Bounds on the options, so that a typo cannot make a call unbounded. */
const LIMITS = {
    timeoutMs: [1, 600_000],
    attemptsMax: [1, 10],
    backoffMs: [0, 60_000],
    backoffMaxMs: [0, 60_000],
    connectionsMax: [1, 1024],
    idleSocketMs: [100, 600_000],
    challengeBitsMax: [0, 32],
    challengeTimeoutMs: [1, 600_000],
} as const;

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,64}$/;
const PROOF = /^[0-9A-Za-z]{1,64}:[0-9A-Za-z]{1,32}$/;

/* 503s that say the change was not applied: a table or the connections are
 * full, or the journal refused it before it was kept. */
const UNAPPLIED_CODES = new Set(['overloaded', 'storage_unavailable']);

/* Which failures a call may be retried after:
 *   'always'    any failure that may pass later (no answer, 5xx): the call
 *               is idempotent (a hold's create by its key; a read; extend,
 *               commit, release and cancel, whose repeat changes nothing
 *               more);
 *   'unapplied' only those that say nothing was applied (the connection
 *               was refused, 503 overloaded or storage_unavailable): a
 *               waitlist join, which the server does not deduplicate by key
 *               (a second join is 409 already_waiting, and the first's
 *               secret would be lost). */
type RetryKind = 'always' | 'unapplied';

interface Call {
    method: 'GET' | 'POST' | 'DELETE';
    route: string;
    path: string;
    body?: unknown;
    secretHeader?: string;
    secret?: string | undefined;
    retry: RetryKind;
    challengeable?: boolean;
}

type Settings = Required<Omit<ClientOptions, 'baseUrl' | 'apiKey' | 'onEvent'>>;

export function newIdempotencyKey(): string {
    return `hf_${randomBytes(16).toString('base64url')}`;
}

function checked(name: keyof typeof LIMITS, value: number | undefined, fallback: number): number {
    const v = value ?? fallback;
    const [lo, hi] = LIMITS[name];
    if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new RangeError(`${name} must be a whole number from ${lo} to ${hi}`);
    }
    return v;
}

function settingsOf(o: ClientOptions): Settings {
    return {
        timeoutMs: checked('timeoutMs', o.timeoutMs, DEFAULTS.timeoutMs),
        attemptsMax: checked('attemptsMax', o.attemptsMax, DEFAULTS.attemptsMax),
        backoffMs: checked('backoffMs', o.backoffMs, DEFAULTS.backoffMs),
        backoffMaxMs: checked('backoffMaxMs', o.backoffMaxMs, DEFAULTS.backoffMaxMs),
        connectionsMax: checked('connectionsMax', o.connectionsMax, DEFAULTS.connectionsMax),
        idleSocketMs: checked('idleSocketMs', o.idleSocketMs, DEFAULTS.idleSocketMs),
        challengeBitsMax: checked('challengeBitsMax', o.challengeBitsMax,
                                  DEFAULTS.challengeBitsMax),
        challengeTimeoutMs: checked('challengeTimeoutMs', o.challengeTimeoutMs,
                                    DEFAULTS.challengeTimeoutMs),
        solveChallenges: o.solveChallenges ?? true,
        solver: o.solver ?? projectSolver,
    };
}

function segment(what: string, value: unknown): string {
    if (typeof value !== 'string' || value.length === 0) {
        throw new TypeError(`${what} must be a non-empty string`);
    }
    return encodeURIComponent(value);
}

/* The server's error object, or one made up for a reply that has none (a
 * proxy's page, say). */
function errorBodyOf(reply: Reply): ApiErrorBody {
    const e = (reply.json as { error?: unknown } | undefined)?.error as ApiErrorBody | undefined;
    if (e !== undefined && e !== null && typeof e === 'object' && typeof e.code === 'string') {
        return { ...e, message: typeof e.message === 'string' ? e.message : e.code };
    }
    return { code: `http_${reply.status}`, message: `HTTP ${reply.status}` };
}

function retryAfterMs(reply: Reply): number | undefined {
    const text = reply.headers['retry-after'];
    const seconds = typeof text === 'string' && /^\d{1,6}$/.test(text) ? Number(text) : NaN;
    return Number.isFinite(seconds) ? Math.min(seconds * 1000, DEFAULTS.retryAfterMaxMs)
                                    : undefined;
}

function isChallenge(c: unknown): c is Challenge {
    const x = c as Partial<Challenge> | null | undefined;
    return typeof x?.prefix === 'string' && Number.isInteger(x.bits) && x.alg === 'sha256';
}

/* A call that ended without an answer from the API. */
function noAnswer(sent: number, key: string | undefined, code: TransportErrorCode,
                  status: number, message: string, outcomeUnknown = false,
                  cause?: unknown): HoldfastError {
    return new HoldfastError({ status, code, message, attempts: sent, idempotencyKey: key,
                               outcomeUnknown, cause });
}

/* Resolves after ms, or rejects at once when signal aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) {
            reject(new Error('aborted'));
            return;
        }
        const onAbort = () => {
            clearTimeout(timer);
            reject(new Error('aborted'));
        };
        const timer = setTimeout(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
        }, ms);
        signal?.addEventListener('abort', onAbort, { once: true });
    });
}

export class HoldfastClient {
    readonly baseUrl: URL;
    readonly #pathPrefix: string;
    readonly #apiKey: string | undefined;
    readonly #settings: Settings;
    readonly #onEvent: ((event: ClientEvent) => void) | undefined;
    readonly #agent: http.Agent;

    constructor(options: ClientOptions) {
        const base = new URL(String(options.baseUrl));
        if (base.protocol !== 'http:' && base.protocol !== 'https:') {
            throw new TypeError('baseUrl must be an http: or https: URL');
        }
        this.baseUrl = base;
        this.#pathPrefix = base.pathname.replace(/\/+$/, '');
        this.#apiKey = options.apiKey;
        this.#settings = settingsOf(options);
        this.#onEvent = options.onEvent;
        this.#agent = makeAgent(base, this.#settings.connectionsMax, this.#settings.idleSocketMs);
    }

    /* Closes the pooled connections; calls made afterwards open new ones. */
    close(): void {
        this.#agent.destroy();
    }

    /* ------------------------------------------------------------- holds */

    /* POST /v1/holds: all the lines held, or none. The reply's `secret` is
     * the caller's to keep for the shopper. */
    async createHold(body: HoldCreateRequest, options?: CallOptions): Promise<CreatedHold> {
        return this.#send({ method: 'POST', route: '/v1/holds', path: '/v1/holds', body,
                            retry: 'always', challengeable: true }, options);
    }

    /* POST /v1/holds with "commit": true: held and sold in one step. */
    async buyNow(body: BuyNowRequest, options?: CallOptions): Promise<CreatedHold> {
        return this.createHold({ ...body, commit: true }, options);
    }

    async getHold(hold: HoldRef, options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'GET', route: '/v1/holds/{id}', retry: 'always',
                            ...this.#holdPath(hold, '') }, options);
    }

    /* The new expiry is the later of the old one and now + ttl_ms. */
    async extendHold(hold: HoldRef, body: HoldExtendRequest,
                     options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'POST', route: '/v1/holds/{id}/extend', body,
                            retry: 'always', ...this.#holdPath(hold, '/extend') }, options);
    }

    /* Held units become sold; committing again returns the hold unchanged. */
    async commitHold(hold: HoldRef, body: HoldCommitRequest = {},
               options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'POST', route: '/v1/holds/{id}/commit', body,
                            retry: 'always', ...this.#holdPath(hold, '/commit') }, options);
    }

    /* Held units become available; releasing again is harmless. */
    async releaseHold(hold: HoldRef, options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'DELETE', route: '/v1/holds/{id}', retry: 'always',
                            ...this.#holdPath(hold, '') }, options);
    }

    /* ---------------------------------------------------------- waitlist */

    /* POST /v1/skus/{sku}/waitlist; the reply's `secret` is the entry's. */
    async joinWaitlist(sku: string, body: WaitlistJoinRequest,
                 options?: CallOptions): Promise<JoinedEntry> {
        const path = `/v1/skus/${segment('sku', sku)}/waitlist`;
        return this.#send({ method: 'POST', route: '/v1/skus/{sku}/waitlist', path, body,
                            retry: 'unapplied' }, options);
    }

    /* An entry that is `offered` carries its hold, with the hold's secret. */
    async getWaitlistEntry(entry: WaitlistRef, options?: CallOptions): Promise<WaitlistEntry> {
        return this.#send({ method: 'GET', route: '/v1/waitlist/{id}', retry: 'always',
                            ...this.#waitPath(entry) }, options);
    }

    async cancelWaitlistEntry(entry: WaitlistRef, options?: CallOptions): Promise<WaitlistEntry> {
        return this.#send({ method: 'DELETE', route: '/v1/waitlist/{id}', retry: 'always',
                            ...this.#waitPath(entry) }, options);
    }

    /* -------------------------------------------------------------- skus */

    async getSku(sku: string, options?: CallOptions): Promise<Sku> {
        return this.#send({ method: 'GET', route: '/v1/skus/{sku}',
                            path: `/v1/skus/${segment('sku', sku)}`, retry: 'always' }, options);
    }

    /* ---------------------------------------------------------- internals */

    #holdPath(hold: HoldRef, suffix: string) {
        return { path: `/v1/holds/${segment('hold id', hold?.id)}${suffix}`,
                 secretHeader: 'Hold-Secret', secret: hold.secret };
    }

    #waitPath(entry: WaitlistRef) {
        return { path: `/v1/waitlist/${segment('waitlist entry id', entry?.id)}`,
                 secretHeader: 'Waitlist-Secret', secret: entry.secret };
    }

    #emit(event: ClientEvent): void {
        try {
            this.#onEvent?.(event);
        } catch {
            /* An observer's bug must not fail the call it watches. */
        }
    }

    #headers(call: Call, key: string | undefined): Record<string, string> {
        const headers: Record<string, string> = { Accept: 'application/json' };
        if (this.#apiKey) {
            headers.Authorization = `Bearer ${this.#apiKey}`;
        }
        if (key !== undefined) {
            headers['Idempotency-Key'] = key;
        }
        if (call.secretHeader !== undefined && call.secret !== undefined) {
            if (typeof call.secret !== 'string' || call.secret.length === 0) {
                throw new TypeError(`${call.secretHeader} must be a non-empty string`);
            }
            headers[call.secretHeader] = call.secret;
        }
        if (call.body !== undefined) {
            headers['Content-Type'] = 'application/json';
        }
        return headers;
    }

    /* The pause before retry number `failures`: somewhere in the upper half
     * of a window that doubles each time (so that clients that failed
     * together do not come back together), or the server's Retry-After. */
    #delayMs(failures: number, serverMs: number | undefined): number {
        if (serverMs !== undefined) {
            return serverMs;
        }
        const { backoffMs, backoffMaxMs } = this.#settings;
        const window = Math.min(backoffMaxMs, backoffMs * 2 ** (failures - 1));
        return Math.round(window / 2 + (Math.random() * window) / 2);
    }

    async #send<T>(call: Call, options: CallOptions = {}): Promise<T> {
        const write = call.method !== 'GET';
        const key = write ? (options.idempotencyKey ?? newIdempotencyKey()) : undefined;
        if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
            throw new TypeError('idempotencyKey must be 1-64 printable ASCII bytes');
        }
        const headers = this.#headers(call, key);
        if (options.proof !== undefined) {
            if (!PROOF.test(options.proof)) {
                throw new TypeError('proof must be PREFIX:NONCE, each of [0-9A-Za-z]');
            }
            headers['Holdfast-Proof'] = options.proof;
        }
        const body = call.body === undefined ? undefined : JSON.stringify(call.body);
        const url = new URL(this.#pathPrefix + call.path, this.baseUrl);
        const timeoutMs = checked('timeoutMs', options.timeoutMs, this.#settings.timeoutMs);
        const state = { sent: 0, failures: 0, rounds: 0 };
        for (;;) {
            state.sent++;
            let reply: Reply;
            try {
                reply = await exchange(this.#agent, { method: call.method, url, headers, body,
                                                      timeoutMs, signal: options.signal });
            } catch (err) {
                if (!(err instanceof TransportFailure)) {
                    throw err;
                }
                await this.#afterFailure(call, state, err, key, options.signal);
                continue;
            }
            this.#emit({ type: 'reply', method: call.method, route: call.route,
                         status: reply.status, attempts: state.sent,
                         replayed: reply.headers['idempotent-replayed'] === 'true' });
            if (reply.status < 400) {
                if (reply.json === undefined || reply.json === null) {
                    throw noAnswer(state.sent, key, 'bad_reply', reply.status,
                                   `${call.method} ${call.route}: the reply is not JSON`);
                }
                return reply.json as T;
            }
            const proof = await this.#answerChallenge(call, state, reply, key, options.signal);
            if (proof !== undefined) {
                headers['Holdfast-Proof'] = proof;
                continue;
            }
            await this.#afterErrorReply(call, state, reply, key, options.signal);
        }
    }

    /* No reply: pause and return to retry, or throw. */
    async #afterFailure(call: Call, state: { sent: number; failures: number },
                        failure: TransportFailure, key: string | undefined,
                        signal: AbortSignal | undefined): Promise<void> {
        const write = call.method !== 'GET';
        const may = failure.kind === 'timeout' || failure.kind === 'network';
        const safe = call.retry === 'always' || failure.refused;
        state.failures++;
        if (!may || !safe || state.failures >= this.#settings.attemptsMax) {
            throw noAnswer(state.sent, key, failure.kind, 0, failure.message,
                           write && !failure.refused, failure);
        }
        const reason = failure.errno === undefined ? failure.kind
                                                   : `${failure.kind} ${failure.errno}`;
        await this.#pause(call, state, undefined, reason, key, signal);
    }

    /* An error reply that is not a challenge: pause and return to retry a
     * 5xx that may pass, or throw it. */
    async #afterErrorReply(call: Call, state: { sent: number; failures: number },
                           reply: Reply, key: string | undefined,
                           signal: AbortSignal | undefined): Promise<void> {
        const details = errorBodyOf(reply);
        const unapplied = reply.status === 503 && UNAPPLIED_CODES.has(details.code);
        const may = reply.status >= 500 && (call.retry === 'always' || unapplied);
        state.failures++;
        if (!may || state.failures >= this.#settings.attemptsMax) {
            throw new HoldfastError({
                status: reply.status, code: details.code,
                message: `${call.method} ${call.route}: ${reply.status} ${details.code}: ${
                    details.message}`,
                details, attempts: state.sent, idempotencyKey: key,
                outcomeUnknown: call.method !== 'GET' && reply.status >= 500 && !unapplied,
            });
        }
        await this.#pause(call, state, retryAfterMs(reply), `${reply.status} ${details.code}`,
                          key, signal);
    }

    async #pause(call: Call, state: { sent: number; failures: number },
                 serverMs: number | undefined, reason: string, key: string | undefined,
                 signal: AbortSignal | undefined): Promise<void> {
        const delayMs = this.#delayMs(state.failures, serverMs);
        this.#emit({ type: 'retry', method: call.method, route: call.route,
                     attempt: state.sent + 1, delayMs, reason });
        try {
            await pause(delayMs, signal);
        } catch {
            throw noAnswer(state.sent, key, 'aborted', 0,
                           `${call.method} ${call.route}: aborted by the caller`,
                           call.method !== 'GET');
        }
    }

    /* The Holdfast-Proof for a 428 this client should pay, or undefined
     * when the reply is something else (or not to be paid here). */
    async #answerChallenge(call: Call, state: { sent: number; rounds: number }, reply: Reply,
                           key: string | undefined,
                           signal: AbortSignal | undefined): Promise<string | undefined> {
        const details = errorBodyOf(reply);
        const challenge = details.challenge;
        const s = this.#settings;
        if (reply.status !== 428 || !call.challengeable || !s.solveChallenges ||
            !isChallenge(challenge) || challenge.bits > s.challengeBitsMax ||
            state.rounds >= DEFAULTS.challengeRoundsMax) {
            return undefined;
        }
        state.rounds++;
        const proof = await this.#solve(call, challenge, details, state.sent, key, signal);
        this.#emit({ type: 'challenge', method: call.method, route: call.route,
                     rule: typeof details.rule === 'string' ? details.rule : undefined,
                     bits: challenge.bits, engine: proof.engine, tries: proof.tries });
        return proof.header;
    }

    /* Runs the solver until it answers, the challenge expires,
     * challengeTimeoutMs passes or the caller aborts. A challenge that
     * could not be paid is thrown as the 428 it came in, challenge and all,
     * for the shopper's browser to pay instead. */
    async #solve(call: Call, challenge: Challenge, details: ApiErrorBody, sent: number,
                 key: string | undefined, signal: AbortSignal | undefined): Promise<Proof> {
        const controller = new AbortController();
        const expiresMs = Date.parse(challenge.expires_at) - Date.now();
        const limitMs = Math.max(0, Math.min(this.#settings.challengeTimeoutMs,
                                             Number.isFinite(expiresMs) ? expiresMs : Infinity));
        const timer = setTimeout(() => controller.abort(), limitMs);
        const onAbort = () => controller.abort();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
            return await this.#settings.solver(challenge, controller.signal);
        } catch (err) {
            if (signal?.aborted === true) {
                throw noAnswer(sent, key, 'aborted', 0,
                               `${call.method} ${call.route}: aborted by the caller`, false, err);
            }
            const why = controller.signal.aborted ? `not found within ${limitMs} ms`
                                                  : String((err as Error | null)?.message ?? err);
            throw new HoldfastError({
                status: 428, code: 'challenge_required', details, attempts: sent,
                idempotencyKey: key, cause: err,
                message: `${call.method} ${call.route}: the ${challenge.bits}-bit proof of work ` +
                         `was not paid: ${why}`,
            });
        } finally {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
        }
    }
}
