#pragma once
namespace edgecert {
inline constexpr const char* kVersion = "0.1.0";
inline constexpr const char* kUserAgent = "edgecert/0.1.0";
}  // namespace edgecert
