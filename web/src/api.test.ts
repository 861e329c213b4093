import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, get, maxRetryTotal, retryWait, timing } from './api';

// The page's globals get touches: the key status in the header (absent
// here) and fetch, which each test answers from a script.
const realFetch = globalThis.fetch;
const realWait = timing.wait;
let waits: number[] = [];
let asked: string[] = [];

function script(...answers: Array<{ status: number; retryAfter?: string; body: unknown }>): void {
  globalThis.fetch = (async (path: string) => {
    asked.push(path);
    const a = answers.shift();
    assert.ok(a, `an unscripted request for ${path}`);
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (a.retryAfter !== undefined) headers['Retry-After'] = a.retryAfter;
    return new Response(JSON.stringify(a.body), { status: a.status, headers });
  }) as typeof fetch;
}

const limited = (retryAfter?: string) => ({
  status: 429, retryAfter, body: { success: false, error: { code: 'RATE_LIMIT_EXCEEDED', message: 'over the rate limit of 100/min on GET /v1/pipeline' } },
});
const ok = { status: 200, body: { success: true, data: [1, 2], meta: { request_id: 'r', timestamp: '2026-01-01T00:00:00.000000Z' } } };

beforeEach(() => {
  (globalThis as { document?: unknown }).document = { getElementById: () => null };
  waits = [];
  asked = [];
  timing.wait = async (ms: number) => { waits.push(ms); };
});

afterEach(() => {
  globalThis.fetch = realFetch;
  timing.wait = realWait;
});

test('a 429 waits as Retry-After says, then the same request answers', async () => {
  script(limited('2'), limited(), ok);
  const { data } = await get<number[]>('/v1/pipeline');
  assert.deepEqual(data, [1, 2]);
  // 2 s as asked, then a second by default when the header is missing.
  assert.deepEqual(waits, [2000, 1000]);
  assert.deepEqual(asked, ['/v1/pipeline', '/v1/pipeline', '/v1/pipeline']);
});

test('a limit that does not let up fails with its error once the waits are spent', async () => {
  script(limited('3600'), limited('3600'), limited('3600'));
  await assert.rejects(get('/v1/pipeline'), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'RATE_LIMIT_EXCEEDED');
    assert.match(e.message, /rate limit/);
    return true;
  });
  // An hour asked for: each wait bounded, and no more of them than the total allows.
  assert.deepEqual(waits, [30000, 30000]);
  assert.equal(waits.reduce((a, b) => a + b, 0), maxRetryTotal);
});

test('Retry-After in seconds or as a date, bounded', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  assert.equal(retryWait('5', now), 5000);
  assert.equal(retryWait('0', now), 250); // no busy loop
  assert.equal(retryWait('86400', now), 30000);
  assert.equal(retryWait('Sun, 01 Mar 2026 12:00:07 GMT', now), 7000);
  assert.equal(retryWait('Sun, 01 Mar 2026 11:00:00 GMT', now), 250);
  assert.equal(retryWait(null, now), 1000);
  assert.equal(retryWait('soon', now), 1000);
  assert.equal(retryWait('-3', now), 1000);
});

test('the wait ends when the request is aborted', async () => {
  const abort = new AbortController();
  const started = Date.now();
  const waiting = realWait(30000, abort.signal);
  setTimeout(() => abort.abort(new Error('view changed')), 10);
  await assert.rejects(waiting, /view changed/);
  assert.ok(Date.now() - started < 5000);
});
