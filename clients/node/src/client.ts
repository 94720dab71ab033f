/*
 * client.ts - HoldfastClient: the API's shop calls, each sent until it has
 * an answer it can trust, within bounds.
 *
 * What every call does:
 *   1. A write (POST, DELETE) carries an Idempotency-Key: the caller's, or a
 *      new random one. Every retry of the call sends the same key, so the
 *      server applies a hold's create, or a waitlist join, once however
 *      often it is sent.
 *   2. Each request has its own deadline (timeoutMs, an AbortController),
 *      and the caller's signal ends the call at any point.
 *   3. No answer (a network error, a deadline), a 503 (overloaded,
 *      outcome_unknown, storage_unavailable, not_owner) or another 5xx is
 *      retried after a pause that doubles from backoffMs up to
 *      backoffMaxMs, with jitter (or the server's Retry-After), at most
 *      attemptsMax requests in all. Every call is safe to repeat: a create
 *      and a join by their key; reads; extend, commit, release and cancel,
 *      whose repeat changes nothing more.
 *   4. A cluster: baseUrl may list a shop's nodes. Calls go to the node
 *      that answered last. A 307 from a standby is followed to the owner
 *      (same method, body and headers, key included), at most
 *      REDIRECT_HOPS_MAX hops in a row, and the owner is remembered for the
 *      next calls. No answer from a node, or a 503 not_owner, moves the
 *      retry to the next node of the list (round robin).
 *   5. A 428 challenge_required is answered with a proof of work (pow.ts)
 *      and the same request, same key, is sent again with Holdfast-Proof,
 *      at most challengeRoundsMax times (a proof whose price rose meanwhile
 *      is challenged again). A price over challengeBitsMax is not paid: the
 *      428 is thrown, with its challenge, for the shopper's browser to solve.
 *   6. Any other 4xx is thrown at once as a HoldfastError with the server's
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
    /* The server, e.g. http://127.0.0.1:8080 (a path prefix is kept), or a
     * cluster's nodes of one shop, in the order they are tried first. */
    baseUrl: string | URL | readonly (string | URL)[];
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
 * secrets. `node`, `from` and `to` are a node's origin (scheme, host,
 * port): where a retry goes, where a redirect came from and leads to. */
export type ClientEvent =
    | { type: 'retry'; method: string; route: string; attempt: number; delayMs: number;
        reason: string; node: string }
    | { type: 'redirect'; method: string; route: string; from: string; to: string; hop: number }
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
 * full, the journal refused it before it was kept, or the node does not own
 * the shop (a standby that knows no owner yet, an owner whose lease ran out
 * while it was paused). */
const UNAPPLIED_CODES = new Set(['overloaded', 'storage_unavailable', 'not_owner']);

/* A 503 that another node may answer: the call's retry goes there. */
const ELSEWHERE_CODES = new Set(['not_owner']);

/* The nodes of one shop a client is given, at most. */
const NODES_MAX = 16;

/* 307s followed in a row before the call fails: a standby points at the
 * owner, which answers; more than a few hops is nodes that disagree about
 * who owns the shop, or a loop. */
const REDIRECT_HOPS_MAX = 3;

interface Call {
    method: 'GET' | 'POST' | 'DELETE';
    route: string;
    path: string;
    body?: unknown;
    secretHeader?: string;
    secret?: string | undefined;
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

/* The nodes the caller gave: one URL, or a cluster's list of them. */
function nodesOf(baseUrl: ClientOptions['baseUrl']): URL[] {
    const list = typeof baseUrl === 'string' || baseUrl instanceof URL ? [baseUrl] : baseUrl;
    if (!Array.isArray(list) || list.length === 0 || list.length > NODES_MAX) {
        throw new RangeError(`baseUrl must be a URL or a list of 1 to ${NODES_MAX} of them`);
    }
    return list.map((value) => {
        const node = new URL(String(value));
        if (node.protocol !== 'http:' && node.protocol !== 'https:') {
            throw new TypeError('baseUrl must be an http: or https: URL');
        }
        return node;
    });
}

/* Where a call's path is on a node (whose path prefix is kept). */
function apiUrl(node: URL, path: string): URL {
    return new URL(node.pathname.replace(/\/+$/, '') + path, node);
}

/* The node a redirect names: its Location less the call's path, which the
 * standby appended to the owner's URL. undefined when the Location does not
 * end with that path (a proxy between rewrote it): the hop is followed, the
 * owner not remembered. */
function ownerOf(location: URL, path: string): URL | undefined {
    if (location.search !== '' || !location.pathname.endsWith(path)) {
        return undefined;
    }
    const prefix = location.pathname.slice(0, location.pathname.length - path.length);
    return new URL(`${prefix.replace(/\/+$/, '')}/`, location);
}

/* A node as compared: its origin and path prefix, trailing slashes aside. */
function nodeKey(node: URL): string {
    return node.origin + node.pathname.replace(/\/+$/, '');
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
    /* The first node given. */
    readonly baseUrl: URL;
    readonly #nodes: readonly URL[];
    /* The node of the list last moved to; #node may be an owner that a
     * redirect named and the list does not. */
    #nodeIndex = 0;
    /* Where calls go: the node that answered last. */
    #node: URL;
    readonly #apiKey: string | undefined;
    readonly #settings: Settings;
    readonly #onEvent: ((event: ClientEvent) => void) | undefined;
    /* A keep-alive pool per scheme (a redirect may lead to https:). */
    readonly #agents = new Map<string, http.Agent>();

    constructor(options: ClientOptions) {
        this.#nodes = Object.freeze(nodesOf(options.baseUrl));
        this.baseUrl = this.#nodes[0] as URL;
        this.#node = this.baseUrl;
        this.#apiKey = options.apiKey;
        this.#settings = settingsOf(options);
        this.#onEvent = options.onEvent;
    }

    /* The node the next call goes to: the one that answered last. */
    get nodeUrl(): URL {
        return new URL(this.#node.href);
    }

    /* Closes the pooled connections; calls made afterwards open new ones. */
    close(): void {
        for (const agent of this.#agents.values()) {
            agent.destroy();
        }
    }

    /* ------------------------------------------------------------- holds */

    /* POST /v1/holds: all the lines held, or none. The reply's `secret` is
     * the caller's to keep for the shopper. */
    async createHold(body: HoldCreateRequest, options?: CallOptions): Promise<CreatedHold> {
        return this.#send({ method: 'POST', route: '/v1/holds', path: '/v1/holds', body,
                            challengeable: true }, options);
    }

    /* POST /v1/holds with "commit": true: held and sold in one step. */
    async buyNow(body: BuyNowRequest, options?: CallOptions): Promise<CreatedHold> {
        return this.createHold({ ...body, commit: true }, options);
    }

    async getHold(hold: HoldRef, options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'GET', route: '/v1/holds/{id}',
                            ...this.#holdPath(hold, '') }, options);
    }

    /* The new expiry is the later of the old one and now + ttl_ms. */
    async extendHold(hold: HoldRef, body: HoldExtendRequest,
                     options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'POST', route: '/v1/holds/{id}/extend', body,
                            ...this.#holdPath(hold, '/extend') }, options);
    }

    /* Held units become sold; committing again returns the hold unchanged. */
    async commitHold(hold: HoldRef, body: HoldCommitRequest = {},
               options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'POST', route: '/v1/holds/{id}/commit', body,
                            ...this.#holdPath(hold, '/commit') }, options);
    }

    /* Held units become available; releasing again is harmless. */
    async releaseHold(hold: HoldRef, options?: CallOptions): Promise<Hold> {
        return this.#send({ method: 'DELETE', route: '/v1/holds/{id}',
                            ...this.#holdPath(hold, '') }, options);
    }

    /* ---------------------------------------------------------- waitlist */

    /* POST /v1/skus/{sku}/waitlist; the reply's `secret` is the entry's. A
     * join whose reply was lost is sent again with its key, and the server
     * answers the entry it made (Idempotent-Replayed). */
    async joinWaitlist(sku: string, body: WaitlistJoinRequest,
                 options?: CallOptions): Promise<JoinedEntry> {
        const path = `/v1/skus/${segment('sku', sku)}/waitlist`;
        return this.#send({ method: 'POST', route: '/v1/skus/{sku}/waitlist', path, body },
                          options);
    }

    /* An entry that is `offered` carries its hold, with the hold's secret. */
    async getWaitlistEntry(entry: WaitlistRef, options?: CallOptions): Promise<WaitlistEntry> {
        return this.#send({ method: 'GET', route: '/v1/waitlist/{id}',
                            ...this.#waitPath(entry) }, options);
    }

    async cancelWaitlistEntry(entry: WaitlistRef, options?: CallOptions): Promise<WaitlistEntry> {
        return this.#send({ method: 'DELETE', route: '/v1/waitlist/{id}',
                            ...this.#waitPath(entry) }, options);
    }

    /* -------------------------------------------------------------- skus */

    async getSku(sku: string, options?: CallOptions): Promise<Sku> {
        return this.#send({ method: 'GET', route: '/v1/skus/{sku}',
                            path: `/v1/skus/${segment('sku', sku)}` }, options);
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

    #agentFor(url: URL): http.Agent {
        let agent = this.#agents.get(url.protocol);
        if (agent === undefined) {
            agent = makeAgent(url, this.#settings.connectionsMax, this.#settings.idleSocketMs);
            this.#agents.set(url.protocol, agent);
        }
        return agent;
    }

    /* The node `from` gave no answer, or said it does not own the shop:
     * calls go to the next node of the list. Unless another call moved on
     * already, so that calls failing together skip one node, not several. */
    #moveOn(from: URL): void {
        if (this.#node.href !== from.href) {
            return;
        }
        this.#nodeIndex = (this.#nodeIndex + 1) % this.#nodes.length;
        this.#node = this.#nodes[this.#nodeIndex] as URL;
    }

    /* A redirect named the shop's owner: calls go there from now on (to
     * the list's own URL of it, when it is one of the list's). */
    #remember(owner: URL): URL {
        const index = this.#nodes.findIndex((n) => nodeKey(n) === nodeKey(owner));
        if (index >= 0) {
            this.#nodeIndex = index;
        }
        this.#node = index >= 0 ? this.#nodes[index] as URL : owner;
        return this.#node;
    }

    /* Where a 307 leads, or a bad_redirect thrown: a Location that is an
     * absolute http(s) URL, not from https: to http: (the key and secrets
     * would go in the clear), within REDIRECT_HOPS_MAX hops in a row. */
    #redirectTarget(call: Call, state: { sent: number; hops: number }, reply: Reply, from: URL,
                    key: string | undefined): URL {
        const fail = (why: string) => noAnswer(state.sent, key, 'bad_redirect', reply.status,
                                               `${call.method} ${call.route}: ${why}`);
        const location = reply.headers.location;
        if (typeof location !== 'string' || location.length === 0) {
            throw fail(`a ${reply.status} from ${from.origin} without a Location`);
        }
        let to: URL;
        try {
            to = new URL(location);
        } catch {
            throw fail(`a ${reply.status} from ${from.origin} whose Location is not a URL`);
        }
        if (to.protocol !== 'http:' && to.protocol !== 'https:') {
            throw fail(`a ${reply.status} from ${from.origin} to a ${to.protocol} URL: only ` +
                       'http: and https: are followed');
        }
        if (from.protocol === 'https:' && to.protocol === 'http:') {
            throw fail(`a ${reply.status} from ${from.origin} to ${to.origin} is not followed: ` +
                       'it would send the key and secrets unencrypted');
        }
        state.hops++;
        if (state.hops > REDIRECT_HOPS_MAX) {
            throw fail(`more than ${REDIRECT_HOPS_MAX} redirects in a row (the last from ` +
                       `${from.origin} to ${to.origin}): the nodes do not agree on the ` +
                       "shop's owner");
        }
        return to;
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
        const timeoutMs = checked('timeoutMs', options.timeoutMs, this.#settings.timeoutMs);
        const state = { sent: 0, failures: 0, rounds: 0, hops: 0 };
        /* The node this request is addressed to, and the request's URL
         * there (or where a redirect from it led). */
        let node = this.#node;
        let url = apiUrl(node, call.path);
        for (;;) {
            state.sent++;
            let reply: Reply;
            try {
                reply = await exchange(this.#agentFor(url),
                                       { method: call.method, url, headers, body, timeoutMs,
                                         signal: options.signal });
            } catch (err) {
                if (!(err instanceof TransportFailure)) {
                    throw err;
                }
                await this.#afterFailure(call, state, err, key, options.signal, node);
                node = this.#node;
                url = apiUrl(node, call.path);
                continue;
            }
            this.#emit({ type: 'reply', method: call.method, route: call.route,
                         status: reply.status, attempts: state.sent,
                         replayed: reply.headers['idempotent-replayed'] === 'true' });
            if (reply.status === 307) {
                const to = this.#redirectTarget(call, state, reply, url, key);
                this.#emit({ type: 'redirect', method: call.method, route: call.route,
                             from: url.origin, to: to.origin, hop: state.hops });
                const owner = ownerOf(to, call.path);
                if (owner !== undefined) {
                    node = this.#remember(owner);
                }
                url = to;
                continue;
            }
            state.hops = 0;
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
            await this.#afterErrorReply(call, state, reply, key, options.signal, node);
            node = this.#node;
            url = apiUrl(node, call.path);
        }
    }

    /* No reply: move on to the next node, pause and return to retry; or
     * throw. */
    async #afterFailure(call: Call, state: { sent: number; failures: number; hops: number },
                        failure: TransportFailure, key: string | undefined,
                        signal: AbortSignal | undefined, node: URL): Promise<void> {
        const write = call.method !== 'GET';
        const may = failure.kind === 'timeout' || failure.kind === 'network';
        state.failures++;
        if (!may || state.failures >= this.#settings.attemptsMax) {
            throw noAnswer(state.sent, key, failure.kind, 0, failure.message,
                           write && !failure.refused, failure);
        }
        const reason = failure.errno === undefined ? failure.kind
                                                   : `${failure.kind} ${failure.errno}`;
        this.#moveOn(node);
        state.hops = 0;
        await this.#pause(call, state, undefined, reason, key, signal);
    }

    /* An error reply that is not a challenge: pause and return to retry a
     * 5xx that may pass (on the next node, for a node that does not own the
     * shop), or throw it. */
    async #afterErrorReply(call: Call, state: { sent: number; failures: number },
                           reply: Reply, key: string | undefined,
                           signal: AbortSignal | undefined, node: URL): Promise<void> {
        const details = errorBodyOf(reply);
        const unapplied = reply.status === 503 && UNAPPLIED_CODES.has(details.code);
        const may = reply.status >= 500;
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
        if (reply.status === 503 && ELSEWHERE_CODES.has(details.code)) {
            this.#moveOn(node);
        }
        await this.#pause(call, state, retryAfterMs(reply), `${reply.status} ${details.code}`,
                          key, signal);
    }

    async #pause(call: Call, state: { sent: number; failures: number },
                 serverMs: number | undefined, reason: string, key: string | undefined,
                 signal: AbortSignal | undefined): Promise<void> {
        const delayMs = this.#delayMs(state.failures, serverMs);
        this.#emit({ type: 'retry', method: call.method, route: call.route,
                     attempt: state.sent + 1, delayMs, reason, node: this.#node.origin });
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
