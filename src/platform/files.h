#pragma once
// File helpers with the project's safety rules: atomic replace (temp file in the same directory,
// fsync, rename, fsync of the directory) and explicit modes, so a crash never leaves a
// half-written certificate or key, and keys are never world-readable (0600).
#include <sys/types.h>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::platform {

// How hard a write insists on reaching the disk before it returns.
enum class Durability {
    Full,      // fsync the file, rename, fsync the directory
    FileOnly,  // fsync the file and rename; the caller fsyncs the directory once (sync_dir) after
               // a batch of writes into it
    None,      // rename only: for metadata that can be rebuilt
};

// Writes `data` to `path` atomically with `mode`. Creates missing parent directories (0700).
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644,
                         Durability d = Durability::Full);
inline Status write_secret_file(const std::string& path, const SecretBytes& data,
                                Durability d = Durability::Full) {
    return write_file_atomic(path, data.reveal(), 0600, d);
}
// A file written in full (and, unless Durability::None, fsynced) under a temporary name beside
// `path`, not yet visible there. commit() renames it into place; destroyed uncommitted it is
// removed. Writing every file of a set first means a full or read-only disk fails before any
// of them replaces anything (a rename needs no free space). removal(path): a commit() that
// removes `path` instead (missing is fine).
class PreparedFile {
  public:
    static Result<PreparedFile> create(const std::string& path, std::string_view data, mode_t mode,
                                       Durability d);
    static PreparedFile removal(std::string path) { return PreparedFile(std::move(path), {}); }
    PreparedFile(PreparedFile&& o) noexcept : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)) {
        o.tmp_.clear();
    }
    PreparedFile& operator=(PreparedFile&&) = delete;
    PreparedFile(const PreparedFile&) = delete;
    ~PreparedFile();
    Status commit();
    const std::string& path() const { return path_; }
    const std::string& tmp() const { return tmp_; }  // empty for a removal
    // Forget the temporary without removing it (what a killed process leaves): tests only.
    void abandon_for_test() { tmp_.clear(); }

  private:
    PreparedFile(std::string path, std::string tmp)
        : path_(std::move(path)), tmp_(std::move(tmp)) {}
    std::string path_, tmp_;  // tmp_ empty: a removal, committed, or moved from
};
// Commits `files` in order (a key before the certificate that needs it). Every file is already
// on disk in full, so only renames remain; if one fails, the files committed before it get
// their previous content back (kept under a hard link, which needs no data blocks, until the
// last one is in), so the old set stays whole and matching.
// A process killed between two of those renames would leave a mixed set (a new tls.key beside
// the old tls.crt): before the first rename an intent file `.replace-<token>` is written in the
// first file's folder, naming every file, its temporary and its kept previous content, and it
// is removed last. recover_replacements() finishes or undoes what such a file describes.
Status replace_files(std::vector<PreparedFile> files);
// For a folder that replace_files() writes into, at start-up, before anything reads it: every
// interrupted replacement is rolled forward if its last file was already renamed into place
// (the new set is whole), else rolled back to the previous set; then temporaries of
// write_file_atomic/PreparedFile older than `stale` (killed mid-write) are removed. Returns
// what it did, one line per action, for the log. Assumes no other process is writing the folder.
Result<std::vector<std::string>> recover_replacements(const std::string& dir,
                                                      std::chrono::seconds stale = std::chrono::seconds(60));
// Tests only: replace_files() stops as if killed after this many changes to the folder
// (intent written, each link, rename, unlink), leaving everything as a SIGKILL would; -1: off.
void set_replace_crash_point_for_test(int changes);
// fsync of a directory, so renames into it survive a crash.
Status sync_dir(const std::string& dir);
// Reads a whole file, refusing anything larger than max_bytes. NotFound if it does not exist.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 4 << 20);
Result<SecretBytes> read_secret_file(const std::string& path, size_t max_bytes = 1 << 20);
Status make_dirs(const std::string& path, mode_t mode = 0700);
bool file_exists(const std::string& path);
Status remove_file(const std::string& path);  // missing is fine

}  // namespace edgecert::platform
