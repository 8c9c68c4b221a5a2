/**
 * --hook: the user's command, run after each confirmed endpoint change. argv without a shell,
 * the placeholders filled inside each argument, the same values in RECONFIG_WG_* environment
 * variables, its output logged, stopped (TERM, then KILL) when it outlives the timeout. A
 * failing hook is logged and changes nothing else.
 */
import { startCommand } from '../../common/child.js';
import { fillPlaceholders } from '../../common/command.js';
import type { Logger } from '../../common/log.js';

export const HOOK_PLACEHOLDERS = ['interface', 'peer', 'from', 'to', 'host', 'port', 'how'] as const;
export type HookPlaceholder = (typeof HOOK_PLACEHOLDERS)[number];
export type HookValues = Readonly<Record<HookPlaceholder, string>>;

/** How long a stopped hook gets between TERM and KILL. */
const HOOK_GRACE_MS = 2000;

/** {interface} → RECONFIG_WG_INTERFACE, and so on. */
export function hookEnvironment(values: HookValues): Record<string, string> {
  return Object.fromEntries(HOOK_PLACEHOLDERS.map((name) => [`RECONFIG_WG_${name.toUpperCase()}`, values[name]]));
}

export type HookOutcome = { readonly kind: 'exited'; readonly exitCode: number | undefined } | { readonly kind: 'timeout' } | { readonly kind: 'not-started' };

/** Runs the hook once and waits for it, at most `timeoutMs` (then it is stopped). Never throws. */
export async function runHook(template: readonly string[], values: HookValues, logger: Logger, timeoutMs: number): Promise<HookOutcome> {
  const argv = fillPlaceholders(template, values);
  const run = await startCommand(argv, logger, {
    fields: { hook: true, interface: values.interface, peer: values.peer },
    env: hookEnvironment(values),
    what: '--hook',
  });
  if (run === undefined) return { kind: 'not-started' };
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    run.exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    logger.warn({ event: 'hook.timeout', pid: run.pid, timeoutMs, peer: values.peer }, `the hook (pid ${run.pid}) ran longer than ${timeoutMs} ms; stopping it`);
    await run.stop(HOOK_GRACE_MS);
    return { kind: 'timeout' };
  }
  const exitCode = run.exitCode();
  if (exitCode !== 0) {
    logger.warn({ event: 'hook.failed', pid: run.pid, exitCode, peer: values.peer }, `the hook (pid ${run.pid}) failed${exitCode === undefined ? '' : ` with exit code ${exitCode}`}; nothing else is affected`);
  }
  return { kind: 'exited', exitCode };
}
