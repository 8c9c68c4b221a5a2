/**
 * Probe → knock. A traceroute probe that just reaches us arrives with IPv4 TTL or IPv6 hop
 * limit 1 on a port of the range (traceroute adds one to the port per probe). One traceroute
 * sends several such probes (one per query of the last hop, and BusyBox and macOS send them
 * one after another), so the probes of one source collapse into one knock until that source
 * has been quiet for a whole window.
 */
import type { Datagram } from '../net/packet.js';

export interface Knock {
  readonly src: string;
  readonly port: number;
  readonly ttl: number;
  readonly proto: 'udp' | 'tcp';
  readonly family: 4 | 6;
}

export type IgnoredReason = 'ttl' | 'port' | 'tcp-flags';

export type ProbeVerdict =
  | { readonly kind: 'knock'; readonly knock: Knock }
  /** a later probe of a traceroute already counted */
  | { readonly kind: 'repeat'; readonly knock: Knock }
  | { readonly kind: 'ignored'; readonly reason: IgnoredReason };

export interface DetectorOptions {
  readonly basePort: number;
  readonly range: number;
  /** quiet time after which a source's next probe is a new knock */
  readonly windowMs: number;
  /** sources remembered at once; a flood of spoofed sources cannot grow memory past it */
  readonly maxSources?: number;
  readonly now?: () => number;
}

/** RFC 9293 §3.1 control bits */
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
/** The hop count a probe has left when it reaches its destination as the last hop. */
const LAST_HOP_TTL = 1;
const DEFAULT_MAX_SOURCES = 4096;

export class KnockDetector {
  /** source → time of its last probe; insertion order is oldest first (entries are re-inserted) */
  private readonly lastProbe = new Map<string, number>();
  private readonly now: () => number;
  private readonly maxSources: number;

  constructor(private readonly options: DetectorOptions) {
    this.now = options.now ?? (() => performance.now());
    this.maxSources = options.maxSources ?? DEFAULT_MAX_SOURCES;
  }

  /**
   * The kernel filter already lets only probes through; checking again keeps this function
   * the one statement of what a probe is, whatever the capture did.
   */
  observe(datagram: Datagram): ProbeVerdict {
    if (datagram.ttl !== LAST_HOP_TTL) return { kind: 'ignored', reason: 'ttl' };
    const { basePort, range } = this.options;
    if (datagram.dstPort < basePort || datagram.dstPort >= basePort + range) return { kind: 'ignored', reason: 'port' };
    // a TCP traceroute probe opens a connection: SYN without ACK; anything else is not a probe
    if (datagram.protocol === 'tcp' && (datagram.tcpFlags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) {
      return { kind: 'ignored', reason: 'tcp-flags' };
    }
    const knock: Knock = { src: datagram.src, port: datagram.dstPort, ttl: datagram.ttl, proto: datagram.protocol, family: datagram.family };
    const at = this.now();
    this.forgetQuietSources(at);
    const last = this.lastProbe.get(knock.src);
    // every probe restarts the window, so a slow traceroute stays one knock
    this.lastProbe.delete(knock.src);
    this.lastProbe.set(knock.src, at);
    if (this.lastProbe.size > this.maxSources) this.forgetOldest();
    return last === undefined ? { kind: 'knock', knock } : { kind: 'repeat', knock };
  }

  /** sources currently inside their window */
  get tracking(): number {
    return this.lastProbe.size;
  }

  private forgetQuietSources(at: number): void {
    for (const [src, last] of this.lastProbe) {
      if (at - last < this.options.windowMs) break;
      this.lastProbe.delete(src);
    }
  }

  private forgetOldest(): void {
    const oldest = this.lastProbe.keys().next();
    if (oldest.done !== true) this.lastProbe.delete(oldest.value);
  }
}
