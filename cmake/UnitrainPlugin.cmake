# unitrain_add_plugin(<name> KIND <kind> SOURCES <src>... [LIBRARIES <lib>...]
#                     [README <file>] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds a plugin as a MODULE library named lib<name>.so into the plugin directory
# (UNITRAIN_PLUGIN_OUTPUT_DIR, or OUTPUT_DIRECTORY), linked against the unitrain kit
# (unitrain::kit: the SDK's headers and building blocks; LibTorch, nlohmann_json and
# OpenCV come with it) and nothing of the engine. The link refuses undefined symbols,
# so a plugin that calls into the engine, or forgets a library, fails to build rather
# than to load. With README, the file (relative to the current source folder) becomes
# the plugin's built-in help: `#include "unitrain_readme.h"` gives
# `static const char kReadme[]` for the UNITRAIN_PLUGIN descriptor, and `unitrain
# plugins show NAME` prints it. Works in the unitrain tree and in projects that did
# find_package(unitrain).
function(unitrain_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "KIND;OUTPUT_DIRECTORY;README" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_KIND)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): KIND is required")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  # unitrain::kit is the installed SDK's target and an alias in the unitrain tree.
  if(NOT TARGET unitrain::kit)
    message(FATAL_ERROR "unitrain_add_plugin(${name}): no unitrain::kit target; call find_package(unitrain) first")
  endif()
  target_link_libraries(${name} PRIVATE unitrain::kit ${ARG_LIBRARIES})
  # Sanitizer runtimes stay undefined in shared libraries (the executable brings them).
  if(NOT UNITRAIN_SANITIZE)
    target_link_options(${name} PRIVATE "LINKER:-z,defs")
  endif()
  if(ARG_README)
    unitrain_embed_readme(${name} "${ARG_README}")
  endif()
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
    # Installed in <libdir>/unitrain/plugins: the kit is two folders up.
    set_target_properties(${name} PROPERTIES INSTALL_RPATH "$ORIGIN/../..")
    install(TARGETS ${name} LIBRARY DESTINATION "${UNITRAIN_INSTALL_PLUGIN_DIR}")
  endif()
endfunction()

# unitrain_embed_readme(<target> <file>)
#
# Generates unitrain_readme.h (`static const char kReadme[]`, the file's text) in a
# folder of its own and adds that folder to <target>'s include path (for a plugin whose
# sources are compiled in another target, e.g. an OBJECT library its tests link too).
# The header is rewritten only when the text changes; editing the file reconfigures.
function(unitrain_embed_readme target file)
  get_filename_component(readme "${file}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${readme}")
    message(FATAL_ERROR "unitrain_embed_readme(${target}): README '${readme}' does not exist")
  endif()
  file(READ "${readme}" text)
  if(text MATCHES "\\)unitrain_readme\"")
    message(FATAL_ERROR "unitrain_embed_readme(${target}): '${readme}' contains the raw-string "
                        "delimiter ')unitrain_readme\"'")
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_readme")
  file(WRITE "${dir}/unitrain_readme.h.new"
       "// Generated from ${readme} by unitrain_embed_readme.\n#pragma once\n"
       "static const char kReadme[] = R\"unitrain_readme(${text})unitrain_readme\";\n")
  configure_file("${dir}/unitrain_readme.h.new" "${dir}/unitrain_readme.h" COPYONLY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${readme}")
  target_include_directories(${target} PRIVATE "${dir}")
endfunction()
