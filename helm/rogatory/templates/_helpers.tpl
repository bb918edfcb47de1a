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

{{/* host:port of the Redis the services use. */}}
{{- define "rogatory.redisHostPort" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- required "redis.external.host is required when redis.mode=external" .Values.redis.external.host -}}:{{ .Values.redis.external.port }}
{{- else -}}
{{ include "rogatory.fullname" . }}-redis:6379
{{- end -}}
{{- end }}

{{- define "rogatory.redisDb" -}}
{{- if eq .Values.redis.mode "external" }}{{ .Values.redis.external.db }}{{ else }}0{{ end -}}
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
