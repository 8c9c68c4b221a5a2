/**
 * The directories the daemons write to, and the files they read back, are trusted only when
 * nobody else could have put something there: a directory owned by root (or by the user
 * running us) and writable by nobody else, on a path that nobody else can change (every
 * directory above it the same, or sticky like /tmp; a symbolic link on the way root's or ours).
 * A shared /tmp fails this, so does an attacker's /tmp/reconfig-wg: a file there could be a
 * link to /etc/shadow, or a status the attacker wrote.
 *
 * This is the one place that decides whether a directory is usable; files are read back with
 * own-file.ts (never through a link, never someone else's).
 */
import { accessSync, constants, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ReconfigError } from './errors.js';
import { readOwnFile } from './own-file.js';
import { fail, type Result } from './result.js';

const GROUP_OR_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

function ourUid(): number {
  return process.getuid?.() ?? 0;
}

/** root's, or ours */
function trusted(uid: number): boolean {
  return uid === 0 || uid === ourUid();
}

function mode(value: number): string {
  return `0${(value & 0o7777).toString(8)}`;
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/** The errno code (EACCES, EROFS …) that keeps us from writing `path`, or undefined when we can. */
export function notWritable(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (error) {
    return errorCode(error);
  }
}

/**
 * Why `dir` is not a private directory we may write to, or undefined when it is: it exists, is
 * a directory, root's or ours, writable by neither group nor others, every directory above it
 * too (or sticky), every symbolic link on the way root's or ours, and (unless `write` is false:
 * only to read what is there) we can write it.
 */
export function unusableDir(dir: string, { write = true }: { readonly write?: boolean } = {}): string | undefined {
  const absolute = resolve(dir);
  let prefix = '/';
  for (const part of absolute.split('/').filter((p) => p !== '')) {
    prefix = join(prefix, part);
    let link;
    try {
      link = lstatSync(prefix);
    } catch (error) {
      return errorCode(error) === 'ENOENT' ? `${prefix} does not exist` : `${prefix} cannot be read (${errorCode(error)})`;
    }
    if (link.isSymbolicLink() && !trusted(link.uid)) return `${prefix} is a symbolic link owned by uid ${link.uid}`;
  }
  let real: string;
  try {
    real = realpathSync(absolute);
  } catch (error) {
    return `${absolute} cannot be resolved (${errorCode(error)})`;
  }
  const self = statSync(real);
  if (!self.isDirectory()) return `${absolute} is not a directory`;
  if (!trusted(self.uid)) return `${absolute} is owned by uid ${self.uid}, not root`;
  if ((self.mode & GROUP_OR_OTHER_WRITE) !== 0) return `${absolute} is writable by group or others (mode ${mode(self.mode)})`;
  for (let parent = dirname(real); ; parent = dirname(parent)) {
    const above = statSync(parent);
    if (!trusted(above.uid)) return `${parent}, above ${absolute}, is owned by uid ${above.uid}`;
    if ((above.mode & GROUP_OR_OTHER_WRITE) !== 0 && (above.mode & STICKY) === 0) {
      return `${parent}, above ${absolute}, is writable by group or others (mode ${mode(above.mode)})`;
    }
    if (parent === dirname(parent)) break;
  }
  const denied = write ? notWritable(absolute) : undefined;
  return denied === undefined ? undefined : `${absolute} is not writable (${denied})`;
}

/**
 * Makes sure `dir` is a private directory we may write to, creating what is missing of it
 * (with `mode`) inside a directory that already is one; throws E_UNSAFE_DIR (exit 2) with
 * `fix` otherwise.
 */
export function ensurePrivateDir(dir: string, options: { readonly mode?: number; readonly fix?: string } = {}): void {
  const absolute = resolve(dir);
  const refuse = (why: string): ReconfigError =>
    new ReconfigError('E_UNSAFE_DIR', `Cannot keep files in ${absolute}: ${why}. ${options.fix ?? 'Files are kept only in a directory that root (or the user running this) alone can write: choose a path in one.'}`, { exitCode: 2 });
  const missing: string[] = [];
  let existing = absolute;
  for (;;) {
    try {
      lstatSync(existing);
      break;
    } catch {
      if (existing === dirname(existing)) break;
      missing.unshift(existing);
      existing = dirname(existing);
    }
  }
  if (missing.length > 0) {
    const why = unusableDir(existing);
    if (why !== undefined) throw refuse(why);
    for (const level of missing) {
      try {
        mkdirSync(level, { mode: options.mode ?? 0o755 });
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw refuse(`${level} cannot be created (${errorCode(error)})`);
      }
    }
  }
  const why = unusableDir(absolute);
  if (why !== undefined) throw refuse(why);
}

/**
 * Reads a file root or we wrote (a pid file, a status file) with own-file.ts's rules: a regular
 * file, not a link, writable by nobody else, small. Ours, or root's when we are not root (the
 * status of a root daemon read by its operator). Says what is wrong instead of throwing.
 */
export function readTrustedFile(path: string): Result<string> {
  const ours = readOwnFile(path);
  if (ours === undefined) return fail('does not exist');
  if (ours.ok || ourUid() === 0) return ours;
  return readOwnFile(path, 0) ?? fail('does not exist');
}
