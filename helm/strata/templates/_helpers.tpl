{{/* Names ----------------------------------------------------------------------------------- */}}
{{- define "strata.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strata.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "strata.component" (dict "root" $ "component" "broker") -> <fullname>-broker */}}
{{- define "strata.component" -}}
{{- printf "%s-%s" (include "strata.fullname" .root) .component -}}
{{- end -}}

{{- define "strata.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "strata.selectorLabels" . }}
{{- end -}}

{{- define "strata.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strata.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images ---------------------------------------------------------------------------------- */}}
{{- define "strata.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "strata.etcdImage" -}}
{{- if .Values.etcd.image.digest -}}
{{- printf "%s@%s" .Values.etcd.image.repository .Values.etcd.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.etcd.image.repository .Values.etcd.image.tag -}}
{{- end -}}
{{- end -}}

{{/* DNS ------------------------------------------------------------------------------------- */}}
{{- define "strata.svcSuffix" -}}
{{- printf "%s.svc.%s" .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* etcd://host:port,... for the strata roles */}}
{{- define "strata.metadataUrl" -}}
{{- if .Values.etcd.enabled -}}
{{- $root := . -}}
{{- $hs := include "strata.component" (dict "root" . "component" "etcd-headless") -}}
{{- $sts := include "strata.component" (dict "root" . "component" "etcd") -}}
{{- $eps := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $eps = append $eps (printf "%s-%d.%s.%s:%d" $sts $i $hs (include "strata.svcSuffix" $root) (int $root.Values.etcd.clientPort)) -}}
{{- end -}}
{{- printf "etcd://%s" (join "," $eps) -}}
{{- else -}}
{{- printf "etcd://%s" (join "," .Values.etcd.external.endpoints) -}}
{{- end -}}
{{- end -}}

{{- define "strata.brokerServiceHost" -}}
{{- printf "%s.%s" (include "strata.component" (dict "root" . "component" "broker")) (include "strata.svcSuffix" .) -}}
{{- end -}}

{{/* Quorum: explicit values, or derived from the bookie count (0 = derive) ------------------ */}}
{{- define "strata.quorum" -}}
{{- $bookies := int .Values.bookie.replicas -}}
{{- $e := int .Values.quorum.ensembleSize -}}
{{- if eq $e 0 }}{{ $e = min 3 $bookies }}{{ end -}}
{{- $w := int .Values.quorum.writeQuorum -}}
{{- if eq $w 0 }}{{ $w = min 2 $e }}{{ end -}}
{{- $a := int .Values.quorum.ackQuorum -}}
{{- if eq $a 0 }}{{ $a = min 2 $w }}{{ end -}}
{{- if gt $e $bookies -}}
{{- fail (printf "quorum.ensembleSize (%d) exceeds bookie.replicas (%d): every new ledger needs that many bookies; lower quorum.ensembleSize or add bookies (0 derives it from bookie.replicas)" $e $bookies) -}}
{{- end -}}
{{- if gt $w $e -}}
{{- fail (printf "quorum.writeQuorum (%d) exceeds quorum.ensembleSize (%d)" $w $e) -}}
{{- end -}}
{{- if gt $a $w -}}
{{- fail (printf "quorum.ackQuorum (%d) exceeds quorum.writeQuorum (%d)" $a $w) -}}
{{- end -}}
{{- if lt $a 1 -}}
{{- fail "quorum.ackQuorum must be at least 1" -}}
{{- end -}}
{{- dict "ensemble" $e "write" $w "ack" $a | toJson -}}
{{- end -}}

{{/* Render-time checks of values that depend on each other (called from every workload) ------ */}}
{{- define "strata.validate" -}}
{{- $_ := include "strata.quorum" . -}}
{{- if and (not .Values.etcd.enabled) (empty .Values.etcd.external.endpoints) -}}
{{- fail "etcd.enabled=false needs etcd.external.endpoints (host:port of the external etcd members)" -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- if and (empty .Values.auth.secretKey.secretName) (empty .Values.auth.publicKey.secretName) -}}
{{- fail "auth.enabled=true needs auth.secretKey.secretName (HS256) or auth.publicKey.secretName (RS256/ES256): the Secret holding the token key" -}}
{{- end -}}
{{- if and .Values.auth.secretKey.secretName .Values.auth.publicKey.secretName -}}
{{- fail "auth: give auth.secretKey.secretName or auth.publicKey.secretName, not both" -}}
{{- end -}}
{{- if empty .Values.auth.clientToken.secretName -}}
{{- fail "auth.enabled=true needs auth.clientToken.secretName: the Secret holding a superuser token for the helm test Pod" -}}
{{- end -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- if and (empty .Values.tls.secretName) (not .Values.tls.certManager.enabled) -}}
{{- fail "tls.enabled=true needs tls.secretName (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" -}}
{{- end -}}
{{- if ne .Values.broker.kind "StatefulSet" -}}
{{- fail "tls.enabled=true needs broker.kind=StatefulSet: TLS clients check the host name of the broker a lookup sends them to, and only StatefulSet brokers advertise a DNS name (a Deployment's advertise their pod IP)" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (empty .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.enabled=true needs tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "strata.tlsSecretName" -}}
{{- default (include "strata.component" (dict "root" . "component" "tls")) .Values.tls.secretName -}}
{{- end -}}

{{/* Security context of every container ------------------------------------------------------ */}}
{{- define "strata.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "strata.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Downward API: the pod's name, namespace and IP */}}
{{- define "strata.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end -}}

{{/* Security flags of broker-side containers (keys and TLS from Secrets) */}}
{{- define "strata.securityEnv" -}}
{{- if .Values.auth.enabled }}
{{- if .Values.auth.secretKey.secretName }}
- name: STRATA_AUTH_TOKEN_SECRET_KEY_FILE
  value: /etc/strata/token-key/{{ .Values.auth.secretKey.key }}
{{- else }}
- name: STRATA_AUTH_TOKEN_PUBLIC_KEY_FILE
  value: /etc/strata/token-key/{{ .Values.auth.publicKey.key }}
{{- end }}
- name: STRATA_SUPERUSER_ROLES
  value: {{ join "," .Values.auth.superuserRoles | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: STRATA_TLS_CERT_FILE
  value: /etc/strata/tls/tls.crt
- name: STRATA_TLS_KEY_FILE
  value: /etc/strata/tls/tls.key
{{- end }}
{{- end -}}

{{- define "strata.securityVolumeMounts" -}}
{{- if .Values.auth.enabled }}
- name: token-key
  mountPath: /etc/strata/token-key
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/strata/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "strata.securityVolumes" -}}
{{- if .Values.auth.enabled }}
- name: token-key
  secret:
    secretName: {{ default .Values.auth.publicKey.secretName .Values.auth.secretKey.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "strata.tlsSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* The `strata init-cluster` container (hook Job and broker init container) */}}
{{- define "strata.initClusterContainer" -}}
- name: init-cluster
  image: {{ include "strata.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["/usr/local/bin/strata"]
  args:
    - init-cluster
    - --cluster={{ .Values.clusterName }}
    - --web-service-url=http://{{ include "strata.brokerServiceHost" . }}:{{ .Values.broker.httpPort }}
    - --broker-service-url=pulsar://{{ include "strata.brokerServiceHost" . }}:{{ .Values.broker.pulsarPort }}
    - --wait-timeout={{ .Values.initJob.waitTimeout }}
  env:
    - name: STRATA_METADATA
      value: {{ include "strata.metadataUrl" . | quote }}
  resources:
    {{- toYaml .Values.initJob.resources | nindent 4 }}
  securityContext:
    {{- include "strata.containerSecurityContext" . | nindent 4 }}
{{- end -}}
