// RFC 8555 client: transport (nonces, JWS, retries) and the account/order/challenge resources.
#include "edgecert/acme/client.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <mutex>

#include "acme/wire.h"
#include "edgecert/acme/problem.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/version.h"

namespace edgecert::acme {

using wire::json;
using namespace std::chrono_literals;

namespace {

constexpr size_t kMaxPooledNonces = 32;
constexpr const char* kJoseJson = "application/jose+json";
constexpr const char* kPemChain = "application/pem-certificate-chain";

// Adds where a malformed body came from; the decoders do not know the URL or status.
Error from_response(Error e, std::string_view url, int status) {
    e.message += fmt::format(" (from {}, HTTP {})", url, status);
    e.http_status = status;
    return e;
}

// RFC 3986 §5.2 for the forms CAs use in Location and Link: absolute, network-path ("//h/p"),
// absolute-path ("/p") and relative-path ("p").
std::string resolve_url(std::string_view base, std::string_view ref) {
    if (ref.find("://") != std::string_view::npos) return std::string(ref);
    size_t scheme_end = base.find("://");
    if (scheme_end == std::string_view::npos) return std::string(ref);
    if (ref.starts_with("//"))
        return std::string(base.substr(0, scheme_end + 1)) + std::string(ref);
    size_t path_start = base.find('/', scheme_end + 3);
    std::string origin(base.substr(0, path_start));
    if (ref.starts_with("/")) return origin + std::string(ref);
    std::string_view path = path_start == std::string_view::npos ? "/" : base.substr(path_start);
    path = path.substr(0, path.find_first_of("?#"));
    return origin + std::string(path.substr(0, path.rfind('/') + 1)) + std::string(ref);
}

std::string seconds_text(std::chrono::milliseconds d) {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    return fmt::format("{} s", s);
}

}  // namespace

struct Client::Impl {
    HttpClient& http;
    Clock& clock;
    const ClientOptions opts;

    // Guards everything below; never held across I/O.
    mutable std::mutex mu;
    std::optional<Directory> dir;
    std::deque<std::string> nonces;
    std::optional<PrivateKey> key;
    std::string kid;

    Impl(HttpClient& h, Clock& c, ClientOptions o) : http(h), clock(c), opts(std::move(o)) {}

    struct Account {
        PrivateKey key;
        std::string kid;
    };
    Result<Account> account() const {
        std::lock_guard l(mu);
        if (!key || kid.empty())
            return Error(ErrorCode::InvalidConfig, "no ACME account: register or load one first");
        return Account{*key, kid};
    }

    HttpRequest base_request(std::string method, std::string url) const {
        HttpRequest r;
        r.method = std::move(method);
        r.url = std::move(url);
        r.timeout = opts.request_timeout;
        r.cancel = opts.cancel;
        r.headers.emplace_back("User-Agent", opts.user_agent);
        return r;
    }

    void remember_nonce(const HttpResponse& resp) {
        if (auto n = resp.header("replay-nonce"); n && !n->empty()) {
            std::lock_guard l(mu);
            nonces.push_back(*n);
            while (nonces.size() > kMaxPooledNonces) nonces.pop_front();
        }
    }

    Status check_cancel() const {
        if (opts.cancel && opts.cancel->load())
            return Error(ErrorCode::Transient, "ACME request cancelled");
        return ok_status();
    }

    // Sleeps through the Clock in slices of at most 1 s so a cancellation is noticed promptly.
    Status wait(std::chrono::milliseconds d) {
        while (d > 0ms) {
            EC_TRY(check_cancel());
            auto slice = std::min<std::chrono::milliseconds>(d, 1s);
            clock.sleep_for(slice);
            d -= slice;
        }
        return check_cancel();
    }

    // One exchange, reported to the on_request hook.
    Result<HttpResponse> exchange(const HttpRequest& req, std::string_view resource) {
        EC_TRY(check_cancel());
        const auto start = clock.steady_now();
        auto r = http.send(req);
        if (r.ok()) remember_nonce(*r);
        if (opts.on_request) {
            RequestEvent ev;
            ev.method = req.method;
            ev.resource = resource;
            ev.status = r.ok() ? r->status : 0;
            std::string type;
            if (r.ok() && !r->success())
                if (auto p = parse_problem(r->body)) type = p->type;
            ev.problem_type = type;
            ev.duration =
                std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - start);
            opts.on_request(ev);
        }
        if (!r.ok()) return r.error().with_context(fmt::format("{} {}", req.method, req.url));
        return r;
    }

    // Retried inside the client: transport failures and 5xx. A Transient error from a 4xx (a
    // proxy page, say) goes back to the caller, whose own backoff is much longer.
    static bool retry_here(const Error& e) {
        return e.code == ErrorCode::Transient && (e.http_status == 0 || e.http_status >= 500);
    }

    // Backoff before transient retry n (1-based): Retry-After if the CA sent one (≤ 30 s),
    // otherwise 1 s, 2 s, 4 s...
    std::chrono::milliseconds transient_backoff(
        int n, const std::optional<std::chrono::seconds>& ra) const {
        if (ra) return std::clamp<std::chrono::milliseconds>(*ra, 1s, 30s);
        return std::chrono::milliseconds(1000LL << std::min(n - 1, 5));
    }

    // Unauthenticated request (directory, newNonce, renewalInfo) with bounded transient retries.
    // Returns any HTTP response that is not a 5xx; the caller interprets the status.
    Result<HttpResponse> send_plain(const std::string& method, const std::string& url,
                                    std::string_view resource) {
        for (int attempt = 1;; ++attempt) {
            auto r = exchange(base_request(method, url), resource);
            std::optional<Error> err;
            if (!r.ok()) {
                err = r.error();
            } else {
                if (r->status < 500) return std::move(r).value();
                err = response_to_error(*r, url, clock.now());
            }
            if (!retry_here(*err) || attempt > opts.max_transient_retries) return *err;
            EC_TRY(wait(transient_backoff(attempt, err->retry_after)));
        }
    }

    Result<Directory> directory() {
        {
            std::lock_guard l(mu);
            if (dir) return *dir;
        }
        EC_TRY_ASSIGN(auto resp, send_plain("GET", opts.directory_url, "directory"));
        if (!resp.success()) return response_to_error(resp, opts.directory_url, clock.now());
        auto d = parse_directory(resp.body);
        if (!d) return from_response(d.error(), opts.directory_url, resp.status);
        std::lock_guard l(mu);
        dir = *d;
        return *dir;
    }

    std::optional<std::string> pop_nonce() {
        std::lock_guard l(mu);
        if (nonces.empty()) return std::nullopt;
        // Newest first: the nonce a badNonce response just carried is the one most likely valid.
        std::string n = std::move(nonces.back());
        nonces.pop_back();
        return n;
    }

    Result<std::string> take_nonce() {
        if (auto n = pop_nonce()) return *n;
        EC_TRY_ASSIGN(auto d, directory());
        EC_TRY_ASSIGN(auto resp, send_plain("HEAD", d.new_nonce, "newNonce"));
        if (!resp.success()) return response_to_error(resp, d.new_nonce, clock.now());
        if (auto n = pop_nonce()) return *n;
        return Error(ErrorCode::Transient,
                     fmt::format("no Replay-Nonce in the response from {}", d.new_nonce));
    }

    // A signed POST (§6.2). `payload` empty = POST-as-GET (§6.3). `kid_or_empty` empty: the
    // protected header carries the public key of `signer` ("jwk") instead of the account URL.
    // Returns only 2xx responses.
    Result<HttpResponse> post(const std::string& url, const std::string& payload,
                              const PrivateKey& signer, const std::string& kid_or_empty,
                              std::string_view resource, const char* accept = nullptr) {
        int bad_nonces = 0;
        int transient = 0;
        for (;;) {
            EC_TRY_ASSIGN(auto nonce, take_nonce());
            EC_TRY_ASSIGN(auto jws, sign_jws(signer, url, nonce, kid_or_empty, payload));
            HttpRequest req = base_request("POST", url);
            req.headers.emplace_back("Content-Type", kJoseJson);
            if (accept) req.headers.emplace_back("Accept", accept);
            req.body = jws.dump();
            auto r = exchange(req, resource);
            std::optional<Error> err;
            if (!r.ok()) {
                err = r.error();
            } else {
                if (r->success()) return std::move(r).value();
                err = response_to_error(*r, url, clock.now());
            }
            // §6.5: a badNonce response carries a fresh nonce (now in the pool): retry at once.
            if (err->code == ErrorCode::BadNonce && bad_nonces++ < opts.max_bad_nonce_retries)
                continue;
            if (retry_here(*err) && ++transient <= opts.max_transient_retries) {
                EC_TRY(wait(transient_backoff(transient, err->retry_after)));
                continue;
            }
            return *err;
        }
    }

    // A POST signed by the account ("kid").
    Result<HttpResponse> post_account(const std::string& url, const std::string& payload,
                                      std::string_view resource, const char* accept = nullptr) {
        EC_TRY_ASSIGN(auto a, account());
        return post(url, payload, a.key, a.kid, resource, accept);
    }

    std::chrono::milliseconds poll_delay(const HttpResponse& resp, int attempt) const {
        if (auto h = resp.header("retry-after")) {
            if (auto ra = parse_retry_after(*h, clock.now()))
                return std::clamp<std::chrono::milliseconds>(*ra, 1s, 30s);
        }
        // No Retry-After: start at 250 ms and double (250 ms, 0.5, 1, 2, 4, 8, 10, 10... s). A
        // CA that validates in milliseconds (most do for http-01/tls-alpn-01) is not kept
        // waiting a whole second per step; one that is slow sees at most 4 polls in 4 s.
        return std::min<std::chrono::milliseconds>(
            std::chrono::milliseconds(250LL << std::min(attempt, 6)), 10s);
    }
};

Result<std::unique_ptr<Client>> Client::create(HttpClient& http, Clock& clock, ClientOptions opts) {
    if (!opts.directory_url.starts_with("https://") && !opts.directory_url.starts_with("http://"))
        return Error(ErrorCode::InvalidConfig,
                     fmt::format("ACME directory URL must be http(s): \"{}\"", opts.directory_url));
    if (opts.max_bad_nonce_retries < 0 || opts.max_transient_retries < 0 ||
        opts.poll_deadline <= 0ms || opts.request_timeout <= 0ms)
        return Error(ErrorCode::InvalidConfig,
                     "ACME client: retry counts and timeouts must be positive");
    if (opts.user_agent.empty()) opts.user_agent = kUserAgent;
    return std::unique_ptr<Client>(
        new Client(std::make_unique<Impl>(http, clock, std::move(opts))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Clock& Client::clock() const {
    return impl_->clock;
}
const ClientOptions& Client::options() const {
    return impl_->opts;
}

Result<Directory> Client::directory() {
    return impl_->directory();
}

// ---- account ---------------------------------------------------------------------------------

Result<Account> Client::new_account(const PrivateKey& key, const NewAccountOptions& opts) {
    EC_TRY_ASSIGN(auto d, impl_->directory());
    json payload = json::object();
    if (!opts.contacts.empty()) payload["contact"] = opts.contacts;
    if (opts.terms_of_service_agreed) payload["termsOfServiceAgreed"] = true;
    if (opts.only_return_existing) payload["onlyReturnExisting"] = true;
    if (!opts.eab_kid.empty()) {
        EC_TRY_ASSIGN(auto eab, sign_eab(key, opts.eab_kid, opts.eab_hmac_key, d.new_account));
        payload["externalAccountBinding"] = std::move(eab);
    } else if (d.meta.external_account_required && !opts.only_return_existing) {
        Error e(ErrorCode::InvalidConfig,
                "the CA requires external account binding: set an EAB key ID and HMAC key");
        e.type = std::string(problem::kExternalAccountRequired);
        return e;
    }
    EC_TRY_ASSIGN(auto resp, impl_->post(d.new_account, payload.dump(), key, {}, "newAccount"));
    auto loc = resp.header("location");
    if (!loc || loc->empty())
        return Error(ErrorCode::Transient,
                     fmt::format("newAccount response from {} has no Location", d.new_account));
    *loc = resolve_url(d.new_account, *loc);
    auto acct = resp.body.empty() ? Result<Account>(Account{*loc, "valid", {}, false, {}})
                                  : parse_account(resp.body, *loc);
    if (!acct) return from_response(acct.error(), d.new_account, resp.status);
    std::lock_guard l(impl_->mu);
    impl_->key = key;
    impl_->kid = *loc;
    return acct;
}

void Client::set_account(const PrivateKey& key, std::string account_url) {
    std::lock_guard l(impl_->mu);
    impl_->key = key;
    impl_->kid = std::move(account_url);
}

bool Client::has_account() const {
    return impl_->account().ok();
}
std::string Client::account_url() const {
    std::lock_guard l(impl_->mu);
    return impl_->kid;
}
std::optional<PrivateKey> Client::account_key() const {
    std::lock_guard l(impl_->mu);
    return impl_->key;
}

Result<Account> Client::fetch_account() {
    EC_TRY_ASSIGN(auto acct, impl_->account());
    EC_TRY_ASSIGN(auto resp, impl_->post(acct.kid, "", acct.key, acct.kid, "account"));
    auto a = parse_account(resp.body, acct.kid);
    if (!a) return from_response(a.error(), acct.kid, resp.status);
    return a;
}

Result<Account> Client::update_contacts(const std::vector<std::string>& contacts) {
    json payload = {{"contact", contacts}};
    EC_TRY_ASSIGN(auto acct, impl_->account());
    EC_TRY_ASSIGN(auto resp, impl_->post(acct.kid, payload.dump(), acct.key, acct.kid, "account"));
    auto a = parse_account(resp.body, acct.kid);
    if (!a) return from_response(a.error(), acct.kid, resp.status);
    return a;
}

Result<Account> Client::deactivate_account() {
    json payload = {{"status", "deactivated"}};
    EC_TRY_ASSIGN(auto acct, impl_->account());
    EC_TRY_ASSIGN(auto resp, impl_->post(acct.kid, payload.dump(), acct.key, acct.kid, "account"));
    auto a = parse_account(resp.body, acct.kid);
    if (!a) return from_response(a.error(), acct.kid, resp.status);
    return a;
}

Status Client::key_change(const PrivateKey& new_key) {
    EC_TRY_ASSIGN(auto acct, impl_->account());
    EC_TRY_ASSIGN(auto d, impl_->directory());
    if (d.key_change.empty())
        return Error(ErrorCode::Permanent, "the CA does not support key rollover");
    // The inner JWS carries no nonce, so it survives badNonce retries of the outer one.
    EC_TRY_ASSIGN(auto inner, sign_key_change(acct.key, new_key, acct.kid, d.key_change));
    EC_TRY(impl_->post(d.key_change, inner.dump(), acct.key, acct.kid, "keyChange"));
    std::lock_guard l(impl_->mu);
    impl_->key = new_key;
    return ok_status();
}

Result<std::string> Client::key_authorization(std::string_view token) const {
    EC_TRY_ASSIGN(auto acct, impl_->account());
    return acme::key_authorization(token, acct.key.thumbprint());
}

// ---- orders ----------------------------------------------------------------------------------

Result<Order> Client::new_order(const NewOrderOptions& opts) {
    if (opts.dns_names.empty() && opts.ip_addresses.empty())
        return Error(ErrorCode::InvalidConfig, "an order needs at least one name");
    // RFC 8555 §7.4 / RFC 8738 §3: {"type": "dns"|"ip", "value": ...}.
    json ids = json::array();
    for (const auto& n : opts.dns_names) {
        if (is_ip_literal(n))
            return Error(ErrorCode::InvalidConfig,
                         fmt::format("'{}' is an IP address, not a DNS name: order it as an ip "
                                     "identifier (RFC 8738)",
                                     n));
        ids.push_back({{"type", std::string(kIdentifierDns)}, {"value", n}});
    }
    for (const auto& ip : opts.ip_addresses) {
        EC_TRY_ASSIGN(std::string value, canonical_ip(ip));
        ids.push_back({{"type", std::string(kIdentifierIp)}, {"value", std::move(value)}});
    }
    EC_TRY_ASSIGN(auto d, impl_->directory());
    if (!opts.profile.empty() && !d.meta.profiles.empty() &&
        !d.meta.profiles.contains(opts.profile)) {
        std::string known;
        for (const auto& [name, _] : d.meta.profiles) known += (known.empty() ? "" : ", ") + name;
        Error e(ErrorCode::InvalidConfig,
                fmt::format("the CA does not offer profile \"{}\" (it offers: {})", opts.profile,
                            known));
        e.type = std::string(problem::kInvalidProfile);
        return e;
    }
    json payload = {{"identifiers", std::move(ids)}};
    if (!opts.profile.empty()) payload["profile"] = opts.profile;
    if (!opts.replaces.empty()) payload["replaces"] = opts.replaces;
    if (opts.not_before) payload["notBefore"] = format_rfc3339(*opts.not_before);
    if (opts.not_after) payload["notAfter"] = format_rfc3339(*opts.not_after);
    EC_TRY_ASSIGN(auto resp, impl_->post_account(d.new_order, payload.dump(), "newOrder"));
    auto loc = resp.header("location");
    if (!loc || loc->empty())
        return Error(ErrorCode::Transient,
                     fmt::format("newOrder response from {} has no Location", d.new_order));
    *loc = resolve_url(d.new_order, *loc);
    auto o = parse_order(resp.body, *loc);
    if (!o) return from_response(o.error(), d.new_order, resp.status);
    return o;
}

Result<Order> Client::get_order(const std::string& url) {
    EC_TRY_ASSIGN(auto resp, impl_->post_account(url, "", "order"));
    auto o = parse_order(resp.body, url);
    if (!o) return from_response(o.error(), url, resp.status);
    return o;
}

Result<Authorization> Client::get_authorization(const std::string& url) {
    EC_TRY_ASSIGN(auto resp, impl_->post_account(url, "", "authz"));
    auto a = parse_authorization(resp.body, url);
    if (!a) return from_response(a.error(), url, resp.status);
    return a;
}

Result<Challenge> Client::accept_challenge(const Challenge& ch) {
    EC_TRY_ASSIGN(auto resp, impl_->post_account(ch.url, "{}", "challenge"));
    auto c = parse_challenge(resp.body);
    if (!c) return from_response(c.error(), ch.url, resp.status);
    return c;
}

Result<Authorization> Client::deactivate_authorization(const std::string& url) {
    json payload = {{"status", "deactivated"}};
    EC_TRY_ASSIGN(auto resp, impl_->post_account(url, payload.dump(), "authz"));
    auto a = parse_authorization(resp.body, url);
    if (!a) return from_response(a.error(), url, resp.status);
    return a;
}

Error authorization_error(const Authorization& a) {
    std::string name = (a.wildcard ? "*." : "") + a.identifier.value;
    for (const auto& ch : a.challenges) {
        if (ch.error) {
            Error e = problem_to_error(*ch.error, 0);
            e.context(fmt::format("{} challenge for {} failed", ch.type, name));
            if (e.code != ErrorCode::Transient && e.code != ErrorCode::RateLimited)
                e.code = ErrorCode::Permanent;
            return e;
        }
    }
    return Error(ErrorCode::Permanent, fmt::format("authorization for {} is {}", name, a.status));
}

std::optional<Error> order_error(const Order& order) {
    if (order.status != status::kInvalid && order.status != status::kExpired &&
        order.status != status::kDeactivated)
        return std::nullopt;
    std::string what = fmt::format("order {} is {}", order.url, order.status);
    if (!order.error) return Error(ErrorCode::Permanent, what);
    // The order can never succeed: Permanent whatever the problem type, except a rate limit,
    // which the caller should wait out before ordering again.
    Error e = problem_to_error(*order.error, 0).with_context(what);
    if (e.code != ErrorCode::RateLimited) e.code = ErrorCode::Permanent;
    return e;
}

namespace {
// The one polling loop behind wait_authorization and wait_order (RFC 8555 §7.5.1): POST-as-GET
// the resource, let `settled` decide whether it is finished (a value or an error) or still
// moving, sleep poll_delay (Retry-After or the bounded backoff), give up at the deadline.
template <class T, class Parse, class Settled, class Describe>
Result<T> poll_resource(Client::Impl& impl, const std::string& url, const char* kind, Parse parse,
                        Settled settled, Describe still_pending) {
    const auto start = impl.clock.steady_now();
    for (int attempt = 0;; ++attempt) {
        EC_TRY_ASSIGN(auto resp, impl.post_account(url, "", kind));
        auto r = parse(resp.body, url);
        if (!r) return from_response(r.error(), url, resp.status);
        if (std::optional<Result<T>> done = settled(*r)) return std::move(*done);
        auto delay = impl.poll_delay(resp, attempt);
        auto waited = impl.clock.steady_now() - start;
        if (waited + delay > impl.opts.poll_deadline)
            return Error(ErrorCode::Transient,
                         fmt::format("timed out after {} waiting for {}",
                                     seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(waited)),
                                     still_pending(*r)));
        EC_TRY(impl.wait(delay));
    }
}
}  // namespace

Result<Authorization> Client::wait_authorization(const std::string& url) {
    return poll_resource<Authorization>(
        *impl_, url, "authz", parse_authorization,
        [](const Authorization& a) -> std::optional<Result<Authorization>> {
            if (a.status == status::kValid) return Result<Authorization>(a);
            if (a.status != status::kPending) return Result<Authorization>(authorization_error(a));
            return std::nullopt;
        },
        [&](const Authorization& a) {
            return fmt::format("the authorization of {} ({} is still pending)", a.identifier.value, url);
        });
}

Result<Order> Client::wait_order(const std::string& url) {
    return poll_resource<Order>(
        *impl_, url, "order", parse_order,
        [](const Order& o) -> std::optional<Result<Order>> {
            if (auto e = order_error(o)) return Result<Order>(*e);
            if (o.status != status::kPending && o.status != status::kProcessing) return Result<Order>(o);
            return std::nullopt;
        },
        [&](const Order& o) { return fmt::format("order {} (still {})", url, o.status); });
}

Result<Order> Client::finalize(const Order& order, std::string_view csr_der) {
    if (order.finalize.empty()) return Error(ErrorCode::Permanent, "order has no finalize URL");
    json payload = {{"csr", enc::base64url(csr_der)}};
    EC_TRY_ASSIGN(auto resp, impl_->post_account(order.finalize, payload.dump(), "finalize"));
    auto o = parse_order(resp.body, order.url);
    if (!o) return from_response(o.error(), order.finalize, resp.status);
    return o;
}

Result<std::vector<CertChain>> Client::download_certificate(const std::string& url,
                                                            bool alternates) {
    std::vector<CertChain> out;
    std::vector<std::string> todo{url};
    for (size_t i = 0; i < todo.size(); ++i) {
        EC_TRY_ASSIGN(auto resp, impl_->post_account(todo[i], "", "certificate", kPemChain));
        auto certs = parse_pem_chain(resp.body);
        if (!certs)
            return Error(ErrorCode::Transient,
                         fmt::format("malformed certificate chain from {} (HTTP {}): {}", todo[i],
                                     resp.status, certs.error().message));
        out.push_back(CertChain{todo[i], resp.body, std::move(certs).value()});
        if (i == 0 && alternates) {
            for (const auto& ref : parse_link_headers(resp.header_all("link"), "alternate")) {
                std::string alt = resolve_url(url, ref);
                if (std::find(todo.begin(), todo.end(), alt) == todo.end())
                    todo.push_back(std::move(alt));
            }
        }
    }
    return out;
}

Status Client::revoke(const Certificate& cert, std::optional<RevocationReason> reason) {
    EC_TRY_ASSIGN(auto d, impl_->directory());
    json payload = {{"certificate", enc::base64url(cert.to_der())}};
    if (reason) payload["reason"] = static_cast<int>(*reason);
    EC_TRY(impl_->post_account(d.revoke_cert, payload.dump(), "revokeCert"));
    return ok_status();
}

Status Client::revoke_with_cert_key(const Certificate& cert, const PrivateKey& cert_key,
                                    std::optional<RevocationReason> reason) {
    if (!cert.matches_key(cert_key))
        return Error(ErrorCode::InvalidConfig,
                     "the private key does not belong to the certificate");
    EC_TRY_ASSIGN(auto d, impl_->directory());
    json payload = {{"certificate", enc::base64url(cert.to_der())}};
    if (reason) payload["reason"] = static_cast<int>(*reason);
    EC_TRY(impl_->post(d.revoke_cert, payload.dump(), cert_key, {}, "revokeCert"));
    return ok_status();
}

// ---- ARI -------------------------------------------------------------------------------------

bool Client::supports_ari() {
    auto d = impl_->directory();
    return d.ok() && !d->renewal_info.empty();
}

Result<RenewalInfo> Client::renewal_info(const Certificate& cert) {
    EC_TRY_ASSIGN(auto d, impl_->directory());
    if (d.renewal_info.empty())
        return Error(ErrorCode::NotFound,
                     "the CA does not offer renewal information (no renewalInfo in its directory)");
    EC_TRY_ASSIGN(auto id, cert.ari_cert_id());
    std::string url = renewal_info_url(d.renewal_info, id);
    EC_TRY_ASSIGN(auto resp, impl_->send_plain("GET", url, "renewalInfo"));
    if (!resp.success()) return response_to_error(resp, url, impl_->clock.now());
    auto ra = resp.header("retry-after");
    auto info = parse_renewal_info(
        resp.body, ra ? std::optional<std::string_view>(*ra) : std::nullopt, impl_->clock.now());
    if (!info) return from_response(info.error(), url, resp.status);
    return info;
}

// ---- chains ----------------------------------------------------------------------------------

const CertChain& select_chain(const std::vector<CertChain>& chains, std::string_view preferred) {
    if (!preferred.empty()) {
        for (const auto& c : chains)
            if (!c.certs.empty() && c.certs.back().issuer_cn() == preferred) return c;
    }
    return chains.front();
}

std::vector<std::string> parse_link_headers(const std::vector<std::string>& values,
                                            std::string_view rel) {
    std::vector<std::string> out;
    for (const auto& v : values) {
        size_t pos = 0;
        while (pos < v.size()) {
            size_t lt = v.find('<', pos);
            if (lt == std::string::npos) break;
            size_t gt = v.find('>', lt);
            if (gt == std::string::npos) break;
            std::string target = v.substr(lt + 1, gt - lt - 1);
            // Parameters run to the next link (a ',' followed by '<') or the end.
            size_t next = v.find('<', gt);
            std::string params =
                v.substr(gt + 1, next == std::string::npos ? std::string::npos : next - gt - 1);
            pos = next == std::string::npos ? v.size() : next;
            // Find rel=... (quoted or not); it may hold several space-separated relation types.
            std::string lower = ascii_lower(params);
            size_t r = lower.find("rel=");
            if (r == std::string::npos) continue;
            size_t s = r + 4;
            std::string val;
            if (s < params.size() && params[s] == '"') {
                size_t e = params.find('"', s + 1);
                val = params.substr(s + 1, e == std::string::npos ? std::string::npos : e - s - 1);
            } else {
                size_t e = params.find_first_of(";, ", s);
                val = params.substr(s, e == std::string::npos ? std::string::npos : e - s);
            }
            size_t p = 0;
            while (p <= val.size()) {
                size_t sp = val.find(' ', p);
                std::string tok =
                    val.substr(p, sp == std::string::npos ? std::string::npos : sp - p);
                if (ascii_lower(tok) == rel) {
                    out.push_back(target);
                    break;
                }
                if (sp == std::string::npos) break;
                p = sp + 1;
            }
        }
    }
    return out;
}

}  // namespace edgecert::acme
