/*
 * solver.js - the reference solver for holdfast's proof-of-work challenge,
 * for the browser (a page or a Web Worker, see worker.js) and for Node 18 or
 * later. Plain JavaScript, no dependencies, an ES module.
 *
 * A client that gets a 428 with {"alg": "sha256", "prefix": P, "bits": B, ...}
 * retries with the header `Holdfast-Proof: P:NONCE`, where NONCE is 1-32
 * characters of [0-9A-Za-z] and the SHA-256 of the ASCII bytes "P:NONCE"
 * begins with B zero bits, the most significant bit of the first byte first.
 *
 * solve() tries the nonces 0, 1, 2, ... written in base 62 (digits 0-9, A-Z,
 * a-z in that order, no leading zeros), the same order as pow_solve() in
 * src/policy/pow.c, so that both find the same nonce and each can be tested
 * against the other. The server accepts any nonce that passes; the order only
 * makes the answer reproducible.
 *
 * Hashing uses WebCrypto (crypto.subtle), which is asynchronous: a batch of
 * digests is started at once and their results are scanned in order, so the
 * first nonce to pass is still the one returned.
 */

/* Wire format (API contract). */
export const PREFIX_BYTES_MAX = 64;
export const NONCE_BYTES_MAX = 32;
export const BITS_MAX = 32;

/* Digests in flight at once. One at a time is several times slower, each
 * digest waiting a trip through the event loop; past a few hundred nothing
 * more is gained (Node 20: 18 thousand hashes a second one at a time, 100-140
 * thousand from 256 on). At that rate 1024 reports progress about a hundred
 * times a second, often enough for a progress bar and no more. */
export const BATCH_DEFAULT = 1024;
/* A batch's promises and results are held in memory until it is scanned. */
export const BATCH_MAX = 65536;
/* 256 times the 2^32 tries that 32 bits take on average: running out means
 * a bug, not bad luck. Callers with a deadline pass their own. */
export const TRIES_MAX_DEFAULT = 2 ** 40;

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX_PATTERN = /^[0-9A-Za-z]{1,64}$/;

/* n, a safe non-negative integer, in base 62: the n-th nonce tried. */
export function base62(n) {
  let text = '';
  do {
    text = DIGITS[n % 62] + text;
    n = Math.floor(n / 62);
  } while (n > 0);
  return text;
}

/* The number of leading zero bits of a digest (a Uint8Array or an
 * ArrayBuffer), from the most significant bit of its first byte on;
 * 8 * length for an all-zero digest (256 for SHA-256). */
export function leadingZeroBits(bytes) {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  let bits = 0;
  for (const byte of view) {
    if (byte !== 0) {
      return bits + Math.clz32(byte) - 24;
    }
    bits += 8;
  }
  return bits;
}

/* WebCrypto's digest interface. Browsers and Node 19+ have it as
 * globalThis.crypto; Node 18 keeps it off the global object unless started
 * with --experimental-global-webcrypto, but has it in node:crypto. */
async function subtleCrypto() {
  if (globalThis.crypto?.subtle) {
    return globalThis.crypto.subtle;
  }
  if (globalThis.process?.versions?.node) {
    const { webcrypto } = await import('node:crypto');
    return webcrypto.subtle;
  }
  throw new Error('pow: no crypto.subtle; browsers offer it only to https or localhost pages');
}

function checkArguments(prefix, bits, triesMax, batch) {
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`pow: prefix must be 1-${PREFIX_BYTES_MAX} characters of [0-9A-Za-z]`);
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > BITS_MAX) {
    throw new RangeError(`pow: bits must be a whole number from 0 to ${BITS_MAX}`);
  }
  if (!Number.isSafeInteger(triesMax) || triesMax < 0) {
    throw new RangeError('pow: triesMax must be a whole number, 0 or more');
  }
  if (!Number.isInteger(batch) || batch < 1 || batch > BATCH_MAX) {
    throw new RangeError(`pow: batch must be a whole number from 1 to ${BATCH_MAX}`);
  }
}

/*
 * Finds the first nonce, in the base 62 order above, whose "prefix:nonce"
 * hashes to at least `bits` leading zero bits, trying at most triesMax.
 *
 * Resolves to {nonce, tries}, tries counting the nonces hashed up to and
 * including the one found (so nonce is base62(tries - 1)), or to null if
 * triesMax ran out. onProgress(tries), if given, is called after every batch
 * of `batch` nonces that found nothing. Throws (rejects) on a bad argument or
 * when no WebCrypto is available.
 */
export async function solve(
  prefix,
  bits,
  { triesMax = TRIES_MAX_DEFAULT, onProgress, batch = BATCH_DEFAULT } = {},
) {
  checkArguments(prefix, bits, triesMax, batch);
  const subtle = await subtleCrypto();
  const encoder = new TextEncoder();
  let tries = 0;
  while (tries < triesMax) {
    const count = Math.min(batch, triesMax - tries);
    const nonces = new Array(count);
    const pending = new Array(count);
    for (let i = 0; i < count; i++) {
      nonces[i] = base62(tries + i);
      pending[i] = subtle.digest('SHA-256', encoder.encode(`${prefix}:${nonces[i]}`));
    }
    const digests = await Promise.all(pending);
    for (let i = 0; i < count; i++) {
      if (leadingZeroBits(digests[i]) >= bits) {
        return { nonce: nonces[i], tries: tries + i + 1 };
      }
    }
    tries += count;
    if (onProgress) {
      onProgress(tries);
    }
  }
  return null;
}
