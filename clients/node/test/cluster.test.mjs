/*
 * cluster.test.mjs - a shop served by a cluster of nodes, one the owner and
 * the others standbys, played by stand-ins on loopback (harness.mjs): a
 * standby's 307 is followed to the owner with the request intact, a node
 * that refuses or drops a connection or answers 503 not_owner sends the
 * retry to the next node, redirects are bounded, and a single baseUrl
 * behaves as it always did.
 *
 * Every test here is bounded by its `timeout`; none asserts a speed.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { HoldfastClient, HoldfastError } from '@holdfast/client';
import { startScriptedServer, startSilentServer } from './harness.mjs';

const HOLD = {
  id: 'hold_AAAAAAAAAAA', secret: 'hs_AAAAAAAAAAAAAAAAAAAAAA', customer: 'c', state: 'active',
  lines: [{ sku: 's', qty: 1 }], created_at: '2026-01-01T00:00:00.000Z',
  expires_at: '2026-01-01T00:10:00.000Z', expires_in_ms: 600000,
};
const ENTRY = { id: 'wait_AAAAAAAAAAA', secret: 'ws_AAAAAAAAAAAAAAAAAAAAAA', sku: 's', qty: 1,
  customer: 'c', state: 'waiting', created_at: '2026-01-01T00:00:00.000Z' };
const BODY = { customer: 'c', lines: [{ sku: 's', qty: 1 }] };
const BOUND = { timeout: 20000 };

const NOT_OWNER = { error: { code: 'not_owner', message: 'this node does not own the shop' } };

/* A standby: every request redirected to where `owner()` says. */
function standby(owner) {
  return startScriptedServer((req) => ({ status: 307, body: NOT_OWNER,
    headers: { Location: owner() + req.url } }));
}

function created(req) {
  return { status: 201, body: req.url.endsWith('/waitlist') ? ENTRY : HOLD };
}

/* A node that reads each request whole and then cuts the connection: it
 * may have applied it, the client cannot know. */
async function startDroppingServer() {
  const requests = [];
  const server = http.createServer((req) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      req.socket.destroy();
    });
  });
  const url = await new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
  return { url, requests, close: () => new Promise((resolve) => server.close(resolve)) };
}

/* A loopback port that was just free: nothing listens there. */
async function refusingUrl() {
  const gone = await startSilentServer();
  await gone.close();
  return gone.url;
}

async function closeAll(...servers) {
  await Promise.all(servers.map((s) => s.close()));
}

test('a standby\'s 307 is followed to the owner, body and keys intact, and the owner is kept',
  BOUND, async () => {
    const owner = await startScriptedServer(created);
    const stand = await standby(() => owner.url);
    try {
      const events = [];
      const hf = new HoldfastClient({ baseUrl: [stand.url, 'http://127.0.0.1:9'],
        apiKey: 'shop-key', onEvent: (e) => events.push(e) });
      const hold = await hf.createHold(BODY, { idempotencyKey: 'cart-1-v1' });
      assert.equal(hold.id, HOLD.id);
      assert.equal(stand.requests.length, 1);
      assert.equal(owner.requests.length, 1);
      const [first] = stand.requests;
      const [second] = owner.requests;
      assert.equal(second.method, 'POST');
      assert.equal(second.url, '/v1/holds');
      assert.equal(second.body, JSON.stringify(BODY));
      assert.equal(second.body, first.body);
      assert.equal(second.headers['idempotency-key'], 'cart-1-v1');
      assert.equal(second.headers.authorization, 'Bearer shop-key');
      assert.equal(second.headers['content-type'], 'application/json');
      assert.equal(second.headers.host, new URL(owner.url).host, 'Host names the owner');
      assert.deepEqual(events.filter((e) => e.type === 'redirect'),
        [{ type: 'redirect', method: 'POST', route: '/v1/holds', from: stand.url, to: owner.url,
          hop: 1 }]);

      /* The next calls go to the owner at once. */
      assert.equal(hf.nodeUrl.href, `${owner.url}/`);
      await hf.commitHold(hold, { order_ref: 'o-1' });
      hf.close();
      assert.equal(stand.requests.length, 1);
      assert.equal(owner.requests.length, 2);
      assert.equal(owner.requests[1].url, `/v1/holds/${HOLD.id}/commit`);
      assert.equal(owner.requests[1].headers['hold-secret'], HOLD.secret);
    } finally {
      await closeAll(owner, stand);
    }
  });

test('a redirect keeps the path prefix the nodes are reached under', BOUND, async () => {
  const owner = await startScriptedServer(() => ({ status: 200, body: { sku: 's' } }));
  const stand = await standby(() => owner.url);
  try {
    const hf = new HoldfastClient({ baseUrl: `${stand.url}/shop-a/` });
    await hf.getSku('s');
    await hf.getSku('t');
    hf.close();
    assert.deepEqual(stand.requests.map((r) => r.url), ['/shop-a/v1/skus/s']);
    assert.deepEqual(owner.requests.map((r) => r.url), ['/shop-a/v1/skus/s', '/shop-a/v1/skus/t']);
    assert.equal(hf.nodeUrl.href, `${owner.url}/shop-a/`);
  } finally {
    await closeAll(owner, stand);
  }
});

test('a refused first node: the call, even a join, goes to the next one', BOUND, async () => {
  const refusing = await refusingUrl();
  const owner = await startScriptedServer(created);
  try {
    const events = [];
    const hf = new HoldfastClient({ baseUrl: [refusing, owner.url], backoffMs: 1,
      onEvent: (e) => events.push(e) });
    const entry = await hf.joinWaitlist('s', { customer: 'c' });
    assert.equal(entry.id, ENTRY.id);
    assert.equal(owner.requests.length, 1);
    const retries = events.filter((e) => e.type === 'retry');
    assert.equal(retries.length, 1);
    assert.match(retries[0].reason, /^network ECONNREFUSED/);
    assert.equal(retries[0].node, owner.url);
    /* The node that answered is kept: no second refusal. */
    await hf.getSku('s').catch(() => {});
    hf.close();
    assert.equal(owner.requests.length, 2);
    assert.equal(events.filter((e) => e.type === 'retry').length, 1);
  } finally {
    await owner.close();
  }
});

test('calls that fail on one node together move on by one node, not by one each',
  BOUND, async () => {
    const refusing = await refusingUrl();
    const owner = await startScriptedServer(created);
    const stand = await standby(() => owner.url);
    try {
      const events = [];
      const hf = new HoldfastClient({ baseUrl: [refusing, owner.url, stand.url], backoffMs: 1,
        onEvent: (e) => events.push(e) });
      const holds = await Promise.all([1, 2, 3].map(() => hf.createHold(BODY)));
      hf.close();
      assert.equal(holds.length, 3);
      assert.equal(owner.requests.length, 3);
      assert.equal(stand.requests.length, 0, 'the third node was skipped to');
      assert.equal(events.filter((e) => e.type === 'retry').length, 3, 'one refusal per call');
    } finally {
      await closeAll(owner, stand);
    }
  });

test('a dropped connection: a create and a join go to the next node with their keys',
  BOUND, async () => {
    const dropping = await startDroppingServer();
    const owner = await startScriptedServer(created);
    try {
      const hf = new HoldfastClient({ baseUrl: [dropping.url, owner.url], backoffMs: 1 });
      await hf.createHold(BODY, { idempotencyKey: 'cart-2-v1' });
      assert.equal(dropping.requests.length, 1);
      assert.equal(owner.requests.length, 1);
      assert.equal(owner.requests[0].headers['idempotency-key'], 'cart-2-v1');
      assert.equal(owner.requests[0].body, dropping.requests[0].body);
      hf.close();

      const join = new HoldfastClient({ baseUrl: [dropping.url, owner.url], backoffMs: 1 });
      const entry = await join.joinWaitlist('s', { customer: 'c' }, { idempotencyKey: 'w-2-v1' });
      join.close();
      assert.equal(entry.id, ENTRY.id);
      assert.equal(dropping.requests.length, 2);
      assert.equal(owner.requests.length, 2, 'the join was sent again, to the next node');
      assert.equal(owner.requests[1].headers['idempotency-key'], 'w-2-v1');
      assert.equal(owner.requests[1].body, dropping.requests[1].body);
    } finally {
      await closeAll(dropping, owner);
    }
  });

test('503 not_owner changed nothing: even a join is retried on the next node', BOUND, async () => {
  const lapsed = await startScriptedServer(() => ({ status: 503, body: NOT_OWNER }));
  const owner = await startScriptedServer(created);
  try {
    const events = [];
    const hf = new HoldfastClient({ baseUrl: [lapsed.url, owner.url], backoffMs: 1,
      onEvent: (e) => events.push(e) });
    const entry = await hf.joinWaitlist('s', { customer: 'c', qty: 1 });
    hf.close();
    assert.equal(entry.id, ENTRY.id);
    assert.equal(lapsed.requests.length, 1);
    assert.equal(owner.requests.length, 1);
    assert.equal(owner.requests[0].body, lapsed.requests[0].body);
    const retry = events.find((e) => e.type === 'retry');
    assert.equal(retry.reason, '503 not_owner');
    assert.equal(retry.node, owner.url);
  } finally {
    await closeAll(lapsed, owner);
  }
});

test('no node owns the shop: the nodes are tried in turn, and the error says nothing changed',
  BOUND, async () => {
    const a = await startScriptedServer(() => ({ status: 503, body: NOT_OWNER }));
    const b = await startScriptedServer(() => ({ status: 503, body: NOT_OWNER }));
    try {
      const hf = new HoldfastClient({ baseUrl: [a.url, b.url], backoffMs: 1, attemptsMax: 3 });
      const err = await hf.createHold(BODY, { idempotencyKey: 'cart-3-v1' }).catch((e) => e);
      hf.close();
      assert.ok(err instanceof HoldfastError);
      assert.equal(err.status, 503);
      assert.equal(err.code, 'not_owner');
      assert.equal(err.outcomeUnknown, false);
      assert.equal(err.attempts, 3);
      assert.equal(a.requests.length, 2);
      assert.equal(b.requests.length, 1);
      for (const r of [...a.requests, ...b.requests]) {
        assert.equal(r.headers['idempotency-key'], 'cart-3-v1');
      }
    } finally {
      await closeAll(a, b);
    }
  });

test('a redirect loop is refused after 3 hops, with a clear error', BOUND, async () => {
  let bUrl;
  const a = await standby(() => bUrl);
  const b = await standby(() => a.url);
  bUrl = b.url;
  try {
    const hf = new HoldfastClient({ baseUrl: a.url, backoffMs: 1 });
    const err = await hf.createHold(BODY).catch((e) => e);
    hf.close();
    assert.ok(err instanceof HoldfastError);
    assert.equal(err.status, 307);
    assert.equal(err.code, 'bad_redirect');
    assert.equal(err.outcomeUnknown, false);
    assert.match(err.message, /more than 3 redirects in a row/);
    assert.equal(a.requests.length + b.requests.length, 4, 'the first request and 3 hops');
  } finally {
    await closeAll(a, b);
  }
});

test('a Location that is not an http(s) URL is not followed', BOUND, async () => {
  const cases = [
    [undefined, /without a Location/],
    ['/v1/holds', /Location is not a URL/],
    ['not a url', /Location is not a URL/],
    ['ftp://127.0.0.1:21/v1/holds', /to a ftp: URL: only http: and https: are followed/],
  ];
  for (const [location, message] of cases) {
    const node = await startScriptedServer(() => ({ status: 307, body: NOT_OWNER,
      headers: location === undefined ? {} : { Location: location } }));
    try {
      const hf = new HoldfastClient({ baseUrl: node.url });
      const err = await hf.getSku('s').catch((e) => e);
      hf.close();
      assert.equal(err.code, 'bad_redirect', String(location));
      assert.match(err.message, message);
      assert.equal(node.requests.length, 1);
    } finally {
      await node.close();
    }
  }
});

test('a single baseUrl works as before: one node, retried in place', BOUND, async () => {
  const node = await startScriptedServer((req, body, i) => (i === 0
    ? { status: 503, body: { error: { code: 'overloaded', message: 'm' } } }
    : created(req)));
  try {
    const hf = new HoldfastClient({ baseUrl: node.url, backoffMs: 1 });
    assert.equal(hf.baseUrl.href, `${node.url}/`);
    assert.equal(hf.nodeUrl.href, hf.baseUrl.href);
    const hold = await hf.createHold(BODY);
    hf.close();
    assert.equal(hold.id, HOLD.id);
    assert.equal(node.requests.length, 2);
    assert.equal(hf.nodeUrl.href, hf.baseUrl.href);
  } finally {
    await node.close();
  }
  assert.throws(() => new HoldfastClient({ baseUrl: [] }), RangeError);
  assert.throws(() => new HoldfastClient({ baseUrl: ['http://127.0.0.1:1', 'ftp://h'] }),
    TypeError);
  assert.throws(() => new HoldfastClient({ baseUrl: 'not a url' }), TypeError);
});
