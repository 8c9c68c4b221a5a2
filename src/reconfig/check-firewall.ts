/**
 * Would the firewall drop a new inbound UDP packet to the listen port? Read from the nftables
 * ruleset (`nft -j list ruleset`) by walking every input-hook base chain with a model packet:
 * UDP, that destination port, conntrack state new. Matches on anything else (interface,
 * addresses, marks, verdict maps) cannot be decided without a real packet: such rules are
 * passed over and named, and the answer says it is uncertain.
 *
 * Reading a ruleset is not a packet through it, and iptables-legacy rules are not seen here;
 * hence the answer is a hint: it never makes `check` fail. (A local test packet would come in
 * on loopback, which firewalls treat apart, so it would prove nothing about the WAN side.)
 */
import { fail, ok, type Result } from '../common/result.js';

export type FirewallVerdict = 'drop' | 'accept';

export interface Conditional {
  /** "inet fw4/input rule 7" */
  readonly where: string;
  /** what the rule would do if its other matches (interface, address …) held */
  readonly verdict: FirewallVerdict | 'unknown';
}

export interface FirewallFinding {
  /** what happens to the model packet when every undecidable match is false */
  readonly verdict: FirewallVerdict;
  /** the rule or policy that decided, as "inet filter/input rule 3" or "inet filter/input policy" */
  readonly decidedBy: string;
  /** rules passed over because they match on what the model packet does not know */
  readonly conditional: readonly Conditional[];
}

type Json = unknown;
interface Chain {
  readonly family: string;
  readonly table: string;
  readonly name: string;
  readonly hook?: string;
  readonly policy?: string;
  readonly prio?: number;
}
interface Rule {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly expr?: readonly Json[];
}

type Tri = true | false | 'unknown';
const MAX_DEPTH = 16;

function portIn(right: Json, port: number): Tri {
  if (typeof right === 'number') return right === port;
  if (typeof right === 'string') return 'unknown';
  if (typeof right !== 'object' || right === null) return 'unknown';
  const value = right as { set?: Json[]; range?: [number, number] };
  if (Array.isArray(value.set)) {
    let any: Tri = false;
    for (const item of value.set) {
      const hit = portIn(item, port);
      if (hit === true) return true;
      if (hit === 'unknown') any = 'unknown';
    }
    return any;
  }
  if (Array.isArray(value.range)) return port >= value.range[0] && port <= value.range[1];
  return 'unknown';
}

function stateIn(right: Json): Tri {
  const states = typeof right === 'string' ? [right] : Array.isArray(right) ? right : (right as { set?: Json[] } | null)?.set;
  if (!Array.isArray(states)) return 'unknown';
  return states.includes('new');
}

function negate(value: Tri, op: string): Tri {
  if (value === 'unknown') return value;
  return op === '!=' ? !value : value;
}

/** One `match` expression against the model packet. */
function matches(match: { op?: string; left?: Json; right?: Json }, port: number): Tri {
  const op = match.op ?? '==';
  if (op !== '==' && op !== '!=' && op !== 'in') return 'unknown';
  const left = match.left as { payload?: { protocol?: string; field?: string }; meta?: { key?: string }; ct?: { key?: string } } | undefined;
  if (left?.payload !== undefined) {
    const { protocol, field } = left.payload;
    if ((protocol === 'udp' || protocol === 'th') && field === 'dport') return negate(portIn(match.right, port), op);
    if (protocol === 'tcp' || protocol === 'icmp' || protocol === 'icmpv6') return negate(false, op);
    if ((protocol === 'ip' || protocol === 'ip6') && (field === 'protocol' || field === 'nexthdr')) return negate(match.right === 'udp' || match.right === 17, op);
    return 'unknown';
  }
  if (left?.meta?.key === 'l4proto') {
    const right = match.right as Json;
    const set = (right as { set?: Json[] } | null)?.set;
    return negate(Array.isArray(set) ? set.includes('udp') : right === 'udp' || right === 17, op);
  }
  if (left?.ct?.key === 'state') return negate(stateIn(match.right), op);
  return 'unknown';
}

type Outcome = { kind: 'verdict'; verdict: 'drop' | 'accept'; by: string } | { kind: 'return' } | { kind: 'end' };

class Walker {
  readonly conditional: Conditional[] = [];
  constructor(
    private readonly rules: readonly Rule[],
    private readonly port: number,
  ) {}

  walk(family: string, table: string, chain: string, depth: number): Outcome {
    if (depth > MAX_DEPTH) return { kind: 'end' };
    const rules = this.rules.filter((r) => r.family === family && r.table === table && r.chain === chain);
    for (const [index, rule] of rules.entries()) {
      const where = `${family} ${table}/${chain} rule ${index + 1}`;
      let applies: Tri = true;
      for (const expr of rule.expr ?? []) {
        const e = expr as Record<string, Json>;
        if ('match' in e) {
          const hit = matches(e.match as { op?: string }, this.port);
          if (hit === false) {
            applies = false;
            break;
          }
          if (hit === 'unknown') applies = 'unknown';
          continue;
        }
        if (applies === 'unknown') {
          // what it would do if it applied; whatever it records inside is conditional too
          const saved = this.conditional.length;
          const would = this.verdict(e, family, table, depth, where);
          if (would === undefined) continue;
          this.conditional.splice(saved);
          const outcome = would.kind === 'final' ? would.outcome : { kind: 'end' as const };
          this.conditional.push({ where, verdict: outcome.kind === 'verdict' ? outcome.verdict : 'unknown' });
          break;
        }
        const verdict = this.verdict(e, family, table, depth, where);
        if (verdict === undefined) continue;
        if (verdict.kind === 'continue') break;
        return verdict.outcome;
      }
    }
    return { kind: 'end' };
  }

  /** undefined: not a verdict (counter, log …); continue: a jump that came back. */
  private verdict(e: Record<string, Json>, family: string, table: string, depth: number, where: string): { kind: 'continue' } | { kind: 'final'; outcome: Outcome } | undefined {
    if ('accept' in e) return { kind: 'final', outcome: { kind: 'verdict', verdict: 'accept', by: where } };
    if ('drop' in e || 'reject' in e) return { kind: 'final', outcome: { kind: 'verdict', verdict: 'drop', by: where } };
    if ('return' in e) return { kind: 'final', outcome: { kind: 'return' } };
    const jump = (e.jump ?? e.goto) as { target?: string } | undefined;
    if (jump?.target !== undefined) {
      const inner = this.walk(family, table, jump.target, depth + 1);
      if (inner.kind === 'verdict') return { kind: 'final', outcome: inner };
      // goto does not come back: its end is the calling base chain's end
      return 'goto' in e ? { kind: 'final', outcome: { kind: 'end' } } : { kind: 'continue' };
    }
    if ('vmap' in e) return { kind: 'final', outcome: { kind: 'end' } };
    return undefined;
  }
}

/** Decides from `nft -j list ruleset` output. Pure; fails only on JSON it cannot read. */
export function firewallVerdict(json: string, port: number): Result<FirewallFinding> {
  let parsed: { nftables?: Json[] };
  try {
    parsed = JSON.parse(json) as { nftables?: Json[] };
  } catch {
    return fail('nft printed something that is not JSON');
  }
  if (!Array.isArray(parsed.nftables)) return fail('nft printed no "nftables" list');
  const chains: Chain[] = [];
  const rules: Rule[] = [];
  for (const item of parsed.nftables) {
    const entry = item as { chain?: Chain; rule?: Rule };
    if (entry.chain !== undefined) chains.push(entry.chain);
    if (entry.rule !== undefined) rules.push(entry.rule);
  }
  const inputs = chains.filter((c) => c.hook === 'input' && ['inet', 'ip', 'ip6'].includes(c.family)).sort((a, b) => (a.prio ?? 0) - (b.prio ?? 0));
  const walker = new Walker(rules, port);
  let accepted: string | undefined;
  for (const chain of inputs) {
    const outcome = walker.walk(chain.family, chain.table, chain.name, 0);
    if (outcome.kind === 'verdict' && outcome.verdict === 'drop') return ok({ verdict: 'drop', decidedBy: outcome.by, conditional: walker.conditional });
    if (outcome.kind !== 'verdict' && chain.policy === 'drop') {
      return ok({ verdict: 'drop', decidedBy: `${chain.family} ${chain.table}/${chain.name} policy`, conditional: walker.conditional });
    }
    accepted ??= outcome.kind === 'verdict' ? outcome.by : `${chain.family} ${chain.table}/${chain.name} policy`;
  }
  if (inputs.length === 0) return ok({ verdict: 'accept', decidedBy: 'no nftables input chain', conditional: [] });
  return ok({ verdict: 'accept', decidedBy: accepted ?? '', conditional: walker.conditional });
}
