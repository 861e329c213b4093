import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clock, stamp, tick } from './zone';

// 2014-03-10T23:05:07.250Z: 10:05 on 11 March in Sydney (daylight time, UTC+11).
const t = Date.UTC(2014, 2, 10, 23, 5, 7, 250) / 1000;

test('an ASX instant reads in Sydney time, a crypto one in UTC', () => {
  assert.equal(stamp(t, 'Australia/Sydney'), '2014-03-11 10:05');
  assert.equal(stamp(t, 'UTC'), '2014-03-10 23:05');
  assert.equal(clock(t, 'Australia/Sydney'), '10:05:07.250');
  assert.equal(clock(t, 'UTC'), '23:05:07.250');
});

test('the time axis labels its marks in the zone: the day changes at local midnight', () => {
  assert.equal(tick(t, 2, 'Australia/Sydney'), '11');
  assert.equal(tick(t, 2, 'UTC'), '10');
  assert.equal(tick(t, 3, 'Australia/Sydney'), '10:05');
  assert.equal(tick(t, 4, 'Australia/Sydney'), '10:05:07');
  assert.equal(tick(t, 1, 'UTC'), 'Mar');
  assert.equal(tick(t, 0, 'UTC'), '2014');
  // After the end of daylight time (6 April 2014), Sydney is UTC+10.
  assert.equal(tick(Date.UTC(2014, 3, 10, 0, 0) / 1000, 3, 'Australia/Sydney'), '10:00');
});
