/**
 * Which addresses a hosted relay offers and where mDNS runs, for interface tables like those of real
 * machines (as os.networkInterfaces() reports them): a Linux laptop with Docker and a VPN, a Mac with a
 * VM bridge, a Windows PC with WSL, two computers on one cable without DHCP, a computer offline.
 * Networks between real hosts are in lan-netns.test.ts.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { rankAddresses } from '../../src-main/services/lan-mdns.js';
import {
  Subnets,
  localAddresses,
  mdnsInterfaces,
  reachableAddresses,
} from '../../src-main/services/lan-networks.js';

const v4 = (address: string, prefix: number, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv4',
  mac: '02:00:00:00:00:01',
  internal,
  cidr: `${address}/${prefix}`,
});
const v6 = (address: string, prefix: number, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv6',
  mac: '02:00:00:00:00:01',
  internal,
  cidr: `${address}/${prefix}`,
  scopeid: address.startsWith('fe80') ? 2 : 0,
});
const lo = { lo: [v4('127.0.0.1', 8, true), v6('::1', 128, true)] };
/** Flags as Linux reports them: up + multicast, or up + point-to-point without multicast (a tunnel). */
const UP_MULTICAST = 0x1003;
const TUNNEL = 0x10 | 0x1;
const flags =
  (tunnels: string[] = []) =>
  (name: string): number =>
    tunnels.includes(name) ? TUNNEL : UP_MULTICAST;

describe('LAN networks', () => {
  it('a Linux laptop with Docker first: offers Wi-Fi and VPN, never the bridges or loopback', () => {
    const table = {
      ...lo,
      docker0: [v4('172.17.0.1', 16)],
      'br-5f2a9c1d7e3b': [v4('172.18.0.1', 16)],
      veth1a2b3c: [v6('fe80::1', 64)],
      virbr0: [v4('192.168.122.1', 24)],
      wlan0: [v4('192.168.1.20', 24), v6('fd12:3456:789a:1::20', 64), v6('fe80::20', 64)],
      wg0: [v4('10.8.0.5', 24)],
    };
    const addresses = localAddresses(table, flags(['wg0']));
    expect(reachableAddresses(addresses)).toEqual(['192.168.1.20', '10.8.0.5', 'fd12:3456:789a:1::20']);
    // mDNS only where it can work: the Wi-Fi, answering with the Wi-Fi's own addresses.
    expect(mdnsInterfaces(addresses)).toEqual([
      expect.objectContaining({ name: 'wlan0', addresses: ['192.168.1.20', 'fd12:3456:789a:1::20'] }),
    ]);
    expect(addresses.find((a) => a.interface === 'wlan0' && a.family === 6 && a.kind === 'lan')?.subnet).toBe(
      'fd12:3456:789a:1::/64',
    );
  });

  it('a Mac with a VM bridge and a Windows PC with WSL: only the real networks', () => {
    const mac = localAddresses(
      {
        ...lo,
        en0: [v4('192.168.1.30', 24)],
        bridge100: [v4('192.168.64.1', 24)],
        utun3: [v6('fd00:ab::1', 64)],
      },
      () => undefined, // no /sys/class/net: flags unknown
    );
    expect(reachableAddresses(mac)).toEqual(['192.168.1.30', 'fd00:ab::1']);
    expect(mdnsInterfaces(mac).map((i) => i.name)).toEqual(['en0']);

    const windows = localAddresses(
      { ...lo, Ethernet: [v4('10.0.0.7', 24)], 'vEthernet (WSL)': [v4('172.29.0.1', 20)] },
      () => undefined,
    );
    expect(reachableAddresses(windows)).toEqual(['10.0.0.7']);
    expect(mdnsInterfaces(windows).map((i) => i.name)).toEqual(['Ethernet']);
  });

  it('uses link-local and bridge networks only when nothing else exists, loopback last', () => {
    // Two computers on one cable without DHCP: 169.254/16 is all there is.
    const cable = localAddresses({ ...lo, eth0: [v4('169.254.10.2', 16), v6('fe80::2', 64)] }, flags());
    expect(reachableAddresses(cable)).toEqual(['169.254.10.2']);
    expect(mdnsInterfaces(cable).map((i) => `${i.name} ${i.ipv4.address}`)).toEqual(['eth0 169.254.10.2']);

    const offline = localAddresses({ ...lo }, flags());
    expect(reachableAddresses(offline)).toEqual([]);
    expect(mdnsInterfaces(offline).map((i) => i.name)).toEqual(['lo']);
  });

  it('skips interfaces that are down', () => {
    const addresses = localAddresses(
      { ...lo, eth0: [v4('192.168.1.9', 24)], eth1: [v4('10.1.1.9', 24)] },
      (n) => (n === 'eth1' ? 0x1002 : UP_MULTICAST),
    );
    expect(reachableAddresses(addresses)).toEqual(['192.168.1.9']);
  });

  it('ranks a relay’s addresses: where the answer came from, then our subnets, then the rest', () => {
    const ours = new Subnets(
      localAddresses(
        { ...lo, eth0: [v4('10.1.0.2', 24), v6('fd00:1::2', 64)], wlan0: [v4('192.168.1.5', 24)] },
        flags(),
      ),
    );
    const sightings = [
      {
        referer: '192.168.1.20',
        addresses: [
          '172.17.0.1',
          '10.9.0.1',
          'fd00:9::1',
          'fd00:1::20',
          '10.1.0.20',
          '192.168.1.20',
          'fe80::1',
        ],
      },
    ];
    expect(rankAddresses(sightings, ours)).toEqual([
      '192.168.1.20', // the answer came from it
      '10.1.0.20', // on our eth0 subnet
      'fd00:1::20', // on our eth0 IPv6 subnet
      '172.17.0.1',
      '10.9.0.1',
      'fd00:9::1',
    ]);
    // Loopback only for a relay on this very computer.
    expect(rankAddresses([{ referer: '10.1.0.20', addresses: ['127.0.0.1', '10.1.0.20'] }], ours)).toEqual([
      '10.1.0.20',
    ]);
    expect(rankAddresses([{ referer: '127.0.0.1', addresses: ['127.0.0.1', '::1'] }], ours)).toEqual([
      '127.0.0.1',
      '::1',
    ]);
  });
});
