/**
 * Reads a classic libpcap capture file (as tcpdump -w writes it) into frames, for tests.
 */
export interface PcapFile {
  readonly linkType: number;
  readonly frames: Buffer[];
}

export function readPcapFile(file: Buffer): PcapFile {
  const magic = file.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`not a little-endian pcap file (magic ${magic.toString(16)})`);
  const linkType = file.readUInt32LE(20);
  const frames: Buffer[] = [];
  let offset = 24;
  while (offset + 16 <= file.length) {
    const captured = file.readUInt32LE(offset + 8);
    frames.push(Buffer.from(file.subarray(offset + 16, offset + 16 + captured)));
    offset += 16 + captured;
  }
  return { linkType, frames };
}
