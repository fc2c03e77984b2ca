# unitrain_dataset_plugin(<name> SOURCES <src>...)
#
# Builds the dataset plugin lib unitrain_<name>.so from an OBJECT library
# unitrain_<name>_objects, which its test links too (the reader's classes are tested
# directly, without loading the .so). The folder's README.md is the plugin's built-in
# help (kReadme from "unitrain_readme.h", see unitrain_embed_readme).
function(unitrain_dataset_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  set(objects unitrain_${name}_objects)
  add_library(${objects} OBJECT ${ARG_SOURCES})
  target_link_libraries(${objects} PUBLIC unitrain_kit fmt::fmt ${OpenCV_LIBS})
  target_include_directories(${objects} PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}")
  unitrain_embed_readme(${objects} README.md)
  unitrain_use_pch(${objects})
  unitrain_add_plugin(unitrain_${name} KIND dataset SOURCES $<TARGET_OBJECTS:${objects}>
                      LIBRARIES fmt::fmt ${OpenCV_LIBS})
endfunction()
