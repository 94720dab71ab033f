/*
 * shop.js - the demo storefront. The catalog and its counts come from the
 * API and stay live through GET /v1/events; adding to the cart holds the
 * units (POST /v1/holds), the cart counts each hold down, paying commits
 * it, removing or leaving releases it; a sold-out item offers its waitlist.
 *
 * The cart has one countdown: the time left on its holds, until the first
 * of them runs out (each item is a hold of its own, made when it was
 * added). When one runs out the cart says so, plainly, and which. On a
 * phone the cart is below the catalog, so a bar at the foot of the screen
 * says what it holds and for how long, and takes the shopper there.
 *
 * Each hold comes with a secret (and each waitlist entry with one), handed
 * out once, in the reply that made it: the cart keeps it for its shopper and
 * sends it (Hold-Secret, Waitlist-Secret) with every later call about that
 * hold, since with a shop key the server lets no one else touch it.
 *
 * A real shop would call holdfast from its own server, with the shopper's
 * address; this demo calls it from the page, as one shopper per browser.
 */
import { Api, ApiError, storedKey, storeKey } from '/shop/api.js';

const api = new Api(storedKey());
const $ = (id) => document.getElementById(id);

/* One shopper per browser: its customer id and a fingerprint of sorts. */
function shopperId(item, prefix) {
  let id = localStorage.getItem(item);
  if (!id) {
    id = prefix + crypto.getRandomValues(new Uint32Array(2)).join('').slice(0, 12);
    localStorage.setItem(item, id);
  }
  return id;
}
const customer = shopperId('holdfast.customer', 'shopper-');
const fingerprint = shopperId('holdfast.fingerprint', 'browser-');

const products = new Map(); /* sku -> {sku, name, price_cents, counts} */
const cart = new Map(); /* sku -> {holdId, secret, qty, expiresAt, state} */
const waits = new Map(); /* sku -> {id, secret, qty, state, position} */
/* Carts are full (hold_share): what the shopper may buy outright instead. */
let buyNow = null; /* {sku, qty} while offered or being paid */
let names = {};

/* --------------------------------------------------------------- display */

function money(cents) {
  return cents == null ? '' : `$${(cents / 100).toFixed(2)}`;
}

function notice(text, kind = 'info') {
  $('notice').textContent = text;
  $('notice').dataset.kind = kind;
  /* The phone's bar shows it too, drawn by its style (the words are the
   * notice's: a screen reader hears them once, and they are in the page
   * once). */
  $('cart-bar-note').dataset.text = text;
  $('cart-bar-note').dataset.kind = kind;
  renderBar();
}

function explain(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message}`;
  const d = err.detail;
  switch (err.code) {
    case 'insufficient_stock':
      return d.available > 0 ? `Only ${d.available} left.` : 'Sold out, sorry.';
    case 'policy_denied': {
      if (d.rule === 'newcomer_pool') {
        return 'New customers are holding a lot of this right now: a cart of one or two holds, more can be bought outright.';
      }
      const wait = d.retry_after_ms > 0 ? ` Try again in ${Math.ceil(d.retry_after_ms / 1000)} s.` : '';
      return `The shop's limits say no (${d.rule.replaceAll('_', ' ')}: ${d.current} of ${d.limit}).${wait}`;
    }
    case 'hold_expired':
      return 'That hold had already run out.';
    case 'no_reply':
      return 'The shop did not answer. Please try again in a moment.';
    case 'unauthorized':
    case 'forbidden':
      return 'The server needs an API key.';
    default:
      return `${err.message} (${err.code})`;
  }
}

function renderProduct(p) {
  let li = document.getElementById(`p-${p.sku}`);
  if (!li) {
    li = document.createElement('li');
    li.id = `p-${p.sku}`;
    li.className = 'product';
    li.innerHTML = `
      <h3 class="name"></h3>
      <p class="price"></p>
      <p class="counts" aria-live="polite"></p>
      <div class="buy">
        <label class="qty-label">Quantity <select class="qty"></select></label>
        <button type="button" class="add"></button>
      </div>`;
    li.querySelector('.name').textContent = p.name;
    li.querySelector('.price').textContent = money(p.price_cents);
    const select = li.querySelector('.qty');
    for (let q = 1; q <= 5; q++) select.add(new Option(String(q), String(q)));
    select.setAttribute('aria-label', `Quantity of ${p.name}`);
    li.querySelector('.add').addEventListener('click', () => onBuy(p.sku));
    $('catalog').append(li);
  }
  const c = p.counts;
  const counts = li.querySelector('.counts');
  counts.textContent = `${c.available} available · ${c.held} in carts · ${c.sold} sold of ${c.stock}`;
  counts.dataset.available = String(c.available);
  const soldOut = c.available === 0;
  li.classList.toggle('sold-out', soldOut);
  const button = li.querySelector('.add');
  const waiting = waits.get(p.sku);
  if (soldOut) {
    button.textContent = waiting ? 'On the waitlist' : 'Join waitlist';
    button.disabled = Boolean(waiting);
    button.setAttribute('aria-label', `Join the waitlist for ${p.name}`);
  } else {
    button.textContent = 'Add to cart';
    button.disabled = false;
    button.setAttribute('aria-label', `Add ${p.name} to cart`);
  }
}

function remaining(line) {
  return Math.max(0, line.expiresAt - Date.now());
}

function clock(ms) {
  const s = Math.ceil(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function activeLines() {
  return [...cart.values()].filter((l) => l.state === 'active');
}

/* The cart's one countdown: until the first of its holds runs out. */
function cartLeft() {
  const active = activeLines();
  return active.length ? Math.min(...active.map(remaining)) : null;
}

function timeOfDay(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/* A cart that may be taken back for waiting buyers once its safe time is
 * over (it is not paid for by then) says until when it is safe: a time,
 * not a second countdown. */
function safeNote() {
  const safe = activeLines().filter((l) => l.safeAt && l.safeAt < l.expiresAt).map((l) => l.safeAt);
  if (!safe.length) return '';
  const at = Math.min(...safe);
  return at > Date.now()
    ? `Pay by ${timeOfDay(at)} to be sure to keep it: after that it may go to buyers who are waiting.`
    : 'Pay now to be sure to keep it: buyers may be waiting for it.';
}

/* The countdown, the safe note and the bar, as time passes. */
function renderClock() {
  const left = cartLeft();
  $('cart-clock').hidden = left === null;
  if (left !== null) {
    $('cart-clock').querySelector('.countdown').textContent = clock(left);
    $('cart-safe').textContent = safeNote();
  }
  renderBar();
}

/* What ran out, said once for the whole cart. */
function renderTimeout() {
  const expired = [...cart].filter(([, l]) => l.state === 'expired').map(([sku]) => products.get(sku)?.name ?? sku);
  const el = $('cart-timeout');
  el.hidden = expired.length === 0;
  if (expired.length === 0) return;
  el.textContent = activeLines().length
    ? `Time's up for ${expired.join(', ')}: no longer held, and back on sale.`
    : "Time's up: your cart's hold ran out, and the items went back on sale. Add them again to hold them anew.";
}

/* The phone's bar, while the cart is out of view (wide screens hide it). */
let cartInView = false;
function renderBar() {
  const bar = $('cart-bar');
  const items = [...cart.values()].reduce((n, l) => n + (l.state === 'active' ? l.qty : 0), 0);
  const left = cartLeft();
  const timedOut = [...cart.values()].some((l) => l.state === 'expired');
  bar.hidden = cartInView || (cart.size === 0 && !$('cart-bar-note').dataset.text);
  document.body.classList.toggle('with-cart-bar', !bar.hidden);
  $('cart-bar-text').textContent =
    left !== null ? `Your cart: ${items} ${items === 1 ? 'item' : 'items'} · ${clock(left)} left`
      : timedOut ? "Your cart: time's up" : 'Your cart is empty';
}

function renderCart() {
  const list = $('cart');
  list.replaceChildren();
  let total = 0;
  let active = 0;
  for (const [sku, line] of cart) {
    const p = products.get(sku);
    const li = document.createElement('li');
    li.className = `line ${line.state}`;
    li.dataset.sku = sku;
    const name = p?.name ?? sku;
    const status =
      line.state === 'active' ? 'held' : line.state === 'expired' ? 'no longer held: back on sale' : line.state;
    li.innerHTML = '<span class="what"></span> <span class="status"></span>';
    li.querySelector('.what').textContent = `${line.qty} × ${name} ${money((p?.price_cents ?? 0) * line.qty)}`;
    li.querySelector('.status').textContent = `(${status})`;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'secondary small';
    remove.textContent = line.state === 'active' ? 'Remove' : 'Dismiss';
    remove.setAttribute('aria-label', `Remove ${name} from cart`);
    remove.addEventListener('click', () => removeLine(sku));
    li.append(' ', remove);
    list.append(li);
    if (line.state === 'active') {
      active++;
      total += (p?.price_cents ?? 0) * line.qty;
    }
  }
  $('cart-empty').hidden = cart.size > 0;
  $('cart-total').hidden = active === 0;
  $('cart-total').textContent = `Total ${money(total)}`;
  $('checkout').disabled = active === 0;
  $('empty').disabled = cart.size === 0;
  renderTimeout();
  renderClock();
}

function renderWaits() {
  const list = $('waiting');
  list.replaceChildren();
  for (const [sku, w] of waits) {
    const li = document.createElement('li');
    const name = products.get(sku)?.name ?? sku;
    li.textContent =
      w.state === 'waiting' ? `${name}: number ${w.position} in line` : `${name}: ${w.state}`;
    list.append(li);
  }
  $('waiting-section').hidden = waits.size === 0;
}

/* ------------------------------------------------------------------ cart */

/* h is a reply that handed the hold over: it carries the secret. */
function lineFromHold(h) {
  return {
    holdId: h.id,
    secret: h.secret,
    qty: h.lines.reduce((n, l) => n + l.qty, 0),
    expiresAt: Date.now() + (h.expires_in_ms ?? 0),
    /* Until then the cart is never taken back for buyers who wait (later it
     * may be, if it is still unpaid and others wait). */
    safeAt: h.safe_until ? Date.parse(h.safe_until) : null,
    state: h.state,
  };
}

function showProof(tries) {
  const el = $('proof');
  el.hidden = tries === null;
  if (tries !== null) {
    el.textContent = `The shop is busy: your browser is solving a small puzzle to prove it is not a bot… ${tries.toLocaleString()} tries`;
  }
}

/* The sku's counts right after this shopper changed them (the event
 * stream brings them too, within a tenth of a second). */
async function refreshSku(sku) {
  try {
    onSku(await api.call('GET', `/v1/skus/${sku}`));
  } catch {
    /* the stream will tell */
  }
}

/* The header that says a call about this hold comes from its owner. */
function owner(line) {
  return line.secret ? { 'Hold-Secret': line.secret } : {};
}

async function release(line) {
  try {
    await api.call('DELETE', `/v1/holds/${line.holdId}`, undefined, owner(line));
  } catch {
    /* already gone: nothing held */
  }
}

/* Holds qty of sku; an existing line is replaced (released once the new
 * hold stands, or first if the limits count both). */
async function addToCart(sku, qty) {
  const old = cart.get(sku);
  const body = { customer, fingerprint, lines: [{ sku, qty: (old?.state === 'active' ? old.qty : 0) + qty }] };
  if (old?.state === 'active') {
    await release(old);
    cart.delete(sku);
  }
  try {
    const h = await api.hold(body, showProof);
    cart.set(sku, lineFromHold(h));
    notice(`${products.get(sku)?.name ?? sku} is held for you.`);
  } catch (err) {
    notice(explain(err), 'error');
    if (err.detail?.buy_now) offerBuyNow(sku, body.lines[0].qty, err.detail.rule);
    if (old?.state === 'active') {
      try {
        const h = await api.hold({ ...body, lines: [{ sku, qty: old.qty }] }, showProof);
        cart.set(sku, lineFromHold(h)); /* kept what was there before */
      } catch {
        /* the units went meanwhile */
      }
    }
  }
  renderCart();
  refreshSku(sku);
}

/* The shop keeps some stock out of carts: it sells only by paying at once
 * (POST /v1/holds with "commit": true, after the payment form). */
function offerBuyNow(sku, qty, rule) {
  buyNow = { sku, qty };
  const why = rule === 'hold_share' ? 'Carts are full' : 'It cannot be held right now';
  $('buy-now-text').textContent = `${why}, but ${qty} × ${products.get(sku)?.name ?? sku} can be bought outright.`;
  $('buy-now').setAttribute('aria-label', `Buy ${products.get(sku)?.name ?? sku} now`);
  $('buy-now-offer').hidden = false;
}

async function payBuyNow(order) {
  const { sku, qty } = buyNow;
  buyNow = null;
  $('buy-now-offer').hidden = true;
  $('pay-title').textContent = 'Payment (a demo: no money moves)';
  try {
    await api.hold({ customer, fingerprint, lines: [{ sku, qty }], commit: true, order_ref: order }, showProof);
    return [`${qty} × ${products.get(sku)?.name ?? sku}`, null];
  } catch (err) {
    return [null, `${products.get(sku)?.name ?? sku}: ${explain(err)}`];
  }
}

async function joinWaitlist(sku) {
  const qty = Number(document.querySelector(`#p-${CSS.escape(sku)} .qty`).value);
  try {
    const w = await api.write('POST', `/v1/skus/${sku}/waitlist`, { customer, fingerprint, qty });
    waits.set(sku, { id: w.id, secret: w.secret, qty, state: w.state, position: w.position });
    notice(`You are on the waitlist for ${products.get(sku)?.name ?? sku}: we will tell you here.`);
  } catch (err) {
    if (err.code === 'units_available') return addToCart(sku, qty);
    notice(explain(err), 'error');
  }
  renderWaits();
  renderProduct(products.get(sku));
}

async function onBuy(sku) {
  const p = products.get(sku);
  if (p.counts.available === 0) return joinWaitlist(sku);
  const qty = Number(document.querySelector(`#p-${CSS.escape(sku)} .qty`).value);
  return addToCart(sku, qty);
}

async function removeLine(sku) {
  const line = cart.get(sku);
  cart.delete(sku);
  renderCart();
  if (line?.state === 'active') await release(line);
  refreshSku(sku);
}

async function emptyCart() {
  const lines = [...cart.values()];
  cart.clear();
  renderCart();
  await Promise.all(lines.filter((l) => l.state === 'active').map((l) => release(l)));
  notice('Your cart is empty; the items went back on sale.');
}

/* A countdown that reached zero: ask the server what became of the hold. */
async function checkExpired() {
  for (const [sku, line] of cart) {
    if (line.state !== 'active' || remaining(line) > 0 || line.checking) continue;
    line.checking = true;
    try {
      const h = await api.call('GET', `/v1/holds/${line.holdId}`, undefined, owner(line));
      if (h.state === 'active') {
        line.expiresAt = Date.now() + h.expires_in_ms; /* our clock ran ahead */
      } else {
        line.state = h.state;
        if (h.state === 'expired') notice(''); /* the cart says it (renderTimeout); "held" is stale */
      }
    } catch {
      line.state = 'expired';
    }
    line.checking = false;
    renderCart();
  }
}

/* -------------------------------------------------------------- checkout */

async function pay(event) {
  event.preventDefault();
  const order = `order-${Date.now().toString(36)}`;
  const bought = [];
  const failed = [];
  if (buyNow?.paying) {
    const [ok, bad] = await payBuyNow(order);
    if (ok) bought.push(ok);
    if (bad) failed.push(bad);
  }
  for (const [sku, line] of cart) {
    if (line.state !== 'active') continue;
    try {
      await api.write('POST', `/v1/holds/${line.holdId}/commit`, { order_ref: order }, owner(line));
      bought.push(`${line.qty} × ${products.get(sku)?.name ?? sku}`);
      cart.delete(sku);
      refreshSku(sku);
    } catch (err) {
      line.state = err.code === 'hold_expired' ? 'expired' : line.state;
      failed.push(`${products.get(sku)?.name ?? sku}: ${explain(err)}`);
    }
  }
  $('pay').hidden = true;
  renderCart();
  const thanks = bought.length ? `Thank you! Order ${order}: ${bought.join(', ')}.` : '';
  notice([thanks, ...failed].join(' '), failed.length ? 'error' : 'ok');
}

/* ------------------------------------------------------------- waitlists */

async function checkWaits() {
  for (const [sku, w] of waits) {
    if (w.state !== 'waiting') continue;
    try {
      const e = await api.call('GET', `/v1/waitlist/${w.id}`, undefined, w.secret ? { 'Waitlist-Secret': w.secret } : {});
      w.state = e.state;
      w.position = e.position ?? w.position;
      if (e.state === 'offered' && e.hold) {
        cart.set(sku, lineFromHold(e.hold));
        notice(`Good news: ${products.get(sku)?.name ?? sku} is held for you now. Pay before the timer runs out.`, 'ok');
        renderCart();
      }
    } catch {
      /* try again on the next change */
    }
  }
  renderWaits();
  for (const sku of waits.keys()) renderProduct(products.get(sku));
}

/* ------------------------------------------------------------------ start */

function onSku(obj) {
  const p = products.get(obj.sku);
  if (!p) return;
  p.counts = obj;
  renderProduct(p);
  if (waits.has(obj.sku)) checkWaits();
}

function askForKey() {
  $('key-form').hidden = false;
  $('live').textContent = 'The server needs an API key.';
}

async function loadCatalog() {
  try {
    names = await (await fetch('/shop/catalog.json')).json();
  } catch {
    names = {};
  }
  const page = await api.call('GET', '/v1/skus?limit=100');
  for (const s of page.skus) {
    const known = names[s.sku] ?? {};
    const p = { sku: s.sku, name: known.name ?? s.sku, price_cents: known.price_cents, counts: s };
    products.set(s.sku, p);
    renderProduct(p);
  }
  if (page.skus.length === 0) $('live').textContent = 'The shop has nothing for sale yet.';
}

async function start() {
  $('checkout').addEventListener('click', () => {
    $('pay').hidden = false;
    $('card-name').focus();
  });
  $('pay-cancel').addEventListener('click', () => {
    $('pay').hidden = true;
    if (buyNow) buyNow.paying = false;
  });
  $('buy-now').addEventListener('click', () => {
    buyNow.paying = true;
    $('pay-title').textContent = 'Buy now: payment (a demo: no money moves)';
    $('pay').hidden = false;
    $('card-name').focus();
  });
  $('pay').addEventListener('submit', pay);
  $('empty').addEventListener('click', emptyCart);
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    storeKey($('key-input').value);
    location.reload();
  });
  /* Leaving the page lets go of what the cart holds. */
  addEventListener('pagehide', () => {
    for (const line of cart.values()) {
      if (line.state === 'active') {
        fetch(`/v1/holds/${line.holdId}`, { method: 'DELETE', headers: api.headers(owner(line)), keepalive: true });
      }
    }
  });
  $('cart-bar-open').addEventListener('click', () => {
    $('cart-section').scrollIntoView({ block: 'start' });
    $('cart-title').focus({ preventScroll: true });
  });
  new IntersectionObserver(([entry]) => {
    cartInView = entry.isIntersecting;
    renderBar();
  }).observe($('cart-section'));
  setInterval(() => {
    renderClock();
    checkExpired();
  }, 250);
  setInterval(checkWaits, 5000);
  try {
    await loadCatalog();
  } catch (err) {
    if (err.status === 401 || err.status === 403) return askForKey();
    $('live').textContent = explain(err);
    return;
  }
  const live = new AbortController();
  api.follow([...products.keys()].slice(0, 64), onSku, (state) => {
    $('live').textContent =
      state === 'open' ? 'Live: counts update as people shop.' : state === 'unauthorized' ? 'The server needs an API key.' : 'Reconnecting…';
    $('live').dataset.state = state;
  }, live.signal);
  renderCart();
}

start();
