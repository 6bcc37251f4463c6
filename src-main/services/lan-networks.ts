/**
 * This computer's networks as the LAN relay sees them: which addresses others can reach, which
 * interfaces can carry mDNS, and how near a peer's address is (same subnet first).
 *
 * Every address is classed once. Loopback and link-local addresses (127/8, ::1, 169.254/16, fe80::/10),
 * container and VM bridges (docker0, br-…, virbr…, veth…, vmnet…, vboxnet…, Hyper-V's "vEthernet (…)")
 * and VPN tunnels (tun…, wg…, utun…, tailscale…) are not the LAN. A relay is offered on the LAN
 * addresses and the VPN ones (peers on a VPN can reach it, though multicast rarely crosses one); a
 * bridge or a link-local address is used only when nothing else exists, and loopback only for this
 * computer itself. On Linux the interface flags in /sys/class/net say whether it is up and can
 * multicast; elsewhere both are assumed.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import ipaddr from 'ipaddr.js';

/** What an address is for the relay: see the module comment. */
export type AddressKind = 'lan' | 'vpn' | 'virtual' | 'link-local' | 'loopback';

/** One address of an interface. */
export interface LocalAddress {
  readonly interface: string;
  readonly address: string;
  readonly family: 4 | 6;
  readonly kind: AddressKind;
  /** The network it is on, e.g. 192.168.1.0/24 or fd00:1::/64. */
  readonly subnet: string;
  /** The interface is up and can send multicast (Linux flags; assumed elsewhere). */
  readonly multicast: boolean;
}

/** Names of container and VM bridges (Docker, Podman, libvirt, LXC/LXD, VMware, VirtualBox, Hyper-V, k8s). */
const VIRTUAL =
  /^(docker\d*|br-[0-9a-f]+|virbr\d*|veth|vnet\d+|vmnet\d*|vboxnet\d*|lxcbr\d*|lxdbr\d*|podman\d*|cni|flannel|cali|weave|kube-|tap\d|bridge\d+$|vmenet|vEthernet \(|VirtualBox|VMware)/i;
/** Names of VPN tunnels (OpenVPN, WireGuard, macOS utun, PPP, Tailscale, ZeroTier, IPsec, Cisco). */
const VPN = /^(tun\d|wg|utun\d|ppp\d|tailscale|zt|nordlynx|ipsec|cscotun|gpd\d)/i;

const IFF_UP = 0x1;
const IFF_POINTOPOINT = 0x10;
const IFF_MULTICAST = 0x1000;

/** Linux interface flags, or undefined where /sys/class/net is not there. */
function linuxFlags(name: string): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return Number.parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8').trim(), 16);
  } catch {
    return undefined;
  }
}

/** Every address of this computer, classed (see the module comment). */
export function localAddresses(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
  flags: (name: string) => number | undefined = linuxFlags,
): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const [name, list] of Object.entries(interfaces)) {
    const f = flags(name);
    if (f !== undefined && (f & IFF_UP) === 0) continue; // down: its address reaches nobody
    const multicast = f === undefined || ((f & IFF_MULTICAST) !== 0 && (f & IFF_POINTOPOINT) === 0);
    for (const info of list ?? []) {
      const family = info.family === 'IPv4' ? 4 : 6;
      const prefix = Number(info.cidr?.split('/')[1] ?? (family === 4 ? 32 : 128));
      const kind: AddressKind = info.internal
        ? 'loopback'
        : isLinkLocal(info.address)
          ? 'link-local'
          : VIRTUAL.test(name)
            ? 'virtual'
            : VPN.test(name)
              ? 'vpn'
              : 'lan';
      out.push({
        interface: name,
        address: info.address,
        family,
        kind,
        subnet: subnetOf(info.address, prefix),
        multicast,
      });
    }
  }
  return out;
}

/** True for IPv4 169.254/16 and IPv6 fe80::/10. */
export function isLinkLocal(address: string): boolean {
  return ipaddr.isValid(address) && ipaddr.parse(address).range() === 'linkLocal';
}

/** True for 127/8 and ::1. */
export function isLoopback(address: string): boolean {
  return ipaddr.isValid(address) && ipaddr.parse(address).range() === 'loopback';
}

/**
 * The addresses other computers can use to reach a relay listening on every interface: LAN and VPN
 * ones, else (nothing else exists) bridges and IPv4 link-local ones; never loopback, never IPv6
 * link-local (a URL cannot carry its zone). IPv4 first.
 */
export function reachableAddresses(addresses: readonly LocalAddress[] = localAddresses()): string[] {
  const usable = addresses.filter(
    (a) => a.kind !== 'loopback' && !(a.family === 6 && a.kind === 'link-local'),
  );
  const preferred = usable.filter((a) => a.kind === 'lan' || a.kind === 'vpn');
  const chosen = preferred.length > 0 ? preferred : usable;
  return [...new Set(byFamily(chosen).map((a) => a.address))];
}

/** An interface mDNS runs on: its first IPv4 address (the socket's), and its other addresses. */
export interface MdnsInterface {
  readonly name: string;
  readonly ipv4: LocalAddress;
  /** Addresses of this interface that others can use, for the A/AAAA records answered on it. */
  readonly addresses: readonly string[];
}

/**
 * The interfaces mDNS runs on: the LAN ones that can multicast; if there are none, bridges, VPNs and
 * link-local networks; if there are none either, loopback (so this computer still finds its own relay).
 * `only` names the interfaces to use instead (tests: ['lo']). mDNS runs over IPv4 only.
 */
export function mdnsInterfaces(
  addresses: readonly LocalAddress[] = localAddresses(),
  only?: readonly string[],
): MdnsInterface[] {
  const v4 = addresses.filter((a) => a.family === 4);
  let chosen: LocalAddress[];
  if (only) chosen = v4.filter((a) => only.includes(a.interface));
  else {
    const tiers: ((a: LocalAddress) => boolean)[] = [
      (a) => a.kind === 'lan' && a.multicast,
      (a) => a.kind !== 'loopback' && a.multicast,
      (a) => a.kind === 'loopback',
    ];
    chosen = [];
    for (const tier of tiers) {
      chosen = v4.filter(tier);
      if (chosen.length > 0) break;
    }
  }
  const out: MdnsInterface[] = [];
  for (const ipv4 of chosen) {
    if (out.some((i) => i.name === ipv4.interface)) continue; // one socket per interface
    const own = addresses.filter((a) => a.interface === ipv4.interface);
    const others = own.filter((a) => a.kind !== 'link-local' || a.family === 4);
    out.push({ name: ipv4.interface, ipv4, addresses: byFamily(others).map((a) => a.address) });
  }
  return out;
}

/** Local subnets, for asking whether an address is on one of our networks. */
export class Subnets {
  private readonly list: { readonly local: LocalAddress; readonly range: [IPAddress, number] }[];

  constructor(addresses: readonly LocalAddress[]) {
    this.list = addresses.map((local) => ({ local, range: ipaddr.parseCIDR(local.subnet) }));
  }

  /** Our address whose subnet holds `address` (the narrowest), if any. */
  find(address: string): LocalAddress | undefined {
    if (!ipaddr.isValid(address)) return undefined;
    const ip = ipaddr.parse(address);
    let best: LocalAddress | undefined;
    for (const { local, range } of this.list) {
      if (range[0].kind() !== ip.kind() || !ip.match(range)) continue;
      if (!best || prefixOf(best) < range[1]) best = local;
    }
    return best;
  }
}

type IPAddress = ReturnType<typeof ipaddr.parse>;
const prefixOf = (a: LocalAddress): number => Number(a.subnet.split('/')[1]);
const byFamily = <T extends { family: 4 | 6 }>(list: readonly T[]): T[] =>
  [...list].sort((a, b) => a.family - b.family);

/** The network of `address`/`prefix` as CIDR text, e.g. 192.168.1.0/24 or fd00:1::/64. */
function subnetOf(address: string, prefix: number): string {
  const ip = ipaddr.parse(address);
  const net =
    ip.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefix}`).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(`${address.split('%')[0]}/${prefix}`).toRFC5952String();
  return `${net}/${prefix}`;
}
