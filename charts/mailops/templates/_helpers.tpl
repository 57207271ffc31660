{{/*
The chart name, overridable with nameOverride.
*/}}
{{- define "mailops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, or release name + chart name
(the release name alone when it already contains the chart name).
*/}}
{{- define "mailops.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "mailops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels every object carries.
*/}}
{{- define "mailops.labels" -}}
helm.sh/chart: {{ include "mailops.chart" . }}
{{ include "mailops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: mailops
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels that select the operator's pods; never change them (Deployment selectors are
immutable).
*/}}
{{- define "mailops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "mailops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image reference.
*/}}
{{- define "mailops.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The webhook Service, its certificate Secret, and the ValidatingWebhookConfiguration.
*/}}
{{- define "mailops.webhookService" -}}
{{- printf "%s-webhook" (include "mailops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailops.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "mailops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailops.webhookConfiguration" -}}
{{- include "mailops.fullname" . }}
{{- end }}

{{/*
CEL: the binding under admission authenticates through an ExchangeServiceAccount.
*/}}
{{- define "mailops.usesServiceAccount" -}}
has(object.spec) && has(object.spec.authentication) && has(object.spec.authentication.serviceAccountRef)
{{- end }}
