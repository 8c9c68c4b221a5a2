/**
 * Loads the project's own socket addon (src/net/native/inject.c, built by node-gyp into
 * build/Release at the package root) and turns its negative errno answers into text. Used by
 * inject.ts, conntrack.ts (and its events) and bound-udp.ts.
 */
import { createRequire } from 'node:module';
import { getSystemErrorMap } from 'node:util';
import { fileURLToPath } from 'node:url';

export interface NativeSockets {
  /** a raw IP socket with the header included, or -errno */
  openRaw(family: 4 | 6): number;
  /** bytes sent, or -errno */
  sendTo(fd: number, family: 4 | 6, destination: Buffer, packet: Buffer): number;
  /**
   * a NETLINK_NETFILTER socket bound to a kernel-chosen port id, or -errno; with `groups` (a bit
   * mask, bit N-1 for multicast group N) it joins those groups and is non-blocking
   */
  openNetlinkNetfilter(groups?: number): number;
  /** a NETLINK_GENERIC socket bound to a kernel-chosen port id (blocking; read with netlinkReceive), or -errno */
  openNetlinkGeneric(): number;
  /** 0, or -errno */
  netlinkSend(fd: number, message: Buffer): number;
  /** one datagram, or -errno (-ETIMEDOUT when nothing came within timeoutMs) */
  netlinkReceive(fd: number, timeoutMs: number): Buffer | number;
  /** a non-blocking UDP socket bound to address:port and to the device (SO_BINDTODEVICE), or -errno */
  openUdpOnDevice(family: 4 | 6, device: string, address: Buffer, port: number): number;
  /** one datagram (cut to maxBytes), or -errno (-EAGAIN when none is waiting) */
  receiveFrom(fd: number, maxBytes: number): { data: Buffer; address: Buffer; port: number; truncated: boolean } | number;
  /** bytes sent, or -errno */
  sendToUdp(fd: number, family: 4 | 6, address: Buffer, port: number, data: Buffer): number;
  /** calls onReadable (status 0, or a negative libuv error) while fd is readable, until unwatch */
  watch(fd: number, onReadable: (status: number) => void): WatchHandle | number;
  unwatch(handle: WatchHandle): number;
  close(fd: number): number;
  /** this process's AF_PACKET socket descriptors, or -errno */
  packetSockets(): number[] | number;
  /** a close-on-exec duplicate of fd, or -errno */
  duplicate(fd: number): number;
  /** closes fd in libuv's thread pool (whatever the last close costs, the event loop does not wait); 0 or -errno */
  closeInBackground(fd: number): number;
  /**
   * compiles `expression` as libpcap does for a live capture of `linkType` (a DLT_ number:
   * ethernet, raw IP or Linux cooked) and puts it on packet socket fd in place of its filter;
   * 0, -errno, or libpcap's message when it does not compile
   */
  attachFilter(fd: number, linkType: number, snapLength: number, expression: string): number | string;
}

/** An opaque handle from watch(). */
export type WatchHandle = { readonly __watch: unique symbol };

/** From dist/src/net/ (and src/net/ under a TypeScript runner) up to the package root. */
const CANDIDATES = ['../../../build/Release/reconfig_inject.node', '../../build/Release/reconfig_inject.node'];

export const BUILD_HINT = 'build it with `npm run build:native` (needs a C compiler, make and python3; `npm ci` does it too)';

let loaded: { sockets: NativeSockets } | { error: string } | undefined;

/** The addon, or why it could not be loaded (with what to do). Loaded once. */
export function loadNativeSockets(): { sockets: NativeSockets } | { error: string } {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const candidate of CANDIDATES) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    try {
      loaded = { sockets: require(path) as NativeSockets };
      return loaded;
    } catch (error) {
      tried.push(`${path}: ${(error as Error).message.split('\n')[0] ?? ''}`);
    }
  }
  loaded = { error: `The socket addon is missing or does not load (${tried.join('; ')}); ${BUILD_HINT}` };
  return loaded;
}

const ERRORS = getSystemErrorMap();

/** -1 → "EPERM (operation not permitted)". */
export function errnoText(negativeErrno: number): string {
  const entry = ERRORS.get(negativeErrno);
  return entry === undefined ? `errno ${-negativeErrno}` : `${entry[0]} (${entry[1]})`;
}

/** -1 → "EPERM". */
export function errnoName(negativeErrno: number): string {
  return ERRORS.get(negativeErrno)?.[0] ?? `errno ${-negativeErrno}`;
}
