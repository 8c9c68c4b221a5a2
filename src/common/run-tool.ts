/**
 * Runs a system tool (wg, uci, nft) once, without a shell, through execa, and collects what
 * it said. Never throws: a tool that is not installed, or that does not end within the
 * timeout (TERM, then KILL 2 s later), is a result.
 *
 * execa's own messages quote the tool's output, and `wg show … dump` prints the private key:
 * nothing here passes one on. `failure` is built from our words, the signal and the reason
 * the tool could not start, never from its output.
 *
 * `cleanup: false`: execa would otherwise hook the process's exit and its signals (through
 * signal-exit) to kill the tool when we exit. The daemons handle their signals themselves
 * (SIGHUP re-reads, SIGUSR1 re-arms), a tool run ends by its timeout, and a hook or a knock
 * command is stopped by the daemon on its way out; nothing is left for such a hook to do.
 */

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
/** How long a tool that outlived its timeout gets between TERM and KILL. */
const KILL_AFTER_MS = 2000;

/** execa, loaded on the first run: `--help`, a usage error, `status` and port-knock waiting for its first knock never load it. */
export async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}

export async function runTool(file: string, args: readonly string[], timeoutMs = 10_000): Promise<ToolResult> {
  const execa = await loadExeca();
  const result = await execa(file, args, {
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: KILL_AFTER_MS,
    maxBuffer: MAX_OUTPUT,
    stdin: 'ignore',
    stripFinalNewline: false,
    cleanup: false,
  });
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  if (result.exitCode !== undefined && !result.timedOut && !result.isMaxBuffer) return { exitCode: result.exitCode, stdout, stderr, missing: false, failure: undefined };
  const failure = result.timedOut
    ? `no answer within ${timeoutMs / 1000} s`
    : result.isMaxBuffer
      ? `more than ${MAX_OUTPUT / 1024 / 1024} MiB of output`
      : result.signal !== undefined
        ? `ended by ${result.signal}`
        : // could not start: execa's originalMessage is node's spawn error (`spawn wg ENOENT`), no output in it
          ((result.originalMessage ?? '').split('\n')[0] || 'could not run');
  return { exitCode: undefined, stdout, stderr, missing: result.code === 'ENOENT', failure };
}
