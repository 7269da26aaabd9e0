"""The capture app's files and the sign-in endpoint, served by ingest."""

from __future__ import annotations

import re

import httpx
import orjson

from services.ingest.capture_routes import ASSETS, STATIC
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token


async def test_page_and_every_asset_come_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    for path in ["/capture", "/capture/sw.js", *(f"/capture/{name}" for name in ASSETS)]:
        r = await client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/capture/sw.js")).headers["service-worker-allowed"] == "/capture"
    assert (await client.get("/capture/../settings.py")).status_code == 404
    assert (await client.get("/capture/nothing.js")).status_code == 404


async def test_nothing_is_loaded_from_elsewhere_and_nothing_is_inline(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/capture")).text
    assert "<script>" not in html and "style=" not in html and "on" + "click=" not in html
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/capture", "#")), url
    for name in ASSETS:
        text = (STATIC / name).read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and ".innerHTML =" not in text, name


async def test_the_service_worker_keeps_every_file_the_app_loads() -> None:
    kept = set(re.findall(r'"(/capture[^"]*)"', (STATIC / "sw.js").read_text()))
    assert kept == {"/capture", *(f"/capture/{name}" for name in ASSETS)}


async def test_the_manifest_makes_it_installable(client: httpx.AsyncClient) -> None:
    manifest = orjson.loads((await client.get("/capture/manifest.webmanifest")).content)
    assert manifest["start_url"] == "/capture" and manifest["display"] == "standalone"
    assert manifest["icons"] and manifest["name"]


async def test_principal_names_the_field_officer_and_their_operations(
    client: httpx.AsyncClient, settings: IngestSettings
) -> None:
    token = dev_token(role="field", operations=["op-b", "op-a"], subject="PC4101")
    r = await client.get("/v1/principal", headers={"Authorization": f"Bearer {token}"})
    assert r.json() == {"subject": "PC4101", "role": "field", "operations": ["op-a", "op-b"]}
    assert (await client.get("/v1/principal")).status_code == 401
    supervisor = dev_token(role="supervisor", operations=["op-a"])
    r = await client.get("/v1/principal", headers={"Authorization": f"Bearer {supervisor}"})
    assert r.status_code == 403  # the capture app is for those who may write events
