import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, cmp, sub } from './decimal';

test('spread is the exact difference', () => {
  assert.equal(sub('35.84', '35.65'), '0.19');
  assert.equal(sub('0.3', '0.1'), '0.2'); // 0.3 - 0.1 in floats is 0.19999999999999998
  assert.equal(sub('64547.04', '64548.08'), '-1.04');
  assert.equal(sub('1', '0.00000001'), '0.99999999');
});

test('volumes add exactly and compare', () => {
  assert.equal(add('2132133', '0.00592'), '2132133.00592');
  assert.equal(cmp('36.83', '36.825'), 1);
  assert.equal(cmp('36.6', '36.60'), 0);
  assert.equal(cmp('-1', '0'), -1);
});
