{{/* Names and labels shared by every object of one region's release. */}}
{{- define "homeport.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "homeport.labels" -}}
app.kubernetes.io/name: homeport
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: {{ .root.Values.deployment }}
app.kubernetes.io/component: {{ .component }}
homeport.io/region: {{ .root.Values.region }}
{{- end -}}

{{- define "homeport.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Pod-level hardening: no root, no token, default seccomp. */}}
{{- define "homeport.podSecurity" -}}
automountServiceAccountToken: false
serviceAccountName: {{ .Release.Name }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "homeport.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* Liveness and readiness on the admin server every homeport process runs (core/admin.py). */}}
{{- define "homeport.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: admin}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: admin}
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* Environment of every homeport process: admin server on the pod IP, the record
store's password (asyncpg reads PGPASSWORD), and the replica counts WAIT counts. */}}
{{- define "homeport.env" -}}
env:
  - name: HOMEPORT_ADMIN_HOST
    value: "0.0.0.0"
  - name: HOMEPORT_REGION_REPLICAS
    value: {{ .Values.workers.regionReplicas | quote }}
  - name: HOMEPORT_GLOBAL_REPLICAS
    value: {{ .Values.workers.globalReplicas | quote }}
  - name: PGPASSWORD
    valueFrom:
      secretKeyRef: {name: {{ .Values.postgres.passwordSecret }}, key: password}
{{- end -}}

{{- define "homeport.topologyVolume" -}}
- name: topology
  configMap:
    name: {{ .Release.Name }}-topology
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "homeport.topologyMount" -}}
volumeMounts:
  - {name: topology, mountPath: /etc/homeport, readOnly: true}
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "homeport.image" -}}
image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- end -}}
