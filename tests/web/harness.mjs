/*
 * harness.mjs - what the browser tests share: a holdfast server of their
 * own (the real binary, an ephemeral port on 127.0.0.1, a fresh data
 * directory), calls to its API, and Debian's Chromium driven by
 * playwright-core, with screenshots kept as test artifacts.
 *
 * Environment (set by CTest): HF_BINARY, the holdfast binary; HF_WEB, the
 * repository's web/ (its node_modules hold playwright-core); HF_ARTIFACTS,
 * where screenshots go.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binary = process.env.HF_BINARY;
const web = process.env.HF_WEB;
export const artifacts = process.env.HF_ARTIFACTS || join(tmpdir(), 'holdfast-web-artifacts');
if (!binary || !web) throw new Error('HF_BINARY and HF_WEB must be set (CTest sets them)');
mkdirSync(artifacts, { recursive: true });

const { chromium } = await import(join(web, 'node_modules/playwright-core/index.mjs'));

/* How long a step may take before the test fails: a bound on a hang, not a
 * speed claim (the pages react within a second). */
export const STEP_MS = 15000;

/* Starts a server; config is the JSON config file's object (or null). */
export async function startServer(config = null) {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-web-'));
  const args = ['serve', '--listen', '127.0.0.1:0', '--data', join(root, 'data')];
  if (config) {
    writeFileSync(join(root, 'config.json'), JSON.stringify(config));
    args.push('--config', join(root, 'config.json'));
  }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${log}`)), STEP_MS);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/msg=listening addr=(127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${log}`)));
  });
  return {
    url,
    log: () => log,
    async stop() {
      const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(root, { recursive: true, force: true });
      return code;
    },
  };
}

/* An API call from the test itself (not the page); the parsed reply. */
export async function call(server, method, path, body, key) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(server.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export async function sku(server, name, key) {
  const r = await call(server, 'GET', `/v1/skus/${name}`, undefined, key);
  if (r.status !== 200) throw new Error(`GET /v1/skus/${name}: ${r.status}`);
  return r.body;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.HF_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/* A page whose script errors fail the test that reads them. */
export async function open(browser, url, viewport = { width: 1200, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(url);
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/* Waits until check() holds (the server's state, read again and again);
 * bounded by STEP_MS. */
export async function until(check, what) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/* One browser for a test file: started before its tests, closed after. */
export function useBrowser(before, after) {
  const holder = {};
  before(async () => {
    holder.browser = await launch();
  });
  after(async () => {
    await holder.browser?.close();
  });
  return holder;
}
