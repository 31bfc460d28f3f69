#include "store/secret_store.h"

#include <spdlog/spdlog.h>

#include "edgecert/base/encoding.h"
#include "edgecert/k8s/object.h"
#include "edgecert/k8s/resource.h"

namespace edgecert::store {
using enc::base64;
using enc::base64_decode;
namespace {

using k8s::json;
namespace meta = k8s::meta;
constexpr k8s::ResourceType kCertificate{"edgecert.io", "v1alpha1", "certificates", "Certificate", true};
constexpr const char* kAnnOrderUrl = "edgecert.io/order-url";
constexpr const char* kAnnOrderServer = "edgecert.io/order-server";
constexpr const char* kAnnOrderNames = "edgecert.io/order-dns-names";
constexpr const char* kAnnOrderIps = "edgecert.io/order-ip-addresses";
constexpr const char* kAnnIpSans = "edgecert.io/ip-sans";
constexpr const char* kAnnOrderIssuer = "edgecert.io/order-issuer";

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}
std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size() && !s.empty()) {
        size_t c = s.find(',', start);
        out.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
        if (c == std::string::npos) break;
        start = c + 1;
    }
    return out;
}

std::optional<std::string> data_field(const json& secret, const std::string& key) {
    if (!secret.contains("data") || !secret["data"].is_object()) return std::nullopt;
    auto it = secret["data"].find(key);
    if (it == secret["data"].end() || !it->is_string()) return std::nullopt;
    return base64_decode(it->get<std::string>());
}

// "namespace/name:key" → parts.
struct AccountRef {
    std::string ns, name, key;
};
Result<AccountRef> parse_account_id(const std::string& id) {
    auto slash = id.find('/');
    auto colon = id.find(':', slash == std::string::npos ? 0 : slash);
    if (slash == std::string::npos || colon == std::string::npos || slash == 0 || colon == slash + 1)
        return Error(ErrorCode::InvalidConfig, "account key reference '" + id + "' is not namespace/name:key");
    return AccountRef{id.substr(0, slash), id.substr(slash + 1, colon - slash - 1), id.substr(colon + 1)};
}

}  // namespace

std::string SecretStore::pending_secret_name(const CertificateRef& ref) {
    std::string n = ref.name;
    if (n.size() > 253 - 9) n.resize(253 - 9);
    while (!n.empty() && (n.back() == '-' || n.back() == '.')) n.pop_back();
    return n + "-next-key";
}

Status SecretStore::upsert(const std::string& ns, const std::string& name,
                           const std::function<void(json&)>& fill,
                           const std::function<Status(const json&)>& check) {
    k8s::WriteOptions wo{.field_manager = field_manager_};
    return k8s::retry_on_conflict([&]() -> Status {
        auto cur = client_.get(k8s::resources::Secret, ns, name);
        if (!cur && cur.error().code != ErrorCode::NotFound) return cur.error();
        if (!cur) {
            json s = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", name}, {"namespace", ns}}}};
            fill(s);
            auto r = client_.create(k8s::resources::Secret, ns, s, wo);
            if (!r && r.error().code == ErrorCode::AlreadyExists) return Error(ErrorCode::Conflict, "created meanwhile");
            if (!r) return r.error();
            return Status{};
        }
        if (check) EC_TRY(check(*cur));
        json s = std::move(*cur);
        fill(s);
        auto r = client_.update(k8s::resources::Secret, s, wo);
        if (!r) return r.error();
        return Status{};
    });
}

Result<std::optional<StoredCertificate>> SecretStore::load_certificate(const CertificateRef& ref) {
    auto s = client_.get(k8s::resources::Secret, ref.namespace_, ref.secret_name);
    if (!s) {
        if (s.error().code == ErrorCode::NotFound) return std::optional<StoredCertificate>{};
        return s.error();
    }
    StoredCertificate sc;
    sc.cert_pem = data_field(*s, "tls.crt").value_or("");
    auto k = data_field(*s, "tls.key");
    if (k) sc.key_pem = SecretBytes(std::move(*k));
    sc.ca_pem = data_field(*s, "ca.crt").value_or("");
    return std::optional<StoredCertificate>(std::move(sc));
}

namespace {
void set_meta(json& s, const CertificateRef& ref, const CertificateMeta& m) {
    for (const auto& [k, v] : m.extra_labels) meta::set_label(s, k, v);
    for (const auto& [k, v] : m.extra_annotations) meta::set_annotation(s, k, v);
    meta::set_label(s, "edgecert.io/managed", "true");
    meta::set_annotation(s, "edgecert.io/certificate-name", ref.name);
    meta::set_annotation(s, "edgecert.io/issuer-name", m.issuer_name);
    meta::set_annotation(s, "edgecert.io/issuer-kind", m.issuer_kind);
    meta::set_annotation(s, "edgecert.io/issuer-group", "edgecert.io");
    meta::set_annotation(s, "edgecert.io/alt-names", join(m.dns_names));
    // cert-manager's cert-manager.io/ip-sans, under our prefix: the IP SANs (RFC 8738), only on
    // Secrets that have some.
    if (!m.ip_addresses.empty())
        meta::set_annotation(s, kAnnIpSans, join(m.ip_addresses));
    else if (s.contains("metadata") && s["metadata"].contains("annotations") &&
             s["metadata"]["annotations"].is_object())
        s["metadata"]["annotations"].erase(std::string(kAnnIpSans));
}

// A Secret's type is immutable: writing a certificate into an Opaque one would leave it unserved
// (terminators load kubernetes.io/tls only). Say so instead.
Status check_type(const json& s, const CertificateRef& ref) {
    const std::string type = s.value("type", "");
    if (type.empty() || type == "kubernetes.io/tls") return {};
    return Error(ErrorCode::InvalidConfig, "Secret " + ref.namespace_ + "/" + ref.secret_name + " exists with type " +
                                               type + ", not kubernetes.io/tls (a Secret's type cannot change: " +
                                               "delete it or choose another secretName)");
}
}  // namespace

Status SecretStore::adopt(const CertificateRef& ref, const CertificateMeta& m) {
    auto cur = client_.get(k8s::resources::Secret, ref.namespace_, ref.secret_name);
    if (!cur) return cur.error();
    EC_TRY(check_type(*cur, ref));
    json want = *cur;
    set_meta(want, ref, m);
    if (want == *cur) return {};
    json patch = {{"metadata", {{"labels", want["metadata"]["labels"]}, {"annotations", want["metadata"]["annotations"]}}}};
    auto r = client_.patch(k8s::resources::Secret, ref.namespace_, ref.secret_name, k8s::PatchType::Merge, patch,
                           k8s::PatchOptions{.field_manager = field_manager_});
    if (!r) return r.error();
    spdlog::info("certificate {}: adopted the valid certificate already in Secret {}/{}", ref.key(), ref.namespace_,
                 ref.secret_name);
    return {};
}

Status SecretStore::save_certificate(const CertificateRef& ref, const StoredCertificate& cert,
                                     const CertificateMeta& m) {
    auto st = upsert(ref.namespace_, ref.secret_name, [&](json& s) {
        if (s.value("type", "").empty()) s["type"] = "kubernetes.io/tls";
        set_meta(s, ref, m);
        if (!s.contains("data") || !s["data"].is_object()) s["data"] = json::object();
        s["data"]["tls.crt"] = base64(cert.cert_pem);
        s["data"]["tls.key"] = base64(cert.key_pem.reveal());
        if (!cert.ca_pem.empty())
            s["data"]["ca.crt"] = base64(cert.ca_pem);
        else
            s["data"].erase("ca.crt");
        s.erase("stringData");
    }, [&](const json& cur) { return check_type(cur, ref); });
    if (!st) {
        Error e = st.error();
        e.context("writing Secret " + ref.namespace_ + "/" + ref.secret_name);
        return e;
    }
    return Status{};
}

Result<std::optional<PendingOrder>> SecretStore::load_pending(const CertificateRef& ref) {
    auto s = client_.get(k8s::resources::Secret, ref.namespace_, pending_secret_name(ref));
    if (!s) {
        if (s.error().code == ErrorCode::NotFound) return std::optional<PendingOrder>{};
        return s.error();
    }
    auto key = data_field(*s, "tls.key");
    if (!key) return std::optional<PendingOrder>{};
    PendingOrder po;
    po.order_url = meta::annotation(*s, kAnnOrderUrl).value_or("");
    po.server = meta::annotation(*s, kAnnOrderServer).value_or("");
    po.issuer = meta::annotation(*s, kAnnOrderIssuer).value_or("");
    po.dns_names = split(meta::annotation(*s, kAnnOrderNames).value_or(""));
    po.ip_addresses = split(meta::annotation(*s, kAnnOrderIps).value_or(""));
    po.key_pem = SecretBytes(std::move(*key));
    return std::optional<PendingOrder>(std::move(po));
}

void SecretStore::patch_order_status(const CertificateRef& ref, const json& order) {
    // Informational mirror of the pending Secret; the Secret is the record that counts.
    k8s::PatchOptions po{.field_manager = field_manager_, .subresource = "status"};
    auto r = client_.patch(kCertificate, ref.namespace_, ref.name, k8s::PatchType::Merge,
                           json{{"status", {{"order", order}}}}, po);
    if (!r && r.error().code != ErrorCode::NotFound)
        spdlog::warn("certificate {}: could not record the order in its status: {}", ref.key(), r.error().message);
}

Status SecretStore::save_pending(const CertificateRef& ref, const PendingOrder& order) {
    const std::string name = pending_secret_name(ref);
    auto st = upsert(ref.namespace_, name, [&](json& s) {
        s["type"] = "Opaque";
        meta::set_label(s, "edgecert.io/pending-order", "true");
        meta::set_annotation(s, "edgecert.io/certificate-name", ref.name);
        meta::set_annotation(s, kAnnOrderUrl, order.order_url);
        meta::set_annotation(s, kAnnOrderServer, order.server);
        meta::set_annotation(s, kAnnOrderIssuer, order.issuer);
        meta::set_annotation(s, kAnnOrderNames, join(order.dns_names));
        meta::set_annotation(s, kAnnOrderIps, join(order.ip_addresses));
        s["data"] = json{{"tls.key", base64(order.key_pem.reveal())}};
    });
    if (!st) {
        Error e = st.error();
        e.context("recording the order in Secret " + ref.namespace_ + "/" + name);
        return e;
    }
    patch_order_status(ref, json{{"url", order.order_url}, {"keySecretName", name}, {"state", "pending"}});
    return Status{};
}

Status SecretStore::clear_pending(const CertificateRef& ref) {
    auto st = client_.remove(k8s::resources::Secret, ref.namespace_, pending_secret_name(ref));
    if (!st && st.error().code != ErrorCode::NotFound) return st.error();
    patch_order_status(ref, json(nullptr));
    return Status{};
}

Result<std::optional<SecretBytes>> SecretStore::load_account_key(const std::string& id) {
    EC_TRY_ASSIGN(AccountRef a, parse_account_id(id));
    auto s = client_.get(k8s::resources::Secret, a.ns, a.name);
    if (!s) {
        if (s.error().code == ErrorCode::NotFound) return std::optional<SecretBytes>{};
        return s.error();
    }
    auto k = data_field(*s, a.key);
    if (!k) return std::optional<SecretBytes>{};
    return std::optional<SecretBytes>(SecretBytes(std::move(*k)));
}

Status SecretStore::save_account_key(const std::string& id, const SecretBytes& pem) {
    EC_TRY_ASSIGN(AccountRef a, parse_account_id(id));
    return upsert(a.ns, a.name, [&](json& s) {
        if (!s.contains("type")) s["type"] = "Opaque";
        meta::set_label(s, "edgecert.io/acme-account-key", "true");
        if (!s.contains("data") || !s["data"].is_object()) s["data"] = json::object();
        s["data"][a.key] = base64(pem.reveal());
    });
}

}  // namespace edgecert::store
