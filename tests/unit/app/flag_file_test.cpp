// --config FILE for terminator/controller: YAML keys are the flags (camelCase or kebab-case),
// lists join with commas, the command line wins, unknown keys are errors.
#include "app/flag_file.h"
#include "app/flags.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace edgecert::app {
namespace {

struct FlagFileTest : ::testing::Test {
    std::string path;
    void SetUp() override {
        char tmpl[] = "/tmp/edgecert-flagfile-XXXXXX";
        int fd = mkstemp(tmpl);
        ASSERT_GE(fd, 0);
        ::close(fd);
        path = tmpl;
    }
    void TearDown() override { ::unlink(path.c_str()); }
    void write(const std::string& text) { std::ofstream(path) << text; }
    static Flags flags() {
        Flags f("terminator", "", "");
        f.add("listen", "ADDR", "", "0.0.0.0:443").add("cert-dir", "DIR", "").add("alpn", "LIST", "", "h2,http/1.1")
            .add("workers", "N", "", "1").add_bool("strict-sni", "").add("config", "FILE", "");
        return f;
    }
    static Status parse(Flags& f, std::vector<std::string> args) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        return f.parse(static_cast<int>(argv.size()), argv.data());
    }
};

TEST_F(FlagFileTest, KeysListsBooleansAndCommandLineWins) {
    write("listen: 127.0.0.1:8443\ncertDir: /etc/edgecert/certs\nalpn: [h2, http/1.1]\nworkers: 4\nstrict-sni: true\n");
    Flags f = flags();
    ASSERT_TRUE(parse(f, {"--workers", "2"}).ok());
    auto st = apply_flag_file(f, path);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(f.get("listen"), "127.0.0.1:8443");
    EXPECT_EQ(f.get("cert-dir"), "/etc/edgecert/certs");
    EXPECT_TRUE(f.has("cert-dir"));
    EXPECT_EQ(f.get("alpn"), "h2,http/1.1");
    EXPECT_TRUE(f.get_bool("strict-sni"));
    EXPECT_EQ(f.get("workers"), "2");  // the command line overrides the file
}

TEST_F(FlagFileTest, ErrorsNameTheKey) {
    Flags f = flags();
    ASSERT_TRUE(parse(f, {}).ok());
    write("listen: x\ncertDri: /typo\n");
    auto st = apply_flag_file(f, path);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::InvalidConfig);
    EXPECT_NE(st.error().message.find("certDri"), std::string::npos) << st.error().message;
    Flags g = flags();
    ASSERT_TRUE(parse(g, {}).ok());
    write("strictSni: maybe\n");
    EXPECT_FALSE(apply_flag_file(g, path).ok());
    write("- just\n- a list\n");
    EXPECT_FALSE(apply_flag_file(g, path).ok());
    write("listen: {nested: map}\n");
    EXPECT_FALSE(apply_flag_file(g, path).ok());
    EXPECT_FALSE(apply_flag_file(g, path + ".missing").ok());
}

}  // namespace
}  // namespace edgecert::app

TEST(KubectlFlags, ShortSpellingsBecomeLongFlags) {
    std::vector<std::string> in = {"-n", "shop", "-nteam", "-n=a", "-A", "-l", "app=web", "-o", "--namespace=x",
                                   "web", "--all"};
    std::vector<char*> argv;
    for (auto& s : in) argv.push_back(s.data());
    auto out = edgecert::app::expand_kubectl_flags(static_cast<int>(argv.size()), argv.data(),
                                                   {{'n', "namespace"}, {'l', "selector"}});
    EXPECT_EQ(out, (std::vector<std::string>{"--namespace", "shop", "--namespace", "team", "--namespace", "a",
                                             "--all-namespaces", "--selector", "app=web", "-o", "--namespace=x",
                                             "web", "--all"}));
}

TEST(KubectlFlags, HasAnyFlagSeesLongAndShortSpellings) {
    std::vector<std::string> in = {"--kubeconfig=/k", "--config-dir", "x", "-nshop"};
    std::vector<char*> argv;
    for (auto& s : in) argv.push_back(s.data());
    const int n = static_cast<int>(argv.size());
    EXPECT_TRUE(edgecert::app::has_any_flag(n, argv.data(), {"--kubeconfig"}));
    EXPECT_FALSE(edgecert::app::has_any_flag(n, argv.data(), {"--config"}));  // --config-dir is another flag
    EXPECT_TRUE(edgecert::app::has_any_flag(n, argv.data(), {"--store"}, "n"));
    EXPECT_FALSE(edgecert::app::has_any_flag(n, argv.data(), {"--store"}, "lA"));
}
