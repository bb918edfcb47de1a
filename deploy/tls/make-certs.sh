#!/usr/bin/env bash
# Makes a local certificate authority and the certificates Rogatory's services and test
# clients need for TLS and mutual TLS, with OpenSSL. For development and tests only: the
# keys are unencrypted and the CA key lies next to the certificates.
#
# Usage: deploy/tls/make-certs.sh OUT_DIR [NAMESPACE]
#   OUT_DIR    where the files go (created if missing).
#   NAMESPACE  Kubernetes namespace named in the service certificates' SANs (default
#              "rogatory"; also ROGATORY_TLS_NAMESPACE).
#
# Writes, all PEM:
#   ca.crt ca.key                          the CA (EC P-256, 10 years)
#   <service>.crt <service>.key            for intake, routing, deadlines, notification:
#                                          CN rogatory-<service>, both serverAuth and
#                                          clientAuth (the service's server and client
#                                          identity), SAN DNS:localhost, IP:127.0.0.1,
#                                          DNS:rogatory-<service>,
#                                          DNS:rogatory-<service>.<ns>.svc(.cluster.local)
#   client.crt client.key                  a human/test client (CN rogatory-test-client,
#                                          clientAuth only)
#
# Idempotent: existing files are kept (a second run changes nothing); a missing file is
# made again. ROGATORY_TLS_RENEW=<name> (e.g. "intake") re-issues that certificate with a
# new key and serial from the same CA, for rotation tests. Files are written to a temporary
# name and renamed, so a reader never sees half a file.
set -euo pipefail

die() { printf 'make-certs: %s\n' "$*" >&2; exit 2; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 OUT_DIR [NAMESPACE]"
command -v openssl >/dev/null || die "openssl not found"
out="$1"
namespace="${2:-${ROGATORY_TLS_NAMESPACE:-rogatory}}"
renew="${ROGATORY_TLS_RENEW:-}"
readonly services=(intake routing deadlines notification)
readonly days=825

mkdir -p "${out}"
umask 077
tmp="$(mktemp -d "${out}/.make-certs.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

new_key() {  # new_key PATH
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

if [[ ! -s "${out}/ca.crt" || ! -s "${out}/ca.key" ]]; then
  new_key "${tmp}/ca.key"
  openssl req -x509 -new -key "${tmp}/ca.key" -sha256 -days 3650 \
    -subj "/O=Rogatory Development/CN=Rogatory Development CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "${tmp}/ca.crt"
  mv "${tmp}/ca.key" "${out}/ca.key"
  mv "${tmp}/ca.crt" "${out}/ca.crt"
  # A new CA invalidates every certificate it did not sign.
  for name in "${services[@]}" client; do rm -f "${out}/${name}.crt" "${out}/${name}.key"; done
fi

issue() {  # issue NAME CN EKU SAN
  local name="$1" cn="$2" eku="$3" san="$4"
  if [[ -s "${out}/${name}.crt" && -s "${out}/${name}.key" && "${renew}" != "${name}" ]]; then
    return
  fi
  new_key "${tmp}/${name}.key"
  openssl req -new -key "${tmp}/${name}.key" -subj "/O=Rogatory Development/CN=${cn}" \
    -out "${tmp}/${name}.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=${eku}"
    [[ -n "${san}" ]] && echo "subjectAltName=${san}"
  } > "${tmp}/${name}.ext"
  openssl x509 -req -in "${tmp}/${name}.csr" -CA "${out}/ca.crt" -CAkey "${out}/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "${days}" -sha256 \
    -extfile "${tmp}/${name}.ext" -out "${tmp}/${name}.crt" 2>/dev/null
  # Key first, then certificate: gRPC's file watcher ignores a pair that does not match,
  # so a reader between the two renames keeps the old pair.
  mv "${tmp}/${name}.key" "${out}/${name}.key"
  mv "${tmp}/${name}.crt" "${out}/${name}.crt"
}

for service in "${services[@]}"; do
  host="rogatory-${service}"
  issue "${service}" "${host}" "serverAuth,clientAuth" \
    "DNS:localhost,IP:127.0.0.1,DNS:${host},DNS:${host}.${namespace}.svc,DNS:${host}.${namespace}.svc.cluster.local"
done
issue client rogatory-test-client clientAuth ""

# Certificates are public; keys stay owner-only (umask above). Containers running as
# another user need the keys readable: the Helm chart mounts them from a Secret instead.
chmod 644 "${out}"/*.crt
printf 'make-certs: certificates in %s (namespace %s)\n' "${out}" "${namespace}"
