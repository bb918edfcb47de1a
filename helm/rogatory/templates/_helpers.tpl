{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "rogatory.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of the chart. */}}
{{- define "rogatory.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rogatory.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's resources: <fullname>-<component>. */}}
{{- define "rogatory.componentName" -}}
{{- printf "%s-%s" (include "rogatory.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; call with (dict "root" $ "component" "intake"). */}}
{{- define "rogatory.labels" -}}
helm.sh/chart: {{ include "rogatory.chart" .root }}
{{ include "rogatory.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: rogatory
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rogatory.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rogatory.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Fully qualified gRPC service name: readiness health check name. */}}
{{- define "rogatory.healthService" -}}
{{- $names := dict "intake" "rogatory.intake.v1.IntakeService" "routing" "rogatory.routing.v1.TranslationRoutingService" "deadlines" "rogatory.deadlines.v1.DeadlineService" "notification" "rogatory.notification.v1.NotificationService" -}}
{{- get $names . -}}
{{- end }}

{{/* Image reference of a service; call with (dict "root" $ "component" name "svc" values). */}}
{{- define "rogatory.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := .svc.image.repository | default (printf "%s/%s-%s" $img.registry $img.repositoryPrefix .component) -}}
{{- if .svc.image.digest -}}
{{- printf "%s@%s" $repo .svc.image.digest -}}
{{- else -}}
{{- $tag := $img.tag | default .root.Chart.AppVersion | toString -}}
{{- if eq $tag "latest" }}{{ fail "image.tag must not be \"latest\": pin a version or a digest" }}{{ end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end }}

{{- define "rogatory.redisImage" -}}
{{- $i := .Values.redis.bundled.image -}}
{{- if $i.digest -}}
{{- printf "%s/%s@%s" $i.registry $i.repository $i.digest -}}
{{- else -}}
{{- if eq (toString $i.tag) "latest" }}{{ fail "redis.bundled.image.tag must not be \"latest\"" }}{{ end -}}
{{- printf "%s/%s:%s" $i.registry $i.repository (toString $i.tag) -}}
{{- end -}}
{{- end }}

{{/* The Secret that holds every key not taken from a Secret of its own:
     secrets.existingSecret, else the chart's <fullname>-secrets. */}}
{{- define "rogatory.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "rogatory.chartSecretName" .) -}}
{{- end }}

{{- define "rogatory.chartSecretName" -}}
{{- printf "%s-secrets" (include "rogatory.fullname" .) -}}
{{- end }}

{{/* Where each secret file comes from, as JSON:
       {"audit": {"name", "key"}, "redis": {"name", "key"},
        "auth": {"name", "keys", "token"}}
     secrets.existing.<item>.name first (a Secret of its own), then secrets.existingSecret,
     then the chart's Secret (which is then rendered from inline values, never generated). */}}
{{- define "rogatory.secretSources" -}}
{{- $all := include "rogatory.secretName" . -}}
{{- $e := .Values.secrets.existing -}}
{{- $audit := dict "name" $all "key" "audit-key" -}}
{{- if $e.auditKey.name }}{{ $audit = dict "name" $e.auditKey.name "key" $e.auditKey.key }}{{ end -}}
{{- $redis := dict "name" $all "key" "redis-password" -}}
{{- if $e.redisPassword.name }}{{ $redis = dict "name" $e.redisPassword.name "key" $e.redisPassword.key }}{{ end -}}
{{- $auth := dict "name" $all "keys" "auth-keys.json" "token" "service-token-key.json" -}}
{{- if $e.auth.name }}{{ $auth = dict "name" $e.auth.name "keys" $e.auth.authKeysKey "token" $e.auth.serviceTokenKeyKey }}{{ end -}}
{{- dict "audit" $audit "redis" $redis "auth" $auth | toJson -}}
{{- end }}

{{- define "rogatory.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{ include "rogatory.componentName" . }}
{{- else -}}
default
{{- end -}}
{{- end }}

{{/* host:port of the Redis the services use; for an external Redis given by seeds
     (redis.external.seeds), the seeds joined with commas. */}}
{{- define "rogatory.redisHostPort" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- $seeds := .Values.redis.external.seeds | default list -}}
{{- if $seeds -}}
{{- join "," $seeds -}}
{{- else -}}
{{- required "redis.external.host (or redis.external.seeds) is required when redis.mode=external" .Values.redis.external.host -}}:{{ .Values.redis.external.port }}
{{- end -}}
{{- else -}}
{{ include "rogatory.fullname" . }}-redis:6379
{{- end -}}
{{- end }}

{{/* "true" when the services talk to a Redis Cluster: redis.external.cluster, or two or
     more seeds (the services take several addresses as a cluster's). */}}
{{- define "rogatory.redisCluster" -}}
{{- $e := .Values.redis.external -}}
{{- if and (eq .Values.redis.mode "external") (or $e.cluster (gt (len ($e.seeds | default list)) 1)) }}true{{ end -}}
{{- end }}

{{/* "true" when the services talk TLS to Redis (an external Redis only). */}}
{{- define "rogatory.redisTls" -}}
{{- $tls := .Values.redis.external.tls | default dict -}}
{{- if and (eq .Values.redis.mode "external") $tls.enabled }}true{{ end -}}
{{- end }}

{{- define "rogatory.redisDb" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- if and (include "rogatory.redisCluster" .) (ne (int .Values.redis.external.db) 0) -}}
{{- fail (printf "redis.external.db is %v but a Redis Cluster has database 0 only: set redis.external.db=0 (the cluster is on with redis.external.cluster=true or two or more redis.external.seeds)" .Values.redis.external.db) -}}
{{- end -}}
{{ .Values.redis.external.db }}
{{- else }}0{{ end -}}
{{- end }}

{{/* ROGATORY_REDIS_URL's value: redis:// (rediss:// with TLS), the ACL user (with the
     password from a file, never in the URL), the address or seeds, the database. */}}
{{- define "rogatory.redisUrl" -}}
{{- $user := "" -}}
{{- if and .Values.redis.auth.enabled (eq .Values.redis.mode "external") }}{{ $user = .Values.redis.external.username }}{{ end -}}
{{ ternary "rediss" "redis" (eq (include "rogatory.redisTls" .) "true") }}://{{ with $user }}{{ . }}:@{{ end }}{{ include "rogatory.redisHostPort" . }}/{{ include "rogatory.redisDb" . }}
{{- end }}

{{/* Where the Redis TLS files are mounted (volume redis-tls). */}}
{{- define "rogatory.redisTlsDir" -}}
/etc/rogatory/redis-tls
{{- end }}

{{/* The Redis settings beyond URL and password (cluster, TLS): env entries, or nothing. */}}
{{- define "rogatory.redisExtraEnv" -}}
{{- $e := .Values.redis.external -}}
{{- if include "rogatory.redisCluster" . }}
- name: ROGATORY_REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if include "rogatory.redisTls" . }}
{{- $dir := include "rogatory.redisTlsDir" . }}
{{- $tls := $e.tls }}
# Redis's certificate is verified against this CA (from Secret {{ $tls.ca.secretName }}).
- name: ROGATORY_REDIS_TLS_CA_FILE
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- if $tls.clientCert.secretName }}
- name: ROGATORY_REDIS_TLS_CERT_FILE
  value: {{ printf "%s/client.crt" $dir | quote }}
- name: ROGATORY_REDIS_TLS_KEY_FILE
  value: {{ printf "%s/client.key" $dir | quote }}
{{- end }}
{{- with $tls.serverName }}
- name: ROGATORY_REDIS_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The redis-tls volume (projected: the CA's Secret, and the client certificate's), or
     nothing without TLS. */}}
{{- define "rogatory.redisTlsVolume" -}}
{{- if include "rogatory.redisTls" . }}
{{- $tls := .Values.redis.external.tls }}
- name: redis-tls
  projected:
    defaultMode: 288  # 0440: owner and group (fsGroup) read
    sources:
      - secret:
          name: {{ required "redis.external.tls.ca.secretName is required when redis.external.tls.enabled (the CA that must verify Redis's certificate)" $tls.ca.secretName }}
          items:
            - {key: {{ $tls.ca.key | quote }}, path: ca.crt}
      {{- if $tls.clientCert.secretName }}
      - secret:
          name: {{ $tls.clientCert.secretName }}
          items:
            - {key: {{ $tls.clientCert.certKey | quote }}, path: client.crt}
            - {key: {{ $tls.clientCert.keyKey | quote }}, path: client.key}
      {{- end }}
{{- end }}
{{- end }}

{{/* Where each service receives events: <service>=<host:port>,... (ClusterIP Services;
     max-connection-age spreads the relays' connections across replicas). */}}
{{- define "rogatory.eventReceivers" -}}
{{- $root := . -}}
{{- $out := list -}}
{{- range $name := list "intake" "routing" "deadlines" "notification" -}}
{{- $svc := get $root.Values.services $name -}}
{{- if $svc.enabled -}}
{{- $out = append $out (printf "%s=%s:%d" $name (include "rogatory.componentName" (dict "root" $root "component" $name)) (int $svc.port)) -}}
{{- end -}}
{{- end -}}
{{- join "," $out -}}
{{- end }}

{{/* terminationGracePeriodSeconds aligned with the services' drain time. */}}
{{- define "rogatory.terminationGrace" -}}
{{- add .Values.settings.shutdownGraceSeconds .Values.settings.preStopSleepSeconds 10 -}}
{{- end }}
