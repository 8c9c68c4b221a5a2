/**
 * Conntrack destroy events: messages built here with the kernel's layout (nlmsghdr, nfgenmsg,
 * then the original and reply tuples, status and id as ctnetlink_conntrack_event puts them),
 * parsed back; cut, garbled and random ones are counted, never thrown. The kernel's own events
 * are in e2e-expiry.test.ts.
 */
import test from 'ava';
import fc from 'fast-check';
import { AF_INET, IPCTNL_MSG_CT_NEW } from '../src/net/conntrack.js';
import { conntrackEventsSetting, dispatchDestroyEvents, parseDestroyEvents, type ConntrackFlow } from '../src/net/conntrack-events.js';
import { event, LE, u16 } from './helpers/conntrack-events.js';

const PORT = 51820;

const fromPeer: ConntrackFlow = { family: 4, src: '198.51.100.7', srcPort: 40001, dst: '192.0.2.1', dstPort: PORT };
const fromR2: ConntrackFlow = { family: 4, src: '192.0.2.1', srcPort: PORT, dst: '198.51.100.7', dstPort: 40001 };
const fromPeerV6: ConntrackFlow = { family: 6, src: '2001:db8:1::7', srcPort: 40001, dst: '2001:db8::1', dstPort: PORT };

test('a destroyed UDP flow of the port is read back in either direction, IPv4 and IPv6', (t) => {
  for (const flow of [fromPeer, fromR2, fromPeerV6]) {
    t.deepEqual(parseDestroyEvents(event(flow), PORT), { destroyed: [flow], malformed: 0 });
  }
});

test('other ports, other protocols, other message types and families are skipped without a word', (t) => {
  const none = { destroyed: [], malformed: 0 };
  t.deepEqual(parseDestroyEvents(event(fromPeer), 51821), none);
  t.deepEqual(parseDestroyEvents(event(fromPeer, { protocol: 6 }), PORT), none);
  t.deepEqual(parseDestroyEvents(event(fromPeer, { messageType: IPCTNL_MSG_CT_NEW }), PORT), none);
  t.deepEqual(parseDestroyEvents(event(fromPeer, { family: 7 }), PORT), none);
});

test('several messages in one datagram are all read', (t) => {
  const other: ConntrackFlow = { ...fromPeer, srcPort: 9, dstPort: 53 };
  const parsed = parseDestroyEvents(Buffer.concat([event(fromPeer), event(other), event(fromPeerV6)]), PORT);
  t.deepEqual(parsed, { destroyed: [fromPeer, fromPeerV6], malformed: 0 });
});

test('a message cut anywhere, or with a bad length, is counted as malformed and yields no flow', (t) => {
  const whole = event(fromPeer);
  for (let cut = 1; cut < whole.length; cut++) {
    const parsed = parseDestroyEvents(whole.subarray(0, cut), PORT);
    t.deepEqual(parsed.destroyed, [], `cut at ${cut}`);
    t.is(parsed.malformed, 1, `cut at ${cut}`);
  }
  // The header says the message is shorter than its attributes: the attributes do not fit.
  const short = Buffer.from(whole);
  if (LE) short.writeUInt32LE(40, 0);
  else short.writeUInt32BE(40, 0);
  t.deepEqual(parseDestroyEvents(short, PORT).destroyed, []);
  t.true(parseDestroyEvents(short, PORT).malformed >= 1);
});

test('an attribute whose length runs past its parent, or an address of the wrong size, is malformed', (t) => {
  const bad = event(fromPeer);
  // The first attribute (CTA_TUPLE_ORIG) claims more than the message holds.
  u16(0x7ff0).copy(bad, 20);
  t.deepEqual(parseDestroyEvents(bad, PORT), { destroyed: [], malformed: 1 });
  // An IPv4 message whose addresses are IPv6-sized.
  const mixed = event({ ...fromPeerV6 }, { family: AF_INET });
  t.deepEqual(parseDestroyEvents(mixed, PORT), { destroyed: [], malformed: 1 });
});

test('random and mutated datagrams never throw, and any flow read has the port at one end (seeded)', (t) => {
  const valid = Buffer.concat([event(fromPeer), event(fromPeerV6)]);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }).map((edits) => {
          const copy = Buffer.from(valid);
          for (const [at, value] of edits) copy[at] = value;
          return new Uint8Array(copy);
        }),
      ),
      (bytes) => {
        const parsed = parseDestroyEvents(Buffer.from(bytes), PORT);
        return parsed.malformed >= 0 && parsed.destroyed.every((f) => f.srcPort === PORT || f.dstPort === PORT);
      },
    ),
    { seed: 1414, numRuns: 3000 },
  );
  t.pass();
});

test('dispatch tells each flow and the malformed count', (t) => {
  const told: ConntrackFlow[] = [];
  let malformed = 0;
  const handlers = { destroyed: (f: ConntrackFlow) => told.push(f), lost: () => undefined, malformed: (n: number) => (malformed += n), failed: () => undefined };
  dispatchDestroyEvents(Buffer.concat([event(fromPeer), Buffer.alloc(6)]), PORT, handlers);
  t.deepEqual(told, [fromPeer]);
  t.is(malformed, 1);
});

test('the kernel switch is read as a number, and unreadable as undefined', (t) => {
  t.is(conntrackEventsSetting(() => '2\n'), 2);
  t.is(conntrackEventsSetting(() => '0\n'), 0);
  t.is(conntrackEventsSetting(() => 'x'), undefined);
  t.is(
    conntrackEventsSetting(() => {
      throw new Error('ENOENT');
    }),
    undefined,
  );
});
