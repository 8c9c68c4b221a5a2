/**
 * An in-memory stand-in for the `wg` tool, for unit tests of the listener only (the e2e tests
 * use the real one). It understands `show IFACE dump`, `show IFACE endpoints`, `show interfaces` and `set IFACE peer …`.
 */
import type { WgRunner } from '../../src/wireguard/wg.js';

export interface FakePeer {
  publicKey: string;
  endpoint?: string;
  keepalive: number;
}

export class FakeWg {
  readonly calls: string[][] = [];
  exists = true;
  /** `set` fails as a wg that cannot reach the interface would */
  failSet = false;

  constructor(
    readonly name: string,
    readonly privateKey: string,
    readonly publicKey: string,
    public listenPort: number,
    readonly peers: FakePeer[],
  ) {}

  readonly run: WgRunner = async (args) => {
    this.calls.push([...args]);
    const [verb, iface, ...rest] = args;
    if (verb === 'show' && iface === 'interfaces') return { exitCode: 0, stdout: this.exists ? `${this.name}\n` : '', stderr: '' };
    if (iface !== this.name || !this.exists) return { exitCode: 1, stdout: '', stderr: 'Unable to access interface: No such device' };
    if (verb === 'show' && rest[0] === 'dump') return { exitCode: 0, stdout: this.dump(), stderr: '' };
    if (verb === 'set' && this.failSet) return { exitCode: 1, stdout: '', stderr: 'Unable to modify interface: Operation not permitted' };
    if (verb === 'show' && rest[0] === 'endpoints') {
      return { exitCode: 0, stdout: this.peers.map((p) => `${p.publicKey}\t${p.endpoint ?? '(none)'}\n`).join(''), stderr: '' };
    }
    if (verb === 'set' && rest[0] === 'peer') {
      const peer = this.peers.find((p) => p.publicKey === rest[1]);
      if (peer === undefined) return { exitCode: 1, stdout: '', stderr: 'no such peer' };
      for (let i = 2; i < rest.length; i += 2) {
        const value = rest[i + 1] ?? '';
        if (rest[i] === 'endpoint') peer.endpoint = value;
        if (rest[i] === 'persistent-keepalive') peer.keepalive = value === 'off' ? 0 : Number(value);
      }
      return { exitCode: 0, stdout: '', stderr: '' };
    }
    return { exitCode: 1, stdout: '', stderr: `unsupported: ${args.join(' ')}` };
  };

  /** The `set` calls made so far, without the interface name. */
  get sets(): string[][] {
    return this.calls.filter((c) => c[0] === 'set').map((c) => c.slice(2));
  }

  private dump(): string {
    const head = `${this.privateKey}\t${this.publicKey}\t${this.listenPort}\toff\n`;
    const lines = this.peers.map(
      (p) => `${p.publicKey}\t(none)\t${p.endpoint ?? '(none)'}\t203.0.113.0/32\t0\t0\t0\t${p.keepalive === 0 ? 'off' : p.keepalive}\n`,
    );
    return head + lines.join('');
  }
}
