#pragma once
// File helpers with the project's safety rules: atomic replace (temp file in the same directory,
// fsync, rename, fsync of the directory) and explicit modes, so a crash never leaves a
// half-written certificate or key, and keys are never world-readable (0600).
#include <string>
#include <string_view>
#include <sys/types.h>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::platform {

// How hard a write insists on reaching the disk before it returns.
enum class Durability {
    Full,     // fsync the file, rename, fsync the directory
    FileOnly, // fsync the file and rename; the caller fsyncs the directory once (sync_dir) after
              // a batch of writes into it
    None,     // rename only: for metadata that can be rebuilt
};

// Writes `data` to `path` atomically with `mode`. Creates missing parent directories (0700).
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644,
                         Durability d = Durability::Full);
inline Status write_secret_file(const std::string& path, const SecretBytes& data,
                                Durability d = Durability::Full) {
    return write_file_atomic(path, data.reveal(), 0600, d);
}
// fsync of a directory, so renames into it survive a crash.
Status sync_dir(const std::string& dir);
// Reads a whole file, refusing anything larger than max_bytes. NotFound if it does not exist.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 4 << 20);
Result<SecretBytes> read_secret_file(const std::string& path, size_t max_bytes = 1 << 20);
Status make_dirs(const std::string& path, mode_t mode = 0700);
bool file_exists(const std::string& path);
Status remove_file(const std::string& path);  // missing is fine

}  // namespace edgecert::platform
