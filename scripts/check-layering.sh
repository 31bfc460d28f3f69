#!/usr/bin/env bash
# Enforces DESIGN.md's dependency rules with a grep over #include lines.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
fail=0
check() {  # check DIR REGEX WHY
  local hits
  hits=$(grep -rnE "^\s*#\s*include\s*[<\"]($2)" "$1" 2>/dev/null || true)
  if [ -n "$hits" ]; then echo "layering: $3"; echo "$hits" | sed 's/^/  /'; fail=1; fi
}
check acme 'edgecert/k8s/|k8s/|app/|platform/|controller/|tls/|proxy/|store/' "acme/ depends on base only"
check include/edgecert/acme 'edgecert/k8s/|k8s/|app/|platform/|controller/|tls/|proxy/|store/' "acme/ depends on base only"
check k8s 'edgecert/acme/|acme/|app/|platform/|controller/|tls/|proxy/|store/' "k8s/ depends on base only"
check include/edgecert/k8s 'edgecert/acme/|acme/|app/|platform/|controller/|tls/|proxy/|store/' "k8s/ depends on base only"
check src/tls 'edgecert/acme/|edgecert/k8s/|acme/|k8s/|controller/|app/' "src/tls knows nothing of ACME or Kubernetes"
check src/proxy 'edgecert/acme/|edgecert/k8s/|acme/|k8s/|controller/|app/' "src/proxy knows nothing of ACME or Kubernetes"
check src/dns 'edgecert/acme/|edgecert/k8s/|acme/|k8s/|controller/|app/|platform/|tls/|proxy/|store/' "src/dns depends on base only (ldns for the wire format)"
check src/pki 'edgecert/k8s/|k8s/|app/|platform/|controller/|tls/|proxy/|store/|dns/|edgecert/acme/(client|order|types|ari|problem)' "src/pki depends on base and acme/crypto.h only"
check include/edgecert/base 'edgecert/acme/|edgecert/k8s/|curl/|cpprest/' "base is header-only and independent"
# cpprestsdk and libcurl stay behind src/platform
for d in acme k8s src/tls src/proxy src/store src/controller src/app include; do
  check "$d" 'curl/curl.h|cpprest/' "only src/platform touches libcurl and cpprestsdk"
done
[ $fail = 0 ] && echo "layering: ok"
exit $fail
