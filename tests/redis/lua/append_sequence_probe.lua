#!lua flags=no-writes
-- Runs the shared helper event_sequence.lua on bytes C++ serialized (lua_library_test.cc).
--
-- ARGV[1]  a serialized rogatory.common.v1.Event without its sequence
-- ARGV[2]  the sequence number to append
-- Returns  the bytes with the sequence appended
-- #include event_sequence.lua
return rg_append_sequence(ARGV[1], tonumber(ARGV[2]))
