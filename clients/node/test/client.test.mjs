/*
 * client.test.mjs - the built client (dist/) against a real holdfast
 * server: a hold's life, idempotent retries across a lost reply, errors
 * as typed values, proofs of work solved with the project's solver.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { HoldfastClient, HoldfastError } from '@holdfast/client';
import { SHOP_KEY, admin, getSku, putSku, startHoldfast, startLossyProxy } from './harness.mjs';

let server;

before(async () => {
  server = await startHoldfast();
  for (const sku of ['life-a', 'life-b', 'idem-a', 'err-a', 'buy-a', 'wait-a']) {
    await putSku(server, sku, { stock: 100 });
  }
  await putSku(server, 'short-a', { stock: 1 });
  await putSku(server, 'short-b', { stock: 1 });
  await putSku(server, 'err-b', { stock: 2 });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

function client(options = {}) {
  return new HoldfastClient({ baseUrl: server.url, apiKey: SHOP_KEY, ...options });
}

test('a hold lives: create, get, extend, commit', async () => {
  const hf = client();
  try {
    const hold = await hf.createHold({
      customer: 'life-1', ip: '203.0.113.7', fingerprint: 'fp-life-1',
      lines: [{ sku: 'life-a', qty: 2 }, { sku: 'life-b', qty: 1 }], ttl_ms: 60000,
    });
    assert.match(hold.id, /^hold_/);
    assert.match(hold.secret, /^hs_/);
    assert.equal(hold.state, 'active');
    assert.deepEqual(hold.lines, [{ sku: 'life-a', qty: 2 }, { sku: 'life-b', qty: 1 }]);
    assert.equal((await getSku(server, 'life-a')).held, 2);

    const read = await hf.getHold(hold);
    assert.equal(read.id, hold.id);
    assert.equal(read.secret, undefined, 'only the create hands the secret out');

    const extended = await hf.extendHold(hold, { ttl_ms: 300000 });
    assert.ok(Date.parse(extended.expires_at) > Date.parse(hold.expires_at));

    const committed = await hf.commitHold(hold, { order_ref: 'order-life-1' });
    assert.equal(committed.state, 'committed');
    assert.equal(committed.order_ref, 'order-life-1');
    const sku = await getSku(server, 'life-a');
    assert.equal(sku.held, 0);
    assert.equal(sku.sold, 2);

    /* Committing again is harmless, and says so. */
    assert.equal((await hf.commitHold(hold, { order_ref: 'order-life-1' })).state, 'committed');
  } finally {
    hf.close();
  }
});

test('a hold lives: create, release; releasing again is harmless', async () => {
  const hf = client();
  try {
    const hold = await hf.createHold({ customer: 'life-2', lines: [{ sku: 'life-b', qty: 1 }] });
    assert.equal((await getSku(server, 'life-b')).held, 1);
    const released = await hf.releaseHold({ id: hold.id, secret: hold.secret });
    assert.equal(released.state, 'released');
    assert.equal((await getSku(server, 'life-b')).held, 0);
    assert.equal((await hf.releaseHold(hold)).state, 'released');
    await assert.rejects(hf.commitHold(hold), (e) => e.status === 410 && e.code === 'hold_released');
  } finally {
    hf.close();
  }
});

test('buy now sells at once', async () => {
  const hf = client();
  try {
    const sale = await hf.buyNow({ customer: 'buy-1', lines: [{ sku: 'buy-a', qty: 1 }],
      order_ref: 'order-buy-1' });
    assert.equal(sale.state, 'committed');
    assert.equal(sale.order_ref, 'order-buy-1');
    assert.match(sale.secret, /^hs_/);
    assert.equal((await getSku(server, 'buy-a')).sold, 1);
  } finally {
    hf.close();
  }
});

test('a waitlist entry: join, read with its secret, cancel', async () => {
  const hf = client();
  try {
    /* A waitlist is for a sku with nothing available. */
    const last = await hf.createHold({ customer: 'wait-0', lines: [{ sku: 'short-a', qty: 1 }] });
    const entry = await hf.joinWaitlist('short-a', { customer: 'wait-1', qty: 1 });
    assert.match(entry.secret, /^ws_/);
    assert.equal(entry.state, 'waiting');
    assert.equal((await hf.getWaitlistEntry(entry)).position, entry.position);
    await assert.rejects(hf.getWaitlistEntry({ id: entry.id, secret: 'ws_AAAAAAAAAAAAAAAAAAAAAA' }),
      (e) => e.status === 403 && e.code === 'waitlist_secret_wrong');
    /* The unit comes back: the entry is offered a hold, with its secret. */
    await hf.releaseHold(last);
    const offered = await hf.getWaitlistEntry(entry);
    assert.equal(offered.state, 'offered');
    assert.match(offered.hold.secret, /^hs_/);
    assert.equal((await hf.commitHold(offered.hold)).state, 'committed');

    const other = await hf.joinWaitlist('short-a', { customer: 'wait-2' });
    assert.equal((await hf.cancelWaitlistEntry(other)).state, 'cancelled');
  } finally {
    hf.close();
  }
});

test('a create whose reply is lost is sent again with its key and applied once', async () => {
  let dropped = 0;
  const proxy = await startLossyProxy(server.url,
    (req) => req.method === 'POST' && req.url === '/v1/holds' && dropped++ === 0);
  const events = [];
  const hf = client({ baseUrl: proxy.url, backoffMs: 1, onEvent: (e) => events.push(e) });
  try {
    /* Two units of a plentiful sku: no proof of work asked (docs/POLICIES.md). */
    const hold = await hf.createHold({ customer: 'idem-1', lines: [{ sku: 'idem-a', qty: 2 }] });
    const creates = proxy.requests.filter((r) => r.url === '/v1/holds');
    assert.equal(creates.length, 2);
    assert.equal(creates[0].dropped, true);
    assert.match(creates[0].idempotencyKey, /^hf_/);
    assert.equal(creates[1].idempotencyKey, creates[0].idempotencyKey);
    assert.deepEqual(events.filter((e) => e.type !== 'reply').map((e) => e.type), ['retry']);
    assert.equal(events.at(-1).replayed, true, 'the server replayed the first create');
    assert.equal(events.find((e) => e.type === 'reply').status, 201);
    assert.equal((await getSku(server, 'idem-a')).held, 2, 'held once, not twice');
    /* The replay is the same hold, with the same secret. */
    const again = await client().getHold(hold);
    assert.equal(again.id, hold.id);
  } finally {
    hf.close();
    await proxy.close();
  }
});

test('a join whose reply is lost is sent again with its key and made once', async () => {
  let dropped = 0;
  const proxy = await startLossyProxy(server.url,
    (req) => req.method === 'POST' && req.url.endsWith('/waitlist') && dropped++ === 0);
  const events = [];
  const hf = client({ baseUrl: proxy.url, backoffMs: 1, onEvent: (e) => events.push(e) });
  const holder = client();
  try {
    /* The last unit held: the sku has a waitlist to join. */
    const last = await holder.createHold({ customer: 'wait-lost-0', lines: [{ sku: 'short-b', qty: 1 }] });
    const entry = await hf.joinWaitlist('short-b', { customer: 'wait-lost-1' });
    const joins = proxy.requests.filter((r) => r.url.endsWith('/waitlist'));
    assert.equal(joins.length, 2);
    assert.equal(joins[0].dropped, true);
    assert.equal(joins[1].idempotencyKey, joins[0].idempotencyKey);
    assert.equal(events.at(-1).replayed, true, 'the server replayed the first join');
    assert.match(entry.secret, /^ws_/);
    assert.equal(entry.position, 1, 'one entry, not two');
    assert.equal((await holder.getWaitlistEntry(entry)).state, 'waiting', 'its secret opens it');
    await holder.releaseHold(last);
  } finally {
    hf.close();
    holder.close();
    await proxy.close();
  }
});

test('the same key sent twice gets the same hold and secret', async () => {
  const hf = client();
  try {
    const body = { customer: 'idem-2', lines: [{ sku: 'idem-a', qty: 1 }] };
    const first = await hf.createHold(body, { idempotencyKey: 'cart-idem-2-v1' });
    const second = await hf.createHold(body, { idempotencyKey: 'cart-idem-2-v1' });
    assert.equal(second.id, first.id);
    assert.equal(second.secret, first.secret);
    await assert.rejects(
      hf.createHold({ ...body, lines: [{ sku: 'idem-a', qty: 2 }] },
        { idempotencyKey: 'cart-idem-2-v1' }),
      (e) => e.status === 422 && e.code === 'idempotency_mismatch');
    await assert.rejects(hf.createHold(body, { idempotencyKey: 'has space' }), TypeError);
  } finally {
    hf.close();
  }
});

test('4xx replies are typed errors, sent once', async () => {
  const proxy = await startLossyProxy(server.url, () => false);
  const hf = client({ baseUrl: proxy.url });
  try {
    const short = hf.createHold({ customer: 'err-1', lines: [{ sku: 'err-b', qty: 3 }] });
    await assert.rejects(short, (e) => {
      assert.ok(e instanceof HoldfastError);
      assert.equal(e.status, 409);
      assert.equal(e.code, 'insufficient_stock');
      assert.equal(e.sku, 'err-b');
      assert.equal(e.details.available, 2);
      assert.equal(e.attempts, 1);
      assert.equal(e.outcomeUnknown, false);
      return true;
    });
    await assert.rejects(hf.createHold({ customer: 'err-1', lines: [{ sku: 'no-such', qty: 1 }] }),
      (e) => e.status === 404 && e.code === 'not_found' && e.sku === 'no-such');
    await assert.rejects(hf.getHold({ id: 'hold_AAAAAAAAAAA', secret: 'hs_AAAAAAAAAAAAAAAAAAAAAA' }),
      (e) => e.status === 403 && e.code === 'hold_secret_wrong');
    await assert.rejects(hf.getHold({ id: 'nothing' }), (e) => e.status === 404);
    await assert.rejects(hf.createHold({ customer: 'err-1', lines: [{ sku: 'err-a', qty: 0 }] }),
      (e) => e.status === 400 && e.code === 'invalid_field' && e.field === 'lines[0].qty');

    const hold = await hf.createHold({ customer: 'err-2', lines: [{ sku: 'err-a', qty: 1 }] });
    await assert.rejects(hf.getHold({ id: hold.id }),
      (e) => e.status === 403 && e.code === 'hold_secret_required');
    await hf.commitHold(hold);
    await assert.rejects(hf.extendHold(hold, { ttl_ms: 60000 }),
      (e) => e.status === 409 && e.code === 'hold_committed');
    /* Every one of them went out once: a 4xx is never retried. */
    const counts = new Map();
    for (const r of proxy.requests) counts.set(r.idempotencyKey, (counts.get(r.idempotencyKey) ?? 0) + 1);
    for (const [key, n] of counts) if (key !== undefined) assert.equal(n, 1, key);
  } finally {
    hf.close();
    await proxy.close();
  }
});

test('without a shop key the server says so', async () => {
  const hf = client({ apiKey: 'wrong-key' });
  try {
    await assert.rejects(hf.getSku('err-a'), (e) => e.status === 401 && e.code === 'unauthorized');
  } finally {
    hf.close();
  }
});

async function connectionsAccepted() {
  const r = await admin(server, 'GET', '/metrics');
  return Number(/^holdfast_connections_accepted_total (\d+)$/m.exec(r.text)[1]);
}

test('calls share kept-alive connections', async () => {
  const hf = client({ connectionsMax: 2 });
  try {
    const before = await connectionsAccepted();
    for (let i = 0; i < 20; i++) await hf.getSku('life-a');
    await Promise.all(Array.from({ length: 10 }, () => hf.getSku('life-a')));
    /* The client's two at most, and the metrics read's own. */
    assert.ok(await connectionsAccepted() - before <= 3);
  } finally {
    hf.close();
  }
});
