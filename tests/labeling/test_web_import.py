"""Web images: upload with provenance, URL import through the cpu task, duplicates."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from PIL import Image

from labeling import services
from labeling.models import BatchItem, IngestBatch, WebImage
from tests.labeling import images as img

pytestmark = pytest.mark.embedded


def photo(seed: int, size=(480, 360)) -> bytes:
    return img.jpeg_bytes(*size, seed=seed)


class Handler(BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, str]] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        body, ctype = self.files.get(self.path, (b"missing", "text/plain"))
        self.send_response(200 if self.path in self.files else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def image_server(settings):
    Handler.files = {
        "/bear1.jpg": (photo(1), "image/jpeg"),
        "/bear2.jpg": (photo(2), "image/jpeg"),
        "/page.html": (b"<html>not an image</html>", "text/html"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.BEARSITE_FETCH_ALLOWED_HOSTS = [host]
    yield f"http://{host}"
    server.shutdown()


@pytest.mark.django_db
def test_url_csv_import_stores_provenance_and_reasons(admin_client, image_server, django_capture_on_commit_callbacks):
    csv_text = (
        "url,source_page,licence,author\n"
        f"{image_server}/bear1.jpg,https://example.org/p/1,CC BY 4.0,A. Ranger\n"
        f"{image_server}/page.html,https://example.org/p/2,CC0,B\n"
        f"{image_server}/nothing.jpg,,,\n"
        "http://10.1.2.3/bear.jpg,,,\n"
        ",https://example.org/p/5,,\n"
    )
    upload = io.BytesIO(csv_text.encode())
    upload.name = "urls.csv"
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(reverse("web-import-urls"), {"csv_file": upload}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 202
    batch = IngestBatch.objects.get(pk=resp.json()["batch"])
    web = WebImage.objects.get()
    assert (web.source_url, web.source_page, web.licence, web.author) == (
        f"{image_server}/bear1.jpg", "https://example.org/p/1", "CC BY 4.0", "A. Ranger")
    failed = {i.url or i.name: i for i in batch.items.filter(status=BatchItem.Status.FAILED)}
    assert len(failed) == 4
    assert "404" in failed[f"{image_server}/nothing.jpg"].error
    private = failed["http://10.1.2.3/bear.jpg"]
    assert "private" in private.error.lower() or "not allowed" in private.error.lower(), private.error
    assert failed[f"{image_server}/page.html"].error_code
    assert "no URL" in failed["row 6"].error
    page = admin_client.get(reverse("web-list")).content.decode()
    assert "A. Ranger" in page and "CC BY 4.0" in page


@pytest.mark.django_db
def test_url_import_refuses_local_server_unless_allowed(image_server, settings, django_capture_on_commit_callbacks):
    settings.BEARSITE_FETCH_ALLOWED_HOSTS = []
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.batch_create_from_url_csv(csv_text=f"url\n{image_server}/bear2.jpg\n")
    item = batch.items.get()
    assert item.status == BatchItem.Status.FAILED and WebImage.objects.count() == 0
    assert "loopback" in item.error.lower() or "not allowed" in item.error.lower(), item.error


@pytest.mark.django_db
def test_exact_and_near_duplicates_are_flagged(django_capture_on_commit_callbacks):
    original = photo(7, (640, 480))
    resized = io.BytesIO()
    Image.open(io.BytesIO(original)).resize((600, 450)).save(resized, "JPEG", quality=70)
    files = [("bear.jpg", original), ("bear-copy.jpg", original), ("bear-small.jpg", resized.getvalue()),
             ("other.jpg", photo(8, (640, 480)))]
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.batch_create(
            target=IngestBatch.Target.WEB, source=IngestBatch.Source.UPLOAD,
            files=[services.IncomingFile(name=n, fileobj=io.BytesIO(d), size=len(d)) for n, d in files],
        )
    items = {i.name: i for i in batch.items.all()}
    assert items["bear-copy.jpg"].status == BatchItem.Status.DUPLICATE
    small = WebImage.objects.get(original_name="bear-small.jpg")
    assert small.near_duplicate_of.original_name == "bear.jpg"
    assert items["bear-small.jpg"].error_code == "near_duplicate"
    assert WebImage.objects.get(original_name="other.jpg").near_duplicate_of is None
    assert WebImage.objects.count() == 3
