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

// get answers a /v1 path's data and meta. A 401 or 403 opens the key
// dialog and retries with the key given; cancelling it fails the request.
export async function get<T>(path: string, signal?: AbortSignal): Promise<Answer<T>> {
  for (;;) {
    const res = await fetch(path, { headers: headers({ Accept: 'application/json' }), signal });
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
