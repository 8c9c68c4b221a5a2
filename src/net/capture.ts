/**
 * The one module that touches libpcap (through node_pcap). Downstream gets a copy of each
 * frame and its capture time, and everything after that is a pure function of them.
 *
 * What node_pcap 3.1.0 does underneath, and what this module does about it:
 * * It copies every packet into one buffer it reuses for the next: frames are copied here.
 * * libuv stops polling the capture socket for good when poll() reports POLLERR, which a
 *   packet socket does when its device goes down or is deleted. node_pcap ignores that status
 *   and reads once more: that read finds nothing (device down) or fails (device gone, -1).
 *   Either way no packet would ever be delivered again, even after the device is back, so
 *   both become an `onError` and the capture is over. (`any` is bound to no device and never
 *   sees this.)
 * * close() only calls pcap_breakloop(), which libpcap honours when the next packet is read
 *   (in non-blocking mode nothing else ends a read); until then the socket and its kernel ring
 *   stay open, and libuv may have stopped polling it. So a closed capture is kept in a list
 *   and read again (once a second, and whenever another capture delivers a packet) until that
 *   read releases it; and every filter also passes a "wake" datagram that only this capture
 *   asks for: a UDP datagram to 127.0.0.1 port 9 (discard) carrying its own random token,
 *   which close() sends, so a capture on `any` (or `lo`) is released at once. A capture on a
 *   device that went down is released by the first packet after the device is up again (the
 *   kernel re-attaches its socket); one whose device was deleted can never be released.
 * * In immediate mode every packet wakes the event loop; with a buffer timeout the kernel
 *   hands over a block of packets at a time (TPACKET_V3), at most that many ms late, and one
 *   wake-up reads them all. `screen` runs on node_pcap's reused buffer before any copy, so a
 *   packet that fails the caller's cheap checks costs no allocation here.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReconfigError } from '../common/errors.js';
import { fail, ok, type Result } from '../common/result.js';
import { errnoText, loadNativeSockets, type NativeSockets } from './native.js';
import { linkTypeFromPcap, type LinkType } from './packet.js';

/**
 * What a capture's screen says of a frame, as a value that travels with the frame (never a
 * field set on the side): drop it now, or pass it on with a verdict of the screen's own
 * (any other number; SCREEN_PASS means nothing was vouched for).
 */
export type ScreenVerdict = number;
export const SCREEN_DROP: ScreenVerdict = 0;
export const SCREEN_PASS: ScreenVerdict = 1;

export interface CaptureOptions {
  /** libpcap device name; `any` captures on every device (Linux cooked headers) */
  readonly device: string;
  /** libpcap filter expression, run in the kernel */
  readonly filter: string;
  /** `frame` is a copy of exactly the captured bytes, safe to keep */
  /** `verdict`: what `screen` said of the frame (SCREEN_PASS when there is no screen) */
  readonly onFrame: (frame: Buffer, timestampMs: number, verdict: ScreenVerdict) => void;
  /** the capture stopped after it was opened (its device went down or away) and is closed;
   *  an E_CAPTURE ReconfigError. Without this, it becomes a process warning. */
  readonly onError?: (error: Error) => void;
  /**
   * Cheap checks on the frame's first `length` bytes in node_pcap's reused buffer, before it
   * is copied: false drops it (the caller counts why). Must not keep `frame`.
   */
  readonly screen?: (frame: Buffer, length: number) => ScreenVerdict;
  readonly snapLength?: number;
  readonly bufferSize?: number;
  /** 0: immediate mode (each packet as it arrives); otherwise packets come in blocks, at most this late */
  readonly bufferTimeoutMs?: number;
}

export interface CaptureStats {
  /** packets that passed the filter */
  readonly received: number;
  /** packets lost for lack of buffer space, by the kernel or the driver */
  readonly dropped: number;
}

export interface Capture {
  readonly link: LinkType;
  readonly device: string;
  close(): void;
  stats(): CaptureStats;
  /**
   * Puts `filter` on the open capture in place of its own, atomically (no gap, no new socket);
   * an error when that cannot be done here (the caller then opens a new capture). Packets the
   * old filter passed that wait in the ring are still delivered.
   */
  setFilter?(filter: string): Result<true, string>;
}

export interface CapturedFrame {
  readonly frame: Buffer;
  readonly timestampMs: number;
}

/** The parts of node_pcap used here (its pcap.d.ts has no offline session nor binding). */
interface PcapNative {
  read_callback: () => void;
  dispatch(buf: Buffer, header: Buffer): number;
}

interface PcapSession {
  readonly link_type: string;
  readonly session: PcapNative;
  readonly buf: Buffer;
  readonly header: Buffer;
  on(event: 'packet', listener: (packet: { buf: Buffer; header: Buffer }) => void): void;
  on(event: 'complete', listener: () => void): void;
  close(): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
}

interface PcapModule {
  warningHandler: (message: string) => void;
  createSession(device: string, options: Record<string, unknown>): PcapSession;
  createOfflineSession(path: string, options: { filter: string }): PcapSession;
}

/** Where close() sends its wake datagram (see the top of this file); port 9 is discard. */
const WAKE_HOST = '127.0.0.1';
const WAKE_PORT = 9;
const WAKE_TOKEN_SIZE = 4;
const REAP_EVERY_MS = 1000;

/** A closed capture not yet released; `released` once a read returned PCAP_ERROR_BREAK. */
interface Closing {
  readonly session: PcapSession;
  released: boolean;
  /** a duplicate of the capture's socket, closed in the background once libpcap closed its own */
  held?: number | undefined;
}

/**
 * How often a capture on a named device compares the device's ifindex and carrier change
 * count with those it opened with. libuv stops polling for good on the POLLERR of a device
 * going down; when a packet was waiting in the same wake-up, the read finds it and the
 * "nothing to read" sign of the POLLERR is lost, so the capture would be dead without a word.
 */
const LINK_CHECK_MS = 2000;
const DEVICE_NAME = /^[\w.@:-]{1,32}$/;

/** `ifindex:carrier_changes` of a device, from sysfs; undefined if it is gone or unreadable. */
function linkState(device: string): string | undefined {
  if (!DEVICE_NAME.test(device)) return undefined;
  try {
    const read = (what: string): string => readFileSync(`/sys/class/net/${device}/${what}`, 'utf8').trim();
    return `${read('ifindex')}:${read('carrier_changes')}`;
  } catch {
    return undefined;
  }
}

const closing = new Set<Closing>();

/**
 * Every live session's native object, kept for the life of the process. node_pcap's C++
 * session embeds its libuv poll handle and is freed once its JavaScript object is collected
 * (after FinalizeClose nothing else holds it); it stops that handle but never uv_close()s it,
 * so libuv keeps the freed memory on its handle list, where adding or removing a neighbouring
 * handle writes into it. Each is a few hundred bytes; its socket and ring are released as
 * described above.
 */
const keptAlive: PcapNative[] = [];
let reapTimer: NodeJS.Timeout | undefined;
const PCAP_ERROR_BREAK = -2;

/** Reads once from a closed capture; true when that released it. Never reads a released one (it would crash). */
function readClosed(entry: Closing): boolean {
  if (entry.released) return true;
  if (entry.session.session.dispatch(entry.session.buf, entry.session.header) === PCAP_ERROR_BREAK) {
    entry.released = true;
    if (entry.held !== undefined) native()?.closeInBackground(entry.held);
    entry.held = undefined;
  }
  return entry.released;
}

/*
 * Closing a packet socket waits in the kernel for RCU grace periods (synchronize_net, in
 * packet_release and packet_set_ring): 10-50 ms on the event loop, measured, with every packet
 * captured meanwhile waiting. So before libpcap closes a capture, its socket is duplicated; the
 * duplicate keeps the socket alive through libpcap's close (then quick), and is closed last, in
 * libuv's thread pool, where the kernel's wait holds up nothing. node_pcap does not say which
 * descriptor is the capture's: it is the one AF_PACKET socket that appeared during the open
 * (the event loop runs nothing else meanwhile). Without the addon, or if that is not exactly
 * one, the capture is closed as before.
 */
function native(): NativeSockets | undefined {
  const loaded = loadNativeSockets();
  return 'error' in loaded ? undefined : loaded.sockets;
}

function packetSockets(): ReadonlySet<number> | undefined {
  const list = native()?.packetSockets();
  return list === undefined || typeof list === 'number' ? undefined : new Set(list);
}

function newPacketSocket(before: ReadonlySet<number> | undefined): number | undefined {
  const after = before === undefined ? undefined : packetSockets();
  if (before === undefined || after === undefined) return undefined;
  const fresh = [...after].filter((fd) => !before.has(fd));
  return fresh.length === 1 ? fresh[0] : undefined;
}

function holdSocket(fd: number): number | undefined {
  const copy = native()?.duplicate(fd);
  return copy === undefined || copy < 0 ? undefined : copy;
}

function reapClosed(): void {
  for (const entry of closing) if (readClosed(entry)) closing.delete(entry);
  if (closing.size === 0) {
    clearInterval(reapTimer);
    reapTimer = undefined;
  }
}

/** How many closed captures still hold their socket (for tests and the status output). */
export function unreleasedCaptures(): number {
  return closing.size;
}

function withWake(filter: string, token: Buffer): string {
  const wake = `(dst host ${WAKE_HOST} and udp dst port ${WAKE_PORT} and udp[8:4] = 0x${token.toString('hex')})`;
  return filter === '' ? '' : `(${filter}) or ${wake}`;
}

/**
 * One UDP socket sends every wake datagram, made when the first capture opens: a socket made at
 * close time would load dgram's cluster support on the first swap, 30 ms with the event loop
 * held, measured, while peers roam.
 */
let wakeSocket: Socket | undefined;

function wakeSender(): Socket {
  if (wakeSocket !== undefined) return wakeSocket;
  const socket = createSocket('udp4');
  // A send that fails is said in its callback; the socket stays for the next one.
  socket.on('error', () => undefined);
  socket.unref();
  wakeSocket = socket;
  return socket;
}

function sendWake(token: Buffer, then: () => void): void {
  wakeSender().send(Buffer.concat([token, Buffer.alloc(8)]), WAKE_PORT, WAKE_HOST, () => then());
}

/** 64 KiB holds any IPv4 or IPv6 packet without jumbo payload. */
const DEFAULT_SNAP_LENGTH = 65_535;
/**
 * 4 MiB of kernel ring. With a buffer timeout the ring is used in blocks handed over partly
 * filled, so its room counts in blocks: 1 MiB dropped packets in the lab under floods of
 * 1,000-50,000 a second whenever the event loop paused; 4 MiB dropped none.
 */
const DEFAULT_BUFFER_SIZE = 4 << 20;
/** node_pcap's 16-byte packet header: ts_sec, ts_usec, caplen, len as little-endian u32. */
const HEADER_TS_SEC = 0;
const HEADER_TS_USEC = 4;
const HEADER_CAPLEN = 8;
/** LINKTYPE_ numbers for a capture file header (tcpdump.org/linktypes.html). */
const FILE_LINK_TYPES: Readonly<Record<LinkType, number>> = { null: 0, ethernet: 1, raw: 101, sll: 113, sll2: 276 };

const require = createRequire(import.meta.url);
let loaded: PcapModule | undefined;

function loadPcap(): PcapModule {
  if (loaded !== undefined) return loaded;
  try {
    loaded = require('pcap') as PcapModule;
  } catch (error) {
    const first = (error as Error).message.split('\n')[0] ?? '';
    throw new ReconfigError('E_CAPTURE', `The pcap module could not be loaded (${first}). Install libpcap-dev and run: npm rebuild pcap.`, { exitCode: 2 });
  }
  // pcap_lookupnet() fails on `any` and on devices without IPv4; it only matters for
  // `ip broadcast` filters, which are not used here.
  loaded.warningHandler = () => undefined;
  return loaded;
}

function copyFrame(packet: { buf: Buffer; header: Buffer }): CapturedFrame {
  const { buf, header } = packet;
  const caplen = Math.min(header.readUInt32LE(HEADER_CAPLEN), buf.length);
  return {
    frame: Buffer.from(buf.subarray(0, caplen)),
    timestampMs: header.readUInt32LE(HEADER_TS_SEC) * 1000 + header.readUInt32LE(HEADER_TS_USEC) / 1000,
  };
}

function linkTypeError(where: string, name: string): ReconfigError {
  return new ReconfigError(
    'E_LINK_TYPE',
    `${where} has link type ${name}, which is not decoded here (Ethernet, Linux cooked, raw IP and BSD loopback are). Capture on -d any instead.`,
  );
}

/** libpcap compiles the filter last, so its error is a filter error if the filter alone fails the same way. */
function isFilterError(filter: string, message: string): boolean {
  if (filter === '') return false;
  return (['ethernet', 'sll', 'raw'] as const).some((link) => {
    const compiled = compileFilter(filter, link);
    return !compiled.ok && compiled.reason === message;
  });
}

function openError(device: string, filter: string, error: Error): ReconfigError {
  const message = error.message;
  if (/Operation not permitted|Permission denied|don't have permission/i.test(message)) {
    return new ReconfigError(
      'E_CAPTURE_PERMISSION',
      `Not allowed to capture on ${device} (${message}). Run it as root, or as its service, which grants CAP_NET_RAW and CAP_NET_ADMIN to it alone (the systemd units in init.d/systemd, installed by scripts/install.sh). Do not setcap the node binary: that gives raw sockets to every node script.`,
    );
  }
  if (/No such device/i.test(message)) {
    return new ReconfigError('E_NO_DEVICE', `There is no device ${device} to capture on (${message}). 'ip link' lists the devices; -d any captures on all of them.`);
  }
  if (/not up|went down|Network is down/i.test(message)) {
    return new ReconfigError('E_CAPTURE', `Capture device ${device} is down (${message}). Bring it up (ip link set ${device} up), or capture on -d any.`);
  }
  if (isFilterError(filter, message)) {
    return new ReconfigError('E_FILTER', `libpcap cannot compile the capture filter (${message}): ${filter}`);
  }
  return new ReconfigError('E_CAPTURE', `Cannot capture on ${device}: ${message}.`);
}

/** Opens a live capture in immediate mode, not promiscuous; throws a ReconfigError that says what to do. */
export function openCapture(options: CaptureOptions): Capture {
  const { device, filter } = options;
  const pcap = loadPcap();
  let session: PcapSession;
  const token = randomBytes(WAKE_TOKEN_SIZE);
  const socketsBefore = packetSockets();
  try {
    session = pcap.createSession(device, {
      filter: withWake(filter, token),
      // 0 selects libpcap's immediate mode: each packet is handed over as it arrives.
      buffer_timeout: options.bufferTimeoutMs ?? 0,
      snap_length: options.snapLength ?? DEFAULT_SNAP_LENGTH,
      buffer_size: options.bufferSize ?? DEFAULT_BUFFER_SIZE,
      promiscuous: false,
    });
  } catch (error) {
    throw openError(device, filter, error as Error);
  }
  keptAlive.push(session.session);
  if (device === 'any' || device === 'lo') wakeSender();
  const socket = newPacketSocket(socketsBefore);
  const entry: Closing = { session, released: false };
  /** its device went down or away: it may never be released, and then neither would a duplicate */
  let failed = false;
  const release = (): void => {
    if (socket !== undefined && !failed) entry.held = holdSocket(socket);
    session.close();
    if (readClosed(entry)) return;
    closing.add(entry);
    reapTimer ??= setInterval(reapClosed, REAP_EVERY_MS).unref();
    if (device === 'any' || device === 'lo') sendWake(token, reapClosed);
  };
  const link = linkTypeFromPcap(session.link_type);
  if (!link.ok) {
    release();
    throw linkTypeError(`Capture device ${device}`, session.link_type);
  }

  let open = true;
  let delivered = 0;
  let lastStats: CaptureStats = { received: 0, dropped: 0 };
  let linkWatch: NodeJS.Timeout | undefined;
  const close = (): void => {
    if (!open) return;
    open = false;
    clearInterval(linkWatch);
    try {
      lastStats = readStats();
    } catch {
      // the device is gone: the last figures read stay
    }
    release();
  };
  const readStats = (): CaptureStats => {
    const stats = session.stats();
    return { received: stats.ps_recv, dropped: stats.ps_drop + stats.ps_ifdrop };
  };
  const stop = (why: string): void => {
    failed = true;
    close();
    const error = new ReconfigError('E_CAPTURE', `Capture on ${device} stopped: ${why}. It can be opened again once the device is up.`);
    if (options.onError !== undefined) options.onError(error);
    else process.emitWarning(error);
  };

  const screen = options.screen;
  session.on('packet', (packet) => {
    if (!open) return;
    delivered++;
    const verdict = screen === undefined ? SCREEN_PASS : screen(packet.buf, Math.min(packet.header.readUInt32LE(HEADER_CAPLEN), packet.buf.length));
    if (verdict === SCREEN_DROP) return;
    const { frame, timestampMs } = copyFrame(packet);
    options.onFrame(frame, timestampMs, verdict);
  });
  const handle = session.session;
  handle.read_callback = () => {
    if (entry.released) return;
    const before = delivered;
    const result = handle.dispatch(session.buf, session.header);
    // After close() this read returned PCAP_ERROR_BREAK and node_pcap released the handle.
    if (result === PCAP_ERROR_BREAK) entry.released = true;
    if (closing.size > 0) reapClosed(); // a packet here may be one an old capture waits for
    if (!open) return;
    if (result < 0) stop('the device went away');
    // Woken with nothing to read: the POLLERR of a device going down (see the top of this file).
    else if (delivered === before && device !== 'any') stop('the device went down');
  };

  const linkAtOpen = device === 'any' ? undefined : linkState(device);
  if (linkAtOpen !== undefined) {
    // Not unref'd: after a missed POLLERR libuv no longer counts the capture as active, and
    // this timer is then what keeps the daemon's event loop alive until the capture is reopened.
    linkWatch = setInterval(() => {
      if (open && linkState(device) !== linkAtOpen) stop('the device went down');
    }, LINK_CHECK_MS);
  }

  const snapLength = options.snapLength ?? DEFAULT_SNAP_LENGTH;
  const setFilter = (next: string): Result<true, string> => {
    const dlt = DLT_OF[link.value];
    const sockets = native();
    if (!open || socket === undefined || dlt === undefined || sockets === undefined) return fail('no filter can be set on this capture');
    const attached = sockets.attachFilter(socket, dlt, snapLength, withWake(next, token));
    if (typeof attached === 'string') return fail(attached);
    return attached === 0 ? ok(true) : fail(errnoText(attached));
  };

  return {
    link: link.value,
    device,
    close,
    stats: () => {
      if (!open) return lastStats;
      lastStats = readStats();
      return lastStats;
    },
    setFilter,
  };
}

/** The link types whose filter can be replaced in place (capture.ts's attachFilter), as DLT_ numbers (pcap/dlt.h, Linux). */
const DLT_OF: Partial<Record<LinkType, number>> = { ethernet: 1, raw: 12, sll: 113 };

/**
 * Compiles `expression` for `link` as libpcap would for a live capture. node_pcap compiles
 * only on an open handle, so this opens an empty capture file of that link type.
 */
export function compileFilter(expression: string, link: LinkType): Result<true, string> {
  const dir = mkdtempSync(join(tmpdir(), 'reconfig-wg-filter-'));
  try {
    const file = join(dir, 'empty.pcap');
    writeFileSync(file, captureFileHeader(link));
    // Closing before node_pcap's first (deferred) read makes that read release the file.
    loadPcap().createOfflineSession(file, { filter: expression }).close();
    return ok(true);
  } catch (error) {
    return fail((error as Error).message);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The 24-byte header of a little-endian libpcap capture file (pcap-savefile(5)), version 2.4. */
export function captureFileHeader(link: LinkType, snapLength = DEFAULT_SNAP_LENGTH): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(snapLength, 16);
  header.writeUInt32LE(FILE_LINK_TYPES[link], 20);
  return header;
}

/** Reads a capture file through libpcap, keeping the frames that pass `filter`. */
export async function readCaptureFile(path: string, filter = ''): Promise<{ link: LinkType; frames: CapturedFrame[] }> {
  const pcap = loadPcap();
  let session: PcapSession;
  try {
    session = pcap.createOfflineSession(path, { filter });
  } catch (error) {
    const message = (error as Error).message;
    if (isFilterError(filter, message)) throw new ReconfigError('E_FILTER', `libpcap cannot compile the filter (${message}): ${filter}`);
    throw new ReconfigError('E_CAPTURE', `Cannot read capture file ${path}: ${message}.`);
  }
  const link = linkTypeFromPcap(session.link_type);
  if (!link.ok) {
    session.close();
    throw linkTypeError(`Capture file ${path}`, session.link_type);
  }
  const frames: CapturedFrame[] = [];
  session.on('packet', (packet) => frames.push(copyFrame(packet)));
  return await new Promise((resolve) => {
    session.on('complete', () => {
      // At the end of a file node_pcap keeps it open; one read after pcap_breakloop() closes it.
      session.close();
      session.session.dispatch(session.buf, session.header);
      resolve({ link: link.value, frames });
    });
  });
}
