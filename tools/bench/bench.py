#!/usr/bin/python3
"""Runs Rogatory's benchmark: every rogatory-bench scenario beside its baselines, in the
production configuration and in steps from the development one, and writes the report.

Started by tools/bench/run.sh (which installs and builds first). Everything runs on this
machine: redis-server, the four services and rogatory-echo (the baseline server, built with
the same platform) on free loopback ports, each configuration from a fresh Redis.

  bench.py --build-dir build --report tools/bench/REPORT.md     # the whole report (~10 min)
  bench.py --build-dir build --smoke                            # every scenario for a second
  bench.py --build-dir build --idle [--idle-replicas 1,3]       # only the idle cost (~1.5 min)

The smoke run (a ctest of the test suite) checks that every scenario still runs without a
failed call; it measures nothing and writes no report.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import platform as pyplatform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools", "pyclient"))
import rogatory_client as rc  # noqa: E402

SERVICES = ("intake", "routing", "deadlines", "notification")
HEALTH_NAMES = {
    "intake": "rogatory.intake.v1.IntakeService",
    "routing": "rogatory.routing.v1.TranslationRoutingService",
    "deadlines": "rogatory.deadlines.v1.DeadlineService",
    "notification": "rogatory.notification.v1.NotificationService",
    "echo": "rogatory.bench.v1.EchoService",
}
READY_TIMEOUT_S = 30


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


_used_ports: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port


@dataclasses.dataclass(frozen=True)
class Config:
    """One configuration under test; each step of the cost table adds one feature."""
    name: str
    auth: str = "metadata"     # metadata (development) | token (ES256 in production)
    tls: bool = False          # TLS on every gRPC server and client
    audit: str = "log"         # log (a log line) | chain (the tamper-evident Redis log)
    fsync: str = "off"         # off (no AOF) | always (appendfsync always)

    @property
    def production(self) -> bool:
        return self.auth == "token" and self.tls and self.audit == "chain" and self.fsync == "always"

    def describe(self) -> str:
        return (f"auth={self.auth}{' (ES256)' if self.auth == 'token' else ''}, "
                f"tls={'on' if self.tls else 'off'}, audit={self.audit}, "
                f"Redis {'appendfsync always' if self.fsync == 'always' else 'without AOF'}")


DEV = Config("development")
STEPS = [
    DEV,
    dataclasses.replace(DEV, name="+ tokens", auth="token"),
    dataclasses.replace(DEV, name="+ TLS", auth="token", tls=True),
    dataclasses.replace(DEV, name="+ audit chain", auth="token", tls=True, audit="chain"),
    Config("production", auth="token", tls=True, audit="chain", fsync="always"),
]
PRODUCTION = STEPS[-1]


class Keys:
    """Production-like keys made for the run: two ES256 pairs, one for callers' tokens (the
    benchmark signs with it, as an identity provider would) and one for the services' own
    tokens (services verify both with the public halves), an audit HMAC key and TLS
    certificates from deploy/tls/make-certs.sh."""

    def __init__(self, work: str):
        self.dir = os.path.join(work, "keys")
        os.makedirs(self.dir, exist_ok=True)
        pairs = {}
        for kid in ("bench", "bench-services"):
            private_pem = subprocess.run(
                "openssl ecparam -name prime256v1 -genkey -noout | "
                "openssl pkcs8 -topk8 -nocrypt",
                shell=True, check=True, capture_output=True, text=True).stdout
            public_pem = subprocess.run(["openssl", "ec", "-pubout"], input=private_pem,
                                        check=True, capture_output=True, text=True).stdout
            pairs[kid] = (private_pem, public_pem)
        self.public_set = self._write("keys.json", {"keys": [
            {"kid": "bench", "alg": "ES256", "subjects": "authorities",
             "public_key_pem": pairs["bench"][1]},
            {"kid": "bench-services", "alg": "ES256", "subjects": "services",
             "public_key_pem": pairs["bench-services"][1]}]})
        self.private = self._write("signing.json", {
            "kid": "bench", "alg": "ES256", "subjects": "authorities",
            "private_key_pem": pairs["bench"][0]})
        self.service_private = self._write("service-signing.json", {
            "kid": "bench-services", "alg": "ES256", "subjects": "services",
            "private_key_pem": pairs["bench-services"][0]})
        self.audit = os.path.join(self.dir, "audit.key")
        # Text, as a mounted Secret would hold it: the services strip trailing whitespace
        # from the key file, so raw random bytes ending in one fell short of 32 bytes now
        # and then and the services refused to start.
        with open(self.audit, "w", encoding="ascii") as f:
            f.write(os.urandom(32).hex())
        os.chmod(self.audit, 0o600)
        self.tls = os.path.join(work, "tls")
        subprocess.run([os.path.join(REPO, "deploy", "tls", "make-certs.sh"), self.tls],
                       check=True, capture_output=True)

    def _write(self, name: str, data: dict) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.chmod(path, 0o600)
        return path


class Redis:
    def __init__(self, work: str, fsync: str):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=work)
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        if fsync == "always":
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while self.cli("PING") != "PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=30)
        return r.stdout.strip()

    def info(self, section: str) -> dict[str, str]:
        out = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def commands(self) -> dict[str, int]:
        """Calls per command so far (INFO commandstats), INFO itself left out."""
        calls = {}
        for k, v in self.info("commandstats").items():
            name = k.removeprefix("cmdstat_")
            if name in ("info", "ping"):
                continue
            fields = dict(p.split("=", 1) for p in v.split(","))
            calls[name] = int(fields["calls"])
        return calls

    def used_memory(self) -> int:
        return int(self.info("memory")["used_memory"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.cli("SHUTDOWN", "NOSAVE")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """Redis, the four services and rogatory-echo in one configuration."""

    def __init__(self, bin_dir: str, work: str, keys: Keys, config: Config,
                 services: tuple[str, ...] = SERVICES, replicas: int = 1):
        self.config = config
        self.keys = keys
        self.work = work
        self.redis = Redis(work, config.fsync)
        # Processes by instance name: "intake", and with replicas "intake#2", "intake#3"
        # (the same binary and Redis; events are sent to each service's first instance).
        instances = [name if i == 1 else f"{name}#{i}"
                     for name in services for i in range(1, replicas + 1)]
        self.ports = {name: free_port() for name in (*instances, "echo")}
        # With TLS each server also serves plaintext health on a port of its own.
        self.health_ports = {name: free_port() if config.tls else self.ports[name]
                             for name in self.ports}
        self.procs: dict[str, subprocess.Popen] = {}
        receivers = ",".join(f"{s}=127.0.0.1:{self.ports[s]}" for s in services)
        for name in (*instances, "echo"):
            self._start(bin_dir, name, receivers)
        try:
            self._wait_ready()
            # What the idle cluster asks of Redis (polling, leases): the level settle()
            # waits for.
            self.idle_commands_per_s = self.redis_rate(2.0)
        except Exception:
            self.stop()
            raise

    def redis_rate(self, seconds: float) -> float:
        """Redis commands per second over `seconds` (INFO commandstats, scripts' inner
        commands included)."""
        before = sum(self.redis.commands().values())
        time.sleep(seconds)
        return (sum(self.redis.commands().values()) - before) / seconds

    def settle(self, timeout: float = 120.0) -> float:
        """Waits until the services have handled what earlier runs left them (events to
        deliver, audit entries to seal): Redis back near its idle rate. Returns the wait."""
        start = time.monotonic()
        limit = 1.5 * self.idle_commands_per_s + 500
        while time.monotonic() - start < timeout:
            if self.redis_rate(1.0) <= limit:
                break
        return time.monotonic() - start

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def health_address(self, name: str) -> str:
        return f"127.0.0.1:{self.health_ports[name]}"

    def _start(self, bin_dir: str, name: str, receivers: str) -> None:
        c = self.config
        binary = name.split("#")[0]
        args = [os.path.join(bin_dir, f"rogatory-{binary}"),
                f"--env={'production' if c.production else 'development'}",
                f"--listen={self.address(name)}", f"--metrics-listen=127.0.0.1:{free_port()}",
                f"--redis-url={self.redis.url}", f"--event-receivers={receivers}",
                f"--audit={c.audit}", "--shutdown-grace=2s",
                # The whole load comes from one caller: production's per-caller rate limit
                # (20/s) would measure the limit, not the service.
                "--rate-limit-rps=0"]
        if c.auth == "token":
            args += ["--auth=token", f"--auth-keys={self.keys.public_set}",
                     f"--service-token-key={self.keys.service_private}",
                     "--auth-issuer=rogatory-dev"]
        else:
            args += ["--auth=metadata"]
        if c.audit == "chain":
            args += [f"--audit-key-file={self.keys.audit}"]
        if c.tls:
            t = self.keys.tls
            cert = binary if binary != "echo" else "intake"  # any server certificate of localhost
            args += ["--tls=tls", f"--tls-ca-file={t}/ca.crt", f"--tls-cert-file={t}/{cert}.crt",
                     f"--tls-key-file={t}/{cert}.key",
                     f"--health-listen={self.health_address(name)}"]
        log_file = open(os.path.join(self.work, f"{name.replace('#', '-')}.log"), "ab")
        self.procs[name] = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, proc in self.procs.items():
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"rogatory-{name} exited with {proc.returncode}; see "
                                       f"{self.work}/{name}.log")
                try:
                    if rc.health_check(self.health_address(name),
                                       HEALTH_NAMES[name.split("#")[0]], timeout=1) == "SERVING":
                        break
                except Exception:  # not listening yet
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rogatory-{name} not SERVING within {READY_TIMEOUT_S}s")
                time.sleep(0.1)

    def bench_args(self) -> list[str]:
        c, t = self.config, self.keys.tls
        args = [f"--intake-addr={self.address('intake')}", f"--echo-addr={self.address('echo')}",
                f"--notification-addr=127.0.0.1:{self.ports.get('notification', 0)}",
                f"--sample={os.path.join(REPO, 'samples', 'requests', 'eio-fr-de.json')}",
                f"--label={c.name}"]
        if c.auth == "token":
            args += ["--auth=token", f"--auth-keys={self.keys.private}"]
        else:
            args += ["--auth=metadata"]
        if c.tls:
            args += ["--tls=tls", f"--tls-ca-file={t}/ca.crt"]
        return args

    def stop(self) -> list[str]:
        """SIGTERMs the services, then stops Redis. Returns what did not exit cleanly."""
        bad = []
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                code = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                bad.append(f"rogatory-{name} exited with {code} (see {self.work}/{name}.log)")
                log(f"warning: {bad[-1]}")
        self.redis.stop()
        return bad


@dataclasses.dataclass
class Run:
    """One rogatory-bench run with the Redis commands executed meanwhile (INFO commandstats:
    every process, scripts' inner commands included)."""
    result: dict
    commands: dict[str, int]
    warmup_calls: int = 0

    @property
    def ok(self) -> int:
        return self.result["calls"]["ok"]


class Bench:
    def __init__(self, args: argparse.Namespace, work: str):
        self.args = args
        self.work = work
        self.bin_dir = os.path.join(os.path.abspath(args.build_dir), "bin")
        self.results: list[dict] = []
        self.jsonl = os.path.join(work, "results.jsonl")

    def bench(self, cluster: Cluster, scenario: str, *, mode: str = "closed",
              concurrency: int = 0, rate: float = 0, duration: Optional[float] = None,
              warmup: Optional[float] = None, extra: tuple[str, ...] = ()) -> Run:
        a = self.args
        duration = duration if duration is not None else a.duration
        warmup = warmup if warmup is not None else a.warmup
        if os.path.exists(self.jsonl):
            os.remove(self.jsonl)
        argv = [os.path.join(self.bin_dir, "rogatory-bench"), f"--scenario={scenario}",
                f"--mode={mode}", f"--duration={duration}s", f"--warmup={warmup}s",
                f"--json={self.jsonl}", *cluster.bench_args(), *extra]
        argv.append(f"--concurrency={concurrency or a.concurrency}")
        if mode == "open":
            argv.append(f"--rate={max(1, int(rate))}")
        if a.smoke:
            argv += ["--fail-on-errors=true", "--seed=60"]
        if not a.smoke:
            waited = cluster.settle()
            if waited > 2:
                log(f"waited {waited:.0f} s for the services to finish earlier work")
        before = cluster.redis.commands()
        proc = subprocess.run(argv, capture_output=True, text=True)
        after = cluster.redis.commands()
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise RuntimeError(f"rogatory-bench {scenario} failed with {proc.returncode}")
        with open(self.jsonl, encoding="utf-8") as f:
            result = json.loads(f.read().strip().splitlines()[-1])
        result["config"] = cluster.config.name
        self.results.append(result)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        run = Run(result, {k: v for k, v in delta.items() if v > 0})
        # Warm-up calls also reached Redis; estimate them at the measured rate.
        run.warmup_calls = int(result["calls"]["throughput_per_s"] * warmup) if mode == "closed" \
            else int(rate * warmup)
        return run

    def round_trips(self, cluster: Cluster, scenario: str, seconds: float = 3.0) -> dict:
        """Round trips to Redis per call on intake's own connection, one call at a time.

        MONITOR shows every command a client sends, and tags those a script runs as
        "[N lua]": the untagged lines of intake's connection whose first key is a request's
        or an audit append's are the calls' round trips (the relay, the sealer and leases
        are background work, not counted; what remains while idle is subtracted)."""
        intake_ports = connection_ports(cluster.procs["intake"].pid, cluster.redis.port)
        if not intake_ports:
            raise RuntimeError("cannot find intake's Redis connection (ss -tnp)")

        out = os.path.join(self.work, "monitor.txt")
        with open(out, "w") as f:
            mon = subprocess.Popen(["redis-cli", "-p", str(cluster.redis.port), "MONITOR"],
                                   stdout=f, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            idle_from = time.time()
            time.sleep(seconds)
            idle_until = time.time()
            run = self.bench(cluster, scenario, concurrency=1, duration=seconds, warmup=0)
            time.sleep(0.3)
            mon.terminate()
            mon.wait()
        # The calls of the window: those started in it (seeding, before it, left out).
        window_from = run.result["load_start_unix_s"]
        window_until = window_from + run.result["calls"]["window_s"]
        idle_count = 0
        busy: dict[str, int] = {}
        with open(out, errors="replace") as f:
            for line in f:
                parts = line.split(" ", 3)
                if len(parts) < 4 or "lua]" in parts[2]:
                    continue
                addr = parts[2].rstrip("]")
                if not any(addr.endswith(f":{p}") for p in intake_ports):
                    continue
                what = call_path_command(parts[3])
                if what is None:
                    continue  # intake's background work: the relay, the sealer, leases
                try:
                    ts = float(parts[0])
                except ValueError:
                    continue
                if idle_from <= ts < idle_until:
                    idle_count += 1
                elif window_from <= ts < window_until:
                    busy[what] = busy.get(what, 0) + 1
        idle_rate = idle_count / (idle_until - idle_from)
        background = idle_rate * (window_until - window_from)
        per_call = max(0.0, sum(busy.values()) - background) / max(1, run.ok)
        return {"scenario": scenario, "calls": run.ok, "round_trips_per_call": per_call,
                "commands": busy, "idle_per_s": idle_rate}

    def redis_benchmark(self, redis: Redis) -> list[dict]:
        """The Redis commands a submission is made of, measured by redis-benchmark."""
        tests = [
            ("SET", ["SET", "bench:k", "x" * 1500]),
            ("GET", ["GET", "bench:k"]),
            ("HSET", ["HSET", "bench:h", "f", "x" * 1500]),
            ("XADD", ["XADD", "bench:s", "MAXLEN", "~", "10000", "*", "e", "x" * 1500]),
            ("EVAL (no-op script)", ["EVAL", "return 1", "0"]),
        ]
        rows = []
        for name, command in tests:
            r = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n",
                                str(self.args.redis_requests), "-c", str(self.args.concurrency),
                                "--csv", *command], capture_output=True, text=True, check=True)
            lines = [l for l in r.stdout.splitlines() if l.strip()]
            header = [h.strip('"') for h in lines[0].split(",")]
            values = [v.strip('"') for v in lines[-1].split(",")]
            row = dict(zip(header, values))
            rows.append({"test": name, "rps": float(row["rps"]),
                         "p50_ms": float(row["p50_latency_ms"]),
                         "p99_ms": float(row["p99_latency_ms"])})
            log(f"redis-benchmark {name}: {row['rps']} req/s, p99 {row['p99_latency_ms']} ms")
        redis.cli("DEL", "bench:k", "bench:h", "bench:s")
        return rows


CALL_PATH_KEYS = (":req:", ":idem:", ":idx:", ":hist:", ":audit:pending")


def call_path_command(monitored: str) -> Optional[str]:
    """For a MONITOR line's command part ('"EVALSHA" "<sha>" "2" "rg:{s3}:req:..." ...'),
    "<command> <key kind>" when its first key is on a call's own path, else None."""
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"', monitored)
    if not tokens:
        return None
    command = tokens[0].upper()
    key = tokens[3] if command in ("EVALSHA", "EVAL") and len(tokens) > 3 else \
        (tokens[1] if len(tokens) > 1 else "")
    for kind in CALL_PATH_KEYS:
        if kind in key:
            return f"{command} {kind.strip(':')}"
    return None


def connection_ports(pid: int, redis_port: int) -> list[int]:
    """Local ports of `pid`'s TCP connections to Redis (ss -tnp)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"dport = :{redis_port}"],
                         capture_output=True, text=True).stdout
    ports = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]
            ports.append(int(local.rsplit(":", 1)[1]))
    return ports


def machine_description(build_dir: str) -> list[str]:
    def first(cmd: str) -> str:
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    model = first("lscpu | sed -n 's/^Model name: *//p' | head -n1")
    cores = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    build_type = first(f"sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' {build_dir}/CMakeCache.txt")
    os_name = first(". /etc/os-release && echo $PRETTY_NAME")
    redis_version = first("redis-server --version | cut -d' ' -f1-3")
    grpc_version = first("dpkg-query -W -f='${Version}' libgrpc++1.51 2>/dev/null") or "?"
    compiler = first("c++ --version | head -n1")
    load = first("cut -d' ' -f1-3 /proc/loadavg")
    return [
        f"- CPU: {model or '?'}, {cores} logical cores; memory {mem_gib:.0f} GiB",
        f"- OS: {os_name}, kernel {pyplatform.release()}",
        f"- {redis_version}; gRPC {grpc_version}; compiler {compiler}",
        f"- Build: CMAKE_BUILD_TYPE={build_type or '?'} ({build_dir})",
        f"- Load average when the run started: {load}",
        "- Everything (Redis, the services, the echo server and the load generator) on this one "
        "machine, over loopback.",
    ]


def ms(x: float) -> str:
    return f"{x:.2f}"


def pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:.0f}%" if b else "n/a"


def commands_text(run: Run) -> str:
    calls = max(1, run.ok + run.warmup_calls)
    total = sum(run.commands.values())
    top = sorted(run.commands.items(), key=lambda kv: -kv[1])[:5]
    return (f"{total / calls:.1f} commands per call (" +
            ", ".join(f"{k} {v / calls:.1f}" for k, v in top) + ")")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def idle(bench: Bench, keys: Keys, replicas: int, seconds: float,
         config: "Config | None" = None) -> dict:
    """What the system costs while nothing happens: the development configuration with
    `replicas` processes of each service and no call at all, measured over `seconds` after a
    settling pause. Redis commands/s (INFO commandstats, scripts' inner commands included),
    the commands that make most of them, and per process CPU (% of one core) and threads."""
    cluster = Cluster(bench.bin_dir, bench.work, keys, config or DEV, replicas=replicas)
    try:
        time.sleep(min(5.0, seconds))  # Start-up work (leases, first sweeps) settles.
        pids = {name: proc.pid for name, proc in cluster.procs.items() if name != "echo"}
        pids["redis-server"] = cluster.redis.proc.pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        commands_before = cluster.redis.commands()
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        commands_after = cluster.redis.commands()
        cpu = {name: 100.0 * (cpu_seconds(pid) - cpu_before[name]) / elapsed
               for name, pid in pids.items()}
        threads = {name: thread_count(pid) for name, pid in pids.items()}
    finally:
        cluster.stop()
    per_command = {name: (commands_after[name] - commands_before.get(name, 0)) / elapsed
                   for name in commands_after}
    per_command = {k: v for k, v in per_command.items() if v > 0}
    return {"replicas": replicas, "seconds": elapsed,
            "commands_per_s": sum(per_command.values()),
            "top": sorted(per_command.items(), key=lambda kv: -kv[1])[:8],
            "cpu_percent": cpu, "threads": threads}


def idle_text(results: list[dict]) -> list[str]:
    lines = ["## Idle cost", "",
             "The development configuration with no traffic at all, after a 5 s settling "
             "pause: Redis commands/s (INFO commandstats, scripts' inner commands included) "
             "and each process's CPU (% of one core, /proc/<pid>/stat) and threads.", "",
             "| replicas of each service | window s | Redis commands/s | top commands/s |",
             "|---|---|---|---|"]
    for r in results:
        top = ", ".join(f"{name.replace('|', ' ')} {rate:,.0f}"  # xgroup|create: not a cell
                        for name, rate in r["top"])
        lines.append(f"| {r['replicas']} | {r['seconds']:.0f} | {r['commands_per_s']:,.0f} | "
                     f"{top} |")
    lines += ["", "| replicas | process | CPU % | threads |", "|---|---|---|---|"]
    for r in results:
        for name in sorted(r["cpu_percent"]):
            lines.append(f"| {r['replicas']} | {name} | {r['cpu_percent'][name]:.1f} | "
                         f"{r['threads'][name]} |")
    return lines + [""]


def smoke(bench: Bench, keys: Keys) -> None:
    """Every scenario once, briefly, in the production configuration (the most code paths):
    fails on any failed, dropped or unnotified call."""
    cluster = Cluster(bench.bin_dir, bench.work, keys, PRODUCTION)
    try:
        # First, while the services have no backlog of events from the other scenarios.
        bench.bench(cluster, "e2e", mode="open", rate=20)
        for scenario in ("echo", "submit", "get", "list", "mixed"):
            bench.bench(cluster, scenario, concurrency=4)
        bench.bench(cluster, "echo", mode="open", rate=200)
        # The round-trip count the report relies on: positive, and submissions cost more
        # Redis commands than reads.
        sub = bench.bench(cluster, "submit", concurrency=2)
        if not sub.commands:
            raise RuntimeError("INFO commandstats saw no command during submissions")
    finally:
        unclean = cluster.stop()
    if unclean:
        raise RuntimeError("after SIGTERM: " + "; ".join(unclean))
    # The idle measurement with replicas: every process of each service started and measured.
    quiet = idle(bench, keys, 2, 1.0)
    if len(quiet["cpu_percent"]) != 2 * len(SERVICES) + 1:
        raise RuntimeError(f"idle: measured {sorted(quiet['cpu_percent'])}")
    dl = os.path.join(bench.bin_dir, "rogatory-deadline-bench")
    if os.path.exists(dl):
        redis = Redis(bench.work, "off")
        try:
            subprocess.run([dl, f"--redis-url={redis.url}", "--smoke"], check=True)
        finally:
            redis.stop()
    log("smoke run passed: every scenario ran without a failed call")


def full(bench: Bench, keys: Keys) -> str:
    a = bench.args
    started = time.monotonic()
    machine = machine_description(os.path.abspath(a.build_dir))
    lines: list[str] = []
    peaks: dict[str, Run] = {}

    # 0. The idle cost, first, on a quiet machine.
    idle_results = [idle(bench, keys, int(n), a.idle_seconds)
                    for n in a.idle_replicas.split(",")]

    # 1. The production configuration: every scenario, closed loop, then latency at 70%.
    cluster = Cluster(bench.bin_dir, bench.work, keys, PRODUCTION)
    try:
        redis_rows = bench.redis_benchmark(cluster.redis)
        for scenario in ("echo", "submit", "get", "list", "mixed"):
            peaks[scenario] = bench.bench(cluster, scenario)
        at70: dict[str, tuple[Run, Run]] = {}
        for scenario in ("submit", "get"):
            rate = 0.7 * peaks[scenario].result["calls"]["throughput_per_s"]
            at70[scenario] = (bench.bench(cluster, scenario, mode="open", rate=rate),
                              bench.bench(cluster, "echo", mode="open", rate=rate))
        e2e_low = bench.bench(cluster, "e2e", mode="open", rate=a.e2e_low_rate)
        e2e = bench.bench(cluster, "e2e", mode="open", rate=a.e2e_rate)
        # Memory per stored request: a fresh batch of submissions once the services have
        # handled them (events delivered, audit entries sealed).
        time.sleep(3)
        before = cluster.redis.used_memory()
        mem_run = bench.bench(cluster, "submit", duration=5)
        time.sleep(5)
        after = cluster.redis.used_memory()
        stored = mem_run.ok + mem_run.warmup_calls
        per_request = (after - before) / max(1, stored)
    finally:
        cluster.stop()

    # 2. Round trips per call: intake alone (no other service sends it events to handle
    #    meanwhile), production configuration.
    alone = Cluster(bench.bin_dir, bench.work, keys, PRODUCTION, services=("intake",))
    try:
        trips = [bench.round_trips(alone, scenario) for scenario in ("submit", "get", "list")]
        # Intake's own ceiling: the same closed loops with no downstream work on the machine.
        alone_peaks = {scenario: bench.bench(alone, scenario) for scenario in ("submit", "get")}
    finally:
        alone.stop()

    # 3. What each production feature costs: submit and get, adding one feature a step.
    steps: list[tuple[Config, Run, Run]] = []
    for config in STEPS:
        c = Cluster(bench.bin_dir, bench.work, keys, config)
        try:
            steps.append((config, bench.bench(c, "submit", duration=a.step_duration),
                          bench.bench(c, "get", duration=a.step_duration)))
        finally:
            c.stop()

    # 4. The deadline engine.
    deadline_json = None
    dl = os.path.join(bench.bin_dir, "rogatory-deadline-bench")
    if os.path.exists(dl) and a.deadlines > 0:
        redis = Redis(bench.work, "off")
        out = os.path.join(bench.work, "deadlines.json")
        try:
            with open(os.path.join(bench.work, "deadline-bench.log"), "wb") as err:
                proc = subprocess.run([dl, f"--redis-url={redis.url}", f"--json={out}",
                                       f"--deadlines={a.deadlines}"], stdout=subprocess.PIPE,
                                      stderr=err, text=True)
            sys.stdout.write(proc.stdout)
            if proc.returncode != 0:
                raise RuntimeError(f"rogatory-deadline-bench failed; see {bench.work}/deadline-bench.log")
            with open(out, encoding="utf-8") as f:
                deadline_json = json.load(f)
        finally:
            redis.stop()

    # --- the report ---
    def calls(run: Run) -> dict:
        return run.result["calls"]

    echo = calls(peaks["echo"])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "# Rogatory benchmark report", "",
        f"Generated by `tools/bench/run.sh` on {when} in {time.monotonic() - started:.0f} s. "
        "Every figure below was measured in this one run; ratios compare runs made minutes "
        "apart on the same machine.", "",
        "## Machine", "", *machine, "",
        "## Configuration", "",
        f"- Production: {PRODUCTION.describe()}; env=production, one replica of each service "
        "with its defaults (16 shards, info-level logs to a file) but the per-caller rate "
        "limit, off: the load comes from one caller.",
        f"- Load: `rogatory-bench` (gRPC callback API, {a.concurrency} calls in flight for the "
        f"closed loop over 4 connections), {a.warmup:g} s warm-up then a {a.duration:g} s "
        "window per scenario; latency of every call, from when it was due (open loop: no "
        "coordinated omission).",
        f"- Requests: made from samples/requests/eio-fr-de.json, each with its own idempotency "
        f"key and made-up person; {calls(peaks['submit']).get('ok', 0)} and more submitted. "
        f"Serialized SubmitRequest: {peaks['submit'].result['payload_bytes']} bytes; the echo "
        "payload is the same size.",
        "- Baseline: `rogatory-echo`, the same service platform (authentication, limits, "
        "pipeline, audit of the call, metrics, TLS) answering its payload, and "
        "`redis-benchmark` on the same Redis.", "",
        "## Throughput and latency (production configuration)", "",
        "| scenario | load | ok/s | vs echo | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, run: Run, baseline: Optional[dict] = None) -> str:
        c = calls(run)
        r = run.result
        load = f"{r['rate']:.0f}/s open" if r["mode"] == "open" else f"{r['concurrency']} in flight"
        lat = c["latency_ms"]
        vs = pct(c["throughput_per_s"], baseline["throughput_per_s"]) if baseline else ""
        return (f"| {name} | {load} | {c['throughput_per_s']:.0f} | {vs} | {ms(lat['p50'])} | "
                f"{ms(lat['p90'])} | {ms(lat['p99'])} | {ms(lat['p999'])} | {ms(lat['max'])} | "
                f"{c['errors'] + c['dropped']} |")

    lines.append(row("echo (baseline)", peaks["echo"]))
    for scenario, title in (("submit", "submit"), ("get", "get"), ("list", "list (page of 50)"),
                            ("mixed", "mixed (20% submit, 60% get, 20% list)")):
        lines.append(row(title, peaks[scenario], echo))
    for scenario in ("submit", "get"):
        run, base = at70[scenario]
        lines.append(row(f"{scenario} at 70% of its peak", run))
        lines.append(row(f"echo at the same rate", base))
    for scenario in ("submit", "get"):
        lines.append(row(f"{scenario}, intake alone", alone_peaks[scenario], echo))
    lines += ["", "\"Intake alone\": Redis, intake and the echo server only, so that no other "
              "service handles the submissions' events on the same two cores meanwhile: "
              "intake's own ceiling. In the rows above, routing, deadline-tracking and "
              "notification work on every submission's events (about eight events each, "
              "fanned out to two or three recipients, each delivery audited) while it is "
              "measured.", "",
              "End to end: submit, then the notification on the issuer's Subscribe stream "
              "(open loop; \"never notified\" = not on the stream 15 s after the run):", "",
              "| rate | submit p99 ms | notified | never notified | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
              "|---|---|---|---|---|---|---|---|---|"]
    for run in (e2e_low, e2e):
        e = run.result["e2e"]
        lat = e["latency_ms"]
        lines.append(f"| {run.result['rate']:.0f}/s | {ms(calls(run)['latency_ms']['p99'])} | "
                     f"{e['ok']} | {e['errors']} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
                     f"{ms(lat['p99'])} | {ms(lat['p999'])} | {ms(lat['max'])} |")
    for run in (e2e_low, e2e):
        if run.result.get("e2e_stream_error"):
            lines += ["", f"At {run.result['rate']:.0f}/s the issuer's stream ended early: "
                      f"{run.result['e2e_stream_error']}; the submissions after that count as "
                      "never notified."]
    lines += ["",
        "Each scenario starts once the services have finished the work earlier ones left "
        "(Redis back near its idle command rate). Redis commands executed during each "
        "closed-loop run (INFO commandstats: all five processes, scripts' inner commands and "
        "background work such as event delivery and audit sealing included), per call:", "",
    ]
    for scenario in ("submit", "get", "list", "mixed"):
        lines.append(f"- {scenario}: {commands_text(peaks[scenario])}")
    lines += ["", "## Redis round trips per call", "",
              "Intake alone (no other service sends it events to handle meanwhile), production "
              "configuration, one call at a time (so no group commit shares an audit append "
              "between calls), counted with MONITOR on intake's connection: commands whose first key is a "
              "request's, an index's or an audit append's (the relay, the sealer and leases are "
              "background work and left out).", "",
              "| call | calls | round trips per call | commands seen |", "|---|---|---|---|"]
    for t in trips:
        seen = ", ".join(f"{k} {v}" for k, v in sorted(t["commands"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {t['scenario']} | {t['calls']} | {t['round_trips_per_call']:.2f} | {seen} |")
    lines += ["", "## redis-benchmark on the same Redis (appendfsync always)", "",
              f"{a.redis_requests} requests, {a.concurrency} connections, 1.5 KB values.", "",
              "| command | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for r in redis_rows:
        lines.append(f"| {r['test']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")

    lines += ["", *idle_text(idle_results)]

    lines += ["", "## What each production feature costs", "",
              f"Submit and get, closed loop, {a.concurrency} in flight, {a.step_duration:g} s "
              "each, a fresh cluster per step; each step adds one feature to the one above.", "",
              "| configuration | submit ok/s | submit p99 ms | get ok/s | get p99 ms |",
              "|---|---|---|---|---|"]
    for config, sub, get in steps:
        lines.append(f"| {config.name} | {calls(sub)['throughput_per_s']:.0f} | "
                     f"{ms(calls(sub)['latency_ms']['p99'])} | {calls(get)['throughput_per_s']:.0f} | "
                     f"{ms(calls(get)['latency_ms']['p99'])} |")

    lines += ["", "## Memory", "",
              f"- Per stored request: {per_request:.0f} bytes of Redis memory (used_memory "
              f"grew by {after - before} bytes for {stored} submissions, measured after the "
              "services had handled them: the request, its history, indexes, idempotency "
              "record, audit chain, routing decision, deadlines and inbox entries)."]
    if deadline_json is not None:
        lines += ["", "## Deadline engine", "",
                  "`rogatory-deadline-bench` on its own redis-server (without AOF: loading a "
                  "million deadlines with appendfsync always would take most of the run), the "
                  "real TimerEngine in process, one engine (one replica).", ""]
        for part in deadline_json:
            lines.append(f"**{part['scenario']}**")
            lines.append("")
            lines.append("| figure | value |")
            lines.append("|---|---|")
            for k, v in part["figures"].items():
                value = f"{v:,.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else f"{v:,}"
                lines.append(f"| {k} | {value} |")
            for note in part.get("notes", []):
                lines += ["", f"- {note}"]
            lines.append("")
    with open(os.path.join(bench.work, "all-results.json"), "w", encoding="utf-8") as f:
        json.dump(bench.results, f, indent=1)
    # The record of the profiling work, kept by hand beside this script.
    with open(os.path.join(REPO, "tools", "bench", "BEFORE-AFTER.md"), encoding="utf-8") as f:
        lines += ["", f.read().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--report", default=os.path.join(REPO, "tools", "bench", "REPORT.md"))
    p.add_argument("--smoke", action="store_true", help="every scenario briefly; no report")
    p.add_argument("--duration", type=float, default=10.0, help="measurement window, s")
    p.add_argument("--step-duration", type=float, default=6.0, help="window of the cost steps, s")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--e2e-rate", type=float, default=500.0, help="the target's rate")
    p.add_argument("--e2e-low-rate", type=float, default=100.0, help="a rate below saturation")
    p.add_argument("--redis-requests", type=int, default=100000)
    p.add_argument("--deadlines", type=int, default=1000000,
                   help="pending deadlines the deadline engine bench loads; 0 skips it")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    p.add_argument("--idle", action="store_true",
                   help="only the idle cost (Markdown on stdout; no report)")
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle window, s")
    p.add_argument("--idle-replicas", default="1,3",
                   help="comma-separated replica counts for the idle cost")
    p.add_argument("--idle-audit-chain", action="store_true",
                   help="the idle cost with the chained audit log (its sealers running) "
                        "instead of the development configuration's log lines")
    args = p.parse_args()
    if args.smoke:
        args.duration, args.warmup = 1.0, 0.3
    work = tempfile.mkdtemp(prefix="rogatory-bench-")
    try:
        keys = Keys(work)
        bench = Bench(args, work)
        if args.smoke:
            smoke(bench, keys)
            return 0
        if args.idle:
            print("\n".join(idle_text(
                [idle(bench, keys, int(n), args.idle_seconds,
                      dataclasses.replace(DEV, name="development + audit chain", audit="chain")
                      if args.idle_audit_chain else None)
                 for n in args.idle_replicas.split(",")])))
            return 0
        report = full(bench, keys)
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(report)
        log(f"report written to {args.report}; raw results in {work}/all-results.json")
        args.keep = True
        return 0
    except Exception as e:  # reported, with the logs kept
        log(f"error: {e}; logs in {work}")
        args.keep = True
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
