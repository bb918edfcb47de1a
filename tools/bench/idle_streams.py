#!/usr/bin/python3
"""Redis commands per second of idle Subscribe streams (issue 19, item 4).

Starts a private redis-server and one rogatory-notification from --bin-dir (any build, old
or new: it talks to the service over gRPC only), opens 0, 1 and 100 idle Subscribe streams
in turn (5 caller authorities, under max-streams-per-caller), and counts what Redis executed
over --seconds with Redis MONITOR (the commands scripts run included): all of them, and those
naming one of the streams' inboxes (the streams' own cost). The service runs with its defaults;
the other commands are its background work (fan-out, webhook queue, retrieval timers).

    /usr/bin/python3 tools/bench/idle_streams.py --bin-dir build/bin [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import re
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import grpc.aio  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (processes, Redis, stubs)

rc = base.rc
CALLERS = 5  # 20 streams each at most (max-streams-per-caller)


def metric(port: int, name: str) -> float:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        page = r.read().decode()
    found = re.search(r"^" + re.escape(name) + r" (\S+)$", page, re.M)
    return float(found.group(1)) if found else 0.0


def monitor(redis: base.RedisServer, seconds: float) -> tuple[int, int]:
    """Commands Redis executed over `seconds` (MONITOR, the commands scripts ran included):
    all of them, and those naming one of the bench callers' inboxes (the streams' own)."""
    import socket
    sock = socket.create_connection(("127.0.0.1", redis.port))
    sock.sendall(b"MONITOR\r\n")
    sock.settimeout(0.2)
    data = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    sock.close()
    lines = [line for line in data.split(b"\r\n")[1:] if line.startswith(b"+")]
    return len(lines), sum(1 for line in lines if b"inbox:DE-BENCH-" in line)


async def measure(addr: str, metrics_port: int, redis, streams: int, seconds: float):
    s = rc.stubs()
    channel = grpc.aio.insecure_channel(addr)
    stub = s.notification_grpc.NotificationServiceStub(channel)
    callers = [rc.Caller(f"DE-BENCH-{i:02d}", "DE", ("executing",)) for i in range(CALLERS)]
    calls = [stub.Subscribe(s.notification.SubscribeRequest(),
                            metadata=callers[i % CALLERS].metadata(), timeout=600)
             for i in range(streams)]
    deadline = time.monotonic() + 60
    while metric(metrics_port, "rogatory_notification_connected_subscribers") != streams:
        if time.monotonic() > deadline:
            raise SystemExit(f"{streams} streams did not open")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # their first reads are done
    total, own = await asyncio.get_running_loop().run_in_executor(
        None, monitor, redis, seconds)
    rate = (total / seconds, own / seconds)
    for call in calls:
        call.cancel()
    await channel.close()
    while metric(metrics_port, "rogatory_notification_connected_subscribers") != 0:
        await asyncio.sleep(0.2)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=pathlib.Path, default=REPO / "build" / "bin")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    base.BIN_DIR = args.bin_dir.resolve()
    work = pathlib.Path(tempfile.mkdtemp(prefix="idle-streams-"))
    base.WORK_ROOT = work
    redis = base.RedisServer(work)
    redis.start()
    port, metrics_port = base.free_port(), base.free_port()
    process = base.ManagedProcess(
        "rogatory-notification",
        [str(base.BIN_DIR / "rogatory-notification"), f"--listen=127.0.0.1:{port}",
         f"--metrics-listen=127.0.0.1:{metrics_port}", f"--redis-url={redis.url}",
         "--redis-shards=16", *base.AUTH_ARGS],
        work / "notification.log")
    process.start()
    try:
        addr = f"127.0.0.1:{port}"
        base._poll(lambda: rc.health_check(addr, rc.NOTIFICATION_SERVICE, timeout=1.0)
                   == "SERVING", 60, "notification ready")
        figures = {n: asyncio.run(measure(addr, metrics_port, redis, n, args.seconds))
                   for n in (0, 1, 100)}
    finally:
        process.stop()
        redis.stop()
    print(f"rogatory-notification from {base.BIN_DIR}, {args.seconds:g} s per figure")
    print("| idle streams | Redis commands/s, all | on the streams' inboxes | per stream |")
    print("|---|---|---|---|")
    for n, (total, own) in figures.items():
        per = f"{own / n:.2f}" if n else "-"
        print(f"| {n} | {total:.1f} | {own:.1f} | {per} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
