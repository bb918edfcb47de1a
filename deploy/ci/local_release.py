"""A rendered Rogatory release run as local processes, as its manifests say.

No cluster here or in CI: what a pod would run is read from `helm template` output (the
container's command, env and volumes) and run with the binaries of a build. Only what a
cluster would provide is replaced: the Services' DNS names by 127.0.0.1 and free ports,
$(POD_IP) by 127.0.0.1, each volume by a folder holding what the pod would see (a Secret's
or ConfigMap's items, an emptyDir), /usr/bin/rogatory-* by the build's binaries. The bundled
Redis runs with the rendered ConfigMap's redis.conf (AOF as configured) and the Secret's
password, as its StatefulSet's command gives it. Used by deploy/ci/upgrade-check.py and
deploy/ci/restore-check.py.
"""
import base64
import json
import os
import pathlib
import re
import socket
import subprocess
import time

import yaml

SERVICES = ("intake", "routing", "deadlines", "notification")
REPO = pathlib.Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def helm_template(helm, chart, values, out, *extra):
    """Renders CHART with VALUES files into OUT; returns (ok, stderr without INFO lines)."""
    args = [helm, "template", "rogatory", str(chart), "--namespace", "rogatory"]
    for v in values:
        args += ["-f", str(v)]
    result = subprocess.run(args + list(extra), capture_output=True, text=True)
    pathlib.Path(out).write_text(result.stdout)
    err = "\n".join(line for line in result.stderr.splitlines() if "level=INFO" not in line)
    return result.returncode == 0, err


def make_secret(work, helm_dir, authority_pub):
    """helm/create-secret.sh --print, as an operator makes the Secret: {key: bytes}."""
    env = dict(os.environ, KUBECTL=str(pathlib.Path(helm_dir) / "kubectl" / "kubectl"))
    out = subprocess.run(
        ["bash", str(REPO / "helm/create-secret.sh"), "--print", "-n", "rogatory",
         "--authority-key", f"ci-authority:ES256:{authority_pub}"],
        env=env, capture_output=True, text=True, check=True).stdout
    secret = yaml.safe_load(out)
    return secret["metadata"]["name"], {k: base64.b64decode(v) for k, v in secret["data"].items()}


def authority_key(work):
    """An ES256 key pair of the identity provider: (private PEM path, public PEM path)."""
    private, public = work / "authority.pem", work / "authority.pub.pem"
    pem = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"],
                         capture_output=True, check=True).stdout
    private.write_bytes(subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt"], input=pem,
                                       capture_output=True, check=True).stdout)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True)
    return private, public


def mint_es256(private_pem, kid, issuer, audience, sub, state, roles, ttl=600):
    """A caller's token as the identity provider signs it (ES256, JWS r||s signature)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "ES256", "kid": kid, "typ": "JWT"}
    claims = {"iss": issuer, "sub": sub, "aud": audience, "iat": now, "exp": now + ttl,
              "state": state, "roles": list(roles)}
    signing_input = ".".join(b64(json.dumps(p, separators=(",", ":")).encode())
                             for p in (header, claims))
    key = serialization.load_pem_private_key(pathlib.Path(private_pem).read_bytes(), None)
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Release:
    """The processes of one render; stop() ends them all (also on a failed check)."""

    def __init__(self, render, work, bin_dir, secret_name, secret_data):
        self.docs = [d for d in yaml.safe_load_all(pathlib.Path(render).read_text()) if d]
        self.work = pathlib.Path(work)
        self.bin = pathlib.Path(bin_dir)
        self.secret_name, self.secret = secret_name, secret_data
        self.procs = []
        self.redis_port = None
        self.addrs = {}
        self.hosts = {}

    def find(self, kind, name):
        for d in self.docs:
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
        raise KeyError(f"{kind}/{name} not in the render")

    def container(self, kind, name, index=0):
        obj = self.find(kind, name)
        spec = obj["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod = spec["template"]["spec"]
        return obj, pod, pod["containers"][index]

    # -- volumes and env ---------------------------------------------------------------
    def _item_source(self, source):
        if "secret" in source or "secretName" in source:
            s = source.get("secret", source)
            name = s.get("secretName", s.get("name"))
            if name != self.secret_name:
                raise KeyError(f"Secret {name}: only {self.secret_name} exists here")
            return s, self.secret
        s = source.get("configMap", source)
        cm = self.find("ConfigMap", s["name"])
        return s, {k: v.encode() for k, v in cm.get("data", {}).items()}

    def volumes(self, pod, container, tag):
        """Each mounted volume as a folder: {mountPath: local folder}."""
        mounts = {}
        by_name = {v["name"]: v for v in pod.get("volumes", [])}
        for m in container.get("volumeMounts", []):
            v = by_name[m["name"]]
            folder = self.work / f"{tag}-{m['name']}"
            if not folder.exists():
                folder.mkdir(parents=True)
                sources = []
                if "projected" in v:
                    sources = v["projected"]["sources"]
                elif "secret" in v or "configMap" in v:
                    sources = [v]
                for source in sources:
                    spec, data = self._item_source(source)
                    items = spec.get("items") or [{"key": k, "path": k} for k in data]
                    for item in items:
                        (folder / item["path"]).write_bytes(data[item["key"]])
                # persistentVolumeClaim and emptyDir: an empty folder (the caller fills a
                # claim's folder when it matters).
            mounts[m["mountPath"]] = folder
        return mounts

    def env(self, container, mounts, listen=None):
        """The container's environment as the kubelet gives it, with local addresses."""
        out = {}
        for e in container.get("env", []):
            if "value" in e:
                value = str(e["value"])
            else:
                ref = e["valueFrom"]
                if "fieldRef" in ref:
                    value = "127.0.0.1"  # status.podIP
                else:
                    key = ref["secretKeyRef"]
                    if key["name"] != self.secret_name or key["key"] not in self.secret:
                        if key.get("optional"):
                            continue
                        raise KeyError(f"Secret {key['name']} key {key['key']} missing")
                    value = self.secret[key["key"]].decode()
            value = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), value)
            for host, local in self.hosts.items():
                value = value.replace(host, local)
            for path in sorted(mounts, key=len, reverse=True):
                if value.startswith(path + "/") or value == path:
                    value = str(mounts[path]) + value[len(path):]
                    break
            out[e["name"]] = value
        for name in ("ROGATORY_LISTEN", "ROGATORY_METRICS_LISTEN", "ROGATORY_HEALTH_LISTEN"):
            if name in out:
                out[name] = (listen if name == "ROGATORY_LISTEN" and listen
                             else f"127.0.0.1:{free_port()}")
        return out

    def command(self, container, default):
        argv = (container.get("command") or [default]) + container.get("args", [])
        return [str(self.bin / pathlib.Path(a).name) if a.startswith("/usr/bin/rogatory-")
                else a for a in argv]

    # -- processes ---------------------------------------------------------------------
    def start_redis(self, data_dir=None):
        """The bundled Redis: the rendered redis.conf, requirepass from the Secret."""
        _, pod, c = self.container("StatefulSet", "rogatory-redis")
        conf = self.find("ConfigMap", "rogatory-redis")["data"]["redis.conf"]
        data = pathlib.Path(data_dir or self.work / "redis-data")
        data.mkdir(parents=True, exist_ok=True)
        self.redis_port = self.redis_port or free_port()
        conf = re.sub(r"^dir .*$", f"dir {data}", conf, flags=re.M)
        conf = re.sub(r"^port .*$", f"port {self.redis_port}", conf, flags=re.M)
        conf = re.sub(r"^bind .*$", "bind 127.0.0.1", conf, flags=re.M)
        # The StatefulSet's command adds requirepass from REDIS_PASSWORD (its Secret key).
        assert "requirepass" in c["command"][2], c["command"]
        password = self.env(c, {})["REDIS_PASSWORD"]
        conf += f'requirepass "{password}"\n'
        (self.work / "redis.conf").write_text(conf)
        self.redis_data = data
        self.redis_password = password
        self._spawn("redis", ["redis-server", str(self.work / "redis.conf")])
        for _ in range(100):
            if self.cli("ping", check=False) == "PONG":
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("Redis did not start: " + (self.work / "redis.log").read_text())
        self.hosts["rogatory-redis:6379"] = f"127.0.0.1:{self.redis_port}"

    def cli(self, *args, check=True):
        env = dict(os.environ, REDISCLI_AUTH=self.redis_password)
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], env=env,
                           capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"redis-cli {args}: {r.stderr}")
        return r.stdout.strip()

    def stop_redis(self):
        self.cli("shutdown", check=False)  # with AOF on, fsyncs and exits
        for p in self.procs:
            if p[0] == "redis":
                p[1].wait(timeout=20)
        self.procs = [p for p in self.procs if p[0] != "redis"]

    def run_job(self, name):
        """A Job's container, run to its end: (exit code, output)."""
        _, pod, c = self.container("Job", name)
        mounts = self.volumes(pod, c, f"job-{name}")
        env = self.env(c, mounts)
        r = subprocess.run(self.command(c, ""), env=env, capture_output=True, text=True)
        return r.returncode, (r.stdout + r.stderr).strip()

    def run_cronjob(self, name):
        """A CronJob's `sh -ec SCRIPT` container, run once as its Job would: the script's
        mount paths become the local folders, the Redis Service's name the local Redis.
        Returns {mountPath: folder}."""
        _, pod, c = self.container("CronJob", name)
        assert c["command"][:2] == ["sh", "-ec"], c["command"]
        mounts = self.volumes(pod, c, f"cronjob-{name}")
        script = c["command"][2]
        # In one pass, only where a path starts (a folder is not replaced inside another).
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        script = re.sub(rf"(?<![\w./-])({paths})(?=/)", lambda m: str(mounts[m.group(1)]),
                        script)
        script = re.sub(r"-h rogatory-redis\b", f"-h 127.0.0.1 -p {self.redis_port}", script)
        env = dict(self.env(c, mounts), PATH=os.environ["PATH"])
        subprocess.run(["sh", "-ec", script], env=env, check=True, capture_output=True)
        return mounts

    def start_services(self, names=SERVICES):
        for name in names:
            port = self.addrs.setdefault(name, f"127.0.0.1:{free_port()}")
            svc = self.find("Service", f"rogatory-{name}")
            grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
            self.hosts[f"rogatory-{name}:{grpc['port']}"] = port
        for name in names:
            _, pod, c = self.container("Deployment", f"rogatory-{name}")
            mounts = self.volumes(pod, c, name)
            env = self.env(c, mounts, listen=self.addrs[name])
            self._spawn(name, self.command(c, f"/usr/bin/rogatory-{name}"), env)

    def start_one(self, name):
        """Starts one service and returns its process (for a start that must fail)."""
        _, pod, c = self.container("Deployment", f"rogatory-{name}")
        env = self.env(c, self.volumes(pod, c, name), listen=f"127.0.0.1:{free_port()}")
        return subprocess.run(self.command(c, f"/usr/bin/rogatory-{name}"), env=env,
                              capture_output=True, text=True, timeout=60)

    def _spawn(self, name, argv, env=None):
        log = open(self.work / f"{name}.log", "ab")
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))

    def stop_services(self):
        for name, p in self.procs:
            if name != "redis":
                p.terminate()
        for name, p in self.procs:
            if name != "redis":
                p.wait(timeout=30)
        self.procs = [p for p in self.procs if p[0] == "redis"]

    def stop(self):
        self.stop_services()
        for _, p in self.procs:
            p.terminate()
            p.wait(timeout=30)
        self.procs = []

    def log_tail(self, name, lines=15):
        path = self.work / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
            if path.exists() else ""

    # -- a caller ----------------------------------------------------------------------
    def ctl(self, token_file, *args, check=True):
        argv = [PYTHON, str(REPO / "tools/rogatoryctl/rogatoryctl"), "--output", "json",
                "--token-file", str(token_file)]
        for name in SERVICES:
            if name in self.addrs:
                argv += [f"--{name}-addr", self.addrs[name]]
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
        if check and r.returncode:
            raise RuntimeError(f"rogatoryctl {' '.join(args)}: exit {r.returncode}: "
                               f"{r.stdout}{r.stderr}")
        return r

    def wait_healthy(self, token_file, seconds=60):
        deadline = time.time() + seconds
        while True:
            r = self.ctl(token_file, "health", check=False)
            if r.returncode == 0:
                return
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited {p.returncode}:\n{self.log_tail(name)}")
            if time.time() > deadline:
                raise RuntimeError(f"services not healthy: {r.stdout}{r.stderr}")
            time.sleep(0.5)


def caller_tokens(release, work, private_pem):
    """Token files of an issuing authority (FR-TJ-PARIS-JI) and an auditor, signed with the
    identity provider's key, for the issuer and audience the render's intake verifies."""
    env = release.env(release.container("Deployment", "rogatory-intake")[2], {})
    files = []
    for name, sub, roles in (("issuing", "FR-TJ-PARIS-JI", ["issuing"]),
                             ("auditor", "EU-AUDITOR-1", ["auditor"])):
        path = pathlib.Path(work) / f"{name}.jwt"
        path.write_text(mint_es256(private_pem, "ci-authority", env["ROGATORY_AUTH_ISSUER"],
                                   env["ROGATORY_AUTH_AUDIENCE"], sub, "FR", roles))
        files.append(path)
    return files


def await_audit_chain(release, token, request_id, seconds=15):
    """Waits until the request's audit chain verifies: entries are sealed into the chain
    asynchronously (at once by the sealer's holder, else within audit-seal-interval)."""
    deadline = time.time() + seconds
    while True:
        r = release.ctl(token, "audit", "verify", request_id, check=False)
        if r.returncode == 0 or time.time() > deadline:
            if r.returncode:
                raise RuntimeError(f"rogatoryctl audit verify {request_id}: exit {r.returncode}: "
                                   f"{r.stdout}{r.stderr}")
            return json.loads(r.stdout)
        time.sleep(0.2)


def submit(release, token, sample=REPO / "samples/requests/eio-fr-de.json"):
    out = json.loads(release.ctl(token, "request", "submit", str(sample)).stdout)
    return out.get("id") or out["request"]["id"]


def dump_logs(*releases):
    import sys
    for release in releases:
        for name in ("redis", *SERVICES):
            tail = release.log_tail(name, 8)
            if tail:
                print(f"--- {release.work.name}/{name}.log\n{tail}", file=sys.stderr)


def check_main(tag, body, success):
    """Runs BODY(helm_dir, bin_dir, work) with argv's HELM_DIR BIN_DIR and a temporary work
    folder; prints SUCCESS or what failed. Returns the exit code."""
    import shutil
    import sys
    import tempfile
    helm_dir, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    for s in (*SERVICES, "migrate"):
        if not (bin_dir / f"rogatory-{s}").exists():
            print(f"[{tag}] FAILED: {bin_dir}/rogatory-{s} missing: build first", flush=True)
            return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"rogatory-{tag}."))
    try:
        body(helm_dir, bin_dir, work)
    except (RuntimeError, KeyError, subprocess.SubprocessError) as error:
        print(f"[{tag}] FAILED: {error}", flush=True)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"[{tag}] {success}", flush=True)
    return 0
