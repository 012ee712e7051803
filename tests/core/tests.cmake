# core: the misuse report's tests need symbols in their backtraces (-rdynamic, through
# ENABLE_EXPORTS), and one of them runs misuse_helper, a program linked against the
# shared libbraid as users link it (the "called from" line exists only then).
if(TARGET test_core_misuse)
  set_target_properties(test_core_misuse PROPERTIES ENABLE_EXPORTS ON)
  add_executable(braid_misuse_helper ${CMAKE_CURRENT_LIST_DIR}/misuse_helper.c)
  target_link_libraries(braid_misuse_helper PRIVATE braid)
  set_target_properties(braid_misuse_helper PROPERTIES ENABLE_EXPORTS ON)
  braid_warnings(braid_misuse_helper)
  set_property(TEST core.misuse.shared_library_names_the_caller APPEND PROPERTY
               ENVIRONMENT "BRAID_MISUSE_HELPER=$<TARGET_FILE:braid_misuse_helper>")
endif()
