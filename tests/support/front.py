"""nginx in front of a daemon, from the repository's own config (deploy/nginx/nexusctl-proxy.conf).

``NginxFront(daemon_port, secret, work, providers={origin: name})`` writes the shipped server config with
the daemon's port, a free listening port, the secret file and (for each provider origin given) an upstream
with kept-alive connections, wraps it in a minimal nginx.conf under ``work`` and runs nginx in the foreground
(its master process as a child of this one). Used by tests/oauth/test_proxy_front.py and bench/proxy.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "nginx" / "nexusctl-proxy.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def nginx_version() -> tuple[int, ...]:
    """The installed nginx's version, e.g. (1, 22, 1)."""
    out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True).stderr
    return tuple(int(part) for part in re.search(r"nginx/(\d+(?:\.\d+)*)", out).group(1).split("."))


LUA_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")
_GRANT_FIELDS = (
    ("nexus_target", "X-Nexus-Target"),
    ("nexus_provider", "X-Nexus-Provider"),
    ("nexus_host", "X-Nexus-Host"),
    ("nexus_server_name", "X-Nexus-Server-Name"),
    ("nexus_c1", "X-Nexus-Credential-Authorization"),
    ("nexus_c2", "X-Nexus-Credential-X-Shopify-Access-Token"),
    ("nexus_c3", "X-Nexus-Credential-Access-Token"),
    ("nexus_c4", "X-Nexus-Credential-developer-token"),
    ("nexus_c5", "X-Nexus-Credential-login-customer-id"),
)


def lua_grant_cache(text: str, seconds: float) -> str:
    """The benchmark's variant (bench/proxy.py --grant-cache): grants kept ``seconds`` in nginx's memory
    (a lua_shared_dict, never on disk), keyed by the caller's Authorization, the request line and the headers
    the grant reads; the auth_request lines swapped for an access_by_lua block asking the same grant route on
    a miss (Debian's libnginx-mod-http-lua)."""
    start = text.index("        auth_request /_nexus/grant;")
    end = text.index("\n", text.index("auth_request_set $nexus_c5"))
    fields = ", ".join(f'h["{header}"] or ""' for _var, header in _GRANT_FIELDS)
    sets = "\n".join(f"            ngx.var.{var} = f[{i + 1}]" for i, (var, _h) in enumerate(_GRANT_FIELDS))
    block = (
        "".join(f'        set ${var} "";\n' for var, _h in _GRANT_FIELDS[2:]) + "        access_by_lua_block {\n"
        "            local grants = ngx.shared.nexus_grants\n"
        "            local key = ngx.md5(table.concat({ngx.var.http_authorization or '', ngx.var.request_uri,\n"
        "                ngx.var.http_connection or '', ngx.var.http_x_nexus_retries or ''}, '\\n'))\n"
        "            local grant = grants:get(key)\n"
        "            if grant == nil then\n"
        "                local res = ngx.location.capture('/_nexus/grant')\n"
        "                if res.status ~= 204 then return ngx.exec('@nexus_daemon') end\n"
        "                local h = res.header\n"
        f"                grant = table.concat({{{fields}}}, '\\n')\n"
        f"                grants:set(key, grant, {seconds})\n"
        "            end\n"
        "            local f = {}\n"
        "            for v in (grant .. '\\n'):gmatch('(.-)\\n') do f[#f + 1] = v end\n"
        f"{sets}\n"
        "        }"
    )
    return text[:start] + block + text[end:]


def render(
    daemon_port: int,
    listen: int,
    secret_file: Path,
    access_log: Path,
    providers: dict[str, str],
    grant_cache: float = 0,
) -> str:
    """The shipped config with this machine's addresses; ``providers``: origin (http://127.0.0.1:5000) ->
    upstream name, each given an upstream block and a line in the ``$nexus_pass`` map."""
    text = CONFIG.read_text()
    if grant_cache:
        text = "lua_shared_dict nexus_grants 10m;\n" + lua_grant_cache(text, grant_cache)
    replaced = {
        "server 127.0.0.1:3000;": f"server 127.0.0.1:{daemon_port};",
        "listen 8080;": f"listen 127.0.0.1:{listen};",
        "/etc/nginx/nexusctl-front-secret.conf": str(secret_file),
        "/var/log/nginx/nexusctl.access.log": str(access_log),
    }
    upstreams, lines = [], []
    for origin, name in providers.items():
        hostport = origin.split("://", 1)[1]
        upstreams.append(f"upstream {name} {{ server {hostport}; keepalive 32; }}")
        lines.append(f'    "~^{re.escape(origin)}(/.*)$" {origin.split("://", 1)[0]}://{name}$1;')
    replaced["# nexusctl: provider upstreams"] = "\n".join(upstreams)
    replaced["    # nexusctl: provider map"] = "\n".join(lines)
    for old, new in replaced.items():
        if old not in text:
            raise AssertionError(f"{CONFIG} no longer has {old!r}")
        text = text.replace(old, new)
    return text


class NginxFront:
    def __init__(
        self,
        daemon_port: int,
        secret: str,
        work: Path,
        providers: dict | None = None,
        workers: int = 1,
        grant_cache: float = 0,
    ):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        secret_file = self.work / "front-secret.conf"
        secret_file.write_text(f'set $nexus_front_secret "{secret}";\n')
        secret_file.chmod(0o600)
        self.access_log = self.work / "access.log"
        self.error_log = self.work / "error.log"
        (self.work / "nexusctl.conf").write_text(
            render(daemon_port, self.port, secret_file, self.access_log, providers or {}, grant_cache)
        )
        temp = ";\n  ".join(
            f"{kind}_temp_path {self.work / kind}" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.work / "nginx.conf").write_text(
            "".join(f"load_module {module};\n" for module in (LUA_MODULES if grant_cache else ()))
            + ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes {workers};\npid {self.work / 'nginx.pid'};\n"
            f"error_log {self.error_log} warn;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n  {temp};\n  access_log off;\n  include {self.work / 'nexusctl.conf'};\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> "NginxFront":
        binary = nginx_binary()
        conf = str(self.work / "nginx.conf")
        checked = subprocess.run([binary, "-t", "-q", "-c", conf, "-e", str(self.error_log)], capture_output=True)
        if checked.returncode:
            raise RuntimeError(f"nginx refused the config: {checked.stderr.decode(errors='replace')}")
        self.process = subprocess.Popen(
            [binary, "-c", conf, "-e", str(self.error_log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(self.base + "/health", timeout=2).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not come up: {self.error_log.read_text(errors='replace')}")
                time.sleep(0.05)  # polling for the listener nginx opens on its own

    def worker_pids(self) -> list[int]:
        """nginx's worker processes (children of the master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> "NginxFront":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
