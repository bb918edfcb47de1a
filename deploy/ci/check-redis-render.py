#!/usr/bin/env python3
"""Checks a render of helm/rogatory with deploy/ci/fixtures/external-cluster-tls-values.yaml.

Every Deployment's service container and the migration Job carry the seeds (rediss://,
db 0, the ACL user, no password), ROGATORY_REDIS_CLUSTER=true and the TLS files, and each
file a flag names is mounted, read-only, from the Secret and key the values name.

Usage: check-redis-render.py RENDERED.yaml VALUES.yaml
"""
import posixpath
import sys

import yaml

SERVICES = ("intake", "routing", "deadlines", "notification")


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    ext = yaml.safe_load(open(sys.argv[2]))["redis"]["external"]
    tls = ext["tls"]
    want_url = f"rediss://{ext['username']}:@{','.join(ext['seeds'])}/0"
    # file name -> (Secret, key) it must come from
    want_files = {
        "ROGATORY_REDIS_TLS_CA_FILE": (tls["ca"]["secretName"], tls["ca"]["key"]),
        "ROGATORY_REDIS_TLS_CERT_FILE": (tls["clientCert"]["secretName"],
                                         tls["clientCert"]["certKey"]),
        "ROGATORY_REDIS_TLS_KEY_FILE": (tls["clientCert"]["secretName"],
                                        tls["clientCert"]["keyKey"]),
    }
    problems = []
    pods = []
    for d in docs:
        component = d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
        if d.get("kind") == "Deployment" and component in SERVICES:
            pods.append((f"Deployment {component}", component, d["spec"]["template"]["spec"]))
        if d.get("kind") == "Job" and component == "migrate":
            pods.append(("Job migrate", "migrate", d["spec"]["template"]["spec"]))
    if sorted(p[1] for p in pods) != sorted(SERVICES + ("migrate",)):
        problems.append(f"want the four Deployments and the migrate Job, got {[p[0] for p in pods]}")
    for what, name, spec in pods:
        (c,) = [x for x in spec["containers"] if x["name"] == name]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        checks = {
            "ROGATORY_REDIS_URL": want_url,
            "ROGATORY_REDIS_CLUSTER": "true",
            "ROGATORY_REDIS_TLS_SERVER_NAME": tls["serverName"],
            "ROGATORY_REDIS_PASSWORD_FILE": "/etc/rogatory/secrets/redis-password",
        }
        for var, want in checks.items():
            if env.get(var) != want:
                problems.append(f"{what}: {var} is {env.get(var)!r}, want {want!r}")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for var, (secret, key) in want_files.items():
            path = env.get(var)
            if not path:
                problems.append(f"{what}: no {var}")
                continue
            folder, file = posixpath.split(path)
            mount = mounts.get(folder)
            if mount is None or not mount.get("readOnly"):
                problems.append(f"{what}: {var}={path}: {folder} is not mounted read-only")
                continue
            sources = volumes.get(mount["name"], {}).get("projected", {}).get("sources", [])
            found = [(s["secret"]["name"], i["key"]) for s in sources if "secret" in s
                     for i in s["secret"].get("items", []) if i["path"] == file]
            if found != [(secret, key)]:
                problems.append(f"{what}: {var}={path} comes from {found}, want "
                                f"[{(secret, key)}]")
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"[deploy] {len(pods)} workloads carry the seeds, cluster, db 0, ACL user and TLS files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
