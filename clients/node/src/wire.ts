/*
 * wire.ts - the API's bodies as the client sends and receives them, named
 * from the types that `npm run gen` generates from docs/openapi.yaml (the
 * contract), with the API's own field names (snake_case), so that what a
 * caller writes is what goes on the wire and a change to the contract
 * that the client does not follow fails its build.
 */
import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];

export type Line = Schemas['HoldLine'];
export type HoldCreateRequest = Schemas['HoldCreate'];
export type HoldExtendRequest = Schemas['HoldExtend'];
export type HoldCommitRequest = Schemas['HoldCommit'];
export type Hold = Schemas['Hold'];
export type HoldState = Hold['state'];
export type WaitlistJoinRequest = Schemas['WaitJoin'];
export type WaitlistEntry = Schemas['WaitEntry'];
export type WaitlistState = WaitlistEntry['state'];
export type Sku = Schemas['Sku'];
export type Challenge = Schemas['Challenge'];
export type Rule = Schemas['Rule'];
/* The `error` member of every error reply. */
export type ApiErrorBody = Schemas['ErrorBody'];
export type ApiErrorReply = Schemas['Error'];
