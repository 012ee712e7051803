# http.fuzz_request: a libFuzzer target over the server's request parser
# (tests/http/fuzz_request.c: src/http/parse.c and llhttp, nothing else), run for a
# bounded time over the seed corpus; a crash, a sanitizer report or a broken invariant
# fails it. http.fuzz_response: the same over the client's reading of a reply
# (tests/http/fuzz_response.c: src/http/client.c on libcurl, a reply per input served
# on loopback), with its own seeds (fuzz_response_corpus/) and dictionary. It needs clang (libFuzzer is clang's), found with find_program; without
# clang, or without the http part, there is no such test.
#
# The target is compiled by clang with its own flags (-fsanitize=fuzzer,address,
# undefined), whatever the tree's compiler and sanitizer, so it is the same program in
# every build tree. So only the default tree runs it: in the ASan tree it would be the
# same program (ASan and UBSan included) fuzzing for another 20 s of CI's time, and in
# the TSan tree it can't link (clang refuses fuzzer+thread; the parser has no threads
# for TSan to watch anyway).
if(NOT BRAID_HAVE_HTTP OR BRAID_SANITIZE)
  return()
endif()
find_program(BRAID_CLANG NAMES clang clang-16 clang-15 clang-14)
if(NOT BRAID_CLANG)
  message(STATUS "http.fuzz_request: no clang, no fuzz test")
  return()
endif()
set(_fuzz_srcs ${CMAKE_CURRENT_SOURCE_DIR}/http/fuzz_request.c
               ${PROJECT_SOURCE_DIR}/src/http/parse.c
               ${BRAID_LLHTTP_DIR}/llhttp.c ${BRAID_LLHTTP_DIR}/api.c
               ${BRAID_LLHTTP_DIR}/http.c)
set(_fuzz_bin ${CMAKE_CURRENT_BINARY_DIR}/http_fuzz_request)
add_custom_command(OUTPUT ${_fuzz_bin}
  COMMAND ${BRAID_CLANG} -g -O1 -std=c11 -D_GNU_SOURCE -DBRAID_BUILDING=1
          -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
          -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/src
          -I${BRAID_LLHTTP_INCLUDE} ${_fuzz_srcs} -o ${_fuzz_bin}
  DEPENDS ${_fuzz_srcs} ${PROJECT_SOURCE_DIR}/src/http/parse.h
  COMMENT "Building the request parser's fuzz target with clang")
add_custom_target(braid_fuzz_request ALL DEPENDS ${_fuzz_bin})
math(EXPR _fuzz_timeout "120 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
# New inputs go to a scratch corpus in the build tree; the seeds are only read.
add_test(NAME http.fuzz_request
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
          sh -c "mkdir -p fuzz_request_corpus && exec \"$0\" -max_total_time=20 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 fuzz_request_corpus \"$1\""
          ${_fuzz_bin} ${CMAKE_CURRENT_SOURCE_DIR}/http/fuzz_corpus
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(http.fuzz_request PROPERTIES TIMEOUT ${_fuzz_timeout} LABELS http)

# The client's reply path: client.c compiled into the target (stubs stand in for the
# rest of braid), libcurl linked as installed.
find_package(PkgConfig QUIET)
pkg_check_modules(BRAID_FUZZ_CURL QUIET libcurl)
if(NOT BRAID_FUZZ_CURL_FOUND)
  message(STATUS "http.fuzz_response: no libcurl through pkg-config, no fuzz test")
  return()
endif()
set(_fuzz_resp_srcs ${CMAKE_CURRENT_SOURCE_DIR}/http/fuzz_response.c
                    ${PROJECT_SOURCE_DIR}/src/http/client.c)
set(_fuzz_resp_bin ${CMAKE_CURRENT_BINARY_DIR}/http_fuzz_response)
add_custom_command(OUTPUT ${_fuzz_resp_bin}
  COMMAND ${BRAID_CLANG} -g -O1 -std=c11 -D_GNU_SOURCE -DBRAID_BUILDING=1
          -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
          -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/src
          ${BRAID_FUZZ_CURL_CFLAGS} ${_fuzz_resp_srcs} ${BRAID_FUZZ_CURL_LDFLAGS} -pthread
          -o ${_fuzz_resp_bin}
  DEPENDS ${_fuzz_resp_srcs} ${PROJECT_SOURCE_DIR}/src/http/client.h
  COMMENT "Building the client's reply fuzz target with clang")
add_custom_target(braid_fuzz_response ALL DEPENDS ${_fuzz_resp_bin})
add_test(NAME http.fuzz_response
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
          sh -c "mkdir -p fuzz_response_corpus && exec \"$0\" -max_total_time=20 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 -dict=\"$2\" fuzz_response_corpus \"$1\""
          ${_fuzz_resp_bin} ${CMAKE_CURRENT_SOURCE_DIR}/http/fuzz_response_corpus
          ${CMAKE_CURRENT_SOURCE_DIR}/http/fuzz_response.dict
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(http.fuzz_response PROPERTIES TIMEOUT ${_fuzz_timeout} LABELS http)
