# Warnings for braid's own targets: probed, so an older compiler just skips what it lacks.
include(CheckCCompilerFlag)
set(BRAID_WARNINGS "")
foreach(flag -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow
             -Wpointer-arith -Wcast-align -Wformat=2 -Wvla -Wnull-dereference
             -Wimplicit-fallthrough -Wundef -Wno-unused-parameter)
  string(MAKE_C_IDENTIFIER "HAVE${flag}" var)
  check_c_compiler_flag(${flag} ${var})
  if(${var})
    list(APPEND BRAID_WARNINGS ${flag})
  endif()
endforeach()
option(BRAID_WERROR "Treat warnings as errors" OFF)
if(BRAID_WERROR)
  list(APPEND BRAID_WARNINGS -Werror)
endif()

function(braid_warnings target)
  target_compile_options(${target} PRIVATE ${BRAID_WARNINGS})
endfunction()
