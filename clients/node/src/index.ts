/*
 * @holdfast/client - a client of holdfast's HTTP API for shop backends.
 * docs/INTEGRATION.md in the repository shows it at work in a shop.
 */
export {
    DEFAULTS, HoldfastClient, newIdempotencyKey,
    type BuyNowRequest, type CallOptions, type ClientEvent, type ClientOptions, type CreatedHold,
    type HoldRef, type JoinedEntry, type WaitlistRef,
} from './client.js';
export { HoldfastError, type TransportErrorCode } from './errors.js';
export { projectSolver, type Proof, type Solver } from './pow.js';
export type * from './wire.js';
