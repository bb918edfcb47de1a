#!/usr/bin/env bash
# Makes the Secret the Rogatory chart reads its keys from (secrets.existingSecret), once,
# at first install: the chart itself generates no key, so renders stay identical and
# GitOps syncs never rotate one. Run it before the first `helm install` (or commit its
# --print output through Sealed Secrets / SOPS); it never replaces a Secret that exists.
#
#   helm/create-secret.sh -n rogatory [--name rogatory-secrets]
#       [--authority-key KID:ALG:PUBLIC_KEY.pem ...]   identity provider keys (RS256/ES256)
#       [--redis-password-file FILE]                    an external Redis's password
#       [--print]                                       print the manifest, apply nothing
#
# Keys it writes (the files the services read, see helm/README.md "Secrets and keys"):
#   audit-key               64 random base64 characters (openssl rand -base64 48)
#   redis-password          48 random hex characters, or --redis-password-file
#   service-token-key.json  a new EC P-256 key, {"keys":[{kid, alg ES256, subjects services,
#                           private_key_pem}]}, kid rogatory-services-<sha256 of the PEM>
#   auth-keys.json          the --authority-key keys ("subjects":"authorities") + that key
# Then: helm install ... --set secrets.existingSecret=<name>. Copy audit-key somewhere
# outside the cluster: audit chains verify only with it (and, after a rotation, with the
# key set that replaces it: helm/README.md, "Rotating the audit key").
# Needs openssl, python3 and kubectl (with --print only its client-side dry run, no
# cluster).
set -euo pipefail

namespace=""
name=rogatory-secrets
print=0
redis_password_file=""
authority_keys=()
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
while (($#)); do
  case "$1" in
    -n | --namespace) namespace="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --authority-key) authority_keys+=("$2"); shift 2 ;;
    --redis-password-file) redis_password_file="$2"; shift 2 ;;
    --print) print=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "create-secret.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
kubectl=${KUBECTL:-kubectl}
python=/usr/bin/python3
[[ -x "${python}" ]] || python=python3
ns_args=()
[[ -n "${namespace}" ]] && ns_args=(--namespace "${namespace}")

if ((!print)); then
  if found="$("${kubectl}" get secret "${name}" "${ns_args[@]}" -o name 2>&1)"; then
    echo "create-secret.sh: Secret ${name} exists: kept as it is (rotate keys as helm/README.md says)" >&2
    exit 0
  elif [[ "${found}" != *NotFound* ]]; then
    echo "create-secret.sh: cannot tell whether Secret ${name} exists: ${found}" >&2
    exit 1
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
umask 077
openssl rand -base64 48 | tr -d '\n' >"${work}/audit-key"
if [[ -n "${redis_password_file}" ]]; then
  tr -d '\n' <"${redis_password_file}" >"${work}/redis-password"
else
  openssl rand -hex 24 | tr -d '\n' >"${work}/redis-password"
fi
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt >"${work}/service.pem"
"${python}" - "${work}" "${authority_keys[@]}" <<'EOF'
import hashlib, json, pathlib, sys
work = pathlib.Path(sys.argv[1])
pem = (work / "service.pem").read_text()
service = {"kid": "rogatory-services-" + hashlib.sha256(pem.encode()).hexdigest()[:12],
           "alg": "ES256", "subjects": "services", "private_key_pem": pem}
keys = []
for spec in sys.argv[2:]:
    kid, alg, path = spec.split(":", 2)
    if alg not in ("RS256", "ES256"):
        sys.exit(f"--authority-key {spec}: alg must be RS256 or ES256 (HS256 is refused in production)")
    text = pathlib.Path(path).read_text()
    if "PUBLIC KEY" not in text:
        sys.exit(f"--authority-key {spec}: {path} holds no PEM public key")
    keys.append({"kid": kid, "alg": alg, "subjects": "authorities", "public_key_pem": text})
if len({k["kid"] for k in keys} | {service["kid"]}) != len(keys) + 1:
    sys.exit("--authority-key: a kid appears twice")
(work / "auth-keys.json").write_text(json.dumps({"keys": keys + [service]}))
(work / "service-token-key.json").write_text(json.dumps({"keys": [service]}))
EOF
manifest="$("${kubectl}" create secret generic "${name}" "${ns_args[@]}" --dry-run=client -o yaml \
  --from-file=audit-key="${work}/audit-key" --from-file=redis-password="${work}/redis-password" \
  --from-file=auth-keys.json="${work}/auth-keys.json" \
  --from-file=service-token-key.json="${work}/service-token-key.json" |
  sed '/creationTimestamp: null/d')"
if ((print)); then
  printf '%s\n' "${manifest}"
  exit 0
fi
# create, not apply: if another run made it meanwhile, this fails instead of replacing it.
printf '%s\n' "${manifest}" | "${kubectl}" create -f - >/dev/null
echo "create-secret.sh: created Secret ${name}${namespace:+ in ${namespace}}; install with --set secrets.existingSecret=${name}" >&2
