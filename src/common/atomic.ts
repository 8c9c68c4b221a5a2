/**
 * Files the daemons write are written to a temporary name in the same directory, flushed and
 * renamed into place, so a crash or power loss leaves the old file or the new one, never half.
 * The directory must be private (private-dir.ts), and the temporary file is created new
 * (O_EXCL) and never opened through a link (O_NOFOLLOW): whatever sits at its name, nothing
 * but a fresh file of ours is written. The rename replaces a link at the final name, never
 * what it points to.
 */
import { closeSync, constants, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { ensurePrivateDir } from './private-dir.js';
import { isAlive as exists } from './proc.js';

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Creates `temp` new. A name already taken is a temporary file a writer with our pid left when
 * it was killed (the directory is private, nobody else writes there): its name is removed
 * (a link itself, never its target) and the file created again, still exclusively.
 */
function createNew(temp: string, mode: number): number {
  try {
    return openSync(temp, CREATE_NEW, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  rmSync(temp, { force: true });
  return openSync(temp, CREATE_NEW, mode);
}

/**
 * A writer killed between creating its temporary file and renaming it (kill -9, power loss)
 * leaves `.NAME.PID.tmp` behind; once that PID is gone, the next write of NAME removes it.
 */
function removeStaleTemps(dir: string, name: string): void {
  const prefix = `.${name}.`;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !entry.endsWith('.tmp')) continue;
    const pid = Number(entry.slice(prefix.length, -'.tmp'.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || exists(pid)) continue;
    rmSync(join(dir, entry), { force: true });
  }
}

/** Writes `data` to `path` as a new file with `mode` (0600 unless told), renamed into place. */
export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const dir = dirname(path);
  ensurePrivateDir(dir);
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const fd = createNew(temp, mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  try {
    // The rename is durable only once the directory entry is on disk.
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself still happened
  }
  removeStaleTemps(dir, basename(path));
}

/**
 * writeFileAtomic, its waits in libuv's thread pool: the write, both fsyncs and the rename do
 * not hold the event loop (each fsync can take milliseconds, tens on a busy disk). The same
 * steps in the same order; the caller must not run two for the same path at once (they would
 * share the temporary name).
 */
export async function writeFileAtomicAsync(path: string, data: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  ensurePrivateDir(dir);
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  let file = await open(temp, CREATE_NEW, mode).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
    await rm(temp, { force: true });
    return open(temp, CREATE_NEW, mode);
  });
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (error) {
    await file.close();
    await rm(temp, { force: true });
    throw error;
  }
  await file.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  try {
    file = await open(dir, 'r');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself still happened
  }
  removeStaleTemps(dir, basename(path));
}
