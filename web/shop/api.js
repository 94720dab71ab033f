/*
 * api.js - the pages' client of holdfast's HTTP API (docs/API.md):
 * JSON calls with the key the page was given, a proof of work when a 428
 * asks for one (solved in a Web Worker), and the server-sent events of
 * GET /v1/events read through fetch, so that the key goes in a header
 * (EventSource cannot send one).
 *
 * Writes that get no reply or a 5xx may have been applied: they are sent
 * again, a few times, with the same Idempotency-Key (docs/INTEGRATION.md,
 * "Retries and idempotency"), so that a click whose reply was lost holds
 * once.
 */

const KEY_ITEM = 'holdfast.key';

/* Requests per write at most, and the pause before each retry: doubling
 * from the first, jittered, or the server's Retry-After up to the last. */
const WRITE_TRIES = 4;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;
const RETRY_AFTER_MAX_MS = 5000;

/* 128 random bits as hex: an Idempotency-Key (crypto.getRandomValues works
 * on plain-http pages too, where crypto.randomUUID does not). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/* The key: from the page's #key=... (then kept for the tab), or kept. */
export function storedKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromHash) {
    sessionStorage.setItem(KEY_ITEM, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_ITEM) || '';
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = body?.error ?? {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.detail = e;
  }
}

export class Api {
  constructor(key = '') {
    this.key = key;
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.key) h.Authorization = `Bearer ${this.key}`;
    return h;
  }

  /* One call; the parsed reply, or an ApiError (status 0: no reply). */
  async call(method, path, body, extraHeaders = {}) {
    const init = { method, headers: this.headers(extraHeaders) };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, { error: { code: 'no_reply', message: 'the server did not answer' } });
    }
    const text = await res.text().catch(() => '');
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) {
      const e = new ApiError(res.status, json);
      e.retryAfterS = Number(res.headers.get('Retry-After')) || 0;
      throw e;
    }
    return json;
  }

  /*
   * A write: one call, sent again with the same Idempotency-Key while it
   * gets no reply or a 5xx, WRITE_TRIES requests at most. A 4xx is the
   * answer (sent again it would get the same); so is the last failure.
   */
  async write(method, path, body, extraHeaders = {}, key = newIdempotencyKey()) {
    let pauseMs = RETRY_FIRST_MS;
    for (let tries = 1; ; tries++) {
      try {
        return await this.call(method, path, body, { ...extraHeaders, 'Idempotency-Key': key });
      } catch (err) {
        const unanswered = err instanceof ApiError && (err.status === 0 || err.status >= 500);
        if (!unanswered || tries >= WRITE_TRIES) throw err;
        const waitMs = err.retryAfterS
          ? Math.min(err.retryAfterS * 1000, RETRY_AFTER_MAX_MS)
          : pauseMs / 2 + Math.random() * (pauseMs / 2);
        pauseMs = Math.min(pauseMs * 2, RETRY_MAX_MS);
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }

  /*
   * A hold (POST /v1/holds). A 428 is answered with a proof of work from a
   * Web Worker, and the same request sent again; onProof(tries) reports the
   * progress, onProof(null) the end.
   */
  async hold(body, onProof = () => {}) {
    const key = newIdempotencyKey(); /* one per hold, across its retries and its proof */
    try {
      return await this.write('POST', '/v1/holds', body, {}, key);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 428) throw err;
      onProof(0); /* said at once: a lucky proof comes before any progress report */
      const proof = await solveInWorker(err.detail.challenge, onProof);
      return await this.write('POST', '/v1/holds', body, { 'Holdfast-Proof': proof }, key);
    }
  }

  /*
   * The sku events: calls onSku(object) for each, until signal aborts.
   * Reconnects after the server's retry delay when the stream ends or
   * fails; onState('open' | 'retrying' | 'unauthorized') tells the page.
   */
  async follow(skus, onSku, onState, signal) {
    const query = skus && skus.length ? `?skus=${skus.map(encodeURIComponent).join(',')}` : '';
    let retryMs = 2000;
    while (!signal.aborted) {
      try {
        const res = await fetch(`/v1/events${query}`, { headers: this.headers(), signal });
        if (res.status === 401 || res.status === 403) {
          onState('unauthorized');
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        onState('open');
        retryMs = await readEvents(res.body, onSku, retryMs);
      } catch (err) {
        if (signal.aborted) return;
      }
      onState('retrying');
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}

/* Reads one event stream to its end; returns the last retry delay. */
async function readEvents(body, onSku, retryMs) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return retryMs;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
        else if (line.startsWith('retry: ')) retryMs = Number(line.slice(7)) || retryMs;
      }
      if (event === 'sku' && data) onSku(JSON.parse(data));
    }
  }
}

/* Solves a challenge in a Web Worker (the page stays responsive). */
export function solveInWorker(challenge, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const worker = new Worker('/pow/worker.js', { type: 'module' });
    worker.onmessage = ({ data }) => {
      if (data.type === 'progress') {
        onProgress(data.tries);
        return;
      }
      worker.terminate();
      onProgress(null);
      if (data.type === 'done') {
        /* Which engine solved it (wasm, or the slow WebCrypto fallback):
         * the page keeps it where a look at the document finds it. */
        if (typeof document !== 'undefined') document.documentElement.dataset.powEngine = data.engine;
        resolve(data.header);
      } else reject(new Error(data.message));
    };
    worker.onerror = (e) => {
      worker.terminate();
      onProgress(null);
      reject(new Error(e.message || 'the proof-of-work worker failed'));
    };
    worker.postMessage({ prefix: challenge.prefix, bits: challenge.bits });
  });
}
