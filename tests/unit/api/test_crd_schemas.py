"""crds/ is generated from the API models: drift fails here, and the schemas say what users need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rollguard.api.crd import render_crds

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_committed_crds_match_the_models() -> None:
    rendered = render_crds()
    committed = {
        p.name: p.read_text() for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml"
    }
    assert set(committed) == set(rendered)
    for name, text in rendered.items():
        assert committed[name] == text, f"crds/{name} drifted: run `rollguard crds`"


def _walk(schema: dict[str, Any], path: str = "") -> list[str]:
    missing = []
    for key, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{key}"
        if not sub.get("description"):
            missing.append(here)
        missing += _walk(sub, here)
        if "items" in sub:
            missing += _walk(sub["items"], here + "[]")
    return missing


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    for text in render_crds().values():
        crd = yaml.safe_load(text)
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert _walk(spec) == [], crd["metadata"]["name"]


def test_names_short_names_category_and_status_subresource() -> None:
    crds = {
        yaml.safe_load(t)["spec"]["names"]["kind"]: yaml.safe_load(t)
        for t in render_crds().values()
    }
    shorts = {kind: crd["spec"]["names"]["shortNames"] for kind, crd in crds.items()}
    assert shorts == {
        "RollbackPolicy": ["rbp"],
        "ModelDeployment": ["mdep"],
        "RollbackDecision": ["rbd"],
    }
    for crd in crds.values():
        assert crd["spec"]["names"]["categories"] == ["rollguard"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"]
