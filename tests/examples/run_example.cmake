# Runs one example (or `braid compare`) and checks its output exactly.
#
#   cmake -DEXE=<program> [-DARGS=a,b] -DCHECK=<name> -DTIMEOUT=<s> [-DEXPECT_RC=n]
#         -P run_example.cmake
#
# The program must exit 0, or EXPECT_RC (a sanitizer report makes it exit with another
# status); then the function
# check_<name> of checks.cmake parses its stdout. The helpers below work on EX_LINES,
# stdout split into lines. A failure prints what was expected and the whole output.
cmake_minimum_required(VERSION 3.20)

if(NOT EXE OR NOT CHECK)
  message(FATAL_ERROR "usage: cmake -DEXE=prog [-DARGS=a,b] -DCHECK=name -P run_example.cmake")
endif()
if(NOT TIMEOUT)
  set(TIMEOUT 60)
endif()
string(REPLACE "," ";" ex_args "${ARGS}")

# ThreadSanitizer sleeps 1 s at exit by default (atexit_sleep_ms) so that threads still
# running can report races; that would let the daemon threads of eat_drink finish
# before the process ends. Exit at once, as an uninstrumented program does.
if(DEFINED ENV{TSAN_OPTIONS} AND NOT "$ENV{TSAN_OPTIONS}" STREQUAL "")
  set(ENV{TSAN_OPTIONS} "$ENV{TSAN_OPTIONS}:atexit_sleep_ms=0")
else()
  set(ENV{TSAN_OPTIONS} "atexit_sleep_ms=0")
endif()

execute_process(COMMAND "${EXE}" ${ex_args}
                OUTPUT_VARIABLE EX_OUT ERROR_VARIABLE EX_ERR RESULT_VARIABLE EX_RC
                TIMEOUT ${TIMEOUT})

function(ex_fail msg)
  message(FATAL_ERROR "${CHECK}: ${msg}\n"
                      "--- exit status: ${EX_RC}\n--- stdout:\n${EX_OUT}--- stderr:\n${EX_ERR}")
endfunction()

if(NOT DEFINED EXPECT_RC)
  set(EXPECT_RC 0)
endif()
if(NOT EX_RC STREQUAL "${EXPECT_RC}")
  ex_fail("the program exited with status ${EX_RC}, not ${EXPECT_RC}")
endif()

# Split stdout into lines: EX_N lines, EX_LINE_0 .. EX_LINE_<EX_N - 1>. The helpers
# below work on line indices, never on CMake lists of lines, so that a line may hold
# anything (';' and square brackets would confuse a list).
string(REPLACE ";" "<ex-semicolon>" ex_text "${EX_OUT}")
string(REPLACE "[" "<ex-lbracket>" ex_text "${ex_text}")
string(REPLACE "]" "<ex-rbracket>" ex_text "${ex_text}")
string(REGEX REPLACE "\n$" "" ex_text "${ex_text}")
string(REPLACE "\n" ";" ex_list "${ex_text}")
set(EX_N 0)
if(NOT EX_OUT STREQUAL "")
  foreach(ex_item IN LISTS ex_list)
    string(REPLACE "<ex-semicolon>" ";" ex_item "${ex_item}")
    string(REPLACE "<ex-lbracket>" "[" ex_item "${ex_item}")
    string(REPLACE "<ex-rbracket>" "]" ex_item "${ex_item}")
    set(EX_LINE_${EX_N} "${ex_item}")
    math(EXPR EX_N "${EX_N} + 1")
  endforeach()
endif()

# ex_line(<out> <index>): line <index>; negative counts from the end (-1 is the last).
function(ex_line out i)
  if(i LESS 0)
    math(EXPR i "${EX_N} + ${i}")
  endif()
  if(i LESS 0 OR i GREATER_EQUAL EX_N)
    ex_fail("no line ${i} (the output has ${EX_N} lines)")
  endif()
  set(${out} "${EX_LINE_${i}}" PARENT_SCOPE)
endfunction()

# ex_expect_nlines(<n>): the output has exactly n lines.
function(ex_expect_nlines n)
  if(NOT EX_N EQUAL n)
    ex_fail("expected ${n} lines, got ${EX_N}")
  endif()
endfunction()

# ex_expect_line_at(<index> <text>): line <index> (negative: from the end) is <text>.
function(ex_expect_line_at i text)
  ex_line(line ${i})
  if(NOT line STREQUAL text)
    ex_fail("expected line ${i} to be '${text}', got '${line}'")
  endif()
endfunction()

# ex_index(<out> <regex> [<from>]): index of the first line at or after <from> that
# matches, or -1.
function(ex_index out regex)
  set(from 0)
  if(ARGC GREATER 2)
    set(from ${ARGV2})
  endif()
  set(i ${from})
  while(i LESS EX_N)
    if(EX_LINE_${i} MATCHES "${regex}")
      set(${out} ${i} PARENT_SCOPE)
      return()
    endif()
    math(EXPR i "${i} + 1")
  endwhile()
  set(${out} -1 PARENT_SCOPE)
endfunction()

# ex_grep(<out> <regex>): the indices of the matching lines, in order (a list).
function(ex_grep out regex)
  set(hits "")
  set(i 0)
  while(i LESS EX_N)
    if(EX_LINE_${i} MATCHES "${regex}")
      list(APPEND hits ${i})
    endif()
    math(EXPR i "${i} + 1")
  endwhile()
  set(${out} "${hits}" PARENT_SCOPE)
endfunction()

# ex_last_index(<out> <regex>): index of the last matching line, or -1.
function(ex_last_index out regex)
  ex_grep(hits "${regex}")
  if(hits STREQUAL "")
    set(${out} -1 PARENT_SCOPE)
  else()
    list(GET hits -1 last)
    set(${out} ${last} PARENT_SCOPE)
  endif()
endfunction()

# ex_expect_count(<regex> <n>): exactly n lines match.
function(ex_expect_count regex n)
  ex_grep(hits "${regex}")
  list(LENGTH hits got)
  if(NOT got EQUAL n)
    ex_fail("expected ${n} line(s) matching '${regex}', got ${got}")
  endif()
endfunction()

# ex_expect_line(<text>): some line is exactly <text>.
function(ex_expect_line text)
  set(i 0)
  while(i LESS EX_N)
    if(EX_LINE_${i} STREQUAL text)
      return()
    endif()
    math(EXPR i "${i} + 1")
  endwhile()
  ex_fail("expected the line '${text}'")
endfunction()

# ex_expect_no_line(<regex>): no line matches.
function(ex_expect_no_line regex)
  ex_index(idx "${regex}")
  if(idx GREATER_EQUAL 0)
    ex_fail("expected no line matching '${regex}', got '${EX_LINE_${idx}}'")
  endif()
endfunction()

# ex_expect_lines(<line>...): the output is exactly these lines.
function(ex_expect_lines)
  set(i 0)
  foreach(want IN LISTS ARGN)
    if(i GREATER_EQUAL EX_N OR NOT EX_LINE_${i} STREQUAL want)
      string(REPLACE ";" "\n" all "${ARGN}")
      ex_fail("line ${i}: expected '${want}'; the whole output should be:\n${all}")
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  ex_expect_nlines(${i})
endfunction()

# ex_expect_subsequence(<regex> <line>...): the lines matching <regex> are exactly
# <line>..., in this order.
function(ex_expect_subsequence regex)
  ex_grep(hits "${regex}")
  list(LENGTH hits got)
  list(LENGTH ARGN want)
  set(k 0)
  foreach(i IN LISTS hits)
    if(k LESS want)
      list(GET ARGN ${k} line)
    endif()
    if(k GREATER_EQUAL want OR NOT EX_LINE_${i} STREQUAL line)
      string(REPLACE ";" "\n" all "${ARGN}")
      ex_fail("lines matching '${regex}': expected, in this order:\n${all}")
    endif()
    math(EXPR k "${k} + 1")
  endforeach()
  if(NOT got EQUAL want)
    ex_fail("expected ${want} lines matching '${regex}', got ${got}")
  endif()
endfunction()

# ex_expect_before(<regex a> <regex b>): every line matching a comes before the first
# line matching b, and both exist.
function(ex_expect_before a b)
  ex_last_index(ia "${a}")
  ex_index(ib "${b}")
  if(ia LESS 0 OR ib LESS 0 OR ia GREATER ib)
    ex_fail("expected every line matching '${a}' (last: ${ia}) before the first matching '${b}' (${ib})")
  endif()
endfunction()

# ex_capture(<out> <regex>): group 1 of the first line that matches (fails if none).
function(ex_capture out regex)
  ex_index(idx "${regex}")
  if(idx LESS 0)
    ex_fail("expected a line matching '${regex}'")
  endif()
  string(REGEX MATCH "${regex}" _ "${EX_LINE_${idx}}")
  set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

# ex_fixed(<out> <decimal> <digits>): "1.23456" 3 -> 1234, the decimal in units of
# 10^-digits (truncated), as an integer: CMake's math() has no floating point.
function(ex_fixed out text digits)
  if(NOT text MATCHES "^([0-9]+)(\\.([0-9]*))?$")
    ex_fail("not a non-negative decimal number: '${text}'")
  endif()
  set(int "${CMAKE_MATCH_1}")
  set(pad "${CMAKE_MATCH_3}0000000000")
  string(SUBSTRING "${pad}" 0 ${digits} frac)
  string(REGEX REPLACE "^0+" "" int "${int}")
  string(REGEX REPLACE "^0+" "" frac "${frac}")
  if(int STREQUAL "")
    set(int 0)
  endif()
  if(frac STREQUAL "")
    set(frac 0)
  endif()
  math(EXPR scale "1")
  foreach(i RANGE 1 ${digits})
    math(EXPR scale "${scale} * 10")
  endforeach()
  math(EXPR v "${int} * ${scale} + ${frac}")
  set(${out} ${v} PARENT_SCOPE)
endfunction()

# ex_ms(<out> <seconds>): "1.234" -> 1234 (milliseconds, truncated).
function(ex_ms out seconds)
  ex_fixed(ms "${seconds}" 3)
  set(${out} ${ms} PARENT_SCOPE)
endfunction()

# ex_expect_seconds(<regex> <min ms> <max ms>): group 1 of the first matching line is a
# time in seconds within [min, max) milliseconds; max may be "inf".
function(ex_expect_seconds regex min max)
  ex_capture(s "${regex}")
  ex_ms(ms "${s}")
  # An upper bound shows that work overlapped (it is below the serial sum); it is
  # scaled by the timeout multiplier (sanitizer builds), like every other time limit,
  # so that only the plain build makes that claim tight.
  if(NOT max STREQUAL "inf" AND DEFINED MULT AND MULT GREATER 1)
    math(EXPR max "${max} * ${MULT}")
  endif()
  if(ms LESS min OR (NOT max STREQUAL "inf" AND ms GREATER_EQUAL max))
    ex_fail("'${regex}': ${s} s is outside [${min}, ${max}) ms")
  endif()
endfunction()

# ex_expect_each_once(<regex> <first> <last>): the lines matching regex, group 1 a
# number, name each of first..last exactly once and nothing else.
function(ex_expect_each_once regex first last)
  ex_grep(hits "${regex}")
  set(seen "")
  foreach(i IN LISTS hits)
    string(REGEX MATCH "${regex}" _ "${EX_LINE_${i}}")
    string(REGEX REPLACE "^0+([0-9])" "\\1" k "${CMAKE_MATCH_1}")
    if(k LESS first OR k GREATER last)
      ex_fail("'${EX_LINE_${i}}': ${k} is not in ${first}..${last}")
    endif()
    list(FIND seen ${k} at)
    if(at GREATER_EQUAL 0)
      ex_fail("'${EX_LINE_${i}}': ${k} appears twice (lines matching '${regex}')")
    endif()
    list(APPEND seen ${k})
  endforeach()
  list(LENGTH seen got)
  math(EXPR want "${last} - ${first} + 1")
  if(NOT got EQUAL want)
    ex_fail("lines matching '${regex}': expected each of ${first}..${last} once, got ${got} of them")
  endif()
endfunction()

# ex_expect_distinct(<regex> <n>): exactly n lines match, all different.
function(ex_expect_distinct regex n)
  ex_grep(hits "${regex}")
  set(digests "")
  foreach(i IN LISTS hits)
    string(SHA1 d "${EX_LINE_${i}}")
    list(APPEND digests ${d})
  endforeach()
  list(LENGTH digests got)
  list(REMOVE_DUPLICATES digests)
  list(LENGTH digests distinct)
  if(NOT got EQUAL n OR NOT distinct EQUAL n)
    ex_fail("expected ${n} distinct lines matching '${regex}', got ${got} (${distinct} distinct)")
  endif()
endfunction()

include(${CMAKE_CURRENT_LIST_DIR}/checks.cmake)
if(NOT COMMAND check_${CHECK})
  ex_fail("no check named check_${CHECK} in checks.cmake")
endif()
cmake_language(CALL check_${CHECK})
