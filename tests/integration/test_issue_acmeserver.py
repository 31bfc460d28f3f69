"""`edgecert issue/renew` against the in-repo ACME server for what Pebble 2.4 cannot do:
ARI renewal windows and `replaces`, profiles, rate limits, 500s, malformed JSON, and resuming an
order after a failure. The server verifies every JWS signature and nonce."""
import json
import os

import pytest

from acmeserver_fixture import AcmeServer, free_port
from edgecert_helpers import cert_field, run, tree


@pytest.fixture
def srv(tmp_path):
    with AcmeServer(tmp_path / "acme", profiles="classic=7776000,shortlived=518400",
                    default_profile="classic") as s:
        yield s


def args(srv, out, domains, *extra, cmd="issue"):
    return [cmd, "--server", srv.dir_url, "--ca-bundle", srv.ca_bundle, "--out", str(out),
            "--domains", domains, "--email", "ops@example.test",
            "--http-port", f"127.0.0.1:{free_port()}", *extra]


def test_profile_is_requested_and_unknown_profile_refused_before_ordering(srv, tmp_path):
    out = tmp_path / "out"
    run(*args(srv, out, "p.example.test", "--profile", "shortlived"), check=True)
    orders = srv.orders()
    assert [o.get("profile") for o in orders] == ["shortlived"]
    before = srv.stats().get("newOrder", 0)
    r = run(*args(srv, out, "q.example.test", "--profile", "nosuch"))
    assert r.returncode == 1 and "nosuch" in r.stderr
    assert srv.stats().get("newOrder", 0) == before, "an unknown profile must be refused before ordering"
    assert not (out / "q.example.test").exists()


def test_ari_window_decides_and_replaces_is_sent(srv, tmp_path):
    out = tmp_path / "out"
    run(*args(srv, out, "ari.example.test"), check=True)
    meta = json.load(open(out / "ari.example.test" / "certificate.json"))
    cert_id = meta["ari_cert_id"]
    r = run(*args(srv, out, "ari.example.test", cmd="renew"), check=True)
    assert "not due" in r.stdout and "ARI window" in r.stdout
    # the CA moves the window into the past (e.g. after a revocation): renew now, with replaces
    srv.set_renewal_info(cert_id, start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z",
                         explanation_url="https://ca.example/incident")
    s1 = cert_field(str(out / "ari.example.test" / "tls.crt"), "serial")
    r = run(*args(srv, out, "ari.example.test", cmd="renew"), check=True)
    assert "renewed" in r.stdout and "ca.example/incident" in r.stdout
    assert cert_field(str(out / "ari.example.test" / "tls.crt"), "serial") != s1
    assert srv.orders()[-1].get("replaces") == cert_id


@pytest.mark.parametrize("fault,expect", [
    (dict(path_prefix="/new-order", status=500, type="serverInternal", count=50), "serverInternal"),
    (dict(path_prefix="/dir", status=200, malformed=True, count=50), "malformed"),
    (dict(path_prefix="/new-order", status=429, type="rateLimited", retry_after=3600, count=50),
     "retry after 3600"),
])
def test_ca_faults_give_one_clear_error_and_no_files(srv, tmp_path, fault, expect):
    out = tmp_path / "out"
    srv.fail(**fault)
    r = run(*args(srv, out, "fault.example.test"))
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("edgecert issue:")]
    assert len(errors) == 1 and expect in r.stderr, r.stderr
    assert not (out / "fault.example.test").exists()
    assert not [f for f in tree(out) if ".tmp-" in f]


def test_failed_finalize_is_resumed_without_a_second_order(srv, tmp_path):
    out = tmp_path / "out"
    srv.fail(path_prefix="/finalize", status=503, type="serverInternal", count=50)
    r = run(*args(srv, out, "resume.example.test"))
    assert r.returncode == 1
    pending = out / "resume.example.test" / ".pending"
    assert (pending / "order.json").exists() and (pending / "tls.key").exists()
    assert oct(os.stat(pending / "tls.key").st_mode & 0o777) == "0o600"
    assert not (out / "resume.example.test" / "tls.crt").exists()
    srv.mgmt("POST", "clear-faults", {})
    orders_before = srv.stats().get("newOrder", 0)
    run(*args(srv, out, "resume.example.test"), check=True)
    assert srv.stats().get("newOrder", 0) == orders_before, "the order must be resumed, not placed again"
    assert (out / "resume.example.test" / "tls.crt").exists()
    assert not pending.exists()
