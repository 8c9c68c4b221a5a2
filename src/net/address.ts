/**
 * Text addresses → the bytes that go into headers and netlink attributes. Pure; an address that
 * is not valid gives undefined, never an exception.
 */
import { isIPv4, isIPv6 } from 'node:net';

const IPV4_LENGTH = 4;
const IPV6_LENGTH = 16;
const IPV6_GROUPS = 8;

export function ipv4Bytes(text: string): Buffer | undefined {
  if (!isIPv4(text)) return undefined;
  return Buffer.from(text.split('.').map(Number));
}

/** RFC 4291 §2.2 text forms: groups, one `::`, and an embedded dotted IPv4 tail. No zone ids. */
export function ipv6Bytes(text: string): Buffer | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let groups = text;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // An IPv4 tail is the last two groups written in dotted form (::ffff:192.0.2.1).
    const v4 = ipv4Bytes(last);
    if (v4 === undefined) return undefined;
    groups = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, rest] = groups.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const front = parse(head);
  const back = rest === undefined ? [] : parse(rest);
  const fill = IPV6_GROUPS - front.length - back.length;
  if (fill < 0 || (rest === undefined && fill !== 0)) return undefined;
  const all = [...front, ...new Array<number>(fill).fill(0), ...back];
  const bytes = Buffer.alloc(IPV6_LENGTH);
  all.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

/** The address bytes for `family`, or undefined when `text` is not an address of that family. */
export function addressBytes(family: 4 | 6, text: string): Buffer | undefined {
  return family === 4 ? ipv4Bytes(text) : ipv6Bytes(text);
}

export const ADDRESS_LENGTH = { 4: IPV4_LENGTH, 6: IPV6_LENGTH } as const;
