{{- define "cloudvpn-injector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "cloudvpn-injector" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-cloudvpn-injector" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cloudvpn-injector.labels" -}}
app.kubernetes.io/name: cloudvpn-injector
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cloudvpn-injector.selector" -}}
app.kubernetes.io/name: cloudvpn-injector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cloudvpn-injector.tlsSecret" -}}
{{- default (printf "%s-tls" (include "cloudvpn-injector.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/*
The serving certificate: the existing Secret's when there is one (kept across upgrades), else a new CA and certificate
for the Service's DNS names. Returns a dict with ca, crt, key (PEM).
*/}}
{{- define "cloudvpn-injector.certificate" -}}
{{- $name := include "cloudvpn-injector.fullname" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-tls" $name) -}}
{{- if and $existing $existing.data (index $existing.data "ca.crt") -}}
{{- dict "ca" (index $existing.data "ca.crt" | b64dec) "crt" (index $existing.data "tls.crt" | b64dec) "key" (index $existing.data "tls.key" | b64dec) | toJson -}}
{{- else -}}
{{- $ca := genCA (printf "%s-ca" $name) (int .Values.tls.validityDays) -}}
{{- $dns := list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $name .Release.Namespace) nil $dns (int .Values.tls.validityDays) $ca -}}
{{- dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key | toJson -}}
{{- end -}}
{{- end -}}
