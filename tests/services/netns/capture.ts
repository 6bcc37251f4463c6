/**
 * What an eavesdropper on a link records: tcpdump inside a test namespace writes the packets of one
 * interface to a pcap file, and this reads them back as an attacker would: every frame's bytes, each
 * TCP stream reassembled, and each WebSocket message unmasked (ws's own Receiver), so a search for
 * plaintext also covers the client's masked frames and the base64 bodies.
 *
 * pcap: a 24-byte file header (magic a1b2c3d4 µs or a1b23c4d ns, either byte order; link type 1 =
 * Ethernet), then per packet a 16-byte header (ts, ts frac, captured length, original length) and the bytes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as wsModule from 'ws';

/** ws's frame parser: exported by ws, though not by its type definitions. */
interface FrameReceiver extends NodeJS.WritableStream {
  on(event: 'message', listener: (data: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}
const { Receiver } = wsModule as unknown as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => FrameReceiver;
};

/** A running tcpdump; stop() ends it (SIGINT flushes the file) and waits for it. */
export interface Capture {
  readonly file: string;
  stop(): Promise<void>;
}

/** Starts tcpdump on `iface` in namespace `ns`, writing every packet, whole, to `file`. */
export async function startCapture(ns: string, iface: string, file: string): Promise<Capture> {
  // --immediate-mode and -U: each packet is read and written at once (else the last second's packets
  // may still be in the kernel's buffer at stop); -Z root: Debian's tcpdump would drop to its own user
  // and could not write the file; -s 0: whole packets.
  const child: ChildProcess = spawn(
    'ip',
    [
      ...['netns', 'exec', ns, 'tcpdump', '-i', iface, '--immediate-mode', '-U'],
      ...['-s', '0', '-n', '-Z', 'root', '-w', file],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // tcpdump says "listening on …" once the capture runs.
  const deadline = Date.now() + 10_000;
  while (!stderr.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`tcpdump did not start in ${ns} on ${iface}: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    file,
    stop: async () => {
      if (child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 200)); // the last packets on their way through the veth
        child.kill('SIGINT');
      }
      await exited;
    },
  };
}

/** What the capture holds. */
export interface Recorded {
  /** Every packet's bytes, concatenated. */
  readonly bytes: Buffer;
  readonly packets: number;
  /** Every TCP stream (one direction of a connection), reassembled, by `src:port>dst:port`. */
  readonly streams: ReadonlyMap<string, Buffer>;
  /** Every WebSocket message of every stream, unmasked. */
  readonly messages: readonly string[];
}

interface Segment {
  readonly seq: number;
  readonly payload: Buffer;
}

/** Reads a pcap file written by startCapture. */
export function readCapture(file: string): Recorded {
  if (!existsSync(file) || statSync(file).size < 24) throw new Error(`no capture in ${file}`);
  const data = readFileSync(file);
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && data.readUInt32BE(0) !== 0xa1b2c3d4 && data.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`${file} is not a pcap file`);
  const u32 = (o: number): number => (le ? data.readUInt32LE(o) : data.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`${file}: link type ${u32(20)}, expected Ethernet`);

  const frames: Buffer[] = [];
  const segments = new Map<string, Segment[]>();
  for (let o = 24; o + 16 <= data.length;) {
    const len = u32(o + 8);
    const frame = data.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    frames.push(frame);
    const tcp = tcpOf(frame);
    if (!tcp || tcp.payload.length === 0) continue;
    const list = segments.get(tcp.flow) ?? [];
    list.push({ seq: tcp.seq, payload: tcp.payload });
    segments.set(tcp.flow, list);
  }

  const streams = new Map<string, Buffer>();
  for (const [flow, list] of segments) streams.set(flow, reassemble(list));
  const messages: string[] = [];
  for (const stream of streams.values()) messages.push(...websocketMessages(stream));
  return { bytes: Buffer.concat(frames), packets: frames.length, streams, messages };
}

/** The TCP segment of an Ethernet frame (IPv4 or IPv6 without extension headers), if it is one. */
function tcpOf(frame: Buffer): { flow: string; seq: number; payload: Buffer } | undefined {
  if (frame.length < 14) return undefined;
  let type = frame.readUInt16BE(12);
  let o = 14;
  if (type === 0x8100) {
    type = frame.readUInt16BE(16);
    o = 18;
  }
  let src: string;
  let dst: string;
  let l4: number;
  let end: number;
  if (type === 0x0800) {
    if (frame[o + 9] !== 6) return undefined;
    src = [...frame.subarray(o + 12, o + 16)].join('.');
    dst = [...frame.subarray(o + 16, o + 20)].join('.');
    end = o + frame.readUInt16BE(o + 2);
    l4 = o + (frame[o]! & 0x0f) * 4;
  } else if (type === 0x86dd) {
    if (frame[o + 6] !== 6) return undefined;
    const hex = (b: Buffer): string => b.toString('hex').replace(/(.{4})(?!$)/g, '$1:');
    src = `[${hex(frame.subarray(o + 8, o + 24))}]`;
    dst = `[${hex(frame.subarray(o + 24, o + 40))}]`;
    end = o + 40 + frame.readUInt16BE(o + 4);
    l4 = o + 40;
  } else return undefined;
  const sport = frame.readUInt16BE(l4);
  const dport = frame.readUInt16BE(l4 + 2);
  const seq = frame.readUInt32BE(l4 + 4);
  const payload = frame.subarray(l4 + ((frame[l4 + 12]! >> 4) & 0x0f) * 4, Math.min(end, frame.length));
  return { flow: `${src}:${sport}>${dst}:${dport}`, seq, payload };
}

/** One direction's bytes in sequence order, each byte once (retransmissions overlap). */
function reassemble(list: Segment[]): Buffer {
  const base = Math.min(...list.map((s) => s.seq));
  // Offsets from the first segment, modulo 2^32 (a stream here is far shorter than 4 GiB).
  const sorted = list
    .map((s) => ({ at: (s.seq - base + 2 ** 32) % 2 ** 32, payload: s.payload }))
    .sort((a, b) => a.at - b.at);
  const parts: Buffer[] = [];
  let next = 0;
  for (const { at, payload } of sorted) {
    if (at + payload.length <= next) continue;
    parts.push(payload.subarray(Math.max(0, next - at)));
    next = at + payload.length;
  }
  return Buffer.concat(parts);
}

/**
 * The WebSocket messages of a stream: after the HTTP upgrade request (client frames, masked) or the
 * 101 answer (relay frames), parsed and unmasked by ws's Receiver.
 */
function websocketMessages(stream: Buffer): string[] {
  const head = stream.subarray(0, 16).toString('latin1');
  const isClient = head.startsWith('GET ');
  if (!isClient && !head.startsWith('HTTP/1.1 101')) return [];
  const bodyAt = stream.indexOf('\r\n\r\n');
  if (bodyAt < 0) return [];
  const messages: string[] = [];
  // isServer: the receiving side of client frames, which must be masked.
  const receiver = new Receiver({ isServer: isClient, maxPayload: 64 * 1024 * 1024 });
  receiver.on('message', (data: Buffer) => messages.push(data.toString('utf8')));
  receiver.on('error', () => undefined); // a capture may end inside a frame
  receiver.write(stream.subarray(bodyAt + 4));
  return messages;
}

/**
 * Where `text` shows up in what was recorded: in the raw bytes, in any WebSocket message, or inside
 * any base64 string of a message once decoded. An empty list means an eavesdropper cannot read it.
 */
export function findPlaintext(recorded: Recorded, text: string): string[] {
  const found: string[] = [];
  const needle = Buffer.from(text, 'utf8');
  if (recorded.bytes.includes(needle)) found.push('packet bytes');
  for (const m of recorded.messages) {
    if (m.includes(text)) found.push(`message ${m.slice(0, 80)}`);
    for (const b64 of m.match(/[A-Za-z0-9+/]{16,}={0,2}/g) ?? []) {
      if (Buffer.from(b64, 'base64').includes(needle)) found.push(`base64 in ${m.slice(0, 80)}`);
    }
  }
  return found;
}
