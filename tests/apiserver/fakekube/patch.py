"""Patch formats and server-side-apply field ownership.

- merge patch: RFC 7386.
- JSON patch: RFC 6902 (add, remove, replace, move, copy, test).
- strategic merge patch (SMP): maps merge like RFC 7386; the directives $patch (replace/delete),
  $retainKeys, $deleteFromPrimitiveList/<f> and $setElementOrder/<f> are honoured (the last one
  is accepted and ignored). Lists merge by key only for the well-known keyed lists below (by
  field name, not by Go struct): ownerReferences/uid, conditions/type, containers|volumes|env|
  initContainers|imagePullSecrets/name, ports (Service: port, Pod: containerPort); finalizers
  merge as a set. Every other list is replaced whole. DEVIATION from the real server, which
  takes patchStrategy/patchMergeKey per Go struct field.
- apply: a minimal server-side apply. Ownership is tracked per leaf field path (lists are
  atomic, i.e. owned whole); conflicts are raised when another manager owns a field whose live
  value differs from the applied one; fields a manager stops applying are removed unless another
  manager also owns them. managedFields use the FieldsV1 shape ({"f:metadata":{"f:labels":...}}).
"""
import copy
import json

from .errors import ApiError, bad_request

NOT_TRACKED = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"),
               ("metadata", "uid"), ("metadata", "resourceVersion"), ("metadata", "generation"),
               ("metadata", "creationTimestamp"), ("metadata", "managedFields"),
               ("metadata", "deletionTimestamp"), ("metadata", "deletionGracePeriodSeconds"),
               ("metadata", "generateName"), ("metadata", "selfLink")}

SMP_KEYS = {"ownerReferences": "uid", "conditions": "type", "containers": "name",
            "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
            "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath"}
SMP_SETS = {"finalizers"}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _invalid_patch(msg):
    return ApiError(422, "Invalid", msg)


def _pointer(p):
    if p == "":
        return []
    if not p.startswith("/"):
        raise _invalid_patch('json patch path %r does not start with "/"' % p)
    return [s.replace("~1", "/").replace("~0", "~") for s in p[1:].split("/")]


def _walk(doc, parts, op):
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise _invalid_patch("jsonpatch %s operation does not apply: doc is missing path: "
                                 "/%s" % (op, "/".join(parts)))
    return cur


def _get(doc, parts, op):
    if not parts:
        return doc
    parent = _walk(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _invalid_patch("jsonpatch %s operation does not apply: doc is missing path: /%s"
                         % (op, "/".join(parts)))


def _add(doc, parts, value, op="add"):
    if not parts:
        return value
    parent = _walk(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _invalid_patch("jsonpatch add operation: index out of range: /%s"
                                 % "/".join(parts))
    else:
        raise _invalid_patch("jsonpatch add operation does not apply: /%s" % "/".join(parts))
    return doc


def _remove(doc, parts, op="remove"):
    _get(doc, parts, op)
    parent = _walk(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        return parent.pop(last)
    return parent.pop(int(last))


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for o in ops:
        if not isinstance(o, dict) or "op" not in o:
            raise bad_request("json patch operation without 'op': %r" % (o,))
        op = o["op"]
        parts = _pointer(o.get("path", ""))
        if op == "add":
            doc = _add(doc, parts, copy.deepcopy(o.get("value")))
        elif op == "remove":
            _remove(doc, parts)
        elif op == "replace":
            _get(doc, parts, op)
            if not parts:
                doc = copy.deepcopy(o.get("value"))
            else:
                _remove(doc, parts, op)
                doc = _add(doc, parts, copy.deepcopy(o.get("value")), op)
        elif op in ("move", "copy"):
            src = _pointer(o.get("from", ""))
            val = _get(doc, src, op)
            if op == "move":
                _remove(doc, src, op)
            doc = _add(doc, parts, copy.deepcopy(val), op)
        elif op == "test":
            if _get(doc, parts, op) != o.get("value"):
                raise _invalid_patch("testing value /%s failed: test failed"
                                     % "/".join(parts))
        else:
            raise bad_request("Unexpected kind: %s" % op)
    return doc


def strategic_merge_patch(target, patch, kind=""):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge_patch(out.get(k), v, kind)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _smp_list(k, out[k], v, kind)
        else:
            out[k] = _strip_directives(copy.deepcopy(v))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def _smp_list(field, live, patch, kind):
    if field in SMP_SETS:
        out = list(live)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = SMP_KEYS.get(field)
    if field == "ports":
        key = "port" if kind == "Service" else "containerPort"
    if not key or not all(isinstance(x, dict) for x in patch + live):
        if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
            return [_strip_directives(x) for x in patch if x.get("$patch") != "replace"]
        return _strip_directives(copy.deepcopy(patch))
    out = [copy.deepcopy(x) for x in live]
    for p in patch:
        if p.get("$patch") == "replace":
            return [_strip_directives(x) for x in patch if x.get("$patch") != "replace"]
        idx = next((i for i, x in enumerate(out) if x.get(key) == p.get(key)), None)
        if p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip_directives(copy.deepcopy(p)))
        else:
            out[idx] = strategic_merge_patch(out[idx], p, kind)
    return out


# ---- server-side apply: field sets -------------------------------------------------------

def leaf_paths(obj, prefix=()):
    """Set of leaf paths of obj; lists and scalars are leaves, maps recurse."""
    out = set()
    if isinstance(obj, dict) and (obj or not prefix):
        for k, v in obj.items():
            p = prefix + (k,)
            if p in NOT_TRACKED or (len(p) == 1 and k == "metadata" and not isinstance(v, dict)):
                continue
            if isinstance(v, dict) and v:
                out |= leaf_paths(v, p)
            else:
                out.add(p)
    return out


def get_path(obj, path):
    cur = obj
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return _MISSING
        cur = cur[k]
    return cur


_MISSING = object()


def remove_path(obj, path):
    """Delete a leaf and prune maps it leaves empty."""
    stack, cur = [], obj
    for k in path[:-1]:
        if not isinstance(cur, dict) or not isinstance(cur.get(k), dict):
            return
        stack.append((cur, k))
        cur = cur[k]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    for parent, k in reversed(stack):
        if parent[k] == {} and (k != "metadata"):
            parent.pop(k)
        else:
            break


def fields_v1(paths):
    out = {}
    for p in sorted(paths):
        cur = out
        for k in p:
            cur = cur.setdefault("f:" + k, {})
    return out


def paths_from_fields_v1(d, prefix=()):
    out = set()
    for k, v in (d or {}).items():
        if not k.startswith("f:"):
            continue
        p = prefix + (k[2:],)
        if v:
            out |= paths_from_fields_v1(v, p)
        else:
            out.add(p)
    return out


def changed_paths(old, new):
    a, b = leaf_paths(old or {}), leaf_paths(new)
    return {p for p in (a | b) if get_path(old or {}, p) != get_path(new, p)}, a - b


def deep_merge(live, applied):
    """Applied config onto live: maps recurse, everything else replaces."""
    out = dict(live) if isinstance(live, dict) else {}
    for k, v in applied.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_body_json(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise bad_request("error decoding request body: %s" % e)
