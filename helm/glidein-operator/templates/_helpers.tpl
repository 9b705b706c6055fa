{{- define "glidein.name" -}}glidein-operator{{- end -}}
{{- define "glidein.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}-glidein-operator{{- end -}}
{{- define "glidein.labels" -}}
app.kubernetes.io/name: {{ include "glidein.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "glidein.selector" -}}
app.kubernetes.io/name: {{ include "glidein.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "glidein.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
