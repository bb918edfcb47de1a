#!/usr/bin/python3
"""Checks what the chart promises production (issue 16, items 7, 13 and 14) on manifests
rendered by `helm template` with settings.env=production.

  - every service has a NetworkPolicy (networkPolicy.enabled is on by default);
  - notification's webhook egress is TCP on the webhook ports to 0.0.0.0/0 and ::/0
    EXCEPT every private and special-purpose range, apart from the in-cluster egress
    (DNS, Redis, the other services); no other rule lets it reach the internet;
  - metrics listen on the pod's own address ($(POD_IP) from status.podIP), never 0.0.0.0;
  - the Redis password is never on a command line nor in ROGATORY_REDIS_URL: the services
    read ROGATORY_REDIS_PASSWORD_FILE, the bundled Redis reads it from standard input;
  - every key of auth-keys.json declares what it signs ("subjects");
  - only the four services' Certificates carry a service identity CN (rogatory-<letters>).

Usage: check-chart-security.py RENDERED.yaml [RENDERED.yaml ...]
       check-chart-security.py --refused RENDER-ERROR.txt   (the render of production
       values without TLS or a mesh failed, naming tls.enabled and tls.terminatedByMesh)
Exits 1 with one line per broken promise.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import sys

import yaml

SERVICES = ("intake", "routing", "deadlines", "notification")
# Ranges the webhook egress must except (IANA special-purpose registries, non-global).
IPV4_EXCEPT = {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
               "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16",
               "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
               "240.0.0.0/4"}
IPV6_EXCEPT = {"::/96", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
               "2002::/16", "2001::/23", "2001:db8::/32"}
# Addresses a webhook must never reach: each must fall in an excepted range.
NEVER = ["10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254",
         "100.64.0.1", "198.18.0.1", "0.0.0.0", "240.0.0.1", "224.0.0.1", "::1",
         "::ffff:10.0.0.1", "::127.0.0.1", "fd00::1", "fe80::1", "fec0::1", "2002:a00:1::1"]


def component(obj: dict) -> str:
    return obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component", "")


def check(path: str) -> list[str]:
    problems: list[str] = []
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if isinstance(d, dict)]
    deployments = {component(d): d for d in docs if d.get("kind") == "Deployment"}
    policies = {component(d): d for d in docs if d.get("kind") == "NetworkPolicy"}
    production = any(
        e.get("name") == "ROGATORY_ENV" and e.get("value") == "production"
        for d in deployments.values()
        for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", []))
    if not production:
        return [f"{path}: not rendered with settings.env=production"]

    for name in SERVICES:
        if name in deployments and name not in policies:
            problems.append(f"{path}: no NetworkPolicy for {name}")

    # Webhook egress of notification.
    policy = policies.get("notification")
    if policy is not None:
        webhook_rules = []
        for rule in policy["spec"].get("egress", []):
            blocks = [t["ipBlock"] for t in rule.get("to", []) if "ipBlock" in t]
            if blocks:
                webhook_rules.append((rule, blocks))
        webhook_ports = {p.get("port") for rule, _ in webhook_rules
                         for p in rule.get("ports", [])}
        for rule in policy["spec"].get("egress", []):
            # Rules to anywhere are DNS's and an external Redis's, never the webhooks'.
            ports = {p.get("port") for p in rule.get("ports", [])}
            if not rule.get("to") and (not ports or ports & webhook_ports):
                problems.append(f"{path}: notification egress to anywhere on "
                                f"{sorted(ports) or 'every port'}")
        if len(webhook_rules) != 1:
            problems.append(f"{path}: notification has {len(webhook_rules)} ipBlock egress "
                            "rules, want one (the webhooks')")
        for rule, blocks in webhook_rules:
            by_cidr = {b["cidr"]: set(b.get("except", [])) for b in blocks}
            for cidr, want in (("0.0.0.0/0", IPV4_EXCEPT), ("::/0", IPV6_EXCEPT)):
                missing = want - by_cidr.get(cidr, set())
                if cidr not in by_cidr or missing:
                    problems.append(f"{path}: webhook egress to {cidr} misses excepts "
                                    f"{sorted(missing) if cidr in by_cidr else 'all'}")
            for address in NEVER:
                ip = ipaddress.ip_address(address)
                for cidr, excepts in by_cidr.items():
                    net = ipaddress.ip_network(cidr)
                    if ip.version == net.version and ip in net and not any(
                            ip in ipaddress.ip_network(e) for e in excepts):
                        problems.append(f"{path}: webhook egress reaches {address}")
            for port in rule.get("ports", []):
                if port.get("protocol") != "TCP":
                    problems.append(f"{path}: webhook egress not TCP only: {port}")
            if not rule.get("ports"):
                problems.append(f"{path}: webhook egress on every port")

    # Metrics address (the service's own container; sidecars are the operator's), Redis
    # password (every container).
    for name, deployment in deployments.items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            metrics = env.get("ROGATORY_METRICS_LISTEN", {}).get("value", "")
            pod_ip = env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {})
            if c["name"] == name and (
                    "$(POD_IP)" not in metrics or pod_ip.get("fieldPath") != "status.podIP"):
                problems.append(f"{path}: {name} metrics listen on {metrics!r}, not the pod IP")
            url = env.get("ROGATORY_REDIS_URL", {}).get("value", "")
            userinfo = url.split("//", 1)[-1].split("@", 1)[0] if "@" in url else ""
            password = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
            if password or "$(" in url:
                problems.append(f"{path}: {name} has a password in ROGATORY_REDIS_URL")
            if "REDIS_PASSWORD" in env:
                problems.append(f"{path}: {name} has the Redis password in its environment")
            # The services reach Redis; the browser gateway does not.
            if "ROGATORY_REDIS_URL" in env and "ROGATORY_REDIS_PASSWORD_FILE" not in env:
                problems.append(f"{path}: {name} has no ROGATORY_REDIS_PASSWORD_FILE")
    for sts in (d for d in docs if d.get("kind") == "StatefulSet"):
        for c in sts["spec"]["template"]["spec"]["containers"]:
            line = " ".join(c.get("command", []) + c.get("args", []))
            if "--requirepass" in line:
                problems.append(f"{path}: {sts['metadata']['name']} has requirepass on its "
                                "command line")

    # Certificates: the services take a client certificate whose CN is rogatory-<letters>
    # as that service (role service) on a call without a token, so only the four services'
    # own certificates may carry such a CN (never the gateway's, which forwards browsers'
    # calls, nor the helm test's).
    for cert in (d for d in docs if d.get("kind") == "Certificate"):
        cn = cert["spec"].get("commonName", "")
        owner = component(cert)
        if re.fullmatch(r"rogatory-[a-z]+", cn) and cn != f"rogatory-{owner}":
            problems.append(f"{path}: Certificate {cert['metadata']['name']} ({owner}) has the "
                            f"service identity CN {cn}")
        if re.fullmatch(r"rogatory-[a-z]+", cn) and owner not in SERVICES:
            problems.append(f"{path}: Certificate {cert['metadata']['name']} gives {owner} a "
                            f"service identity ({cn})")

    # The data layout migration Job (helm/rogatory/templates/migrate-job.yaml) checks the
    # Redis and shard count the services use, before an upgrade, and nothing else.
    jobs = [d for d in docs if d.get("kind") == "Job" and component(d) == "migrate"]
    for job in jobs:
        hooks = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if hooks != "pre-upgrade":
            problems.append(f"{path}: the migration Job runs on {hooks!r}, not pre-upgrade")
        (c,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if c.get("command") != ["/usr/bin/rogatory-migrate", "apply"]:
            problems.append(f"{path}: the migration Job runs {c.get('command')}")
        for name, deployment in deployments.items():
            if name not in SERVICES:
                continue
            (svc,) = [x for x in deployment["spec"]["template"]["spec"]["containers"]
                      if x["name"] == name]
            svc_env = {e["name"]: e.get("value") for e in svc.get("env", [])}
            # Every Redis setting (cluster, TLS files) but the timeout, the Job's own.
            redis_vars = {v for v in set(env) | set(svc_env)
                          if v.startswith("ROGATORY_REDIS_") and v != "ROGATORY_REDIS_TIMEOUT"}
            for var in sorted(redis_vars | {"ROGATORY_REDIS_URL", "ROGATORY_REDIS_SHARDS",
                                            "ROGATORY_REDIS_PASSWORD_FILE"}):
                if svc_env.get(var) != env.get(var):
                    problems.append(f"{path}: the migration Job's {var} {env.get(var)!r} is "
                                    f"not {name}'s {svc_env.get(var)!r}")
    if deployments and not jobs:
        problems.append(f"{path}: no data layout migration Job")

    # Keys bound to what they sign.
    for secret in (d for d in docs if d.get("kind") == "Secret"):
        data = secret.get("data", {})
        if "auth-keys.json" in data:
            keys = json.loads(base64.b64decode(data["auth-keys.json"]))["keys"]
            for key in keys:
                if key.get("subjects") not in ("authorities", "services"):
                    problems.append(f"{path}: auth-keys.json key {key.get('kid')!r} declares "
                                    "no subjects")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--refused":
        text = open(argv[2], encoding="utf-8", errors="replace").read()
        if "tls.enabled" in text and "tls.terminatedByMesh" in text:
            return 0
        print(f"production values without TLS rendered, or failed for another reason:\n"
              f"{text[-2000:]}")
        return 1
    problems = [p for path in argv[1:] for p in check(path)]
    for p in problems:
        print(p)
    return 1 if problems or len(argv) < 2 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
