{{/* Names and labels, as `helm create` makes them. */}}
{{- define "vidaio-mesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vidaio-mesh.fullname" -}}
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

{{- define "vidaio-mesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vidaio-mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidaio-mesh
{{- end }}

{{/* A component's object name: <fullname>-<component>. Call with (dict "root" $ "name" "upscaler"). */}}
{{- define "vidaio-mesh.componentName" -}}
{{- printf "%s-%s" (include "vidaio-mesh.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vidaio-mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vidaio-mesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* The environment-variable prefix of each service's settings (its config.py's env_prefix). */}}
{{- define "vidaio-mesh.envPrefix" -}}
{{- get (dict "gateway" "GATEWAY" "upscaler" "UPSCALER" "compressor" "COMPRESSOR" "janitor" "JANITOR") . }}
{{- end }}

{{/* The address a client dials for a worker: every ready pod behind the headless Service, through gRPC's
     DNS resolver (servers cap connection age, so clients re-resolve as pods come and go). */}}
{{- define "vidaio-mesh.workerTarget" -}}
{{- $component := index .root.Values.components .name }}
{{- printf "dns:///%s:%d" (include "vidaio-mesh.componentName" .) (int $component.port) }}
{{- end }}

{{- define "vidaio-mesh.redisEnv" -}}
{{- $redis := .Values.redis }}
- name: REDIS_URL
{{- if $redis.embedded.enabled }}
  value: {{ printf "redis://%s:6379/0" (include "vidaio-mesh.componentName" (dict "root" . "name" "valkey")) | quote }}
{{- else if $redis.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.secretKey }}
{{- else if $redis.url }}
  value: {{ $redis.url | quote }}
{{- else }}
{{- fail "redis: set redis.url, redis.existingSecret or redis.embedded.enabled" }}
{{- end }}
{{- end }}

{{- define "vidaio-mesh.s3Env" -}}
{{- $s3 := .Values.s3 }}
{{- if not $s3.endpoint }}
{{- fail "s3.endpoint is required (host:port the services upload to)" }}
{{- end }}
- name: S3_ENDPOINT
  value: {{ $s3.endpoint | quote }}
- name: S3_PUBLIC_ENDPOINT
  value: {{ $s3.publicEndpoint | quote }}
- name: S3_SECURE
  value: {{ $s3.secure | quote }}
{{- if hasKey $s3 "publicSecure" }}
- name: S3_PUBLIC_SECURE
  value: {{ $s3.publicSecure | quote }}
{{- end }}
- name: S3_REGION
  value: {{ $s3.region | quote }}
- name: S3_BUCKET
  value: {{ $s3.bucket | quote }}
- name: S3_PRESIGN_SECONDS
  value: {{ $s3.presignSeconds | quote }}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.accessKeyKey }}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretKeyKey }}
{{- end }}

{{- define "vidaio-mesh.otelEnv" -}}
- name: OTEL_SERVICE_NAME
  value: {{ .name | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "service.instance.id=$(K8S_POD_UID),k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=$(K8S_NAMESPACE_NAME)"
{{- with .root.Values.opentelemetry }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_INSECURE
  value: {{ .insecure | quote }}
{{- end }}
- name: OTEL_METRICS_EXPORTER
  value: {{ ternary "otlp" "none" (and (ne .endpoint "") .exportMetrics) | quote }}
{{- end }}
{{- end }}

{{/* Native gRPC probes on the component's numeric port (grpc.health.v1, overall status ""). */}}
{{- define "vidaio-mesh.probes" -}}
{{- $port := int .component.port }}
startupProbe:
  grpc:
    port: {{ $port }}
  {{- toYaml .component.probes.startup | nindent 2 }}
readinessProbe:
  grpc:
    port: {{ $port }}
  {{- toYaml .component.probes.readiness | nindent 2 }}
livenessProbe:
  grpc:
    port: {{ $port }}
  {{- toYaml .component.probes.liveness | nindent 2 }}
{{- end }}
