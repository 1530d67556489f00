{{/*
The broker Pod template, shared by the Deployment and the StatefulSet (broker.kind).
Called with the root context; the advertised address depends on the kind: the pod IP for a
Deployment, the pod's stable DNS name for a StatefulSet (needed by TLS clients, which check the
host name of the broker a lookup sends them to).
*/}}
{{- define "strata.brokerPodTemplate" -}}
{{- $c := dict "root" . "component" "broker" }}
{{- $name := include "strata.component" $c }}
{{- $advertised := "$(POD_IP)" }}
{{- if eq .Values.broker.kind "StatefulSet" }}
{{- $advertised = printf "$(POD_NAME).%s.%s" (include "strata.component" (dict "root" . "component" "broker-headless")) (include "strata.svcSuffix" .) }}
{{- end }}
metadata:
  labels:
    {{- include "strata.selectorLabels" $c | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/broker-configmap.yaml") . | sha256sum }}
spec:
  serviceAccountName: {{ $name }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- include "strata.podSecurityContext" . | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.broker.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: {{ .Values.broker.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "strata.selectorLabels" $c | nindent 10 }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "strata.selectorLabels" $c | nindent 10 }}
  {{- end }}
  {{- with .Values.broker.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.broker.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.broker.terminationGracePeriodSeconds }}
  # The same idempotent step as the init Job: no broker serves before the cluster exists, and
  # `helm install --wait` cannot deadlock on a post-install hook.
  initContainers:
    {{- include "strata.initClusterContainer" . | nindent 4 }}
  containers:
    - name: broker
      image: {{ include "strata.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/usr/local/bin/strata"]
      args:
        - broker
        - --config=/etc/strata/config/broker.toml
        - --bind-address=$(POD_IP)
        - --advertised-address={{ $advertised }}
        {{- range .Values.broker.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- include "strata.podEnv" . | nindent 8 }}
        - name: STRATA_LOG
          value: info
        {{- with (include "strata.securityEnv" . | trim) }}{{ . | nindent 8 }}{{- end }}
        {{- with .Values.broker.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.broker.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: pulsar
          containerPort: {{ .Values.broker.pulsarPort }}
        - name: http
          containerPort: {{ .Values.broker.httpPort }}
        {{- if .Values.tls.enabled }}
        - name: pulsarssl
          containerPort: {{ .Values.broker.pulsarTlsPort }}
        - name: https
          containerPort: {{ .Values.broker.httpsPort }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 2
        failureThreshold: 150
      readinessProbe:
        httpGet:
          path: /ready
          port: http
        periodSeconds: 5
        failureThreshold: 2
      livenessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 10
        failureThreshold: 6
      resources:
        {{- toYaml .Values.broker.resources | nindent 8 }}
      securityContext:
        {{- include "strata.containerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/strata/config
          readOnly: true
        {{- with (include "strata.securityVolumeMounts" . | trim) }}{{ . | nindent 8 }}{{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $name }}
    {{- with (include "strata.securityVolumes" . | trim) }}{{ . | nindent 4 }}{{- end }}
{{- end -}}
