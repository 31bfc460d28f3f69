#pragma once
// dns-01 record providers: something that publishes and removes one `_acme-challenge` TXT value
// (RFC 8555 §8.4). Rfc2136Provider updates a server itself; WebhookProvider asks an external
// adapter over HTTP (docs/dns01.md has the JSON contract). Both can wait for propagation to every
// authoritative server before returning from present(). The acme::ChallengeSolver adapter that
// computes the value lives in src/controller (src/dns knows nothing of ACME).
#include <memory>
#include <optional>
#include <string>

#include "dns/propagation.h"
#include "dns/rfc2136.h"
#include "edgecert/base/http.h"
#include "edgecert/base/result.h"

namespace edgecert::dns {

struct Dns01Record {
    std::string fqdn;      // "_acme-challenge.example.com."
    std::string dns_name;  // the authorization's identifier: "example.com" (also for *.example.com)
    std::string value;     // base64url(SHA-256(key authorization))
    std::string uid;       // stable per challenge (the challenge URL): lets a webhook pair calls
};

class Dns01Provider {
  public:
    virtual ~Dns01Provider() = default;
    // Publishes only this value (a wildcard and its base share one name with two values) and,
    // when configured, waits until every authoritative server answers it.
    virtual Status present(const Dns01Record& rec) = 0;
    // Removes only this value. Also called after a failed present().
    virtual Status cleanup(const Dns01Record& rec) = 0;
};

class Rfc2136Provider final : public Dns01Provider {
  public:
    // `checker` may be null (no propagation wait).
    Rfc2136Provider(std::unique_ptr<Rfc2136Client> client,
                    std::unique_ptr<PropagationChecker> checker)
        : client_(std::move(client)), checker_(std::move(checker)) {}
    Status present(const Dns01Record& rec) override;
    Status cleanup(const Dns01Record& rec) override;

  private:
    std::unique_ptr<Rfc2136Client> client_;
    std::unique_ptr<PropagationChecker> checker_;
};

struct WebhookOptions {
    std::string url;
    std::chrono::milliseconds timeout{30'000};  // per request
    std::string zone;  // sent as "zone"; empty: found by SOA walk when `zone_finder` is set
};

class WebhookProvider final : public Dns01Provider {
  public:
    // `http` must outlive the provider. `zone_finder` (for "zone" and the propagation check) and
    // `checker` may be null.
    static Result<std::unique_ptr<WebhookProvider>> create(
        WebhookOptions opts, HttpClient& http, std::unique_ptr<Rfc2136Client> zone_finder,
        std::unique_ptr<PropagationChecker> checker);
    Status present(const Dns01Record& rec) override;
    Status cleanup(const Dns01Record& rec) override;

    // The request body (docs/dns01.md).
    static std::string body(std::string_view action, const Dns01Record& rec,
                            const std::string& zone);

  private:
    WebhookProvider(WebhookOptions o, HttpClient& h, std::unique_ptr<Rfc2136Client> zf,
                    std::unique_ptr<PropagationChecker> c)
        : opts_(std::move(o)), http_(h), zone_finder_(std::move(zf)), checker_(std::move(c)) {}
    Result<std::string> zone_of(const Dns01Record& rec);
    Status call(std::string_view action, const Dns01Record& rec, const std::string& zone);

    WebhookOptions opts_;
    HttpClient& http_;
    std::unique_ptr<Rfc2136Client> zone_finder_;
    std::unique_ptr<PropagationChecker> checker_;
};

}  // namespace edgecert::dns
