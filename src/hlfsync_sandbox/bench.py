"""`python -m hlfsync_sandbox.bench`: how many simple PATCHes a second the sandbox sustains.

Owns only the measurement. It starts `serve()` in a child process, so the server has a core (and a
GIL) of its own, then drives it with httpx (what hlfsync sees) or with raw TLS sockets (what the
server can do, one core, one request in flight per connection).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from hlfsync_sandbox.client import AdminClient

FIELD = "hlf_listedonwebsite"
CONTACTS = 1000


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid`, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _prepare(env: dict[str, str]) -> tuple[list[str], str, ssl.SSLContext]:
    """Seed contacts and fetch a token: (contact ids, bearer token, TLS context)."""
    url = env["HLFSYNC_DYNAMICS_URL"]
    context = ssl.create_default_context(cafile=env["HLFSYNC_DYNAMICS_CA_BUNDLE"])
    ids = [str(uuid.uuid4()) for _ in range(CONTACTS)]
    with AdminClient(url, verify=context) as admin:
        admin.put_contacts([{"contactid": cid, "listed": True} for cid in ids])
    with httpx.Client(verify=context) as client:
        response = client.post(
            f"{env['HLFSYNC_DYNAMICS_AUTHORITY']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env["HLFSYNC_DYNAMICS_CLIENT_ID"],
                "client_secret": env["HLFSYNC_DYNAMICS_CLIENT_SECRET"],
                "scope": f"{url}/.default",
            },
        )
        response.raise_for_status()
    return ids, str(response.json()["access_token"]), context


async def _httpx_loop(env: dict[str, str], count: int, concurrency: int) -> float:
    """PATCH with httpx.AsyncClient, `concurrency` at a time; the elapsed seconds."""
    ids, token, context = _prepare(env)
    async with httpx.AsyncClient(
        base_url=f"{env['HLFSYNC_DYNAMICS_URL']}/api/data/v9.2/",
        verify=context,
        headers={"authorization": f"Bearer {token}", "if-match": "*"},
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                response = await client.patch(
                    f"contacts({ids[index % CONTACTS]})", json={FIELD: index % 2 == 0}
                )
                if response.status_code != 204:
                    raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

        await asyncio.gather(*(one(index) for index in range(concurrency)))  # warm connections
        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return time.perf_counter() - started


def _raw_loop(env: dict[str, str], count: int, concurrency: int) -> float:
    """PATCH over `concurrency` raw TLS sockets, one request in flight on each.

    httpx spends more CPU per request than the sandbox does, so it measures httpx; this client
    spends almost nothing, so it measures the sandbox.
    """
    ids, token, context = _prepare(env)
    parts = urlsplit(env["HLFSYNC_DYNAMICS_URL"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    body = f'{{"{FIELD}":false}}'.encode()
    requests = [
        (
            f"PATCH /api/data/v9.2/contacts({cid}) HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nIf-Match: *\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for cid in ids
    ]
    failures: list[BaseException] = []

    def connection(share: int) -> None:
        try:
            with (
                socket.create_connection((host, port), timeout=10) as plain,
                context.wrap_socket(plain, server_hostname=host) as tls,
            ):
                for index in range(share):
                    tls.sendall(requests[index % CONTACTS])
                    _expect_no_content(tls)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=connection, args=(count // concurrency,))
        for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return time.perf_counter() - started


def _expect_no_content(tls: ssl.SSLSocket) -> None:
    """Read one response head; a 204 has no body, so the head is the whole response."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = tls.recv(4096)
        if not chunk:
            raise RuntimeError("the sandbox closed the connection")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 204 "):
        raise RuntimeError(f"unexpected answer {answer[:60]!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="httpx: what hlfsync's client achieves; raw: near-free sockets, the sandbox's limit",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hlfsync-sandbox-bench-") as scratch:
        env_file = Path(scratch) / "sandbox.env"
        code = (
            "from pathlib import Path; from hlfsync_sandbox.server import serve; "
            f"serve('127.0.0.1', 0, Path({str(env_file)!r}), Path({scratch!r}))"
        )
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        try:
            if server.stdout is None or not server.stdout.readline():
                raise SystemExit("the sandbox did not start")
            lines = env_file.read_text().splitlines()
            env = dict(line.split("=", 1) for line in lines if "=" in line)
            cpu_before = _cpu_s(server.pid)
            if args.client == "httpx":
                elapsed = asyncio.run(_httpx_loop(env, args.requests, args.concurrency))
            else:
                elapsed = _raw_loop(env, args.requests, args.concurrency)
            cpu_after = _cpu_s(server.pid)
            print(
                f"{args.requests} PATCHes, {args.client} client, concurrency {args.concurrency}: "
                f"{elapsed:.2f} s, {args.requests / elapsed:.0f} requests/s"
            )
            if cpu_before is not None and cpu_after is not None:
                print(f"sandbox process CPU (set-up included): {cpu_after - cpu_before:.2f} s")
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=10)


if __name__ == "__main__":
    main()
