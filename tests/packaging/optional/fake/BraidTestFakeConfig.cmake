# A package for packaging.optional_parts: found by find_package(BraidTestFake CONFIG)
# through BraidTestFake_DIR, it defines one imported target and a version.
set(BraidTestFake_VERSION 2.5)
if(NOT TARGET BraidTestFake::fake)
  add_library(BraidTestFake::fake INTERFACE IMPORTED)
endif()
