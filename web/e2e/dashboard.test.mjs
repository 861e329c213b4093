// The dashboard in a real browser (the system's Chromium, driven by
// Playwright) against a running k2 up: web/dashboard_test.go starts it with
// BHP loaded in two commits and the synthetic feed at 1,000 trades/s on
// BTCUSD, and runs this file with node --test.
//
// K2_URL          the listener, e.g. http://127.0.0.1:8123
// K2_KEYED_URL    a k2 api over the same lake that asks for a key, K2_KEY
// K2_ARTIFACTS    where the screenshots go
// K2_TEST_CHROMIUM  the browser (default /usr/bin/chromium)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.K2_URL;
const keyedBase = process.env.K2_KEYED_URL;
const key = process.env.K2_KEY;
const artifacts = process.env.K2_ARTIFACTS;
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// The BHP trading day (2014-03-11, Sydney) the chart is checked on, in 5m bars.
const day = { interval: '5m', start: '2014-03-10T22:00', end: '2014-03-11T07:00' };

let browser, context, page;
const consoleErrors = [];
const foreign = [];

async function api(path) {
  const res = await fetch(base + path);
  const body = JSON.parse((await res.text()).replace(/("snapshot_id"\s*:\s*)(\d{16,})/g, '$1"$2"'));
  assert.ok(body.success, `${path}: ${JSON.stringify(body.error)}`);
  return body;
}

const loads = () => page.evaluate(() => window.k2dash.loads());
async function waitLoad(after) {
  await page.waitForFunction((n) => window.k2dash.loads() > n && document.getElementById('market-status').textContent === '', after, { timeout: 20000 });
}

async function shot(name, opts = {}) {
  await page.screenshot({ path: join(artifacts, `dashboard-${name}.png`), ...opts });
}

before(async () => {
  assert.ok(base && artifacts && keyedBase && key, 'K2_URL, K2_KEYED_URL, K2_KEY and K2_ARTIFACTS are needed');
  browser = await chromium.launch({ executablePath: process.env.K2_TEST_CHROMIUM || '/usr/bin/chromium' });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Nothing the page asks for may leave the host that served it.
  page.on('request', (r) => { if (new URL(r.url()).origin !== new URL(base).origin) foreign.push(r.url()); });
});

after(async () => {
  await browser?.close();
});

test('the page paints within a second', async () => {
  await page.goto(base + '/');
  await page.waitForFunction(() => window.k2dash && window.k2dash.loads() > 0, null, { timeout: 20000 });
  const paint = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime);
  assert.ok(paint !== undefined, 'no first-contentful-paint entry');
  assert.ok(paint < 1000, `first contentful paint after ${paint.toFixed(0)} ms`);
  console.log(`first contentful paint: ${paint.toFixed(0)} ms`);
});

test('the keyboard reaches the picker and the interval buttons, and picks with them', async () => {
  const focused = [];
  await page.locator('body').focus();
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    focused.push(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent.trim()));
    if (focused.at(-1) === 'symbol') break;
  }
  assert.equal(focused.at(-1), 'symbol', `tab order: ${focused.join(', ')}`);
  let n = await loads();
  await page.keyboard.type('BH');
  await page.waitForSelector('#symbol-list li[role=option]');
  assert.equal(await page.getAttribute('#symbol', 'aria-expanded'), 'true');
  const options = await page.locator('#symbol-list li[role=option]').allTextContents();
  assert.ok(options.some((o) => o.startsWith('BHP') && o.includes('ASX') && o.includes('equities')), `options: ${options}`);
  await page.keyboard.press('Enter');
  await waitLoad(n);
  assert.equal((await page.evaluate(() => window.k2dash.state())).symbol, 'BHP');
  // On to the interval buttons.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.value), '1m');
  await page.keyboard.press('Tab'); // 5m
  n = await loads();
  await page.keyboard.press('Enter');
  await waitLoad(n);
  assert.equal(await page.getAttribute('#intervals button[value="5m"]', 'aria-pressed'), 'true');
  assert.equal((await page.evaluate(() => window.k2dash.state())).interval, '5m');
});

test('the chart draws the BHP day as /v1/bars gives it', async () => {
  const n = await loads();
  await page.fill('#range-start', day.start);
  await page.fill('#range-end', day.end);
  await page.click('#range button[type=submit]');
  await waitLoad(n);
  const want = (await api(`/v1/bars/5m?symbol=BHP&exchange=ASX&start_time=${day.start}:00Z&end_time=${day.end}:00Z&limit=1000`)).data;
  assert.ok(want.length > 50, `${want.length} bars`);
  const got = await page.evaluate(() => window.k2dash.candles());
  const pick = (b) => [b.window_start, b.open, b.high, b.low, b.close, b.volume, b.trade_count];
  assert.deepEqual(got.map(pick), want.map(pick));
  // What the chart holds to draw: the same bars.
  const drawn = await page.evaluate(() => window.k2dash.drawn());
  assert.deepEqual(drawn, want.map((b) => ({ time: Date.parse(b.window_start) / 1000, open: +b.open, high: +b.high, low: +b.low, close: +b.close })));
  // In Sydney's time, the ASX's: the hint says so.
  assert.match(await page.locator('[data-zone=long]').textContent(), /^Australia\/Sydney/);
  // And it drew them: the candles' canvas holds the up and down colours.
  const colours = await page.evaluate(() => {
    const seen = new Set();
    for (const c of document.querySelectorAll('#chart canvas')) {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 16) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return seen.size;
  });
  assert.ok(colours > 20, `the chart's canvases hold ${colours} colours`);
  await shot('market-1280');
});

test('an older snapshot changes what the chart shows, and says which it is', async () => {
  const snaps = (await api('/v1/snapshots?table=trades&limit=100')).data;
  const oldest = snaps.at(-1).snapshot_id;
  const live = await page.evaluate(() => window.k2dash.candles());
  await page.focus('#snapshot'); // lists the snapshots
  await page.waitForSelector(`#snapshot option[value="${oldest}"]`, { state: 'attached' });
  const n = await loads();
  await page.selectOption('#snapshot', oldest);
  await waitLoad(n);
  assert.equal(await page.evaluate(() => window.k2dash.snapshot()), oldest);
  assert.match(await page.textContent('#travel-banner'), new RegExp(`snapshot ${oldest}`));
  const then = await page.evaluate(() => window.k2dash.candles());
  const want = (await api(`/v1/bars/5m?symbol=BHP&exchange=ASX&start_time=${day.start}:00Z&end_time=${day.end}:00Z&limit=1000&as_of_snapshot=${oldest}`)).data;
  assert.deepEqual(then.map((b) => [b.window_start, b.close, b.volume]), want.map((b) => [b.window_start, b.close, b.volume]));
  assert.notDeepEqual(then.map((b) => [b.window_start, b.volume]), live.map((b) => [b.window_start, b.volume]), 'the older snapshot shows the same bars');
  await shot('time-travel-1280');
  const m = await loads();
  await page.click('#travel-banner button');
  await waitLoad(m);
  assert.ok(await page.isHidden('#travel-banner'));
  assert.deepEqual(await page.evaluate(() => window.k2dash.candles().length), live.length);
});

test('the tape moves with the synthetic feed, a frame at a time, the DOM bounded', async () => {
  await page.goto(base + '/?symbol=BTCUSD&exchange=SYNTH&interval=1m');
  await page.waitForFunction(() => window.k2dash.loads() > 0 && window.k2dash.tapeCount() > 0, null, { timeout: 20000 });
  // Settled: the first bars and quotes read and drawn.
  await page.waitForTimeout(2000);
  const startBar = await page.evaluate(() => window.k2dash.candles().at(-1));
  const c0 = await page.evaluate(() => window.k2dash.tapeCount());
  // Frame intervals over 5 s while the trades arrive.
  const frames = await page.evaluate(() => new Promise((resolve) => {
    const gaps = [];
    let last = performance.now();
    const end = last + 5000;
    const tick = (t) => {
      gaps.push(t - last);
      last = t;
      if (t < end) requestAnimationFrame(tick); else resolve(gaps);
    };
    requestAnimationFrame(tick);
  }));
  const c1 = await page.evaluate(() => window.k2dash.tapeCount());
  const rate = (c1 - c0) / 5;
  assert.ok(rate > 500, `the tape took ${rate} trades/s, want the feed's 1,000`);
  const sorted = frames.slice(1).sort((a, b) => a - b);
  const p95 = sorted[Math.floor(sorted.length * 0.95)];
  assert.ok(p95 < 50, `frame interval p95 ${p95.toFixed(1)} ms over ${sorted.length} frames`);
  const rows = await page.evaluate(() => window.k2dash.tapeRows());
  assert.ok(rows > 0 && rows <= 200, `${rows} rows in the tape`);
  assert.equal(await page.locator('#tape tbody tr').count(), rows);
  // The last bar follows the tape.
  const endBar = await page.evaluate(() => window.k2dash.candles().at(-1));
  assert.ok(endBar.window_start > startBar.window_start || endBar.trade_count > startBar.trade_count,
    `the last bar did not move: ${JSON.stringify(startBar)} then ${JSON.stringify(endBar)}`);
  const q = await page.evaluate(() => window.k2dash.quote());
  assert.ok(q && q.bid && q.ask && q.spread, `quote ${JSON.stringify(q)}`);
  console.log(`tape: ${rate} trades/s, frame p95 ${p95.toFixed(1)} ms, ${rows} rows`);
});

test('the pipeline view shows data flowing', async () => {
  await page.click('#views button[value=pipeline]');
  await page.waitForFunction(() => {
    const p = window.k2dash.pipeline();
    return p && p.rates.produced_per_s > 0 && p.rates.stored_per_s > 0;
  }, null, { timeout: 30000 });
  // A poll or two drawn into the small multiples.
  await page.waitForFunction(() => document.querySelectorAll('#pipeline-charts canvas').length >= 8, null, { timeout: 10000 });
  await page.waitForTimeout(2500);
  await shot('pipeline-1280', { fullPage: true });
  await page.click('#views button[value=market]');
});

test('no serious accessibility violation, light and dark, both views', async () => {
  await page.evaluate(axeSource);
  const views = ['market', 'pipeline'];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const v of views) {
      await page.click(`#views button[value=${v}]`);
      await page.waitForTimeout(300);
      const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
      const bad = res.violations.filter((x) => x.impact === 'serious' || x.impact === 'critical');
      assert.deepEqual(bad.map((x) => `${x.id}: ${x.help} (${x.nodes.map((n) => n.target.join(' ')).join('; ')})`), [], `${v}, ${scheme}`);
    }
  }
  await page.click('#views button[value=market]');
});

test('light and dark both render, and the toggle switches', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(base + `/?symbol=BHP&exchange=ASX&interval=5m&start=${day.start}:00Z&end=${day.end}:00Z`);
  await page.waitForFunction(() => window.k2dash.loads() > 0);
  const bg = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor + '|' + document.documentElement.dataset.theme);
  const dark = await bg();
  assert.match(dark, /\|dark$/);
  await page.waitForTimeout(500);
  await shot('market-dark-1280');
  await page.click('#theme');
  const light = await bg();
  assert.match(light, /\|light$/);
  assert.notEqual(dark.split('|')[0], light.split('|')[0]);
  // The chart follows, at its next frame: its background is the light
  // panel colour.
  const corner = () => page.evaluate(() => {
    const c = document.querySelector('#chart canvas');
    return Array.from(c.getContext('2d').getImageData(2, 2, 1, 1).data.slice(0, 3));
  });
  await page.waitForFunction(() => {
    const c = document.querySelector('#chart canvas');
    return Array.from(c.getContext('2d').getImageData(2, 2, 1, 1).data.slice(0, 3)).every((v) => v > 200);
  }, null, { timeout: 3000 }).catch(() => {});
  const rgb = await corner();
  assert.ok(rgb.every((v) => v > 200), `chart corner ${rgb} is not light`);
  await page.evaluate(() => localStorage.clear());
});

test('at phone width the views stack and still work', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, colorScheme: 'light', isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await p.goto(base + `/?symbol=BHP&exchange=ASX&interval=5m&start=${day.start}:00Z&end=${day.end}:00Z`);
  await p.waitForFunction(() => window.k2dash.loads() > 0 && window.k2dash.candles().length > 0);
  await p.waitForTimeout(500);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await p.screenshot({ path: join(artifacts, 'dashboard-market-390.png'), fullPage: true });
  await phone.close();
});

test('no console error, and no request left the server', () => {
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(foreign, []);
});

test('a server with keys asks for one, says when it is refused, and answers with it', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const p = await ctx.newPage();
  const errors = [];
  // The browser logs each refused request (401, 403) itself; anything else is an error.
  p.on('console', (m) => { if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) errors.push(m.text()); });
  p.on('pageerror', (e) => errors.push(String(e)));
  await p.goto(keyedBase + `/?symbol=BHP&exchange=ASX&interval=5m&start=${day.start}:00Z&end=${day.end}:00Z`);
  const dialog = p.locator('#key-dialog');
  await dialog.waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await dialog.locator('.reason').textContent(), /needs an API key/);
  // A wrong key: refused, and the dialog says so.
  await p.fill('#key-input', 'not-the-key');
  await p.press('#key-input', 'Enter');
  await p.waitForFunction(() => /refused/.test(document.querySelector('#key-dialog .reason').textContent) && document.getElementById('key-dialog').open, null, { timeout: 10000 });
  // The right one: the chart draws the day, the key stays in this tab.
  await p.fill('#key-input', key);
  await p.press('#key-input', 'Enter');
  await p.waitForFunction(() => window.k2dash.candles().length > 0, null, { timeout: 20000 });
  assert.equal(await dialog.isVisible(), false);
  assert.equal(await p.evaluate(() => sessionStorage.getItem('k2.apiKey')), key);
  assert.deepEqual(errors, []);
  await ctx.close();
});
