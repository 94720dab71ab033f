/*
 * test_pow_js.mjs - web/pow/solver.js and worker.js: the JavaScript solver
 * finds the nonce that the C test's fixed vector names (tests/policy/
 * test_pow.c), and every nonce it finds verifies with node:crypto's SHA-256,
 * another implementation than the WebCrypto one the solver hashes with.
 *
 * Run with `node --test tests/guard/test_pow_js.mjs` (Node 18 or later; no
 * npm packages).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

/* The C test's vector, computed there by a Python loop and sha256sum. */
const VECTOR = { prefix: 'holdfastPowVector2', bits: 16, nonce: '3bW', tries: 13859 };

/* What a Web Worker's global scope offers worker.js, recorded. */
const workerScope = {
  listeners: [],
  posted: [],
  addEventListener(type, listener) {
    assert.equal(type, 'message');
    this.listeners.push(listener);
  },
  postMessage(message) {
    this.posted.push(message);
  },
};

/* web/ is served as it is, with no package.json, and Node 18 reads a .js
 * file as an ES module only under a package.json that says "module"; so the
 * test imports copies from a folder that has one. */
async function importWebPow() {
  const source = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'pow');
  const folder = mkdtempSync(join(tmpdir(), 'holdfast-pow-'));
  try {
    for (const name of ['solver.js', 'worker.js']) {
      copyFileSync(join(source, name), join(folder, name));
    }
    writeFileSync(join(folder, 'package.json'), '{"type": "module"}\n');
    globalThis.self = workerScope;
    const solver = await import(pathToFileURL(join(folder, 'solver.js')).href);
    await import(pathToFileURL(join(folder, 'worker.js')).href);
    return solver;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const { solve, leadingZeroBits, base62 } = await importWebPow();

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/* n in base 62, written apart from solver.js's own. */
function nthNonce(n) {
  let text = DIGITS[n % 62];
  for (n = Math.floor(n / 62); n > 0; n = Math.floor(n / 62)) {
    text = DIGITS[n % 62] + text;
  }
  return text;
}

/* Leading zero bits of SHA-256("prefix:nonce") by node:crypto, counted as
 * 256 less the bit length of the digest read as a number. */
function zeroBitsByNode(prefix, nonce) {
  const hex = createHash('sha256').update(`${prefix}:${nonce}`, 'ascii').digest('hex');
  const value = BigInt(`0x${hex}`);
  return value === 0n ? 256 : 256 - value.toString(2).length;
}

function assertFirstToPass(prefix, bits, result) {
  assert.notEqual(result, null);
  assert.equal(result.nonce, nthNonce(result.tries - 1));
  assert.ok(zeroBitsByNode(prefix, result.nonce) >= bits, `${prefix}:${result.nonce} at ${bits}`);
  for (let n = 0; n < result.tries - 1; n++) {
    assert.ok(zeroBitsByNode(prefix, nthNonce(n)) < bits, `${prefix}:${nthNonce(n)} passes too`);
  }
}

test('leadingZeroBits counts from the first byte\'s top bit', () => {
  const digest = (bytes) => {
    const d = new Uint8Array(32);
    d.set(bytes);
    return d;
  };
  assert.equal(leadingZeroBits(new Uint8Array(32).fill(0xff)), 0);
  assert.equal(leadingZeroBits(digest([0x00, 0x00, 0x80])), 16);
  assert.equal(leadingZeroBits(digest([0x01])), 7);
  assert.equal(leadingZeroBits(digest([0x00, 0x7f, 0xff])), 9);
  assert.equal(leadingZeroBits(digest([0x00, 0x00, 0x00, 0x10, 0xff])), 27);
  assert.equal(leadingZeroBits(new Uint8Array(32)), 256);
  const last = new Uint8Array(32);
  last[31] = 1;
  assert.equal(leadingZeroBits(last), 255);
  assert.equal(leadingZeroBits(digest([0x00, 0x00, 0x80]).buffer), 16);
});

test('base62 counts like the C solver', () => {
  for (const n of [0, 9, 10, 35, 36, 61, 62, 3843, 3844, VECTOR.tries - 1, 2 ** 53 - 1]) {
    assert.equal(base62(n), nthNonce(n));
  }
});

test('solve finds the C test\'s fixed vector', async () => {
  const result = await solve(VECTOR.prefix, VECTOR.bits);
  assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries });
  assert.equal(zeroBitsByNode(VECTOR.prefix, VECTOR.nonce), 17);
});

test('every nonce found verifies with node:crypto and is the first to pass', async () => {
  for (const prefix of ['a', 'Zz09', VECTOR.prefix]) {
    for (let bits = 0; bits <= 12; bits++) {
      assertFirstToPass(prefix, bits, await solve(prefix, bits));
    }
  }
});

test('the batch size changes the speed, never the nonce', async () => {
  for (const batch of [1, 999, 65536]) {
    const result = await solve(VECTOR.prefix, VECTOR.bits, { batch });
    assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries });
  }
});

test('onProgress reports every batch that found nothing', async () => {
  const reports = [];
  const result = await solve(VECTOR.prefix, VECTOR.bits, {
    batch: 1000,
    onProgress: (tries) => reports.push(tries),
  });
  assert.equal(result.nonce, VECTOR.nonce);
  assert.deepEqual(reports, Array.from({ length: 13 }, (_, i) => (i + 1) * 1000));
});

test('solve resolves to null when triesMax runs out', async () => {
  assert.equal(await solve(VECTOR.prefix, VECTOR.bits, { triesMax: VECTOR.tries - 1 }), null);
  assert.equal(await solve('p', 32, { triesMax: 1000 }), null);
  assert.equal(await solve('p', 0, { triesMax: 0 }), null);
  assert.deepEqual(await solve('p', 0, { triesMax: 1 }), { nonce: '0', tries: 1 });
});

test('solve refuses a bad challenge or option', async () => {
  for (const prefix of ['', 'a-b', 'a:b', 'é', 'P'.repeat(65), 42, undefined]) {
    await assert.rejects(solve(prefix, 4), TypeError);
  }
  await solve('P'.repeat(64), 0);
  for (const bits of [-1, 33, 1.5, '16', NaN, undefined]) {
    await assert.rejects(solve('abc', bits), RangeError);
  }
  await assert.rejects(solve('abc', 4, { batch: 0 }), RangeError);
  await assert.rejects(solve('abc', 4, { batch: 65537 }), RangeError);
  await assert.rejects(solve('abc', 4, { triesMax: -1 }), RangeError);
  await assert.rejects(solve('abc', 4, { triesMax: Infinity }), RangeError);
});

test('solve works without a global crypto, as on Node 18', async () => {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  delete globalThis.crypto;
  try {
    assert.equal(globalThis.crypto, undefined);
    const result = await solve(VECTOR.prefix, VECTOR.bits);
    assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries });
  } finally {
    if (descriptor) {
      Object.defineProperty(globalThis, 'crypto', descriptor);
    }
  }
});

async function sendToWorker(data) {
  workerScope.posted.length = 0;
  assert.equal(workerScope.listeners.length, 1);
  await workerScope.listeners[0]({ data });
  return [...workerScope.posted];
}

test('the worker posts progress every batch, then the header', async () => {
  const posted = await sendToWorker({ prefix: VECTOR.prefix, bits: VECTOR.bits, batch: 1000 });
  const progress = posted.filter((m) => m.type === 'progress').map((m) => m.tries);
  assert.deepEqual(progress, Array.from({ length: 13 }, (_, i) => (i + 1) * 1000));
  assert.deepEqual(posted.at(-1), {
    type: 'done',
    nonce: VECTOR.nonce,
    tries: VECTOR.tries,
    header: `${VECTOR.prefix}:${VECTOR.nonce}`,
  });
  assert.equal(posted.length, 14);
});

test('the worker reports a bad challenge, running out, and a second job as errors', async () => {
  const bad = await sendToWorker({ prefix: 'a-b', bits: 4 });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].type, 'error');
  assert.match(bad[0].message, /prefix/);

  const out = await sendToWorker({ prefix: 'p', bits: 32, triesMax: 10 });
  assert.deepEqual(out.map((m) => m.type), ['progress', 'error']);

  workerScope.posted.length = 0;
  const first = workerScope.listeners[0]({ data: { prefix: 'abc', bits: 8 } });
  await workerScope.listeners[0]({ data: { prefix: 'abc', bits: 8 } });
  await first;
  const types = workerScope.posted.map((m) => m.type);
  assert.equal(types[0], 'error');
  assert.equal(types.at(-1), 'done');
});
