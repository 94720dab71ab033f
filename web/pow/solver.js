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
 * src/guard/proof.c, so that both find the same nonce and each can be tested
 * against the other. The server accepts any nonce that passes; the order only
 * makes the answer reproducible.
 *
 * Two engines hash, in that same order:
 *   - 'wasm': pow.wasm, built from pow_wasm.c next to this file, runs the
 *     search loop itself, `batch` nonces a call, millions a second. It is
 *     loaded once, on the first solve(), and checked against known answers
 *     before it is trusted.
 *   - 'webcrypto': crypto.subtle, one asynchronous digest a nonce, about
 *     eighty thousand a second. A batch of digests is started at once and
 *     their results are scanned in order, so the first nonce to pass is still
 *     the one returned. This is the fallback where pow.wasm cannot be loaded
 *     (no WebAssembly, the file missing, or it fails its check); engine() and
 *     every result say which engine ran, and the first fallback warns on the
 *     console.
 */

/* Wire format (API contract). */
export const PREFIX_BYTES_MAX = 64;
export const NONCE_BYTES_MAX = 32;
export const BITS_MAX = 32;

/* The WebCrypto engine's digests in flight at once. One at a time is several
 * times slower, each digest waiting a trip through the event loop; past a few
 * hundred nothing more is gained (Node 20: 18 thousand hashes a second one at
 * a time, 100-140 thousand from 256 on). At that rate 1024 reports progress
 * about a hundred times a second, often enough for a progress bar and no
 * more. */
export const BATCH_DEFAULT = 1024;
/* The wasm engine's nonces a call, between which it reports progress and
 * yields to the event loop. At 3-6 million hashes a second that is 10-20 ms a
 * call: 50-100 reports a second, and a call's overhead (well under a
 * microsecond) is lost in it. */
export const WASM_BATCH_DEFAULT = 65536;
/* A WebCrypto batch's promises and results are held in memory until it is
 * scanned; the wasm engine holds nothing, but one limit serves both. */
export const BATCH_MAX = 65536;
/* 256 times the 2^32 tries that 32 bits take on average: running out means
 * a bug, not bad luck. Callers with a deadline pass their own. */
export const TRIES_MAX_DEFAULT = 2 ** 40;
/* The engines, as solve()'s `engine` option and its result name them. */
export const ENGINES = Object.freeze(['wasm', 'webcrypto']);

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX_PATTERN = /^[0-9A-Za-z]{1,64}$/;

/* pow_search()'s answers besides an offset (pow_wasm.c). */
const WASM_SEARCH_NONE = -1;
const WASM_SEARCH_REFUSED = -2;

/* Known answers the wasm engine must give before it is trusted: the first
 * passing nonce's counter among [start, start + count), found with
 * node:crypto. One a message of one block, one of two blocks with the nonce
 * in the first, one whose first block is all prefix; a stale or broken pow.wasm
 * fails at least one of them and solve() falls back to WebCrypto. */
const WASM_SELF_TEST = [
  { prefix: 'holdfastPowVector2', bits: 16, start: 13850, count: 20, offset: 8 },
  { prefix: `holdfastPowSelfTest${'x'.repeat(41)}`, bits: 12, start: 1980, count: 20, offset: 12 },
  { prefix: `holdfastPowSelfTest${'Z'.repeat(45)}`, bits: 12, start: 380, count: 20, offset: 11 },
];

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

/* pow.wasm's bytes compiled and instantiated. In the browser it comes from
 * the server, next to this file (served as application/wasm, which streaming
 * compilation insists on); in Node, from the file next to this one. */
async function instantiateWasm() {
  if (typeof WebAssembly !== 'object') {
    throw new Error('this runtime has no WebAssembly');
  }
  const url = new URL('./pow.wasm', import.meta.url);
  if (url.protocol === 'file:' && globalThis.process?.versions?.node) {
    const [{ readFile }, { fileURLToPath }] = await Promise.all([
      import('node:fs/promises'),
      import('node:url'),
    ]);
    return (await WebAssembly.instantiate(await readFile(fileURLToPath(url)))).instance;
  }
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  const type = response.headers.get('Content-Type') ?? '';
  if (WebAssembly.instantiateStreaming && type.startsWith('application/wasm')) {
    return (await WebAssembly.instantiateStreaming(response)).instance;
  }
  return (await WebAssembly.instantiate(await response.arrayBuffer())).instance;
}

/* Runs pow_search() on [start, start + count): the offset of the first nonce
 * that passes, or WASM_SEARCH_NONE. The prefix is written again each call,
 * so solves that interleave in one page do not disturb each other. */
function wasmSearch(exports, prefix, bits, start, count) {
  const buffer = new Uint8Array(exports.memory.buffer, exports.pow_prefix_buffer(), prefix.length);
  for (let i = 0; i < prefix.length; i++) {
    buffer[i] = prefix.charCodeAt(i);
  }
  const offset = exports.pow_search(prefix.length, bits, start, count);
  if (offset === WASM_SEARCH_REFUSED || offset < WASM_SEARCH_NONE || offset >= count) {
    throw new Error(`pow: pow.wasm answered ${offset} to a search it should take (a bug)`);
  }
  return offset;
}

function wasmSelfTest(exports) {
  for (const { prefix, bits, start, count, offset } of WASM_SELF_TEST) {
    const found = wasmSearch(exports, prefix, bits, start, count);
    if (found !== offset) {
      throw new Error(`it failed its self-test (${prefix}, ${bits} bits: ${found}, not ${offset})`);
    }
  }
}

/* The wasm engine, loaded at most once: {exports} or {error}. */
let wasmLoad = null;

function loadWasm() {
  wasmLoad ??= instantiateWasm()
    .then((instance) => {
      wasmSelfTest(instance.exports);
      return { exports: instance.exports, error: null };
    })
    .catch((error) => {
      const reason = String(error?.message ?? error);
      console.warn(`pow: the WebAssembly solver is unavailable (${reason}); using WebCrypto`);
      return { exports: null, error: reason };
    });
  return wasmLoad;
}

/* Resolves to the engine solve() uses when not told which: 'wasm' if pow.wasm
 * loads and passes its self-test, else 'webcrypto'. Loads it if need be. */
export async function engine() {
  return (await loadWasm()).exports ? 'wasm' : 'webcrypto';
}

/* Yields to the event loop, not only to other promises: a page that solves on
 * its main thread gets to paint and take input between batches, and timers
 * run. setImmediate in Node; in browsers scheduler.yield where there is one,
 * else a message to ourselves, which unlike setTimeout is not clamped to 4 ms. */
function yieldToEventLoop() {
  if (typeof setImmediate === 'function') {
    return new Promise((resolve) => setImmediate(resolve));
  }
  if (typeof globalThis.scheduler?.yield === 'function') {
    return globalThis.scheduler.yield();
  }
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function checkArguments(prefix, bits, triesMax, batch, engineName) {
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`pow: prefix must be 1-${PREFIX_BYTES_MAX} characters of [0-9A-Za-z]`);
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > BITS_MAX) {
    throw new RangeError(`pow: bits must be a whole number from 0 to ${BITS_MAX}`);
  }
  if (!Number.isSafeInteger(triesMax) || triesMax < 0) {
    throw new RangeError('pow: triesMax must be a whole number, 0 or more');
  }
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1 || batch > BATCH_MAX)) {
    throw new RangeError(`pow: batch must be a whole number from 1 to ${BATCH_MAX}`);
  }
  if (engineName !== undefined && !ENGINES.includes(engineName)) {
    throw new RangeError(`pow: engine must be one of ${ENGINES.join(', ')}`);
  }
}

async function solveWasm(exports, prefix, bits, triesMax, batch, onProgress) {
  let tries = 0;
  while (tries < triesMax) {
    const count = Math.min(batch, triesMax - tries);
    const offset = wasmSearch(exports, prefix, bits, tries, count);
    if (offset !== WASM_SEARCH_NONE) {
      return { nonce: base62(tries + offset), tries: tries + offset + 1, engine: 'wasm' };
    }
    tries += count;
    if (onProgress) {
      onProgress(tries);
    }
    if (tries < triesMax) {
      await yieldToEventLoop();
    }
  }
  return null;
}

async function solveWebCrypto(prefix, bits, triesMax, batch, onProgress) {
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
        return { nonce: nonces[i], tries: tries + i + 1, engine: 'webcrypto' };
      }
    }
    tries += count;
    if (onProgress) {
      onProgress(tries);
    }
  }
  return null;
}

/*
 * Finds the first nonce, in the base 62 order above, whose "prefix:nonce"
 * hashes to at least `bits` leading zero bits, trying at most triesMax.
 *
 * Resolves to {nonce, tries, engine}, tries counting the nonces hashed up to
 * and including the one found (so nonce is base62(tries - 1)) and engine
 * naming the engine that hashed, or to null if triesMax ran out.
 * onProgress(tries), if given, is called after every batch of `batch` nonces
 * that found nothing; batch defaults to WASM_BATCH_DEFAULT for the wasm
 * engine and BATCH_DEFAULT for WebCrypto. `engine` ('wasm' or 'webcrypto')
 * insists on one; without it, wasm if it loads, else WebCrypto (engine()).
 *
 * Throws (rejects) on a bad argument, when the engine insisted on cannot run,
 * or when neither can.
 */
export async function solve(
  prefix,
  bits,
  { triesMax = TRIES_MAX_DEFAULT, onProgress, batch, engine: engineName } = {},
) {
  checkArguments(prefix, bits, triesMax, batch, engineName);
  if (engineName !== 'webcrypto') {
    const { exports, error } = await loadWasm();
    if (exports) {
      return solveWasm(exports, prefix, bits, triesMax, batch ?? WASM_BATCH_DEFAULT, onProgress);
    }
    if (engineName === 'wasm') {
      throw new Error(`pow: the WebAssembly solver is unavailable (${error})`);
    }
  }
  return solveWebCrypto(prefix, bits, triesMax, batch ?? BATCH_DEFAULT, onProgress);
}
