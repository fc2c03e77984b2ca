# unitrain_add_plugin(<name> KIND <kind> SOURCES <src>... [LIBRARIES <lib>...]
#                     [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds a plugin as a MODULE library named lib<name>.so into the plugin directory
# (UNITRAIN_PLUGIN_OUTPUT_DIR, or OUTPUT_DIRECTORY), linked against the unitrain core
# and LibTorch. Works in the unitrain tree and in projects that did
# find_package(unitrain).
function(unitrain_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "KIND;OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_KIND)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): KIND is required")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  # unitrain::core is the installed SDK's target and an alias in the unitrain tree.
  if(NOT TARGET unitrain::core)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): no unitrain::core target; call find_package(unitrain) first")
  endif()
  target_link_libraries(${name} PRIVATE unitrain::core ${ARG_LIBRARIES})
  set(out "${ARG_OUTPUT_DIRECTORY}")
  if(NOT out)
    if(DEFINED UNITRAIN_PLUGIN_OUTPUT_DIR)
      set(out "${UNITRAIN_PLUGIN_OUTPUT_DIR}")
    else()
      set(out "${CMAKE_BINARY_DIR}/plugins")
    endif()
  endif()
  set_target_properties(${name} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY "${out}"
    PREFIX "lib"
    UNITRAIN_PLUGIN_KIND "${ARG_KIND}")
  if(COMMAND unitrain_use_pch)
    unitrain_use_pch(${name})
  endif()
  if(NOT ARG_NO_INSTALL AND DEFINED UNITRAIN_INSTALL_PLUGIN_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION "${UNITRAIN_INSTALL_PLUGIN_DIR}")
  endif()
endfunction()
