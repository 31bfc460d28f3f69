"""Write operations of the store: create, update (PUT), patch, server-side apply, delete.
Semantics follow k8s.io/apiserver/pkg/registry/generic/registry/store.go."""
import base64
import binascii
import copy
import datetime
import json
import random
import uuid

import yaml

from . import errors, events, patch as P, rbac
from .store import (DNS1123_LABEL, DNS1123_SUBDOMAIN, GEN_ALPHABET, StoreBase, key_of, meta,
                    now)

IDENTITY = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
            "generation", "name", "namespace")
CRD_STORAGE = "apiextensions.k8s.io/customresourcedefinitions"


def _strip_for_compare(o):
    o = dict(o)
    m = dict(o.get("metadata") or {})
    m.pop("managedFields", None)
    m.pop("resourceVersion", None)
    o["metadata"] = m
    return o


# Typed time fields are re-serialized by the real server: metav1.Time as RFC 3339 seconds,
# metav1.MicroTime with exactly 6 fraction digits, both in UTC with "Z".
TIME_FIELDS = {
    "coordination.k8s.io/leases": [(("spec", "acquireTime"), True), (("spec", "renewTime"), True)],
    "/events": [(("eventTime",), True), (("series", "lastObservedTime"), True),
                (("firstTimestamp",), False), (("lastTimestamp",), False)],
}


def _norm_time(v, micro):
    try:
        t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
    except (AttributeError, ValueError):
        raise errors.bad_request('parsing time "%s" as "2006-01-02T15:04:05Z07:00": cannot parse'
                                 % v)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    t = t.astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


class Store(StoreBase):
    # ---- validation and defaults per kind ------------------------------------------------

    def _validate(self, rt, obj, old):
        name = meta(obj).get("name", "")
        for path, micro in TIME_FIELDS.get(rt.storage, ()):
            parent = obj
            for k in path[:-1]:
                parent = parent.get(k) if isinstance(parent, dict) else None
            if isinstance(parent, dict) and parent.get(path[-1]) is not None:
                parent[path[-1]] = _norm_time(parent[path[-1]], micro)
        if rt.storage == "/secrets":
            sd = obj.pop("stringData", None)
            data = dict(obj.get("data") or {})
            for k, v in data.items():
                try:
                    base64.b64decode(v or "", validate=True)
                except (binascii.Error, ValueError, TypeError):
                    raise errors.bad_request('Secret in version "v1" cannot be handled as a '
                                             'Secret: illegal base64 data in key %s' % k)
            for k, v in (sd or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            if data or "data" in obj:
                obj["data"] = data
            if not obj.get("type"):  # SetDefaults_Secret: an empty type (kubectl sends "") is Opaque
                obj["type"] = "Opaque"
            if old is not None and old.get("type") != obj["type"]:
                raise errors.invalid(rt, name, [("type", "FieldValueInvalid",
                                                 'Invalid value: "%s": field is immutable'
                                                 % obj["type"])])
            if obj["type"] == "kubernetes.io/tls":
                for k in ("tls.crt", "tls.key"):
                    if k not in data:
                        raise errors.invalid(rt, name, [("data[%s]" % k, "FieldValueRequired",
                                                         "Required value")])
        elif rt.storage == "/services" and old is None:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                self._ip += 1
                spec["clusterIP"] = "10.96.%d.%d" % (self._ip // 250, self._ip % 250 + 1)
                spec["clusterIPs"] = [spec["clusterIP"]]
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
        elif rt.group == "events.k8s.io" and old is None:
            events.validate_new(rt, events.from_core(obj))
        elif rt.storage == CRD_STORAGE:
            self._validate_crd(rt, obj)
        elif rt.group == rbac.GROUP:
            rbac.validate(rt, obj, old)

    def _validate_crd(self, rt, obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        name = meta(obj).get("name", "")
        causes = []
        if name != "%s.%s" % (names.get("plural"), spec.get("group")):
            causes.append(("metadata.name", "FieldValueInvalid",
                           'Invalid value: "%s": must be spec.names.plural+"."+spec.group'
                           % name))
        if "." not in (spec.get("group") or ""):
            causes.append(("spec.group", "FieldValueInvalid",
                           'Invalid value: "%s": should be a domain with at least one dot'
                           % spec.get("group", "")))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(("spec.scope", "FieldValueNotSupported",
                           'Unsupported value: "%s": supported values: "Cluster", "Namespaced"'
                           % spec.get("scope", "")))
        if not names.get("kind"):
            causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
        vs = spec.get("versions") or []
        if sum(1 for v in vs if v.get("storage")) != 1:
            causes.append(("spec.versions", "FieldValueInvalid",
                           "Invalid value: must have exactly one version marked as storage "
                           "version"))
        if causes:
            raise errors.invalid(rt, name, causes)
        names = dict(names)
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        obj["status"] = {
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": now()}],
            "storedVersions": [v["name"] for v in vs if v.get("storage")]}

    def _check_namespace(self, rt, ns, name):
        if not rt.namespaced:
            return
        nso = self.data.get("/namespaces", {}).get(("", ns))
        if nso is None:
            raise errors.ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                                  {"name": ns, "kind": "namespaces"})
        if meta(nso).get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden", '%s "%s" is forbidden: unable to create new content in '
                'namespace %s because it is being terminated' % (errors.qualified(rt), name, ns),
                {"name": name, "kind": rt.plural,
                 "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                             "message": "namespace %s is being terminated" % ns}]})

    # ---- managedFields ---------------------------------------------------------------------

    def _owners(self, obj):
        return [(dict(e), P.paths_from_fields_v1(e.get("fieldsV1")))
                for e in (meta(obj).get("managedFields") or [])]

    def _set_owners(self, obj, owners):
        mf = []
        for e, paths in owners:
            if paths:
                e["fieldsV1"] = P.fields_v1(paths)
                mf.append(e)
        if mf:
            obj["metadata"]["managedFields"] = mf
        else:
            obj["metadata"].pop("managedFields", None)

    def _track_update(self, rt, old, new, manager, sub, base=None):
        changed, removed = P.changed_paths(old, new)
        owners = self._owners({"metadata": {"managedFields": base}}) if base else []
        for _, s in owners:
            s -= changed
        mine = next((x for x in owners if x[0].get("manager") == manager
                     and x[0].get("operation") == "Update"
                     and x[0].get("subresource", "") == sub), None)
        if mine is None:
            e = {"manager": manager, "operation": "Update", "apiVersion": rt.api_version,
                 "time": now(), "fieldsType": "FieldsV1"}
            if sub:
                e["subresource"] = sub
            mine = (e, set())
            owners.append(mine)
        if changed - removed:
            mine[0]["time"] = now()
        mine[1].update(changed - removed)
        self._set_owners(new, owners)

    # ---- create ----------------------------------------------------------------------------

    def create(self, rt, ns, body, manager, dry_run=False, applied=None):
        """`body` must be a fresh object (a decoded request): the store takes it over."""
        with self.lock:
            obj = self.from_view(rt, body)
            m = obj["metadata"]
            if rt.namespaced:
                if m.get("namespace") and m["namespace"] != ns:
                    raise errors.bad_request("the namespace of the provided object does not "
                                             "match the namespace sent on the request")
                m["namespace"] = ns
            else:
                m.pop("namespace", None)
            for k in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink", "managedFields"):
                m.pop(k, None)
            if not m.get("name"):
                if not m.get("generateName"):
                    raise errors.invalid(rt, "", [("metadata.name", "FieldValueRequired",
                                                   "Required value: name or generateName is "
                                                   "required")])
                for _ in range(8):
                    cand = m["generateName"] + "".join(random.choice(GEN_ALPHABET)
                                                       for _ in range(5))
                    if (ns if rt.namespaced else "", cand) not in self.data.get(rt.storage, {}):
                        break
                m["name"] = cand
            name = m["name"]
            rx = DNS1123_LABEL if rt.storage == "/namespaces" else DNS1123_SUBDOMAIN
            if rt.group == rbac.GROUP:  # ValidateRBACName: any path segment ("system:x")
                if name in (".", "..") or "/" in name or "%" in name:
                    raise errors.invalid(rt, name, [(
                        "metadata.name", "FieldValueInvalid",
                        'Invalid value: "%s": may not be \'.\' or \'..\' and may not contain '
                        "'/' or '%%'" % name)])
            elif not rx.match(name) or len(name) > (63 if rx is DNS1123_LABEL else 253):
                raise errors.invalid(rt, name, [(
                    "metadata.name", "FieldValueInvalid",
                    'Invalid value: "%s": a lowercase RFC 1123 %s must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character" % (name, "label" if rx is DNS1123_LABEL
                                                else "subdomain"))])
            self._check_namespace(rt, ns, name)
            if key_of(obj) in self.data.get(rt.storage, {}):
                raise errors.already_exists(rt, name)
            m["uid"] = str(uuid.uuid4())
            m["creationTimestamp"] = now()
            if rt.generation:
                m["generation"] = 1
            if rt.status:
                obj.pop("status", None)
            if rt.storage == "/namespaces":
                obj["status"] = {"phase": "Active"}
                spec = obj.setdefault("spec", {})
                spec.setdefault("finalizers", ["kubernetes"])
            self._validate(rt, obj, None)
            if applied is not None:
                e = {"manager": manager, "operation": "Apply", "apiVersion": rt.api_version,
                     "time": now(), "fieldsType": "FieldsV1"}
                self._set_owners(obj, [(e, P.leaf_paths(applied))])
            else:
                self._track_update(rt, None, obj, manager, "")
            if dry_run:
                return obj
            return self._commit(rt, "ADDED", obj, None)

    # ---- update ----------------------------------------------------------------------------

    def update(self, rt, ns, name, body, manager, sub="", dry_run=False):
        """`body` must be a fresh object (a decoded request): the store takes it over."""
        with self.lock:
            new = self.from_view(rt, body)
            m = new["metadata"]
            if m.get("name") != name:
                raise errors.bad_request('the name of the object (%s) does not match the name on '
                                         'the URL (%s)' % (m.get("name", ""), name))
            if rt.namespaced and m.get("namespace") not in (None, "", ns):
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            live = self._get(rt, ns, name)
            rv = m.get("resourceVersion")
            if rv:
                if rv != meta(live)["resourceVersion"]:
                    raise errors.conflict(rt, name)
            elif rt.custom:
                raise errors.invalid(rt, name, [("metadata.resourceVersion", "FieldValueInvalid",
                                                 "Invalid value: 0x0: must be specified for an "
                                                 "update")])
            return self._write(rt, live, new, manager, sub, dry_run)

    def _write(self, rt, old, new, manager, sub, dry_run, owners=None):
        om, m = meta(old), new["metadata"]
        for k in IDENTITY:
            if k in om:
                m[k] = om[k]
            else:
                m.pop(k, None)
        m["resourceVersion"] = om["resourceVersion"]
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if om.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(om.get("finalizers") or [])
            if added:
                raise errors.invalid(rt, om["name"], [(
                    "metadata.finalizers", "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted, "
                    "found new finalizers %s" % sorted(added))])
        self._validate(rt, new, old)
        if rt.generation and sub != "status":
            skip = ("metadata", "status") if rt.status else ("metadata",)
            if ({k: v for k, v in old.items() if k not in skip}
                    != {k: v for k, v in new.items() if k not in skip}):
                new["metadata"]["generation"] = om.get("generation", 1) + 1
        if owners is not None:
            self._set_owners(new, owners)
        else:
            req_mf = new["metadata"].get("managedFields")
            # A request may rewrite managedFields (kubectl's CSA->SSA upgrade does, by JSON
            # patch); absent means "keep", [] means "reset".
            base = om.get("managedFields") if req_mf is None else req_mf
            self._track_update(rt, old, new, manager, sub, base)
        if _strip_for_compare(new) == _strip_for_compare(old):
            return old  # no-op: no new resourceVersion, no watch event
        if dry_run:
            return new
        if om.get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._commit(rt, "DELETED", new, old)
        return self._commit(rt, "MODIFIED", new, old)

    # ---- patch and apply -------------------------------------------------------------------

    def patch(self, rt, ns, name, ctype, raw, manager, force=False, sub="", dry_run=False):
        if ctype == "application/apply-patch+yaml":
            try:
                applied = yaml.safe_load(raw or b"")
            except yaml.YAMLError as e:
                raise errors.bad_request("error decoding YAML: %s" % e)
            if not isinstance(applied, dict):
                raise errors.bad_request("apply patch must be an object")
            if not manager:
                raise errors.bad_request("PATCH, application/apply-patch+yaml requests must set "
                                         "the fieldManager parameter")
            return self.apply(rt, ns, name, applied, manager, force, sub, dry_run)
        body = P.parse_body_json(raw)
        with self.lock:
            live = self._get(rt, ns, name)
            view = self.to_view(rt, live)
            if ctype == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise errors.bad_request("merge patch must be a JSON object")
                patched = P.merge_patch(view, body)
            elif ctype == "application/json-patch+json":
                patched = P.json_patch(view, body)
            elif ctype == "application/strategic-merge-patch+json":
                if rt.custom:
                    raise errors.unsupported_media(ctype)
                if not isinstance(body, dict):
                    raise errors.bad_request("strategic merge patch must be a JSON object")
                patched = P.strategic_merge_patch(view, body, rt.kind)
            else:
                raise errors.unsupported_media(ctype)
            new = self.from_view(rt, copy.deepcopy(patched))  # patches share subtrees with live
            new["metadata"]["name"] = name
            rv = new["metadata"].get("resourceVersion")
            if rv and rv != meta(live)["resourceVersion"]:
                raise errors.conflict(rt, name)
            return self._write(rt, live, new, manager, sub, dry_run)

    def apply(self, rt, ns, name, applied, manager, force, sub="", dry_run=False):
        am = applied.setdefault("metadata", {})
        if am.get("name") not in (None, name):
            raise errors.bad_request('the name of the object (%s) does not match the name on '
                                     'the URL (%s)' % (am.get("name"), name))
        am["name"] = name
        with self.lock:
            try:
                live = self._get(rt, ns, name)
            except errors.ApiError:
                return self.create(rt, ns, copy.deepcopy(applied), manager, dry_run,
                                   applied=applied)
            arv = am.get("resourceVersion")
            if arv and arv != meta(live)["resourceVersion"]:  # an optional precondition
                raise errors.conflict(rt, name)
            applied_paths = P.leaf_paths(applied)
            owners = self._owners(live)
            conflicts = []
            for e, s in owners:
                if e.get("manager") == manager and e.get("operation") == "Apply":
                    continue
                for p in sorted(applied_paths & s):
                    if P.get_path(live, p) != P.get_path(applied, p):
                        conflicts.append((e.get("manager"), e.get("apiVersion", ""), p))
                        if force:
                            s.discard(p)
            lac = _last_applied_paths(live)
            if conflicts and not force and lac is not None and manager == "kubectl":
                # fieldmanager/lastappliedmanager.go: for the manager "kubectl", conflicts on
                # fields of the last-applied annotation still equal to the live object are
                # allowed (CSA -> SSA upgrade); if all conflicts are allowed, force the apply.
                if all(c[2] in lac for c in conflicts):
                    for _, _, p in conflicts:
                        for e, s in owners:
                            s.discard(p)
                    conflicts = []
                else:
                    conflicts = [c for c in conflicts if c[2] not in lac]
            if conflicts and not force:
                raise _apply_conflict(conflicts)
            mine = next((x for x in owners if x[0].get("manager") == manager
                         and x[0].get("operation") == "Apply"), None)
            if mine is None:
                mine = ({"manager": manager, "operation": "Apply", "apiVersion": rt.api_version,
                         "fieldsType": "FieldsV1"}, set())
                owners.append(mine)
            others = set()
            for x in owners:
                if x is not mine:
                    others |= x[1]
            new = copy.deepcopy(self.to_view(rt, live))
            for p in mine[1] - applied_paths - others:
                P.remove_path(new, p)
            body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
            new = P.deep_merge(new, body)
            if lac is not None and manager == "kubectl":
                # fieldmanager/lastappliedupdater.go keeps the CSA annotation in sync
                new["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
                    applied, separators=(",", ":"))
            mine[0]["time"] = now()
            mine[1].clear()
            mine[1].update(applied_paths)
            return self._write(rt, live, self.from_view(rt, new), manager, sub, dry_run,
                               owners=owners)

    # ---- delete ----------------------------------------------------------------------------

    def delete(self, rt, ns, name, opts, dry_run=False):
        """Returns (object_or_None, status_details): None means removed at once."""
        with self.lock:
            live = self._get(rt, ns, name)
            m = meta(live)
            pre = (opts or {}).get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise errors.conflict(rt, name, "Precondition failed: UID in precondition: %s, "
                                      "UID in object meta: %s" % (pre["uid"], m.get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
                raise errors.conflict(rt, name, "Precondition failed: ResourceVersion in "
                                      "precondition: %s, ResourceVersion in object meta: %s"
                                      % (pre["resourceVersion"], m.get("resourceVersion")))
            if m.get("deletionTimestamp"):
                return live, None
            if rt.storage == "/namespaces":
                return self._delete_namespace(rt, live, dry_run), None
            if m.get("finalizers"):
                new = copy.deepcopy(live)
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if rt.generation:
                    new["metadata"]["generation"] = m.get("generation", 1) + 1
                if dry_run:
                    return new, None
                return self._commit(rt, "MODIFIED", new, live), None
            if not dry_run:
                self._commit(rt, "DELETED", None, live)
            return None, {"name": name, "kind": rt.plural, "uid": m.get("uid"),
                          **({"group": rt.group} if rt.group else {})}

    def _delete_namespace(self, rt, live, dry_run):
        new = copy.deepcopy(live)
        new["metadata"]["deletionTimestamp"] = now()
        new.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return new
        out = self._commit(rt, "MODIFIED", new, live)
        ns = live["metadata"]["name"]
        for storage, bucket in list(self.data.items()):
            rts = self.reg.by_storage(storage)
            if not rts or not rts[0].namespaced:
                continue
            for k, o in list(bucket.items()):
                if k[0] != ns or meta(o).get("deletionTimestamp"):
                    continue
                if meta(o).get("finalizers"):
                    n = copy.deepcopy(o)
                    n["metadata"]["deletionTimestamp"] = now()
                    self._commit(rts[0], "MODIFIED", n, o)
                else:
                    self._commit(rts[0], "DELETED", None, o)
        self._maybe_finish_namespace(ns)
        return self.data.get("/namespaces", {}).get(("", ns), out)

    def _maybe_finish_namespace(self, ns):
        nso = self.data.get("/namespaces", {}).get(("", ns))
        if nso is None or not meta(nso).get("deletionTimestamp"):
            return
        for storage, bucket in self.data.items():
            if storage != "/namespaces" and any(k[0] == ns for k in bucket):
                return
        self._commit(self.reg.lookup("", "v1", "namespaces"), "DELETED", None, nso)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied_paths(live):
    """Leaf paths of the last-applied annotation whose value still equals the live object."""
    raw = (meta(live).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        la = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(la, dict):
        return None
    return {p for p in P.leaf_paths(la) if P.get_path(la, p) == P.get_path(live, p)}


def _apply_conflict(conflicts):
    n = len(conflicts)
    causes = [{"reason": "FieldManagerConflict",
               "message": 'conflict with "%s" using %s' % (mgr, av),
               "field": "." + ".".join(p)} for mgr, av, p in conflicts]
    if n == 1:
        msg = "Apply failed with 1 conflict: %s: %s" % (causes[0]["message"], causes[0]["field"])
    else:
        msg = "Apply failed with %d conflicts: " % n + "\n".join(
            "%s: %s" % (c["message"], c["field"]) for c in causes)
    return errors.ApiError(409, "Conflict", msg, {"causes": causes})
