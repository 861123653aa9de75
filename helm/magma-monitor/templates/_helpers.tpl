{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "magma-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name of the objects. */}}
{{- define "magma-monitor.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "magma-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The standard app.kubernetes.io labels of every object. */}}
{{- define "magma-monitor.labels" -}}
helm.sh/chart: {{ include "magma-monitor.chart" . }}
{{ include "magma-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: magma-monitor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "magma-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "magma-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels that select the monitored pods: ours in full mode, the user's in sidecar mode. */}}
{{- define "magma-monitor.podSelector" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- toYaml .Values.sidecar.podSelector -}}
{{- else -}}
{{- include "magma-monitor.selectorLabels" . -}}
{{- end -}}
{{- end -}}

{{- define "magma-monitor.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "magma-monitor.upstream" -}}
{{- if .Values.monitor.upstream -}}
{{- .Values.monitor.upstream -}}
{{- else if eq .Values.mode "full" -}}
{{- printf "http://127.0.0.1:%d" (int .Values.model.port) -}}
{{- else -}}
http://127.0.0.1:8080
{{- end -}}
{{- end -}}

{{/* true when the sidecar is rendered as a native sidecar (init container, restartPolicy: Always). */}}
{{- define "magma-monitor.native" -}}
{{- $mode := toString .Values.monitor.nativeSidecar -}}
{{- if eq $mode "auto" -}}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version -}}
{{- else -}}
{{- eq $mode "true" -}}
{{- end -}}
{{- end -}}

{{/*
Command-line arguments: ports and upstream, then every non-null key of
monitor.config as --key=value (true: --key; false: left out; list: joined by
commas), in key order, then monitor.extraArgs.
*/}}
{{- define "magma-monitor.args" -}}
- --listen=0.0.0.0:{{ .Values.monitor.ports.proxy }}
- --admin-listen=0.0.0.0:{{ .Values.monitor.ports.admin }}
- --upstream={{ include "magma-monitor.upstream" . }}
{{- range $flag, $value := .Values.monitor.config }}
{{- if kindIs "invalid" $value }}
{{- else if kindIs "bool" $value }}
{{- if $value }}
- --{{ $flag }}
{{- end }}
{{- else if kindIs "slice" $value }}
{{- if $value }}
- {{ printf "--%s=%s" $flag (join "," $value) | quote }}
{{- end }}
{{- else if kindIs "float64" $value }}
{{- /* YAML numbers arrive as float64: print whole ones without an exponent. */}}
{{- $text := toString $value }}
{{- if eq (float64 (int64 $value)) $value }}{{ $text = toString (int64 $value) }}{{ end }}
- {{ printf "--%s=%s" $flag $text | quote }}
{{- else }}
- {{ printf "--%s=%v" $flag $value | quote }}
{{- end }}
{{- end }}
{{- range .Values.monitor.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The magma-monitor container; `native` adds restartPolicy: Always. */}}
{{- define "magma-monitor.container" -}}
{{- $native := eq (include "magma-monitor.native" .) "true" -}}
name: magma-monitor
image: {{ include "magma-monitor.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- if $native }}
restartPolicy: Always
{{- end }}
args:
{{ include "magma-monitor.args" . }}
{{- $env := .Values.monitor.env | default dict }}
{{- $persist := and .Values.monitor.persistence.enabled (not (index .Values.monitor.config "state-dir")) }}
{{- if or $env .Values.monitor.extraEnv .Values.monitor.adminToken.existingSecret .Values.monitor.gpu.enabled $persist }}
env:
{{- range $name, $value := $env }}
  - name: {{ $name }}
    value: {{ toString $value | quote }}
{{- end }}
{{- if $persist }}
  - name: MAGMA_MONITOR_STATE_DIR
    value: {{ .Values.monitor.persistence.mountPath | quote }}
{{- end }}
{{- if .Values.monitor.adminToken.existingSecret }}
  - name: MAGMA_MONITOR_ADMIN_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ .Values.monitor.adminToken.existingSecret }}
        key: {{ .Values.monitor.adminToken.key }}
{{- end }}
{{- if .Values.monitor.gpu.enabled }}
  - name: NVIDIA_VISIBLE_DEVICES
    value: all
  - name: NVIDIA_DRIVER_CAPABILITIES
    value: utility
{{- end }}
{{- with .Values.monitor.extraEnv }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
ports:
  - name: proxy
    containerPort: {{ .Values.monitor.ports.proxy }}
    protocol: TCP
  - name: admin
    containerPort: {{ .Values.monitor.ports.admin }}
    protocol: TCP
{{- if $native }}
{{- with .Values.monitor.startupProbe }}
startupProbe:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
{{- with .Values.monitor.livenessProbe }}
livenessProbe:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.monitor.readinessProbe }}
readinessProbe:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.monitor.resources }}
resources:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.monitor.securityContext }}
securityContext:
{{ toYaml . | indent 2 }}
{{- end }}
{{- if or .Values.monitor.persistence.enabled .Values.monitor.extraVolumeMounts }}
volumeMounts:
{{- if .Values.monitor.persistence.enabled }}
  - name: magma-monitor-state
    mountPath: {{ .Values.monitor.persistence.mountPath }}
{{- end }}
{{- with .Values.monitor.extraVolumeMounts }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The volume the sidecar's state lives in. */}}
{{- define "magma-monitor.stateVolume" -}}
- name: magma-monitor-state
  emptyDir:
    sizeLimit: {{ .Values.monitor.persistence.sizeLimit }}
{{- end -}}
