/**
 * Endpoints as wg prints and takes them: `192.0.2.7:51820` or `[2001:db8::7]:51820`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalAddress } from '../net/local.js';

export function formatEndpoint(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Canonical form for comparison (wg prints IPv6 compressed, but be exact about it). */
export function sameEndpoint(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return canonical(a) === canonical(b);
}

function canonical(endpoint: string): string {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(endpoint);
  if (match === null) return endpoint;
  const address = match[1] ?? '';
  try {
    // URL parsing normalises an IPv6 literal to its RFC 5952 form.
    return `[${new URL(`http://[${address}]/`).hostname.slice(1, -1)}]:${match[2] ?? ''}`;
  } catch {
    return endpoint;
  }
}

export interface ParsedEndpoint {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
}

/** `192.0.2.7:51820` or `[2001:db8::7]:51820` → its parts; undefined for anything else. */
export function parseEndpoint(endpoint: string): ParsedEndpoint | undefined {
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(endpoint);
  const v4 = v6 === null ? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(endpoint) : null;
  const match = v6 ?? v4;
  if (match === null) return undefined;
  const address = match[1] ?? '';
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  if (v6 !== null) return isIPv6(address) ? { family: 6, address, port } : undefined;
  return isIPv4(address) ? { family: 4, address, port } : undefined;
}

/** The address part of an endpoint (`192.0.2.7`, `2001:db8::7`), canonical for IPv6. */
export function endpointAddress(endpoint: string): string {
  const match = /^\[([^\]]+)\]:\d+$/.exec(canonical(endpoint));
  if (match !== null) return match[1] ?? '';
  const colon = endpoint.lastIndexOf(':');
  return colon < 0 ? endpoint : endpoint.slice(0, colon);
}

/**
 * An address as the decoders write it, and a port, as one key: how a captured packet's source
 * is matched with wg's endpoints (endpointKeyOf puts wg's text through canonicalAddress first).
 */
export const endpointKeyOfParts = (address: string, port: number): string => `${address}|${port}`;

/** The key of a parsed endpoint, its address in the decoders' canonical form. */
export const endpointKeyOfParsed = (endpoint: ParsedEndpoint): string => endpointKeyOfParts(canonicalAddress(endpoint.address) ?? endpoint.address, endpoint.port);

/** The key of wg's `addr:port` text; undefined if it is no endpoint. */
export function endpointKeyOf(endpoint: string | undefined): string | undefined {
  const parsed = endpoint === undefined ? undefined : parseEndpoint(endpoint);
  return parsed === undefined ? undefined : endpointKeyOfParsed(parsed);
}
