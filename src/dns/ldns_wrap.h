#pragma once
// The one way to include ldns. ldns/common.h #defines true/false as 1/0 even in C++ unless
// __bool_true_false_are_defined is set, which <stdbool.h> does — without it json(true) in any
// file that includes ldns silently becomes a number. So <stdbool.h> must come first.
// clang-format off
#include <stdbool.h>
#include <ldns/ldns.h>
// clang-format on
