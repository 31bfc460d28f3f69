"""dns-01 on the Kubernetes path: fakekube (kubectl applies the CRDs, a TSIG Secret, Issuers with an
rfc2136 solver and a webhook solver, and Certificates), a separate `edgecert controller` process,
an in-test webhook adapter that runs nsupdate, a real BIND (named)
with the TSIG key, and Pebble validating dns-01 against that BIND. No terminator is needed: the
controller publishes the TXT records itself."""
import base64

import pytest
from cryptography import x509

import apiserver_fixture
from bind_fixture import Bind
from controller_fixture import CRDS, Controller, apply, certificate, condition, get_json, issuer, secret_cert, wait_until
from pebble_fixture import Pebble
from test_dns01 import Webhook  # the in-test adapter (POST → nsupdate)

pytestmark = pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")

NAME = "_acme-challenge.example.test"


def tsig_secret(name, value):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "Opaque", "data": {"secret": base64.b64encode(value.encode()).decode()}}


def dns01_solver(bind, secret_name, **selector):
    s = {"dns01": {"rfc2136": {"nameserver": bind.server, "tsigKeyName": bind.key_name,
                               "tsigAlgorithm": "HMACSHA256",
                               "tsigSecretSecretRef": {"name": secret_name, "key": "secret"}},
                   "pollInterval": "200ms", "propagationTimeout": "20s"}}
    if selector:
        s["selector"] = selector
    return s


def test_controller_issues_a_wildcard_through_rfc2136_and_reports_a_wrong_key(tmp_path):
    bind = Bind(str(tmp_path / "bind"))
    pebble = Pebble(str(tmp_path / "pebble"), dns_server=bind.server)
    srv = apiserver_fixture.start(tmp_path / "api", tls=True, token="dns01-t0k3n")
    hook = Webhook(bind)
    ctl = None
    try:
        srv.kubectl("apply", "-f", CRDS)
        ca_pem = open(pebble.ca_file).read()
        secret = open(bind.secret_file).read().strip()
        apply(srv, tsig_secret("tsig-good", secret))
        apply(srv, tsig_secret("tsig-bad", "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyBzZWNyZXQ="))
        # http01 for everything else; dns01 for the zone (and, being the only dns01 solver, for
        # every wildcard).
        apply(srv, issuer("dns", pebble.dir_url, ca_pem,
                          solvers=[{"http01": {}}, dns01_solver(bind, "tsig-good", dnsZones=["example.test"])]))
        apply(srv, issuer("dns-bad", pebble.dir_url, ca_pem, solvers=[dns01_solver(bind, "tsig-bad")]))
        apply(srv, issuer("dns-hook", pebble.dir_url, ca_pem,
                          solvers=[{"dns01": {"webhook": {"url": hook.url, "nameserver": bind.server},
                                              "pollInterval": "200ms"}}]))
        apply(srv, certificate("wild", ["*.example.test", "example.test"], "dns"))
        apply(srv, certificate("bad", ["bad.example.test"], "dns-bad"))
        apply(srv, certificate("hooked", ["hook.example.test"], "dns-hook"))
        ctl = Controller(srv, str(tmp_path), "--leader-elect=false").wait_ready()

        leaf = wait_until(lambda: secret_cert(srv, "wild"), 60, interval=0.2, what="Secret wild")
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == ["*.example.test", "example.test"]
        assert pebble.log().count("set VALID by completed challenge") >= 2  # real dns-01 against BIND
        wait_until(lambda: bind.txt(NAME) == [], 10, what="the TXT records removed")
        assert get_json(srv, "challenges", "-A")["items"] == []  # dns-01 needs no Challenge objects

        # The wrong key: a clear BadConfig-style failure on the Certificate, nothing left in DNS.
        def failed():
            c = get_json(srv, "certificate", "bad", "-n", "default")
            r = condition(c, "Ready")
            return r if r and "TSIG verification failed (BADSIG/BADKEY) for key edgecert-test" in r.get("message", "") else None
        wait_until(failed, 30, interval=0.2, what="Certificate bad Ready=False with the TSIG error")
        assert bind.txt("_acme-challenge.bad.example.test") == []
        assert secret_cert(srv, "bad") is None
        assert secret not in ctl.logs()

        # The webhook solver from the controller: the adapter writes to BIND with nsupdate.
        wait_until(lambda: secret_cert(srv, "hooked"), 60, interval=0.2, what="Secret hooked")
        assert [c["action"] for c in hook.calls if c["dnsName"] == "hook.example.test"] == ["present", "cleanup"]
        assert bind.txt("_acme-challenge.hook.example.test") == []
    finally:
        hook.stop()
        if ctl:
            ctl.stop()
        srv.stop()
        pebble.stop()
        bind.stop()
