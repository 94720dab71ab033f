/*
 * example.test.mjs - examples/shop-backend.mjs, the shop backend that
 * docs/INTEGRATION.md shows, run as shoppers would use it against a real
 * holdfast; and the doc's copy of it checked to be the file, byte for byte.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { createShop } from '../examples/shop-backend.mjs';
import { SHOP_KEY, admin, getSku, putSku, rawCall, startHoldfast } from './harness.mjs';

const EXAMPLE = new URL('../examples/shop-backend.mjs', import.meta.url);
const DOC = new URL('../../../docs/INTEGRATION.md', import.meta.url);

let server;
let shop;
let shopUrl;

before(async () => {
  server = await startHoldfast();
  await putSku(server, 'cap-red', { stock: 5 });
  await putSku(server, 'shirt-m', { stock: 5 });
  shop = createShop({ holdfastUrl: server.url, apiKey: SHOP_KEY });
  await new Promise((resolve) => shop.listen(0, '127.0.0.1', resolve));
  shopUrl = `http://127.0.0.1:${shop.address().port}`;
});

after(async () => {
  await new Promise((resolve) => shop.close(resolve));
  assert.equal(await server.stop(), 0);
});

/* A shopper: a browser's cookie jar of one cookie, and every reply kept. */
function shopper(fingerprint) {
  let cookie;
  const replies = [];
  return {
    replies,
    async call(method, path, body, headers = {}) {
      const r = await rawCall(shopUrl, method, path, body, {
        ...(cookie ? { Cookie: cookie } : {}), 'X-Fingerprint': fingerprint, ...headers,
      });
      const set = r.headers['set-cookie']?.[0];
      if (set) {
        assert.match(set, /; HttpOnly; SameSite=Lax; Path=\//);
        cookie = set.split(';')[0];
      }
      replies.push(r.text);
      return r;
    },
  };
}

test('add to cart, checkout, abandon: holds made, sold and released for each shopper', async () => {
  const alice = shopper('device-alice');
  const bob = shopper('device-bob');

  const added = await alice.call('POST', '/cart', { sku: 'cap-red', qty: 2 }, { 'X-Request-Id': 'click-1' });
  assert.equal(added.status, 201);
  assert.equal(added.body.sku, 'cap-red');
  /* The same click again (a double click, a retried request) holds once. */
  assert.equal((await alice.call('POST', '/cart', { sku: 'cap-red', qty: 2 },
    { 'X-Request-Id': 'click-1' })).status, 201);
  assert.equal((await getSku(server, 'cap-red')).held, 2);
  assert.equal((await alice.call('POST', '/cart', { sku: 'shirt-m', qty: 1 })).status, 201);
  assert.equal((await bob.call('POST', '/cart', { sku: 'cap-red', qty: 2 })).status, 201);

  /* The shopper's address and device reached holdfast with the holds. */
  const top = await admin(server, 'GET', '/v1/identities/top?by=held_units&limit=50');
  const seen = top.body.identities.map((i) => `${i.kind}=${i.value}:${i.held_units}`);
  assert.ok(seen.includes('fingerprint=device-alice:3'), seen.join(' '));
  assert.ok(seen.includes('fingerprint=device-bob:2'), seen.join(' '));
  assert.ok(seen.includes('ip_prefix=127.0.0.0/24:5'), seen.join(' '));

  /* What no one has: the shopper is told, with holdfast's words. */
  const short = await bob.call('POST', '/cart', { sku: 'cap-red', qty: 2 });
  assert.equal(short.status, 409);
  assert.equal(short.body.error, 'insufficient_stock');

  const paid = await alice.call('POST', '/checkout');
  assert.equal(paid.status, 200);
  assert.match(paid.body.order, /^order-[0-9a-f]{16}$/);
  assert.deepEqual([(await getSku(server, 'cap-red')).sold, (await getSku(server, 'shirt-m')).sold],
    [2, 1]);
  assert.equal((await alice.call('POST', '/checkout')).status, 409, 'the cart is empty now');

  assert.equal((await bob.call('DELETE', '/cart')).status, 200);
  const cap = await getSku(server, 'cap-red');
  assert.deepEqual([cap.held, cap.sold, cap.available], [0, 2, 3]);

  /* No reply to a browser carried a hold's secret. */
  for (const text of [...alice.replies, ...bob.replies]) assert.ok(!text.includes('hs_'), text);
});

test('docs/INTEGRATION.md shows examples/shop-backend.mjs as it is', () => {
  const doc = readFileSync(DOC, 'utf8');
  const example = readFileSync(EXAMPLE, 'utf8');
  const blocks = [...doc.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.ok(blocks.includes(example),
    'the doc\'s block of the example differs from the file: copy the file into the doc again');
});
