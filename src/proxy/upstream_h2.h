#pragma once
// Offering h2 to clients is a promise about the upstream: the terminator forwards the decrypted
// bytes unchanged, so a client that negotiated h2 sends the HTTP/2 connection preface to the
// upstream (RFC 9113 §3.4, "prior knowledge"). An HTTP/1.1-only upstream answers that with a 400
// or a close, and the client sees an empty reply. So h2 is offered only while the upstream is
// known to answer the preface with a SETTINGS frame:
//
//  - at start (and again with backoff while it does not), a probe connects, sends the PROXY
//    header the data plane would send (as a LOCAL command: no client address), the client
//    preface and an empty SETTINGS frame, and waits for the server's first frame;
//  - on every client connection that negotiated h2, the worker checks the upstream's first
//    bytes the same way (h2_preface_verdict). If they are not a SETTINGS frame, that client gets
//    our SETTINGS and RST_STREAM(HTTP_1_1_REQUIRED) for each stream it opened instead of the
//    upstream's bytes (h2_refuse_frames: its requests were not processed, so it retries them;
//    curl and Chromium retry over HTTP/1.1) and the gate stops offering h2 until a probe
//    succeeds again.
//
// The gate's thread is control plane (blocking connect/poll with a deadline); the data plane
// only calls report_mismatch(), which never blocks on I/O.
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/proxy_protocol.h"

namespace edgecert::proxy {

enum class UpstreamProtocol { Http1, H2c };

// RFC 9113 §3.4: the server connection preface is a SETTINGS frame, sent first.
enum class PrefaceVerdict { NeedMore, Settings, NotH2 };
PrefaceVerdict h2_preface_verdict(std::string_view first_bytes);

// Follows the frames a client sends (after its 24-byte preface, RFC 9113 §3.4, §4.1) in the
// pieces they are read, and keeps the highest stream it opened with HEADERS: those are the
// streams to reset if the upstream turns out not to speak HTTP/2.
struct H2StreamTracker {
    uint32_t max_stream = 0;
    bool settings_acked = false;  // a SETTINGS frame with the ACK flag: our SETTINGS was processed
    uint32_t skip = 24;           // bytes left of the preface or of the current frame's payload
    uint8_t have = 0;             // bytes of the next frame header seen so far
    unsigned char hdr[9] = {};
    void feed(std::string_view b);
};

// Refuses streams from_stream..to_stream (client streams: odd ids) of an h2 client whose
// upstream does not speak HTTP/2: RST_STREAM with HTTP_1_1_REQUIRED (RFC 9113 §6.4, §7), which
// curl and Chromium answer by retrying that request on a new connection over HTTP/1.1. With
// `preface`, our server preface (an empty SETTINGS) and the ACK of the client's SETTINGS come
// first. No GOAWAY, and the connection stays open until the client closes it: curl 7.88 fails
// the request instead of retrying when the refusal comes with a GOAWAY or a close (measured).
std::string h2_refuse_frames(uint32_t from_stream, uint32_t to_stream, bool preface);

// What the upstream answered, in one line for the log: the first line of an HTTP/1 answer,
// "closed the connection without answering", or a hex dump of the first bytes.
std::string describe_upstream_answer(std::string_view first_bytes);

struct H2ProbeResult {
    enum class Kind { Speaks, NotH2, Unreachable } kind = Kind::Unreachable;
    std::string detail;  // NotH2: what it answered; Unreachable: the connect/read error
};

// Blocking; call only from a control-plane thread.
H2ProbeResult probe_h2c(const sockaddr_storage& addr, socklen_t len, ProxyProtocol pp,
                        std::chrono::milliseconds timeout);

// Decides whether h2 is offered. `set_offer` is called (from the gate's thread) on every change;
// h2 is not offered until the first probe succeeded.
class H2Gate {
  public:
    struct Options {
        std::string upstream_name;  // for the log line
        sockaddr_storage addr{};
        socklen_t addr_len = 0;
        ProxyProtocol proxy_protocol = ProxyProtocol::None;
        std::chrono::milliseconds probe_timeout{3000};
        std::chrono::milliseconds retry_min{2000}, retry_max{60'000};
    };
    H2Gate(Options opts, std::function<void(bool)> set_offer);
    ~H2Gate();
    H2Gate(const H2Gate&) = delete;
    H2Gate& operator=(const H2Gate&) = delete;

    void start();
    void stop();
    // Data plane: an h2 client connection got something else than SETTINGS from the upstream.
    void report_mismatch(std::string_view first_bytes);

    bool offered() const { return offered_.load(std::memory_order_relaxed); }
    uint64_t probes_ok() const { return probes_ok_.load(std::memory_order_relaxed); }
    uint64_t probes_not_h2() const { return probes_not_h2_.load(std::memory_order_relaxed); }
    uint64_t probes_unreachable() const {
        return probes_unreachable_.load(std::memory_order_relaxed);
    }
    uint64_t mismatches() const { return mismatches_.load(std::memory_order_relaxed); }

  private:
    void run();
    void apply(const H2ProbeResult& r, bool from_client);

    Options opts_;
    std::function<void(bool)> set_offer_;
    std::atomic<bool> offered_{false};
    std::atomic<uint64_t> probes_ok_{0}, probes_not_h2_{0}, probes_unreachable_{0}, mismatches_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false, recheck_ = false;
    std::string mismatch_detail_;
    H2ProbeResult::Kind last_ = H2ProbeResult::Kind::Speaks;
    bool logged_once_ = false;
    std::thread thread_;
};

}  // namespace edgecert::proxy
