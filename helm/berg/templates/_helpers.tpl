{{/*
Names, labels, images and the pieces every Berg pod shares (security context, volumes, settings).
Components call these with a dict: (dict "root" $ "component" "ingestion" ...).
*/}}

{{- define "berg.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name: the release name, with the chart's name added unless it is already in it. */}}
{{- define "berg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>: the name of a component's objects. */}}
{{- define "berg.componentName" -}}
{{- printf "%s-%s" (include "berg.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "berg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berg.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "berg.labels" -}}
{{ include "berg.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: berg
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* An image reference: (dict "root" $ "image" .Values.x.image "name" "berg-x"). A digest wins over a tag. */}}
{{- define "berg.image" -}}
{{- $repository := .image.repository | default (printf "%s/%s" .root.Values.global.imageRegistry .name) -}}
{{- $tag := .image.tag | default .root.Values.global.imageTag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Pod Security Standards "restricted", pod level. */}}
{{- define "berg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security Standards "restricted", container level, with a read-only root filesystem. */}}
{{- define "berg.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling and pull secrets every Berg pod shares. */}}
{{- define "berg.podCommon" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with .Values.global.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.global.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The claim mounted at /var/lib/berg: storage.existingClaim, the chart's own, or none (empty). */}}
{{- define "berg.sharedClaimName" -}}
{{- if .Values.storage.existingClaim -}}
{{- .Values.storage.existingClaim -}}
{{- else if .Values.storage.persistentVolumeClaim.create -}}
{{- include "berg.componentName" (dict "root" . "component" "shared") -}}
{{- end -}}
{{- end -}}

{{/* Writable places under a read-only root: /tmp, and /var/lib/berg (state: landing zone, GX docs, controller). */}}
{{- define "berg.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 512Mi
- name: state
{{- with include "berg.sharedClaimName" . }}
  persistentVolumeClaim:
    claimName: {{ . }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.storage.emptyDirSizeLimit }}
{{- end }}
{{- end -}}

{{- define "berg.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/berg
{{- end -}}

{{- define "berg.featureStoreVolume" -}}
- name: feature-store
  configMap:
    name: {{ include "berg.componentName" (dict "root" . "component" "feature-store") }}
{{- end -}}

{{- define "berg.featureStoreMount" -}}
- name: feature-store
  mountPath: /etc/berg/feast
  readOnly: true
{{- end -}}

{{/* Feast's cluster profile reads these (files/feature_store.yaml); the addresses come from a Secret. */}}
{{/* The feature store's addresses; (dict "root" $ "registryKey" "registry-url"): the Secret key of the registry
login (the features service writes the registry, serving reads it). */}}
{{- define "berg.featureStoreEnv" -}}
- name: BERG_FEAST_REGISTRY_URL
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.featureStore.existingSecret }}
      key: {{ .registryKey }}
- name: BERG_FEAST_REDIS
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.featureStore.existingSecret }}
      key: redis
- name: BERG_FEAST_OFFLINE_ROOT
  value: {{ .root.Values.featureStore.offlineRoot | quote }}
{{- end -}}

{{/*
How one service signs in to Kafka (kafka.auth): (dict "root" $ "component" "ingestion" "prefix" "BERG_INGESTION_").
Its own user, and its password from its own Secret only. Nothing is set for mechanism `none` without
TLS: the settings' default, PLAINTEXT.
*/}}
{{- define "berg.kafkaAuthEnv" -}}
{{- $auth := .root.Values.kafka.auth -}}
{{- $sasl := eq $auth.mechanism "scram-sha-512" -}}
{{- if or $sasl $auth.tls }}
- name: {{ .prefix }}KAFKA__SECURITY_PROTOCOL
  value: {{ printf "%s%s" (ternary "SASL_" "" $sasl) (ternary "SSL" "PLAINTEXT" $auth.tls) | quote }}
{{- end }}
{{- if $sasl }}
{{- $user := index $auth.users .component }}
- name: {{ .prefix }}KAFKA__SASL_MECHANISM
  value: SCRAM-SHA-512
- name: {{ .prefix }}KAFKA__SASL_USERNAME
  value: {{ $user.username | quote }}
- name: {{ .prefix }}KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $user.existingSecret }}
      key: password
{{- end }}
{{- end -}}

{{/* Object storage: fsspec/s3fs and pyarrow read the standard AWS variables. */}}
{{- define "berg.objectStorageEnv" -}}
{{- with .Values.objectStorage.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStorage.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The Secret holding a component's object-storage credentials: its own, else the shared one, else none.
(dict "root" $ "component" "serving")
*/}}
{{- define "berg.objectStorageSecret" -}}
{{- $storage := .root.Values.objectStorage -}}
{{- default $storage.existingSecret (index $storage.componentSecrets .component) -}}
{{- end -}}

{{- define "berg.objectStorageEnvFrom" -}}
{{- with include "berg.objectStorageSecret" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/*
The settings every Berg service reads, as a map of BERG_<PREFIX>_* variables:
(dict "root" $ "prefix" "BERG_INGESTION_" "data" (dict ...) "settings" .Values.ingestion.settings).
The component's own data and then the user's `settings` override the shared ones.
BERG_USE_CASE (unprefixed: one name for every service) is the release's `useCase`.
*/}}
{{- define "berg.settingsData" -}}
{{- $root := .root -}}
{{- $shared := dict
  "ENVIRONMENT" $root.Values.global.environment
  "LOGGING__LEVEL" $root.Values.global.logLevel
  "LOGGING__JSON_FORMAT" "true"
  "KAFKA__BOOTSTRAP_SERVERS" $root.Values.kafka.bootstrapServers
  "WEB__HOST" "0.0.0.0"
  "WEB__PORT" "8080"
-}}
{{- $merged := merge (dict) .settings .data $shared -}}
{{- range $key, $value := $merged }}
{{ printf "%s%s" $.prefix $key }}: {{ $value | toString | quote }}
{{- end }}
BERG_USE_CASE: {{ $root.Values.useCase | quote }}
{{- include "berg.rolloutData" $root }}
{{- end -}}

{{/*
The release's rollout (BERG_ROLLOUT_*, unprefixed like BERG_USE_CASE: serving, monitoring and the controller
read the same values); a value left empty is not rendered, so the card's applies.
*/}}
{{- define "berg.rolloutData" -}}
{{- $names := dict
  "policy" "POLICY"
  "shadowShare" "SHADOW_SHARE"
  "shadowMinPredictions" "SHADOW_MIN_PREDICTIONS"
  "shadowMinLabelled" "SHADOW_MIN_LABELLED"
  "shadowMaxQualityDrop" "SHADOW_MAX_QUALITY_DROP"
  "watchWindowMinutes" "WATCH_WINDOW_MINUTES"
  "watchMaxPredictionPsi" "WATCH_MAX_PREDICTION_PSI"
  "watchMaxQualityDrop" "WATCH_MAX_QUALITY_DROP"
-}}
{{- range $key, $variable := $names }}
{{- $value := index $.Values.rollout $key }}
{{- if ne (toString $value) "" }}
BERG_ROLLOUT_{{ $variable }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A settings ConfigMap: (dict "root" $ "component" "ingestion" "prefix" ... "data" ... "settings" ...). */}}
{{- define "berg.settingsConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "berg.componentName" (dict "root" .root "component" (printf "%s-settings" .component)) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
data:
  {{- include "berg.settingsData" . | indent 2 }}
{{- end -}}

{{- define "berg.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/*
A ServiceAccount: (dict "root" $ "component" "ingestion"). No Berg pod calls the Kubernetes API (serving
follows the registry's alias, the controller talks to Kubeflow Pipelines over HTTP), so none gets a token.
*/}}
{{- define "berg.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "berg.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
  {{- with .root.Values.global.serviceAccountAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}

{{/*
A Berg service's Deployment (ingestion, validation, features, monitoring, controller):
(dict "root" $ "component" "ingestion" "values" .Values.ingestion "replicas" 2 "autoscaled" true
      "env" (list ...) "featureStore" false "objectStorage" false "kafkaPrefix" "BERG_INGESTION_"
      "extraVolumes" "<yaml>" "extraMounts" "<yaml>")
*/}}
{{- define "berg.deployment" -}}
{{- $root := .root -}}
{{- $settings := include "berg.componentName" (dict "root" $root "component" (printf "%s-settings" .component)) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "berg.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "berg.selectorLabels" . | nindent 6 }}
  {{- if .recreate }}
  strategy:
    type: Recreate
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "berg.labels" . | nindent 8 }}
      annotations:
        checksum/settings: {{ .checksum }}
        {{- with $root.Values.global.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "berg.componentName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        {{- include "berg.podSecurityContext" $root | nindent 8 }}
      {{- include "berg.podCommon" $root | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "berg.image" (dict "root" $root "image" .values.image "name" (printf "berg-%s" .component)) }}
          imagePullPolicy: {{ $root.Values.global.imagePullPolicy }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $settings }}
            {{- if .objectStorage }}
            {{- include "berg.objectStorageEnvFrom" . | nindent 12 }}
            {{- end }}
          {{- $env := "" }}
          {{- if .featureStore }}
          {{- $env = print $env (include "berg.featureStoreEnv" (dict "root" $root "registryKey" "registry-url")) "\n" }}
          {{- end }}
          {{- if .objectStorage }}
          {{- $env = print $env (include "berg.objectStorageEnv" $root) "\n" }}
          {{- end }}
          {{- with .kafkaPrefix }}
          {{- $env = print $env (include "berg.kafkaAuthEnv" (dict "root" $root "component" $.component "prefix" .)) "\n" }}
          {{- end }}
          {{- with .env }}
          {{- $env = print $env (toYaml .) }}
          {{- end }}
          {{- if trim $env }}
          env:
            {{- trim $env | nindent 12 }}
          {{- end }}
          {{- include "berg.probes" $root | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "berg.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "berg.volumeMounts" $root | nindent 12 }}
            {{- if .featureStore }}
            {{- include "berg.featureStoreMount" $root | nindent 12 }}
            {{- end }}
            {{- with .extraMounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "berg.volumes" $root | nindent 8 }}
        {{- if .featureStore }}
        {{- include "berg.featureStoreVolume" $root | nindent 8 }}
        {{- end }}
        {{- with .extraVolumes }}
        {{- . | nindent 8 }}
        {{- end }}
{{- end -}}

{{/* The ClusterIP Service of a Deployment: port 8080 named http (health, metrics, API). */}}
{{- define "berg.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "berg.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "berg.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
{{- end -}}

{{/* (dict "root" $ "component" "ingestion" "autoscaling" .Values.ingestion.autoscaling) */}}
{{- define "berg.hpa" -}}
{{- if lt (int .autoscaling.maxReplicas) (int .autoscaling.minReplicas) -}}
{{- fail (printf "%s.autoscaling.maxReplicas must be at least minReplicas" .component) -}}
{{- end -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "berg.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "berg.componentName" . }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      # A consumer group rebalances on every scale event; scale down slowly.
      stabilizationWindowSeconds: 300
{{- end -}}

{{/* (dict "root" $ "component" "ingestion" "maxUnavailable" 1 "selector" <yaml, optional>) */}}
{{- define "berg.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "berg.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "berg.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .maxUnavailable }}
  selector:
    matchLabels:
      {{- if .selector }}
      {{- .selector | nindent 6 }}
      {{- else }}
      {{- include "berg.selectorLabels" . | nindent 6 }}
      {{- end }}
{{- end -}}

{{/* A NetworkPolicy peer list from (dict "cidrs" [] "namespaceLabels" {} "podLabels" {}); empty when all are empty. */}}
{{- define "berg.peers" -}}
{{- range .cidrs }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- if or .namespaceLabels .podLabels }}
- {{- with .namespaceLabels }}
  namespaceSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
  podSelector:
    matchLabels:
      {{- toYaml (.podLabels | default dict) | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
An egress rule to an endpoint of networkPolicy.egress: (dict "root" $ "name" "kafka"). An endpoint with no CIDR and
no labels is any address on its ports: allowed outside production, refused in it.
*/}}
{{- define "berg.egressRule" -}}
{{- $endpoint := index .root.Values.networkPolicy.egress .name -}}
{{- $peers := include "berg.peers" $endpoint -}}
{{- if and (not $peers) (eq .root.Values.global.environment "production") -}}
{{- fail (printf "networkPolicy.egress.%s has no destination and global.environment is production: set its cidrs, namespaceLabels or podLabels (without one, the egress rule would allow any address on ports %v)" .name $endpoint.ports) -}}
{{- end -}}
- ports:
  {{- range $endpoint.ports }}
    - port: {{ . }}
      protocol: TCP
  {{- end }}
  {{- if $peers }}
  to:
    {{- $peers | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "berg.dnsEgressRule" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  to:
    {{- include "berg.peers" (dict "cidrs" list "namespaceLabels" .Values.networkPolicy.dns.namespaceLabels "podLabels" .Values.networkPolicy.dns.podLabels) | nindent 4 }}
{{- end -}}

{{/* The InferenceService's name, and where its predictor answers inside the cluster. */}}
{{- define "berg.inferenceServiceName" -}}
{{- include "berg.componentName" (dict "root" . "component" "serving") -}}
{{- end -}}

{{/*
The registry model served and watched: serving.modelName, or the use case's name (the model its pipeline
trains) when that is empty, so selecting the use case is one value.
*/}}
{{- define "berg.modelName" -}}
{{- .Values.serving.modelName | default .Values.useCase -}}
{{- end }}
