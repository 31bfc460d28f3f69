// The issuance flow (order.h): newOrder or resume → authorizations → finalize → download.
#include "edgecert/acme/order.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "edgecert/acme/problem.h"

namespace edgecert::acme {

ChallengeSolver::~ChallengeSolver() = default;

namespace {

// Cleans up every challenge it was told about when it goes out of scope, on every path.
class PresentedChallenges {
  public:
    explicit PresentedChallenges(ChallengeSolver& s) : solver_(s) {}
    ~PresentedChallenges() {
        for (const auto& [domain, ch] : items_) solver_.cleanup(domain, ch);
    }
    PresentedChallenges(const PresentedChallenges&) = delete;
    PresentedChallenges& operator=(const PresentedChallenges&) = delete;
    void add(std::string domain, Challenge ch) {
        items_.emplace_back(std::move(domain), std::move(ch));
    }

  private:
    ChallengeSolver& solver_;
    std::vector<std::pair<std::string, Challenge>> items_;
};

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

// (type, value) with DNS names lower-cased and addresses in canonical text, so that an order the
// CA echoes in its own spelling still compares equal to the request.
using IdentifierSet = std::set<std::pair<std::string, std::string>>;

void add_identifier(IdentifierSet& out, std::string_view type, const std::string& value) {
    std::string v = ascii_lower(value);
    if (type == kIdentifierIp) {
        if (auto c = canonical_ip(value)) v = std::move(*c);
    }
    out.emplace(std::string(type), std::move(v));
}

IdentifierSet requested_identifiers(const ObtainRequest& req) {
    IdentifierSet out;
    for (const auto& n : req.dns_names) add_identifier(out, kIdentifierDns, n);
    for (const auto& ip : req.ip_addresses) add_identifier(out, kIdentifierIp, ip);
    return out;
}

std::vector<std::string> requested_names(const ObtainRequest& req) {
    std::vector<std::string> out = req.dns_names;
    out.insert(out.end(), req.ip_addresses.begin(), req.ip_addresses.end());
    return out;
}

// The first challenge, in the solver's order of preference, that the CA offers for `a`.
// RFC 8555 §7.1.3: a wildcard name can only be validated with dns-01; RFC 8738 §7: an IP
// address never with dns-01.
const Challenge* pick_challenge(const Authorization& a, const std::vector<std::string>& supported) {
    const bool ip = a.identifier.type == kIdentifierIp;
    for (const auto& type : supported) {
        if (a.wildcard && type != kDns01) continue;
        if (ip && type == kDns01) continue;
        for (const auto& ch : a.challenges)
            if (ch.type == type) return &ch;
    }
    return nullptr;
}

// Presents, accepts and waits for every authorization of `order` that is not valid yet.
Status solve_authorizations(Client& client, ChallengeSolver& solver, const Order& order) {
    PresentedChallenges presented(solver);
    std::vector<Challenge> to_accept;
    std::vector<std::string> to_wait;
    const auto supported = solver.supported_types();
    for (const auto& url : order.authorizations) {
        EC_TRY_ASSIGN(auto a, client.get_authorization(url));
        if (a.status == status::kValid) continue;  // reused from an earlier order
        if (a.status != status::kPending) return authorization_error(a);
        // Resumed after a crash: a challenge we accepted earlier is still being validated.
        bool in_flight =
            std::any_of(a.challenges.begin(), a.challenges.end(), [](const Challenge& c) {
                return c.status == status::kProcessing || c.status == status::kValid;
            });
        const Challenge* ch = pick_challenge(a, supported);
        if (!ch && !in_flight) {
            std::vector<std::string> offered;
            for (const auto& c : a.challenges) offered.push_back(c.type);
            const bool ip = a.identifier.type == kIdentifierIp;
            return Error(
                ErrorCode::InvalidConfig,
                fmt::format(
                    "no usable challenge for {}{}: the CA offers [{}], the solver supports [{}]{}",
                    a.wildcard ? "*." : "", a.identifier.value, join(offered), join(supported),
                    a.wildcard ? " (a wildcard needs dns-01)"
                    : ip       ? " (an IP address is validated with http-01 or tls-alpn-01, "
                                 "never dns-01: RFC 8738 §7)"
                               : ""));
        }
        if (ch) {
            // The solver must keep serving the response while the CA validates, also for a
            // challenge accepted before a crash (it re-validates from scratch on retries).
            EC_TRY_ASSIGN(auto ka, client.key_authorization(ch->token));
            presented.add(a.identifier.value, *ch);
            auto st = solver.present(a.identifier.value, *ch, ka);
            if (!st)
                return st.error().with_context(
                    fmt::format("presenting {} for {}", ch->type, a.identifier.value));
            if (!in_flight) to_accept.push_back(*ch);
        }
        to_wait.push_back(url);
    }
    for (const auto& ch : to_accept) {
        auto r = client.accept_challenge(ch);
        if (!r) return r.error().with_context(fmt::format("accepting challenge {}", ch.url));
    }
    for (const auto& url : to_wait) EC_TRY(client.wait_authorization(url));
    return ok_status();
}

Result<ObtainResult> download(Client& client, const Order& order, const ObtainRequest& req) {
    if (order.certificate.empty())
        return Error(ErrorCode::Transient,
                     fmt::format("order {} is valid but has no certificate URL", order.url));
    EC_TRY_ASSIGN(auto chains,
                  client.download_certificate(order.certificate, !req.preferred_chain.empty()));
    const CertChain& chosen = select_chain(chains, req.preferred_chain);
    ObtainResult out;
    out.order_url = order.url;
    out.certificate_url = chosen.url;
    out.chain = without_root(chosen.certs);
    if (out.chain.empty())
        return Error(ErrorCode::Transient,
                     fmt::format("empty certificate chain from {}", chosen.url));
    if (!out.chain.front().matches_key(req.cert_key))
        return Error(
            ErrorCode::Permanent,
            fmt::format("the certificate from {} does not match the certificate key", chosen.url));
    out.chain_pem = chain_to_pem(out.chain);
    return out;
}

}  // namespace

std::vector<Certificate> without_root(std::vector<Certificate> chain) {
    if (chain.size() > 1 && chain.back().self_signed()) chain.pop_back();
    return chain;
}

Result<ObtainResult> obtain(Client& client, ChallengeSolver& solver, const ObtainRequest& req) {
    if (!client.has_account())
        return Error(ErrorCode::InvalidConfig, "no ACME account: register or load one first");
    if (req.dns_names.empty() && req.ip_addresses.empty())
        return Error(ErrorCode::InvalidConfig, "a certificate needs at least one name");

    Order order;
    if (!req.resume_order_url.empty()) {
        EC_TRY_ASSIGN(order, client.get_order(req.resume_order_url));
        std::vector<std::string> ids;
        IdentifierSet have;
        for (const auto& i : order.identifiers) {
            ids.push_back(i.value);
            add_identifier(have, i.type, i.value);
        }
        if (have != requested_identifiers(req))
            return Error(ErrorCode::Permanent,
                         fmt::format("order {} is for [{}], not for the requested [{}]", order.url,
                                     join(ids), join(requested_names(req))));
    } else {
        NewOrderOptions o;
        o.dns_names = req.dns_names;
        o.ip_addresses = req.ip_addresses;
        o.profile = req.profile;
        o.replaces = req.replaces;
        auto r = client.new_order(o);
        if (!r && r.error().type == problem::kAlreadyReplaced && !o.replaces.empty()) {
            // RFC 9773 §5: someone already renewed that certificate; order without `replaces`.
            o.replaces.clear();
            r = client.new_order(o);
        }
        if (!r) return std::move(r).error();
        order = std::move(r).value();
        if (req.on_order_created)
            if (auto st = req.on_order_created(order.url); !st)
                return st.error().with_context("order " + order.url + " not pursued: cannot record it");
    }

    if (auto e = order_error(order)) return *e;
    if (order.status == status::kPending) {
        EC_TRY(solve_authorizations(client, solver, order));
        EC_TRY_ASSIGN(order, client.wait_order(order.url));  // pending → ready
    }
    if (order.status == status::kReady) {
        EC_TRY_ASSIGN(auto csr, make_csr_der(req.cert_key, req.dns_names, req.ip_addresses));
        EC_TRY_ASSIGN(auto finalized, client.finalize(order, csr));
        order = std::move(finalized);
        if (auto e = order_error(order)) return *e;
    }
    if (order.status == status::kProcessing) {
        EC_TRY_ASSIGN(order, client.wait_order(order.url));
    }
    if (order.status != status::kValid)
        return Error(ErrorCode::Transient, fmt::format("order {} is {} where valid was expected",
                                                       order.url, order.status));
    return download(client, order, req);
}

Result<Account> ensure_account(Client& client, const PrivateKey& key,
                               const NewAccountOptions& opts) {
    NewAccountOptions lookup;
    lookup.only_return_existing = true;  // §7.3.1: the other fields are ignored; send no EAB
    auto found = client.new_account(key, lookup);
    if (found) {
        // §7.1.6: a deactivated or revoked account can never be used again with this key.
        if (!found->status.empty() && found->status != status::kValid)
            return Error(
                ErrorCode::InvalidConfig,
                fmt::format("the ACME account {} for this key is {}: use a new account key",
                            found->url, found->status));
        return found;
    }
    if (found.error().type != problem::kAccountDoesNotExist) return std::move(found).error();
    NewAccountOptions reg = opts;
    reg.only_return_existing = false;
    return client.new_account(key, reg);
}

}  // namespace edgecert::acme
