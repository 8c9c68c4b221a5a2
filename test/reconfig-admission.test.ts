/**
 * The admission policy on a fake clock: floods from many sources at several rates, and the
 * genuine source among them, admitted within the bound the policy promises.
 */
import test from 'ava';
import { Admission, INITIATION_ADMISSION, type AdmissionOptions } from '../src/reconfig/admission.js';

/** How often the listener drains waiting packets under load (at most). */
const DRAIN_EVERY_MS = 10;

interface Sim {
  admission: Admission<string>;
  now(): number;
  /** runs `ms` of simulated time: `flood` packets each ms, a drain every DRAIN_EVERY_MS */
  run(ms: number, flood: (ms: number) => readonly string[]): void;
  /** offers one packet from `source` now; it is admitted now or comes out of a later drain */
  send(source: string, label?: string): void;
  /** label → when it was admitted */
  readonly admittedAt: Map<string, number>;
  count: number;
}

function simulate(options: Partial<AdmissionOptions> = {}): Sim {
  let now = 0;
  const admission = new Admission<string>(options, () => now);
  const admittedAt = new Map<string, number>();
  const sim: Sim = {
    admission,
    now: () => now,
    admittedAt,
    count: 0,
    send(source, label = source) {
      if (admission.offer(source, () => label)) {
        sim.count++;
        if (!admittedAt.has(label)) admittedAt.set(label, now);
      }
    },
    run(ms, flood) {
      for (let i = 0; i < ms; i++) {
        now++;
        for (const source of flood(now)) sim.send(source, 'junk');
        if (now % DRAIN_EVERY_MS === 0) {
          for (const label of admission.drain()) {
            sim.count++;
            if (!admittedAt.has(label)) admittedAt.set(label, now);
          }
        }
      }
    },
  };
  return sim;
}

/** `perSecond` packets a second, spread evenly and round-robin over `sources`. */
function floodOf(sources: readonly string[], perSecond: number): (ms: number) => string[] {
  let sent = 0;
  return (ms) => {
    const due = Math.floor((ms * perSecond) / 1000);
    const out: string[] = [];
    for (; sent < due; sent++) out.push(sources[sent % sources.length]!);
    return out;
  };
}

const attackers155 = Array.from({ length: 155 }, (_, i) => `192.0.2.${100 + i}`);
const openRate = INITIATION_ADMISSION.perSecond * (1 - INITIATION_ADMISSION.reservedShare);

test('a lone packet on a quiet link is admitted at once', (t) => {
  const sim = simulate();
  sim.send('198.51.100.7', 'genuine');
  t.is(sim.admittedAt.get('genuine'), 0);
});

for (const rate of [1000, 10_000, 50_000]) {
  test(`a flood of ${rate}/s from 155 addresses gets no more than the budget`, (t) => {
    const sim = simulate();
    sim.run(10_000, floodOf(attackers155, rate));
    const { perSecond, burst } = INITIATION_ADMISSION;
    t.true(sim.count <= perSecond * 10 + burst, `${sim.count} admitted in 10 s`);
    // Nobody known sends: the reserved share stays unused, the open share is all spent.
    t.true(sim.count >= openRate * 10 * 0.95, `the open share is used: ${sim.count}`);
    t.true(sim.admission.dropped > 0);
  });

  test(`a genuine source in the flooders' own /24 is admitted within one round of it (${rate}/s)`, (t) => {
    const sim = simulate();
    const flood = floodOf(attackers155, rate);
    sim.run(3000, flood);
    sim.send('192.0.2.10', 'genuine');
    sim.run(3000, flood);
    const waited = sim.admittedAt.get('genuine');
    t.not(waited, undefined, 'admitted');
    // Round-robin in its network: at most every other address's turn comes first.
    const bound = ((attackers155.length + 1) / openRate) * 1000 + DRAIN_EVERY_MS;
    t.true(waited! - 3000 <= bound, `waited ${waited! - 3000} ms, bound ${bound.toFixed(0)} ms`);
  });

  test(`a genuine source in another network gets the next turn (${rate}/s from 155 addresses)`, (t) => {
    const sim = simulate();
    const flood = floodOf(attackers155, rate);
    sim.run(3000, flood);
    sim.send('198.51.100.7', 'genuine');
    sim.run(1000, flood);
    const waited = sim.admittedAt.get('genuine')! - 3000;
    t.true(waited <= 2 * DRAIN_EVERY_MS, `waited ${waited} ms`);
  });

  test(`a recent peer endpoint is admitted at once from the reserved share (${rate}/s from 155 addresses)`, (t) => {
    const sim = simulate();
    sim.admission.notePeerEndpoint('192.0.2.10');
    const flood = floodOf(attackers155, rate);
    sim.run(3000, flood);
    sim.send('192.0.2.10', 'genuine');
    sim.run(100, flood);
    t.is(sim.admittedAt.get('genuine'), 3000);
  });
}

test('the reserved share is kept for known endpoints: a flood of unknown sources cannot spend it', (t) => {
  const sim = simulate();
  const known = Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 1}`);
  for (const address of known) sim.admission.notePeerEndpoint(address);
  const flood = floodOf(attackers155, 10_000);
  sim.run(2000, flood);
  // Every known endpoint sends one initiation in the same millisecond, mid-flood.
  for (const address of known) sim.send(address);
  sim.run(200, flood);
  const waits = known.map((address) => (sim.admittedAt.get(address) ?? Infinity) - 2000);
  const { perSecond, reservedShare, burst } = INITIATION_ADMISSION;
  const bound = ((known.length - burst * reservedShare) / (perSecond * reservedShare)) * 1000 + DRAIN_EVERY_MS;
  t.true(Math.max(...waits) <= bound, `waits ${waits.join(',')} ms, bound ${bound} ms`);
});

test('many addresses in one IPv6 /64 count as one network; a new address in a known /64 is known', (t) => {
  const sim = simulate();
  const flooders = Array.from({ length: 5000 }, (_, i) => `2001:db8:66::${i.toString(16)}`);
  const flood = floodOf(flooders, 10_000);
  sim.run(2000, flood);
  sim.send('2001:db8:7::1', 'other network');
  sim.admission.notePeerEndpoint('2001:db8:10::abcd');
  sim.send('2001:db8:10::1234', 'same /64 as a peer');
  sim.run(100, flood);
  t.true(sim.admittedAt.get('other network')! - 2000 <= 2 * DRAIN_EVERY_MS);
  t.is(sim.admittedAt.get('same /64 as a peer'), 2000);
});

test('what waits is bounded however many networks send', (t) => {
  const sim = simulate({ maxHeld: 64, maxPerNetwork: 8 });
  let n = 0;
  sim.run(2000, () => Array.from({ length: 20 }, () => `2001:db8:${(n++ % 65_536).toString(16)}::1`));
  t.true(sim.admission.waiting <= 64);
  t.true(sim.admission.dropped > 0);
});

test('one source\'s waiting packet is a uniform sample of what it sent, not the first or the last', (t) => {
  const picks = new Map<string, number>();
  for (let round = 0; round < 2000; round++) {
    const sim = simulate({ perSecond: 1, burst: 1, reservedShare: 0 });
    sim.send('192.0.2.200', 'spent the token');
    for (let i = 0; i < 4; i++) sim.admission.offer('192.0.2.66', () => `packet ${i}`);
    sim.run(1000, () => []);
    for (const [label] of sim.admittedAt) if (label.startsWith('packet')) picks.set(label, (picks.get(label) ?? 0) + 1);
  }
  t.is(picks.size, 4);
  for (const [label, count] of picks) t.true(count > 350 && count < 650, `${label}: ${count} of 2000`);
});

test('a packet that waited too long is dropped as stale', (t) => {
  const sim = simulate({ perSecond: 1, burst: 1, reservedShare: 0, maxWaitMs: 500 });
  sim.send('192.0.2.200', 'spent the token');
  sim.send('192.0.2.66', 'late');
  sim.run(900, () => []); // the next token comes after 1 s; by then it is stale
  sim.run(200, () => []);
  t.false(sim.admittedAt.has('late'));
  t.is(sim.admission.dropped, 1);
  t.is(sim.admission.waiting, 0);
});

test('endpoints are forgotten after the memory time', (t) => {
  const sim = simulate({ endpointMemoryMs: 1000 });
  sim.admission.notePeerEndpoint('192.0.2.10');
  t.true(sim.admission.isKnown('192.0.2.10'));
  t.false(sim.admission.isKnown('192.0.2.11'));
  sim.run(1001, () => []);
  t.false(sim.admission.isKnown('192.0.2.10'));
});

test('instances are independent: each kind of packet has its own rates', (t) => {
  const initiations = simulate({ perSecond: 10, burst: 1, reservedShare: 0 });
  const data = simulate({ perSecond: 1000, burst: 100, reservedShare: 0 });
  initiations.run(1000, floodOf(['192.0.2.66'], 1000));
  data.run(1000, floodOf(['192.0.2.66'], 1000));
  t.true(initiations.count <= 11);
  t.true(data.count >= 900);
});

/** `perSecond` packets a second, each from a new random address in `count` IPv6 /64s. */
function spreadFlood(count: number, perSecond: number, inside = (n: number): string => `2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}`): (ms: number) => string[] {
  let sent = 0;
  return (ms) => {
    const due = Math.floor((ms * perSecond) / 1000);
    const out: string[] = [];
    for (; sent < due; sent++) {
      const host = Math.floor(Math.random() * 0xffff).toString(16);
      out.push(`${inside(Math.floor(Math.random() * count))}::${host}`);
    }
    return out;
  };
}

for (const networks of [1024, 65_536]) {
  test(`what waits is bounded by a fixed total, count and bytes, under 20k/s from ${networks} /64s`, (t) => {
    const sizes = new Map<string, number>();
    let now = 0;
    const admission = new Admission<string>({}, () => now, (item) => sizes.get(item) ?? 0);
    const flood = spreadFlood(networks, 20_000);
    let peak = 0;
    let peakBytes = 0;
    for (let ms = 1; ms <= 30_000; ms++) {
      now = ms;
      for (const source of flood(ms)) {
        admission.offer(source, () => {
          const label = `p${sizes.size}`;
          sizes.set(label, 148 + (sizes.size % 7) * 100);
          return label;
        });
      }
      if (ms % DRAIN_EVERY_MS === 0) for (const label of admission.drain()) sizes.delete(label);
      peak = Math.max(peak, admission.waiting);
      peakBytes = Math.max(peakBytes, admission.waitingBytes);
      // what was displaced is gone from the test's own table too, so it cannot grow either
      if (sizes.size > 4 * INITIATION_ADMISSION.maxHeld) {
        for (const label of sizes.keys()) {
          if (sizes.size <= 2 * INITIATION_ADMISSION.maxHeld) break;
          sizes.delete(label);
        }
      }
    }
    t.true(peak <= INITIATION_ADMISSION.maxHeld, `peak ${peak} waiting`);
    t.true(peakBytes <= INITIATION_ADMISSION.maxHeldBytes, `peak ${peakBytes} bytes`);
    t.true(peak > INITIATION_ADMISSION.maxHeld / 2, `the bound is what limits it: peak ${peak}`);
  });
}

test('the byte bound holds when packets are large', (t) => {
  let now = 0;
  const admission = new Admission<number>({ perSecond: 1, burst: 1, maxHeld: 10_000, maxHeldBytes: 64 * 1024 }, () => now, () => 2048);
  let n = 0;
  for (let ms = 1; ms <= 1000; ms++) {
    now = ms;
    for (let i = 0; i < 10; i++) admission.offer(`198.51.100.${n++ % 250}`, () => n);
    for (let i = 0; i < 10; i++) admission.offer(`2001:db8:${(n++).toString(16)}::1`, () => n);
  }
  t.true(admission.waitingBytes <= 64 * 1024, `${admission.waitingBytes} bytes`);
  t.is(admission.waiting, admission.waitingBytes / 2048);
});

for (const rate of [10_000, 20_000]) {
  test(`a known peer's exact endpoint is not starved by ${rate}/s from its own /64`, (t) => {
    const sim = simulate();
    sim.admission.notePeerEndpoint('2001:db8:10::1');
    const flood = spreadFlood(1, rate, () => '2001:db8:10:0');
    sim.run(3000, flood);
    t.is(sim.admission.tierOf('2001:db8:10::1'), 'exact');
    t.is(sim.admission.tierOf('2001:db8:10::2'), 'network');
    for (let round = 0; round < 5; round++) {
      const at = sim.now();
      sim.send('2001:db8:10::1', `genuine ${round}`);
      sim.run(1000, flood);
      const waited = sim.admittedAt.get(`genuine ${round}`);
      t.not(waited, undefined, `round ${round} admitted`);
      // The exact tier is served first from the reserved share: the next token.
      const { perSecond, reservedShare } = INITIATION_ADMISSION;
      const bound = 1000 / (perSecond * reservedShare) + DRAIN_EVERY_MS;
      t.true(waited! - at <= bound, `round ${round}: waited ${waited! - at} ms, bound ${bound} ms`);
    }
  });
}

test('when the pool is full, the network that fills it loses its own: a lone sender elsewhere keeps its place', (t) => {
  // one /64 sends from ever new addresses, as many as may wait from one network
  const sim = simulate({ maxHeld: 64, maxPerNetwork: 64, perSecond: 1, burst: 1, reservedShare: 0 });
  sim.send('192.0.2.200', 'spent the token');
  let n = 0;
  const flood = (): string[] => Array.from({ length: 10 }, () => `2001:db8:66::${(n++).toString(16)}`);
  sim.run(100, flood);
  sim.send('198.51.100.7', 'lone');
  sim.run(900, flood);
  sim.run(1200, () => []); // the next two tokens: the /64's turn, then the lone sender's
  t.true(sim.admittedAt.has('lone'), 'the lone sender was still waiting when its turn came');
});
