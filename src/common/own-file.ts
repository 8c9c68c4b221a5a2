/**
 * Reads a file this daemon left for itself (the session indices it hands to its successor), only
 * if nobody else could have put it there or changed it: a regular file, not a link, owned by
 * this process's user, writable by nobody else, and small. Anything else is refused with a
 * reason, never read: what it would say could plant session indices.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { fail, ok, type Result } from './result.js';

/** More than any session list this daemon writes (3 indices per peer, thousands of peers). */
export const MAX_OWN_FILE_BYTES = 1024 * 1024;

/** Undefined when there is no such file; otherwise its text, or why it was not read. */
export function readOwnFile(path: string, uid = process.getuid?.() ?? 0): Result<string, string> | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    return fail(code === 'ELOOP' ? 'it is a symbolic link' : `it cannot be opened (${code ?? 'error'})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return fail('it is not a regular file');
    if (stat.uid !== uid) return fail(`it belongs to uid ${stat.uid}, not to this process's user (${uid})`);
    if ((stat.mode & 0o022) !== 0) return fail(`others may write it (mode ${(stat.mode & 0o777).toString(8)})`);
    if (stat.size > MAX_OWN_FILE_BYTES) return fail(`it is larger than ${MAX_OWN_FILE_BYTES} bytes`);
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return ok(buffer.subarray(0, read).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}
