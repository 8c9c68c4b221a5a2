/**
 * Each peer's current endpoint, read the way `wg show IFACE endpoints` reads it but inside the
 * process: over a userspace WireGuard's control socket when the interface has one (uapi.ts),
 * else over the kernel's generic netlink (genetlink.ts), and with `wg show` itself when neither
 * answers (no addon, a kernel without WireGuard's netlink family, an interface that is gone:
 * wg then says why, in the error the caller has always had).
 *
 * Why: the daemon confirms every roam by reading the endpoints, ten at once when ten peers
 * roam together, and each `wg` started is a fork of the daemon, which holds the event loop
 * (and every packet captured meanwhile) for 3-7 ms on a small router.
 */
import { loadNativeSockets, type NativeSockets } from '../net/native.js';
import { WireGuardGenetlink } from './genetlink.js';
import { readUapiEndpoints, uapiSocketPath } from './uapi.js';
import { readEndpoints, type WgRunner } from './wg.js';

export type Endpoints = Map<string, string | undefined>;

/** Which way the last read went: for the status output and tests. */
export type EndpointSource = 'uapi' | 'netlink' | 'wg';

export interface EndpointReader {
  read(iface: string): Promise<Endpoints>;
  /** how the last read was answered (undefined before the first) */
  readonly source: EndpointSource | undefined;
  close(): void;
}

export interface EndpointReaderOptions {
  /** a `wg` runner of the caller's (tests): then every read is `wg show` through it */
  readonly run?: WgRunner;
  /** the socket addon (replaceable for tests); loaded on first use */
  readonly sockets?: NativeSockets | undefined;
  /** where control sockets are looked for (replaceable for tests) */
  readonly uapiDirectory?: string;
}

class InProcessReader implements EndpointReader {
  source: EndpointSource | undefined;
  private netlink: { readonly sockets: NativeSockets; readonly fd: number; readonly wg: WireGuardGenetlink } | 'unavailable' | undefined;

  constructor(private readonly options: EndpointReaderOptions) {}

  async read(iface: string): Promise<Endpoints> {
    if (this.options.run !== undefined) return this.viaWg(iface, this.options.run);
    const path = uapiSocketPath(iface, this.options.uapiDirectory);
    if (path !== undefined) {
      const answer = await readUapiEndpoints(path);
      if (answer.ok) {
        this.source = 'uapi';
        return answer.value;
      }
    } else {
      const netlink = this.openNetlink();
      const answer = netlink === undefined ? undefined : netlink.wg.endpoints(iface);
      if (answer?.ok === true) {
        this.source = 'netlink';
        return answer.value;
      }
    }
    return this.viaWg(iface, undefined);
  }

  private async viaWg(iface: string, run: WgRunner | undefined): Promise<Endpoints> {
    const endpoints = await readEndpoints(iface, run);
    this.source = 'wg';
    return endpoints;
  }

  private openNetlink(): { readonly wg: WireGuardGenetlink } | undefined {
    if (this.netlink === 'unavailable') return undefined;
    if (this.netlink !== undefined) return this.netlink;
    let sockets = this.options.sockets;
    if (sockets === undefined) {
      const loaded = loadNativeSockets();
      sockets = 'error' in loaded ? undefined : loaded.sockets;
    }
    const fd = sockets?.openNetlinkGeneric() ?? -1;
    if (sockets === undefined || fd < 0) {
      this.netlink = 'unavailable';
      return undefined;
    }
    this.netlink = { sockets, fd, wg: new WireGuardGenetlink(sockets, fd) };
    return this.netlink;
  }

  close(): void {
    if (this.netlink !== undefined && this.netlink !== 'unavailable') this.netlink.sockets.close(this.netlink.fd);
    this.netlink = 'unavailable';
  }
}

export function createEndpointReader(options: EndpointReaderOptions = {}): EndpointReader {
  return new InProcessReader(options);
}
