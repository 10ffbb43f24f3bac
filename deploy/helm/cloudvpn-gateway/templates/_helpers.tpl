{{/* Name of every object: the release name unless overridden (DNS label, at most 50 characters so suffixes fit). */}}
{{- define "cloudvpn-gateway.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "cloudvpn-gateway.selectorLabels" -}}
app.kubernetes.io/name: cloudvpn-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cloudvpn-gateway.labels" -}}
{{ include "cloudvpn-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector of the gateway pods. */}}
{{- define "cloudvpn-gateway.gatewaySelector" -}}
{{ include "cloudvpn-gateway.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "cloudvpn-gateway.rotationSelector" -}}
{{ include "cloudvpn-gateway.selectorLabels" . }}
app.kubernetes.io/component: key-rotation
{{- end -}}

{{- define "cloudvpn-gateway.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* Secret that holds the gateway's keys (existingSecret and externalSecret sources). */}}
{{- define "cloudvpn-gateway.keySecretName" -}}
{{- if and (eq .Values.keys.source "existingSecret") .Values.keys.existingSecret.name -}}
{{ .Values.keys.existingSecret.name }}
{{- else -}}
{{ include "cloudvpn-gateway.fullname" . }}-keys
{{- end -}}
{{- end -}}

{{/* The key Secret in the layout of the Kubernetes Secret key store (CloudVpn.Kubernetes KubernetesSecretKeyStore),
     so the store reads what the rotation job writes: one Secret per key id named {namePrefix}{key id} (the chart:
     no prefix, the Secret's name is the key id), label cloudvpn.io/key-store=<store label> (the chart: the
     fullname) and annotation cloudvpn.io/key-id=<key id> (what makes the Secret the store's own), type
     cloudvpn.io/key, data keys v1, v2, ... (one per version). */}}
{{- define "cloudvpn-gateway.keyStoreLabel" -}}
{{ include "cloudvpn-gateway.fullname" . }}
{{- end -}}

{{- define "cloudvpn-gateway.keySecretLabels" -}}
{{ include "cloudvpn-gateway.labels" . }}
app.kubernetes.io/component: gateway
cloudvpn.io/key-store: {{ include "cloudvpn-gateway.keyStoreLabel" . }}
{{- end -}}

{{/* API versions: the current one where the cluster serves the kind (a live cluster lists group/version/Kind;
     `helm template` lists group/versions only, so the Kubernetes version decides there), else what 1.20 serves. */}}
{{- define "cloudvpn-gateway.hpaApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version)) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{- define "cloudvpn-gateway.cronJobApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "batch/v1/CronJob") (and (.Capabilities.APIVersions.Has "batch/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version)) -}}
batch/v1
{{- else -}}
batch/v1beta1
{{- end -}}
{{- end -}}

{{- define "cloudvpn-gateway.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version)) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; each failure names the value. */}}
{{- define "cloudvpn-gateway.validate" -}}
{{- if and (eq .Values.driver "wireguard") (ne .Values.server.protocol "UDP") -}}
{{- fail (printf "server.protocol: WireGuard runs over UDP only, got %q (driver: wireguard)" .Values.server.protocol) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%v) is greater than autoscaling.maxReplicas (%v)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if .Values.podDisruptionBudget.enabled -}}
{{- $floor := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled | int -}}
{{- if ge (int .Values.podDisruptionBudget.minAvailable) $floor -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be below the replica count (%v): otherwise no node running the gateway can be drained" .Values.podDisruptionBudget.minAvailable $floor) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.keys.source "vault" -}}
{{- if not .Values.keys.vault.address -}}{{- fail "keys.vault.address is required when keys.source is vault" -}}{{- end -}}
{{- if not .Values.keys.vault.role -}}{{- fail "keys.vault.role is required when keys.source is vault" -}}{{- end -}}
{{- if not .Values.keys.vault.path -}}{{- fail "keys.vault.path is required when keys.source is vault" -}}{{- end -}}
{{- end -}}
{{- if eq .Values.keys.source "externalSecret" -}}
{{- if not .Values.keys.externalSecret.secretStoreRef.name -}}{{- fail "keys.externalSecret.secretStoreRef.name is required when keys.source is externalSecret" -}}{{- end -}}
{{- if not .Values.keys.externalSecret.remoteKey -}}{{- fail "keys.externalSecret.remoteKey is required when keys.source is externalSecret" -}}{{- end -}}
{{- if not (.Capabilities.APIVersions.Has "external-secrets.io/v1beta1") -}}
{{- fail "keys.source is externalSecret but the cluster does not serve external-secrets.io/v1beta1 (install External Secrets Operator first)" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.service.type "ClusterIP") (not (eq .Values.service.nodePort nil)) -}}
{{- fail "service.nodePort is set but service.type is ClusterIP" -}}
{{- end -}}
{{- $hostPort := splitList ":" .Values.server.publicEndpoint -}}
{{- $port := last $hostPort | int -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "server.publicEndpoint %q: the port must be 1..65535" .Values.server.publicEndpoint) -}}
{{- end -}}
{{- end -}}

{{/* The gateway's configuration (no key material: keys are read from the key source at start). */}}
{{- define "cloudvpn-gateway.config" -}}
driver: {{ .Values.driver }}
publicEndpoint: {{ .Values.server.publicEndpoint | quote }}
listenPort: {{ .Values.server.listenPort }}
protocol: {{ .Values.server.protocol }}
addresses: {{ toJson .Values.server.addresses }}
mtu: {{ .Values.server.mtu }}
routes: {{ toJson .Values.server.routes }}
http: {{ printf "0.0.0.0:%v" .Values.httpPort | quote }}
keys:
  source: {{ .Values.keys.source }}
  {{- if eq .Values.keys.source "vault" }}
  vault:
    address: {{ .Values.keys.vault.address | quote }}
    role: {{ .Values.keys.vault.role | quote }}
    path: {{ .Values.keys.vault.path | quote }}
    authMountPath: {{ .Values.keys.vault.authMountPath | quote }}
  {{- else }}
  secretName: {{ include "cloudvpn-gateway.keySecretName" . | quote }}
  kubernetesStore:
    namePrefix: ""
    storeLabel: {{ include "cloudvpn-gateway.keyStoreLabel" . | quote }}
    keyId: {{ include "cloudvpn-gateway.keySecretName" . | quote }}
  {{- end }}
  rotationOverlap: {{ .Values.keys.rotation.overlap | quote }}
accessPolicy:
  clientRanges: {{ toJson .Values.accessPolicy.clientRanges }}
  destinations: {{ toJson .Values.accessPolicy.destinations }}
{{- end -}}

{{/* Rotation runs where the chart's job can write the key: a Kubernetes Secret or Vault (an ExternalSecret's
     store rotates on its own side). */}}
{{- define "cloudvpn-gateway.rotationEnabled" -}}
{{- if and .Values.keys.rotation.enabled (ne .Values.keys.source "externalSecret") -}}true{{- end -}}
{{- end -}}

{{/* Security context of every container: non-root, read-only root, no escalation, all capabilities dropped. */}}
{{- define "cloudvpn-gateway.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
  {{- if .netAdmin }}
  add: ["NET_ADMIN"]
  {{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}
