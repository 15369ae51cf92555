"""Where webhooks may go: public http(s) endpoints only, unless the operator allows more.

Whoever holds a ``webhooks:write`` key chooses the URL the server POSTs to, so without a guard
the server could be made to reach its own loopback, the private network or the cloud metadata
service (SSRF). A destination is refused when its scheme is not http(s), when the URL carries
credentials, or when its host is, or resolves to, an address that is not globally routable:
loopback, private, link-local, multicast, reserved, unspecified or otherwise non-global (IPv4
addresses embedded in IPv6 — mapped, 6to4, NAT64 — are judged as IPv4).

The check runs at registration (best effort: a name that does not resolve yet is accepted) and
again at delivery, where it is authoritative: the dispatcher's connections resolve the host,
check every address and connect to a checked address (no second lookup an attacker's DNS could
answer differently), so a name re-pointed at an internal address after registration is refused.

``FREEZEDESK_WEBHOOK_ALLOW_HOSTS`` lists exceptions for development and internal receivers:
host names (exact, case-insensitive: every address they resolve to is allowed), IP addresses and
networks in CIDR notation (e.g. ``127.0.0.1,receiver.internal,10.20.0.0/16``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

from freezedesk.domain.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
ALLOW_HOSTS_SETTING = "FREEZEDESK_WEBHOOK_ALLOW_HOSTS"


class WebhookUrlForbidden(DomainError):
    """``reason`` is a stable code: scheme, credentials, malformed, loopback, private, link-local,
    multicast, reserved, unspecified or non-global."""

    type = "webhook-url-forbidden"
    title = "Webhooks may only be sent to public http(s) endpoints"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, field="url", reason=reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _classify(address: IPAddress) -> str | None:
    """Why this address is no destination for a webhook, or None if it is globally routable."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-global"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class DestinationPolicy:
    """Decides whether a URL, host or address may receive webhooks."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver | None = None) -> None:
        self.allowed_hosts: set[str] = set()
        self.allowed_networks: list[IPNetwork] = []
        for entry in allow:
            item = entry.strip().strip("[]").lower()
            if not item:
                continue
            try:
                self.allowed_networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.allowed_hosts.add(item.rstrip("."))
        self._resolver = resolver

    def resolve(self, host: str, port: int) -> list[str]:
        return (self._resolver or system_resolver)(host, port)

    def _host_allowed(self, host: str) -> bool:
        return host.strip("[]").lower().rstrip(".") in self.allowed_hosts

    def _address_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def refusal(self, address: IPAddress) -> str | None:
        """The reason this address is refused, or None."""
        if self._address_allowed(address):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.refusal(address.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
        reason = _classify(address)
        if reason is None:
            inner = _embedded_ipv4(address)
            if inner is not None and not self._address_allowed(inner):
                reason = _classify(inner)
        return reason

    def _forbid(self, host: str, address: IPAddress | str, reason: str) -> WebhookUrlForbidden:
        shown = host if str(address) == host else f"{host} ({address})"
        return WebhookUrlForbidden(
            f"url host {shown} is refused ({reason} address); webhooks may only be sent to public addresses "
            f"(an operator can allow a host or network with {ALLOW_HOSTS_SETTING})", reason)

    def check_static(self, url: str) -> SplitResult:
        """What needs no DNS: scheme, credentials, a host, a valid port, literal addresses."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise WebhookUrlForbidden(f"url scheme {parts.scheme or '(none)'!r} is not allowed; "
                                      "use http or https", "scheme")
        if "@" in parts.netloc:
            raise WebhookUrlForbidden("url must not carry credentials (user:password@); "
                                      "receivers authenticate the signature instead", "credentials")
        host = parts.hostname
        if not host:
            raise WebhookUrlForbidden("url has no host", "malformed")
        try:
            parts.port  # noqa: B018 (validates the port)
        except ValueError:
            raise WebhookUrlForbidden("url has an invalid port", "malformed") from None
        literal = parse_address(host)
        if literal is not None and not self._host_allowed(host):
            reason = self.refusal(literal)
            if reason is not None:
                raise self._forbid(host, literal, reason)
        return parts

    def check_url(self, url: str) -> None:
        """At registration: static checks, then every address the host resolves to now.

        A host that does not resolve is accepted (its DNS may not exist yet); delivery checks again.
        """
        parts = self.check_static(url)
        host = parts.hostname or ""
        if parse_address(host) is not None or self._host_allowed(host):
            return
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            addresses = self.resolve(host, port)
        except (OSError, UnicodeError):
            return
        for text in addresses:
            self._check_resolved(host, text)

    def addresses(self, host: str, port: int) -> list[str]:
        """At connection time: the checked addresses to connect to (raises if any is refused).

        Every address must pass, not just the first: a name answering with one public and one
        internal address would otherwise reach the internal one on a retry or a fallback.
        """
        literal = parse_address(host)
        if literal is not None:
            if not self._host_allowed(host):
                reason = self.refusal(literal)
                if reason is not None:
                    raise self._forbid(host, literal, reason)
            return [str(literal)]
        resolved = list(dict.fromkeys(self.resolve(host, port)))
        if not self._host_allowed(host):
            for text in resolved:
                self._check_resolved(host, text)
        return resolved

    def _check_resolved(self, host: str, text: str) -> None:
        address = parse_address(text)
        if address is None:
            raise WebhookUrlForbidden(f"url host {host} resolves to {text!r}, which is not an IP address",
                                      "non-global")
        reason = self.refusal(address)
        if reason is not None:
            raise self._forbid(host, address, reason)
