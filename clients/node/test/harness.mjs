/*
 * harness.mjs - what the client's tests share: a holdfast server of their
 * own (the real binary on an ephemeral port of 127.0.0.1, a fresh data
 * directory, a shop key and an admin key, as tests/web/harness.mjs starts
 * one), the admin's calls that set it up, and three stand-ins on loopback
 * that fail the way networks do: a proxy that loses replies, a server that
 * never answers, and a server whose replies a test scripts.
 *
 * Environment (set by CTest): HF_BINARY, the holdfast binary.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binary = process.env.HF_BINARY;
if (!binary) throw new Error('HF_BINARY must be set to the holdfast binary (CTest sets it)');

export const SHOP_KEY = 'client-test-shop-key';
export const ADMIN_KEY = 'client-test-admin-key';

/* How long starting or stopping a server may take before the test fails: a
 * bound on a hang, not a speed claim. */
export const STEP_MS = 15000;

/* Starts holdfast with keys (so hold secrets are required, as in a real
 * shop) and any other config given. */
export async function startHoldfast(config = {}) {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-client-'));
  writeFileSync(join(root, 'config.json'),
    JSON.stringify({ api_keys: [SHOP_KEY], admin_key: ADMIN_KEY, ...config }));
  const args = ['serve', '--listen', '127.0.0.1:0', '--data', join(root, 'data'), '--web', '',
    '--config', join(root, 'config.json')];
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

/* One request with node:http (not the client, nor fetch, which Debian's
 * Node 18 marks experimental); the status, headers and parsed body. */
export function rawCall(url, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method, headers: {
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers } },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = /^application\/json/.test(res.headers['content-type'] ?? '');
        resolve({ status: res.statusCode, headers: res.headers, text,
          body: json && text ? JSON.parse(text) : null });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/* An admin call (stock, policy); the parsed reply. */
export function admin(server, method, path, body) {
  return rawCall(server.url, method, path, body, { Authorization: `Bearer ${ADMIN_KEY}` });
}

export async function putSku(server, sku, body) {
  const r = await admin(server, 'PUT', `/v1/skus/${sku}`, body);
  if (r.status !== 200 && r.status !== 201) {
    throw new Error(`PUT /v1/skus/${sku}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

export async function getSku(server, sku) {
  const r = await admin(server, 'GET', `/v1/skus/${sku}`);
  if (r.status !== 200) throw new Error(`GET /v1/skus/${sku}: ${r.status}`);
  return r.body;
}

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

function closeAll(server, sockets) {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function trackSockets(server) {
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

/*
 * A proxy to upstream that forwards every request and its reply, except
 * that for a request drop(req) picks it forwards the request, waits for
 * the whole reply, and then cuts the connection instead of passing the
 * reply on: the server did the work, the client never heard. requests
 * lists what came through: {method, url, idempotencyKey, dropped}.
 */
export async function startLossyProxy(upstream, drop) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const dropped = drop(req);
      requests.push({ method: req.method, url: req.url, dropped,
        idempotencyKey: req.headers['idempotency-key'] });
      const { host: _host, connection: _connection, ...headers } = req.headers;
      const out = http.request(upstream + req.url, { method: req.method, headers }, (up) => {
        const body = [];
        up.on('data', (c) => body.push(c));
        up.on('end', () => {
          if (dropped) {
            req.socket.destroy();
            return;
          }
          res.writeHead(up.statusCode, up.headers);
          res.end(Buffer.concat(body));
        });
      });
      out.on('error', () => req.socket.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  const sockets = trackSockets(server);
  const url = await listen(server);
  return { url, requests, close: () => closeAll(server, sockets) };
}

/* A server that takes connections and requests and never answers. */
export async function startSilentServer() {
  const requests = [];
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      /* One request head per request; the client sends nothing more on a
       * connection that got no reply. */
      while (head.includes('\r\n\r\n')) {
        requests.push(head.slice(0, head.indexOf('\r\n\r\n')));
        head = head.slice(head.indexOf('\r\n\r\n') + 4);
      }
    });
    socket.on('error', () => {});
  });
  const sockets = trackSockets(server);
  const url = await new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
  return { url, requests, close: () => closeAll(server, sockets) };
}

/* A server whose replies the test scripts: reply(req, body, n) returns
 * {status, body, headers} for the n-th request (from 0). */
export async function startScriptedServer(reply) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const n = requests.length;
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const r = reply(req, body, n);
      res.writeHead(r.status, { 'Content-Type': 'application/json', ...(r.headers ?? {}) });
      res.end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
    });
  });
  const sockets = trackSockets(server);
  const url = await listen(server);
  return { url, requests, close: () => closeAll(server, sockets) };
}
