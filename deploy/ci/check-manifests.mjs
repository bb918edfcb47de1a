// Checks manifests rendered by `helm template`: every object's fields against the
// Kubernetes schemas of the npm package kubernetes-models and, for the custom resources,
// @kubernetes-models/prometheus-operator (ServiceMonitor, PrometheusRule),
// @kubernetes-models/cert-manager (Certificate) and @kubernetes-models/gateway-api
// (GRPCRoute, HTTPRoute); a kind none of them knows is a problem. And
// the chart's security promises for every pod template:
//   - pod and container non-root (runAsNonRoot, a non-zero runAsUser), no privilege
//     escalation, not privileged, all capabilities dropped, read-only root filesystem,
//     seccomp RuntimeDefault;
//   - every Rogatory service container has native gRPC liveness and readiness probes,
//     liveness on "" and readiness on the service's own name;
//   - every Rogatory service container points ROGATORY_AUTH_KEYS, ROGATORY_SERVICE_TOKEN_KEY
//     and ROGATORY_AUDIT_KEY_FILE at files of a mounted Secret volume (a folder, not
//     subPath, so rotated keys appear in place; a Secret volume or a projected volume of
//     Secrets): without them the services exit at start;
//   - no image tagged "latest" or untagged; standard app.kubernetes.io labels everywhere.
//
// Usage: NODE_PATH=<node_modules> node check-manifests.mjs <rendered.yaml>...
// Exits 1 and lists every problem found.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const modulesDir = process.env.ROGATORY_NODE_MODULES;
if (!modulesDir) throw new Error("set ROGATORY_NODE_MODULES to the npm node_modules folder");
const require = createRequire(path.join(modulesDir, "noop.js"));
const YAML = require("yaml");

const READINESS = {
  intake: "rogatory.intake.v1.IntakeService",
  routing: "rogatory.routing.v1.TranslationRoutingService",
  deadlines: "rogatory.deadlines.v1.DeadlineService",
  notification: "rogatory.notification.v1.NotificationService",
};
const REQUIRED_LABELS = [
  "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
  "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
  "helm.sh/chart",
];

// API groups of custom resources -> the npm package holding their schemas.
const CRD_PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = CRD_PACKAGES[group] || "kubernetes-models";
  const file = path.join(modulesDir, pkg, group || "", version, `${kind}.js`);
  const mod = await import(file);
  return mod[kind];
}

function podSpecOf(obj) {
  switch (obj.kind) {
    case "Deployment": case "StatefulSet": case "DaemonSet": case "Job":
      return obj.spec.template.spec;
    case "CronJob":
      return obj.spec.jobTemplate.spec.template.spec;
    case "Pod":
      return obj.spec;
    default:
      return null;
  }
}

function checkImage(where, image, problems) {
  const last = image.split("/").pop();
  if (image.includes("@sha256:")) return;
  if (!last.includes(":")) problems.push(`${where}: image ${image} has no tag`);
  else if (last.endsWith(":latest")) problems.push(`${where}: image ${image} uses "latest"`);
}

// Settings naming files the services cannot start without (token key set, own signing
// key, audit HMAC key).
const KEY_FILE_SETTINGS = [
  "ROGATORY_AUTH_KEYS", "ROGATORY_SERVICE_TOKEN_KEY", "ROGATORY_AUDIT_KEY_FILE",
];

function checkKeyFiles(at, spec, c, problems) {
  const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
  for (const name of KEY_FILE_SETTINGS) {
    const file = env[name];
    if (!file) { problems.push(`${at}: ${name} is not set`); continue; }
    const mount = (c.volumeMounts || [])
      .find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, "")}/`));
    const volume = mount && (spec.volumes || []).find((v) => v.name === mount.name);
    const inFolder = file.slice(mount ? mount.mountPath.replace(/\/$/, "").length + 1 : 0);
    // A projected volume must take the file from a Secret (not a ConfigMap or the API).
    const projected = volume?.projected?.sources?.some(
      (s) => s.secret && (s.secret.items || []).some((i) => i.path === inFolder));
    if (!volume?.secret && !projected) {
      problems.push(`${at}: ${name}=${file} is not in a mounted Secret volume`);
    } else if (mount.subPath) {
      problems.push(`${at}: ${name}: the Secret is mounted with subPath (no rotation)`);
    }
  }
}

function checkPod(where, obj, spec, problems) {
  const pod = spec.securityContext || {};
  if (pod.runAsNonRoot !== true) problems.push(`${where}: pod runAsNonRoot is not true`);
  if (!(pod.runAsUser > 0)) problems.push(`${where}: pod runAsUser is not a non-zero uid`);
  if (pod.seccompProfile?.type !== "RuntimeDefault") {
    problems.push(`${where}: pod seccompProfile is not RuntimeDefault`);
  }
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push(`${where}: host namespaces`);
  const component = obj.metadata.labels?.["app.kubernetes.io/component"];
  for (const c of [...(spec.initContainers || []), ...spec.containers]) {
    const at = `${where} container ${c.name}`;
    const sc = c.securityContext || {};
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (sc.privileged) problems.push(`${at}: privileged`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
    if (sc.runAsNonRoot === false || sc.runAsUser === 0) problems.push(`${at}: may run as root`);
    const drop = sc.capabilities?.drop || [];
    if (!drop.includes("ALL")) problems.push(`${at}: capabilities.drop lacks ALL`);
    if ((sc.capabilities?.add || []).length) problems.push(`${at}: adds capabilities`);
    const seccomp = sc.seccompProfile?.type || pod.seccompProfile?.type;
    if (seccomp !== "RuntimeDefault") problems.push(`${at}: seccomp is not RuntimeDefault`);
    checkImage(at, c.image, problems);
    if (!c.resources?.requests) problems.push(`${at}: no resource requests`);
    if (READINESS[component] && c.name === component) {
      const live = c.livenessProbe?.grpc;
      const ready = c.readinessProbe?.grpc;
      if (!live) problems.push(`${at}: liveness probe is not a gRPC probe`);
      else if ((live.service || "") !== "") problems.push(`${at}: liveness must ask ""`);
      if (!ready) problems.push(`${at}: readiness probe is not a gRPC probe`);
      else if (ready.service !== READINESS[component]) {
        problems.push(`${at}: readiness asks ${ready.service}, not ${READINESS[component]}`);
      }
      checkKeyFiles(at, spec, c, problems);
    }
  }
}

const problems = [];
let objects = 0;
const kinds = {};
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length) { problems.push(`${file}: YAML error ${doc.errors[0].message}`); continue; }
    const obj = doc.toJS();
    if (!obj) continue;
    objects++;
    const where = `${path.basename(file)}: ${obj.kind}/${obj.metadata?.name}`;
    kinds[obj.kind] = (kinds[obj.kind] || 0) + 1;
    let Model;
    try {
      Model = await modelFor(obj.apiVersion, obj.kind);
    } catch (e) {
      problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(`${where}: schema: ${e.message.split("\n").slice(0, 6).join(" ")}`);
    }
    for (const label of REQUIRED_LABELS) {
      if (!obj.metadata?.labels?.[label]) problems.push(`${where}: label ${label} missing`);
    }
    const spec = podSpecOf(obj);
    if (spec) checkPod(where, obj, spec, problems);
  }
}
const summary = Object.entries(kinds).sort().map(([k, n]) => `${n} ${k}`).join(", ");
if (problems.length) {
  for (const p of problems) console.error(`manifests: ${p}`);
  console.error(`manifests: ${problems.length} problem(s) in ${objects} objects`);
  process.exit(1);
}
console.log(`manifests: ${objects} objects ok (${summary})`);
