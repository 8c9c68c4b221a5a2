/**
 * A --hook for tests: appends one JSON line to FILE with its argv, its RECONFIG_WG_* environment
 * and when it started and ended; then sleeps SLEEP_MS and exits with EXIT_CODE. Prints a line
 * on stdout and one on stderr, so the tests can see output being logged.
 *   node hook-recorder.js FILE SLEEP_MS EXIT_CODE [ARGS...]
 */
import { appendFileSync } from 'node:fs';

const [file, sleep, exit, ...args] = process.argv.slice(2);
const startedAt = Date.now();
process.stdout.write(`hook saw ${args.join(' ')}\n`);
process.stderr.write('hook says something on stderr\n');
await new Promise((resolve) => setTimeout(resolve, Math.min(Number(sleep ?? 0), 30_000)));
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key.startsWith('RECONFIG_WG_')));
appendFileSync(file as string, `${JSON.stringify({ args, env, startedAt, endedAt: Date.now() })}\n`);
process.exit(Number(exit ?? 0));
