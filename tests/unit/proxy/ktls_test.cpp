#include "proxy/ktls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace edgecert::proxy {
namespace {

std::string available_ulps() {
    std::ifstream f("/proc/sys/net/ipv4/tcp_available_ulp");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The probe agrees with the kernel's own list: once a "tls" ULP has been attached (which loads
// the module where there is one), the kernel lists it; where the probe fails it says why.
TEST(Ktls, ProbeAgreesWithTheKernelsListOfUlps) {
    KtlsSupport k = probe_ktls();
    std::string ulps = available_ulps();
    bool listed = ulps.find("tls") != std::string::npos;
    EXPECT_EQ(k.kernel, listed) << "tcp_available_ulp: " << ulps << " detail: " << k.detail;
    if (!k.kernel) {
        EXPECT_NE(k.detail.find("TCP_ULP"), std::string::npos) << k.detail;
    } else {
        EXPECT_TRUE(k.detail.empty());
    }
}

TEST(Ktls, ProbeIsRepeatableAndLeavesNoDescriptorOpen) {
    int before = ::dup(0);
    ::close(before);
    KtlsSupport a = probe_ktls(), b = probe_ktls();
    EXPECT_EQ(a.kernel, b.kernel);
    int after = ::dup(0);
    ::close(after);
    EXPECT_EQ(before, after);  // the lowest free descriptor is the same: nothing leaked
}

}  // namespace
}  // namespace edgecert::proxy
