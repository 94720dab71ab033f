/*
 * shop.test.mjs - the demo storefront in a real browser (Chromium, headless)
 * against the real server: holding, the cart's one countdown, paying, live
 * counts in a second browser, expiry, the waitlist and its offer, a lost
 * reply sent again, a proof of work, a phone-sized screen (the keyboard;
 * the cart below a long catalog), and leaving the page.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { STEP_MS, call, open, shot, sku, startServer, until, useBrowser } from './harness.mjs';

const shared = useBrowser(before, after);


function counts(page, name) {
  return page.locator(`[id="p-${name}"] .counts`);
}

test('a buyer holds, sees the countdown, pays, and another browser sees it live', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 5 })).status, 201);
    const buyer = await open(shared.browser, server.url + '/');
    const other = await open(shared.browser, server.url + '/');
    await counts(other, 'cap-red').filter({ hasText: '5 available · 0 in carts · 0 sold of 5' }).waitFor({ timeout: STEP_MS });

    await buyer.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    const timer = buyer.getByRole('timer');
    await timer.waitFor({ timeout: STEP_MS });
    const first = await timer.textContent();
    assert.match(first, /^\d+:\d\d$/);
    await buyer.waitForFunction((t) => document.querySelector('.countdown')?.textContent !== t, first, { timeout: STEP_MS });
    await counts(other, 'cap-red').filter({ hasText: '4 available · 1 in carts' }).waitFor({ timeout: STEP_MS });
    assert.equal((await sku(server, 'cap-red')).held, 1);
    await shot(buyer, 'shop-held');

    await buyer.getByRole('button', { name: 'Checkout' }).click();
    await buyer.getByLabel('Card number').fill('4242 4242 4242 4242');
    await buyer.getByRole('button', { name: 'Pay' }).click();
    await buyer.getByText(/Thank you! Order order-/).waitFor({ timeout: STEP_MS });
    await counts(other, 'cap-red').filter({ hasText: '4 available · 0 in carts · 1 sold of 5' }).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'cap-red');
    assert.deepEqual([s.stock, s.held, s.sold, s.available], [5, 0, 1, 4]);
    await shot(buyer, 'shop-paid');
    await shot(other, 'shop-second-browser');
    assert.deepEqual(buyer.errors, []);
    assert.deepEqual(other.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

/* m:ss in seconds */
function seconds(text) {
  const m = text.match(/^(\d+):(\d\d)$/);
  assert.ok(m, `a countdown reads m:ss, not "${text}"`);
  return Number(m[1]) * 60 + Number(m[2]);
}

test('the cart counts down once for all its holds, and says plainly what ran out', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 5 })).status, 201);
    const put = await call(server, 'PUT', '/v1/skus/flash-tee', {
      stock: 3,
      policy: { ttl: { default_ms: 2000, scarce_ms: 2000 } }, /* a 2-second hold */
    });
    assert.equal(put.status, 201);
    const page = await open(shared.browser, server.url + '/');
    await page.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    const timer = page.getByRole('timer');
    await timer.waitFor({ timeout: STEP_MS });
    assert.ok(seconds(await timer.textContent()) > 60);
    await page.getByRole('button', { name: 'Add flash-tee to cart' }).click();
    await page.locator('#cart li.line.active').nth(1).waitFor({ timeout: STEP_MS });
    /* two holds, one countdown: the time until the first runs out */
    assert.equal(await page.getByRole('timer').count(), 1);
    assert.equal(await page.locator('.countdown').count(), 1);
    assert.ok(seconds(await timer.textContent()) <= 2);
    await shot(page, 'shop-one-countdown');

    /* flash-tee runs out: the cart says so and which, the rest is still held */
    await page.getByRole('alert').filter({ hasText: "Time's up for flash-tee: no longer held, and back on sale." }).waitFor({ timeout: STEP_MS });
    await counts(page, 'flash-tee').filter({ hasText: '3 available · 0 in carts' }).waitFor({ timeout: STEP_MS });
    assert.equal((await sku(server, 'flash-tee')).held, 0);
    assert.ok(seconds(await timer.textContent()) > 60);
    assert.equal(await page.getByRole('button', { name: 'Checkout' }).isDisabled(), false);

    /* once nothing is held, the countdown is gone and the cart says the whole hold ran out */
    await page.getByRole('button', { name: 'Remove Campaign cap, red from cart' }).click();
    await page.getByRole('alert').filter({ hasText: "Time's up: your cart's hold ran out" }).waitFor({ timeout: STEP_MS });
    assert.equal(await page.getByRole('timer').isVisible(), false);
    assert.equal(await page.getByRole('button', { name: 'Checkout' }).isDisabled(), true);
    await until(async () => (await sku(server, 'cap-red')).held === 0, 'the removed cap to be released');
    await shot(page, 'shop-expired');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('a sold-out item offers its waitlist, and the offer reaches the cart', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/last-one', { stock: 1 })).status, 201);
    const first = await open(shared.browser, server.url + '/');
    const second = await open(shared.browser, server.url + '/');
    await first.getByRole('button', { name: 'Add last-one to cart' }).click();
    await first.getByRole('timer').waitFor({ timeout: STEP_MS });

    const join = second.getByRole('button', { name: 'Join the waitlist for last-one' });
    await join.waitFor({ timeout: STEP_MS });
    assert.match(await counts(second, 'last-one').textContent(), /^0 available/);
    await join.click();
    await second.getByText('last-one: number 1 in line').waitFor({ timeout: STEP_MS });
    await shot(second, 'shop-waitlist');

    /* The first shopper lets go: the unit is offered to the one waiting. */
    await first.getByRole('button', { name: 'Remove last-one from cart' }).click();
    await second.getByText(/Good news: last-one is held for you now/).waitFor({ timeout: STEP_MS });
    await second.getByRole('timer').waitFor({ timeout: STEP_MS });
    await shot(second, 'shop-offer');
    await second.getByRole('button', { name: 'Checkout' }).click();
    await second.getByRole('button', { name: 'Pay' }).click();
    await second.getByText(/Thank you!/).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'last-one');
    assert.deepEqual([s.held, s.sold], [0, 1]);
    assert.deepEqual(first.errors, []);
    assert.deepEqual(second.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

/*
 * Lets the first POST to a path matching pattern reach the server, then
 * drops its reply, as a network that fails on the way back; later ones
 * pass. Returns what was seen: each request's Idempotency-Key, and each
 * reply that reached the page with its Idempotent-Replayed header.
 */
async function loseFirstReply(page, pattern) {
  const seen = { keys: [], replies: [] };
  await page.route(pattern, async (route) => {
    const req = route.request();
    if (req.method() !== 'POST') return route.continue();
    seen.keys.push(req.headers()['idempotency-key']);
    if (seen.keys.length > 1) {
      const res = await route.fetch();
      seen.replies.push({ status: res.status(), replayed: res.headers()['idempotent-replayed'] });
      return route.fulfill({ response: res });
    }
    const res = await route.fetch(); /* applied on the server... */
    seen.replies.push({ status: res.status(), lost: true });
    return route.abort('connectionreset'); /* ...and the page never hears of it */
  });
  return seen;
}

test('a hold or a join whose reply was lost is sent again with its key, and counts once', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 5 })).status, 201);
    assert.equal((await call(server, 'PUT', '/v1/skus/last-one', { stock: 1 })).status, 201);
    const page = await open(shared.browser, server.url + '/');

    const holds = await loseFirstReply(page, '**/v1/holds');
    await page.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    assert.equal(holds.keys.length, 2);
    assert.match(holds.keys[0], /^[0-9a-f]{32}$/);
    assert.equal(holds.keys[1], holds.keys[0]);
    assert.deepEqual(holds.replies, [{ status: 201, lost: true }, { status: 201, replayed: 'true' }]);
    assert.equal((await sku(server, 'cap-red')).held, 1); /* one hold, not two */

    /* Sold out to someone else: the page offers the waitlist. */
    const taken = await call(server, 'POST', '/v1/holds', { customer: 'c-other', lines: [{ sku: 'last-one', qty: 1 }] });
    assert.equal(taken.status, 201);
    const joins = await loseFirstReply(page, '**/v1/skus/last-one/waitlist');
    const join = page.getByRole('button', { name: 'Join the waitlist for last-one' });
    await join.waitFor({ timeout: STEP_MS });
    await join.click();
    await page.getByText('last-one: number 1 in line').waitFor({ timeout: STEP_MS });
    assert.equal(joins.keys.length, 2);
    assert.equal(joins.keys[1], joins.keys[0]);
    assert.deepEqual(joins.replies, [{ status: 201, lost: true }, { status: 201, replayed: 'true' }]);
    assert.equal((await sku(server, 'last-one')).waitlist, 1); /* one entry, not a 409 */
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('a challenged hold is paid with a proof of work solved off the page', async () => {
  /* Every unit costs a proof here (no free units), 14 bits. */
  const server = await startServer({ policy: { challenge: { free_units: 0, base_bits: 14 } } });
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-blue', { stock: 10 })).status, 201);
    const page = await open(shared.browser, server.url + '/');
    await page.locator('[id="p-cap-blue"] .counts').filter({ hasText: '10 available' }).waitFor({ timeout: STEP_MS });
    /* Whether the progress note showed, and whether the page kept running
     * its own timers meanwhile (a solver on the page would stall them). */
    await page.evaluate(() => {
      window.proofSeen = false;
      window.ticks = 0;
      setInterval(() => window.ticks++, 10);
      new MutationObserver(() => {
        if (!document.getElementById('proof').hidden) window.proofSeen = true;
      }).observe(document.getElementById('proof'), { attributes: true, childList: true, subtree: true });
    });
    await page.getByRole('button', { name: 'Add Campaign cap, blue to cart' }).click();
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    assert.equal(await page.evaluate(() => window.proofSeen), true);
    assert.ok((await page.evaluate(() => window.ticks)) > 0);
    /* Solved by the WebAssembly engine, not the slow WebCrypto fallback. */
    assert.equal(await page.evaluate(() => document.documentElement.dataset.powEngine), 'wasm');
    assert.equal((await sku(server, 'cap-blue')).held, 1);
    const metrics = await fetch(server.url + '/metrics').then((r) => r.text());
    assert.match(metrics, /holdfast_proofs_total\{outcome="accepted"\} 1\b/);
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('on a phone-sized screen, with the keyboard alone, a buyer holds an item', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/shirt-m', { stock: 4 })).status, 201);
    const page = await open(shared.browser, server.url + '/', { width: 390, height: 844 });
    const add = page.getByRole('button', { name: 'Add T-shirt, M to cart' });
    await add.waitFor({ timeout: STEP_MS });
    /* Nothing is wider than the screen. */
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth));
    /* Tab until the button has focus, then Enter. */
    for (let i = 0; i < 20 && !(await add.evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press('Tab');
    }
    assert.equal(await add.evaluate((el) => el === document.activeElement), true);
    await page.keyboard.press('Enter');
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    assert.equal((await sku(server, 'shirt-m')).held, 1);
    /* Every control has a name a screen reader can say. */
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll('button, select, input')].filter(
        (el) => !el.closest('[hidden]') && !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()),
      ).length,
    );
    assert.equal(unnamed, 0);
    await shot(page, 'shop-phone');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

/* Is the element's middle on screen, and the element itself there (not a
 * bar drawn over it)? */
function onScreen(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2;
    const y = r.top + r.height / 2;
    if (y < 0 || y > innerHeight || x < 0 || x > innerWidth) return false;
    const hit = document.elementFromPoint(x, y);
    return hit === el || el.contains(hit);
  });
}

test('on a phone, the cart below a long catalog is a tap away, counts down once, and works', async () => {
  const server = await startServer();
  try {
    const catalog = ['cap-red', 'cap-white', 'cap-blue', 'cufflinks-gold', 'cufflinks-silver',
      'shirt-s', 'shirt-m', 'shirt-l', 'shirt-xl'];
    for (const name of catalog) assert.equal((await call(server, 'PUT', `/v1/skus/${name}`, { stock: 10 })).status, 201);
    const page = await open(shared.browser, server.url + '/', { width: 390, height: 844 });
    await page.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    await page.getByRole('button', { name: 'Add T-shirt, M to cart' }).click();
    await until(async () => (await sku(server, 'shirt-m')).held === 1, 'the shirt to be held');

    /* The cart is far below; the bar at the foot of the screen says what it holds. */
    await page.evaluate(() => scrollTo(0, 0));
    const bar = page.locator('#cart-bar');
    await bar.filter({ hasText: /Your cart: 2 items · \d+:\d\d left/ }).waitFor({ timeout: STEP_MS });
    assert.equal(await onScreen(page.getByRole('button', { name: 'View cart' })), true);
    assert.equal(await onScreen(page.getByRole('heading', { name: 'Your cart' })), false);
    await shot(page, 'shop-phone-bar');
    await page.getByRole('button', { name: 'View cart' }).click();
    await until(async () => onScreen(page.getByRole('heading', { name: 'Your cart' })), 'the cart to come into view');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'cart-title');
    await until(async () => bar.isHidden(), 'the bar to step aside while the cart is in view');
    assert.equal(await page.getByRole('timer').count(), 1);
    assert.match(await page.getByRole('timer').textContent(), /^\d+:\d\d$/);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth));

    /* Every button of the cart can be brought on screen, uncovered, and works. */
    for (const name of ['Remove Campaign cap, red from cart', 'Remove T-shirt, M from cart', 'Checkout', 'Empty cart']) {
      const button = page.getByRole('button', { name });
      await button.scrollIntoViewIfNeeded();
      assert.equal(await onScreen(button), true, name);
    }
    await page.getByRole('button', { name: 'Remove T-shirt, M from cart' }).click();
    await until(async () => (await sku(server, 'shirt-m')).held === 0, 'the removed shirt to be released');
    await page.getByRole('button', { name: 'Checkout' }).click();
    const pay = page.getByRole('button', { name: 'Pay' });
    await pay.scrollIntoViewIfNeeded();
    assert.equal(await onScreen(pay), true);
    await pay.click();
    await page.getByText(/Thank you! Order order-.*: 1 × Campaign cap, red/).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'cap-red');
    assert.deepEqual([s.held, s.sold], [0, 1]);
    await shot(page, 'shop-phone-cart');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('emptying the cart, or leaving the page, lets go of the units', async () => {
  const server = await startServer();
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-white', { stock: 6 })).status, 201);
    const page = await open(shared.browser, server.url + '/');
    await page.getByRole('button', { name: 'Add Campaign cap, white to cart' }).click();
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    await page.getByRole('button', { name: 'Empty cart' }).click();
    await until(async () => (await sku(server, 'cap-white')).held === 0, 'the emptied cart to be released');

    await page.getByRole('button', { name: 'Add Campaign cap, white to cart' }).click();
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    assert.equal((await sku(server, 'cap-white')).held, 1);
    await page.close({ runBeforeUnload: true });
    await until(async () => (await sku(server, 'cap-white')).held === 0, 'the left page to release its hold');
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('with keys, the shop asks for one, and works with the shop key', async () => {
  const server = await startServer({ api_keys: ['shop-k'], admin_key: 'admin-k' });
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 3 }, 'admin-k')).status, 201);
    const page = await open(shared.browser, server.url + '/');
    const field = page.getByLabel("This shop's server asks for an API key");
    await field.waitFor({ timeout: STEP_MS });
    await field.fill('shop-k');
    await page.getByRole('button', { name: 'Use key' }).click();
    await page.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    assert.equal((await sku(server, 'cap-red', 'admin-k')).held, 1);
    /* a link may carry the key instead (#key=...), and the page drops it from the address */
    const linked = await open(shared.browser, server.url + '/#key=shop-k');
    await counts(linked, 'cap-red').filter({ hasText: '2 available · 1 in carts' }).waitFor({ timeout: STEP_MS });
    assert.equal(new URL(linked.url()).hash, '');
    assert.deepEqual(page.errors, []);
    assert.deepEqual(linked.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('with keys, only the shopper who holds an item can touch it: the page keeps its secret', async () => {
  const server = await startServer({ api_keys: ['shop-k'], admin_key: 'admin-k' });
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 3 }, 'admin-k')).status, 201);
    const page = await open(shared.browser, server.url + '/#key=shop-k');
    /* What the page sends about its hold, once it has one. */
    const sent = [];
    page.on('request', (req) => {
      if (/^\/v1\/holds\/./.test(new URL(req.url()).pathname)) {
        sent.push({ method: req.method(), secret: req.headers()['hold-secret'] });
      }
    });
    const created = page.waitForResponse((res) => new URL(res.url()).pathname === '/v1/holds' && res.status() === 201);
    await page.getByRole('button', { name: 'Add Campaign cap, red to cart' }).click();
    const hold = await (await created).json();
    assert.match(hold.id, /^hold_[0-9A-Za-z]{11}$/);
    assert.match(hold.secret, /^hs_[0-9A-Za-z_-]{22}$/);
    await page.getByRole('timer').waitFor({ timeout: STEP_MS });
    /* Anyone else with the shop key, who has the id but not the secret: refused, and the hold stays. */
    const other = await call(server, 'DELETE', `/v1/holds/${hold.id}`, undefined, 'shop-k');
    assert.equal(other.status, 403);
    assert.equal(other.body.error.code, 'hold_secret_required');
    assert.equal((await sku(server, 'cap-red', 'admin-k')).held, 1);
    /* The shopper pays: the page sends the hold's secret. */
    await page.getByRole('button', { name: 'Checkout' }).click();
    await page.getByLabel('Card number').fill('4242 4242 4242 4242');
    await page.getByRole('button', { name: 'Pay' }).click();
    await page.getByText(/Thank you! Order order-/).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'cap-red', 'admin-k');
    assert.deepEqual([s.held, s.sold], [0, 1]);
    const commits = sent.filter((r) => r.method === 'POST');
    assert.equal(commits.length, 1);
    assert.ok(sent.every((r) => r.secret === hold.secret));
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('when carts are full (hold share), the shop offers to buy outright', async () => {
  /* Half the stock may sit in carts: the second shopper's hold is refused. */
  const server = await startServer({ policy: { hold_share: { held_pct_max: 50 } } });
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/drop', { stock: 2 }, undefined)).status, 201);
    const first = await open(shared.browser, server.url + '/');
    await first.getByRole('button', { name: 'Add drop to cart' }).click();
    await first.getByRole('timer').waitFor({ timeout: STEP_MS });
    const second = await open(shared.browser, server.url + '/');
    await second.getByRole('button', { name: 'Add drop to cart' }).click();
    await second.getByText(/hold share/).waitFor({ timeout: STEP_MS });
    await second.getByRole('button', { name: 'Buy drop now' }).click();
    await second.getByText('Buy now: payment (a demo: no money moves)').waitFor({ timeout: STEP_MS });
    await second.getByRole('button', { name: 'Pay' }).click();
    await second.getByText(/Thank you! Order order-.*: 1 × drop/).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'drop');
    assert.deepEqual([s.held, s.sold, s.available], [1, 1, 0]);
    await shot(second, 'shop-buy-now');
    assert.deepEqual(first.errors, []);
    assert.deepEqual(second.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
