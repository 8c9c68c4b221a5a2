/**
 * Runs a system tool (uci, nft) once, without a shell, and collects what it said. node's own
 * execFile, not a wrapper library: the daemon stays small (see README, footprint). Never
 * throws: a tool that is not installed, or that does not end within the timeout, is a result.
 */
import { execFile } from 'node:child_process';

export interface ToolResult {
  /** the exit status; undefined when it did not run, or ended by a signal (timeout) */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** not installed (ENOENT) */
  readonly missing: boolean;
  /** why it did not run or did not end, in a few words; undefined when it ran to its end */
  readonly failure: string | undefined;
}

const MAX_OUTPUT = 16 * 1024 * 1024;

export function runTool(file: string, args: readonly string[], timeoutMs = 10_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(file, [...args], { timeout: timeoutMs, maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) return resolve({ exitCode: 0, stdout, stderr, missing: false, failure: undefined });
      // execFile's error: `code` is the exit status when the tool ran and failed, an errno name when it could not run
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'number') return resolve({ exitCode: code, stdout, stderr, missing: false, failure: undefined });
      const signal = (error as { signal?: unknown }).signal;
      const failure = typeof signal === 'string' ? (error.killed ? `no answer within ${timeoutMs / 1000} s` : `ended by ${signal}`) : (error.message.split('\n')[0] ?? 'could not run');
      resolve({ exitCode: undefined, stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), missing: code === 'ENOENT', failure });
    });
    child.stdin?.end();
  });
}
