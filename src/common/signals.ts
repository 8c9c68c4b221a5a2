/**
 * A daemon's signal handlers, installed as a set and removed as one. Daemons install them
 * before their first `listening` line: a signal sent as soon as that line appears must not
 * meet the default action (which for SIGHUP and SIGUSR1 is to terminate).
 */
export type SignalHandlers = Partial<Record<NodeJS.Signals, () => void>>;

/** Installs `handlers`; returns the function that removes them again. */
export function handleSignals(handlers: SignalHandlers): () => void {
  const installed = Object.entries(handlers) as [NodeJS.Signals, () => void][];
  for (const [signal, handler] of installed) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of installed) process.off(signal, handler);
  };
}
