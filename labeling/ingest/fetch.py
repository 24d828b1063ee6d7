"""Download one image from a URL for Web-image import, safely.

Django-free; the Celery task on the ``cpu`` queue calls ``fetch_image`` and hands the bytes to the
ingest probe. Guarantees, per call:

- Only ``http`` and ``https`` URLs, without user names or passwords.
- Server-side request forgery: the host is resolved here, and the request is refused before any
  connection is made if *any* address the name resolves to is not a public unicast address
  (private, loopback, link-local incl. cloud metadata 169.254.169.254, shared/CGNAT, reserved,
  multicast, unspecified such as 0.0.0.0; IPv4 embedded in IPv6 is unwrapped first). A host listed
  in ``allowed_hosts`` (as "host" or "host:port") is exempt; that is how tests and on-site servers
  are allowed.
- The connection goes to the very address that was checked (TLS still verifies the certificate
  against the host name, via SNI), so DNS rebinding between the check and the connection is not
  possible. Proxies from the environment are deliberately not used, since a proxy would resolve
  the name again.
- Every redirect hop (at most ``max_redirects``) is parsed and checked again before it is followed.
- Timeouts: ``timeout`` = (connect, read) seconds per socket operation, plus ``total_timeout`` on the
  whole call so a server that drips one byte at a time cannot hold a worker.
  Residual: the system resolver's own DNS timeout is not bounded by these values.
- Size: a Content-Length above ``max_bytes`` is refused before the body is read, and a running count
  stops a body without (or lying about) a length.
- Type: the Content-Type header must be one of ``allowed_types``, and the body itself must start
  like, and have a header Pillow can parse as, one of those types. The returned ``content_type`` is
  the sniffed one. Full pixel validation is left to the ingest probe.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from io import BytesIO
from typing import Final
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from labeling.ingest.formats import ACCEPTED_MIME, SNIFF_BYTES, open_header, sniff_format

DEFAULT_TYPES: Final = ("image/jpeg", "image/png", "image/tiff")
_REDIRECTS: Final = {301, 302, 303, 307, 308}
_CHUNK: Final = 64 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
USER_AGENT: Final = "bearsite-image-import/1.0"


class FetchError(Exception):
    """A URL that could not be imported, with a stable ``code`` and a user-facing ``message``.

    Codes: ``bad_url``, ``scheme_not_allowed``, ``host_not_allowed``, ``dns_failed``,
    ``connection_failed``, ``timeout``, ``too_many_redirects``, ``http_status``, ``too_large``,
    ``wrong_content_type``, ``not_an_image``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"FetchError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class FetchedImage:
    """The downloaded body; ``content_type`` is what the bytes are, ``final_url`` after redirects."""

    content: bytes
    content_type: str
    final_url: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lower-case, IDNA-encoded, no brackets
    port: int
    path: str  # path + query, as sent in the request line
    url: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def fetch_image(
    url: str,
    *,
    allowed_hosts: Iterable[str] = (),
    timeout: tuple[float, float] = (5, 20),
    max_bytes: int = 50_000_000,
    max_redirects: int = 3,
    allowed_types: Iterable[str] = DEFAULT_TYPES,
    total_timeout: float = 120.0,
    ca_certs: str | None = None,
) -> FetchedImage:
    """Fetch ``url`` under the guarantees in the module docstring; raise ``FetchError`` otherwise.

    ``ca_certs`` is a PEM bundle to trust instead of certifi's (an on-site server's private CA).
    """
    allowed = _normalise_allowed(allowed_hosts)
    types = tuple(media.lower() for media in allowed_types)
    deadline = time.monotonic() + total_timeout
    current = url
    for _hop in range(max_redirects + 1):
        target = _parse(current)
        addresses = _checked_addresses(target, allowed)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"fetching {url} took too long")
        hop_timeout = (min(timeout[0], remaining), min(timeout[1], remaining))
        response = _request(target, addresses, hop_timeout, types, ca_certs)
        try:
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise FetchError(
                        "http_status",
                        f"the server redirected ({response.status}) without a Location",
                    )
                current = urljoin(target.url, location.strip())
                continue
            return _read_image(response, target, types, max_bytes, deadline)
        finally:
            # Never reuse a connection: one request per pinned address, then close it, read or not.
            response.close()
    raise FetchError(
        "too_many_redirects", f"more than {max_redirects} redirects; stopped at {current}"
    )


def resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (module-level so tests can substitute a resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone ("fe80::1%eth0")
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_public_address(address: str) -> bool:
    """True only for a globally routable unicast address (IPv4-in-IPv6 forms are unwrapped)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.ipv4_mapped is not None:
            return True
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


# --- steps ------------------------------------------------------------------------------------


def _normalise_allowed(hosts: Iterable[str]) -> frozenset[str]:
    normal = set()
    for entry in hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("[") and entry.endswith("]"):
            entry = entry[1:-1]  # "[::1]" -> "::1"; "[::1]:8000" keeps its brackets
        normal.add(entry)
    return frozenset(normal)


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError("bad_url", f"not a valid URL: {url!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise FetchError(
            "scheme_not_allowed",
            f"only http and https URLs can be imported, not {scheme or 'this'}",
        )
    if parts.username is not None or parts.password is not None:
        raise FetchError("bad_url", "URLs with a user name or password are not accepted")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchError("bad_url", f"the URL has no host: {url!r}")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise FetchError("bad_url", f"the host name is not valid: {host!r}") from exc
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(scheme, host.lower(), port or _DEFAULT_PORTS[scheme], path, parts.geturl())


def _checked_addresses(target: _Target, allowed: frozenset[str]) -> list[str]:
    try:
        addresses = resolve_host(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise FetchError("dns_failed", f"the host {target.host} could not be resolved") from exc
    if not addresses:
        raise FetchError("dns_failed", f"the host {target.host} has no address")
    host_port = (
        f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
    )
    if target.host in allowed or host_port in allowed:
        return addresses
    for address in addresses:
        if not is_public_address(address):
            raise FetchError(
                "host_not_allowed",
                f"refused to fetch from {target.host}: it resolves to {address}, a private, "
                "loopback, link-local or reserved address (add the host to the allowed hosts "
                "setting to permit it)",
            )
    return addresses


def _request(
    target: _Target,
    addresses: list[str],
    timeout: tuple[float, float],
    types: tuple[str, ...],
    ca_certs: str | None,
) -> urllib3.BaseHTTPResponse:
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": ", ".join(types),
        "Accept-Encoding": "identity",
    }
    connect_timeout, read_timeout = timeout
    last_error: FetchError | None = None
    for address in addresses:  # a dual-stack name may refuse on one family; try each checked one
        pool = _pool(
            target, address, urllib3.Timeout(connect=connect_timeout, read=read_timeout), ca_certs
        )
        try:
            # The pool object is dropped after this request; closing the response closes the socket.
            return pool.urlopen(
                "GET",
                target.path,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except NewConnectionError as exc:
            last_error = FetchError(
                "connection_failed", f"could not connect to {target.host} ({address})"
            )
            last_error.__cause__ = exc
        except (HTTPError, OSError) as exc:
            raise _transport_error(exc, target) from exc
    assert last_error is not None
    raise last_error


def _pool(
    target: _Target, address: str, timeout: urllib3.Timeout, ca_certs: str | None
) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or certifi.where(),
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(
        address, target.port, timeout=timeout, maxsize=1, retries=False
    )


def _transport_error(exc: HTTPError | OSError, target: _Target) -> FetchError:
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, NewConnectionError):
        return FetchError("connection_failed", f"could not connect to {target.host}")
    if isinstance(exc, (Urllib3Timeout, socket.timeout, TimeoutError)):
        return FetchError("timeout", f"{target.host} did not answer in time")
    if isinstance(exc, SSLError):
        return FetchError(
            "connection_failed", f"the TLS connection to {target.host} failed ({exc})"
        )
    if isinstance(exc, ProtocolError):
        return FetchError("connection_failed", f"the connection to {target.host} broke off ({exc})")
    return FetchError("connection_failed", f"fetching from {target.host} failed ({exc})")


def _read_image(
    response: urllib3.BaseHTTPResponse,
    target: _Target,
    types: tuple[str, ...],
    max_bytes: int,
    deadline: float,
) -> FetchedImage:
    if response.status != 200:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        raise FetchError("http_status", f"the server answered {response.status} {reason}".rstrip())
    media_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media_type not in types:
        raise FetchError(
            "wrong_content_type",
            f"the server says this is {media_type or 'of no stated type'}, not one of "
            f"{', '.join(types)}",
        )
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", _too_large(int(declared), max_bytes))

    body = bytearray()
    try:
        # read1 returns after a single socket read, so the deadline is checked at least once per
        # read timeout even when a server drips bytes (read() would wait to fill the chunk).
        while chunk := response.read1(_CHUNK, decode_content=True):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError("too_large", _too_large(None, max_bytes))
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"downloading from {target.host} took too long")
    except (HTTPError, OSError) as exc:
        raise _transport_error(exc, target) from exc

    content = bytes(body)
    sniffed = sniff_format(content[:SNIFF_BYTES])
    sniffed_type = ACCEPTED_MIME.get(sniffed or "")
    if sniffed is None or sniffed_type not in types:
        raise FetchError(
            "not_an_image",
            f"the server said {media_type}, but the content is not a "
            f"{' / '.join(t.split('/')[1].upper() for t in types)} image",
        )
    try:
        open_header(BytesIO(content), sniffed)
    except Exception as exc:  # noqa: BLE001 - any header failure means "not a usable image"
        raise FetchError(
            "not_an_image", f"the content starts like a {sniffed} but its header is broken"
        ) from exc
    return FetchedImage(content=content, content_type=sniffed_type, final_url=target.url)


def _too_large(size: int | None, max_bytes: int) -> str:
    limit = f"{max_bytes / 1e6:g} MB"
    if size is None:
        return f"the download is larger than the {limit} limit"
    return f"the file is {size / 1e6:.1f} MB, above the {limit} limit"
