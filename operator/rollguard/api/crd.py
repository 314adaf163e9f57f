"""CRD generation: the CustomResourceDefinitions in crds/ are derived from the pydantic models.

``rollguard crds`` writes them; a unit test fails when the committed YAML drifts. Admission
rules that pydantic also enforces are restated here in CEL, so the API server refuses bad
objects before the operator ever sees them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from rollguard.api import GROUP, VERSION
from rollguard.api.decision import RollbackDecisionSpec
from rollguard.api.kinds import CATEGORY, KINDS, KindInfo

JSONSchema = dict[str, Any]

_ABS = "({v} >= 0.0 ? {v} : -{v})"


def _limit_expr(side: str) -> str:
    sign = "+" if side == "max" else "-"
    value = f"self.objective.{side}"
    absolute = "(has(self.margin) && has(self.margin.absolute) ? self.margin.absolute : 0.0)"
    relative = (
        "(has(self.margin) && has(self.margin.relative) ? "
        + _ABS.format(v=value)
        + " * self.margin.relative : 0.0)"
    )
    return f"{value} {sign} {absolute} {sign} {relative}"


def _rule(
    rule: str, message: str, field_path: str | None = None, reason: str | None = None
) -> JSONSchema:
    out: JSONSchema = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


_ONE_TARGET = _rule(
    "has(self.deploymentRef) != has(self.targetRef)",
    "name the workload with exactly one of deploymentRef and targetRef",
)
_TARGET_VERSION = _rule(
    "(self.kind == 'Rollout') == (self.apiVersion == 'argoproj.io/v1alpha1')",
    "targetRef: a Rollout has apiVersion argoproj.io/v1alpha1; a Deployment or a StatefulSet "
    "apps/v1",
    ".apiVersion",
)

# CEL rules by kind and by path inside the spec ("[]" stands for the items of a list).
_SPEC_RULES: dict[str, dict[tuple[str, ...], list[JSONSchema]]] = {
    "RollbackPolicy": {
        (): [
            _rule(
                "self.impact.categories.all(c, c.signals.all(k, self.signals.exists(s, s.name == k)))",
                "impact.categories[].signals must name signals defined in spec.signals",
                ".impact.categories",
            ),
        ],
        ("impact",): [
            _rule(
                "self.categories.exists(c, c.weight > 0.0)",
                "impact.categories: weights must not all be 0",
                ".categories",
            )
        ],
        ("signals", "[]"): [
            _rule(
                "!has(self.objective.max) || self.critical > " + _limit_expr("max"),
                "critical must be above objective.max + margin",
                ".critical",
            ),
            _rule(
                "!has(self.objective.min) || self.critical < " + _limit_expr("min"),
                "critical must be below objective.min - margin",
                ".critical",
            ),
        ],
        ("signals", "[]", "objective"): [
            _rule("has(self.max) != has(self.min)", "objective needs exactly one of max or min")
        ],
        ("signals", "[]", "margin"): [
            _rule(
                "has(self.absolute) != has(self.relative)",
                "margin needs exactly one of absolute or relative",
            )
        ],
    },
    "ModelDeployment": {
        (): [_ONE_TARGET],
        ("targetRef",): [_TARGET_VERSION],
        ("approvedRevisions", "[]"): [
            _rule(
                "[has(self.revision), has(self.templateHash), has(self.image)]"
                ".filter(x, x).size() == 1",
                "an approved revision names exactly one of revision, templateHash, image",
            )
        ],
    },
    "RollbackDecision": {
        (): [_ONE_TARGET],
        ("targetRef",): [_TARGET_VERSION],
        ("signals", "[]", "samples"): [
            _rule(
                "self.timestamps.size() == self.values.size()",
                "samples: timestamps and values differ in length",
            )
        ],
    },
}

# Lists whose items are identified by a key: the API server refuses duplicates.
_LIST_MAPS: dict[str, dict[tuple[str, ...], list[str]]] = {
    "RollbackPolicy": {("signals",): ["name"], ("impact", "categories"): ["name"]},
    "RollbackDecision": {("signals",): ["name"]},
}


# The spec fields people write, each once; everything else in a decision's spec is evidence.
_SET_ONCE = ("approval", "review")


def _decision_immutability() -> list[JSONSchema]:
    """One transition rule per evidence field: the evidence never changes; approval and review,
    once set, never change or disappear."""
    rules: list[JSONSchema] = []
    for name, field in RollbackDecisionSpec.model_fields.items():
        alias = field.alias or name
        if alias in _SET_ONCE:
            continue
        if field.is_required():
            rule = f"self.{alias} == oldSelf.{alias}"
        else:
            rule = (
                f"has(self.{alias}) == has(oldSelf.{alias}) && "
                f"(!has(self.{alias}) || self.{alias} == oldSelf.{alias})"
            )
        rules.append(
            _rule(
                rule, f"spec.{alias} is evidence and immutable", f".{alias}", "FieldValueForbidden"
            )
        )
    rules += [
        _rule(
            f"!has(oldSelf.{alias}) || (has(self.{alias}) && self.{alias} == oldSelf.{alias})",
            f"spec.{alias} can be set once and never changed or removed",
            f".{alias}",
            "FieldValueForbidden",
        )
        for alias in _SET_ONCE
    ]
    return rules


def _resolve(node: Any, defs: dict[str, JSONSchema]) -> Any:
    """Inline $refs and turn pydantic's JSON Schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        # Keys beside a $ref (the field's description) win over the referenced model's.
        target.update(node)
        node = target
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {options}")
        merged = dict(options[0])
        merged.update(node)
        node = merged
        if "$ref" in node:
            return _resolve(node, defs)
    if "patternProperties" in node:
        _pattern_keys_as_rule(node)
    out: JSONSchema = {}
    for key, value in node.items():
        out.update(_structural(key, value, defs))
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _pattern_keys_as_rule(node: JSONSchema) -> None:
    """Kubernetes has no patternProperties: the values' schema becomes additionalProperties
    and the key pattern a CEL rule."""
    ((pattern, value_schema),) = node.pop("patternProperties").items()
    node["additionalProperties"] = value_schema
    key_limit = node.get("propertyNames", {}).get("maxLength", 63)
    node.setdefault("maxProperties", 32)
    node.setdefault("x-kubernetes-validations", []).append(
        _rule(
            f"self.all(k, k.matches('{pattern}') && size(k) <= {key_limit})",
            f"keys must match {pattern} and be at most {key_limit} characters",
        )
    )


def _structural(key: str, value: Any, defs: dict[str, JSONSchema]) -> JSONSchema:
    """What one key of a pydantic schema becomes in a structural schema: nothing for what
    Kubernetes cannot say or need not hear, its own spelling for the rest."""
    if key in ("title", "propertyNames", "$defs"):
        return {}
    if key == "default" and (value is None or value in ([], {})):
        return {}
    if key == "additionalProperties" and value is False:
        # Structural schemas cannot say this; unknown fields are pruned, and refused
        # outright under kubectl's strict field validation.
        return {}
    if key == "const":
        return {"enum": [value]}
    if key == "exclusiveMinimum":
        return {"minimum": value, "exclusiveMinimum": True}
    if key == "exclusiveMaximum":
        return {"maximum": value, "exclusiveMaximum": True}
    if key == "properties":
        return {key: {k: _resolve(v, defs) for k, v in value.items()}}
    return {key: _resolve(value, defs)}


def _at(schema: JSONSchema, path: tuple[str, ...]) -> JSONSchema:
    node = schema
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def _schema_of(model: type[Any], kind: str, part: str) -> JSONSchema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: JSONSchema = _resolve(raw, raw.get("$defs", {}))
    if part != "spec":
        return schema
    for path, rules in _SPEC_RULES.get(kind, {}).items():
        _at(schema, path).setdefault("x-kubernetes-validations", []).extend(rules)
    for path, keys in _LIST_MAPS.get(kind, {}).items():
        node = _at(schema, path)
        node["x-kubernetes-list-type"] = "map"
        node["x-kubernetes-list-map-keys"] = keys
    if kind == "RollbackDecision":
        schema.setdefault("x-kubernetes-validations", []).extend(_decision_immutability())
    return schema


def crd_for(info: KindInfo) -> JSONSchema:
    """The CustomResourceDefinition of one kind."""
    fields = info.resource.model_fields
    spec_model: type[Any] = fields["spec"].annotation  # type: ignore[assignment]
    status_union: Any = fields["status"].annotation
    status_model: type[Any] = next(a for a in status_union.__args__ if a is not type(None))
    spec = _schema_of(spec_model, info.kind, "spec")
    status = _schema_of(status_model, info.kind, "status")
    doc = (info.resource.__doc__ or "").strip()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": doc,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crds() -> dict[str, str]:
    """File name to YAML text of every CRD."""
    return {
        f"{GROUP}_{info.plural}.yaml": yaml.safe_dump(crd_for(info), sort_keys=False, width=100)
        for info in KINDS
    }


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into directory; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crds().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
