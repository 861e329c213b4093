// The API client: K2's envelope ({success, data, meta} or {success, error}),
// the key sent as X-API-Key, a refused key asked for again.
import { apiKey, askKey } from './auth';

export interface Meta {
  request_id: string;
  timestamp: string;
  snapshot_id?: number | string;
  count?: number;
  incomplete?: boolean;
}

export interface Answer<T> {
  data: T;
  meta: Meta;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  return key ? { ...extra, 'X-API-Key': key } : extra;
}

// Snapshot ids are 64-bit: JSON.parse would round them, so they are read
// as strings before parsing.
const bigId = /("(?:snapshot_id|parent_id)"\s*:\s*)(-?\d{16,})/g;

export function parseJSON(text: string): unknown {
  return JSON.parse(text.replace(bigId, '$1"$2"'));
}

// A 429 (over the caller's rate limit) is retried after its Retry-After,
// each wait at most maxRetryWait and all of them at most maxRetryTotal:
// the page's polls outrun a tight limit for a moment, which is no error
// to show, but a limit that never lets up is.
export const maxRetryWait = 30_000;
export const maxRetryTotal = 60_000;
const defaultRetryWait = 1000; // no Retry-After, or one unreadable
const minRetryWait = 250; // a Retry-After of 0 (under a second, rounded) is no busy loop

// retryWait is how long a 429 asks to wait, in ms: Retry-After in seconds
// or as an HTTP date, bounded.
export function retryWait(retryAfter: string | null, now = Date.now()): number {
  let ms = defaultRetryWait;
  const v = retryAfter?.trim() ?? '';
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else if (/[a-z]/i.test(v) && !Number.isNaN(Date.parse(v))) ms = Date.parse(v) - now; // an HTTP date
  return Math.min(maxRetryWait, Math.max(minRetryWait, ms));
}

// wait is how get sleeps before a retry (tests replace it); it ends early,
// rejecting, when the request is aborted.
export const timing = {
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => { signal?.removeEventListener('abort', stop); resolve(); }, ms);
      const stop = () => { clearTimeout(t); reject(signal!.reason); };
      signal?.addEventListener('abort', stop, { once: true });
    });
  },
};

// get answers a /v1 path's data and meta. A 401 or 403 opens the key
// dialog and retries with the key given; cancelling it fails the request.
// A 429 waits as the server asks and tries again.
export async function get<T>(path: string, signal?: AbortSignal): Promise<Answer<T>> {
  let waited = 0;
  for (;;) {
    const res = await fetch(path, { headers: headers({ Accept: 'application/json' }), signal });
    if (res.status === 429) {
      const ms = retryWait(res.headers.get('Retry-After'));
      if (waited + ms <= maxRetryTotal) {
        await res.body?.cancel();
        waited += ms;
        await timing.wait(ms, signal);
        continue;
      }
    }
    const body = parseJSON(await res.text()) as {
      success: boolean; data: T; meta: Meta; error?: { code: string; message: string };
    };
    if (res.status === 401 || res.status === 403) {
      keyRefused(res.status);
      if (await askKey(res.status)) continue;
      throw new ApiError(res.status, body.error?.code ?? 'UNAUTHORIZED', 'no API key accepted');
    }
    if (!res.ok || !body.success) {
      throw new ApiError(res.status, body.error?.code ?? 'HTTP_' + res.status, body.error?.message ?? res.statusText);
    }
    keyAccepted();
    return { data: body.data, meta: body.meta };
  }
}

// The header's key status says whether the server took the key.
function keyRefused(status: number): void {
  const el = document.getElementById('key-status');
  if (el) el.textContent = status === 401 ? 'API key needed' : 'API key refused';
}

function keyAccepted(): void {
  const el = document.getElementById('key-status');
  if (el && el.textContent) el.textContent = '';
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  return q.toString();
}
