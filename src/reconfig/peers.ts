/**
 * R2's peers, in two parts kept apart (as wireguard-go's Device keeps its static identity apart
 * from its peers): what `wg show` last said, never patched (the listen port, each peer's
 * configuration, the interface's responder and each peer's mac1 key), and what the listener
 * believes of each peer with the work in flight for it, on one Peer object: the endpoint it last
 * confirmed and told, its queue, the packets handed over while a confirmation runs, its cooldown.
 */
import { ReconfigError } from '../common/errors.js';
import type { Datagram } from '../net/packet.js';
import { parseSecret } from '../wireguard/keys.js';
import { mac1KeyOf } from '../wireguard/mac1.js';
import { createResponder, type Responder } from '../wireguard/responder.js';
import type { PeerMac1Key } from '../wireguard/sent.js';
import { readInterface, type InterfaceConfig, type PeerConfig, type WgRunner } from '../wireguard/wg.js';
import { sameEndpoint } from './endpoint.js';

/** What `wg show` said of the interface, without its private key (the responder holds the one copy). */
export interface Shown {
  readonly config: InterfaceConfig;
  readonly responder: Responder;
  /** each peer's mac1 key: names the peer of a handshake message R2 sends */
  readonly peerMacs: ReadonlyMap<string, PeerMac1Key>;
}

/** A packet handed to WireGuard for a peer, remembered while its confirmation runs. */
export interface HandedOver {
  readonly src: string;
  readonly kind: 'initiation' | 'data';
  /** wall-clock ms: the capture's timestamp and when it was handed over (for the log's latencies) */
  readonly capturedAt: number;
  readonly injectedAt: number;
  readonly datagram: Datagram;
}

/** One peer as the listener believes it, and the work in flight for it. */
export class Peer {
  /** in the last `wg show`; a key we only queue work for (unknown, or just removed) is not */
  configured = false;
  /** the endpoint we believe: as `wg show` said, or as moved here and told */
  endpoint: string | undefined;
  /** the tail of this peer's work queue: tasks for one peer never race */
  queue: Promise<void> | undefined;
  /** while a confirmation runs: the packets handed over meanwhile, by source (newest last) */
  handedOver: Map<string, HandedOver> | undefined;
  /** an initiation was handed over meanwhile: the confirmation restarts its waits */
  restartWatch = false;
  /** when a confirmation started by data alone may start again (the injected clock, ms) */
  dataConfirmAfter = 0;

  constructor(readonly publicKey: string) {}
}

export class Peers {
  private shown: Shown | undefined;
  /** configured peers, and unconfigured keys while they have work queued */
  private readonly peers = new Map<string, Peer>();

  get responder(): Responder | undefined {
    return this.shown?.responder;
  }

  get listenPort(): number | undefined {
    return this.shown?.config.listenPort;
  }

  get peerMacs(): ReadonlyMap<string, PeerMac1Key> {
    return this.shown?.peerMacs ?? new Map();
  }

  /** R2's public key as wg prints it. */
  publicKey(): string | undefined {
    return this.shown?.responder.publicKey.toString('base64');
  }

  /** A configured peer. */
  get(key: string): Peer | undefined {
    const peer = this.peers.get(key);
    return peer?.configured === true ? peer : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** The configured peers, in `wg show`'s order. */
  configured(): Peer[] {
    return [...(this.shown?.config.peers.keys() ?? [])].flatMap((key) => this.get(key) ?? []);
  }

  /** A peer's configuration with the endpoint we believe (what `wg set` starts from). */
  configOf(peer: Peer): PeerConfig | undefined {
    const shown = this.shown?.config.peers.get(peer.publicKey);
    return shown === undefined ? undefined : { ...shown, endpoint: peer.endpoint };
  }

  /** The Peer object of any key, made for it if need be: where its work queues. */
  worker(key: string): Peer {
    let peer = this.peers.get(key);
    if (peer === undefined) {
      peer = new Peer(key);
      this.peers.set(key, peer);
    }
    return peer;
  }

  /** Forgets an unconfigured key once it has no work left. */
  release(peer: Peer): void {
    if (!peer.configured && peer.queue === undefined && peer.handedOver === undefined && this.peers.get(peer.publicKey) === peer) this.peers.delete(peer.publicKey);
  }

  /** Reads the interface with `wg show`; throws if it has no usable private key. */
  async read(iface: string, run?: WgRunner): Promise<Shown> {
    const config = await readInterface(iface, run);
    if (config.privateKey === undefined) {
      throw new ReconfigError(
        'E_NO_PRIVATE_KEY',
        `Interface ${iface} has no private key, so no initiation can be verified. Set one: wg set ${iface} private-key FILE.`,
      );
    }
    const secret = parseSecret(config.privateKey);
    if (!secret.ok) throw new ReconfigError('E_WG', `wg printed a private key for ${iface} that is not a valid key.`);
    const previous = this.shown?.peerMacs;
    const peerMacs = new Map<string, PeerMac1Key>();
    for (const peer of config.peers.keys()) peerMacs.set(peer, previous?.get(peer) ?? { peer, mac1Key: mac1KeyOf(Buffer.from(peer, 'base64')) });
    // Keep the configuration without its private key; the Secret inside the responder is the one copy.
    return { config: { ...config, privateKey: undefined }, responder: createResponder(secret.value), peerMacs };
  }

  /**
   * Takes `fresh` as what `wg show` says. A peer's believed endpoint follows it, except one
   * that moved without us between two reads of the same key: that is returned, to be told from
   * the endpoint believed before (or by the confirmation running for it).
   */
  adopt(fresh: Shown): { keyChanged: boolean; moved: { peer: Peer; to: string }[] } {
    const before = this.shown;
    const keyChanged = before !== undefined && !fresh.responder.publicKey.equals(before.responder.publicKey);
    this.shown = keyChanged || before === undefined ? fresh : { ...fresh, responder: before.responder };
    // Under a new key (the interface was recreated) nothing is compared: what wg shows is believed.
    const noticing = before !== undefined && !keyChanged;
    const moved: { peer: Peer; to: string }[] = [];
    for (const shown of fresh.config.peers.values()) {
      const peer = this.worker(shown.publicKey);
      const known = noticing && peer.configured; // as of the read before this one
      if (known && shown.endpoint !== undefined && !sameEndpoint(peer.endpoint, shown.endpoint)) moved.push({ peer, to: shown.endpoint });
      else peer.endpoint = shown.endpoint;
    }
    for (const peer of this.peers.values()) {
      peer.configured = fresh.config.peers.has(peer.publicKey);
      this.release(peer);
    }
    return { keyChanged, moved };
  }
}
