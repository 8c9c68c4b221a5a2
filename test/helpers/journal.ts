/**
 * A command's output as systemd's journal would take it: stdout and stderr go to two files, and
 * JOURNAL_STREAM names the one that stands for the journal's socket (device:inode, as systemd
 * sets it).
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Runs a command with stdout and stderr to two files, JOURNAL_STREAM naming one of them (as
 * systemd names the journal's socket), until it has written `until` or exited.
 */
export async function runBesideJournal(file: string, argv: readonly string[], journal: 'stdout' | 'stderr', until?: RegExp): Promise<{ out: string; err: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-journal-'));
  try {
    const outPath = join(dir, 'out');
    const errPath = join(dir, 'err');
    const out = openSync(outPath, 'w');
    const err = openSync(errPath, 'w');
    const stat = fstatSync(journal === 'stdout' ? out : err, { bigint: true });
    const child = spawn(file, argv, { stdio: ['ignore', out, err], env: { ...process.env, JOURNAL_STREAM: `${stat.dev}:${stat.ino}` } });
    closeSync(out);
    closeSync(err);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const done = () => child.exitCode !== null || (until !== undefined && until.test(readFileSync(outPath, 'utf8')));
    for (let i = 0; i < 100 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    return { out: readFileSync(outPath, 'utf8'), err: readFileSync(errPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

