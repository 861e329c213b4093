import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clock, fromLocalInput, localInput, stamp, tick } from './zone';

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

test('a range field reads and shows the exchange\'s wall time', () => {
  assert.equal(localInput('2014-03-10T23:05:00Z', 'Australia/Sydney'), '2014-03-11T10:05');
  assert.equal(localInput('2014-03-10T23:05:00Z', 'UTC'), '2014-03-10T23:05');
  assert.equal(fromLocalInput('2014-03-11T10:05', 'Australia/Sydney'), '2014-03-10T23:05:00Z');
  assert.equal(fromLocalInput('2014-03-10T23:05', 'UTC'), '2014-03-10T23:05:00Z');
  // In June Sydney is UTC+10.
  assert.equal(fromLocalInput('2014-06-10T10:00', 'Australia/Sydney'), '2014-06-10T00:00:00Z');
  // 02:30 came twice on 6 April 2014: the earlier, as the server reads it.
  assert.equal(fromLocalInput('2014-04-06T02:30', 'Australia/Sydney'), '2014-04-05T15:30:00Z');
  // The clocks went from 02:00 to 03:00 on 5 October 2014: 02:30 is no time.
  assert.equal(fromLocalInput('2014-10-05T02:30', 'Australia/Sydney'), null);
  assert.equal(fromLocalInput('2014-10-05T03:00', 'Australia/Sydney'), '2014-10-04T16:00:00Z');
  assert.equal(fromLocalInput('', 'UTC'), null);
  // Round trip.
  for (const v of ['2014-03-11T09:59', '2014-04-06T01:59', '2014-04-06T03:00', '2014-12-31T23:59']) {
    assert.equal(localInput(fromLocalInput(v, 'Australia/Sydney')!, 'Australia/Sydney'), v);
  }
});
