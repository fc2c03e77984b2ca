# unitrain_dataset_plugin(<name> SOURCES <src>...)
#
# Builds the dataset plugin lib unitrain_<name>.so from an OBJECT library
# unitrain_<name>_objects, which its test links too (the reader's classes are tested
# directly, without loading the .so). The folder's README.md is embedded as
# "readme.inc", a raw string literal for the plugin descriptor.
function(unitrain_dataset_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  set(objects unitrain_${name}_objects)
  file(READ "${CMAKE_CURRENT_SOURCE_DIR}/README.md" readme)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme.inc.new"
       "R\"unitrain_readme(${readme})unitrain_readme\"\n")
  # Copying only when the text changed keeps rebuilds away from every configure.
  configure_file("${CMAKE_CURRENT_BINARY_DIR}/readme.inc.new"
                 "${CMAKE_CURRENT_BINARY_DIR}/readme.inc" COPYONLY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               "${CMAKE_CURRENT_SOURCE_DIR}/README.md")

  add_library(${objects} OBJECT ${ARG_SOURCES})
  target_link_libraries(${objects} PUBLIC unitrain_core fmt::fmt ${OpenCV_LIBS})
  target_include_directories(${objects}
    PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}"
    PRIVATE "${CMAKE_CURRENT_BINARY_DIR}")
  unitrain_use_pch(${objects})
  unitrain_add_plugin(unitrain_${name} KIND dataset SOURCES $<TARGET_OBJECTS:${objects}>
                      LIBRARIES fmt::fmt ${OpenCV_LIBS})
endfunction()
