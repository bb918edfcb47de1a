#!/usr/bin/env python3
"""README's "Restoring from a backup", done for real without a cluster.

With the chart rendered with deploy/ci/fixtures/upgrade/operator-values.yaml (bundled
Redis, backups on): the bundled Redis runs with the rendered redis.conf (AOF on) and the
Secret's password, and the four services with their rendered env (deploy/ci/
local_release.py). Request A is submitted; the backup CronJob's script (as rendered:
redis-cli --rdb into the backup volume) takes a backup; request B is submitted after it.
Everything stops, and helm/redis-restore.sh (the README's procedure) restores the backup
into the data folder, which still holds the newer AOF. Redis and the services start again
as rendered: A reads back with its history and its audit chain verifies; B, written after
the backup, is gone (so the data really came from the backup, not from the old AOF).
README's restore Pod manifest is checked against the render (claims, mount paths, user).
Exits 1 on any failure.

Usage: restore-check.py HELM_DIR BIN_DIR  (HELM_DIR holds helm/helm and kubectl/kubectl)
"""
import json
import os
import pathlib
import subprocess
import sys
import time

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import local_release as lr  # noqa: E402

VALUES = lr.REPO / "deploy/ci/fixtures/upgrade/operator-values.yaml"


def say(message):
    print(f"[restore-check] {message}", flush=True)


def readme_pod(rel):
    """README's restore Pod (the manifest between <<POD and POD) mounts what the render's
    Redis and backup CronJob use: the StatefulSet's first claim and the backup claim, at
    the paths redis-restore.sh expects, as the Redis user; the script it runs is
    helm/redis-restore.sh."""
    text = (lr.REPO / "README.md").read_text()
    section = text[text.index("### Restore from backup"):]
    section = section[:section.index("\n### ")]
    manifest = section[section.index("<<POD\n") + 6:section.index("\nPOD\n")]
    pod = yaml.safe_load(manifest.replace("${image}", "redis"))
    sts, sts_pod, redis = rel.container("StatefulSet", "rogatory-redis")
    _, cron_pod, backup = rel.container("CronJob", "rogatory-redis-backup")
    template = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    want = {f"{template}-{sts['metadata']['name']}-0": "/data"}
    for v in cron_pod["volumes"]:
        if "persistentVolumeClaim" in v:
            mount = next(m for m in backup["volumeMounts"] if m["name"] == v["name"])
            want[v["persistentVolumeClaim"]["claimName"]] = mount["mountPath"]
    (c,) = pod["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    got = {v["persistentVolumeClaim"]["claimName"]: mounts[v["name"]]
           for v in pod["spec"]["volumes"]}
    if got != want or want[f"{template}-{sts['metadata']['name']}-0"] != next(
            m["mountPath"] for m in redis["volumeMounts"] if m["name"] == template):
        raise RuntimeError(f"README's restore Pod mounts {got}; the render has {want}")
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        if pod["spec"]["securityContext"][field] != sts_pod["securityContext"][field]:
            raise RuntimeError(f"README's restore Pod: {field} is not the Redis pod's")
    if "sh -s -- /backup/dump-" not in section or "<helm/redis-restore.sh" not in section:
        raise RuntimeError("README's restore steps do not run helm/redis-restore.sh")
    say(f"README's restore Pod mounts {', '.join(f'{k} at {v}' for k, v in got.items())}, "
        "as the render's Redis and backup CronJob")


def run(helm_dir, bin_dir, work):
    render = work / "release.yaml"
    ok, err = lr.helm_template(str(helm_dir / "helm" / "helm"), lr.REPO / "helm/rogatory",
                               [VALUES], render)
    if not ok:
        raise RuntimeError(f"helm template: {err}")
    private, public = lr.authority_key(work)
    secret_name, secret = lr.make_secret(work, helm_dir, public)
    rel = lr.Release(render, work, bin_dir, secret_name, secret)
    readme_pod(rel)
    try:
        issuing, auditor = lr.caller_tokens(rel, work, private)

        rel.start_redis()
        if rel.cli("config", "get", "appendonly").split()[-1] != "yes":
            raise RuntimeError("the rendered redis.conf does not turn AOF on")
        rel.start_services()
        rel.wait_healthy(issuing)
        kept = lr.submit(rel, issuing)
        time.sleep(2)  # routing and deadlines take the submitted event
        history = rel.ctl(issuing, "request", "history", kept).stdout
        request = rel.ctl(issuing, "request", "get", kept).stdout
        mounts = rel.run_cronjob("rogatory-redis-backup")
        dumps = sorted(mounts["/backup"].glob("dump-*.rdb"))
        if len(dumps) != 1:
            raise RuntimeError(f"the backup CronJob's script wrote {dumps}")
        say(f"request {kept} submitted; backup {dumps[0].name} taken as the CronJob does "
            f"({dumps[0].stat().st_size} bytes)")
        lost = lr.submit(rel, issuing)
        rel.stop_services()
        rel.stop_redis()

        restore = subprocess.run(
            ["sh", str(lr.REPO / "helm/redis-restore.sh"), str(dumps[0]), str(rel.redis_data)],
            env=dict(os.environ, REDIS_RESTORE_PORT=str(lr.free_port())),
            capture_output=True, text=True)
        if restore.returncode:
            raise RuntimeError(f"helm/redis-restore.sh: {restore.stdout}{restore.stderr}")
        say(restore.stdout.strip())

        rel.start_redis(data_dir=rel.redis_data)
        rel.start_services()
        rel.wait_healthy(issuing)
        if rel.ctl(issuing, "request", "history", kept).stdout != history:
            raise RuntimeError(f"request {kept}'s history differs after the restore")
        if rel.ctl(issuing, "request", "get", kept).stdout != request:
            raise RuntimeError(f"request {kept} differs after the restore")
        verdict = json.loads(rel.ctl(auditor, "audit", "verify", kept).stdout)
        gone = rel.ctl(issuing, "request", "get", lost, check=False)
        if gone.returncode != 3:
            raise RuntimeError(f"request {lost}, submitted after the backup, is still there "
                               f"(exit {gone.returncode}): the data did not come from the backup")
        say(f"after the restore: {kept} read back with its history, audit chain "
            f"{verdict.get('verdict', verdict)}; {lost} (after the backup) not found")
    except Exception:
        lr.dump_logs(rel)
        raise
    finally:
        rel.stop()


if __name__ == "__main__":
    sys.exit(lr.check_main("restore-check", run,
                           "a backup taken by the chart's CronJob restores as README.md says"))
