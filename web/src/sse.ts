// Server-sent events over fetch: EventSource cannot send the API key's
// header. The parser follows the HTML standard's event-stream rules (id,
// event, data, retry; a blank line dispatches) and the stream reconnects
// with Last-Event-ID, so the server resumes exactly after the last event.
import { askKey } from './auth';
import { headers } from './api';

export interface SSEvent {
  type: string;
  data: string;
  id: string;
}

// SSEParser turns chunks of an event stream into events; lastId persists
// across events (and reconnections) as the standard says.
export class SSEParser {
  lastId = '';
  retry: number | null = null;
  private buf = '';
  private type = '';
  private data: string[] = [];

  push(chunk: string, emit: (e: SSEvent) => void): void {
    this.buf += chunk;
    for (;;) {
      const nl = this.buf.search(/\r\n|\r|\n/);
      if (nl < 0) return;
      // A lone \r at the end of a chunk may be half of \r\n: wait for more.
      if (this.buf[nl] === '\r' && nl === this.buf.length - 1) return;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + (this.buf.startsWith('\r\n', nl) ? 2 : 1));
      this.line(line, emit);
    }
  }

  private line(line: string, emit: (e: SSEvent) => void): void {
    if (line === '') {
      if (this.data.length) emit({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastId });
      this.type = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event': this.type = value; break;
      case 'data': this.data.push(value); break;
      case 'id': if (!value.includes('\0')) this.lastId = value; break;
      case 'retry': if (/^\d+$/.test(value)) this.retry = Number(value); break;
    }
  }
}

export interface StreamOptions {
  onEvent(e: SSEvent): void;
  onState?(state: 'open' | 'reconnecting' | 'refused'): void;
  signal: AbortSignal;
}

// stream reads path until the signal aborts, reconnecting after the
// server's retry delay (2 s unless it says otherwise) when the stream ends
// or fails, resuming from the last id.
export async function stream(path: string, opts: StreamOptions): Promise<void> {
  const parser = new SSEParser();
  const decoder = new TextDecoder();
  while (!opts.signal.aborted) {
    try {
      const h = headers({ Accept: 'text/event-stream' });
      if (parser.lastId) h['Last-Event-ID'] = parser.lastId;
      const res = await fetch(path, { headers: h, signal: opts.signal, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        opts.onState?.('refused');
        if (!(await askKey(res.status))) return;
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`${path}: ${res.status}`);
      opts.onState?.('open');
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }), opts.onEvent);
      }
    } catch {
      if (opts.signal.aborted) return;
    }
    opts.onState?.('reconnecting');
    await sleep(parser.retry ?? 2000, opts.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
