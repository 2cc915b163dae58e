{{/* The gateway's chain, wallet and axon settings (GATEWAY_*), and the worker groups it dials. */}}
{{- define "vidaio-mesh.gatewayEnv" -}}
{{- $g := .Values.components.gateway }}
{{- $axon := $g.axon }}
- name: GATEWAY_NETWORK
  value: {{ $g.network | quote }}
- name: GATEWAY_NETUID
  value: {{ $g.netuid | quote }}
{{- with $g.chainEndpoint }}
- name: GATEWAY_CHAIN_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: GATEWAY_WALLET_PATH
  value: /home/mesh/.bittensor/wallets
- name: GATEWAY_WALLET_NAME
  value: {{ $g.wallet.name | quote }}
- name: GATEWAY_WALLET_HOTKEY
  value: {{ $g.wallet.hotkey | quote }}
- name: GATEWAY_AXON_PORT
  value: {{ $axon.port | quote }}
{{- with $axon.externalIP }}
- name: GATEWAY_EXTERNAL_IP
  value: {{ . | quote }}
{{- end }}
- name: GATEWAY_EXTERNAL_PORT
  value: {{ ternary $axon.nodePort $axon.port (eq $axon.expose "nodePort") | quote }}
- name: GATEWAY_WARRANT_TASK
  value: {{ $g.warrantTask | quote }}
- name: GATEWAY_MIN_STAKE
  value: {{ $g.minStake | quote }}
{{- $warranted := ternary "upscaler" "compressor" (eq $g.warrantTask "UPSCALING") }}
{{- if not (index .Values.components $warranted).enabled }}
{{- fail (printf "components.gateway.warrantTask %s needs components.%s.enabled" $g.warrantTask $warranted) }}
{{- end }}
{{- range $worker := list "upscaler" "compressor" }}
{{- if (index $.Values.components $worker).enabled }}
- name: {{ printf "GATEWAY_%s_ADDRS" (upper $worker) }}
  value: {{ include "vidaio-mesh.workerTarget" (dict "root" $ "name" $worker) | quote }}
{{- end }}
{{- end }}
{{- end }}
