#pragma once
// Kernel TLS (the kernel's "tls" upper-layer protocol, Linux 4.13+): whether this kernel offers
// it. edgecert encrypts TLS records in user space (OpenSSL) on every kernel; the terminator
// reports what the kernel offers at start (log line and edgecert_ktls_kernel_available), so an
// operator comparing hosts knows which record layer each one could use (docs/tls-policy.md).
#include <string>

namespace edgecert::proxy {

struct KtlsSupport {
    bool kernel = false;  // setsockopt(TCP_ULP, "tls") succeeded on an established TCP socket
    std::string detail;   // why not, when it is not (e.g. "No such file or directory")
};

// Opens a loopback TCP connection and attaches the "tls" ULP to one end (a socket needs to be
// established for that), then closes both. About 100 µs; call once at start.
KtlsSupport probe_ktls();

}  // namespace edgecert::proxy
