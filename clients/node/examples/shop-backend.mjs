// A shop's backend in front of holdfast: add to cart holds the units for the
// shopper, checkout commits them with the order's reference, abandoning the
// cart releases them. Hold secrets stay in this process, in the shopper's
// session; the browser gets a session cookie and never sees a secret.
//   HOLDFAST_URL=http://127.0.0.1:8080 HOLDFAST_KEY=shop-key node shop-backend.mjs
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { HoldfastClient, HoldfastError } from '@holdfast/client';

export function createShop({ holdfastUrl, apiKey }) {
  const holdfast = new HoldfastClient({ baseUrl: holdfastUrl, apiKey });
  const sessions = new Map(); // a real shop keeps these in its session store
  const routes = {
    'POST /cart': async (req, session) => {
      const { sku, qty } = await readJson(req);
      // One key per click, from the page: a click sent twice holds once.
      const click = String(req.headers['x-request-id'] ?? '').slice(0, 36);
      const hold = await holdfast.createHold({
        customer: session.customer,
        ip: req.socket.remoteAddress, // behind a proxy: the address it forwards
        fingerprint: req.headers['x-fingerprint'] || undefined, // the page's device id
        lines: [{ sku, qty }],
      }, { idempotencyKey: click ? `${session.cartKey}.${click}` : undefined });
      if (!session.holds.some((h) => h.id === hold.id)) {
        session.holds.push({ id: hold.id, secret: hold.secret, sku, qty });
      }
      return { status: 201, body: { sku, qty, until: hold.expires_at } };
    },
    'POST /checkout': async (req, session) => {
      if (session.holds.length === 0) return { status: 409, body: { error: 'empty_cart' } };
      session.order ??= `order-${randomBytes(8).toString('hex')}`;
      // Take the payment here, then sell the units under the order's ref; a
      // checkout sent again commits what is left, and a commit twice is harmless.
      while (session.holds.length > 0) {
        await holdfast.commitHold(session.holds[0], { order_ref: session.order });
        session.holds.shift();
      }
      const order = session.order;
      delete session.order;
      return { status: 200, body: { order } };
    },
    'DELETE /cart': async (req, session) => {
      for (const hold of session.holds) await holdfast.releaseHold(hold);
      session.holds = [];
      return { status: 200, body: { items: 0 } };
    },
  };
  const server = http.createServer(async (req, res) => {
    const session = sessionOf(req, res, sessions);
    try {
      const route = routes[`${req.method} ${req.url}`];
      const out = route ? await route(req, session) : { status: 404, body: { error: 'no page' } };
      send(res, out.status, out.body);
    } catch (err) {
      if (!(err instanceof HoldfastError)) return send(res, 400, { error: 'bad_request' });
      // Sold out, a cap, a cart expired: the shopper may act on it. Not the rest.
      const shopper = [409, 410, 429].includes(err.status);
      send(res, shopper ? err.status : 503, shopper
        ? { error: err.code, message: err.details.message, buy_now: err.buyNow }
        : { error: 'unavailable', retry: err.outcomeUnknown ? 'with the same click' : 'yes' });
    }
  });
  server.on('close', () => holdfast.close());
  return server;
}

function sessionOf(req, res, sessions) {
  const id = /(?:^|;\s*)sid=([\w-]{22})/.exec(req.headers.cookie ?? '')?.[1];
  if (id && sessions.has(id)) return sessions.get(id);
  const session = { id: randomBytes(16).toString('base64url'), holds: [],
    customer: `guest-${randomBytes(8).toString('hex')}`, // or the signed-in customer's id
    cartKey: randomBytes(12).toString('base64url') }; // keys as unguessable as secrets
  sessions.set(session.id, session);
  res.setHeader('Set-Cookie', `sid=${session.id}; HttpOnly; SameSite=Lax; Path=/`);
  return session;
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) if ((text += chunk).length > 4096) throw new Error('too big');
  return JSON.parse(text);
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { HOLDFAST_URL, HOLDFAST_KEY, PORT } = process.env;
  const shop = createShop({ holdfastUrl: HOLDFAST_URL, apiKey: HOLDFAST_KEY });
  shop.listen(Number(PORT ?? 3000), '127.0.0.1');
}
