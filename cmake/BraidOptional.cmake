# Optional parts of the library: a layer that needs other libraries (the http layer:
# libcurl, llhttp, libxml2, jansson; MPI: Open MPI) is built when they are there and
# turned off, with one line saying what to install, when they are not. It never fails
# the build unless asked to.
#
#   braid_optional_part(<part>
#     [DESCRIPTION <text>]          how the messages name it ("http layer"); default "<part>"
#     [PKG_MODULES <module>...]     pkg-config modules, with versions if needed
#                                   ("libcurl>=7.68" "libxml-2.0")
#     [PACKAGES <package>...]       find_package() calls, one string each, arguments
#                                   after the name ("MPI COMPONENTS C")
#     [TARGETS <target>...]         the imported targets PACKAGES define (MPI::MPI_C)
#     [FILES <path>...]             files that must exist (sources a package ships
#                                   rather than a library: llhttp's generated C)
#     [APT <debian package>...])    what provides each of PKG_MODULES, then of PACKAGES,
#                                   then of FILES, in that order (for the hint), or nothing
#
# One cache option per part, BRAID_WITH_<PART> (<part> in upper case):
#   AUTO (the default)  on if every dependency is found; otherwise off, with a status
#                       line such as
#                         braid: http layer off: libcurl not found (apt-get install libcurl4-openssl-dev)
#   ON                  a missing dependency is a configure error (the same line)
#   OFF                 off without looking ("braid: http layer off (BRAID_WITH_HTTP=OFF)")
# YES/NO, TRUE/FALSE, Y/N and 1/0 count as ON/OFF, in any case; anything else is an error.
#
# Results, in the caller's scope:
#   BRAID_HAVE_<PART>   ON or OFF
#   BRAID_<PART>_LINK   the targets to link the part's code with: PkgConfig::braid_<part>_<i>
#                       (global imported targets) for the modules, then TARGETS
#   BRAID_<PART>_MISSING the dependencies not found (empty when on, or when OFF)
# and the global property BRAID_OPTIONAL_PARTS lists "<part>=ON|OFF" for each part.
#
# Call it from the top-level CMakeLists.txt, before the directories that build the part:
# targets from find_package are visible in the calling directory and below.
include_guard(GLOBAL)

# Records dependency number i (`name`) as missing, with its Debian package from APT as
# the hint. A macro: it appends to the calling function's lists.
macro(_braid_optional_missing name)
  list(APPEND missing "${name}")
  if(napt GREATER 0)
    list(GET opt_APT ${i} apt)
    list(APPEND hints "${apt}")
  endif()
endmacro()

function(braid_optional_part part)
  cmake_parse_arguments(PARSE_ARGV 1 opt "" "DESCRIPTION"
                        "PKG_MODULES;PACKAGES;TARGETS;FILES;APT")
  if(opt_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "braid_optional_part(${part}): unknown arguments ${opt_UNPARSED_ARGUMENTS}")
  endif()
  string(TOUPPER "${part}" P)
  string(MAKE_C_IDENTIFIER "${P}" P)
  set(what "${part}")
  if(opt_DESCRIPTION)
    set(what "${opt_DESCRIPTION}")
  endif()
  list(LENGTH opt_PKG_MODULES nmod)
  list(LENGTH opt_PACKAGES npkg)
  list(LENGTH opt_FILES nfile)
  list(LENGTH opt_APT napt)
  math(EXPR ndeps "${nmod} + ${npkg} + ${nfile}")
  if(napt GREATER 0 AND NOT napt EQUAL ndeps)
    message(FATAL_ERROR "braid_optional_part(${part}): APT names ${napt} packages for "
                        "${ndeps} dependencies (one per PKG_MODULES entry, then per PACKAGES entry, then per FILES entry)")
  endif()

  set(BRAID_WITH_${P} AUTO CACHE STRING
      "Build the ${what}: AUTO (if its dependencies are found), ON (they must be), OFF")
  set_property(CACHE BRAID_WITH_${P} PROPERTY STRINGS AUTO ON OFF)
  string(TOUPPER "${BRAID_WITH_${P}}" mode)
  if(mode MATCHES "^(ON|YES|TRUE|Y|1)$")
    set(mode ON)
  elseif(mode MATCHES "^(OFF|NO|FALSE|N|0)$")
    set(mode OFF)
  elseif(NOT mode STREQUAL "AUTO")
    message(FATAL_ERROR "braid: BRAID_WITH_${P}=${BRAID_WITH_${P}}: use AUTO, ON or OFF")
  endif()

  set(have OFF)
  set(link "")
  set(missing "")
  set(hints "")
  set(found "")
  if(mode STREQUAL "OFF")
    message(STATUS "braid: ${what} off (BRAID_WITH_${P}=${BRAID_WITH_${P}})")
  else()
    set(i 0)
    if(nmod GREATER 0)
      find_package(PkgConfig QUIET)
    endif()
    foreach(mod IN LISTS opt_PKG_MODULES)
      # the module's name, without a version condition: "libcurl>=7.68" -> libcurl
      string(REGEX REPLACE "[ \t]*[<>=].*$" "" name "${mod}")
      set(prefix braid_${part}_${i})
      string(MAKE_C_IDENTIFIER "${prefix}" prefix)
      if(PKG_CONFIG_FOUND)
        pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL "${mod}")
      endif()
      if(PKG_CONFIG_FOUND AND ${prefix}_FOUND)
        list(APPEND link PkgConfig::${prefix})
        list(APPEND found "${name} ${${prefix}_VERSION}")
      else()
        _braid_optional_missing("${mod}")
      endif()
      math(EXPR i "${i} + 1")
    endforeach()
    foreach(spec IN LISTS opt_PACKAGES)
      separate_arguments(args UNIX_COMMAND "${spec}")
      list(GET args 0 name)
      find_package(${args} QUIET)
      if(${name}_FOUND)
        list(APPEND found "${name} ${${name}_VERSION}")
      else()
        _braid_optional_missing("${name}")
      endif()
      math(EXPR i "${i} + 1")
    endforeach()
    foreach(file IN LISTS opt_FILES)
      if(NOT EXISTS "${file}")
        _braid_optional_missing("${file}")
      endif()
      math(EXPR i "${i} + 1")
    endforeach()
    if(NOT missing)
      foreach(t IN LISTS opt_TARGETS)
        if(NOT TARGET ${t})
          list(APPEND missing "${t}")
        endif()
      endforeach()
      list(APPEND link ${opt_TARGETS})
    endif()

    if(missing)
      string(REPLACE ";" ", " why "${missing}")
      set(why "${why} not found")
      if(nmod GREATER 0 AND NOT PKG_CONFIG_FOUND)
        set(why "${why} (no pkg-config)")
      endif()
      if(hints)
        string(REPLACE ";" " " h "${hints}")
        set(why "${why} (apt-get install ${h})")
      endif()
      if(mode STREQUAL "ON")
        message(FATAL_ERROR "braid: ${what}: ${why}, and BRAID_WITH_${P}=ON requires it "
                            "(or configure with -DBRAID_WITH_${P}=AUTO to build without it)")
      endif()
      message(STATUS "braid: ${what} off: ${why}")
      set(link "")
    else()
      set(have ON)
      string(REPLACE ";" ", " f "${found}")
      string(REGEX REPLACE " +(,|$)" "\\1" f "${f}") # a package without a version
      if(f STREQUAL "")
        message(STATUS "braid: ${what} on")
      else()
        message(STATUS "braid: ${what} on (${f})")
      endif()
    endif()
  endif()

  set(BRAID_HAVE_${P} ${have} PARENT_SCOPE)
  set(BRAID_${P}_LINK "${link}" PARENT_SCOPE)
  set(BRAID_${P}_MISSING "${missing}" PARENT_SCOPE)
  set_property(GLOBAL APPEND PROPERTY BRAID_OPTIONAL_PARTS "${part}=${have}")
endfunction()
