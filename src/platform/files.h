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

// Writes `data` to `path` atomically with `mode`. Creates missing parent directories (0700).
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644);
inline Status write_secret_file(const std::string& path, const SecretBytes& data) {
    return write_file_atomic(path, data.reveal(), 0600);
}
// Reads a whole file, refusing anything larger than max_bytes. NotFound if it does not exist.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 4 << 20);
Result<SecretBytes> read_secret_file(const std::string& path, size_t max_bytes = 1 << 20);
Status make_dirs(const std::string& path, mode_t mode = 0700);
bool file_exists(const std::string& path);
Status remove_file(const std::string& path);  // missing is fine

}  // namespace edgecert::platform
