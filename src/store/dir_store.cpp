#include "store/dir_store.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <vector>

#include "platform/files.h"

namespace edgecert::store {
namespace {

using json = nlohmann::json;

// A name from a spec or config becomes a single path component: never "..", no '/'.
Result<std::string> component(std::string_view what, const std::string& s) {
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
        s.find('\0') != std::string::npos)
        return Error(ErrorCode::InvalidConfig,
                     std::string(what) + " '" + s + "' cannot be a folder name");
    return s;
}

template <class T>
Result<std::optional<T>> none() {
    return std::optional<T>{};
}

}  // namespace

Result<std::unique_ptr<DirStore>> DirStore::create(std::string root) {
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    EC_TRY(platform::make_dirs(root + "/certs", 0700));
    EC_TRY(platform::make_dirs(root + "/accounts", 0700));
    // A process killed while it wrote here may have left a certificate's files half replaced
    // (a new tls.key beside the old tls.crt) or temporaries: finish or undo that before anything
    // reads the store (platform::recover_replacements).
    std::vector<std::string> dirs{root + "/accounts"};
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root + "/certs", ec)) {
        if (!e.is_directory(ec)) continue;
        dirs.push_back(e.path().string());
        dirs.push_back(e.path().string() + "/.pending");
    }
    for (const auto& d : dirs) {
        EC_TRY_ASSIGN(auto did, platform::recover_replacements(d));
        for (const auto& line : did) spdlog::warn("store: {}", line);
    }
    return std::unique_ptr<DirStore>(new DirStore(std::move(root)));
}

std::string DirStore::cert_dir(const CertificateRef& ref) const {
    return certs_dir() + "/" + ref.secret_name;
}

Result<std::optional<StoredCertificate>> DirStore::load_certificate(const CertificateRef& ref) {
    EC_TRY(component("secretName", ref.secret_name));
    const std::string dir = cert_dir(ref);
    auto crt = platform::read_file(dir + "/tls.crt");
    auto key = platform::read_secret_file(dir + "/tls.key");
    if (!crt && crt.error().code == ErrorCode::NotFound && !key &&
        key.error().code == ErrorCode::NotFound)
        return none<StoredCertificate>();
    StoredCertificate sc;
    if (crt)
        sc.cert_pem = std::move(*crt);
    else if (crt.error().code != ErrorCode::NotFound)
        return crt.error();
    if (key)
        sc.key_pem = std::move(*key);
    else if (key.error().code != ErrorCode::NotFound)
        return key.error();
    if (auto ca = platform::read_file(dir + "/ca.crt"))
        sc.ca_pem = std::move(*ca);
    else if (ca.error().code != ErrorCode::NotFound)
        return ca.error();
    return std::optional<StoredCertificate>(std::move(sc));
}

Status DirStore::save_certificate(const CertificateRef& ref, const StoredCertificate& cert,
                                  const CertificateMeta& meta) {
    EC_TRY(component("secretName", ref.secret_name));
    const std::string dir = cert_dir(ref);
    json m = {{"certificate", ref.name},
              {"issuer", meta.issuer_name},
              {"issuerKind", meta.issuer_kind},
              {"dnsNames", meta.dns_names},
              {"ipAddresses", meta.ip_addresses}};
    // Every file is written in full under a temporary name before any of them replaces
    // anything, so a full or read-only disk leaves the old set as it was. Then the key and
    // ca.crt first: a reader (the terminator) that sees the new tls.crt also finds them.
    std::vector<platform::PreparedFile> files;
    EC_TRY_ASSIGN(auto key, platform::PreparedFile::create(dir + "/tls.key", cert.key_pem.reveal(),
                                                           0600, platform::Durability::FileOnly));
    files.push_back(std::move(key));
    if (!cert.ca_pem.empty()) {
        EC_TRY_ASSIGN(auto ca, platform::PreparedFile::create(dir + "/ca.crt", cert.ca_pem, 0644,
                                                              platform::Durability::FileOnly));
        files.push_back(std::move(ca));
    } else {
        files.push_back(platform::PreparedFile::removal(dir + "/ca.crt"));
    }
    EC_TRY_ASSIGN(auto crt, platform::PreparedFile::create(dir + "/tls.crt", cert.cert_pem, 0644,
                                                           platform::Durability::FileOnly));
    files.push_back(std::move(crt));
    EC_TRY(platform::replace_files(std::move(files)));
    EC_TRY(platform::write_file_atomic(dir + "/certificate.json", m.dump(2) + "\n", 0644,
                                       platform::Durability::None));
    return platform::sync_dir(dir);
}

Status DirStore::save_status(const CertificateRef& ref, std::string_view json) {
    EC_TRY(component("secretName", ref.secret_name));
    return platform::write_file_atomic(cert_dir(ref) + "/status.json", json, 0644,
                                       platform::Durability::None);
}

Result<std::optional<PendingOrder>> DirStore::load_pending(const CertificateRef& ref) {
    EC_TRY(component("secretName", ref.secret_name));
    const std::string p = cert_dir(ref) + "/.pending";
    auto o = platform::read_file(p + "/order.json");
    if (!o) {
        if (o.error().code == ErrorCode::NotFound) return none<PendingOrder>();
        return o.error();
    }
    auto key = platform::read_secret_file(p + "/tls.key");
    if (!key) {
        if (key.error().code == ErrorCode::NotFound) return none<PendingOrder>();
        return key.error();
    }
    try {
        json j = json::parse(*o);
        PendingOrder po;
        po.server = j.value("server", "");
        po.issuer = j.value("issuer", "");
        po.order_url = j.value("order_url", "");
        po.dns_names = j.value("domains", std::vector<std::string>{});
        po.ip_addresses = j.value("ipAddresses", std::vector<std::string>{});
        po.key_pem = std::move(*key);
        return std::optional<PendingOrder>(std::move(po));
    } catch (const json::exception&) {
        return none<PendingOrder>();  // unreadable record: nothing to resume
    }
}

Status DirStore::save_pending(const CertificateRef& ref, const PendingOrder& order) {
    EC_TRY(component("secretName", ref.secret_name));
    const std::string p = cert_dir(ref) + "/.pending";
    json o = {{"server", order.server},
              {"issuer", order.issuer},
              {"domains", order.dns_names},
              {"ipAddresses", order.ip_addresses},
              {"order_url", order.order_url}};
    EC_TRY(platform::write_secret_file(p + "/tls.key", order.key_pem, platform::Durability::FileOnly));
    EC_TRY(platform::write_file_atomic(p + "/order.json", o.dump(2) + "\n", 0600, platform::Durability::FileOnly));
    return platform::sync_dir(p);
}

Status DirStore::clear_pending(const CertificateRef& ref) {
    EC_TRY(component("secretName", ref.secret_name));
    const std::string p = cert_dir(ref) + "/.pending";
    EC_TRY(platform::remove_file(p + "/order.json"));
    EC_TRY(platform::remove_file(p + "/tls.key"));
    ::rmdir(p.c_str());
    return Status{};
}

Result<std::optional<SecretBytes>> DirStore::load_account_key(const std::string& id) {
    EC_TRY(component("account", id));
    auto k = platform::read_secret_file(root_ + "/accounts/" + id + "/account.key");
    if (!k) {
        if (k.error().code == ErrorCode::NotFound) return std::optional<SecretBytes>{};
        return k.error();
    }
    return std::optional<SecretBytes>(std::move(*k));
}

Status DirStore::save_account_key(const std::string& id, const SecretBytes& pem) {
    EC_TRY(component("account", id));
    return platform::write_secret_file(root_ + "/accounts/" + id + "/account.key", pem,
                                       platform::Durability::Full);
}

}  // namespace edgecert::store
