# Packaging: what `make install` gives a user, and the build's own machinery.
#
#   packaging.install   install_check.cmake: the build tree installed into a scratch
#                       prefix, moved, and used three ways (pkg-config shared and
#                       --static, find_package); the installed braid program runs.
#
# Under the sanitizers packaging.install is registered as skipped, saying why: the
# installed libbraid of a sanitizer tree is instrumented, so a program built against it
# the way the README says (no -fsanitize) can't load it (the sanitizer's runtime must
# come first in the process), and -static can't link it at all. What the test checks,
# the install layout, braid.pc, the CMake package and the RPATH, is the same in every
# tree, and the plain tree (`make test`) runs it.

set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/install_check.cmake)
#   (with the http layer and MPI built, shared, it also builds both/both.c, a program
#   linking libbraid_http and libbraid_mpi together, and runs it with 2 MPI ranks)

if(BRAID_SANITIZE)
  set(_why "a sanitizer tree installs an instrumented libbraid, which programs built without -fsanitize can't load and -static can't link; the plain build tree runs this test")
  # Said at configure time too: CTest shows a skipped test's output only with -V.
  message(STATUS "braid: packaging.install is skipped here: ${_why}")
  add_test(NAME packaging.install
           COMMAND ${CMAKE_COMMAND} -E echo "packaging.install skipped: ${_why}")
  set_tests_properties(packaging.install PROPERTIES
    SKIP_REGULAR_EXPRESSION "packaging.install skipped:" LABELS packaging)
else()
  find_program(BRAID_PKG_CONFIG NAMES pkg-config pkgconf)
  set(_shared OFF)
  if(BUILD_SHARED_LIBS)
    set(_shared ON)
  endif()
  set(_app OFF)
  if(BRAID_BUILD_APPS)
    set(_app ON)
  endif()
  # Step 4 (both extension libraries in one program) needs both built, shared.
  set(_both OFF)
  if(BUILD_SHARED_LIBS AND TARGET braid_http AND TARGET braid_mpi)
    set(_both ON)
  endif()
  math(EXPR _timeout "180 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
  add_test(NAME packaging.install
           COMMAND ${CMAKE_COMMAND}
                   -DBUILD_DIR=${PROJECT_BINARY_DIR}
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/packaging-install
                   -DSRC=${CMAKE_CURRENT_LIST_DIR}
                   -DCC=${CMAKE_C_COMPILER}
                   -DGENERATOR=${CMAKE_GENERATOR}
                   -DMAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}
                   -DVERSION=${PROJECT_VERSION}
                   -DBINDIR=${CMAKE_INSTALL_BINDIR}
                   -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
                   -DSHARED=${_shared}
                   -DWITH_APP=${_app}
                   -DPKG_CONFIG=${BRAID_PKG_CONFIG}
                   -DWITH_BOTH=${_both}
                   -P ${CMAKE_CURRENT_LIST_DIR}/install_check.cmake)
  set_tests_properties(packaging.install PROPERTIES TIMEOUT ${_timeout} LABELS packaging)
  if(_both)
    set_tests_properties(packaging.install PROPERTIES RESOURCE_LOCK mpi)
  endif()
endif()

# packaging.optional_parts: cmake/BraidOptional.cmake on a project of its own
# (optional/), configured four ways by optional_check.cmake. Needs no compiler.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/optional_check.cmake)
math(EXPR _timeout "120 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
add_test(NAME packaging.optional_parts
         COMMAND ${CMAKE_COMMAND}
                 -DSRC=${CMAKE_CURRENT_LIST_DIR}
                 -DROOT=${PROJECT_SOURCE_DIR}
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/packaging-optional
                 -DGENERATOR=${CMAKE_GENERATOR}
                 -P ${CMAKE_CURRENT_LIST_DIR}/optional_check.cmake)
set_tests_properties(packaging.optional_parts PROPERTIES TIMEOUT ${_timeout} LABELS packaging)
