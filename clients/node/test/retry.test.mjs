/*
 * retry.test.mjs - what the client does when the network or the server
 * fails, against stand-ins on loopback that fail on cue (harness.mjs):
 * which failures it retries, that each retry carries the same
 * Idempotency-Key, that retries and deadlines are bounded, and how a call
 * that never got an answer is reported.
 *
 * Every test here is bounded by its `timeout`; none asserts a speed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HoldfastClient, HoldfastError } from '@holdfast/client';
import { startScriptedServer, startSilentServer } from './harness.mjs';

const HOLD = {
  id: 'hold_AAAAAAAAAAA', secret: 'hs_AAAAAAAAAAAAAAAAAAAAAA', customer: 'c', state: 'active',
  lines: [{ sku: 's', qty: 1 }], created_at: '2026-01-01T00:00:00.000Z',
  expires_at: '2026-01-01T00:10:00.000Z', expires_in_ms: 600000,
};
const BODY = { customer: 'c', lines: [{ sku: 's', qty: 1 }] };
const BOUND = { timeout: 20000 };

function failing(n, status, code, extra = {}) {
  return (req, body, i) => (i < n
    ? { status, body: { error: { code, message: code } }, ...extra }
    : { status: 201, body: HOLD });
}

async function withServer(start, fn) {
  const server = await start;
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

test('503 outcome_unknown and 500 are retried with the same key until the create passes',
  BOUND, async () => {
    for (const [status, code] of [[503, 'outcome_unknown'], [503, 'overloaded'], [500, 'internal']]) {
      await withServer(startScriptedServer(failing(2, status, code)), async (server) => {
        const events = [];
        const hf = new HoldfastClient({ baseUrl: server.url, backoffMs: 1,
          onEvent: (e) => events.push(e) });
        const hold = await hf.createHold(BODY);
        hf.close();
        assert.equal(hold.id, HOLD.id);
        assert.equal(server.requests.length, 3);
        const keys = new Set(server.requests.map((r) => r.headers['idempotency-key']));
        assert.equal(keys.size, 1, 'one key for every attempt');
        assert.match([...keys][0], /^hf_[A-Za-z0-9_-]{22}$/);
        assert.deepEqual(server.requests.map((r) => r.body), Array(3).fill(JSON.stringify(BODY)));
        assert.deepEqual(events.filter((e) => e.type === 'retry').map((e) => e.attempt), [2, 3]);
      });
    }
  });

test('retries stop at attemptsMax and the error says the outcome is unknown', BOUND, async () => {
  await withServer(startScriptedServer(failing(99, 503, 'outcome_unknown')), async (server) => {
    const hf = new HoldfastClient({ baseUrl: server.url, backoffMs: 1, attemptsMax: 3 });
    const err = await hf.commitHold(HOLD, { order_ref: 'o-1' }, { idempotencyKey: 'commit-o-1' })
      .catch((e) => e);
    hf.close();
    assert.ok(err instanceof HoldfastError);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'outcome_unknown');
    assert.equal(err.attempts, 3);
    assert.equal(err.outcomeUnknown, true);
    assert.equal(err.idempotencyKey, 'commit-o-1');
    assert.equal(server.requests.length, 3);
    for (const r of server.requests) {
      assert.equal(r.headers['idempotency-key'], 'commit-o-1');
      assert.equal(r.headers['hold-secret'], HOLD.secret);
      assert.equal(r.url, `/v1/holds/${HOLD.id}/commit`);
    }
  });
});

test('a 503 overloaded is a change not made: its error says so', BOUND, async () => {
  await withServer(startScriptedServer(failing(99, 503, 'overloaded')), async (server) => {
    const hf = new HoldfastClient({ baseUrl: server.url, backoffMs: 1, attemptsMax: 2 });
    const err = await hf.createHold(BODY).catch((e) => e);
    hf.close();
    assert.equal(err.code, 'overloaded');
    assert.equal(err.outcomeUnknown, false);
    assert.equal(server.requests.length, 2);
  });
});

test('the server\'s Retry-After is waited out, within a bound', BOUND, async () => {
  await withServer(startScriptedServer(failing(1, 503, 'overloaded',
    { headers: { 'Retry-After': '1' } })), async (server) => {
    const events = [];
    const hf = new HoldfastClient({ baseUrl: server.url, onEvent: (e) => events.push(e) });
    await hf.createHold(BODY);
    hf.close();
    assert.equal(events.find((e) => e.type === 'retry').delayMs, 1000);
  });
});

test('a waitlist join is retried with its key, as a create is', BOUND, async () => {
  for (const [code, unknown] of [['overloaded', false], ['outcome_unknown', true]]) {
    await withServer(startScriptedServer(failing(99, 503, code)), async (server) => {
      const hf = new HoldfastClient({ baseUrl: server.url, backoffMs: 1, attemptsMax: 3 });
      const err = await hf.joinWaitlist('s', { customer: 'c' }).catch((e) => e);
      hf.close();
      assert.equal(err.code, code);
      assert.equal(err.outcomeUnknown, unknown, code);
      assert.equal(server.requests.length, 3, code);
      const keys = new Set(server.requests.map((r) => r.headers['idempotency-key']));
      assert.equal(keys.size, 1, 'every request of the join carries one key');
      assert.equal([...keys][0], err.idempotencyKey);
    });
  }
});

test('4xx are not retried; a challenge is thrown when solving is off', BOUND, async () => {
  const challenge = { alg: 'sha256', prefix: 'abc', bits: 8, expires_at: '2099-01-01T00:00:00.000Z' };
  const replies = [
    [429, { code: 'policy_denied', message: 'm', rule: 'hold_share', limit: 1, current: 1,
      retry_after_ms: 5000, buy_now: true }],
    [428, { code: 'challenge_required', message: 'm', rule: 'scarcity_challenge', challenge }],
  ];
  for (const [status, error] of replies) {
    await withServer(startScriptedServer(() => ({ status, body: { error } })), async (server) => {
      const hf = new HoldfastClient({ baseUrl: server.url, solveChallenges: false });
      const err = await hf.createHold(BODY).catch((e) => e);
      hf.close();
      assert.equal(err.status, status);
      assert.equal(err.code, error.code);
      assert.equal(err.rule, error.rule);
      assert.equal(server.requests.length, 1);
      if (status === 429) {
        assert.equal(err.retryAfterMs, 5000);
        assert.equal(err.buyNow, true);
      } else {
        assert.deepEqual(err.challenge, challenge);
      }
    });
  }
});

test('a reply that is not the API\'s JSON is a typed error too', BOUND, async () => {
  await withServer(startScriptedServer(() => ({ status: 502, body: '<html>bad gateway</html>' })),
    async (server) => {
      const hf = new HoldfastClient({ baseUrl: server.url, backoffMs: 1, attemptsMax: 2 });
      const err = await hf.getSku('s').catch((e) => e);
      hf.close();
      assert.equal(err.status, 502);
      assert.equal(err.code, 'http_502');
      assert.equal(err.attempts, 2);
    });
});

test('a server that never answers: each request ends at its deadline, retries are bounded',
  BOUND, async () => {
    await withServer(startSilentServer(), async (server) => {
      const hf = new HoldfastClient({ baseUrl: server.url, timeoutMs: 200, backoffMs: 1,
        attemptsMax: 3 });
      const err = await hf.createHold(BODY, { idempotencyKey: 'cart-7-v1' }).catch((e) => e);
      hf.close();
      assert.ok(err instanceof HoldfastError);
      assert.equal(err.status, 0);
      assert.equal(err.code, 'timeout');
      assert.equal(err.attempts, 3);
      assert.equal(err.outcomeUnknown, true, 'the server may have applied it');
      assert.equal(err.idempotencyKey, 'cart-7-v1');
      assert.equal(server.requests.length, 3);
      for (const head of server.requests) assert.match(head, /\r\nIdempotency-Key: cart-7-v1/i);
    });
  });

test('the caller\'s signal ends a call at once, and is not retried', BOUND, async () => {
  await withServer(startSilentServer(), async (server) => {
    const hf = new HoldfastClient({ baseUrl: server.url, timeoutMs: 60000 });
    const controller = new AbortController();
    const call = hf.createHold(BODY, { signal: controller.signal });
    while (server.requests.length === 0) await new Promise((r) => setImmediate(r));
    controller.abort();
    const err = await call.catch((e) => e);
    hf.close();
    assert.equal(err.code, 'aborted');
    assert.equal(err.attempts, 1);
    assert.equal(server.requests.length, 1);
  });
});

test('a refused connection is retried and then reported', BOUND, async () => {
  /* A port that was just free: nothing listens there. */
  const gone = await startSilentServer();
  await gone.close();
  const hf = new HoldfastClient({ baseUrl: gone.url, backoffMs: 1, attemptsMax: 2 });
  const err = await hf.joinWaitlist('s', { customer: 'c' }).catch((e) => e);
  hf.close();
  assert.equal(err.code, 'network');
  assert.equal(err.attempts, 2);
  assert.equal(err.outcomeUnknown, false, 'nothing reached a server');
});

test('options out of their bounds are refused', () => {
  assert.throws(() => new HoldfastClient({ baseUrl: 'http://127.0.0.1:1', attemptsMax: 0 }),
    RangeError);
  assert.throws(() => new HoldfastClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: Infinity }),
    RangeError);
  assert.throws(() => new HoldfastClient({ baseUrl: 'ftp://127.0.0.1:1' }), TypeError);
});
