/**
 * The endpoint registry on R2: what the daemon knows of each peer (public key, endpoint, allowed
 * IPs, when last proved), served as wgsd's DNS-SD records on one address of the WireGuard
 * interface, to the peers' own tunnel addresses only.
 *
 * The socket is bound to the interface (SO_BINDTODEVICE, bound-udp.ts): with rp_filter off,
 * Linux would otherwise hand it a datagram that came in on the WAN side with a peer's tunnel
 * address as its source. What arrives through the interface was let in by WireGuard, which
 * drops any packet whose source is outside the sending peer's allowed IPs; handler.ts then
 * answers only sources inside some peer's allowed IPs, within that peer's budget.
 *
 * The records come from the daemon's own model (the last `wg show` dump, the endpoints it
 * believes, the moves it confirmed): no `wg` is run for a query. They are rebuilt when an
 * endpoint change is told and after each re-read of the interface (and at most a second old).
 *
 * The address must be on the interface. If the interface has no address of that family yet
 * (it is being brought up), the registry waits and looks again on each re-read; if the
 * interface goes away and comes back (a new ifindex), the socket is opened again.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { ReconfigError, usageError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { BoundUdpSocket, type BoundUdpOptions, type Datagram } from '../net/bound-udp.js';
import { canonicalAddress } from '../net/local.js';
import type { EndpointChange } from '../reconfig/change.js';
import { formatEndpoint, parseEndpoint, sameEndpoint } from '../reconfig/endpoint.js';
import { AllowedIps } from './allowed-ips.js';
import { Budget } from './budget.js';
import { RegistryCounters, type RegistryCounts } from './counters.js';
import { RegistryHandler, type RegistryState } from './handler.js';
import type { RegistryOptions } from './options.js';
import { Directory, type RegistryPeer } from './records.js';
import { MAX_QUERY_BYTES } from './wire.js';

/** One peer as the daemon's model has it (listener.ts registryModel()). */
export interface ModelPeer {
  readonly publicKey: string;
  /** as wg prints it; undefined: none */
  readonly endpoint: string | undefined;
  readonly allowedIps: readonly string[];
  /** unix seconds; 0: never */
  readonly latestHandshake: number;
}

export interface RegistryStatus extends RegistryCounts {
  /** `203.0.113.1:5182`, `[2001:db8::1]:5182` */
  readonly listen: string;
  readonly zone: string;
  /** serving, or waiting for the address to appear on the interface */
  readonly state: 'serving' | 'waiting';
  /** peers served (those with an endpoint) */
  readonly peers: number;
}

/** The socket as the registry uses it (a stand-in in unit tests). */
export interface RegistrySocket {
  listen(onDatagram: (datagram: Datagram) => void, onError: (message: string) => void): void;
  send(address: string, port: number, data: Buffer): string | undefined;
  close(): void;
}

/** What the kernel has on the interfaces now: addresses by interface name, and an interface's index. */
export interface InterfaceView {
  addresses(): ReadonlyMap<string, readonly string[]>;
  ifindex(iface: string): number | undefined;
}

export const systemInterfaces: InterfaceView = {
  addresses() {
    const out = new Map<string, string[]>();
    for (const [name, infos] of Object.entries(networkInterfaces())) {
      out.set(name, (infos ?? []).flatMap((info) => canonicalAddress(info.address.split('%')[0] ?? '') ?? []));
    }
    return out;
  },
  ifindex(iface) {
    try {
      const index = Number(readFileSync(`/sys/class/net/${iface}/ifindex`, 'utf8').trim());
      return Number.isInteger(index) ? index : undefined;
    } catch {
      return undefined;
    }
  },
};

export interface RegistryDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly options: RegistryOptions;
  /** the daemon's model, read when the records are rebuilt */
  readonly model: () => readonly ModelPeer[];
  readonly interfaces?: InterfaceView;
  readonly openSocket?: (options: BoundUdpOptions) => RegistrySocket;
  /** monotonic ms (budgets, the records' age) */
  readonly now?: () => number;
}

/** The records are rebuilt at least this often, whatever told or not. */
const MAX_STATE_AGE_MS = 1000;

export class Registry {
  private readonly counters: RegistryCounters;
  private readonly budget: Budget;
  private readonly handler: RegistryHandler;
  private readonly interfaces: InterfaceView;
  private readonly now: () => number;
  private socket: RegistrySocket | undefined;
  private boundIndex: number | undefined;
  private state: RegistryState | undefined;
  private builtAt = Number.NEGATIVE_INFINITY;
  /** peer → the endpoint a confirmed move took it to, and when (unix s) */
  private readonly confirmed = new Map<string, { readonly to: string; readonly at: number }>();
  private waitingSaid = false;
  private failingSaid = false;
  private stopped = false;

  constructor(private readonly deps: RegistryDeps) {
    this.counters = new RegistryCounters(deps.logger);
    this.now = deps.now ?? (() => performance.now());
    this.budget = new Budget(this.now);
    this.interfaces = deps.interfaces ?? systemInterfaces;
    this.handler = new RegistryHandler({ state: () => this.current(), budget: this.budget, counters: this.counters });
  }

  get listen(): string {
    return formatEndpoint(this.deps.options.address, this.deps.options.port);
  }

  /**
   * Says, before the daemon starts, whether the address can ever be right: on another
   * interface, or not among the interface's addresses of its family, it cannot (exit 2).
   */
  checkAddress(): void {
    const { iface, options } = this.deps;
    const all = this.interfaces.addresses();
    const own = all.get(iface) ?? [];
    if (own.includes(options.address)) return;
    for (const [name, addresses] of all) {
      if (name !== iface && addresses.includes(options.address)) {
        throw usageError(`--registry ${options.address} is an address of ${name}, not of ${iface}: the registry answers only inside the tunnel. Give an address of ${iface}${this.listOf(own)}.`);
      }
    }
    const sameFamily = own.filter((address) => address.includes(':') === (options.family === 6));
    if (sameFamily.length > 0) throw usageError(`--registry ${options.address} is not an address of ${iface}${this.listOf(sameFamily)}.`);
  }

  private listOf(addresses: readonly string[]): string {
    return addresses.length === 0 ? '' : ` (it has ${addresses.join(', ')})`;
  }

  /** Opens the socket if the address is there, else waits for it (see refresh). */
  start(): void {
    this.checkAddress();
    this.open(true);
  }

  /** After each re-read of the interface: new records, and the socket (re)opened if it must be. */
  refresh(): void {
    this.state = undefined;
    if (this.stopped) return;
    const { iface, options } = this.deps;
    if (this.socket !== undefined) {
      const present = (this.interfaces.addresses().get(iface) ?? []).includes(options.address);
      if (present && this.interfaces.ifindex(iface) === this.boundIndex) return;
      this.deps.logger.info({ event: 'registry.lost', interface: iface, listen: this.listen }, `registry: ${options.address} is gone from ${iface}; waiting for it`);
      this.close();
      this.waitingSaid = true;
    }
    this.open(false);
  }

  /** A confirmed endpoint change: its time is when the endpoint was last proved. */
  changed(change: EndpointChange): void {
    this.confirmed.set(change.peer, { to: change.to, at: Math.floor(change.at / 1000) });
    this.state = undefined;
  }

  /** One datagram as the socket gives it: the answer, if any (sent by the caller). Never throws. */
  handle(datagram: Datagram): Buffer | undefined {
    return this.handler.handle(datagram);
  }

  status(): RegistryStatus {
    return { listen: this.listen, zone: this.deps.options.zone, state: this.socket === undefined ? 'waiting' : 'serving', peers: this.current().directory.size, ...this.counters.record() };
  }

  stop(): void {
    this.stopped = true;
    this.close();
    this.counters.stop();
  }

  private close(): void {
    this.socket?.close();
    this.socket = undefined;
    this.boundIndex = undefined;
  }

  private open(starting: boolean): void {
    const { iface, options, logger } = this.deps;
    if (this.socket !== undefined || this.stopped) return;
    if (!(this.interfaces.addresses().get(iface) ?? []).includes(options.address)) {
      if (!this.waitingSaid) logger.warn({ event: 'registry.waiting', interface: iface, listen: this.listen }, `registry: ${options.address} is not on ${iface} yet; it is served once it is (looked for on each re-read)`);
      this.waitingSaid = true;
      return;
    }
    const index = this.interfaces.ifindex(iface);
    let socket: RegistrySocket;
    try {
      socket = (this.deps.openSocket ?? BoundUdpSocket.open)({ family: options.family, device: iface, address: options.address, port: options.port, maxBytes: MAX_QUERY_BYTES });
    } catch (error) {
      const message = (error as Error).message;
      if (starting && message.includes('EADDRINUSE')) {
        throw usageError(`--registry: port ${options.port} on ${options.address} is taken by another program. Choose another port: --registry ${formatEndpoint(options.address, options.port + 1)}.`);
      }
      if (starting) throw error instanceof ReconfigError ? error : new ReconfigError('E_SOCKET', message);
      if (!this.failingSaid) logger.error({ event: 'error', code: 'E_SOCKET', interface: iface }, `registry: ${message}; trying again on the next re-read`);
      this.failingSaid = true;
      return;
    }
    socket.listen(
      (datagram) => {
        const reply = this.handle(datagram);
        if (reply === undefined) return;
        const failed = socket.send(datagram.address, datagram.port, reply);
        if (failed !== undefined) this.counters.ignore('send-failed', { error: failed });
      },
      (message) => this.counters.ignore('socket-error', { error: message }),
    );
    this.socket = socket;
    this.boundIndex = index;
    this.waitingSaid = false;
    this.failingSaid = false;
    logger.info({ event: 'registry.listening', interface: iface, listen: this.listen, zone: options.zone }, `registry: serving _wireguard._udp.${options.zone} on ${this.listen} (${iface} only)`);
  }

  /** The records and the tunnel-address table of now (rebuilt when told, or when a second old). */
  private current(): RegistryState {
    const now = this.now();
    if (this.state !== undefined && now - this.builtAt < MAX_STATE_AGE_MS) return this.state;
    const model = this.deps.model();
    const keys = new Set(model.map((peer) => peer.publicKey));
    for (const key of this.confirmed.keys()) if (!keys.has(key)) this.confirmed.delete(key);
    this.budget.retain(keys);
    const peers: RegistryPeer[] = model.map((peer) => ({
      publicKey: peer.publicKey,
      endpoint: peer.endpoint === undefined ? undefined : parseEndpoint(peer.endpoint),
      allowedIps: peer.allowedIps,
      verifiedAt: this.verifiedAt(peer),
    }));
    this.state = {
      directory: new Directory(this.deps.options.zone, peers),
      allowedIps: new AllowedIps(model.map((peer) => ({ owner: peer.publicKey, allowedIps: peer.allowedIps }))),
    };
    this.builtAt = now;
    return this.state;
  }

  /**
   * When the endpoint was last proved: the latest handshake (WireGuard authenticated the peer,
   * and takes its endpoint from authenticated packets), or a move to this endpoint that the
   * daemon confirmed with `wg show`, whichever is later; undefined when neither happened.
   */
  private verifiedAt(peer: ModelPeer): number | undefined {
    const move = this.confirmed.get(peer.publicKey);
    const moved = move !== undefined && sameEndpoint(move.to, peer.endpoint) ? move.at : 0;
    const at = Math.max(peer.latestHandshake, moved);
    return at > 0 ? at : undefined;
  }
}
