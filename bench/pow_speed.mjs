/*
 * pow_speed.mjs - how fast the proof of work is solved: web/pow/solver.js's
 * two engines (pow.wasm, and the WebCrypto one it falls back to) in Node and
 * in headless Chromium, on a page and in a Web Worker as the shop runs it,
 * beside the C solver (`holdfast solve`, OpenSSL) that a bot would use.
 *
 *   node bench/pow_speed.mjs            after `make` (pow.wasm, build/holdfast)
 *
 * Each figure is hashes a second: nonces hashed over the wall time of a
 * solve() call, the median of HF_POW_RUNS runs. The wasm engine and the C
 * solver solve the same challenge, a 30-character prefix like the server's
 * at 24 bits, whose first passing nonce is some 11.5 million tries in (1-3 s
 * at the speeds measured), so both do exactly the same work and must find
 * the same nonce, which is checked. WebCrypto is too slow for that; it hashes
 * HF_POW_WEBCRYPTO_TRIES nonces at 32 bits and stops (none passes).
 *
 * Chromium gets the files from a small HTTP server of our own on
 * 127.0.0.1 (an ephemeral port), serving web/pow/ as holdfast does: .js as
 * text/javascript and .wasm as application/wasm. It is Debian's chromium,
 * driven by playwright-core from web/node_modules, launched as the browser
 * tests launch it (tests/web/harness.mjs).
 *
 * Prints a table, then one line a figure for scripts:
 *   pow_speed runtime=chromium context=worker engine=wasm hashes_per_s=N tries=N ms=N runs=N
 *
 * Environment: HF_POW_RUNS (3), HF_POW_WEBCRYPTO_TRIES (131072), HF_CHROMIUM
 * (/usr/bin/chromium), HF_BINARY (build/holdfast), HF_WEB (web/, for
 * playwright-core). A missing browser or binary skips its rows, saying so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WEB = process.env.HF_WEB || join(ROOT, 'web');
const POW_DIR = join(ROOT, 'web', 'pow');
const BINARY = process.env.HF_BINARY || join(ROOT, 'build', 'holdfast');
const CHROMIUM = process.env.HF_CHROMIUM || '/usr/bin/chromium';

/* The server's prefixes are 30 hex digits (bits, expiry, tag; src/guard/
 * proof.c); this one is shaped like them. At 24 bits its first passing nonce
 * is the 11,537,806th, found by `holdfast solve`. */
const PREFIX = '140193a5f2c4e89f1b2c3d4e5f6a7b';
const SOLVE_BITS = 24;
/* No nonce passes 32 bits among the first 2^26 for this prefix, so a run
 * hashes exactly triesMax. */
const WEBCRYPTO_BITS = 32;
const WEBCRYPTO_TRIES = positive('HF_POW_WEBCRYPTO_TRIES', 131072);
const RUNS = positive('HF_POW_RUNS', 3);
/* A bound on a hung browser step, not a speed claim: a wasm solve here takes
 * a few seconds, a WebCrypto run one or two. */
const STEP_MS = 120000;

function positive(name, fallback) {
  const value = process.env[name] === undefined ? fallback : Number(process.env[name]);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`pow_speed: ${name} must be a whole number, 1 or more`);
  }
  return value;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/* One figure from its runs, each {tries, ms, nonce}. */
function figure(runtime, context, engine, runs) {
  const rates = runs.map((r) => (r.tries / r.ms) * 1000);
  const rate = median(rates);
  const run = runs[rates.indexOf(rate)];
  return { runtime, context, engine, rate, tries: run.tries, ms: run.ms, nonce: run.nonce, runs };
}

/* ------------------------------------------------------------ Node */

async function benchNode(notes) {
  const solver = await import(pathToFileURL(join(POW_DIR, 'solver.js')).href);
  const figures = [];
  if ((await solver.engine()) === 'wasm') {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const result = await solver.solve(PREFIX, SOLVE_BITS, { engine: 'wasm' });
      runs.push({ tries: result.tries, ms: performance.now() - t0, nonce: result.nonce });
    }
    figures.push(figure('node', 'main', 'wasm', runs));
  } else {
    notes.push('node: pow.wasm did not load (see the warning above); no wasm figure');
  }
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const result = await solver.solve(PREFIX, WEBCRYPTO_BITS, {
      engine: 'webcrypto',
      triesMax: WEBCRYPTO_TRIES,
    });
    runs.push({ tries: result?.tries ?? WEBCRYPTO_TRIES, ms: performance.now() - t0, nonce: null });
  }
  figures.push(figure('node', 'main', 'webcrypto', runs));
  return figures;
}

/* ------------------------------------------------------------ Chromium */

const TYPES = { '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm' };

const PAGE = `<!doctype html><meta charset="utf-8"><title>pow_speed</title>
<script type="module">
/* Runs one timed job; the bench calls these through page.evaluate. */
window.onPage = async (prefix, bits, options) => {
  const solver = await import('/pow/solver.js');
  const t0 = performance.now();
  const result = await solver.solve(prefix, bits, options);
  const ms = performance.now() - t0;
  return { tries: result?.tries ?? options.triesMax, ms, nonce: result?.nonce ?? null,
           engine: result?.engine ?? options.engine };
};
let worker = null;
function ask(message) {
  return new Promise((resolve) => {
    let tries = 0;
    worker.onmessage = ({ data }) => {
      if (data.type === 'progress') {
        tries = data.tries;
        return;
      }
      resolve({ ...data, tries: data.tries ?? tries });
    };
    worker.postMessage(message);
  });
}
window.inWorker = async (prefix, bits, options) => {
  if (worker === null) {
    worker = new Worker('/pow/worker.js', { type: 'module' });
    /* Loads the worker and its engine before anything is timed. */
    await ask({ prefix, bits: 0, triesMax: 1, engine: options.engine });
  }
  const t0 = performance.now();
  const answer = await ask({ prefix, bits, ...options });
  const ms = performance.now() - t0;
  const error = answer.type === 'error' ? answer.message : null;
  return { tries: answer.tries, ms, nonce: answer.nonce ?? null,
           engine: answer.engine ?? options.engine, error };
};
window.ready = true;
</script>`;

/* Serves the bench page at / and web/pow/'s files at /pow/NAME; nothing
 * else. Listens on 127.0.0.1 only. */
function startServer() {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return;
    }
    const m = url.pathname.match(/^\/pow\/([A-Za-z0-9_-]+)(\.js|\.wasm)$/);
    const path = m && join(POW_DIR, m[1] + m[2]);
    if (!path || !existsSync(path)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[m[2]], 'Cache-Control': 'no-store' });
    res.end(readFileSync(path));
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function timedRuns(page, fn, bits, options) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const run = await page.evaluate(([name, args]) => window[name](...args), [
      fn,
      [PREFIX, bits, options],
    ]);
    if (run.error && !/triesMax/.test(run.error)) {
      throw new Error(`pow_speed: chromium ${fn}: ${run.error}`);
    }
    if (run.engine !== options.engine) {
      throw new Error(`pow_speed: chromium ${fn} ran ${run.engine}, not ${options.engine}`);
    }
    runs.push(run);
  }
  return runs;
}

async function benchChromium(notes) {
  if (!existsSync(CHROMIUM)) {
    notes.push(`chromium: ${CHROMIUM} not found (scripts/deps.sh test installs it); skipped`);
    return [];
  }
  const playwright = join(WEB, 'node_modules', 'playwright-core', 'index.mjs');
  if (!existsSync(playwright)) {
    notes.push('chromium: playwright-core is not in web/node_modules (scripts/deps.sh); skipped');
    return [];
  }
  const { chromium } = await import(pathToFileURL(playwright).href);
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    notes.push(`chromium: ${browser.version()}`);
    const page = await browser.newPage();
    page.setDefaultTimeout(STEP_MS);
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'warning' && notes.push(`chromium: ${m.text()}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.ready === true);
    const engine = await page.evaluate(async () => (await import('/pow/solver.js')).engine());
    if (engine !== 'wasm') {
      notes.push('chromium: pow.wasm did not load (see its warning); no wasm figures');
    }
    const figures = [];
    const wasm = { engine: 'wasm' };
    const webcrypto = { engine: 'webcrypto', triesMax: WEBCRYPTO_TRIES };
    const cases = [
      ['page', 'onPage', 'wasm', SOLVE_BITS, wasm],
      ['page', 'onPage', 'webcrypto', WEBCRYPTO_BITS, webcrypto],
      ['worker', 'inWorker', 'wasm', SOLVE_BITS, wasm],
      ['worker', 'inWorker', 'webcrypto', WEBCRYPTO_BITS, webcrypto],
    ];
    for (const [context, fn, name, bits, options] of cases) {
      if (name === 'wasm' && engine !== 'wasm') {
        continue;
      }
      figures.push(figure('chromium', context, name, await timedRuns(page, fn, bits, options)));
    }
    if (errors.length > 0) {
      throw new Error(`pow_speed: the bench page failed: ${errors.join('; ')}`);
    }
    return figures;
  } finally {
    await browser.close();
    server.close();
  }
}

/* ------------------------------------------------------------ C */

function benchC(notes) {
  if (!existsSync(BINARY)) {
    notes.push(`c: ${BINARY} not found (make builds it); skipped`);
    return [];
  }
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const out = spawnSync(BINARY, ['solve', PREFIX, String(SOLVE_BITS)], { encoding: 'utf8' });
    const m = out.stderr.match(/tries=(\d+) ms=(\d+)/);
    if (out.status !== 0 || !m) {
      throw new Error(`pow_speed: ${BINARY} solve failed (${out.status}): ${out.stderr}`);
    }
    const nonce = out.stdout.trim().split(':')[1];
    runs.push({ tries: Number(m[1]), ms: Number(m[2]), nonce });
  }
  return [figure('c', 'native', 'openssl', runs)];
}

/* ------------------------------------------------------------ report */

function header() {
  let commit = '?';
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    /* Not a git checkout; the figures stand without it. */
  }
  console.log(`holdfast proof-of-work speed, ${new Date().toISOString()}`);
  console.log('command:  node bench/pow_speed.mjs');
  console.log(`commit:   ${commit}`);
  console.log(`machine:  ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}`);
  console.log(`load:     ${loadavg().map((l) => l.toFixed(2)).join(' ')} (load average at start)`);
  console.log(`node:     ${process.version}`);
  console.log(
    `work:     prefix ${PREFIX}; wasm and C solve ${SOLVE_BITS} bits; WebCrypto hashes ` +
      `${WEBCRYPTO_TRIES} at ${WEBCRYPTO_BITS} bits; median of ${RUNS} runs`,
  );
}

function report(figures, notes) {
  for (const note of notes) {
    console.log(`note:     ${note}`);
  }
  console.log();
  const row = (cells) => cells.map((c, i) => String(c).padEnd([10, 8, 11, 14, 12, 9][i])).join('');
  console.log(row(['runtime', 'context', 'engine', 'hashes/s', 'tries', 'ms']).trimEnd());
  for (const f of figures) {
    const rate = Math.round(f.rate).toLocaleString('en-US');
    console.log(row([f.runtime, f.context, f.engine, rate, f.tries, Math.round(f.ms)]).trimEnd());
  }
  console.log();
  for (const f of figures) {
    console.log(
      `pow_speed runtime=${f.runtime} context=${f.context} engine=${f.engine} ` +
        `hashes_per_s=${Math.round(f.rate)} tries=${f.tries} ms=${Math.round(f.ms)} ` +
        `runs=${f.runs.length}`,
    );
  }
}

/* Every solve of the same challenge found the same nonce, whatever ran it. */
function checkAgreement(figures) {
  const nonces = new Set(
    figures.flatMap((f) => f.runs.map((r) => r.nonce)).filter((n) => n !== null),
  );
  if (nonces.size > 1) {
    throw new Error(`pow_speed: the solvers disagree: ${[...nonces].join(', ')}`);
  }
  if (nonces.size === 0) {
    return null;
  }
  return `every ${SOLVE_BITS}-bit solve found ${PREFIX}:${[...nonces][0]}`;
}

header();
const notes = [];
const figures = [...(await benchNode(notes)), ...(await benchChromium(notes)), ...benchC(notes)];
const agreed = checkAgreement(figures);
if (agreed) {
  notes.push(agreed);
}
report(figures, notes);
