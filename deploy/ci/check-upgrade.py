#!/usr/bin/env python3
"""What a `helm upgrade` from OLD to NEW (two renders of one release) would trip over.

Kubernetes refuses to change some fields of a live object, and Helm deletes every object
of the old release that the new one no longer has. Compared here, object by object
(kind, namespace, name), the hooks apart:
  - immutable fields: Deployment and StatefulSet spec.selector; StatefulSet serviceName,
    podManagementPolicy and volumeClaimTemplates (names, access modes, storage class,
    size); Service type and clusterIP; PersistentVolumeClaim access modes, storage class
    and no smaller size; a Job that is not a hook keeps its pod template (a Job's template
    is immutable: a changed non-hook Job fails the upgrade);
  - removals: every object of OLD missing from NEW is listed; one not named in
    --allow-removal KIND/NAME fails the check, and a StatefulSet, PersistentVolumeClaim or
    Secret removed fails it whatever is allowed (Helm would delete the data or the keys),
    unless annotated helm.sh/resource-policy: keep (Helm leaves it);
  - keys: every (Secret, key) an OLD workload reads (env secretKeyRef, secret volumes,
    projected sources) is still read by the same workload in NEW, so the audit chains
    written with the old key verify and the Redis password stays the same;
  - the migration Job: NEW has a Job annotated helm.sh/hook=pre-upgrade (and not
    pre-install), whose delete policy includes before-hook-creation (a rerun replaces the
    previous Job instead of failing on its name) and hook-succeeded.
Prints each finding; exits 1 if any check fails.

Usage: check-upgrade.py OLD.yaml NEW.yaml [--allow-removal KIND/NAME ...]
"""
import argparse
import sys

import yaml

STATEFUL = {"StatefulSet", "PersistentVolumeClaim", "Secret"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def load(path):
    objects, hooks = {}, {}
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            meta = doc.get("metadata", {})
            key = (doc["kind"], meta.get("namespace", ""), meta["name"])
            is_hook = "helm.sh/hook" in (meta.get("annotations") or {})
            (hooks if is_hook else objects)[key] = doc
    return objects, hooks


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def secret_refs(obj):
    """(Secret name, key) pairs a workload reads; key None for a whole Secret."""
    refs = set()
    spec = pod_spec(obj)
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for e in c.get("env", []) or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for ef in c.get("envFrom", []) or []:
            if "secretRef" in ef:
                refs.add((ef["secretRef"]["name"], None))
    for v in spec.get("volumes", []) or []:
        sources = []
        if "secret" in v:
            sources.append(v["secret"])
        for p in (v.get("projected") or {}).get("sources", []):
            if "secret" in p:
                sources.append(p["secret"])
        for s in sources:
            name = s.get("secretName", s.get("name"))
            items = s.get("items")
            if items:
                refs.update((name, i["key"]) for i in items)
            else:
                refs.add((name, None))
    return refs


def quantity(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    q = str(q)
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q)


def claim_shape(spec):
    return (tuple(spec.get("accessModes", [])), spec.get("storageClassName"),
            spec.get("volumeMode"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--allow-removal", action="append", default=[],
                        metavar="KIND/NAME", help="an object the new chart drops on purpose")
    args = parser.parse_args()
    old, _ = load(args.old)
    new, new_hooks = load(args.new)
    failures = []

    def fail(message):
        failures.append(message)
        print(f"  FAIL {message}")

    def note(message):
        print(f"  ok   {message}")

    allowed = set(args.allow_removal)
    for key in sorted(set(old) - set(new)):
        kind, _, name = key
        kept = (old[key]["metadata"].get("annotations") or {}).get("helm.sh/resource-policy")
        if kept == "keep":
            note(f"{kind}/{name} is gone from the new chart; helm.sh/resource-policy: keep "
                 "leaves it (and its data) in place, no longer managed")
        elif kind in STATEFUL:
            fail(f"{kind}/{name} is gone from the new chart: helm upgrade would delete it")
        elif f"{kind}/{name}" not in allowed:
            fail(f"{kind}/{name} is gone from the new chart and not expected to be "
                 "(--allow-removal KIND/NAME after saying why)")
        else:
            note(f"{kind}/{name} removed, as expected")
    for key in sorted(set(new) - set(old)):
        print(f"  new  {key[0]}/{key[2]}")

    immutable = 0
    for key in sorted(set(old) & set(new)):
        kind, _, name = key
        o, n = old[key], new[key]
        os_, ns = o.get("spec", {}), n.get("spec", {})
        what = f"{kind}/{name}"
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            immutable += 1
            if os_.get("selector") != ns.get("selector"):
                fail(f"{what}: spec.selector {os_.get('selector')} -> {ns.get('selector')} "
                     "(immutable: the upgrade is refused)")
        if kind == "StatefulSet":
            for field in ("serviceName", "podManagementPolicy"):
                if os_.get(field) != ns.get(field):
                    fail(f"{what}: spec.{field} {os_.get(field)!r} -> {ns.get(field)!r} "
                         "(immutable)")
            oc = {c["metadata"]["name"]: c["spec"] for c in os_.get("volumeClaimTemplates", [])}
            nc = {c["metadata"]["name"]: c["spec"] for c in ns.get("volumeClaimTemplates", [])}
            if oc.keys() != nc.keys():
                fail(f"{what}: volumeClaimTemplates {sorted(oc)} -> {sorted(nc)} (immutable; "
                     "the pods would lose their volumes)")
            for claim in oc.keys() & nc.keys():
                if oc[claim] != nc[claim]:
                    fail(f"{what}: volumeClaimTemplates[{claim}] changed (immutable): "
                         f"{oc[claim]} -> {nc[claim]}")
        if kind == "Service":
            for field in ("type", "clusterIP"):
                if os_.get(field) != ns.get(field):
                    fail(f"{what}: spec.{field} {os_.get(field)!r} -> {ns.get(field)!r}")
        if kind == "PersistentVolumeClaim":
            if claim_shape(os_) != claim_shape(ns):
                fail(f"{what}: access modes, storage class or volume mode changed (immutable)")
            old_size = os_.get("resources", {}).get("requests", {}).get("storage", "0")
            new_size = ns.get("resources", {}).get("requests", {}).get("storage", "0")
            if quantity(new_size) < quantity(old_size):
                fail(f"{what}: storage {old_size} -> {new_size} (a claim cannot shrink)")
        if kind == "Job" and os_.get("template") != ns.get("template"):
            fail(f"{what}: a Job that is not a hook changed its pod template (immutable)")
        if kind in WORKLOADS:
            lost = secret_refs(o) - secret_refs(n)
            for secret, item in sorted(lost, key=str):
                fail(f"{what} no longer reads Secret {secret}"
                     + (f" key {item}" if item else "")
                     + ": data written with it would not be readable")
    note(f"{immutable} Deployments/StatefulSets keep their selectors; "
         f"{len(set(old) & set(new))} objects compared")
    kept = set().union(*(secret_refs(o) for k, o in old.items() if k[0] in WORKLOADS))
    note("Secret keys read before and after: "
         + ", ".join(f"{s}:{i or '*'}" for s, i in sorted(kept, key=str)))

    migrations = [h for k, h in new_hooks.items() if k[0] == "Job"
                  and "pre-upgrade" in h["metadata"]["annotations"]["helm.sh/hook"].split(",")]
    if len(migrations) != 1:
        fail(f"{len(migrations)} pre-upgrade hook Jobs in the new chart, expected the migration")
    else:
        annotations = migrations[0]["metadata"]["annotations"]
        hook = annotations["helm.sh/hook"].split(",")
        policy = annotations.get("helm.sh/hook-delete-policy", "").split(",")
        if "pre-install" in hook:
            fail("the migration Job also runs pre-install (no Redis exists yet then)")
        if "before-hook-creation" not in policy or "hook-succeeded" not in policy:
            fail(f"the migration Job's delete policy {policy} lacks before-hook-creation or "
                 "hook-succeeded (a second upgrade would fail on the Job's name, or finished "
                 "Jobs pile up)")
        if not failures:
            note(f"Job/{migrations[0]['metadata']['name']}: pre-upgrade hook, delete policy "
                 f"{','.join(policy)}")
    if failures:
        print(f"check-upgrade: {len(failures)} finding(s) would break the upgrade")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
