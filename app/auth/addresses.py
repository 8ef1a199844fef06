"""The client address a login is counted against, behind trusted reverse proxies only.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only
when the peer is one of ``PLEDGELINE_TRUSTED_PROXIES``; then the header is read from
the right (the entry the nearest proxy added) past every trusted proxy, and the first
address that is not one is the client. Anything unreadable stops the walk there.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_trusted(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.0.2.7"`` as networks; a bad entry raises ValueError."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip()
    )


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: str) -> str:
    """The address to count failed logins against (at most 64 characters)."""
    networks = parse_trusted(trusted)
    client = peer or "unknown"
    if not networks or not forwarded_for or not _trusted(client, networks):
        return client[:64]
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # garbage from before the proxies: the last good hop is the client
        client = address
        if not _trusted(address, networks):
            break
    return client[:64]
