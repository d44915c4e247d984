"""Validates a built overlay (a multi-document YAML file) against the Kubernetes schemas of one
version, offline, with kubernetes-validate: every resource of a core kind must pass, strictly (an
unknown field is an error). Resources of the operators' kinds are counted and left to
tests/unit/test_k8s.py, which checks the fields the platform relies on.

    python deploy/k8s/schemas.py .local/k8s/prod.yaml
"""

import sys
from collections import Counter
from pathlib import Path

import kubernetes_validate
import yaml

# The Kubernetes version the manifests are written for (autoscaling/v2, policy/v1, ...).
KUBERNETES = "1.33"
OPERATORS = ("kafka.strimzi.io/", "postgresql.cnpg.io/", "keda.sh/")


def main(path: str) -> int:
    resources = [r for r in yaml.safe_load_all(Path(path).read_text()) if r]
    checked, operators, failures = Counter[str](), Counter[str](), []
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if resource["apiVersion"].startswith(OPERATORS):
            operators[kind] += 1
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{kind}/{name}: {error.message} at {'/'.join(map(str, error.path))}")
        checked[kind] += 1
    print(f"{path}: {len(resources)} resources; validated against Kubernetes {KUBERNETES}: {_count(checked)}")
    print(f"{path}: operators' kinds (checked by tests/unit/test_k8s.py): {_count(operators)}")
    for line in failures:
        print(f"  INVALID {line}", file=sys.stderr)
    return 1 if failures else 0


def _count(kinds: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
