#!/usr/bin/env python3
"""A release of the previous chart upgraded to this one, without a cluster.

The previous chart is deploy/ci/fixtures/upgrade/rogatory-0.1.0.tgz: `helm package` of
helm/rogatory at commit 3e59725 (main at the end of the third wave: the chart as last
released, before the data layout record and its pre-upgrade migration Job). An operator
installed it with deploy/ci/fixtures/upgrade/operator-values.yaml. Checked:
 1. renders: the previous chart with those values; this chart as `helm upgrade -f
    operator-values.yaml` (or --reset-then-reuse-values) renders it: this chart's
    defaults under the same user values; and as `--reuse-values` would (the previous
    chart's defaults in place of this chart's): refused, naming the command to use;
 2. deploy/ci/check-upgrade.py on the two renders: immutable fields, removed objects,
    Secret keys, the migration hook;
 3. the data path, for real, with the binaries of the build: the previous render's Redis
    (its redis.conf, its password) and four services (their rendered env) hold a request
    submitted through intake, with its history and audit chain. The build's binaries
    record a data layout that chart 0.1.0's did not: that record is deleted, so Redis
    holds what the previous release left. Redis then restarts with the new render's
    configuration on the same data (AOF); the new render's intake refuses to start on
    it (data without a layout record); the new render's migration Job (its command and
    env as rendered) records the layout; the new render's four services start, read the
    request and its history back as before, and the audit chain verifies
    (rogatoryctl audit verify) with the key of the same Secret.
Exits 1 on any failure, after printing what failed.

Usage: upgrade-check.py HELM_DIR BIN_DIR  (HELM_DIR holds helm/helm and kubectl/kubectl)
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import local_release as lr  # noqa: E402

FIXTURES = lr.REPO / "deploy/ci/fixtures/upgrade"
PREVIOUS = FIXTURES / "rogatory-0.1.0.tgz"
VALUES = FIXTURES / "operator-values.yaml"
CHART = lr.REPO / "helm/rogatory"


def say(message):
    print(f"[upgrade-check] {message}", flush=True)


def renders(helm, work):
    old, new = work / "previous.yaml", work / "upgraded.yaml"
    ok, err = lr.helm_template(helm, PREVIOUS, [VALUES], old)
    if not ok:
        raise RuntimeError(f"the previous chart does not render: {err}")
    ok, err = lr.helm_template(helm, CHART, [VALUES], new)
    if not ok:
        raise RuntimeError(f"this chart does not render with the operator's values: {err}")
    # --reuse-values: Helm replaces the new chart's values.yaml by the previous release's
    # values (the previous chart's defaults coalesced with the user's).
    reuse = work / "reuse-chart"
    shutil.copytree(CHART, reuse, symlinks=False)
    with tarfile.open(PREVIOUS) as tgz:
        (reuse / "values.yaml").write_bytes(tgz.extractfile("rogatory/values.yaml").read())
    ok, err = lr.helm_template(helm, reuse, [VALUES], work / "reuse.yaml")
    if ok or "--reset-then-reuse-values" not in err:
        raise RuntimeError("helm upgrade --reuse-values from 0.1.0 rendered, or failed without "
                           f"naming --reset-then-reuse-values: {err or 'rendered'}")
    say("--reuse-values refused: " + err.splitlines()[0][:200])
    say(f"rendered {PREVIOUS.name} and this chart with {VALUES.name}")
    return old, new


def request_view(release, token, request_id):
    got = json.loads(release.ctl(token, "request", "get", request_id).stdout)
    history = json.loads(release.ctl(token, "request", "history", request_id).stdout)
    return got, history


def data_path(helm_dir, bin_dir, work, old_render, new_render):
    private, public = lr.authority_key(work)
    secret_name, secret = lr.make_secret(work, helm_dir, public)
    (work / "old").mkdir()
    (work / "new").mkdir()
    old = lr.Release(old_render, work / "old", bin_dir, secret_name, secret)
    new = lr.Release(new_render, work / "new", bin_dir, secret_name, secret)
    try:
        issuing, auditor = lr.caller_tokens(old, work, private)

        old.start_redis()
        old.start_services()
        old.wait_healthy(issuing)
        request_id = lr.submit(old, issuing)
        time.sleep(2)  # routing and deadlines take the submitted event
        before, history_before = request_view(old, issuing, request_id)
        lr.await_audit_chain(old, auditor, request_id)
        say(f"previous release: request {request_id} submitted, read, audit chain intact")
        old.stop_services()
        # What chart 0.1.0's binaries left: no layout record (the build's binaries wrote one).
        if old.cli("del", "rg:{meta}:layout") != "1":
            raise RuntimeError("the previous release's services recorded no layout to remove")
        old.stop_redis()

        # Redis restarts with the new render's configuration on the same volume.
        new.redis_port = old.redis_port
        new.start_redis(data_dir=old.redis_data)
        if new.cli("exists", "rg:{meta}:layout") != "0":
            raise RuntimeError("the layout record came back")
        refused = new.start_one("intake")
        if refused.returncode == 0 or "layout" not in refused.stdout + refused.stderr:
            raise RuntimeError("the new intake started on data without a layout record "
                               f"(exit {refused.returncode}): {refused.stderr[-500:]}")
        say(f"new intake before the migration Job: refused (exit {refused.returncode})")
        rc, out = new.run_job("rogatory-migrate")
        if rc != 0:
            raise RuntimeError(f"the migration Job failed (exit {rc}): {out}")
        say(f"migration Job (as rendered): {out.splitlines()[-1][:200]}")
        if new.cli("hget", "rg:{meta}:layout", "shards") != "16":
            raise RuntimeError("the migration Job recorded no layout of 16 shards")

        new.start_services()
        new.wait_healthy(issuing)
        after, history_after = request_view(new, issuing, request_id)
        if before.get("id") != request_id or not history_before.get("events"):
            raise RuntimeError(f"the previous release read back {before} {history_before}")
        if before != after:
            raise RuntimeError(f"request {request_id} differs across the upgrade:\n{before}\n"
                               f"{after}")
        if history_before != history_after:
            raise RuntimeError(f"history changed across the upgrade:\n{history_before}\n"
                               f"{history_after}")
        verdict = json.loads(new.ctl(auditor, "audit", "verify", request_id).stdout)
        say(f"upgraded release: request {request_id} read back unchanged ({after.get('status')}, "
            f"{len(history_after['events'])} history entries, as before), "
            f"audit chain {verdict.get('verdict', verdict)}")
    except Exception:
        lr.dump_logs(old, new)
        raise
    finally:
        old.stop()
        new.stop()


def run(helm_dir, bin_dir, work):
    old, new = renders(str(helm_dir / "helm" / "helm"), work)
    check = subprocess.run([lr.PYTHON, str(lr.REPO / "deploy/ci/check-upgrade.py"),
                            str(old), str(new)])
    if check.returncode:
        raise RuntimeError("the upgrade's manifests (above)")
    data_path(helm_dir, bin_dir, work, old, new)


if __name__ == "__main__":
    sys.exit(lr.check_main("upgrade-check", run, "the previous chart's release upgrades: "
                           "manifests, keys, migration and data"))
