{{- define "otafleet.fullname" -}}
{{- printf "%s-otafleet" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "otafleet.labels" -}}
app.kubernetes.io/name: otafleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "otafleet.selector" -}}
app.kubernetes.io/name: otafleet
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{- define "otafleet.downloadLabels" -}}
{{ include "otafleet.labels" . }}
app.kubernetes.io/component: download
{{- end -}}

{{- define "otafleet.downloadSelector" -}}
app.kubernetes.io/name: otafleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: download
{{- end -}}
