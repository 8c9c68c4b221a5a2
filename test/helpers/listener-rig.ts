/**
 * A listener driven directly, for unit tests: frames in through a stand-in capture, `wg` calls
 * out through a stand-in wg, packets handed to WireGuard through a stand-in injector. Crypto,
 * decoding and the decision logic are the real ones.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, type NetworkInterfaceInfo } from 'node:os';
import { LocalAddresses } from '../../src/net/local.js';
import type { LinkType } from '../../src/net/link.js';
import { join } from 'node:path';
import { SCREEN_DROP, SCREEN_PASS, type Capture, type CaptureOptions } from '../../src/net/capture.js';
import type { DestroyEvents } from '../../src/net/conntrack-events.js';
import { Delivery, type PacketInjector, type PacketPinholer, type PinholeMode, type UdpTuple } from '../../src/reconfig/deliver.js';
import { Admission, DATA_ADMISSION } from '../../src/reconfig/admission.js';
import { Listener, type HeldPacket } from '../../src/reconfig/listener.js';
import { normalizeOptions } from '../../src/reconfig/options.js';
import { Watermarks } from '../../src/reconfig/replay.js';
import { ok, type Result } from '../../src/common/result.js';
import { mac } from '../../src/wireguard/blake2.js';
import { openInitiation } from '../../src/wireguard/initiation.js';
import { mac1KeyOf } from '../../src/wireguard/mac1.js';
import { createResponder } from '../../src/wireguard/responder.js';
import { parseSecret, publicKeyOf, type Secret } from '../../src/wireguard/keys.js';
import { timestampFromDate } from '../../src/wireguard/tai64n.js';
import { FakeWg } from './fake-wg.js';
import { memoryLogger } from './memory-logger.js';
import { ipv4, ipv6, udp } from './net-frames.js';
import { createInitiation } from '../../scripts/lab/initiator.js';

export const PORT = 51820;

/** A raw-IP frame (the capture's link type here) carrying one UDP datagram. */
export function rawUdpFrame(f: { src: string; dst: string; srcPort: number; dstPort: number; payload: Buffer }): Buffer {
  const datagram = udp(f.srcPort, f.dstPort, f.payload);
  return f.src.includes(':') ? ipv6(datagram, { src: f.src, dst: f.dst }) : ipv4(datagram, { src: f.src, dst: f.dst });
}
export const R2 = '192.0.2.1';
export const R2_V6 = '2001:db8::1';
/** R2's interface as os.networkInterfaces() would report it. */
const R2_INTERFACE: NetworkInterfaceInfo[] = [
  { address: R2, netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: `${R2}/24` },
  { address: R2_V6, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: `${R2_V6}/64`, scopeid: 0 },
];

export function b64(secret: Secret): string {
  return publicKeyOf(secret).toString('base64');
}

/** A private key as wg prints it, and its Secret: only tests hold both. */
const keyTexts = new WeakMap<Secret, string>();
export function newKey(): Secret {
  const bytes = randomBytes(32);
  bytes[0]! &= 248;
  bytes[31] = (bytes[31]! & 127) | 64;
  const text = bytes.toString('base64');
  const parsed = parseSecret(text);
  if (!parsed.ok) throw new Error('bad test key');
  keyTexts.set(parsed.value, text);
  return parsed.value;
}

export function keyText(secret: Secret): string {
  return keyTexts.get(secret) ?? '';
}

export interface Rig {
  listener: Listener;
  /** the replay watermarks the listener keeps (their file is dir/state.json) */
  watermarks: Watermarks;
  wg: FakeWg;
  r2: Secret;
  peers: Secret[];
  log: string[];
  feed(frame: Buffer): Promise<void>;
  openedFilters: string[];
  dir: string;
  /** packets handed to WireGuard, with whether a pinhole was opened first */
  injected: { tuple: UdpTuple; payload: Buffer }[];
  pinholes: UdpTuple[];
  /** conntrack entries removed after their hand-over settled */
  removedPinholes: UdpTuple[];
  /** the stand-in clock, ms; advance it to age session indices */
  clock: { now: number };
  close(): void;
}

export interface RigOptions {
  peers?: number;
  keepalive?: number;
  dryRun?: boolean;
  dir?: string;
  /** hand packets over through a stand-in injector (default: none, i.e. `wg set` only) */
  inject?: boolean;
  pinhole?: PinholeMode;
  /** what the stand-in WireGuard does with a packet handed to it: by default it roams the peer
   *  of an initiation or of a known session index to the packet's source */
  takesUp?: (tuple: UdpTuple, payload: Buffer, pinholed: boolean) => boolean;
  /** the self-test's answer: does the firewall let packets in on lo? */
  loopbackAccepted?: boolean;
  /** index → peer public key, as the stand-in WireGuard knows its sessions */
  sessions?: Map<number, string>;
  /** the initiation admission policy (default: the listener's own, on the real clock) */
  admission?: Admission<HeldPacket>;
  /** where the listener leaves and takes over its session indices */
  sessionsFile?: string;
  /** the same peers and interface key as an earlier rig (a restart) */
  like?: Rig;
  /** the capture's link type (default raw IP, which carries no direction) */
  link?: LinkType;
  /** conntrack's destroy events (default: none followed) */
  destroyEvents?: DestroyEvents;
}

export async function rig(options: RigOptions = {}): Promise<Rig> {
  const r2 = options.like?.r2 ?? newKey();
  const peers = options.like?.peers ?? Array.from({ length: options.peers ?? 1 }, () => newKey());
  const wg = new FakeWg('wg0', keyText(r2), b64(r2), PORT, peers.map((p) => ({ publicKey: b64(p), keepalive: options.keepalive ?? 0 })));
  const { logger, raw: log } = memoryLogger();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rwg-listener-'));
  let onFrame: (frame: Buffer, timestampMs: number) => void = () => undefined;
  const openedFilters: string[] = [];
  const openCapture = (opts: CaptureOptions): Capture => {
    // As the real capture does: the screen looks first, and only what passes is delivered.
    onFrame = (frame, timestampMs) => {
      const verdict = opts.screen === undefined ? SCREEN_PASS : opts.screen(frame, frame.length);
      if (verdict !== SCREEN_DROP) opts.onFrame(frame, timestampMs, verdict);
    };
    openedFilters.push(opts.filter);
    return { link: options.link ?? 'raw', device: opts.device, close: () => undefined, stats: () => ({ received: 0, dropped: 0 }) };
  };
  const injected: Rig['injected'] = [];
  const localAddresses = new LocalAddresses({ read: () => ({ eth0: R2_INTERFACE }) });
  const pinholes: UdpTuple[] = [];
  const removedPinholes: UdpTuple[] = [];
  const clock = { now: 1_000_000 };
  const sessions = options.sessions ?? new Map<number, string>();
  let pinholedNow = false;
  const injector: PacketInjector = {
    families: new Set([4, 6]),
    inject: (tuple, payload): Result<true, string> => {
      injected.push({ tuple, payload: Buffer.from(payload) });
      const pinholed = pinholedNow;
      pinholedNow = false;
      const takesUp = options.takesUp ?? (() => true);
      if (!takesUp(tuple, payload, pinholed)) return ok(true);
      const peer = peerOfPacket(payload, peers, r2, sessions);
      const fake = wg.peers.find((p) => p.publicKey === peer);
      if (fake !== undefined) fake.endpoint = tuple.family === 6 ? `[${tuple.src}]:${tuple.srcPort}` : `${tuple.src}:${tuple.srcPort}`;
      return ok(true);
    },
    close: () => undefined,
  };
  const pinholer: PacketPinholer = {
    open: (tuple) => {
      pinholes.push(tuple);
      pinholedNow = true;
      return ok('opened' as const);
    },
    remove: (tuple) => {
      removedPinholes.push(tuple);
      return ok(true);
    },
    close: () => undefined,
  };
  const delivery =
    options.inject === true
      ? new Delivery({ logger, injector, pinholer, mode: options.pinhole ?? 'auto', loopbackAccepted: options.loopbackAccepted ?? true, localAddresses })
      : undefined;
  const watermarks = Watermarks.load(join(dir, 'state.json'), 'wg0');
  const listener = new Listener({
    logger,
    options: { ...normalizeOptions({ interface: 'wg0', dryRun: options.dryRun ?? false }), interface: 'wg0' },
    watermarks,
    openCapture,
    run: wg.run,
    delivery,
    now: () => clock.now,
    dataAdmission: new Admission<HeldPacket>(DATA_ADMISSION, () => clock.now),
    ...(options.admission === undefined ? {} : { admission: options.admission }),
    confirmDelaysMs: [0, 1, 2],
    localAddresses,
    ...(options.sessionsFile === undefined ? {} : { sessionsFile: options.sessionsFile }),
    ...(options.destroyEvents === undefined ? {} : { destroyEvents: options.destroyEvents }),
  });
  if (delivery !== undefined) {
    // The listen port is known, and the firewall's answer is the option's: no self-test packet.
    await delivery.prepare(PORT, () => Promise.resolve(options.loopbackAccepted ?? true));
    delivery.prepare = () => Promise.resolve();
  }
  await listener.start();
  return {
    listener, wg, r2, peers, log, openedFilters, dir, injected, pinholes, removedPinholes, clock, watermarks,
    feed: async (frame) => {
      onFrame(frame, Date.now());
      await listener.settled();
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function initiationFrom(r: Rig, peer: Secret, src: string, srcPort: number, when = new Date()): Buffer {
  const payload = createInitiation({ initiatorPrivateKey: peer, responderPublicKey: publicKeyOf(r.r2), timestamp: timestampFromDate(when) });
  return rawUdpFrame({ src, dst: R2, srcPort, dstPort: PORT, payload });
}

export const events = (r: Rig, name: string): Record<string, unknown>[] =>
  r.log.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === name);


/** Which peer the stand-in WireGuard would say a packet belongs to. */
function peerOfPacket(payload: Buffer, peers: readonly Secret[], r2: Secret, sessions: ReadonlyMap<number, string>): string | undefined {
  if (payload[0] === 4) return sessions.get(payload.readUInt32LE(4));
  if (payload[0] !== 1) return undefined;
  const responder = createResponder(r2);
  const opened = openInitiation(responder, payload);
  if (!opened.ok) return undefined;
  const key = opened.value.staticKey.toString('base64');
  return peers.some((p) => b64(p) === key) ? key : undefined;
}

/** A handshake response as R2 would send it to `peer` (only its framing and mac1 are real). */
export function responseTo(peer: Secret, sender: number, receiver: number): Buffer {
  const msg = randomBytes(92);
  msg.writeUInt32LE(2, 0);
  msg.writeUInt32LE(sender, 4);
  msg.writeUInt32LE(receiver, 8);
  mac1Of(mac1KeyOf(publicKeyOf(peer)), msg, 60).copy(msg, 60);
  return msg;
}

/** A handshake initiation as R2 would send it to `peer` (only its framing and mac1 are real). */
export function initiationTo(peer: Secret, sender: number): Buffer {
  const msg = randomBytes(148);
  msg.writeUInt32LE(1, 0);
  msg.writeUInt32LE(sender, 4);
  mac1Of(mac1KeyOf(publicKeyOf(peer)), msg, 116).copy(msg, 116);
  return msg;
}

function mac1Of(key: Buffer, msg: Buffer, offset: number): Buffer {
  return mac(key, msg.subarray(0, offset));
}

/** A transport data packet to R2's session `receiver` (its ciphertext is random). */
export function dataTo(receiver: number, size = 32): Buffer {
  const msg = randomBytes(size);
  msg.writeUInt32LE(4, 0);
  msg.writeUInt32LE(receiver, 4);
  return msg;
}
