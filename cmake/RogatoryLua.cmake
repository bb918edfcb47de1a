# Lua scripts as files (issue 17, item 1): each Redis script is a .lua file next to the store
# that runs it, embedded into the binary at build time as a string constant.
#
#   rogatory_embed_lua(<target>
#     HEADER    <path of the generated header, as sources include it>
#     NAMESPACE <C++ namespace of the constants>
#     SCRIPTS   <file.lua>...)
#
# For `fenced_lease_take.lua` the header declares
#   inline constexpr std::string_view kFencedLeaseTake = R"rogatory_lua(...)rogatory_lua";
# and is regenerated when a script changes. Each script starts with Redis 7's `#!lua` line
# and a header naming its KEYS, ARGV and what it returns; tools/lint/lua_scripts.py checks
# the header and that every key a script touches comes from KEYS.
set(ROGATORY_LUA_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_lua.cmake)
set(ROGATORY_LUA_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated/lua)
# Shared helpers a script includes with `-- #include name.lua` (embed_lua.cmake).
file(GLOB ROGATORY_LUA_LIBRARIES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../common/src/lua/lib/*.lua)

function(rogatory_embed_lua target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "HEADER;NAMESPACE" "SCRIPTS")
  if(NOT ARG_HEADER OR NOT ARG_NAMESPACE OR NOT ARG_SCRIPTS)
    message(FATAL_ERROR "rogatory_embed_lua(${target}): HEADER, NAMESPACE and SCRIPTS are required")
  endif()
  set(out ${ROGATORY_LUA_GENERATED_DIR}/${ARG_HEADER})
  set(scripts)
  foreach(script IN LISTS ARG_SCRIPTS)
    get_filename_component(abs ${script} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND scripts ${abs})
  endforeach()
  string(REPLACE ";" "|" scripts_arg "${scripts}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DNAMESPACE=${ARG_NAMESPACE}
            "-DSCRIPTS=${scripts_arg}" -P ${ROGATORY_LUA_EMBED_SCRIPT}
    DEPENDS ${scripts} ${ROGATORY_LUA_LIBRARIES} ${ROGATORY_LUA_EMBED_SCRIPT}
    COMMENT "Embedding Lua scripts into ${ARG_HEADER}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
  target_include_directories(${target} PRIVATE ${ROGATORY_LUA_GENERATED_DIR})
endfunction()
