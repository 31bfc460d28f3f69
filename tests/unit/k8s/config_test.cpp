#include "edgecert/k8s/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "edgecert/base/encoding.h"

namespace edgecert::k8s {
namespace {

namespace fs = std::filesystem;

class TempDir {
  public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "k8s-config-XXXXXX").string();
        path_ = mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path_); }
    std::string file(const std::string& name, const std::string& content, bool exec = false) const {
        std::string p = path_ + "/" + name;
        std::ofstream(p) << content;
        if (exec) chmod(p.c_str(), 0700);
        return p;
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

std::string kubeconfig(const std::string& user, const std::string& cluster_extra = "",
                       const std::string& ctx_extra = "") {
    return "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
           "clusters:\n- name: main\n  cluster:\n    server: https://10.0.0.1:6443/\n" +
           cluster_extra +
           "- name: other\n  cluster:\n    server: https://other:443\n"
           "contexts:\n- name: main\n  context:\n    cluster: main\n    user: u\n" +
           ctx_extra +
           "- name: second\n  context:\n    cluster: other\n    user: u\n    namespace: ops\n"
           "users:\n- name: u\n  user:\n" +
           user;
}

TEST(Kubeconfig, InlineTokenCaDataAndNamespace) {
    FakeClock clock;
    std::string ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    auto c =
        parse_kubeconfig(kubeconfig("    token: s3cret\n",
                                    "    certificate-authority-data: " + enc::base64(ca) + "\n",
                                    "    namespace: shop\n"),
                         "/nowhere", KubeconfigOptions{"", &clock});
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://10.0.0.1:6443");
    EXPECT_EQ(c->ca_pem, ca);
    EXPECT_EQ(c->namespace_, "shop");
    ASSERT_NE(c->token_source, nullptr);
    EXPECT_EQ(c->token_source->token().value().reveal(), "s3cret");
    EXPECT_FALSE(c->insecure_skip_tls_verify);
}

TEST(Kubeconfig, ContextOverrideAndDefaultNamespace) {
    auto c =
        parse_kubeconfig(kubeconfig("    token: t\n"), "", KubeconfigOptions{"second", nullptr});
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://other:443");
    EXPECT_EQ(c->namespace_, "ops");
    auto d = parse_kubeconfig(kubeconfig("    token: t\n"), "");
    EXPECT_EQ(d->namespace_, "default");
    auto missing =
        parse_kubeconfig(kubeconfig("    token: t\n"), "", KubeconfigOptions{"nope", nullptr});
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::InvalidConfig);
}

TEST(Kubeconfig, FilesResolveRelativeToTheKubeconfig) {
    TempDir d;
    d.file("ca.pem", "CA-PEM");
    d.file("client.crt", "CERT-PEM");
    d.file("client.key", "KEY-PEM");
    d.file("token", "file-token\n");
    std::string path = d.file(
        "config",
        kubeconfig("    client-certificate: client.crt\n    client-key: client.key\n"
                   "    tokenFile: token\n",
                   "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n"));
    auto c = load_kubeconfig(path);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->ca_pem, "CA-PEM");
    EXPECT_EQ(c->client_certificate_pem, "CERT-PEM");
    EXPECT_EQ(c->client_key_pem.reveal(), "KEY-PEM");
    EXPECT_TRUE(c->insecure_skip_tls_verify);
    EXPECT_EQ(c->token_source->token().value().reveal(), "file-token");
}

TEST(Kubeconfig, ClientCertDataNeedsKeyData) {
    auto ok = parse_kubeconfig(kubeconfig("    client-certificate-data: " + enc::base64("C") +
                                          "\n    client-key-data: " + enc::base64("K") + "\n"),
                               "");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->client_key_pem.reveal(), "K");
    EXPECT_EQ(ok->token_source, nullptr);
    auto bad =
        parse_kubeconfig(kubeconfig("    client-certificate-data: " + enc::base64("C") + "\n"), "");
    EXPECT_FALSE(bad.ok());
    auto not_b64 = parse_kubeconfig(kubeconfig("    client-key-data: '***'\n"), "");
    EXPECT_FALSE(not_b64.ok());
}

TEST(Kubeconfig, Errors) {
    EXPECT_FALSE(parse_kubeconfig("[not, a, map]", "").ok());
    EXPECT_FALSE(parse_kubeconfig("current-context: x\n", "").ok());
    EXPECT_FALSE(parse_kubeconfig(": : :", "").ok());
    EXPECT_FALSE(load_kubeconfig("/does/not/exist").ok());
    auto ap = parse_kubeconfig(kubeconfig("    auth-provider: {name: gcp}\n"), "");
    ASSERT_FALSE(ap.ok());
    EXPECT_NE(ap.error().message.find("auth-provider"), std::string::npos);
}

TEST(Kubeconfig, ExecPluginTokenAndClientCert) {
    TempDir d;
    d.file("plugin.sh",
           "#!/bin/sh\n"
           "echo \"$1 $GREETING\" >> \"$(dirname \"$0\")/runs\"\n"
           "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3;; esac\n"
           "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
           "\"status\":{\"token\":\"exec-token\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}"
           "'\n",
           true);
    std::string path = d.file(
        "config", kubeconfig("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      "
                             "command: ./plugin.sh\n"
                             "      args: [hello]\n      env: [{name: GREETING, value: world}]\n"
                             "      interactiveMode: Never\n"));
    auto c = load_kubeconfig(path);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->token_source->token().value().reveal(), "exec-token");
    EXPECT_EQ(c->token_source->token().value().reveal(), "exec-token");
    std::ifstream runs(d.path() + "/runs");
    std::string line;
    int n = 0;
    while (std::getline(runs, line)) {
        EXPECT_EQ(line, "hello world");
        ++n;
    }
    EXPECT_EQ(n, 1) << "the credential from loading is reused until it expires";

    d.file("cert.sh",
           "#!/bin/sh\necho '{\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":"
           "\"CERT\",\"clientKeyData\":\"KEY\"}}'\n",
           true);
    auto cc =
        load_kubeconfig(d.file("config2", kubeconfig("    exec:\n      command: ./cert.sh\n")));
    ASSERT_TRUE(cc.ok()) << cc.error().message;
    EXPECT_EQ(cc->client_certificate_pem, "CERT");
    EXPECT_EQ(cc->client_key_pem.reveal(), "KEY");
    EXPECT_EQ(cc->token_source, nullptr);

    d.file("fail.sh", "#!/bin/sh\nexit 1\n", true);
    auto f =
        load_kubeconfig(d.file("config3", kubeconfig("    exec:\n      command: ./fail.sh\n")));
    EXPECT_FALSE(f.ok());
    auto v = load_kubeconfig(
        d.file("config4", kubeconfig("    exec:\n      apiVersion: "
                                     "client.authentication.k8s.io/v1alpha1\n      command: x\n")));
    EXPECT_FALSE(v.ok());
}

TEST(ExecCredential, Parse) {
    auto c = parse_exec_credential(
        R"({"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}})");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->token.reveal(), "t");
    ASSERT_TRUE(c->expiration.has_value());
    EXPECT_FALSE(parse_exec_credential("{}").ok());
    EXPECT_FALSE(parse_exec_credential(R"({"kind":"ExecCredential","status":{}})").ok());
    EXPECT_FALSE(parse_exec_credential("garbage").ok());
    EXPECT_FALSE(
        parse_exec_credential(R"({"kind":"ExecCredential","status":{"clientCertificateData":"C"}})")
            .ok());
}

TEST(ExecTokenSource, CachedUntilExpiryAndRerunAfterInvalidate) {
    TempDir d;
    std::string script = d.file(
        "p.sh",
        "#!/bin/sh\nn=$(cat \"$(dirname \"$0\")/n\" 2>/dev/null || echo 0); n=$((n+1)); "
        "echo $n > \"$(dirname \"$0\")/n\"\n"
        "echo \"{\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"t$n\\\","
        "\\\"expirationTimestamp\\\":\\\"2023-11-14T22:13:20Z\\\"}}\"\n",
        true);
    // 2023-11-14T22:13:20Z is FakeClock's start (1.7e9 s) ... plus nothing: expire "now".
    FakeClock clock(SystemTime(std::chrono::seconds(1'700'000'000)) - std::chrono::minutes(5));
    ExecConfig cfg;
    cfg.command = script;
    ExecTokenSource src(cfg, clock);
    EXPECT_EQ(src.token().value().reveal(), "t1");
    EXPECT_EQ(src.token().value().reveal(), "t1");
    EXPECT_EQ(src.runs(), 1);
    clock.advance(std::chrono::minutes(5));  // within 10 s of expiry: refresh
    EXPECT_EQ(src.token().value().reveal(), "t2");
    EXPECT_EQ(src.runs(), 2);
    src.invalidate();  // a 401
    EXPECT_EQ(src.token().value().reveal(), "t3");
}

TEST(FileTokenSource, ReReadsAfterRefreshPeriodAndKeepsLastGood) {
    TempDir d;
    std::string p = d.file("token", "one\n");
    FakeClock clock;
    FileTokenSource src(p, clock);
    EXPECT_EQ(src.token().value().reveal(), "one");
    d.file("token", "two\n");
    clock.advance(std::chrono::seconds(30));
    EXPECT_EQ(src.token().value().reveal(), "one") << "cached for a minute";
    clock.advance(std::chrono::seconds(31));
    EXPECT_EQ(src.token().value().reveal(), "two") << "re-read at least once a minute";
    fs::remove(p);
    clock.advance(std::chrono::seconds(61));
    EXPECT_EQ(src.token().value().reveal(), "two") << "unreadable: keep the last good token";
    d.file("token", "");
    clock.advance(std::chrono::seconds(61));
    EXPECT_EQ(src.token().value().reveal(), "two") << "empty: keep the last good token";
    d.file("token", "three");
    src.invalidate();  // a 401 forces a re-read now
    EXPECT_EQ(src.token().value().reveal(), "three");

    FileTokenSource none(d.path() + "/absent", clock);
    auto r = none.token();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Unauthorized);
}

TEST(InCluster, ReadsServiceAccountFilesAndEnv) {
    TempDir d;
    d.file("token", "sa-token");
    d.file("ca.crt", "CA");
    d.file("namespace", "edgecert-system\n");
    InClusterOptions o;
    o.dir = d.path();
    o.host = "fd00::1";
    o.port = "443";
    auto c = in_cluster_config(o);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://[fd00::1]:443");
    EXPECT_EQ(c->ca_pem, "CA");
    EXPECT_EQ(c->namespace_, "edgecert-system");
    EXPECT_EQ(c->token_source->token().value().reveal(), "sa-token");

    o.host = "10.96.0.1";
    EXPECT_EQ(in_cluster_config(o)->server, "https://10.96.0.1:443");
    InClusterOptions empty_env;
    empty_env.dir = d.path();
    empty_env.host = "";  // as if KUBERNETES_SERVICE_HOST were unset
    empty_env.port = "";
    EXPECT_FALSE(in_cluster_config(empty_env).ok()) << "not in a cluster";
    InClusterOptions no_token;
    no_token.dir = d.path() + "/missing";
    no_token.host = "h";
    no_token.port = "1";
    EXPECT_FALSE(in_cluster_config(no_token).ok());
}

}  // namespace
}  // namespace edgecert::k8s
