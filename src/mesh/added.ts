/**
 * The peers this mesh client added to the interface, remembered in a private file (replaced
 * atomically) so that a restart after a crash removes them too, and so that no peer it did not
 * add is ever touched. A key is written here before the peer is added, and taken out only after
 * it is removed: a crash in between leaves the file naming one peer too many, never too few.
 */
import { rmSync } from 'node:fs';
import { writeFileAtomic } from '../common/atomic.js';
import { ReconfigError } from '../common/errors.js';
import { readTrustedFile } from '../common/private-dir.js';

const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
/** More than --max-peers allows: the file is bounded like everything read. */
const MAX_KEYS = 4096;

export class AddedPeers {
  private readonly keys = new Set<string>();

  constructor(
    private readonly path: string,
    private readonly iface: string,
  ) {}

  /** What the file says (a previous run's leftovers), or nothing when there is no usable file. */
  load(): { keys: string[]; problem: string | undefined } {
    const text = readTrustedFile(this.path);
    if (!text.ok) return { keys: [], problem: text.reason === 'does not exist' ? undefined : text.reason };
    try {
      const parsed = JSON.parse(text.value) as { interface?: unknown; peers?: unknown };
      if (parsed.interface !== this.iface || !Array.isArray(parsed.peers)) return { keys: [], problem: 'it is not this interface\'s list' };
      const keys = parsed.peers.filter((key): key is string => typeof key === 'string' && KEY_BASE64.test(key)).slice(0, MAX_KEYS);
      for (const key of keys) this.keys.add(key);
      return { keys, problem: undefined };
    } catch {
      return { keys: [], problem: 'it is not JSON' };
    }
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  list(): string[] {
    return [...this.keys];
  }

  get size(): number {
    return this.keys.size;
  }

  add(key: string): void {
    if (this.keys.has(key)) return;
    this.keys.add(key);
    this.save();
  }

  delete(key: string): void {
    if (!this.keys.delete(key)) return;
    this.save();
  }

  private save(): void {
    try {
      if (this.keys.size === 0) rmSync(this.path, { force: true });
      else writeFileAtomic(this.path, `${JSON.stringify({ interface: this.iface, peers: [...this.keys] })}\n`);
    } catch (error) {
      throw new ReconfigError('E_STATE_FILE', `Cannot write ${this.path}, the list of peers the mesh client added: ${(error as Error).message}. Pass --peers-file with a path in a directory only root can write.`);
    }
  }
}
