"""The KubeRay overlay (k8s/overlays/ray-scan), validated offline like the rest of k8s/.

kubernetes-validate has no schema for KubeRay's custom resources, so the RayJob is checked in parts:
its pod templates (head, workers, submitter) validate strictly as core ``PodTemplate`` objects; its own
fields against the subset of the KubeRay v1 RayJob schema that the overlay uses (unknown fields
rejected); and its entrypoint is parsed by photodedup's own CLI, so every flag in it is a real one.
"""

from __future__ import annotations

import json
import shlex

import pytest

from photodedup import config
from tests.test_deploy import K8S_VERSION, ROOT, _build, _get, _quantity, kubectl  # noqa: F401 - fixture

K8S_RAY = ROOT / "k8s" / "overlays" / "ray-scan"

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_TEMPLATE = {"type": "object"}  # validated separately, as a core PodTemplate
#: The RayJob fields the overlay uses, as KubeRay's v1 CRD (ray.io_rayjobs.yaml) types them.
RAYJOB_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["entrypoint", "rayClusterSpec"], "additionalProperties": False,
                 "properties": {
                     "entrypoint": {"type": "string"},
                     "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                     "backoffLimit": {"type": "integer", "minimum": 0},
                     "shutdownAfterJobFinishes": {"type": "boolean"},
                     "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                     "submitterPodTemplate": _TEMPLATE,
                     "rayClusterSpec": {
                         "type": "object", "required": ["headGroupSpec"], "additionalProperties": False,
                         "properties": {
                             "rayVersion": {"type": "string"},
                             "headGroupSpec": {
                                 "type": "object", "required": ["template"], "additionalProperties": False,
                                 "properties": {"rayStartParams": _STR_MAP, "template": _TEMPLATE}},
                             "workerGroupSpecs": {"type": "array", "items": {
                                 "type": "object", "required": ["groupName", "template"], "additionalProperties": False,
                                 "properties": {"groupName": {"type": "string"}, "replicas": {"type": "integer"},
                                                "minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
                                                "rayStartParams": _STR_MAP, "template": _TEMPLATE}}}}}}},
    },
}


@pytest.fixture(scope="module")
def ray_overlay(kubectl) -> list[dict]:  # noqa: F811 - the kubectl fixture from test_deploy
    return _build(kubectl, K8S_RAY)


def _rayjob(objects: list[dict]) -> dict:
    return _get(objects, "RayJob", "photodedup-scan")


def _pod_templates(job: dict) -> dict[str, dict]:
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    out = {"head": cluster["headGroupSpec"]["template"], "submitter": spec["submitterPodTemplate"]}
    out.update({g["groupName"]: g["template"] for g in cluster["workerGroupSpecs"]})
    return out


def test_the_overlay_adds_a_rayjob_and_a_catalog_volume_to_the_triton_overlay(ray_overlay):
    keys = {(o["kind"], o["metadata"]["name"]) for o in ray_overlay}
    assert {("Deployment", "photodedup-triton"), ("Service", "photodedup-triton"), ("RayJob", "photodedup-scan"),
            ("PersistentVolumeClaim", "photodedup-catalog")} <= keys
    assert all(o["metadata"].get("namespace") == "photodedup" for o in ray_overlay if o["kind"] != "Namespace")


def test_core_objects_and_ray_pod_templates_validate_against_the_kubernetes_schema(ray_overlay):
    import kubernetes_validate

    objects = [o for o in ray_overlay if o["kind"] != "RayJob"]
    for name, template in _pod_templates(_rayjob(ray_overlay)).items():
        objects.append({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"ray-{name}"},
                        "template": template})
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}")


def test_rayjob_fields_match_the_kuberay_schema_and_a_typo_is_caught(ray_overlay):
    import jsonschema

    job = _rayjob(ray_overlay)
    jsonschema.validate(job, RAYJOB_SCHEMA)
    broken = json.loads(json.dumps(job))
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RAYJOB_SCHEMA)


def test_the_entrypoint_is_valid_photodedup_commands_against_the_triton_service(ray_overlay):
    import typer

    from photodedup.cli import app

    job = _rayjob(ray_overlay)
    command = typer.main.get_command(app)
    steps = [shlex.split(part) for part in job["spec"]["entrypoint"].split("&&")]
    assert [step[:2] for step in steps] == [["photodedup", "scan"], ["photodedup", "export-parquet"]]
    parsed = {}
    for step in steps:
        ctx = command.make_context("photodedup", step[1:], resilient_parsing=False)
        sub = command.get_command(ctx, step[1])
        parsed[step[1]] = sub.make_context(step[1], step[2:]).params
    scan = parsed["scan"]
    assert scan["engine"] == "ray" and scan["ray_address"] == "auto" and scan["embed_with"] == "triton-grpc"
    host, port = scan["url"].split(":")
    service = _get(ray_overlay, "Service", host)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"] == int(port) == config.TRITON_GRPC_PORT
    assert str(parsed["export-parquet"]["catalog"]) == str(scan["catalog"])


def test_photos_are_mounted_alike_everywhere_and_the_catalog_only_on_the_driver(ray_overlay):
    job = _rayjob(ray_overlay)
    templates = _pod_templates(job)
    scan_args = shlex.split(job["spec"]["entrypoint"].split("&&")[0])
    photos, catalog = scan_args[2], scan_args[scan_args.index("--catalog") + 1]
    for name, template in templates.items():
        if name == "submitter":
            continue
        mounts = {m["mountPath"]: m for m in template["spec"]["containers"][0]["volumeMounts"]}
        assert mounts[photos]["readOnly"] is True, name  # workers read the files at the driver's paths
        has_catalog = any(catalog.startswith(path + "/") for path in mounts)
        assert has_catalog == (name == "head"), name  # one writer


def test_quota_fits_service_triton_and_the_ray_cluster_at_their_largest(ray_overlay):
    quota = {k: _quantity(k, v) for k, v in _get(ray_overlay, "ResourceQuota", "photodedup-quota")["spec"]["hard"]
             .items()}
    pods: list[tuple[int, dict]] = []
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
            for o in ray_overlay if o["kind"] == "HorizontalPodAutoscaler"}
    for d in (o for o in ray_overlay if o["kind"] == "Deployment"):
        surge = d["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        count = hpas.get(d["metadata"]["name"], d["spec"]["replicas"]) + surge
        pods.append((count, d["spec"]["template"]["spec"]["containers"][0]["resources"]))
    job = _rayjob(ray_overlay)
    cluster = job["spec"]["rayClusterSpec"]
    pods.append((1, cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]))
    pods.append((1, job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["resources"]))
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        pods.append((group["maxReplicas"], group["template"]["spec"]["containers"][0]["resources"]))
    needed = {"pods": sum(n for n, _ in pods)}
    for count, resources in pods:
        for section in ("requests", "limits"):
            for resource, value in resources[section].items():
                key = f"{section}.{resource}"
                needed[key] = needed.get(key, 0) + count * _quantity(key, value)
    for key, amount in needed.items():
        if not key.startswith("limits.nvidia.com"):
            assert amount <= quota[key], f"{key}: {amount} needed, quota {quota[key]}"


def test_ray_pods_meet_the_restricted_pod_security_standard(ray_overlay):
    for name, template in _pod_templates(_rayjob(ray_overlay)).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
