{{/*
Helm's own labels, when helmLabels is on; nothing otherwise, so that the default render is the
kustomize base deploy/ exactly. Use: {{- include "rollguard.helmLabels" . | nindent 4 }}
*/}}
{{- define "rollguard.helmLabels" -}}
{{- if .Values.helmLabels -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount as the API server names the user it authenticates. */}}
{{- define "rollguard.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:rollguard
{{- end -}}
