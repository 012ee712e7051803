# make install: headers, the libraries (libbraid.so and libbraid.a), braid.pc and a CMake
# package (find_package(braid): braid::braid, the shared one, and braid::braid_static).
# The braid program gets an install RPATH relative to $ORIGIN (apps/braid), so the
# installed tree works from any prefix and keeps working when moved.
include(CMakePackageConfigHelpers)

set(_braid_install_targets braid)
if(BUILD_SHARED_LIBS)
  list(APPEND _braid_install_targets braid_static)
endif()
install(TARGETS ${_braid_install_targets} EXPORT braidTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT braidTargets NAMESPACE braid:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/braidConfig.cmake.in
  ${PROJECT_BINARY_DIR}/braidConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/braidConfig.cmake ${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)

if(BUILD_SHARED_LIBS)
  set(BRAID_PC_CFLAGS "")
else()
  set(BRAID_PC_CFLAGS "-DBRAID_STATIC=1")
endif()
# braid.pc finds the prefix relative to itself, so an install moved or made with
# `cmake --install --prefix` still works; the path up from the pkgconfig directory
# depends on the libdir (lib, or lib/x86_64-linux-gnu with PREFIX=/usr on Debian).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(BRAID_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _rel "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" _rel "${_rel}")
  set(BRAID_PC_PREFIX "\${pcfiledir}/${_rel}")
endif()
# An absolute libdir or includedir stands as given; a relative one hangs off the prefix.
foreach(_d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_d}}")
    set(BRAID_PC_${_d} "${CMAKE_INSTALL_${_d}}")
  else()
    set(BRAID_PC_${_d} "\${prefix}/${CMAKE_INSTALL_${_d}}")
  endif()
endforeach()
# Libs.private: what libbraid.a needs (pkg-config --static). Cflags stay the same for
# both kinds: BRAID_STATIC only matters for Windows DLLs, which braid doesn't build.
set(BRAID_PC_LIBS_PRIVATE "-pthread -lm")
configure_file(${PROJECT_SOURCE_DIR}/cmake/braid.pc.in ${PROJECT_BINARY_DIR}/braid.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/braid.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The MPI executor (src/mpi), when built: libbraid_mpi (the executor; it links libbraid),
# its own CMake package (find_package(braid_mpi): braid::braid_mpi and
# braid::braid_mpi_static, after find_dependency(MPI) and braid's own package, installed
# beside it), braid-mpi.pc (Requires: braid) and the launcher, scripts/braid-mpirun, as
# bin/braid-mpirun.
if(TARGET braid_mpi)
  set(_braid_mpi_install_targets braid_mpi)
  if(BUILD_SHARED_LIBS)
    list(APPEND _braid_mpi_install_targets braid_mpi_static)
  endif()
  install(TARGETS ${_braid_mpi_install_targets} EXPORT braidMpiTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT braidMpiTargets NAMESPACE braid:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid_mpi)
  file(WRITE ${PROJECT_BINARY_DIR}/braid_mpiConfig.cmake
"# braid::braid_mpi: the MPI executor (braid/mpi.h); it brings braid::braid with it.
# braid::braid_mpi_static is libbraid_mpi.a (with braid::braid_static).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(MPI COMPONENTS C)
find_dependency(braid ${PROJECT_VERSION} EXACT CONFIG PATHS \"\${CMAKE_CURRENT_LIST_DIR}/..\"
                NO_DEFAULT_PATH)
include(\"\${CMAKE_CURRENT_LIST_DIR}/braidMpiTargets.cmake\")
")
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/braid_mpiConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/braid_mpiConfig.cmake
                ${PROJECT_BINARY_DIR}/braid_mpiConfigVersion.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid_mpi)
  # braid-mpi.pc: braid.pc's prefix and paths; libbraid_mpi.so carries its libmpi
  # dependency itself, so only the static link (pkg-config --static) lists MPI's libraries.
  set(_mpi_libs "")
  get_target_property(_l MPI::MPI_C INTERFACE_LINK_LIBRARIES)
  foreach(_l IN LISTS _l)
    if(_l)
      string(APPEND _mpi_libs " ${_l}")
    endif()
  endforeach()
  set(BRAID_MPI_PC_LIBS_PRIVATE "${BRAID_PC_LIBS_PRIVATE}${_mpi_libs}")
  file(WRITE ${PROJECT_BINARY_DIR}/braid-mpi.pc.in
"prefix=@BRAID_PC_PREFIX@
exec_prefix=\${prefix}
libdir=@BRAID_PC_LIBDIR@
includedir=@BRAID_PC_INCLUDEDIR@
rpath_flags=-Wl,-rpath,\${libdir}

Name: braid-mpi
Description: braid's executor over MPI ranks (braid/mpi.h)
Version: @PROJECT_VERSION@
Requires: braid = @PROJECT_VERSION@
Libs: -L\${libdir} -lbraid_mpi
Libs.private: @BRAID_MPI_PC_LIBS_PRIVATE@
Cflags: -I\${includedir} @BRAID_PC_CFLAGS@
")
  configure_file(${PROJECT_BINARY_DIR}/braid-mpi.pc.in ${PROJECT_BINARY_DIR}/braid-mpi.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/braid-mpi.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/braid-mpirun DESTINATION ${CMAKE_INSTALL_BINDIR})
else()
  # mpi.h is installed with the other headers; without the library it declares nothing
  # a program could link, so leave it out.
  install(CODE "file(REMOVE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_INCLUDEDIR}/braid/mpi.h\")")
endif()

# The http layer (src/http), when built: libbraid_http (the layer; it links libbraid),
# its CMake package (find_package(braid_http): braid::braid_http,
# braid::braid_http_static; it looks up braid's own package beside it, and libcurl,
# libxml2 and jansson through pkg-config under the imported-target names the build used)
# and braid-http.pc (Requires: braid).
if(TARGET braid_http)
  set(_braid_http_install_targets braid_http)
  if(BUILD_SHARED_LIBS)
    list(APPEND _braid_http_install_targets braid_http_static)
  endif()
  install(TARGETS ${_braid_http_install_targets} EXPORT braidHttpTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT braidHttpTargets NAMESPACE braid:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid_http)
  file(WRITE ${PROJECT_BINARY_DIR}/braid_httpConfig.cmake
"# braid::braid_http: the http layer (braid/http.h); it brings braid::braid with it.
# braid::braid_http_static is libbraid_http.a (with braid::braid_static).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(braid ${PROJECT_VERSION} EXACT CONFIG PATHS \"\${CMAKE_CURRENT_LIST_DIR}/..\"
                NO_DEFAULT_PATH)
find_dependency(PkgConfig)
foreach(_m IN ITEMS \"0;libcurl\" \"1;libxml-2.0\" \"2;jansson\")
  list(GET _m 0 _i)
  list(GET _m 1 _n)
  if(NOT TARGET PkgConfig::braid_http_\${_i})
    pkg_check_modules(braid_http_\${_i} REQUIRED QUIET IMPORTED_TARGET GLOBAL \${_n})
  endif()
endforeach()
include(\"\${CMAKE_CURRENT_LIST_DIR}/braidHttpTargets.cmake\")
")
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/braid_httpConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/braid_httpConfig.cmake
                ${PROJECT_BINARY_DIR}/braid_httpConfigVersion.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid_http)
  file(WRITE ${PROJECT_BINARY_DIR}/braid-http.pc.in
"prefix=@BRAID_PC_PREFIX@
exec_prefix=\${prefix}
libdir=@BRAID_PC_LIBDIR@
includedir=@BRAID_PC_INCLUDEDIR@
rpath_flags=-Wl,-rpath,\${libdir}

Name: braid-http
Description: braid's http layer (braid/http.h)
Version: @PROJECT_VERSION@
Requires: braid = @PROJECT_VERSION@
Requires.private: libcurl libxml-2.0 jansson
Libs: -L\${libdir} -lbraid_http
Libs.private: @BRAID_PC_LIBS_PRIVATE@
Cflags: -I\${includedir} @BRAID_PC_CFLAGS@
")
  configure_file(${PROJECT_BINARY_DIR}/braid-http.pc.in ${PROJECT_BINARY_DIR}/braid-http.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/braid-http.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
else()
  install(CODE "file(REMOVE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_INCLUDEDIR}/braid/http.h\")")
endif()
