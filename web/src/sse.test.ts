import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, type SSEvent } from './sse';

const parse = (chunks: string[], p = new SSEParser()): SSEvent[] => {
  const out: SSEvent[] = [];
  for (const c of chunks) p.push(c, (e) => out.push(e));
  return out;
};

test('events as K2 sends them, split anywhere', () => {
  const text = 'retry: 2000\n: trades of [BTCUSD]\n\nid: abc\nevent: trade\ndata: {"price":"1.5"}\n\nid: abd\nevent: trade\ndata: {"price":"1.6"}\n\n';
  for (let cut = 0; cut < text.length; cut++) {
    const p = new SSEParser();
    assert.deepEqual(parse([text.slice(0, cut), text.slice(cut)], p), [
      { type: 'trade', data: '{"price":"1.5"}', id: 'abc' },
      { type: 'trade', data: '{"price":"1.6"}', id: 'abd' },
    ], `cut at ${cut}`);
    assert.equal(p.lastId, 'abd');
    assert.equal(p.retry, 2000);
  }
});

test('CRLF and CR lines, multi-line data, the id kept across events', () => {
  const p = new SSEParser();
  assert.deepEqual(parse(['id: 7\r\ndata: a\r\ndata: b\r\n\r', '\ndata:c\r\r\n'], p), [
    { type: 'message', data: 'a\nb', id: '7' },
    { type: 'message', data: 'c', id: '7' },
  ]);
});

test('an event without data is not dispatched, but its id stands', () => {
  const p = new SSEParser();
  assert.deepEqual(parse(['id: 9\nevent: end\n\n'], p), []);
  assert.equal(p.lastId, '9');
});
