#!/usr/bin/python3
"""fakekube: the in-repo test Kubernetes API server. See README.md in this folder.

usage: run --port N [--tls-cert F --tls-key F [--client-ca F]] [--token-file F]
           [--authorization-mode AlwaysAllow|RBAC] [--history N]
           [--bookmark-interval S] [--watch-timeout S] [--version-minor M]
Prints "ready port=<N>" on stdout once listening; SIGTERM stops it.
"""
import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakekube.server import FakeServer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-cert", help="PEM certificate (chain); enables HTTPS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--token-file", help="accepted bearer tokens, one per line; re-read per "
                                         "request; wrong/missing token -> 401")
    ap.add_argument("--client-ca", help="PEM CA; client certificates it signed authenticate "
                                        "(HTTPS only; alone or beside --token-file)")
    ap.add_argument("--authorization-mode", default="AlwaysAllow", choices=["AlwaysAllow", "RBAC"],
                    help="RBAC: Roles/ClusterRoles and their bindings decide (system:masters "
                         "may do anything); needs --token-file or --client-ca")
    ap.add_argument("--history", type=int, default=1000,
                    help="watch events kept; older resourceVersions answer 410 Expired")
    ap.add_argument("--bookmark-interval", type=float, default=5.0,
                    help="seconds between BOOKMARKs on watches with allowWatchBookmarks")
    ap.add_argument("--watch-timeout", type=float, default=1800.0,
                    help="server-side watch lifetime when the client sends no timeoutSeconds")
    ap.add_argument("--version-minor", default="32",
                    help="minor version in /version (the kubectl dispatcher runs kubectl.1.<M>)")
    ap.add_argument("--request-log", type=int, default=5000,
                    help="requests kept for GET /_debug/requests")
    cfg = ap.parse_args(argv)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if cfg.client_ca and not cfg.tls_cert:
        ap.error("--client-ca needs --tls-cert/--tls-key")
    if cfg.authorization_mode == "RBAC" and not (cfg.token_file or cfg.client_ca):
        ap.error("--authorization-mode=RBAC needs --token-file or --client-ca (who is asking?)")
    srv = FakeServer((cfg.host, cfg.port), cfg)

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready port=%d" % srv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.2)
    srv.store.drop_watches()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
