{{/*
The prometheus-redis-exporter sidecar of the bundled Redis (metrics.redisExporter): the
upstream image of the exporter Debian packages as prometheus-redis-exporter. It reads the
password from the environment (never the command line) and listens on the pod's own
address, as the services' metrics do. Empty when disabled. Call with the root context.
*/}}
{{- define "rogatory.redisExporterContainer" -}}
{{- $e := .Values.metrics.redisExporter -}}
{{- if and $e.enabled (eq .Values.redis.mode "bundled") }}
- name: redis-exporter
  image: {{ include "rogatory.redisExporterImage" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - --redis.addr=redis://127.0.0.1:6379
    - --web.listen-address={{ ternary "[$(POD_IP)]" "$(POD_IP)" .Values.settings.podIPv6 }}:{{ $e.port }}
  env:
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    {{- if .Values.redis.auth.enabled }}
    - name: REDIS_PASSWORD
      valueFrom:
        secretKeyRef: {name: {{ include "rogatory.secretName" . }}, key: redis-password}
    {{- end }}
  ports:
    - {name: redis-metrics, containerPort: {{ $e.port }}, protocol: TCP}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  readinessProbe:
    httpGet: {path: /health, port: redis-metrics}
    periodSeconds: 10
  resources:
    {{- toYaml $e.resources | nindent 4 }}
{{- end }}
{{- end }}

{{- define "rogatory.redisExporterImage" -}}
{{- $i := .Values.metrics.redisExporter.image -}}
{{- if $i.digest -}}
{{- printf "%s/%s@%s" $i.registry $i.repository $i.digest -}}
{{- else -}}
{{- if eq (toString $i.tag) "latest" }}{{ fail "metrics.redisExporter.image.tag must not be \"latest\"" }}{{ end -}}
{{- printf "%s/%s:%s" $i.registry $i.repository (toString $i.tag) -}}
{{- end -}}
{{- end }}
