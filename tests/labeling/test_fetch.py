"""URL import: what a survey lead gets back for each kind of link, and what is refused unsent.

A local HTTP server on 127.0.0.1 (allowed explicitly, as the setting would) serves the images.
No test sends traffic anywhere else: refused addresses are refused before any connection, and a
spy on socket.connect proves it.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling.ingest import FetchError, fetch_image
from labeling.ingest import fetch as fetch_module
from tests.labeling.images import gif_bytes, html_page, jpeg_bytes, png_bytes

JPEG = jpeg_bytes(320, 240)
PNG = png_bytes(320, 240)
CAP = 200_000  # a small byte cap keeps the oversize tests cheap


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body=b"", content_type="image/jpeg", headers=(), length=True):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, as it should for oversize bodies

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path
        self.server.seen_hosts.append(self.headers.get("Host"))
        if path == "/frame.jpg":
            self._send(200, JPEG, "image/jpeg; charset=binary")
        elif path == "/frame.png":
            self._send(200, PNG, "image/png")
        elif path == "/png-labelled-jpeg":
            self._send(200, PNG, "image/jpeg")
        elif path == "/lie.jpg":
            self._send(200, html_page(), "image/jpeg")
        elif path == "/page.html":
            self._send(200, JPEG, "text/html")
        elif path == "/anim.gif":
            self._send(200, gif_bytes(), "image/gif")
        elif path == "/huge-declared":
            self._send(200, JPEG + b"\x00" * (CAP + 1 - len(JPEG)))
        elif path == "/huge-undeclared":
            self._send(200, JPEG + b"\x00" * (CAP * 3), length=False)
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            target = "/frame.jpg" if left == 0 else f"/hop/{left - 1}"
            self._send(302, b"", None, [("Location", target)])
        elif path == "/relative":
            self._send(301, b"", None, [("Location", "frame.jpg")])
        elif path == "/to-metadata":
            self._send(302, b"", None, [("Location", "http://169.254.169.254/latest/meta-data/")])
        elif path == "/to-private":
            self._send(307, b"", None, [("Location", "http://10.0.0.1/frame.jpg")])
        elif path == "/to-ftp":
            self._send(302, b"", None, [("Location", "ftp://example.org/frame.jpg")])
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, JPEG)
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            body = JPEG + b"\x00" * 80_000  # 40+ pieces at 0.1 s: over 4 s in all
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for index in range(0, len(body), 2000):
                try:
                    self.wfile.write(body[index : index + 2000])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(0.1)
        else:
            self._send(404, b"not here", "text/plain")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.seen_hosts = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def base(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def allowed(server):
    return (f"127.0.0.1:{server.server_address[1]}",)


@pytest.fixture
def connections(monkeypatch):
    """Every address a socket connects to during the test."""
    seen: list[tuple] = []
    real_connect = socket.socket.connect

    def spy(sock, address):
        seen.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen


def _refused(url, code, **options):
    with pytest.raises(FetchError) as caught:
        fetch_image(url, **options)
    assert caught.value.code == code, caught.value.message
    assert caught.value.message
    return caught.value


# --- what comes back ------------------------------------------------------------------------


def test_a_jpeg_from_an_allowed_local_server_is_fetched(base, allowed):
    fetched = fetch_image(f"{base}/frame.jpg", allowed_hosts=allowed)

    assert fetched.content == JPEG
    assert fetched.content_type == "image/jpeg"
    assert fetched.final_url == f"{base}/frame.jpg"


def test_the_request_names_the_host_it_asked_for(server, base, allowed):
    fetch_image(f"{base}/frame.png", allowed_hosts=allowed)
    assert server.seen_hosts[-1] == f"127.0.0.1:{server.server_address[1]}"


def test_redirects_within_the_limit_are_followed(base, allowed):
    fetched = fetch_image(f"{base}/hop/2", allowed_hosts=allowed, max_redirects=3)
    assert fetched.content == JPEG
    assert fetched.final_url == f"{base}/frame.jpg"

    relative = fetch_image(f"{base}/relative", allowed_hosts=allowed)
    assert relative.final_url == f"{base}/frame.jpg"


def test_the_content_type_reported_is_what_the_bytes_are(base, allowed):
    fetched = fetch_image(f"{base}/png-labelled-jpeg", allowed_hosts=allowed)
    assert fetched.content_type == "image/png"


# --- what is refused ------------------------------------------------------------------------


def test_an_html_page_that_claims_to_be_a_jpeg_is_refused(base, allowed):
    error = _refused(f"{base}/lie.jpg", "not_an_image", allowed_hosts=allowed)
    assert "image/jpeg" in error.message


def test_a_content_type_outside_the_allowed_types_is_refused(base, allowed):
    _refused(f"{base}/page.html", "wrong_content_type", allowed_hosts=allowed)
    _refused(f"{base}/anim.gif", "wrong_content_type", allowed_hosts=allowed)
    _refused(
        f"{base}/frame.png",
        "wrong_content_type",
        allowed_hosts=allowed,
        allowed_types=("image/jpeg",),
    )


def test_a_body_over_the_size_limit_is_refused(base, allowed):
    error = _refused(f"{base}/huge-declared", "too_large", allowed_hosts=allowed, max_bytes=CAP)
    assert "0.2 MB" in error.message
    # Without a Content-Length the running count stops it.
    _refused(f"{base}/huge-undeclared", "too_large", allowed_hosts=allowed, max_bytes=CAP)


def test_a_redirect_chain_longer_than_the_limit_is_refused(base, allowed):
    _refused(f"{base}/hop/4", "too_many_redirects", allowed_hosts=allowed, max_redirects=3)


@pytest.mark.parametrize("path", ["/to-metadata", "/to-private"])
def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    base, allowed, server, connections, path
):
    error = _refused(f"{base}{path}", "host_not_allowed", allowed_hosts=allowed)

    assert "169.254.169.254" in error.message or "10.0.0.1" in error.message
    assert connections, "the first hop to the local server was made"
    assert all(address[0] == "127.0.0.1" for address in connections)


def test_a_redirect_to_another_scheme_is_refused(base, allowed):
    _refused(f"{base}/to-ftp", "scheme_not_allowed", allowed_hosts=allowed)


def test_a_server_slower_than_the_timeout_is_abandoned(base, allowed):
    started = time.monotonic()
    _refused(f"{base}/slow", "timeout", allowed_hosts=allowed, timeout=(1, 0.3))
    assert time.monotonic() - started < 0.9


def test_a_server_that_drips_bytes_is_cut_off_by_the_total_timeout(base, allowed):
    # Each piece arrives well within the read timeout; only the total deadline can stop it.
    started = time.monotonic()
    _refused(f"{base}/drip", "timeout", allowed_hosts=allowed, timeout=(1, 1), total_timeout=0.3)
    assert time.monotonic() - started < 1.5


def test_a_server_that_is_not_listening_is_a_connection_failure():
    with socket.socket() as probe:  # find a free port, then leave it closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _refused(
        f"http://127.0.0.1:{port}/frame.jpg", "connection_failed", allowed_hosts=("127.0.0.1",)
    )


def test_a_missing_page_reports_the_status(base, allowed):
    error = _refused(f"{base}/nothing", "http_status", allowed_hosts=allowed)
    assert "404" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/frame.jpg",  # loopback, not allowed this time
        "http://localhost:{port}/frame.jpg",
        "http://[::1]:{port}/frame.jpg",
        "http://0.0.0.0:{port}/frame.jpg",
        "http://[::ffff:127.0.0.1]:{port}/frame.jpg",  # IPv4-mapped IPv6
        "http://2130706433:{port}/frame.jpg",  # 127.0.0.1 as one decimal number
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/frame.jpg",
        "http://192.168.1.20/frame.jpg",
        "http://100.64.0.1/frame.jpg",  # carrier-grade NAT
        "http://[fe80::1]/frame.jpg",
        "http://224.0.0.1/frame.jpg",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused_unsent(server, connections, url):
    url = url.format(port=server.server_address[1])
    _refused(url, "host_not_allowed")
    assert connections == []


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch, connections):
    monkeypatch.setattr(
        fetch_module, "resolve_host", lambda host, port: ["93.184.216.34", "10.1.2.3"]
    )
    error = _refused("https://images.example.org/bear.jpg", "host_not_allowed")
    assert "10.1.2.3" in error.message
    assert connections == []


def test_allowing_a_host_and_port_does_not_allow_other_ports(server, connections):
    port = server.server_address[1]
    _refused(
        f"http://127.0.0.1:{port}/frame.jpg", "host_not_allowed", allowed_hosts=("127.0.0.1:1",)
    )
    assert connections == []
    fetched = fetch_image(f"http://127.0.0.1:{port}/frame.jpg", allowed_hosts=("127.0.0.1",))
    assert fetched.content == JPEG


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://127.0.0.1/frame.jpg", "scheme_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://127.0.0.1:70/", "scheme_not_allowed"),
        ("http://user:secret@example.org/frame.jpg", "bad_url"),
        ("http:///frame.jpg", "bad_url"),
        ("http://example.org:99999/frame.jpg", "bad_url"),
    ],
)
def test_other_schemes_and_malformed_urls_are_refused_unsent(connections, url, code):
    _refused(url, code, allowed_hosts=("127.0.0.1", "example.org"))
    assert connections == []


# --- HTTPS: the checked address is the one connected to, and the certificate is still verified --


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 whose certificate names "bear.test" (own CA, openssl CLI)."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("the openssl command is needed in CI to make a test certificate")
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=bear.test", "-addext", "subjectAltName=DNS:bear.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.seen_hosts = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, str(cert)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def names_resolve_to_loopback(monkeypatch):
    monkeypatch.setattr(fetch_module, "resolve_host", lambda host, port: ["127.0.0.1"])


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    tls_server, names_resolve_to_loopback, connections
):
    httpd, ca_file = tls_server
    port = httpd.server_address[1]

    fetched = fetch_image(
        f"https://bear.test:{port}/frame.jpg", allowed_hosts=("bear.test",), ca_certs=ca_file
    )

    assert fetched.content == JPEG
    assert [address[0] for address in connections] == ["127.0.0.1"]
    assert httpd.seen_hosts[-1] == f"bear.test:{port}"


def test_https_with_a_certificate_for_another_name_is_refused(
    tls_server, names_resolve_to_loopback
):
    httpd, ca_file = tls_server
    port = httpd.server_address[1]
    error = _refused(
        f"https://other.test:{port}/frame.jpg",
        "connection_failed",
        allowed_hosts=("other.test",),
        ca_certs=ca_file,
    )
    assert "TLS" in error.message and "other.test" in error.message


def test_https_with_an_untrusted_certificate_is_refused(tls_server, names_resolve_to_loopback):
    httpd, _ = tls_server
    port = httpd.server_address[1]
    error = _refused(
        f"https://bear.test:{port}/frame.jpg", "connection_failed", allowed_hosts=("bear.test",)
    )
    assert "TLS" in error.message


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.255.0.1", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.1.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("239.1.2.3", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("2002:0a00:0001::1", False),  # 6to4 wrapping 10.0.0.1
    ],
)
def test_only_public_unicast_addresses_count_as_public(address, public):
    assert fetch_module.is_public_address(address) is public
