/*
 * errors.ts - the one error the client throws.
 *
 * Two kinds of failure end a call:
 *   - the server answered with an error (status 400-599): `status` and
 *     `code` are the server's, and `details` is its JSON error object as
 *     sent (`field`, `rule`, `sku`, `available`, `retry_after_ms`,
 *     `buy_now`, `challenge`, `reason`, ...);
 *   - no answer came (status 0): `code` is `timeout`, `network` or
 *     `aborted` (the caller's signal), or `bad_reply` when what came back
 *     was not the API's JSON, or `bad_redirect` (status 307) when a
 *     cluster's redirect could not be followed: no Location, not an
 *     http(s) URL, or more hops in a row than a standby-to-owner one.
 *
 * A write that ends without an answer may or may not have been applied:
 * `outcomeUnknown` says so, and `idempotencyKey` is the key it was sent
 * with, to send it again later with the same key.
 *
 * No error carries a request's headers or body: the Hold-Secret, the
 * Waitlist-Secret and the API key cannot leak through a log line that
 * prints an error. Nor does printing one show its Idempotency-Key, which
 * can fetch a hold's secret again (a getter over a private field).
 */
import type { ApiErrorBody, Challenge, Rule } from './wire.js';

/* Codes for a call that got no answer from the API. */
export type TransportErrorCode = 'timeout' | 'network' | 'aborted' | 'bad_reply' | 'bad_redirect';

export interface HoldfastErrorInit {
    status: number;
    code: string;
    message: string;
    details?: ApiErrorBody;
    attempts: number;
    idempotencyKey?: string | undefined;
    outcomeUnknown?: boolean;
    cause?: unknown;
}

export class HoldfastError extends Error {
    /* The HTTP status; 0 when no reply came. */
    readonly status: number;
    /* The API's error code (`insufficient_stock`, `policy_denied`, ...) or a
     * TransportErrorCode. */
    readonly code: string;
    /* The field a 400 is about (`lines[0].qty`, `Idempotency-Key`, ...). */
    readonly field: string | undefined;
    /* The server's error object as sent; empty when no reply came. */
    readonly details: ApiErrorBody;
    /* Requests sent for this call, retries included. */
    readonly attempts: number;
    /* Kept out of sight of console.log and JSON.stringify: a create's key
     * replayed returns the hold's secret. */
    readonly #idempotencyKey: string | undefined;
    /* True when a write may have been applied though no answer said so. */
    readonly outcomeUnknown: boolean;

    constructor(init: HoldfastErrorInit) {
        super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
        this.name = 'HoldfastError';
        this.status = init.status;
        this.code = init.code;
        this.details = init.details ?? { code: init.code, message: init.message };
        this.field = typeof this.details.field === 'string' ? this.details.field : undefined;
        this.attempts = init.attempts;
        this.#idempotencyKey = init.idempotencyKey;
        this.outcomeUnknown = init.outcomeUnknown ?? false;
    }

    /* The key a write was sent with: send the write again with it to learn
     * whether a write whose outcome is unknown was applied. */
    get idempotencyKey(): string | undefined {
        return this.#idempotencyKey;
    }

    /* The policy rule behind a 428 or a 429. */
    get rule(): Rule | undefined {
        return this.details.rule;
    }

    /* The sku a refusal is about. */
    get sku(): string | undefined {
        return this.details.sku;
    }

    /* How long to wait before the same request could pass (a 429 where
     * waiting helps). */
    get retryAfterMs(): number | undefined {
        return this.details.retry_after_ms;
    }

    /* A 429 whose units can still be bought outright (buyNow). */
    get buyNow(): boolean {
        return this.details.buy_now === true;
    }

    /* A 428's proof of work, when the client did not solve it (solving is
     * off, or the price is over challengeBitsMax). */
    get challenge(): Challenge | undefined {
        return this.details.challenge;
    }
}
