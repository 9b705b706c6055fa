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
{{- /* The grid submitter (gridSubmitter.enabled): names, the schedd's identity. */ -}}
{{- define "glidein.submitter.name" -}}{{ printf "%s-grid-submitter" (include "glidein.fullname" .) | trunc 52 | trimSuffix "-" }}{{- end -}}
{{- define "glidein.submitter.labels" -}}
app.kubernetes.io/name: glidein-grid-submitter
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: grid-submitter
app.kubernetes.io/part-of: {{ include "glidein.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "glidein.submitter.selector" -}}
app.kubernetes.io/name: glidein-grid-submitter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "glidein.submitter.image" -}}
{{- $image := .Values.gridSubmitter.image -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
{{- define "glidein.submitter.collector" -}}{{ include "glidein.submitter.name" . }}.{{ .Release.Namespace }}.svc:9618{{- end -}}
{{- define "glidein.submitter.schedd" -}}
{{- $name := .Values.gridSubmitter.scheddName -}}
{{- if contains "@" $name -}}{{ $name }}{{- else -}}{{ $name }}@{{ include "glidein.submitter.name" . }}.{{ .Release.Namespace }}.svc{{- end -}}
{{- end -}}
{{- define "glidein.submitter.trustDomain" -}}{{ .Values.gridSubmitter.trustDomain | default (printf "%s.%s.svc" (include "glidein.submitter.name" .) .Release.Namespace) }}{{- end -}}
{{- define "glidein.submitter.keySecret" -}}{{ .Values.gridSubmitter.signingKeySecret | default (printf "%s-grid-submitter-key" (include "glidein.fullname" .)) }}{{- end -}}
{{- define "glidein.gridCredentialsSecret" -}}{{ include "glidein.fullname" . }}-grid-credentials{{- end -}}
{{- /* What a CloudEntry's spec.grid.submitter says to reach the chart's submitter (JSON). */ -}}
{{- define "glidein.submitter.ref" -}}
{{- dict "collector" (include "glidein.submitter.collector" .) "schedd" (include "glidein.submitter.schedd" .) "trustDomain" (include "glidein.submitter.trustDomain" .) "user" .Values.gridSubmitter.operatorUser "tokenSecretRef" (dict "name" (include "glidein.submitter.keySecret" .) "key" "signingKey") | toJson -}}
{{- end -}}
{{- /* The node's network (hostNetwork), for the operator's pods and the teardown hook's. */ -}}
{{- define "glidein.hostNetwork" -}}
{{- if .Values.hostNetwork -}}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end -}}
{{- end -}}
{{- /* The teardown hook (uninstall.teardown): its own name, so no selector of the operator's picks its pod. */ -}}
{{- define "glidein.teardown.selector" -}}
app.kubernetes.io/name: glidein-operator-teardown
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: teardown
{{- end -}}
{{- define "glidein.teardown.labels" -}}
{{ include "glidein.teardown.selector" . }}
app.kubernetes.io/part-of: {{ include "glidein.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
