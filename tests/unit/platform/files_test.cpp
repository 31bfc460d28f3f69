#include "platform/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <utility>
#include <vector>

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
    struct stat st {};
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

size_t entries(const std::string& dir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        (void)e;
        ++n;
    }
    return n;
}

Result<PreparedFile> prep(const std::string& p, std::string_view data) {
    return PreparedFile::create(p, data, 0600, Durability::FileOnly);
}

TEST_F(FilesTest, ReplaceFilesCommitsInOrderAndRemoves) {
    ASSERT_TRUE(write_file_atomic(dir_ + "/tls.key", "old key").ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/ca.crt", "old ca").ok());
    auto key = prep(dir_ + "/tls.key", "new key");
    auto crt = prep(dir_ + "/tls.crt", "new crt");
    ASSERT_TRUE(key.ok() && crt.ok());
    EXPECT_EQ(*read_file(dir_ + "/tls.key"), "old key");  // prepared, not yet visible
    std::vector<PreparedFile> files;
    files.push_back(std::move(*key));
    files.push_back(PreparedFile::removal(dir_ + "/ca.crt"));
    files.push_back(std::move(*crt));
    ASSERT_TRUE(replace_files(std::move(files)).ok());
    EXPECT_EQ(*read_file(dir_ + "/tls.key"), "new key");
    EXPECT_EQ(*read_file(dir_ + "/tls.crt"), "new crt");
    EXPECT_FALSE(file_exists(dir_ + "/ca.crt"));
    EXPECT_EQ(mode_of(dir_ + "/tls.key"), 0600u);
    EXPECT_EQ(entries(dir_), 2u);  // no temporary or kept copy left
}

// The last rename fails (here: tls.crt is a non-empty directory; on a real disk, remounted
// read-only between the renames): the key and ca.crt renamed before it get their old content
// back, so the old set stays whole and matching.
TEST_F(FilesTest, ReplaceFilesPutsBackWhatItReplacedWhenALaterRenameFails) {
    ASSERT_TRUE(write_file_atomic(dir_ + "/tls.key", "old key").ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/ca.crt", "old ca").ok());
    ASSERT_TRUE(make_dirs(dir_ + "/tls.crt/x").ok());
    std::vector<PreparedFile> files;
    for (auto [name, data] :
         {std::pair{"tls.key", "new key"}, {"ca.crt", "new ca"}, {"tls.crt", "new crt"}}) {
        auto f = prep(dir_ + "/" + name, data);
        ASSERT_TRUE(f.ok()) << f.error().message;
        files.push_back(std::move(*f));
    }
    files.push_back(PreparedFile::removal(dir_ + "/never-reached"));
    auto st = replace_files(std::move(files));
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("tls.crt"), std::string::npos) << st.error().message;
    EXPECT_EQ(*read_file(dir_ + "/tls.key"), "old key");
    EXPECT_EQ(*read_file(dir_ + "/ca.crt"), "old ca");
    EXPECT_EQ(entries(dir_), 3u);  // tls.key, ca.crt, the tls.crt directory: nothing else
}

// A file that did not exist before is removed again when a later rename fails.
TEST_F(FilesTest, ReplaceFilesRemovesANewFileWhenALaterRenameFails) {
    ASSERT_TRUE(make_dirs(dir_ + "/tls.crt/x").ok());
    std::vector<PreparedFile> files;
    auto key = prep(dir_ + "/tls.key", "new key");
    auto crt = prep(dir_ + "/tls.crt", "new crt");
    ASSERT_TRUE(key.ok() && crt.ok());
    files.push_back(std::move(*key));
    files.push_back(std::move(*crt));
    ASSERT_FALSE(replace_files(std::move(files)).ok());
    EXPECT_FALSE(file_exists(dir_ + "/tls.key"));
    EXPECT_EQ(entries(dir_), 1u);
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

namespace edgecert::platform {
namespace {

// A process killed at every possible point of replace_files(), then recover_replacements() as
// the next start does: the folder holds either the whole old set or the whole new set, never a
// mix, and nothing else (no temporary, no kept previous file, no intent file). Once the last
// file has been renamed into place, it is the new set.
class ReplaceCrashTest : public FilesTest {
  protected:
    void TearDown() override {
        set_replace_crash_point_for_test(-1);
        FilesTest::TearDown();
    }
    std::map<std::string, std::string> contents() {
        std::map<std::string, std::string> m;
        for (const auto& e : std::filesystem::directory_iterator(dir_))
            m[e.path().filename().string()] = *read_file(e.path().string());
        return m;
    }
};

TEST_F(ReplaceCrashTest, EveryCrashPointLeavesTheOldOrTheNewSetWhole) {
    const std::map<std::string, std::string> old_set{{"tls.key", "old key"}, {"ca.crt", "old ca"},
                                                     {"tls.crt", "old crt"}};
    const std::map<std::string, std::string> new_set{{"tls.key", "new key"}, {"tls.crt", "new crt"}};
    int finished_forward = 0, undone = 0;
    for (int k = 0;; ++k) {
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        for (const auto& [n, c] : old_set) ASSERT_TRUE(write_file_atomic(dir_ + "/" + n, c, 0600).ok());
        std::vector<PreparedFile> files;
        files.push_back(*prep(dir_ + "/tls.key", "new key"));
        files.push_back(PreparedFile::removal(dir_ + "/ca.crt"));
        files.push_back(*prep(dir_ + "/tls.crt", "new crt"));
        set_replace_crash_point_for_test(k);
        ASSERT_TRUE(replace_files(std::move(files)).ok());
        set_replace_crash_point_for_test(-1);
        bool interrupted = false;
        for (const auto& e : std::filesystem::directory_iterator(dir_))
            interrupted |= e.path().filename().string().rfind(".replace-", 0) == 0;
        auto did = recover_replacements(dir_, std::chrono::seconds(0));
        ASSERT_TRUE(did.ok()) << did.error().message;
        auto now = contents();
        EXPECT_TRUE(now == old_set || now == new_set) << "crash point " << k;
        if (!interrupted) {  // ran to the end: nothing to recover, the new set
            EXPECT_EQ(now, new_set);
            EXPECT_TRUE(did->empty());
            EXPECT_GE(k, 5) << "too few crash points exercised";
            break;
        }
        (now == new_set ? finished_forward : undone)++;
        ASSERT_EQ(did->size(), 1u) << "crash point " << k;
        ASSERT_LT(k, 50);
    }
    EXPECT_GT(finished_forward, 0);
    EXPECT_GT(undone, 0);
    EXPECT_EQ(mode_of(dir_ + "/tls.key"), 0600u);
}

TEST_F(ReplaceCrashTest, StaleTemporariesGoFreshOnesStay) {
    ASSERT_TRUE(write_file_atomic(dir_ + "/tls.crt", "crt", 0644).ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/tls.key.tmp-123", "half a key", 0600).ok());
    auto did = recover_replacements(dir_, std::chrono::seconds(60));
    ASSERT_TRUE(did.ok());
    EXPECT_TRUE(did->empty());  // just written: possibly another process's write in progress
    EXPECT_TRUE(file_exists(dir_ + "/tls.key.tmp-123"));
    did = recover_replacements(dir_, std::chrono::seconds(0));
    ASSERT_TRUE(did.ok());
    ASSERT_EQ(did->size(), 1u);
    EXPECT_FALSE(file_exists(dir_ + "/tls.key.tmp-123"));
    EXPECT_EQ(*read_file(dir_ + "/tls.crt"), "crt");
    EXPECT_TRUE(recover_replacements(dir_ + "/missing").ok());
}

}  // namespace
}  // namespace edgecert::platform
