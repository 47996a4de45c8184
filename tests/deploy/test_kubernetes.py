"""The Kubernetes manifests of ``deploy/kubernetes``, validated offline against the API's schemas.

No Kubernetes runs here, so every document is checked against what an API server would
check it against: core and batch resources against the Kubernetes 1.37 JSON schemas that
kubernetes-validate bundles (strict: unknown fields are errors), and the Dask operator's
``DaskCluster`` against the CRD that dask-kubernetes ships, its pod specs once more as Pods
against the core schema. Then s2c-batch's own rules: one GPU per worker pod with its request
equal to its limit, the ``GPU=1`` worker resource, scratch, and no secrets in the manifests.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from s2c_batch.pipeline.cluster.profile import SECRET_NAME

K8S_VERSION = "1.37.0"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.name}#{i}", doc) for p in MANIFESTS for i, doc in enumerate(yaml.safe_load_all(p.read_text()))
            if doc]


def _crd_schema(kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one of the Dask operator's CRDs, from the dask-kubernetes package."""
    crds = resources.files("dask_kubernetes") / "operator/deployment/helm/dask-kubernetes-operator/crds"
    crd = yaml.safe_load((crds / f"{kind.lower()}.yaml").read_text())
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return entry["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _validate(doc: dict[str, Any]) -> None:
    group_version = doc["apiVersion"]
    if group_version.startswith("kubernetes.dask.org/"):
        jsonschema.Draft7Validator(_crd_schema(doc["kind"], group_version.split("/")[1])).validate(doc)
        for role in ("scheduler", "worker"):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{role}"},
                   "spec": doc["spec"][role]["spec"]}
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_manifests_exist() -> None:
    kinds = {doc["kind"] for _, doc in _documents()}
    assert {"DaskCluster", "CronJob", "ConfigMap"} <= kinds


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[name for name, _ in _documents()])
def test_manifest__valid_against_the_kubernetes_schemas(name: str, doc: dict[str, Any]) -> None:
    _validate(doc)


def test_validation__catches_what_an_api_server_would_refuse() -> None:
    """The check is not vacuous: a misspelt field and a bad type fail it."""
    (cluster,) = [doc for _, doc in _documents() if doc["kind"] == "DaskCluster"]
    broken = yaml.safe_load(yaml.safe_dump(cluster))
    broken["spec"]["worker"]["spec"]["containers"][0]["resource"] = {}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(cluster))
    broken["spec"]["worker"]["replicas"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def _worker(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["worker"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_daskcluster__one_gpu_per_worker_requested_as_limited() -> None:
    """Extended resources are not overcommitted: a GPU request must equal its limit (else the pod is refused)."""
    for _, doc in _documents():
        if doc["kind"] != "DaskCluster":
            continue
        res = _worker(doc)["resources"]
        assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "1"
        assert res["requests"]["memory"] == res["limits"]["memory"]


def test_daskcluster__worker_has_the_gpu_resource_threads_scratch_and_a_memory_limit_below_the_pod() -> None:
    from dask.utils import parse_bytes

    for _, doc in _documents():
        if doc["kind"] != "DaskCluster":
            continue
        container = _worker(doc)
        args = container["args"]
        assert args[args.index("--resources") + 1] == "GPU=1" and args[args.index("--nthreads") + 1] == "2"
        scratch = args[args.index("--local-directory") + 1]
        assert scratch in {m["mountPath"] for m in container["volumeMounts"]}
        assert {"name": "TMPDIR", "value": scratch} in container["env"]
        limit = parse_bytes(args[args.index("--memory-limit") + 1])
        pod = parse_bytes(container["resources"]["limits"]["memory"].replace("Gi", "GiB"))
        assert limit < pod


def test_manifests__hold_no_secrets() -> None:
    """Credentials come from a Secret by reference; no manifest sets a secret-like variable by value."""
    for name, doc in _documents():
        text = yaml.safe_dump(doc)
        for line in text.splitlines():
            if line.strip().startswith("name:") and SECRET_NAME.search(line):
                pytest.fail(f"{name}: {line.strip()}")
