/*
 * admin.test.mjs - the operator's dashboard in a real browser against a
 * server with keys: signing in, the live table and chart, the chart's past
 * from the server's history, revoking a hoarder, editing the policy, and
 * the attack panel's bounded live run (on a demo server only).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { STEP_MS, call, open, shot, sku, startServer, until, useBrowser } from './harness.mjs';

const ADMIN = 'admin-test-key';
const SHOP = 'shop-test-key';
const KEYS = { api_keys: [SHOP], admin_key: ADMIN };

const shared = useBrowser(before, after);


async function signIn(page, key = ADMIN) {
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

function row(page, name) {
  return page.locator(`#skus tr[data-sku="${name}"]`);
}

/* Pixels the chart's canvas has drawn (a blank canvas has none). */
function drawnPixels(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#chart canvas');
    if (!c || c.width === 0) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
    return n;
  });
}

test('the admin signs in, sees the SKUs live and the chart draw', async () => {
  const server = await startServer(KEYS);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 20 }, ADMIN)).status, 201);
    const page = await open(shared.browser, server.url + '/admin');
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: STEP_MS });
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    await shot(page, 'admin-sign-in');

    await signIn(page, SHOP); /* a shop key is not the admin key */
    await page.getByText('That is not the admin key.').waitFor({ timeout: STEP_MS });
    await signIn(page);
    await row(page, 'cap-red').locator('td.held').filter({ hasText: /^0$/ }).waitFor({ timeout: STEP_MS });
    assert.equal(await row(page, 'cap-red').locator('td.stock').textContent(), '20');

    const hold = await call(server, 'POST', '/v1/holds', { customer: 'u-1', lines: [{ sku: 'cap-red', qty: 2 }] }, SHOP);
    assert.equal(hold.status, 201);
    await row(page, 'cap-red').locator('td.held').filter({ hasText: /^2$/ }).waitFor({ timeout: STEP_MS });
    await row(page, 'cap-red').locator('td.available').filter({ hasText: /^18$/ }).waitFor({ timeout: STEP_MS });
    await until(async () => (await drawnPixels(page)) > 500, 'the chart to draw');
    await shot(page, 'admin-dashboard');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('the chart opens with the past the server kept, and goes on live with no gap', async () => {
  const server = await startServer(KEYS);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 20 }, ADMIN)).status, 201);
    const history = async () => (await call(server, 'GET', '/v1/history?sku=cap-red', undefined, ADMIN)).body;
    const last = (h, k) => h[k][h.count - 1];
    /* a point from before the hold, then points with it */
    await until(async () => (await history()).count >= 1, 'a point before the hold');
    const hold = await call(server, 'POST', '/v1/holds', { customer: 'u-1', lines: [{ sku: 'cap-red', qty: 2 }] }, SHOP);
    assert.equal(hold.status, 201);
    await until(async () => {
      const h = await history();
      return h.count >= 3 && last(h, 'held') === 2;
    }, 'points with the hold');
    const kept = await history();
    const firstKept = kept.first_ms / 1000;
    assert.equal(kept.held[0], 0);

    const page = await open(shared.browser, server.url + '/admin');
    const openedAt = Date.now() / 1000;
    await signIn(page);
    const series = () => page.evaluate(() => globalThis.dashboard?.series('cap-red') ?? null);
    /* The chart starts where the server's history does: before the page was opened. */
    await until(async () => (await series())?.t[0] <= firstKept, 'the chart to have the past');
    let s = await series();
    assert.equal(s.t[0], firstKept);
    assert.ok(s.t[0] < openedAt - 1);
    assert.equal(s.held[0], 0);
    /* It goes on live: more seconds than the history had, each once, none missing. */
    const pastEnd = firstKept + kept.count - 1;
    await until(async () => (await series()).t.at(-1) >= pastEnd + 2, 'live points after the past');
    s = await series();
    for (let i = 1; i < s.t.length; i++) assert.equal(s.t[i] - s.t[i - 1], 1, `seconds ${s.t[i - 1]}, ${s.t[i]}`);
    assert.equal(s.held.at(-1), 2);
    for (let i = 0; i < s.t.length; i++) assert.equal(s.available[i], s.stock[i] - s.held[i] - s.sold[i]);
    await until(async () => (await drawnPixels(page)) > 500, 'the chart to draw');
    await shot(page, 'admin-history');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

/* A TCP relay to the server that the test can cut: every connection
 * through it closed, and new ones closed at once, until it is mended. */
async function relay(target) {
  const port = Number(new URL(target).port);
  const sockets = new Set();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      sockets.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => { sockets.delete(a); b.destroy(); });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cutAll = () => {
    cut = true;
    for (const sock of sockets) sock.destroy();
  };
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut: cutAll,
    mend: () => { cut = false; },
    close: () => { cutAll(); return new Promise((resolve) => server.close(resolve)); },
  };
}

test('after its stream was cut, the chart shows what the server saw meanwhile', async () => {
  const server = await startServer(KEYS);
  const through = await relay(server.url);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 20 }, ADMIN)).status, 201);
    const page = await open(shared.browser, through.url + '/admin');
    await signIn(page);
    const series = () => page.evaluate(() => globalThis.dashboard?.series('cap-red') ?? null);
    const state = () => page.$eval('#live', (e) => e.dataset.state);
    await until(async () => (await state()) === 'open' && (await series())?.t.length >= 2, 'the chart live');

    through.cut();
    await until(async () => (await state()) === 'retrying', 'the page to see the break');
    /* Units held while the page cannot hear (two: an ordinary cart, never
     * challenged); the server's history sees them. */
    const hold = await call(server, 'POST', '/v1/holds', { customer: 'u-1', lines: [{ sku: 'cap-red', qty: 2 }] }, SHOP);
    assert.equal(hold.status, 201);
    const history = async () => (await call(server, 'GET', '/v1/history?sku=cap-red', undefined, ADMIN)).body;
    const heldSeconds = (h) => h.held.filter((n) => n === 2).length;
    await until(async () => heldSeconds(await history()) >= 2, 'two seconds of the hold in the history');
    /* The page went on drawing its last news for those seconds. */
    const stale = await series();
    assert.equal(stale.held.at(-1), 0);

    through.mend();
    await until(async () => (await state()) === 'open', 'the stream back');
    /* Every second the server kept is now the server's, none twice, none missing. */
    const kept = await history();
    const first = kept.first_ms / 1000;
    const agrees = (s) => kept.held.every((n, i) => {
      const at = s.t.indexOf(first + i);
      return at < 0 || s.held[at] === n;
    });
    await until(async () => agrees(await series()), 'the seconds of the break as the server saw them');
    const s = await series();
    for (let i = 1; i < s.t.length; i++) assert.equal(s.t[i] - s.t[i - 1], 1, `seconds ${s.t[i - 1]}, ${s.t[i]}`);
    assert.ok(s.held.filter((n) => n === 2).length >= 2);
    assert.deepEqual(page.errors, []);
  } finally {
    await through.close();
    assert.equal(await server.stop(), 0);
  }
});

test('a revoke from the top holders frees the units', async () => {
  const server = await startServer(KEYS);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/shirt-m', { stock: 12 }, ADMIN)).status, 201);
    const body = { customer: 'troll-1', lines: [{ sku: 'shirt-m', qty: 2 }] };
    assert.equal((await call(server, 'POST', '/v1/holds', body, SHOP)).status, 201);
    assert.equal((await call(server, 'POST', '/v1/holds', body, SHOP)).status, 201);
    assert.equal((await sku(server, 'shirt-m', ADMIN)).held, 4);

    const page = await open(shared.browser, server.url + '/admin');
    await signIn(page);
    const revoke = page.getByRole('button', { name: 'Revoke customer troll-1' });
    await revoke.waitFor({ timeout: STEP_MS });
    await revoke.click();
    await page.getByText('Revoked customer troll-1: 2 holds released.').waitFor({ timeout: STEP_MS });
    await row(page, 'shirt-m').locator('td.held').filter({ hasText: /^0$/ }).waitFor({ timeout: STEP_MS });
    const s = await sku(server, 'shirt-m', ADMIN);
    assert.deepEqual([s.held, s.available], [0, 12]);
    await shot(page, 'admin-revoked');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('the policy editor saves a change and refuses a bad document', async () => {
  const server = await startServer(KEYS);
  try {
    const page = await open(shared.browser, server.url + '/admin');
    await signIn(page);
    const editor = page.getByLabel(/The shop's policy/);
    await page.getByText('The policy in force.').waitFor({ timeout: STEP_MS });
    const text = await editor.inputValue();
    assert.match(text, /"line_qty_max": 10/);

    await editor.fill(text.replace('"line_qty_max": 10', '"line_qty_max": 3'));
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Saved: the new policy applies from now on.').waitFor({ timeout: STEP_MS });
    assert.equal((await call(server, 'GET', '/v1/policy', undefined, ADMIN)).body.quantity.line_qty_max, 3);

    await editor.fill('{"quantity": {"line_qty_max": 0}}');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText(/^Refused \(quantity\.line_qty_max\)/).waitFor({ timeout: STEP_MS });
    await editor.fill('{not json');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText(/^Not JSON/).waitFor({ timeout: STEP_MS });
    assert.equal((await call(server, 'GET', '/v1/policy', undefined, ADMIN)).body.quantity.line_qty_max, 3);
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('the attack panel is off unless the server is started for a demo', async () => {
  const server = await startServer(KEYS);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 40 }, ADMIN)).status, 201);
    const page = await open(shared.browser, server.url + '/admin');
    const refused = page.waitForResponse((res) => new URL(res.url()).pathname === '/v1/sim');
    await signIn(page);
    assert.equal((await refused).status(), 403);
    await row(page, 'cap-red').waitFor({ timeout: STEP_MS });
    assert.equal(await page.getByRole('heading', { name: 'Attack this shop' }).isVisible(), false);
    assert.equal(await page.getByRole('button', { name: 'Start the attack' }).isVisible(), false);
    /* and the route itself refuses, saying why; nothing is sold */
    const run = await call(server, 'POST', '/v1/sim', { scenario: 'merch-2020', seconds: 1 }, ADMIN);
    assert.equal(run.status, 403);
    assert.equal(run.body.error.reason, 'attack_panel_off');
    assert.equal((await sku(server, 'cap-red', ADMIN)).sold, 0);
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('the attack panel runs a bounded live attack against this server', async () => {
  const server = await startServer({ ...KEYS, attack_panel: true });
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 40 }, ADMIN)).status, 201);
    const page = await open(shared.browser, server.url + '/admin');
    await signIn(page);
    await page.getByLabel('Scenario').selectOption('merch-2020');
    await page.getByLabel('Seconds').fill('3');
    await page.getByRole('button', { name: 'Start the attack' }).click();
    await page.getByText(/^Attack running \(merch-2020, 3 s\)/).waitFor({ timeout: STEP_MS });
    assert.equal(await page.getByRole('button', { name: 'Start the attack' }).isDisabled(), true);
    await page.getByText(/^Attack finished \(merch-2020, 3 s\)/).waitFor({ timeout: STEP_MS });
    await page.getByText('units genuine buyers bought').waitFor({ timeout: STEP_MS });

    const run = (await call(server, 'GET', '/v1/sim', undefined, ADMIN)).body;
    assert.equal(run.state, 'finished');
    assert.equal(run.result.live.failed, 0);
    assert.ok(run.result.live.requests > 0);
    assert.equal(run.result.results[0].attacker_challenged > 0, true);
    const s = await sku(server, 'cap-red', ADMIN);
    assert.equal(run.result.results[0].units_sold, s.sold);
    await row(page, 'cap-red').locator('td.sold').filter({ hasText: new RegExp(`^${s.sold}$`) }).waitFor({ timeout: STEP_MS });
    /* the hoarders were challenged on cap-red: its row says by which rule */
    await row(page, 'cap-red').locator('td.by-rule').filter({ hasText: /challenged/ }).waitFor({ timeout: STEP_MS });
    await shot(page, 'admin-attack');

    /* A run that is stopped says so. The first run's buyers bought for
     * real and its waitlist takes any restock of cap-red, so a new sku
     * gives the second run something on sale. */
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-green', { stock: 40 }, ADMIN)).status, 201);
    await page.getByLabel('Seconds').fill('60');
    await page.getByRole('button', { name: 'Start the attack' }).click();
    await page.getByText(/^Attack running \(merch-2020, 60 s\)/).waitFor({ timeout: STEP_MS });
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.getByText(/^Attack stopped/).waitFor({ timeout: STEP_MS });
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('the dashboard fits a phone-sized screen', async () => {
  const server = await startServer(KEYS);
  try {
    assert.equal((await call(server, 'PUT', '/v1/skus/cap-red', { stock: 5 }, ADMIN)).status, 201);
    const page = await open(shared.browser, server.url + '/admin', { width: 390, height: 844 });
    await signIn(page);
    await row(page, 'cap-red').waitFor({ timeout: STEP_MS });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth));
    await shot(page, 'admin-phone');
    assert.deepEqual(page.errors, []);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
