/*
 * challenge.test.mjs - a hold that the policy prices with a proof of work:
 * the client pays it with the project's solver (dist/pow: web/pow/solver.js
 * and pow.wasm) and sends the request again, or hands the challenge back
 * when told not to pay or when the price is over its limit.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { HoldfastClient, projectSolver } from '@holdfast/client';
import { SHOP_KEY, getSku, putSku, startHoldfast, startLossyProxy } from './harness.mjs';

/* Every line costs a proof: no unit is free, and 10 bits (about a thousand
 * hashes) keeps the test quick on any engine. */
const POW_POLICY = { challenge: { free_units: 0, base_bits: 10, bits_max: 10 } };

let server;
let proxy;

before(async () => {
  server = await startHoldfast();
  await putSku(server, 'pow-a', { stock: 50, policy: POW_POLICY });
  proxy = await startLossyProxy(server.url, () => false);
});

after(async () => {
  await proxy.close();
  assert.equal(await server.stop(), 0);
});

test('a 428 is solved with the project\'s wasm solver and the hold is made', async () => {
  const events = [];
  const hf = new HoldfastClient({ baseUrl: proxy.url, apiKey: SHOP_KEY,
    onEvent: (e) => events.push(e) });
  try {
    const before = proxy.requests.length;
    const hold = await hf.createHold({ customer: 'pow-1', ip: '198.51.100.4',
      lines: [{ sku: 'pow-a', qty: 1 }] });
    assert.equal(hold.state, 'active');
    assert.equal((await getSku(server, 'pow-a')).held, 1);

    const sent = proxy.requests.slice(before);
    assert.equal(sent.length, 2, 'the request, then the same one with its proof');
    assert.equal(sent[1].idempotencyKey, sent[0].idempotencyKey);
    const [challenge] = events.filter((e) => e.type === 'challenge');
    assert.equal(challenge.rule, 'scarcity_challenge');
    assert.equal(challenge.bits, 10);
    /* The build copies pow.wasm beside the solver; WebCrypto would mean it
     * did not (and the JS solver's own test fails on that too). */
    assert.equal(challenge.engine, 'wasm');
    assert.deepEqual(events.filter((e) => e.type === 'reply').map((e) => e.status), [428, 201]);
  } finally {
    hf.close();
  }
});

test('a price over challengeBitsMax, or solving off, hands the challenge back', async () => {
  for (const options of [{ challengeBitsMax: 9 }, { solveChallenges: false }]) {
    const hf = new HoldfastClient({ baseUrl: server.url, apiKey: SHOP_KEY, ...options });
    try {
      const err = await hf.createHold({ customer: 'pow-2', lines: [{ sku: 'pow-a', qty: 1 }] })
        .catch((e) => e);
      assert.equal(err.status, 428);
      assert.equal(err.code, 'challenge_required');
      assert.equal(err.challenge.bits, 10);
      assert.match(err.challenge.prefix, /^[0-9A-Za-z]+$/);
      assert.equal(err.attempts, 1);
    } finally {
      hf.close();
    }
  }
});

test('a challenge handed back can be paid elsewhere and the proof sent with the request',
  async () => {
    const hf = new HoldfastClient({ baseUrl: server.url, apiKey: SHOP_KEY, solveChallenges: false });
    try {
      const body = { customer: 'pow-5', ip: '198.51.100.5', lines: [{ sku: 'pow-a', qty: 1 }] };
      const err = await hf.createHold(body).catch((e) => e);
      assert.equal(err.status, 428);
      /* As the shopper's browser would, with web/pow/worker.js. */
      const proof = await projectSolver(err.challenge, new AbortController().signal);
      const hold = await hf.createHold(body, { proof: proof.header });
      assert.equal(hold.state, 'active');
      await assert.rejects(hf.createHold(body, { proof: 'not a proof' }), TypeError);
    } finally {
      hf.close();
    }
  });

test('a solver of the caller\'s own: `holdfast solve PREFIX BITS`', async () => {
  const run = promisify(execFile);
  const solver = async (challenge) => {
    const { stdout } = await run(process.env.HF_BINARY,
      ['solve', challenge.prefix, String(challenge.bits)]);
    return { header: stdout.trim(), engine: 'holdfast solve', tries: 0 };
  };
  const events = [];
  const hf = new HoldfastClient({ baseUrl: server.url, apiKey: SHOP_KEY, solver,
    onEvent: (e) => events.push(e) });
  try {
    const hold = await hf.createHold({ customer: 'pow-3', lines: [{ sku: 'pow-a', qty: 2 }] });
    assert.equal(hold.state, 'active');
    assert.equal(events.find((e) => e.type === 'challenge').engine, 'holdfast solve');
  } finally {
    hf.close();
  }
});

test('a solver that fails or runs past its deadline surfaces the 428', { timeout: 20000 },
  async () => {
    const never = (challenge, signal) => new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new Error('given up')));
    });
    const hf = new HoldfastClient({ baseUrl: server.url, apiKey: SHOP_KEY, solver: never,
      challengeTimeoutMs: 100 });
    try {
      const err = await hf.createHold({ customer: 'pow-4', lines: [{ sku: 'pow-a', qty: 1 }] })
        .catch((e) => e);
      assert.equal(err.status, 428);
      assert.equal(err.code, 'challenge_required');
      assert.match(err.message, /not found within 100 ms/);
      assert.equal(err.challenge.bits, 10);
    } finally {
      hf.close();
    }
  });
