/*
 * transport.ts - one HTTP exchange with the server: node:http (or https)
 * through a keep-alive agent, bounded in time by an AbortController and in
 * size by REPLY_BYTES_MAX. No retries here; client.ts decides those.
 *
 * Why node:http and not fetch: its Agent pools connections with a cap
 * (the server admits 64 connections per client address by default and
 * answers more with 503) and closes idle ones before the server's idle
 * deadline (15 s) does, which shrinks the window in which a request is
 * written to a connection the server is closing. fetch's pool can only be
 * tuned through the undici package, a dependency; node:http is built in on
 * every Node this client runs on (18 and later).
 */
import http from 'node:http';
import https from 'node:https';

/* The largest reply read: the biggest of the API's replies (a waitlist
 * entry with its hold of 64 lines) is a few KiB. */
export const REPLY_BYTES_MAX = 1024 * 1024;

export interface Exchange {
    method: string;
    url: URL;
    headers: Record<string, string>;
    body: string | undefined;
    timeoutMs: number;
    signal: AbortSignal | undefined;
}

export interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    /* The body parsed as JSON; undefined when it was empty or not JSON. */
    json: unknown;
}

export type FailureKind = 'timeout' | 'aborted' | 'network' | 'bad_reply';

/* An exchange that got no usable reply. `refused` is true when the
 * connection was never made, so the server cannot have seen the request. */
export class TransportFailure extends Error {
    constructor(
        readonly kind: FailureKind,
        message: string,
        readonly refused: boolean,
        readonly errno: string | undefined,
    ) {
        super(message);
        this.name = 'TransportFailure';
    }
}

export function makeAgent(url: URL, socketsMax: number, idleMs: number): http.Agent {
    const options = { keepAlive: true, maxSockets: socketsMax, maxFreeSockets: socketsMax,
                      timeout: idleMs, scheduling: 'lifo' as const };
    return url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
}

function errnoOf(err: unknown): string | undefined {
    const code = (err as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : undefined;
}

function parseJson(text: string): unknown {
    if (text.length === 0) {
        return undefined;
    }
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

/* Sends one request and reads its whole reply. Rejects with a
 * TransportFailure; resolves with any status, errors included. */
export function exchange(agent: http.Agent, x: Exchange): Promise<Reply> {
    const controller = new AbortController();
    let why: FailureKind | undefined;
    const stop = (kind: FailureKind) => {
        why ??= kind;
        controller.abort();
    };
    const onCallerAbort = () => stop('aborted');
    if (x.signal?.aborted) {
        return Promise.reject(new TransportFailure('aborted', 'aborted by the caller', true,
                                                   undefined));
    }
    x.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const timer = setTimeout(() => stop('timeout'), x.timeoutMs);
    const what = `${x.method} ${x.url.pathname}`;

    return new Promise<Reply>((resolve, reject) => {
        let connected = false;
        const fail = (err: unknown, kind: FailureKind) => {
            const k = why ?? kind;
            const text = k === 'timeout' ? `timed out after ${x.timeoutMs} ms`
                       : k === 'aborted' ? 'aborted by the caller'
                       : k === 'bad_reply' ? `the reply is over ${REPLY_BYTES_MAX} bytes`
                       : String((err as Error | null)?.message ?? err);
            reject(new TransportFailure(k, `${what}: ${text}`, !connected, errnoOf(err)));
        };
        const mod = x.url.protocol === 'https:' ? https : http;
        const req = mod.request(x.url, { method: x.method, headers: x.headers, agent,
                                         signal: controller.signal });
        req.on('socket', (socket) => {
            /* A pooled socket is connected already; a new one once it says so. */
            if (!socket.connecting) {
                connected = true;
                return;
            }
            socket.once('connect', () => {
                connected = true;
            });
        });
        req.on('error', (err) => fail(err, 'network'));
        req.on('response', (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (chunk: Buffer) => {
                size += chunk.length;
                if (size > REPLY_BYTES_MAX) {
                    stop('bad_reply');
                    return;
                }
                chunks.push(chunk);
            });
            res.on('error', (err) => fail(err, 'network'));
            res.on('end', () => {
                resolve({ status: res.statusCode ?? 0, headers: res.headers,
                          json: parseJson(Buffer.concat(chunks).toString('utf8')) });
            });
            /* Closed before its end: the connection broke mid-reply. (A
             * settled promise ignores this after 'end' or 'error'.) */
            res.on('close', () => fail(new Error('the reply was cut short'), 'network'));
        });
        req.end(x.body);
    }).finally(() => {
        clearTimeout(timer);
        x.signal?.removeEventListener('abort', onCallerAbort);
    });
}
