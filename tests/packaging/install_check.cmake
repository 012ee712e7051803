# packaging.install: the build tree, installed and used the ways the README says.
#
#   cmake -DBUILD_DIR=<build tree> -DWORK=<scratch dir> -DSRC=<tests/packaging>
#         -DCC=<C compiler> -DGENERATOR=<gen> -DMAKE_PROGRAM=<ninja> -DVERSION=<x.y.z>
#         -DBINDIR=<bin> -DLIBDIR=<lib> -DSHARED=ON|OFF -DWITH_APP=ON|OFF
#         -DPKG_CONFIG=<pkg-config> [-DWITH_BOTH=ON] -P install_check.cmake
#
# 1. `cmake --install` into WORK/stage, then the prefix is moved to WORK/moved: nothing
#    may remember where it was installed (braid.pc, the CMake package and the braid
#    program's RPATH are all relative to themselves).
# 2. The installed braid program runs (--version, --help) and loads the libbraid.so.0
#    of the moved prefix.
# 3. tests/packaging/app.c is built and run three ways: pkg-config (shared, with the
#    rpath_flags variable braid.pc offers), pkg-config --static (-static: a program with
#    no libbraid.so to find), and a CMake project using find_package(braid) with
#    braid::braid and braid::braid_static.
# 4. With WITH_BOTH (the http layer and the MPI executor both built, shared):
#    tests/packaging/both/both.c links libbraid_http and libbraid_mpi together, through
#    pkg-config and through find_package, and runs under the installed braid-mpirun with
#    2 ranks: a future of the MPI executor awaited by the http server shows one copy of
#    braid's state; ldd shows libbraid.so.0 loaded once. The find_package project builds
#    a _static variant too (the three archives), which runs the same way.
# LD_LIBRARY_PATH is cleared, so only the RPATHs can find the library; where ldd exists,
# it checks which libbraid each program loads (the moved one, or none).
# Needs no network; a few seconds, most of them the CMake project's configure step.
cmake_minimum_required(VERSION 3.20)

foreach(v BUILD_DIR WORK SRC CC GENERATOR VERSION BINDIR LIBDIR SHARED WITH_APP PKG_CONFIG)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "install_check.cmake: -D${v}=... is missing")
  endif()
endforeach()

set(ENV{LD_LIBRARY_PATH} "")
set(want "braid ${VERSION} ok 430")

# step(<name> <out var> COMMAND ...): runs the command; any failure stops the test with
# the step's name, the command and everything it printed.
function(step name out)
  execute_process(${ARGN} OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE rc
                  TIMEOUT 120)
  if(NOT rc STREQUAL "0")
    list(REMOVE_AT ARGN 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "packaging.install: ${name} failed (${rc})\n--- command: ${cmd}\n"
                        "--- stdout:\n${o}--- stderr:\n${e}")
  endif()
  set(${out} "${o}" PARENT_SCOPE)
endfunction()

# expect_app(<name> <program>): the program prints the one line app.c promises.
function(expect_app name exe)
  step("${name}: running it" o COMMAND ${exe})
  if(NOT o STREQUAL "${want}\n")
    message(FATAL_ERROR "packaging.install: ${name} printed '${o}', not '${want}'")
  endif()
  message(STATUS "${name}: ${want}")
endfunction()

# expect_loads(<name> <program> <where>): per ldd, the program loads libbraid.so from
# under <where> (a path), or, with <where> NONE, no libbraid at all.
find_program(LDD ldd)
function(expect_loads name exe where)
  if(NOT LDD)
    return()
  endif()
  execute_process(COMMAND ${LDD} ${exe} OUTPUT_VARIABLE o ERROR_VARIABLE e)
  string(REGEX MATCH "libbraid[^\n]*" line "${o}")
  if(where STREQUAL "NONE")
    if(NOT line STREQUAL "")
      message(FATAL_ERROR "packaging.install: ${name} should not load libbraid: ${line}")
    endif()
  else()
    string(FIND "${line}" "=> ${where}/" at)
    if(at LESS 0)
      message(FATAL_ERROR "packaging.install: ${name} should load libbraid from ${where}:\n${o}${e}")
    endif()
  endif()
endfunction()

# --- 1. install, then move the prefix ------------------------------------------------
file(REMOVE_RECURSE ${WORK})
set(stage ${WORK}/stage)
step("cmake --install" o COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${stage})
set(prefix ${stage})
if(NOT IS_ABSOLUTE "${LIBDIR}" AND NOT IS_ABSOLUTE "${BINDIR}")
  set(prefix ${WORK}/moved)
  file(RENAME ${stage} ${prefix})
endif()
foreach(f include/braid.h ${LIBDIR}/libbraid.a ${LIBDIR}/pkgconfig/braid.pc
          ${LIBDIR}/cmake/braid/braidConfig.cmake)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "packaging.install: ${f} was not installed")
  endif()
endforeach()
if(SHARED AND NOT EXISTS ${prefix}/${LIBDIR}/libbraid.so.0)
  message(FATAL_ERROR "packaging.install: ${LIBDIR}/libbraid.so.0 was not installed")
endif()
set(libdir ${prefix}/${LIBDIR})

# --- 2. the braid program ------------------------------------------------------------
if(WITH_APP)
  set(braid ${prefix}/${BINDIR}/braid)
  step("braid --version" o COMMAND ${braid} --version)
  if(NOT o STREQUAL "braid ${VERSION}\n")
    message(FATAL_ERROR "packaging.install: braid --version printed '${o}'")
  endif()
  step("braid --help" o COMMAND ${braid} --help)
  if(NOT o MATCHES "usage: braid <command>")
    message(FATAL_ERROR "packaging.install: braid --help printed '${o}'")
  endif()
  if(SHARED)
    expect_loads("the braid program" ${braid} ${prefix})
  endif()
  message(STATUS "the braid program: braid ${VERSION}")
endif()

# --- 3a. pkg-config, shared --------------------------------------------------------------
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
step("pkg-config --cflags --libs braid" flags
     COMMAND ${PKG_CONFIG} --cflags --libs braid)
step("pkg-config --variable=rpath_flags braid" rpath
     COMMAND ${PKG_CONFIG} --variable=rpath_flags braid)
separate_arguments(flags UNIX_COMMAND "${flags}")
separate_arguments(rpath UNIX_COMMAND "${rpath}")
if(SHARED)
  step("pkg-config shared: building" o
       COMMAND ${CC} ${SRC}/app.c ${flags} ${rpath} -o ${WORK}/app_pc_shared)
  expect_app("pkg-config shared" ${WORK}/app_pc_shared)
  expect_loads("pkg-config shared" ${WORK}/app_pc_shared ${prefix})
endif()

# --- 3b. pkg-config --static ---------------------------------------------------------------
step("pkg-config --static --cflags --libs braid" flags
     COMMAND ${PKG_CONFIG} --static --cflags --libs braid)
separate_arguments(flags UNIX_COMMAND "${flags}")
step("pkg-config --static: building" o
     COMMAND ${CC} -static ${SRC}/app.c ${flags} -o ${WORK}/app_pc_static)
expect_app("pkg-config --static" ${WORK}/app_pc_static)
expect_loads("pkg-config --static" ${WORK}/app_pc_static NONE)

# --- 3c. CMake: find_package(braid) ---------------------------------------------------
set(shared_type STATIC_LIBRARY)
if(SHARED)
  set(shared_type SHARED_LIBRARY)
endif()
set(gen_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND gen_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
step("find_package(braid): configuring" o
     COMMAND ${CMAKE_COMMAND} -S ${SRC}/consumer -B ${WORK}/consumer ${gen_args}
             -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=${CC}
             -DCMAKE_PREFIX_PATH=${prefix} -DEXPECT_PREFIX=${prefix}
             -DEXPECT_SHARED_TYPE=${shared_type} -DAPP=${SRC}/app.c)
step("find_package(braid): building" o
     COMMAND ${CMAKE_COMMAND} --build ${WORK}/consumer --parallel 2)
expect_app("find_package braid::braid" ${WORK}/consumer/app_shared)
expect_app("find_package braid::braid_static" ${WORK}/consumer/app_static)
if(SHARED)
  expect_loads("find_package braid::braid" ${WORK}/consumer/app_shared ${prefix})
endif()
expect_loads("find_package braid::braid_static" ${WORK}/consumer/app_static NONE)

# --- 4. both extension libraries in one program ----------------------------------------
# expect_both(<name> <program>): run with 2 ranks, rank 0 prints the one line.
function(expect_both name exe)
  step("${name}: running it" o COMMAND ${prefix}/${BINDIR}/braid-mpirun -n 2 ${exe})
  set(want_both "braid ${VERSION} one copy 49 mpi 2")
  if(NOT o MATCHES "(^|\n)${want_both}\n")
    message(FATAL_ERROR "packaging.install: ${name} printed '${o}', not '${want_both}'")
  endif()
  message(STATUS "${name}: ${want_both}")
endfunction()
# expect_one_libbraid(<name> <program>): ldd lists libbraid.so.0 once, from the prefix,
# beside libbraid_http.so.0 and libbraid_mpi.so.0.
function(expect_one_libbraid name exe)
  if(NOT LDD)
    return()
  endif()
  execute_process(COMMAND ${LDD} ${exe} OUTPUT_VARIABLE o ERROR_VARIABLE e)
  string(REGEX MATCHALL "libbraid[a-z_]*\\.so\\.0 => ${prefix}/" found "${o}")
  list(SORT found)
  set(want "libbraid.so.0 => ${prefix}/;libbraid_http.so.0 => ${prefix}/;libbraid_mpi.so.0 => ${prefix}/")
  if(NOT found STREQUAL want)
    message(FATAL_ERROR "packaging.install: ${name} should load each of libbraid, libbraid_http, libbraid_mpi once from ${prefix}:\n${o}${e}")
  endif()
endfunction()
if(WITH_BOTH)
  set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
  step("pkg-config --cflags --libs braid-http braid-mpi" flags
       COMMAND ${PKG_CONFIG} --cflags --libs braid-http braid-mpi)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  step("pkg-config both: building" o
       COMMAND ${CC} ${SRC}/both/both.c ${flags} ${rpath} -o ${WORK}/both_pc)
  expect_one_libbraid("pkg-config both" ${WORK}/both_pc)
  expect_both("pkg-config both" ${WORK}/both_pc)
  step("find_package both: configuring" o
       COMMAND ${CMAKE_COMMAND} -S ${SRC}/both -B ${WORK}/both ${gen_args}
               -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=${CC}
               -DCMAKE_PREFIX_PATH=${prefix} -DAPP=${SRC}/both/both.c)
  step("find_package both: building" o
       COMMAND ${CMAKE_COMMAND} --build ${WORK}/both --parallel 2)
  expect_one_libbraid("find_package both" ${WORK}/both/both_shared)
  expect_both("find_package both" ${WORK}/both/both_shared)
  expect_both("find_package both, static" ${WORK}/both/both_static)
endif()

file(REMOVE_RECURSE ${WORK})
