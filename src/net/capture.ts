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
 * * close() only calls pcap_breakloop(), which libpcap honours when the next packet is read;
 *   until a packet passes the filter, the socket stays open and keeps the event loop alive.
 *   A device that was deleted never delivers one, so its socket is never released.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReconfigError } from '../common/errors.js';
import { fail, ok, type Result } from '../common/result.js';
import { linkTypeFromPcap, type LinkType } from './packet.js';

export interface CaptureOptions {
  /** libpcap device name; `any` captures on every device (Linux cooked headers) */
  readonly device: string;
  /** libpcap filter expression, run in the kernel */
  readonly filter: string;
  /** `frame` is a copy of exactly the captured bytes, safe to keep */
  readonly onFrame: (frame: Buffer, timestampMs: number) => void;
  /** the capture stopped after it was opened (its device went down or away) and is closed;
   *  an E_CAPTURE ReconfigError. Without this, it becomes a process warning. */
  readonly onError?: (error: Error) => void;
  readonly snapLength?: number;
  readonly bufferSize?: number;
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

/** 64 KiB holds any IPv4 or IPv6 packet without jumbo payload. */
const DEFAULT_SNAP_LENGTH = 65_535;
/** 1 MiB of kernel ring: what the filters pass is rare and small. */
const DEFAULT_BUFFER_SIZE = 1 << 20;
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
  try {
    session = pcap.createSession(device, {
      filter,
      // 0 selects libpcap's immediate mode: each packet is handed over as it arrives.
      buffer_timeout: 0,
      snap_length: options.snapLength ?? DEFAULT_SNAP_LENGTH,
      buffer_size: options.bufferSize ?? DEFAULT_BUFFER_SIZE,
      promiscuous: false,
    });
  } catch (error) {
    throw openError(device, filter, error as Error);
  }
  const link = linkTypeFromPcap(session.link_type);
  if (!link.ok) {
    session.close();
    throw linkTypeError(`Capture device ${device}`, session.link_type);
  }

  let open = true;
  let delivered = 0;
  let lastStats: CaptureStats = { received: 0, dropped: 0 };
  const close = (): void => {
    if (!open) return;
    open = false;
    session.close();
  };
  const stop = (why: string): void => {
    close();
    const error = new ReconfigError('E_CAPTURE', `Capture on ${device} stopped: ${why}. It can be opened again once the device is up.`);
    if (options.onError !== undefined) options.onError(error);
    else process.emitWarning(error);
  };

  session.on('packet', (packet) => {
    if (!open) return;
    delivered++;
    const { frame, timestampMs } = copyFrame(packet);
    options.onFrame(frame, timestampMs);
  });
  const native = session.session;
  native.read_callback = () => {
    const before = delivered;
    const result = native.dispatch(session.buf, session.header);
    // After close() this read returned PCAP_ERROR_BREAK and node_pcap released the handle.
    if (!open) return;
    if (result < 0) stop('the device went away');
    // Woken with nothing to read: the POLLERR of a device going down (see the top of this file).
    else if (delivered === before && device !== 'any') stop('the device went down');
  };

  return {
    link: link.value,
    device,
    close,
    stats: () => {
      if (!open) return lastStats;
      const stats = session.stats();
      lastStats = { received: stats.ps_recv, dropped: stats.ps_drop + stats.ps_ifdrop };
      return lastStats;
    },
  };
}

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
