/**
 * A UDP socket that hears only what arrived through one interface (SO_BINDTODEVICE), for
 * services that must answer only inside the tunnel: with rp_filter off, Linux otherwise accepts
 * a datagram for a local address on any interface, so one spoofed from the WAN side with a
 * peer's tunnel address as its source would reach a socket bound only to an address.
 *
 * Datagrams are read in bounded batches per readiness callback, so a flood cannot hold the event
 * loop; what is left is read on the next turn (the watch is level-triggered).
 */
import { ReconfigError } from '../common/errors.js';
import { addressBytes } from './address.js';
import { formatIpv4 } from './ipv4.js';
import { formatIpv6 } from './ipv6.js';
import { errnoText, loadNativeSockets, type NativeSockets, type WatchHandle } from './native.js';

export interface Datagram {
  readonly data: Buffer;
  /** the sender's address, as text */
  readonly address: string;
  readonly port: number;
  readonly truncated: boolean;
}

export interface BoundUdpOptions {
  readonly family: 4 | 6;
  readonly device: string;
  readonly address: string;
  readonly port: number;
  /** the longest datagram kept; longer ones are cut and marked truncated */
  readonly maxBytes: number;
  /** datagrams read per readiness callback at most (default 64) */
  readonly batch?: number;
}

const EAGAIN = -11;

/** As the packet decoders write addresses (dotted quad; RFC 5952), so they compare equal. */
function addressText(bytes: Buffer): string {
  return bytes.length === 4 ? formatIpv4(bytes, 0) : formatIpv6(bytes, 0);
}

export class BoundUdpSocket {
  private watchHandle: WatchHandle | undefined;
  private closed = false;

  private constructor(
    private readonly sockets: NativeSockets,
    private readonly fd: number,
    private readonly options: BoundUdpOptions,
  ) {}

  /** Opens and binds the socket; throws a ReconfigError that says why it could not. */
  static open(options: BoundUdpOptions): BoundUdpSocket {
    const native = loadNativeSockets();
    if ('error' in native) throw new ReconfigError('E_SOCKET', native.error);
    const bytes = addressBytes(options.family, options.address);
    if (bytes === undefined) throw new ReconfigError('E_USAGE', `${options.address} is not an IPv${options.family} address`);
    const fd = native.sockets.openUdpOnDevice(options.family, options.device, bytes, options.port);
    if (fd < 0) {
      throw new ReconfigError('E_SOCKET', `Cannot listen on ${options.address} port ${options.port} on ${options.device}: ${errnoText(fd)}`);
    }
    return new BoundUdpSocket(native.sockets, fd, options);
  }

  /** Calls onDatagram for each datagram that arrives, until close(). */
  listen(onDatagram: (datagram: Datagram) => void, onError: (message: string) => void): void {
    if (this.watchHandle !== undefined || this.closed) return;
    const batch = this.options.batch ?? 64;
    const handle = this.sockets.watch(this.fd, (status) => {
      if (status < 0) {
        onError(`watching the socket failed (${status})`);
        return;
      }
      for (let i = 0; i < batch && !this.closed; i += 1) {
        const got = this.sockets.receiveFrom(this.fd, this.options.maxBytes);
        if (typeof got === 'number') {
          if (got !== EAGAIN) onError(errnoText(got));
          return;
        }
        onDatagram({ data: got.data, address: addressText(got.address), port: got.port, truncated: got.truncated });
      }
    });
    if (typeof handle === 'number') throw new ReconfigError('E_SOCKET', `Cannot watch the socket: ${errnoText(handle)}`);
    this.watchHandle = handle;
  }

  /** Sends one datagram; returns an error text, or undefined when sent. */
  send(address: string, port: number, data: Buffer): string | undefined {
    if (this.closed) return 'the socket is closed';
    const bytes = addressBytes(this.options.family, address);
    if (bytes === undefined) return `${address} is not an IPv${this.options.family} address`;
    const sent = this.sockets.sendToUdp(this.fd, this.options.family, bytes, port, data);
    return sent < 0 ? errnoText(sent) : undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchHandle !== undefined) this.sockets.unwatch(this.watchHandle);
    this.watchHandle = undefined;
    this.sockets.close(this.fd);
  }
}
