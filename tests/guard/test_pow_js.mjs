/*
 * test_pow_js.mjs - web/pow/solver.js and worker.js: both of the solver's
 * engines, the WebAssembly one (pow.wasm, built from pow_wasm.c) and the
 * WebCrypto one it falls back to, find the nonce that the C test's fixed
 * vector names (tests/guard/test_pow.c), and every nonce they find verifies
 * with node:crypto's SHA-256, an implementation apart from both.
 *
 * Run with `node --test tests/guard/test_pow_js.mjs` (Node 18 or later; no
 * npm packages) after a build: web/pow/pow.wasm is built by CMake (`make`),
 * and without it the wasm engine's tests fail rather than skip, so that a
 * build that lost the engine cannot pass.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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

const WEB_POW = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'pow');
const WASM_PATH = join(WEB_POW, 'pow.wasm');

/* Without pow.wasm the wasm engine's tests fail; this says why, once. */
if (!existsSync(WASM_PATH)) {
  console.error(`test_pow_js: ${WASM_PATH} is missing; build it (make, or cmake --build build)`);
}

/* Imports fresh copies of solver.js and worker.js (a module is loaded once
 * per URL, so each folder gets its own wasm engine or lack of one), with
 * `wasm` as pow.wasm beside them: the bytes, or null for none. web/ is served
 * as it is, and Node 18 reads a .js file as an ES module only under a
 * package.json that says "module"; so the copies go in a folder that has
 * one. The worker registers its listener on globalThis.self. */
async function importWebPow(wasm, scope) {
  const folder = mkdtempSync(join(tmpdir(), 'holdfast-pow-'));
  try {
    for (const name of ['solver.js', 'worker.js']) {
      copyFileSync(join(WEB_POW, name), join(folder, name));
    }
    if (wasm !== null) {
      writeFileSync(join(folder, 'pow.wasm'), wasm);
    }
    writeFileSync(join(folder, 'package.json'), '{"type": "module"}\n');
    const solver = await import(pathToFileURL(join(folder, 'solver.js')).href);
    if (scope) {
      globalThis.self = scope;
      await import(pathToFileURL(join(folder, 'worker.js')).href);
    }
    /* Loads the engine while the file is there to load. */
    const engine = await solver.engine();
    return { ...solver, loadedEngine: engine };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/* Runs fn with console.warn recorded instead of printed. */
async function recordingWarnings(fn) {
  const warn = console.warn;
  const warnings = [];
  console.warn = (...args) => warnings.push(args.join(' '));
  try {
    return { value: await fn(), warnings };
  } finally {
    console.warn = warn;
  }
}

const wasmBytes = existsSync(WASM_PATH) ? readFileSync(WASM_PATH) : null;
const web = await importWebPow(wasmBytes, workerScope);
const { solve, leadingZeroBits, base62, engine } = web;

/* A WebAssembly module with pow.wasm's exports whose search answers 0,
 * "the first nonce passes", to anything: valid, loadable, and wrong. Written
 * out byte by byte (the binary format's sections: types, functions, memory,
 * exports, code). */
function wrongWasm() {
  const name = (text) => [text.length, ...Buffer.from(text, 'ascii')];
  const section = (id, bytes) => [id, bytes.length, ...bytes];
  const exports = [
    3,
    ...name('memory'), 0x02, 0,
    ...name('pow_prefix_buffer'), 0x00, 0,
    ...name('pow_search'), 0x00, 1,
  ];
  const returnZero = [4, 0x00, 0x41, 0x00, 0x0b]; /* no locals; i32.const 0; end */
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, 0x60, 0, 1, 0x7f, 0x60, 4, 0x7f, 0x7f, 0x7c, 0x7f, 1, 0x7f]),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, exports),
    ...section(10, [2, ...returnZero, ...returnZero]),
  ]);
}

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

/* Prefixes of the lengths that lay the message out differently in pow.wasm:
 * one block; the nonce in the first block's last words; "PREFIX:" and the
 * nonce at 56 bytes and more, so two blocks, the nonce in the first or
 * straddling both; and all of the first block prefix. */
const LAYOUT_PREFIXES = [1, 4, 18, 30, 52, 55, 56, 60, 62, 63, 64].map((length) =>
  'holdfastPowLayouts'.repeat(4).slice(0, length),
);

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

test('pow.wasm is built, loads, passes its self-test and is the default engine', async () => {
  assert.notEqual(wasmBytes, null, `${WASM_PATH} is missing: build it (make)`);
  assert.equal(web.loadedEngine, 'wasm');
  assert.equal(await engine(), 'wasm');
  assert.equal((await solve(VECTOR.prefix, VECTOR.bits)).engine, 'wasm');
});

test('both engines find the C test\'s fixed vector', async () => {
  for (const name of ['wasm', 'webcrypto']) {
    const result = await solve(VECTOR.prefix, VECTOR.bits, { engine: name });
    assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: name });
  }
  assert.equal(zeroBitsByNode(VECTOR.prefix, VECTOR.nonce), 17);
});

test('every nonce either engine finds verifies with node:crypto, the first to pass', async () => {
  /* Layouts are pow.wasm's own concern; WebCrypto hashes every message alike. */
  const prefixes = {
    wasm: ['a', 'Zz09', VECTOR.prefix, ...LAYOUT_PREFIXES],
    webcrypto: ['a', 'Zz09', VECTOR.prefix],
  };
  for (const name of ['wasm', 'webcrypto']) {
    for (const prefix of prefixes[name]) {
      for (let bits = 0; bits <= 12; bits++) {
        const result = await solve(prefix, bits, { engine: name });
        assert.equal(result.engine, name);
        assertFirstToPass(prefix, bits, result);
      }
    }
  }
});

/* pow.wasm on its own, as solver.js drives it. */
async function wasmExports() {
  assert.notEqual(wasmBytes, null, `${WASM_PATH} is missing: build it (make)`);
  const { instance } = await WebAssembly.instantiate(wasmBytes);
  const { memory, pow_prefix_buffer: prefixBuffer, pow_search: search } = instance.exports;
  return (prefixBytes, bits, start, count, prefixLength = prefixBytes.length) => {
    new Uint8Array(memory.buffer, prefixBuffer(), prefixBytes.length).set(prefixBytes);
    return search(prefixLength, bits, start, count);
  };
}

test('pow.wasm agrees with node:crypto where nonces gain a digit and layouts change', async () => {
  const search = await wasmExports();
  /* Just before each 62^k (the nonce gains a digit, and with it perhaps a
   * block), and the last counters a JS number can name. */
  const starts = [0, 55, 3840, 238325, 62 ** 4 - 3, 62 ** 5 - 3, 62 ** 6 - 3, 62 ** 7 - 3,
    62 ** 8 - 3, 2 ** 53 - 60];
  const count = 60;
  let compared = 0;
  for (let length = 1; length <= 64; length++) {
    const prefix = 'holdfastPowLayouts'.repeat(4).slice(0, length);
    const bytes = Buffer.from(prefix, 'ascii');
    for (const start of starts) {
      const zeroBits = Array.from({ length: count }, (_, i) =>
        zeroBitsByNode(prefix, nthNonce(start + i)),
      );
      for (const bits of [1, 2, 3, 5, 7]) {
        const expected = zeroBits.findIndex((z) => z >= bits);
        assert.equal(search(bytes, bits, start, count), expected, `${prefix} ${start} ${bits}`);
        compared++;
      }
      /* From each counter on its own, so that each is laid out afresh. */
      for (let i = 0; i < count; i += 7) {
        assert.equal(search(bytes, 1, start + i, 1), zeroBits[i] >= 1 ? 0 : -1);
      }
    }
  }
  assert.equal(compared, 64 * starts.length * 5);
});

test('pow.wasm refuses what it was not made for, and hashes nothing for count 0', async () => {
  const search = await wasmExports();
  const ok = Buffer.from('abc', 'ascii');
  assert.equal(search(ok, 0, 0, 1), 0);
  assert.equal(search(ok, 32, 0, 0), -1);
  assert.equal(search(ok, 0, 2 ** 53 - 1, 1), 0);
  const refused = [
    [ok, 4, 0, 1, 0],
    [Buffer.alloc(65, 'a'), 4, 0, 1],
    [Buffer.from('a-b', 'ascii'), 4, 0, 1],
    [Buffer.from('a:b', 'ascii'), 4, 0, 1],
    [Buffer.from([0x61, 0xe9]), 4, 0, 1],
    [ok, -1, 0, 1],
    [ok, 33, 0, 1],
    [ok, 4, -1, 1],
    [ok, 4, 0.5, 1],
    [ok, 4, NaN, 1],
    [ok, 4, Infinity, 1],
    [ok, 4, 2 ** 53, 1],
    [ok, 4, 2 ** 53 - 1, 2],
    [ok, 4, 0, -1],
  ];
  for (const args of refused) {
    if (args[0].length > 64) {
      /* Longer than the buffer: only the length says so. */
      assert.equal(search(args[0].subarray(0, 64), 4, 0, 1, 65), -2);
    } else {
      assert.equal(search(...args), -2, String(args.slice(1)));
    }
  }
});

test('the batch size changes the speed, never the nonce', async () => {
  for (const name of ['wasm', 'webcrypto']) {
    for (const batch of [1, 999, 65536]) {
      const result = await solve(VECTOR.prefix, VECTOR.bits, { batch, engine: name });
      assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: name });
    }
  }
});

test('onProgress reports every batch that found nothing', async () => {
  for (const name of ['wasm', 'webcrypto']) {
    const reports = [];
    const result = await solve(VECTOR.prefix, VECTOR.bits, {
      batch: 1000,
      engine: name,
      onProgress: (tries) => reports.push(tries),
    });
    assert.equal(result.nonce, VECTOR.nonce);
    assert.deepEqual(reports, Array.from({ length: 13 }, (_, i) => (i + 1) * 1000));
  }
});

test('the wasm engine hashes WASM_BATCH_DEFAULT a call by default, reporting each', async () => {
  assert.equal(web.WASM_BATCH_DEFAULT, 65536);
  const reports = [];
  const result = await solve('p', 32, { triesMax: 200000, onProgress: (t) => reports.push(t) });
  assert.equal(result, null);
  assert.deepEqual(reports, [65536, 131072, 196608, 200000]);
});

test('the wasm engine lets the event loop run between batches', async () => {
  let ran = false;
  setImmediate(() => {
    ran = true;
  });
  const seen = [];
  await solve(VECTOR.prefix, VECTOR.bits, { batch: 1000, onProgress: () => seen.push(ran) });
  /* The first batch runs before anything else could; the callback queued
   * before the solve runs at the first yield, after it. */
  assert.equal(seen[0], false);
  assert.equal(seen.at(-1), true);
});

test('solves that interleave in one module find what each finds alone', async () => {
  const jobs = [
    [VECTOR.prefix, VECTOR.bits, 1000],
    ['Zz09', 12, 100],
    [LAYOUT_PREFIXES.at(-1), 12, 37],
    [LAYOUT_PREFIXES.at(-4), 11, 50],
  ];
  const alone = [];
  for (const [prefix, bits] of jobs) {
    alone.push(await solve(prefix, bits));
  }
  const together = await Promise.all(
    jobs.map(([prefix, bits, batch]) => solve(prefix, bits, { batch })),
  );
  assert.deepEqual(together, alone);
  assert.deepEqual(alone[0], { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: 'wasm' });
});

test('solve resolves to null when triesMax runs out', async () => {
  for (const name of ['wasm', 'webcrypto']) {
    const engineOption = { engine: name };
    assert.equal(
      await solve(VECTOR.prefix, VECTOR.bits, { ...engineOption, triesMax: VECTOR.tries - 1 }),
      null,
    );
    assert.equal(await solve('p', 32, { ...engineOption, triesMax: 1000 }), null);
    assert.equal(await solve('p', 0, { ...engineOption, triesMax: 0 }), null);
    assert.deepEqual(await solve('p', 0, { ...engineOption, triesMax: 1 }), {
      nonce: '0',
      tries: 1,
      engine: name,
    });
  }
});

test('solve refuses a bad challenge or option', async () => {
  for (const name of [undefined, 'wasm', 'webcrypto']) {
    for (const prefix of ['', 'a-b', 'a:b', 'é', 'P'.repeat(65), 42, undefined]) {
      await assert.rejects(solve(prefix, 4, { engine: name }), TypeError);
    }
    await solve('P'.repeat(64), 0, { engine: name });
    for (const bits of [-1, 33, 1.5, '16', NaN, undefined]) {
      await assert.rejects(solve('abc', bits, { engine: name }), RangeError);
    }
    await assert.rejects(solve('abc', 4, { batch: 0, engine: name }), RangeError);
    await assert.rejects(solve('abc', 4, { batch: 65537, engine: name }), RangeError);
    await assert.rejects(solve('abc', 4, { triesMax: -1, engine: name }), RangeError);
    await assert.rejects(solve('abc', 4, { triesMax: Infinity, engine: name }), RangeError);
    await assert.rejects(solve('abc', 4, { triesMax: 2 ** 53, engine: name }), RangeError);
  }
  for (const name of ['WASM', 'gpu', '', null, 1]) {
    await assert.rejects(solve('abc', 4, { engine: name }), RangeError);
  }
});

test('solve works without a global crypto, as on Node 18', async () => {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  delete globalThis.crypto;
  try {
    assert.equal(globalThis.crypto, undefined);
    for (const name of ['wasm', 'webcrypto']) {
      const result = await solve(VECTOR.prefix, VECTOR.bits, { engine: name });
      assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: name });
    }
  } finally {
    if (descriptor) {
      Object.defineProperty(globalThis, 'crypto', descriptor);
    }
  }
});

test('without pow.wasm, solve falls back to WebCrypto, says so once, and agrees', async () => {
  const loaded = await recordingWarnings(() => importWebPow(null));
  const fallback = loaded.value;
  assert.equal(fallback.loadedEngine, 'webcrypto');
  assert.equal(loaded.warnings.length, 1);
  assert.match(loaded.warnings[0], /WebAssembly solver is unavailable .*pow\.wasm.*WebCrypto/);

  const solved = await recordingWarnings(async () => [
    await fallback.solve(VECTOR.prefix, VECTOR.bits),
    await fallback.engine(),
  ]);
  assert.deepEqual(solved.value, [
    { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: 'webcrypto' },
    'webcrypto',
  ]);
  assert.deepEqual(solved.warnings, []);
  assertFirstToPass('Zz09', 10, await fallback.solve('Zz09', 10));
  await assert.rejects(fallback.solve('abc', 4, { engine: 'wasm' }), /unavailable/);
});

test('a pow.wasm that is not WebAssembly, or that answers wrongly, is not trusted', async () => {
  /* The wrong module is a working one: what stops it is the self-test. */
  const { instance } = await WebAssembly.instantiate(wrongWasm());
  assert.equal(instance.exports.pow_search(3, 16, 0, 100), 0);

  const cases = [
    [Buffer.from('not WebAssembly'), /unavailable/],
    [wrongWasm(), /self-test/],
  ];
  for (const [bytes, why] of cases) {
    const loaded = await recordingWarnings(() => importWebPow(bytes));
    assert.equal(loaded.value.loadedEngine, 'webcrypto');
    assert.equal(loaded.warnings.length, 1);
    assert.match(loaded.warnings[0], why);
    const result = await loaded.value.solve(VECTOR.prefix, VECTOR.bits);
    assert.deepEqual(result, { nonce: VECTOR.nonce, tries: VECTOR.tries, engine: 'webcrypto' });
  }
});

async function sendToWorker(data) {
  workerScope.posted.length = 0;
  assert.equal(workerScope.listeners.length, 1);
  await workerScope.listeners[0]({ data });
  return [...workerScope.posted];
}

test('the worker posts progress every batch, then the header and the engine', async () => {
  for (const name of [undefined, 'webcrypto']) {
    const posted = await sendToWorker({
      prefix: VECTOR.prefix,
      bits: VECTOR.bits,
      batch: 1000,
      engine: name,
    });
    const progress = posted.filter((m) => m.type === 'progress').map((m) => m.tries);
    assert.deepEqual(progress, Array.from({ length: 13 }, (_, i) => (i + 1) * 1000));
    assert.deepEqual(posted.at(-1), {
      type: 'done',
      nonce: VECTOR.nonce,
      tries: VECTOR.tries,
      header: `${VECTOR.prefix}:${VECTOR.nonce}`,
      engine: name ?? 'wasm',
    });
    assert.equal(posted.length, 14);
  }
});

test('the worker reports a bad challenge, running out, and a second job as errors', async () => {
  const bad = await sendToWorker({ prefix: 'a-b', bits: 4 });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].type, 'error');
  assert.match(bad[0].message, /prefix/);

  const badEngine = await sendToWorker({ prefix: 'abc', bits: 4, engine: 'gpu' });
  assert.equal(badEngine.length, 1);
  assert.match(badEngine[0].message, /engine/);

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
