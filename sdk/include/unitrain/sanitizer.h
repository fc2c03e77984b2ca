// UNITRAIN_ADDRESS_SANITIZER: 1 when this translation unit is built with AddressSanitizer
// (`make sanitize`; clang's __has_feature, GCC's __SANITIZE_ADDRESS__), else 0.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNITRAIN_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UNITRAIN_ADDRESS_SANITIZER)
#define UNITRAIN_ADDRESS_SANITIZER 1
#endif
#ifndef UNITRAIN_ADDRESS_SANITIZER
#define UNITRAIN_ADDRESS_SANITIZER 0
#endif
