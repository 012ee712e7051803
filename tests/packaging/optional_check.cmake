# packaging.optional_parts: cmake/BraidOptional.cmake, through the project in optional/.
#
#   cmake -DSRC=<tests/packaging> -DROOT=<braid's source> -DWORK=<scratch dir>
#         -DGENERATOR=<gen> -P optional_check.cmake
#
# Configures the project four times and checks the one-line messages, the variables and
# the options: all AUTO (missing parts off, found ones on); a missing part forced ON
# (configure fails, naming what to install); parts turned OFF, a found one forced ON;
# an option value that means nothing (configure fails).
cmake_minimum_required(VERSION 3.20)

foreach(v SRC ROOT WORK GENERATOR)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "optional_check.cmake: -D${v}=... is missing")
  endif()
endforeach()

# configure(<name> <expect: OK|FAIL> [-D...]): a fresh configure; sets OUT (stdout and
# stderr together).
function(configure name expect)
  set(dir ${WORK}/${name})
  file(REMOVE_RECURSE ${dir})
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/optional -B ${dir} -G "${GENERATOR}"
                          -DBRAID_SOURCE_DIR=${ROOT} ${ARGN}
                  OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE rc TIMEOUT 120)
  set(OUT "${o}${e}" PARENT_SCOPE)
  set(CASE "${name}" PARENT_SCOPE)
  if(expect STREQUAL "OK" AND NOT rc STREQUAL "0")
    message(FATAL_ERROR "packaging.optional_parts: ${name}: configure failed (${rc}):\n${o}${e}")
  elseif(expect STREQUAL "FAIL" AND rc STREQUAL "0")
    message(FATAL_ERROR "packaging.optional_parts: ${name}: configure should have failed:\n${o}${e}")
  endif()
endfunction()

# has(<regex>): some line of OUT matches (the regex is anchored to a whole line).
function(has regex)
  string(REGEX MATCH "(^|\n)${regex}(\n|$)" m "${OUT}")
  if(m STREQUAL "")
    message(FATAL_ERROR "packaging.optional_parts: ${CASE}: no line matches '${regex}':\n${OUT}")
  endif()
endfunction()
function(lacks regex)
  string(REGEX MATCH "(^|\n)${regex}(\n|$)" m "${OUT}")
  if(NOT m STREQUAL "")
    message(FATAL_ERROR "packaging.optional_parts: ${CASE}: a line matches '${regex}':\n${OUT}")
  endif()
endfunction()

# 1. Everything AUTO.
configure(auto OK)
has("-- braid: ghost layer off: braid-test-no-such-module not found \\(apt-get install braid-test-ghost-dev\\)")
has("-- braid: mock layer on \\(cmocka [0-9][0-9.]*\\)")
has("-- braid: fake layer on \\(BraidTestFake 2\\.5\\)")
has("-- braid: phantom off: BraidTestNoSuchPackage not found \\(apt-get install braid-test-phantom-dev\\)")
has("-- result: GHOST have=OFF link= targets= missing=braid-test-no-such-module option=AUTO")
has("-- result: MOCK have=ON link=PkgConfig::braid_mock_0 targets=PkgConfig::braid_mock_0 missing= option=AUTO")
has("-- result: FAKE have=ON link=BraidTestFake::fake targets=BraidTestFake::fake missing= option=AUTO")
has("-- result: PHANTOM have=OFF link= targets= missing=BraidTestNoSuchPackage option=AUTO")
has("-- result: parts=ghost=OFF;mock=ON;fake=ON;phantom=OFF")
file(STRINGS ${WORK}/auto/CMakeCache.txt cached REGEX "^BRAID_WITH_GHOST:STRING=AUTO$")
if(NOT cached)
  message(FATAL_ERROR "packaging.optional_parts: BRAID_WITH_GHOST=AUTO is not in the cache")
endif()

# 2. A missing part forced on: the configure fails, saying what to install (CMake wraps
# an error's lines: compare with the white space folded).
configure(ghost_on FAIL -DBRAID_WITH_GHOST=ON)
string(REGEX REPLACE "[ \n]+" " " OUT "${OUT}")
string(FIND "${OUT}" "braid: ghost layer: braid-test-no-such-module not found (apt-get install braid-test-ghost-dev), and BRAID_WITH_GHOST=ON requires it" at)
if(at LESS 0)
  message(FATAL_ERROR "packaging.optional_parts: ghost_on: no error naming the missing module:\n${OUT}")
endif()

# 3. Parts off (any boolean spelling), a found one forced on.
configure(off OK -DBRAID_WITH_MOCK=OFF -DBRAID_WITH_GHOST=no -DBRAID_WITH_FAKE=ON)
has("-- braid: mock layer off \\(BRAID_WITH_MOCK=OFF\\)")
has("-- braid: ghost layer off \\(BRAID_WITH_GHOST=no\\)")
has("-- braid: fake layer on \\(BraidTestFake 2\\.5\\)")
lacks("-- braid: ghost layer off: .*")
has("-- result: MOCK have=OFF link= targets= missing= option=OFF")
has("-- result: GHOST have=OFF link= targets= missing= option=no")
has("-- result: FAKE have=ON link=BraidTestFake::fake targets=BraidTestFake::fake missing= option=ON")

# 4. A value that means nothing.
configure(bad FAIL -DBRAID_WITH_MOCK=maybe)
string(REGEX REPLACE "[ \n]+" " " OUT "${OUT}")
string(FIND "${OUT}" "braid: BRAID_WITH_MOCK=maybe: use AUTO, ON or OFF" at)
if(at LESS 0)
  message(FATAL_ERROR "packaging.optional_parts: bad: no error for BRAID_WITH_MOCK=maybe:\n${OUT}")
endif()

file(REMOVE_RECURSE ${WORK})
message(STATUS "packaging.optional_parts: 4 configurations checked")
