"""ACME protocol state and resource handlers (RFC 8555, RFC 8737, RFC 9773) for the test server.

Everything is in memory and guarded by one lock; network validation runs outside it. Handlers take
an authenticated request (see acmeserver.py for the JWS/nonce/url checks) and return a Reply.
"""
import collections
import datetime
import json
import re
import secrets
import threading
import time

from cryptography import x509

import ca as ca_mod
import validation
from jws import Problem, b64u_decode, b64u_encode, jwk_from_public_key, thumbprint, verify_eab

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REVOCATION_REASONS = set(range(0, 11)) - {7}  # RFC 5280 §5.3.1; 7 is unused


def rfc3339(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
    except (ValueError, AttributeError):
        raise Problem("malformed", f"{text!r} is not an RFC 3339 timestamp")


def new_id():
    return secrets.token_hex(8)


class Reply:
    def __init__(self, status=200, body=None, content_type="application/json", headers=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = headers or {}


class Account:
    def __init__(self, jwk, key, contact, tos, eab_kid):
        self.id, self.jwk, self.key = new_id(), jwk, key
        self.thumb = thumbprint(jwk)
        self.contact, self.tos, self.eab_kid = contact, tos, eab_kid
        self.status = "valid"
        self.order_ids = []


class Challenge:
    def __init__(self, authz, typ):
        self.id, self.authz, self.type = new_id(), authz, typ
        self.account = authz.account
        self.token = b64u_encode(secrets.token_bytes(32))
        self.status, self.validated, self.error = "pending", None, None
        self.auto_valid_at = None  # --validation auto: becomes valid lazily at this monotonic time


class Authz:
    def __init__(self, account, value, wildcard, challenge_types):
        self.id, self.account, self.value, self.wildcard = new_id(), account, value, wildcard
        self.status = "pending"
        self.expires = ca_mod.utcnow() + datetime.timedelta(days=7)
        self.challenges = [Challenge(self, t) for t in challenge_types]


class Order:
    def __init__(self, account, identifiers, authzs, profile, replaces):
        self.id, self.account, self.identifiers, self.authzs = new_id(), account, identifiers, authzs
        self.profile, self.replaces = profile, replaces
        self.status = "pending"
        self.expires = ca_mod.utcnow() + datetime.timedelta(days=7)
        self.error, self.cert, self.processing_polls = None, None, 0


class Cert:
    def __init__(self, leaf, order):
        self.id, self.leaf, self.order, self.account = new_id(), leaf, order, order.account
        self.cert_id = ca_mod.cert_id_of(leaf)
        self.names = sorted(n.lower() for n in
                            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                            .get_values_for_type(x509.DNSName))
        self.revoked_reason, self.revoked_at, self.replaced_by = None, None, None


class Options:
    def __init__(self, **kw):
        self.validation = kw.get("validation", "auto")
        self.http_port = kw.get("http_port", 5002)
        self.tls_port = kw.get("tls_port", 5001)
        self.validity = kw.get("validity", 7776000)
        self.profiles = kw.get("profiles", {})  # name -> validity seconds
        self.default_profile = kw.get("default_profile")
        self.eab_required = kw.get("eab_required", False)
        self.eab_keys = kw.get("eab_keys", {})  # kid -> raw HMAC key bytes
        self.alternate_roots = kw.get("alternate_roots", 0)
        self.ari_window_fraction = kw.get("ari_window_fraction", 2.0 / 3.0)
        self.ari_retry_after = kw.get("ari_retry_after", 60)
        self.retry_after = kw.get("retry_after", 1)
        self.processing_polls = kw.get("processing_polls", 1)
        self.authz_reuse = kw.get("authz_reuse", False)
        self.tos = kw.get("tos", "https://acme.example.test/terms")


class State:
    def __init__(self, opts):
        self.o = opts
        self.lock = threading.RLock()
        self.ca = ca_mod.CA(opts.alternate_roots)
        self.nonces, self.nonce_order = set(), collections.deque()
        self.accounts, self.by_thumb = {}, {}
        self.orders, self.authzs, self.challenges, self.certs = {}, {}, {}, {}
        self.certs_by_cert_id = {}
        self.ari_overrides = {}
        self.faults = []
        self.dns_txt = collections.defaultdict(list)
        self.stats = collections.Counter()

    # --- nonces (RFC 8555 §6.5) -------------------------------------------------------------------
    def new_nonce(self):
        n = b64u_encode(secrets.token_bytes(16))
        with self.lock:
            self.nonces.add(n)
            self.nonce_order.append(n)
            while len(self.nonce_order) > 50000:
                self.nonces.discard(self.nonce_order.popleft())
        return n

    def consume_nonce(self, nonce):
        with self.lock:
            if not isinstance(nonce, str) or nonce not in self.nonces:
                self.stats["badNonce"] += 1
                raise Problem("badNonce", "JWS has an invalid anti-replay nonce" if nonce else
                              "JWS has no anti-replay nonce")
            self.nonces.discard(nonce)

    # --- faults (management API) --------------------------------------------------------------------
    def take_fault(self, path):
        with self.lock:
            for f in self.faults:
                prefix = f.get("path_prefix", "*")
                if f["count"] > 0 and (prefix == "*" or path.startswith(prefix)):
                    f["count"] -= 1
                    self.stats["faultsInjected"] += 1
                    return dict(f)
            self.faults = [f for f in self.faults if f["count"] > 0]
        return None

    # --- directory ----------------------------------------------------------------------------------
    def directory(self, base):
        meta = {"externalAccountRequired": self.o.eab_required}
        if self.o.tos:
            meta["termsOfService"] = self.o.tos
        if self.o.profiles:
            meta["profiles"] = {n: f"certificates valid for {v} seconds" for n, v in self.o.profiles.items()}
        return {"newNonce": base + "/new-nonce", "newAccount": base + "/new-account",
                "newOrder": base + "/new-order", "revokeCert": base + "/revoke-cert",
                "keyChange": base + "/key-change", "renewalInfo": base + "/renewal-info", "meta": meta}

    # --- accounts (RFC 8555 §7.3) ------------------------------------------------------------------
    def account_json(self, base, a):
        d = {"status": a.status, "contact": a.contact, "orders": f"{base}/acct/{a.id}/orders",
             "termsOfServiceAgreed": a.tos, "key": a.jwk}
        if a.eab_kid:
            d["externalAccountBinding"] = {"kid": a.eab_kid}
        return d

    def _contacts(self, contact):
        if contact is None:
            return []
        if not isinstance(contact, list) or not all(isinstance(c, str) for c in contact):
            raise Problem("malformed", "contact must be an array of strings")
        for c in contact:
            if not c.startswith("mailto:"):
                raise Problem("unsupportedContact", f"contact {c!r} is not a mailto: URL")
            addr = c[len("mailto:"):]
            if not re.match(r"^[^@\s,?]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", addr):
                raise Problem("invalidContact", f"contact {c!r} is not a valid e-mail address")
        return contact

    def new_account(self, base, req):
        self.stats["newAccount"] += 1
        p = req.payload_json()
        with self.lock:
            existing = self.by_thumb.get(thumbprint(req.jwk))
            if existing and existing.status != "valid":
                raise Problem("unauthorized", f"the account for this key is {existing.status}", 403)
            if existing:
                return Reply(200, self.account_json(base, existing), headers={"Location": f"{base}/acct/{existing.id}"})
            if p.get("onlyReturnExisting") is True:
                raise Problem("accountDoesNotExist", "no account exists with the provided key")
        if self.o.tos and p.get("termsOfServiceAgreed") is not True:
            raise Problem("malformed", "the terms of service must be agreed to (termsOfServiceAgreed)")
        contact = self._contacts(p.get("contact"))
        eab_kid = None
        if "externalAccountBinding" in p:
            eab_kid = verify_eab(p["externalAccountBinding"], req.jwk, base + "/new-account", self.o.eab_keys)
        elif self.o.eab_required:
            raise Problem("externalAccountRequired", "this server requires an externalAccountBinding")
        with self.lock:
            a = Account(req.jwk, req.key, contact, True, eab_kid)
            if a.thumb in self.by_thumb:  # a concurrent request won the race
                a = self.by_thumb[a.thumb]
                return Reply(200, self.account_json(base, a), headers={"Location": f"{base}/acct/{a.id}"})
            self.accounts[a.id] = a
            self.by_thumb[a.thumb] = a
        return Reply(201, self.account_json(base, a), headers={"Location": f"{base}/acct/{a.id}"})

    def account_update(self, base, req, acct_id):
        a = req.account
        if acct_id != a.id:
            raise Problem("unauthorized", "the kid does not match the account being updated", 403)
        if req.is_post_as_get():
            return Reply(200, self.account_json(base, a), headers={"Location": f"{base}/acct/{a.id}"})
        p = req.payload_json()
        with self.lock:
            if "contact" in p:
                a.contact = self._contacts(p["contact"])
            if "status" in p:
                if p["status"] != "deactivated":
                    raise Problem("malformed", "the only status a client may set is 'deactivated'")
                a.status = "deactivated"
                for o in self.orders.values():  # RFC 8555 §7.3.6: pending authorizations are deactivated
                    for z in o.authzs if o.account is a else []:
                        if z.status == "pending":
                            z.status = "deactivated"
        return Reply(200, self.account_json(base, a), headers={"Location": f"{base}/acct/{a.id}"})

    def account_orders(self, base, req, acct_id):
        if acct_id != req.account.id:
            raise Problem("unauthorized", "the orders list belongs to another account", 403)
        with self.lock:
            urls = [f"{base}/order/{oid}" for oid in req.account.order_ids
                    if self.orders[oid].status in ("pending", "ready", "processing", "valid")]
        return Reply(200, {"orders": urls})

    def key_change(self, base, req, parse_inner):
        """RFC 8555 §7.3.5: the payload is a JWS signed by the new key whose payload names the account
        and the old key."""
        self.stats["keyChange"] += 1
        inner = parse_inner(req.payload_raw)
        if not isinstance(inner.jwk, dict) or inner.kid is not None:
            raise Problem("malformed", "keyChange inner JWS must have a jwk and no kid")
        if "nonce" in inner.protected:
            raise Problem("malformed", "keyChange inner JWS must not have a nonce")
        if inner.url != req.url:
            raise Problem("malformed", "keyChange inner JWS url must equal the outer url")
        from jws import public_key_from_jwk
        new_key = public_key_from_jwk(inner.jwk)
        inner.verify_with(new_key)
        p = inner.payload_json()
        a = req.account
        if p.get("account") != f"{base}/acct/{a.id}":
            raise Problem("malformed", "keyChange payload account does not match the outer kid")
        try:
            old_ok = thumbprint(p.get("oldKey")) == a.thumb
        except Problem:
            old_ok = False
        if not old_ok:
            raise Problem("malformed", "keyChange oldKey is not the account's current key")
        new_thumb = thumbprint(inner.jwk)
        with self.lock:
            other = self.by_thumb.get(new_thumb)
            if other is not None:
                raise Problem("conflict", "the new key is already in use by an account", 409,
                              headers={"Location": f"{base}/acct/{other.id}"})
            del self.by_thumb[a.thumb]
            a.jwk, a.key, a.thumb = inner.jwk, new_key, new_thumb
            self.by_thumb[new_thumb] = a
        return Reply(200, self.account_json(base, a), headers={"Location": f"{base}/acct/{a.id}"})

    # --- orders (RFC 8555 §7.4) ---------------------------------------------------------------------
    def _identifiers(self, ids):
        if not isinstance(ids, list) or not ids:
            raise Problem("malformed", "identifiers must be a non-empty array")
        if len(ids) > 100:
            raise Problem("rejectedIdentifier", "too many identifiers (max 100)")
        values, subs = [], []
        for ident in ids:
            if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
                raise Problem("malformed", "each identifier must be an object with type and value")
            typ, value = ident.get("type"), ident["value"].lower()
            if typ != "dns":
                subs.append({"type": "urn:ietf:params:acme:error:unsupportedIdentifier",
                             "detail": f"identifier type {typ!r} is not supported", "status": 400,
                             "identifier": ident})
                continue
            name = value[2:] if value.startswith("*.") else value
            labels = name.split(".")
            ok = (len(value) <= 253 and len(labels) >= 2 and all(_LABEL.match(lb) for lb in labels)
                  and not labels[-1].isdigit())
            if not ok:
                subs.append({"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                             "detail": f"{value!r} is not a valid DNS name for this CA", "status": 400,
                             "identifier": ident})
                continue
            if value not in values:
                values.append(value)
        if subs:
            if len(subs) == 1:
                raise Problem(subs[0]["type"], subs[0]["detail"], subproblems=subs)
            raise Problem("rejectedIdentifier", "some identifiers were rejected, see subproblems", subproblems=subs)
        return values

    def _challenge_types(self, wildcard):
        if wildcard:
            return ["dns-01"]
        return {"http": ["http-01", "dns-01"], "tls-alpn": ["tls-alpn-01", "dns-01"]}.get(
            self.o.validation, ["http-01", "dns-01", "tls-alpn-01"])

    def _check_replaces(self, account, cert_id, values):
        """RFC 9773 §5: the replaced certificate must be this account's, share an identifier, and not
        already be replaced by an order that is not invalid (that case is 409 alreadyReplaced)."""
        if not isinstance(cert_id, str):
            raise Problem("malformed", "replaces must be a certID string")
        ca_mod.parse_cert_id(cert_id)
        c = self.certs_by_cert_id.get(cert_id)
        if c is None:
            raise Problem("malformed", f"replaces names certificate {cert_id} which this server did not issue")
        if c.account is not account:
            raise Problem("unauthorized", f"certificate {cert_id} was not issued to this account", 403)
        plain = {v[2:] if v.startswith("*.") else v for v in values} | set(values)
        if not (set(c.names) & plain):
            raise Problem("malformed", f"certificate {cert_id} shares no identifier with this order")
        if c.replaced_by is not None and c.replaced_by.status != "invalid":
            raise Problem("alreadyReplaced", f"certificate {cert_id} is already replaced by order "
                          f"{c.replaced_by.id}", 409)
        return c

    def new_order(self, base, req):
        self.stats["newOrder"] += 1
        p = req.payload_json()
        values = self._identifiers(p.get("identifiers"))
        if "notBefore" in p or "notAfter" in p:
            raise Problem("malformed", "notBefore/notAfter are not supported by this CA")
        profile = p.get("profile")
        if profile is not None:
            if not isinstance(profile, str) or profile not in self.o.profiles:
                raise Problem("invalidProfile", f"profile {profile!r} is not offered by this server "
                              f"(offered: {sorted(self.o.profiles)})")
        elif self.o.default_profile:
            profile = self.o.default_profile
        with self.lock:
            a = req.account
            replaced = self._check_replaces(a, p["replaces"], values) if "replaces" in p else None
            authzs = []
            for v in values:
                wildcard = v.startswith("*.")
                if self.o.authz_reuse:  # RFC 8555 §7.4: a CA may reuse valid authorizations
                    now = ca_mod.utcnow()
                    old = next((z for z in self.authzs.values() if z.account is a and z.status == "valid"
                                and z.wildcard == wildcard and z.value == (v[2:] if wildcard else v)
                                and z.expires > now), None)
                    if old is not None:
                        authzs.append(old)
                        continue
                z = Authz(a, v[2:] if wildcard else v, wildcard, self._challenge_types(wildcard))
                self.authzs[z.id] = z
                for ch in z.challenges:
                    self.challenges[ch.id] = ch
                authzs.append(z)
            o = Order(a, values, authzs, profile, p.get("replaces"))
            self.orders[o.id] = o
            self.stats["ordersCreated"] += 1
            a.order_ids.append(o.id)
            if replaced is not None:
                replaced.replaced_by = o
            self._refresh_order(o)  # reused authorizations can make it ready at once
            return Reply(201, self.order_json(base, o), headers=self._order_headers(base, o))

    def _refresh_challenge(self, ch):
        if ch.status == "processing" and ch.auto_valid_at is not None and time.monotonic() >= ch.auto_valid_at:
            self._finish_challenge(ch, None)

    def _refresh_order(self, o):
        for z in o.authzs:
            for ch in z.challenges:
                self._refresh_challenge(ch)
        if o.status == "pending":
            st = [z.status for z in o.authzs]
            if any(s in ("invalid", "deactivated", "expired", "revoked") for s in st):
                o.status = "invalid"
                bad = [z for z in o.authzs if z.status != "valid" and z.status != "pending"]
                subs = [dict(ch.error, identifier={"type": "dns", "value": z.value})
                        for z in bad for ch in z.challenges if ch.error]
                o.error = {"type": "urn:ietf:params:acme:error:unauthorized", "status": 403,
                           "detail": "an authorization for this order failed", "subproblems": subs}
            elif all(s == "valid" for s in st):
                o.status = "ready"
            elif ca_mod.utcnow() > o.expires:
                o.status = "invalid"

    def order_json(self, base, o):
        d = {"status": o.status, "expires": rfc3339(o.expires),
             "identifiers": [{"type": "dns", "value": v} for v in o.identifiers],
             "authorizations": [f"{base}/authz/{z.id}" for z in o.authzs],
             "finalize": f"{base}/finalize/{o.id}"}
        if o.profile:
            d["profile"] = o.profile
        if o.replaces:
            d["replaces"] = o.replaces
        if o.error:
            d["error"] = o.error
        if o.status == "valid" and o.cert:
            d["certificate"] = f"{base}/cert/{o.cert.id}"
        if o.cert and o.status in ("processing", "valid"):
            d["notBefore"] = rfc3339(o.cert.leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc))
            d["notAfter"] = rfc3339(o.cert.leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc))
        return d

    def _order_headers(self, base, o):
        h = {"Location": f"{base}/order/{o.id}"}
        if o.status in ("pending", "processing") and self.o.retry_after > 0:
            h["Retry-After"] = str(self.o.retry_after)
        return h

    def _own(self, req, thing, what):
        if thing is None:
            raise Problem("malformed", f"{what} not found", 404)
        if thing.account is not req.account:
            raise Problem("unauthorized", f"{what} belongs to another account", 403)
        return thing

    def get_order(self, base, req, order_id):
        self.stats["orderPoll"] += 1
        if not req.is_post_as_get():
            raise Problem("malformed", "orders are read with POST-as-GET (empty payload)")
        with self.lock:
            o = self._own(req, self.orders.get(order_id), "order")
            self._refresh_order(o)
            if o.status == "processing" and o.cert is not None:  # cert None: a finalize is still running
                if o.processing_polls > 0:
                    o.processing_polls -= 1
                else:
                    o.status = "valid"
            return Reply(200, self.order_json(base, o), headers=self._order_headers(base, o))

    def finalize(self, base, req, order_id):
        self.stats["finalize"] += 1
        p = req.payload_json()
        with self.lock:
            o = self._own(req, self.orders.get(order_id), "order")
            self._refresh_order(o)
            if o.status != "ready":
                raise Problem("orderNotReady", f"order is {o.status}, not ready", 403)
            o.status = "processing"  # claim it so a concurrent finalize gets orderNotReady
        try:
            der = b64u_decode(p.get("csr"), "csr")
            pub, names = ca_mod.check_csr(der, o.identifiers, req.account.thumb,
                                          lambda k: thumbprint(jwk_from_public_key(k)))
            validity = self.o.profiles.get(o.profile, self.o.validity) if o.profile else self.o.validity
            leaf = self.ca.issue(pub, names, validity)
        except Exception:
            with self.lock:
                o.status = "ready"  # RFC 8555 §7.4: a bad CSR leaves the order ready for another try
            raise
        with self.lock:
            c = Cert(leaf, o)
            self.stats["certsIssued"] += 1
            self.certs[c.id] = c
            self.certs_by_cert_id[c.cert_id] = c
            o.cert = c
            o.processing_polls = self.o.processing_polls
            if o.processing_polls <= 0:
                o.status = "valid"
            return Reply(200, self.order_json(base, o), headers=self._order_headers(base, o))

    # --- authorizations and challenges (RFC 8555 §7.5) --------------------------------------------
    def authz_json(self, base, z):
        d = {"identifier": {"type": "dns", "value": z.value}, "status": z.status,
             "expires": rfc3339(z.expires), "challenges": [self.challenge_json(base, ch) for ch in z.challenges]}
        if z.wildcard:
            d["wildcard"] = True
        return d

    def challenge_json(self, base, ch):
        d = {"type": ch.type, "url": f"{base}/chall/{ch.id}", "token": ch.token, "status": ch.status}
        if ch.validated:
            d["validated"] = rfc3339(ch.validated)
        if ch.error:
            d["error"] = ch.error
        return d

    def get_authz(self, base, req, authz_id):
        self.stats["authzPoll"] += 1
        with self.lock:
            z = self._own(req, self.authzs.get(authz_id), "authorization")
            if not req.is_post_as_get():
                p = req.payload_json()
                if p.get("status") != "deactivated":
                    raise Problem("malformed", "the only authorization update is status 'deactivated'")
                if z.status not in ("pending", "valid"):
                    raise Problem("malformed", f"authorization is {z.status} and cannot be deactivated")
                z.status = "deactivated"
            for ch in z.challenges:
                self._refresh_challenge(ch)
            h = {"Retry-After": str(self.o.retry_after)} if z.status == "pending" and self.o.retry_after > 0 else {}
            return Reply(200, self.authz_json(base, z), headers=h)

    def challenge(self, base, req, chall_id):
        with self.lock:
            ch = self._own(req, self.challenges.get(chall_id), "challenge")
            z = ch.authz
            up = {"Link": f'<{base}/authz/{z.id}>;rel="up"'}

            def reply():
                # RFC 8555 §8.2: the challenge resource tells the client when to check again.
                h = dict(up)
                if ch.status in ("pending", "processing") and self.o.retry_after > 0:
                    h["Retry-After"] = str(self.o.retry_after)
                return Reply(200, self.challenge_json(base, ch), headers=h)

            if req.is_post_as_get():
                self._refresh_challenge(ch)
                return reply()
            req.payload_json()  # RFC 8555 §7.5.1: the response to a challenge is the JSON object {}
            self.stats["challenge"] += 1
            if ch.status != "pending" or z.status != "pending":
                self._refresh_challenge(ch)
                return reply()
            if any(c.status == "processing" for c in z.challenges):
                raise Problem("malformed", "another challenge of this authorization is being validated")
            ch.status = "processing"
            key_authz = ch.token + "." + req.account.thumb
            if self.o.validation == "auto":
                ch.auto_valid_at = time.monotonic()
            else:
                threading.Thread(target=self._validate, args=(ch, z.value, key_authz), daemon=True).start()
            return reply()

    def _validate(self, ch, domain, key_authz):
        if ch.type == "http-01":
            err = validation.http01(domain, ch.token, key_authz, self.o.http_port)
        elif ch.type == "tls-alpn-01":
            err = validation.tls_alpn01(domain, key_authz, self.o.tls_port)
        else:
            with self.lock:
                records = {k: list(v) for k, v in self.dns_txt.items()}
            err = validation.dns01(domain, key_authz, records)
        with self.lock:
            self._finish_challenge(ch, err)

    def _finish_challenge(self, ch, err):
        z = ch.authz
        if err is None:
            ch.status, ch.validated, z.status = "valid", ca_mod.utcnow(), "valid"
            self.stats["validationsOk"] += 1
        else:
            ch.status, z.status = "invalid", "invalid"
            ch.error = {"type": "urn:ietf:params:acme:error:" + err[0], "detail": err[1], "status": 403}
            self.stats["validationsFailed"] += 1

    # --- certificates, revocation (RFC 8555 §7.4.2, §7.6) -----------------------------------------
    def download(self, base, req, cert_id, alt):
        self.stats["certDownload"] += 1
        if not req.is_post_as_get():
            raise Problem("malformed", "certificates are fetched with POST-as-GET (empty payload)")
        with self.lock:
            c = self._own(req, self.certs.get(cert_id), "certificate")
        if alt >= len(self.ca.chains):
            raise Problem("malformed", "no such alternate chain", 404)
        links = [f'<{base}/dir>;rel="index"']
        for n in range(len(self.ca.chains)):
            if n != alt:
                links.append(f'<{base}/cert/{c.id}' + (f"/{n}" if n else "") + '>;rel="alternate"')
        return Reply(200, self.ca.chain_pem(c.leaf, alt).encode(), "application/pem-certificate-chain",
                     headers={"Link": links})

    def revoke(self, base, req):
        self.stats["revokeCert"] += 1
        p = req.payload_json()
        try:
            leaf = x509.load_der_x509_certificate(b64u_decode(p.get("certificate"), "certificate"))
        except ValueError:
            raise Problem("malformed", "certificate is not DER X.509")
        reason = p.get("reason", 0)
        if not isinstance(reason, int) or isinstance(reason, bool) or reason not in REVOCATION_REASONS:
            raise Problem("badRevocationReason", f"revocation reason {reason!r} is not allowed")
        with self.lock:
            c = self.certs_by_cert_id.get(ca_mod.cert_id_of(leaf)) if _has_aki(leaf) else None
            if c is None or c.leaf != leaf:
                raise Problem("malformed", "certificate was not issued by this server", 404)
            if req.account is not None:
                authorized = c.account is req.account or all(
                    any(z.account is req.account and z.status == "valid" and not z.wildcard and z.value == n
                        for z in self.authzs.values()) for n in c.names)
                if not authorized:
                    raise Problem("unauthorized", "this account may not revoke the certificate", 403)
            elif thumbprint(jwk_from_public_key(leaf.public_key())) != thumbprint(req.jwk):
                raise Problem("unauthorized", "the JWS key is not the certificate's key", 403)
            if c.revoked_at is not None:
                raise Problem("alreadyRevoked", "certificate is already revoked")
            c.revoked_reason, c.revoked_at = reason, ca_mod.utcnow()
        return Reply(200, b"", "text/plain")

    # --- ARI (RFC 9773 §4) --------------------------------------------------------------------------
    def renewal_info(self, cert_id):
        self.stats["renewalInfo"] += 1
        ca_mod.parse_cert_id(cert_id)
        with self.lock:
            ov = self.ari_overrides.get(cert_id)
            c = self.certs_by_cert_id.get(cert_id)
        retry = str(self.o.ari_retry_after)
        if ov is not None:
            retry = str(ov.get("retry_after", retry))
            if "raw" in ov:
                return Reply(200, ov["raw"].encode(), headers={"Retry-After": retry})
            body = {"suggestedWindow": {"start": ov["start"], "end": ov["end"]}}
            if ov.get("explanation_url"):
                body["explanationURL"] = ov["explanation_url"]
            return Reply(200, body, headers={"Retry-After": retry})
        if c is None:
            raise Problem("malformed", f"no certificate with certID {cert_id}", 404)
        nb = c.leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
        na = c.leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        now = ca_mod.utcnow()
        if c.revoked_at is not None:  # renew immediately: a window entirely in the past
            start, end = c.revoked_at - datetime.timedelta(hours=2), c.revoked_at - datetime.timedelta(hours=1)
        elif na <= now:  # expired: renew immediately too
            start, end = now - datetime.timedelta(hours=2), now - datetime.timedelta(hours=1)
        else:
            life, f = na - nb, self.o.ari_window_fraction
            start, end = nb + life * f, nb + life * (f + (1 - f) / 2)
        return Reply(200, {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}},
                     headers={"Retry-After": retry})


def _has_aki(cert):
    try:
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        return True
    except x509.ExtensionNotFound:
        return False


def dumps(obj):
    return json.dumps(obj, indent=1).encode()
