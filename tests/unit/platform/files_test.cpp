#include "platform/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace edgecert::platform {
namespace {

class FilesTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/edgecert-files-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string dir_;
};

mode_t mode_of(const std::string& p) {
    struct stat st{};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 0777;
}

TEST_F(FilesTest, SecretFilesAre0600EvenWithAPermissiveUmask) {
    mode_t old = ::umask(0);
    std::string p = dir_ + "/a/b/tls.key";
    ASSERT_TRUE(write_secret_file(p, SecretBytes(std::string("k3y"))).ok());
    ::umask(old);
    EXPECT_EQ(mode_of(p), 0600u);
    EXPECT_EQ(mode_of(dir_ + "/a/b"), 0700u);  // created parents are private too
    auto back = read_secret_file(p);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->reveal(), "k3y");
}

TEST_F(FilesTest, ReplaceIsAtomicAndLeavesNoTemporaries) {
    std::string p = dir_ + "/tls.crt";
    for (auto d : {Durability::Full, Durability::FileOnly, Durability::None}) {
        ASSERT_TRUE(write_file_atomic(p, "one", 0644, d).ok());
        ASSERT_TRUE(write_file_atomic(p, "two", 0644, d).ok());
        EXPECT_EQ(*read_file(p), "two");
    }
    ASSERT_TRUE(sync_dir(dir_).ok());
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
        (void)e;
        ++n;
    }
    EXPECT_EQ(n, 1);
    EXPECT_EQ(mode_of(p), 0644u);
}

TEST_F(FilesTest, ReadErrorsAreTyped) {
    auto missing = read_file(dir_ + "/nope");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::NotFound);
    ASSERT_TRUE(write_file_atomic(dir_ + "/big", std::string(100, 'x')).ok());
    auto big = read_file(dir_ + "/big", 10);
    ASSERT_FALSE(big.ok());
    EXPECT_EQ(big.error().code, ErrorCode::InvalidConfig);
    EXPECT_TRUE(remove_file(dir_ + "/nope").ok());
}

}  // namespace
}  // namespace edgecert::platform
