/**
 * The `files` item of `reconfig-wg check`: the directories the daemon keeps its files in, and
 * the replay state it would read at start, judged by the same rules the daemon applies
 * (private-dir.ts, own-file.ts), so a start never fails on what `check` called fine.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readOwnFile } from '../common/own-file.js';
import { unusableDir } from '../common/private-dir.js';
import { runtimeDir, STATE_DIR } from '../common/runtime-dir.js';

export interface FilesVerdict {
  readonly ok: boolean;
  readonly detail: string;
  readonly fix?: string;
}

/** A directory the daemon uses, or creates inside a private parent. */
function directory(dir: string): string | undefined {
  if (existsSync(dir)) return unusableDir(dir);
  const parent = unusableDir(dirname(dir));
  return parent === undefined ? undefined : `${dir} does not exist and cannot be made safely: ${parent}`;
}

/** Checks the runtime and state directories and the interface's state file. */
export function checkFiles(iface: string | undefined, dirs = { runtime: runtimeDir('reconfig-wg'), state: STATE_DIR }): FilesVerdict {
  const problems: string[] = [];
  for (const dir of [dirs.runtime, dirs.state]) {
    const why = directory(dir);
    if (why !== undefined) problems.push(why);
  }
  if (iface !== undefined) {
    // as options.ts names it by default: STATE_DIR/IFACE.json
    const file = join(dirs.state, `${iface}.json`);
    const checked = readOwnFile(file);
    if (checked !== undefined && !checked.ok) problems.push(`the state file ${file} would be refused: ${checked.reason}`);
  }
  if (problems.length > 0) {
    return { ok: false, detail: problems.join('; '), fix: 'make them root-owned and writable by nobody else (mode 0700 or 0750), or remove what someone else left there' };
  }
  return { ok: true, detail: `${dirs.runtime} and ${dirs.state}: private, writable${iface === undefined ? '' : ', the state file readable'}` };
}
