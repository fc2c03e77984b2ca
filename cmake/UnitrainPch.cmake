# One precompiled header of torch + nlohmann/json, built once and reused by every
# target (REUSE_FROM needs identical flags, hence global PIC and one flag set).
add_library(unitrain_pch OBJECT "${CMAKE_CURRENT_LIST_DIR}/pch_anchor.cpp")
target_link_libraries(unitrain_pch PUBLIC torch nlohmann_json::nlohmann_json)
target_precompile_headers(unitrain_pch PUBLIC
  <torch/torch.h> <nlohmann/json.hpp> <string> <vector> <memory> <map>)

function(unitrain_use_pch target)
  if(NOT UNITRAIN_NO_PCH)
    target_precompile_headers(${target} REUSE_FROM unitrain_pch)
  endif()
endfunction()
