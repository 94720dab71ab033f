/*
 * secrets.test.mjs - a hold's secret goes where it must (the Hold-Secret
 * header of the hold's own calls) and nowhere else: not into anything the
 * client prints, its events, its errors (however they are printed), a URL,
 * or the server's log.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { inspect } from 'node:util';

import { HoldfastClient } from '@holdfast/client';
import { SHOP_KEY, putSku, startHoldfast, startLossyProxy } from './harness.mjs';

let server;

before(async () => {
  server = await startHoldfast();
  await putSku(server, 'sec-a', { stock: 10 });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

/* Runs fn with everything written to the console or to stderr kept aside
 * (the test runner's own stdout is left alone). */
async function capturingOutput(fn) {
  const written = [];
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
  const saved = methods.map((m) => console[m]);
  const savedWrite = process.stderr.write;
  for (const m of methods) console[m] = (...args) => written.push(args.map((a) => inspect(a)).join(' '));
  process.stderr.write = (chunk, ...rest) => {
    written.push(String(chunk));
    return typeof rest.at(-1) === 'function' ? (rest.at(-1)(), true) : true;
  };
  try {
    await fn();
  } finally {
    methods.forEach((m, i) => {
      console[m] = saved[i];
    });
    process.stderr.write = savedWrite;
  }
  return written;
}

test('a secret is sent as Hold-Secret on its hold\'s calls and seen nowhere else', async () => {
  let commits = 0;
  const proxy = await startLossyProxy(server.url,
    (req) => req.url.endsWith('/commit') && commits++ === 0);
  const events = [];
  const errors = [];
  const hf = new HoldfastClient({ baseUrl: proxy.url, apiKey: SHOP_KEY, backoffMs: 1,
    onEvent: (e) => events.push(e) });
  let secret;
  let secretTwo;
  let holdId;
  const written = await capturingOutput(async () => {
    const hold = await hf.createHold({ customer: 'sec-1', lines: [{ sku: 'sec-a', qty: 1 }] });
    secret = hold.secret;
    holdId = hold.id;
    await hf.getHold(hold);
    await hf.extendHold(hold, { ttl_ms: 120000 });
    await hf.commitHold(hold, { order_ref: 'order-sec-1' }); /* its first reply is lost */
    errors.push(await hf.releaseHold(hold).catch((e) => e));
    errors.push(await hf.getHold({ id: hold.id, secret: `${secret}x` }).catch((e) => e));
    const two = await hf.createHold({ customer: 'sec-2', lines: [{ sku: 'sec-a', qty: 1 }] });
    secretTwo = two.secret;
    /* Another hold's secret is refused and changes nothing. */
    errors.push(await hf.releaseHold({ id: two.id, secret }).catch((e) => e));
    await hf.releaseHold(two);
  });
  hf.close();
  await proxy.close();

  assert.match(secret, /^hs_[A-Za-z0-9_-]{22}$/);
  assert.equal(commits, 2, 'the commit was sent again after its reply was lost');
  assert.deepEqual(errors.map((e) => e.code),
    ['hold_committed', 'hold_secret_wrong', 'hold_secret_wrong']);
  for (const r of proxy.requests) assert.ok(!r.url.includes('hs_'), r.url);

  const seen = [
    ...written,
    JSON.stringify(events),
    ...errors.flatMap((e) => [e.message, String(e), inspect(e, { depth: 10, showHidden: true }),
      JSON.stringify(e), e.stack]),
    server.log(),
  ].join('\n');
  /* A create's Idempotency-Key fetches its hold's secret again: it is kept
   * as close as the secret. */
  const writes = proxy.requests.filter((r) => r.method !== 'GET');
  const keys = [...new Set(writes.map((r) => r.idempotencyKey))];
  assert.equal(keys.length, writes.length - 1, 'a key a write, the retried commit\'s twice');
  assert.ok(keys.every((k) => /^hf_/.test(k)));
  for (const s of [secret, secretTwo, SHOP_KEY, ...keys]) {
    assert.ok(!seen.includes(s), 'a secret or key in printed output, events, errors or the log');
  }
  assert.ok(keys.includes(errors[0].idempotencyKey), 'still there for the caller to read');
  /* Events name routes, not holds: they can go to logs as they are. */
  assert.ok(!JSON.stringify(events).includes(holdId));
  assert.ok(events.length > 8, 'there were events to look at');
});
