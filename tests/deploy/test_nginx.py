"""deploy/nginx/spc.conf: `nginx -t` with a throw-away certificate, and the proxying it must do."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "spc.conf"
CERT = "/etc/letsencrypt/live/spc.example.com/fullchain.pem"
KEY = "/etc/letsencrypt/live/spc.example.com/privkey.pem"


def _nginx() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def locations(text: str) -> dict[str, str]:
    """Body of each `location` block (no nested blocks in this file)."""
    text = re.sub(r"#[^\n]*", "", text)
    return {m.group(1).strip(): m.group(2)
            for m in re.finditer(r"location\s+([^{]+)\{([^}]*)\}", text)}


def test_websocket_upgrade_and_proxy_headers() -> None:
    text = CONF.read_text()
    locs = locations(text)
    ws = locs["= /api/v1/ws"]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $spc_connection_upgrade;" in ws
    assert re.search(r"proxy_read_timeout\s+(\d+h|\d{4,}s?);", ws)
    assert "map $http_upgrade $spc_connection_upgrade" in text
    assert "proxy_http_version 1.1;" in text
    # nginx inherits no proxy_set_header into a location that sets its own: each proxied
    # location must carry the forwarding headers itself
    for name, body in locs.items():
        if "proxy_pass" in body and "proxy_set_header" in body:
            for header in ("Host $host", "X-Forwarded-For", "X-Forwarded-Proto $scheme"):
                assert header in body, f"location {name} lacks {header}"
    assert "proxy_pass http://spc_server;" in locs["/"]
    assert "rewrite ^/grafana/(.*)$ /$1 break;" in locs["/grafana/"]
    assert "server 127.0.0.1:8000;" in text and "server 127.0.0.1:3000;" in text


def test_tls_and_limits() -> None:
    text = CONF.read_text()
    assert re.search(r"listen 443 ssl", text) and CERT in text and KEY in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "return 301 https://$host$request_uri;" in text
    m = re.search(r"client_max_body_size (\d+)m;", text)
    assert m and int(m.group(1)) * 1024 * 1024 >= 32 * 1024 * 1024  # SPC_MAX_BODY_BYTES
    assert "deny all;" in locations(text)["~ ^(/api/v1)?/metrics$"]


@pytest.mark.skipif(_nginx() is None, reason="nginx is not installed (scripts/setup-system.sh)")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=spc.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    site = tmp_path / "spc.conf"
    site.write_text(CONF.read_text().replace(CERT, str(cert)).replace(KEY, str(key)))
    main = tmp_path / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {tmp_path / kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
                    f"events {{}}\nhttp {{\n  access_log off;\n  {temp}\n  include {site};\n}}\n")
    proc = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", str(main),
                           "-e", str(tmp_path / "error.log")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "test is successful" in proc.stderr, proc.stderr
    # and it would notice a broken file
    site.write_text(site.read_text().replace("proxy_http_version 1.1;", "proxy_http_version;"))
    bad = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", str(main),
                          "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
