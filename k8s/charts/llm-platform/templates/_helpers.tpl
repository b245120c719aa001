{{- define "llmp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmp.fullname" -}}
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

{{- define "llmp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "llmp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "llmp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A Kubernetes-safe name for a model (catalogue names may hold "/", ":", "." and capitals). */}}
{{- define "llmp.modelSlug" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trunc 40 | trimAll "-" -}}
{{- end -}}

{{- define "llmp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llmp.apiImage" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "llmp.workerImage" -}}
{{- printf "%s:%s" .Values.workerImage.repository (.Values.workerImage.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "llmp.secretName" -}}
{{- default (printf "%s-secrets" (include "llmp.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The platform's settings: the ConfigMap, and each credential from the Secret by reference. */}}
{{- define "llmp.env" -}}
{{- $secret := include "llmp.secretName" . -}}
{{- range $field := list "databaseUrl" "redisUrl" "jwtSecret" "workerSecret" }}
- name: {{ index $.Values.secrets.keys $field }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index $.Values.secrets.keys $field }}
{{- end }}
- name: {{ .Values.secrets.keys.upstreamApiKeys }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.upstreamApiKeys }}
      optional: true
{{- end -}}

{{- define "llmp.envFrom" -}}
- configMapRef:
    name: {{ include "llmp.fullname" . }}-config
{{- end -}}

{{/* The settings that are credentials: never in the ConfigMap. */}}
{{- define "llmp.secretSettings" -}}
{{- list "LLMP_JWT_SECRET" "LLMP_WORKER_SECRET" "LLMP_DATABASE_URL" "LLMP_REDIS_URL" "LLMP_UPSTREAM_API_KEYS" | toJson -}}
{{- end -}}
