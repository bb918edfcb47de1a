# rogatory-deadline-bench: the deadline engine under load (issue 11). Included from
# tools/bench/CMakeLists.txt.
add_executable(rogatory-deadline-bench ${CMAKE_CURRENT_LIST_DIR}/deadline_bench.cc)
target_link_libraries(rogatory-deadline-bench PRIVATE rogatory_deadlines rogatory_common)
target_compile_definitions(rogatory-deadline-bench PRIVATE
  ROGATORY_DEADLINES_DATA_DIR="${PROJECT_SOURCE_DIR}/services/deadlines/data")
rogatory_target_defaults(rogatory-deadline-bench)
