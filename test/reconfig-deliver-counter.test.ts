/**
 * The counter the loopback self-test watches: `Ip: InDelivers` from /proc/net/snmp, read from
 * this machine's real file and from malformed text.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { ipDelivered } from '../src/reconfig/deliver.js';

test('ipDelivered reads Ip: InDelivers from the real /proc/net/snmp', (t) => {
  const snmp = readFileSync('/proc/net/snmp', 'utf8');
  const names = snmp.split('\n').find((line) => line.startsWith('Ip: '))!.split(/\s+/);
  const values = snmp.split('\n').filter((line) => line.startsWith('Ip: '))[1]!.split(/\s+/);
  t.is(ipDelivered(snmp), Number(values[names.indexOf('InDelivers')]));
  t.true(Number.isInteger(ipDelivered(snmp)));
});

test('ipDelivered is undefined for text without the Ip lines or the InDelivers column', (t) => {
  t.is(ipDelivered(''), undefined);
  t.is(ipDelivered('Udp: InDatagrams NoPorts\nUdp: 5 0\n'), undefined);
  t.is(ipDelivered('Ip: Forwarding DefaultTTL\nIp: 1 64\n'), undefined);
  t.is(ipDelivered('Ip: InDelivers\nIp: many\n'), undefined);
  t.is(ipDelivered('Ip: Forwarding InDelivers\nIp: 2 17\n'), 17);
});
