/**
 * Network-namespace primitives for the test lab, the demo and the benchmarks.
 *
 * Every name carries a random lab id, so labs of concurrent tests never collide; every
 * process started here is remembered by pid and stopped by pid, never by name.
 */
import { randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';

/**
 * PATH without node_modules/.bin: under `npm test` that comes first, and a package there may
 * shadow a system tool by name (ava's dependency @vercel/nft installs a `nft` binary).
 */
const SYSTEM_PATH = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
  .split(':')
  .filter((dir) => dir.length > 0 && !dir.includes('node_modules'))
  .join(':');
const ENV = { PATH: SYSTEM_PATH };

export function labId(): string {
  return randomBytes(3).toString('hex');
}

/** Runs `ip netns exec NAME …` and returns stdout; rejects with stderr in the message. */
export async function nsRun(ns: string, cmd: string, args: readonly string[], input?: string): Promise<string> {
  const result = await execa('ip', ['netns', 'exec', ns, cmd, ...args], { reject: false, input, timeout: 20_000, env: ENV });
  if (result.exitCode !== 0) {
    throw new Error(`[${ns}] ${cmd} ${args.join(' ')}: ${String(result.stderr || result.stdout).trim()} (exit ${result.exitCode})`);
  }
  return String(result.stdout);
}

export async function host(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const result = await execa(cmd, args, { reject: false, input, timeout: 20_000, env: ENV });
  if (result.exitCode !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: ${String(result.stderr || result.stdout).trim()} (exit ${result.exitCode})`);
  }
  return String(result.stdout);
}

const START_OPTIONS = { reject: false, buffer: false, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env: ENV } as const;
export type Started = ResultPromise<typeof START_OPTIONS>;

/** A set of namespaces and processes that is torn down as one, also after a failure. */
export class Scope {
  readonly namespaces: string[] = [];
  readonly processes: LabProcess[] = [];
  private closed = false;

  async addNamespace(name: string): Promise<string> {
    await host('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await nsRun(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  /**
   * Starts a long-running process inside a namespace; it is stopped by pid on close(). Its
   * output is always drained (a full pipe would stall it) into `lines`, bounded.
   */
  start(ns: string, cmd: string, args: readonly string[], env: Record<string, string> = {}): LabProcess {
    const assignments = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const child = execa('ip', ['netns', 'exec', ns, 'env', ...assignments, cmd, ...args], START_OPTIONS);
    const proc = new LabProcess(child);
    this.processes.push(proc);
    return proc;
  }

  /** Stops every process (TERM, then KILL after a grace period) and deletes every namespace. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.processes.map((proc) => proc.stop()));
    for (const ns of this.namespaces.reverse()) {
      await execa('ip', ['netns', 'del', ns], { reject: false, env: ENV });
    }
  }
}

const MAX_LINES = 20_000;

/** A process started in the lab, with its output lines kept for assertions. */
export class LabProcess {
  readonly lines: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();

  constructor(readonly child: Started) {
    for (const stream of [child.stdout, child.stderr]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) this.push(line);
      });
      stream.on('end', () => {
        if (rest.length > 0) this.push(rest);
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private push(line: string): void {
    if (this.lines.length < MAX_LINES) this.lines.push(line);
    for (const listener of this.listeners) listener(line);
  }

  /** Calls `listener` with every line from now on. */
  follow(listener: (line: string) => void): void {
    this.listeners.add(listener);
  }

  /** Resolves with the first line (already seen or future) that matches, or undefined on timeout. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string | undefined> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const listener = (line: string): void => {
        if (!match(line)) return;
        done(line);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (line: string | undefined): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(line);
      };
      this.listeners.add(listener);
    });
  }

  /** Resolves with the exit code once the process has exited, or undefined on timeout. */
  async waitForExit(timeoutMs: number): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const result = await Promise.race([this.child.then((r) => r.exitCode ?? -1), timeout]);
    clearTimeout(timer);
    return result;
  }

  stop(graceMs?: number): Promise<void> {
    return stopProcess(this.child, graceMs);
  }
}

/** TERM, then KILL after `graceMs`; resolves once the process has exited. */
export async function stopProcess(child: Started, graceMs = 3000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    await child.catch(() => undefined);
    return;
  }
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await child;
  } catch {
    // the exit is what we wanted
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` with a fresh Scope and always tears the scope down afterwards. */
export async function withScope<T>(fn: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}

/** A veth pair between two namespaces (either may be undefined for the root namespace). */
export async function veth(a: { ns: string; name: string }, b: { ns: string; name: string }): Promise<void> {
  const tmpA = `v${labId()}a`;
  const tmpB = `v${labId()}b`;
  await host('ip', ['link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
  await host('ip', ['link', 'set', tmpA, 'netns', a.ns]);
  await host('ip', ['link', 'set', tmpB, 'netns', b.ns]);
  await nsRun(a.ns, 'ip', ['link', 'set', tmpA, 'name', a.name]);
  await nsRun(b.ns, 'ip', ['link', 'set', tmpB, 'name', b.name]);
  await nsRun(a.ns, 'ip', ['link', 'set', a.name, 'up']);
  await nsRun(b.ns, 'ip', ['link', 'set', b.name, 'up']);
}

/** Waits until `check` resolves true, polling every `intervalMs`, for at most `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
