/*
 * cluster-pg.test.mjs - the client against a real cluster: two holdfast
 * nodes of one shop whose journal and lease are in PostgreSQL (the ctest
 * fixture `pg`, tests/cluster). The client is given both nodes, the
 * standby first: a create is redirected to the owner; once the owner has
 * stopped and the standby has taken the shop over, the client, still
 * sending to the old owner, is refused and moves on to the new one, which
 * has the hold.
 *
 * Environment (set by CTest): HF_BINARY, the holdfast binary; HF_PG_ENV,
 * the fixture's env file (PG_URL).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { HoldfastClient } from '@holdfast/client';
import { ADMIN_KEY, SHOP_KEY, STEP_MS, putSku } from './harness.mjs';

/* Run as a script (not under `node --test`) so that a skip is its exit
 * status, as for the fixture: no env file, no PostgreSQL 15 here. */
const SKIP = 77;
const envPath = process.env.HF_PG_ENV;
if (!envPath) throw new Error('HF_PG_ENV must name the pg fixture\'s env file (CTest sets it)');
if (!existsSync(envPath)) {
  console.log(`SKIP: ${envPath} is missing (the pg fixture needs PostgreSQL 15)`);
  process.exit(SKIP);
}
const pgUrl = readFileSync(envPath, 'utf8').match(/^PG_URL='?([^'\n]+)'?$/m)?.[1];
if (!pgUrl) throw new Error(`${envPath} has no PG_URL`);

/* A shop of this run's own in the fixture's database. */
const SHOP = `client-${process.pid}`;
/* The lease's least: the standby takes over soon after the owner stops. */
const LEASE_MS = 500;

const nodes = [];

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

/* Starts a node of SHOP; resolves once its log says `ready` (a pattern),
 * with the URL it listens at. */
async function startNode(name, ready) {
  const root = mkdtempSync(join(tmpdir(), `holdfast-cluster-${name}-`));
  writeFileSync(join(root, 'config.json'),
    JSON.stringify({ api_keys: [SHOP_KEY], admin_key: ADMIN_KEY }));
  const child = spawn(process.env.HF_BINARY, ['serve', '--listen', '127.0.0.1:0',
    '--data', join(root, 'data'), '--web', '', '--config', join(root, 'config.json'),
    '--journal', pgUrl, '--shop', SHOP, '--node', name, '--lease-ms', String(LEASE_MS)],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const waiters = [];
  child.stderr.on('data', (chunk) => {
    log += chunk;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let running = true;
  exited.then(() => {
    running = false;
    for (const w of [...waiters]) w();
  });
  /* Resolves with the match once the log has one; rejects if the node
   * exits first or STEP_MS passes. */
  const until = (pattern) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ${pattern}:\n${log}`)), STEP_MS);
    const check = () => {
      const m = log.match(pattern);
      if (m || !running) {
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(check), 1);
        if (m) resolve(m);
        else reject(new Error(`${name} exited:\n${log}`));
      }
    };
    waiters.push(check);
    check();
  });
  const node = {
    name, until, exited,
    async stop() {
      if (running) child.kill('SIGTERM');
      const code = await exited;
      rmSync(root, { recursive: true, force: true });
      return code;
    },
  };
  nodes.push(node);
  node.url = `http://${(await until(/addr=(127\.0\.0\.1:\d+)/))[1]}`;
  await until(ready);
  return node;
}

test('a create through the standby reaches the owner; after a takeover the hold is found',
  { timeout: 60000 }, async () => {
    const a = await startNode('a', /msg=listening/);
    const b = await startNode('b', /waiting for the shop's lease" shop=\S+ owner=a /);
    await putSku(a, 'cap', { stock: 5 });

    const events = [];
    const hf = new HoldfastClient({ baseUrl: [b.url, a.url], apiKey: SHOP_KEY, backoffMs: 1,
      onEvent: (e) => events.push(e) });
    try {
      const hold = await hf.createHold({ customer: 'u-1', ip: '203.0.113.9',
        fingerprint: 'fp-1', lines: [{ sku: 'cap', qty: 2 }] }, { idempotencyKey: 'cart-e2e-1' });
      assert.equal(hold.state, 'active');
      assert.deepEqual(events.filter((e) => e.type === 'redirect').map((e) => [e.from, e.to]),
        [[b.url, a.url]]);
      assert.equal(hf.nodeUrl.origin, a.url, 'the owner is kept');

      /* The owner stops; the standby takes the shop over and serves it. */
      assert.equal(await a.stop(), 0);
      await b.until(/msg=listening/);
      const seen = await hf.getHold(hold);
      assert.equal(seen.id, hold.id);
      assert.equal(seen.state, 'active');
      const retry = events.find((e) => e.type === 'retry');
      assert.match(retry.reason, /^network ECONNREFUSED/);
      assert.equal(retry.node, b.url);
      assert.equal(hf.nodeUrl.origin, b.url);

      /* The create sent again with its key is the same hold, from the new owner. */
      const again = await hf.createHold({ customer: 'u-1', ip: '203.0.113.9',
        fingerprint: 'fp-1', lines: [{ sku: 'cap', qty: 2 }] }, { idempotencyKey: 'cart-e2e-1' });
      assert.equal(again.id, hold.id);
      assert.equal(again.secret, hold.secret);
    } finally {
      hf.close();
    }
  });
