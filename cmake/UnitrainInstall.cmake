# The SDK: the kit (libunitrain_kit and its headers, include/unitrain/: what plugins
# see and link), the engine (libunitrain_core, its headers apart in
# include/unitrain-engine/), libunitrain_inference, the unitrain executable, the
# built-in plugins, the plugin helper and a package config, so that another project
# does
#   find_package(unitrain REQUIRED)
#   unitrain_add_plugin(my_head KIND head SOURCES my_head.cpp)
include(CMakePackageConfigHelpers)

set(UNITRAIN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/unitrain")

install(TARGETS unitrain_kit EXPORT unitrainTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS unitrain_core EXPORT unitrainTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS unitrain_inference EXPORT unitrainTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS unitrain RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
install(DIRECTORY DESTINATION "${UNITRAIN_INSTALL_PLUGIN_DIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/sdk/include/unitrain"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" FILES_MATCHING PATTERN "*.h")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/core/include/unitrain"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/unitrain-engine" FILES_MATCHING PATTERN "*.h"
  PATTERN "inference.h" EXCLUDE)
install(FILES "${PROJECT_SOURCE_DIR}/core/include/unitrain/inference.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/unitrain")
install(EXPORT unitrainTargets NAMESPACE unitrain:: DESTINATION "${UNITRAIN_INSTALL_CMAKEDIR}")

configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/unitrainConfig.cmake.in"
  "${CMAKE_BINARY_DIR}/unitrainConfig.cmake"
  INSTALL_DESTINATION "${UNITRAIN_INSTALL_CMAKEDIR}"
  PATH_VARS UNITRAIN_INSTALL_PLUGIN_DIR)
write_basic_package_version_file("${CMAKE_BINARY_DIR}/unitrainConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  "${CMAKE_BINARY_DIR}/unitrainConfig.cmake"
  "${CMAKE_BINARY_DIR}/unitrainConfigVersion.cmake"
  "${CMAKE_CURRENT_LIST_DIR}/UnitrainPlugin.cmake"
  DESTINATION "${UNITRAIN_INSTALL_CMAKEDIR}")
