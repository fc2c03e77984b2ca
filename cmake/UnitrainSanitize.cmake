# Sanitizer and fuzzing builds (`make sanitize`, `make fuzz`; scripts/sanitize.sh and
# scripts/fuzz.sh make the build folder). Every target of the tree gets the flags, the
# plugins included, so a plugin's memory errors are found where the host loads it.
option(UNITRAIN_SANITIZE "Build everything with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(UNITRAIN_FUZZ "Build the libFuzzer targets in fuzz/ (clang; implies UNITRAIN_SANITIZE)" OFF)

if(UNITRAIN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "UNITRAIN_FUZZ needs clang (libFuzzer); configure with "
                        "-DCMAKE_CXX_COMPILER=clang++ (Debian: clang libclang-rt-14-dev)")
  endif()
  set(UNITRAIN_SANITIZE ON)
endif()

if(UNITRAIN_SANITIZE)
  # A UBSan finding is an error (the run stops), never a line in a log.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    add_compile_options(-gline-tables-only)  # file:line in reports, at little cost
  endif()
endif()

if(UNITRAIN_FUZZ)
  # Coverage for libFuzzer in every library it drives; fuzz/ links the fuzzer itself.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
