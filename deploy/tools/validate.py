#!/usr/bin/env python3
"""Check manifests offline: edgecert.io objects against the CRD schemas in deploy/crds, built-in
kinds (Deployment, ClusterRole, Service...) against python3-kubernetes' typed models.

    python3 deploy/tools/validate.py my-issuer.yaml other.yaml ...    (needs python3-yaml)
    kubectl kustomize deploy/ | /usr/bin/python3 deploy/tools/validate.py -

Prints one line per problem and exits 1 if there is any. Built-in kinds are checked only when
python3-kubernetes is importable (Debian's is the 1.22 API: field names and value types; newer
fields it does not know are listed in NEWER_FIELDS); kinds it has no model for (Gateway) are
skipped. For edgecert.io it checks what the API server would refuse: wrong types, missing
required fields, values outside enums/bounds/patterns, fields the schema does not know (kubectl
sends fieldValidation=Strict), oneOf/anyOf of "required" sets (the only form structural schemas
allow), format byte (base64) and date-time, and the CRDs' CEL rules, which are few enough to be
written out here (CEL_RULES; tests/integration/test_deploy_manifests.py keeps them in sync).
Useful on a cluster too old for CEL, and in CI before anything reaches a cluster.
"""
import base64
import re
import sys
from pathlib import Path

import yaml

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"
GROUP_VERSION = "edgecert.io/v1alpha1"

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

# (kind, path to the object the rule is on, rule text as in the CRD, Python equivalent)
CEL_RULES = [
    ("Certificate", ("spec",), "!(has(self.renewBefore) && has(self.renewBeforePercentage))",
     lambda o: not ("renewBefore" in o and "renewBeforePercentage" in o)),
]


def load_crds(crd_dir=CRD_DIR):
    """kind -> CRD document."""
    out = {}
    for p in sorted(Path(crd_dir).glob("*.yaml")):
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                out[d["spec"]["names"]["kind"]] = d
    return out


def schema_of(crd, version="v1alpha1"):
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return v["schema"]["openAPIV3Schema"]


def validate(v, s, path="$"):
    """Problems of value v against openAPIV3Schema node s, as 'path: message' strings."""
    errs = []
    t = s.get("type")
    if s.get("x-kubernetes-int-or-string"):
        if not isinstance(v, (int, str)) or isinstance(v, bool):
            return ["%s: must be an integer or a string" % path]
    elif t == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            return ["%s: must be an integer, got %s" % (path, type(v).__name__)]
    elif t == "number":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return ["%s: must be a number" % path]
    elif t in _TYPES:
        if not isinstance(v, _TYPES[t]):
            return ["%s: must be %s, got %s" % (path, t, type(v).__name__)]
    if "enum" in s and v not in s["enum"]:
        errs.append("%s: %r not in %s" % (path, v, s["enum"]))
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0):
            errs.append("%s: shorter than %d" % (path, s["minLength"]))
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append("%s: longer than %d" % (path, s["maxLength"]))
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
        if s.get("format") == "byte":
            try:
                base64.b64decode(v, validate=True)
            except ValueError:
                errs.append("%s: not base64" % path)
        if s.get("format") == "date-time" and not _DATETIME.match(v):
            errs.append("%s: not an RFC 3339 date-time" % path)
    if isinstance(v, int) and not isinstance(v, bool):
        if "minimum" in s and v < s["minimum"]:
            errs.append("%s: below %s" % (path, s["minimum"]))
        if "maximum" in s and v > s["maximum"]:
            errs.append("%s: above %s" % (path, s["maximum"]))
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0):
            errs.append("%s: fewer than %d items" % (path, s["minItems"]))
        for i, item in enumerate(v):
            errs += validate(item, s.get("items", {}), "%s[%d]" % (path, i))
    if isinstance(v, dict):
        props = s.get("properties", {})
        for r in s.get("required", []):
            if r not in v:
                errs.append("%s: missing required field %s" % (path, r))
        for k, item in v.items():
            if k in props:
                errs += validate(item, props[k], "%s.%s" % (path, k))
            elif isinstance(s.get("additionalProperties"), dict):
                errs += validate(item, s["additionalProperties"], "%s.%s" % (path, k))
            elif not s.get("x-kubernetes-preserve-unknown-fields") and path != "$.metadata":
                errs.append("%s: unknown field %s" % (path, k))
        for kw, exactly_one in (("oneOf", True), ("anyOf", False)):
            if kw in s:
                n = sum(all(r in v for r in alt.get("required", [])) for alt in s[kw])
                if (exactly_one and n != 1) or n == 0:
                    errs.append("%s: %s of %s not satisfied (%d match)" % (
                        path, kw, [a.get("required") for a in s[kw]], n))
    return errs


def check(obj, crds):
    """Problems of one edgecert.io object (schema, then CEL rules)."""
    if obj.get("apiVersion") != GROUP_VERSION:
        return ["$.apiVersion: %r is not %s" % (obj.get("apiVersion"), GROUP_VERSION)]
    if obj.get("kind") not in crds:
        return ["$.kind: %r is not one of %s" % (obj.get("kind"), sorted(crds))]
    errs = validate(obj, schema_of(crds[obj["kind"]]))
    for kind, path, rule, ok in CEL_RULES:
        node = obj
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if kind == obj["kind"] and isinstance(node, dict) and not ok(node):
            errs.append("$.%s: violates %s" % (".".join(path), rule))
    return errs


# Fields newer than the 1.22 models of python3-kubernetes 22.6, by model.
NEWER_FIELDS = {"V1JSONSchemaProps": {"x-kubernetes-validations"}}


def _model_errors(v, t, path):
    import kubernetes.client as kc
    if t in ("str", "datetime", "date"):
        return [] if isinstance(v, str) else ["%s: want string, got %r" % (path, v)]
    if t in ("int", "float", "bool"):
        want = {"int": (int,), "float": (int, float), "bool": (bool,)}[t]
        if isinstance(v, want) and (t == "bool") == isinstance(v, bool):
            return []
        return ["%s: want %s, got %r" % (path, {"int": "integer", "float": "number",
                                                "bool": "boolean"}[t], v)]
    if t == "object":  # IntOrString, Quantity, RawExtension
        return []
    if t.startswith("list["):
        if not isinstance(v, list):
            return ["%s: want list" % path]
        return [e for i, x in enumerate(v)
                for e in _model_errors(x, t[5:-1], "%s[%d]" % (path, i))]
    if t.startswith("dict("):
        if not isinstance(v, dict):
            return ["%s: want map" % path]
        inner = t[5:-1].split(", ", 1)[1]
        return [e for k, x in v.items() for e in _model_errors(x, inner, "%s.%s" % (path, k))]
    cls = getattr(kc, t)
    if not isinstance(v, dict):
        return ["%s: want object %s" % (path, t)]
    wire = {w: a for a, w in cls.attribute_map.items()}
    errs = []
    for k, x in v.items():
        if k in NEWER_FIELDS.get(t, ()):
            continue
        if k not in wire:
            errs.append("%s: unknown field %s in %s" % (path, k, t))
        else:
            errs += _model_errors(x, cls.openapi_types[wire[k]], "%s.%s" % (path, k))
    return errs


def check_builtin(obj):
    """Problems of a built-in object against the typed model, or None when it cannot be checked
    (python3-kubernetes missing, or no model for the kind)."""
    try:
        import kubernetes.client as kc
    except ImportError:
        return None
    model = str(obj.get("apiVersion", "")).split("/")[-1].capitalize() + str(obj.get("kind"))
    if not hasattr(kc, model) or not hasattr(getattr(kc, model), "attribute_map"):
        return None
    return _model_errors(obj, model, "$")


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    crds, bad, ours, builtin, skipped = load_crds(), 0, 0, 0, 0
    for f in argv:
        text = sys.stdin.read() if f == "-" else Path(f).read_text()
        for i, d in enumerate(yaml.safe_load_all(text)):
            if not d:
                continue
            if str(d.get("apiVersion", "")).startswith("edgecert.io/"):
                errs, ours = check(d, crds), ours + 1
            else:
                errs = check_builtin(d)
                if errs is None:
                    skipped += 1
                    continue
                builtin += 1
            name = "%s:%d %s/%s" % (f, i, d.get("kind"), (d.get("metadata") or {}).get("name"))
            for e in errs:
                print("%s: %s" % (name, e))
                bad += 1
    print("%d edgecert.io object(s) and %d built-in object(s) checked, %d skipped, %d problem(s)"
          % (ours, builtin, skipped, bad), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
