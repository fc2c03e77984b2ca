# One precompiled header of torch + nlohmann/json, built once and reused by every
# target (REUSE_FROM needs identical flags, hence global PIC and one flag set).
add_library(unitrain_pch OBJECT "${CMAKE_CURRENT_LIST_DIR}/pch_anchor.cpp")
target_link_libraries(unitrain_pch PUBLIC torch nlohmann_json::nlohmann_json)
target_precompile_headers(unitrain_pch PUBLIC
  <torch/torch.h> <nlohmann/json.hpp> <string> <vector> <memory> <map>)

function(unitrain_use_pch target)
  if(NOT UNITRAIN_NO_PCH)
    # Executables get -fPIE from CMake; the header was built -fPIC, and GCC rejects a
    # header built with other PIC flags. -fPIC last wins and is valid for executables.
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_compile_options(${target} PRIVATE -fPIC)
    endif()
    target_precompile_headers(${target} REUSE_FROM unitrain_pch)
  endif()
endfunction()
