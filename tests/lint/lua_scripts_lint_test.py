#!/usr/bin/env python3
"""tools/lint/lua_scripts.py finds what it promises to find, and the tree passes it.

Each case writes one script into a scratch tree shaped like the repository and checks that
the lint names the problem (or none, for the good scripts).
"""

import importlib.util
import pathlib
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("lua_scripts", ROOT / "tools/lint/lua_scripts.py")
lint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lint)

GOOD_WRITER = """#!lua
-- Adds a member.
-- KEYS[1]  the set
-- KEYS[2]  the index
-- ARGV[1]  the member
-- Returns  1 when added
local set = KEYS[1]
redis.call('SADD', set, ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

GOOD_READER = """#!lua flags=no-writes
-- Reads every hash it is given.
-- KEYS[1..]  the hashes
-- Returns    their field lists, in KEYS order
local out = {}
for _, key in ipairs(KEYS) do
  out[#out + 1] = redis.call('HGETALL', key)
end
for i = 1, #KEYS do
  out[#out + 1] = redis.call('EXISTS', KEYS[i])
end
return out
"""


class LuaLintTest(unittest.TestCase):
    def problems_of(self, source, name="probe.lua", embedded=True):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            folder = root / "services" / "probe" / "lua"
            folder.mkdir(parents=True)
            (root / "common").mkdir()
            (folder / name).write_text(source)
            cmake = f"rogatory_embed_lua(x SCRIPTS lua/{name})" if embedded else ""
            (root / "services" / "probe" / "CMakeLists.txt").write_text(cmake)
            saved = lint.PENDING
            lint.PENDING = set()
            try:
                _, problems = lint.check_tree(root)
            finally:
                lint.PENDING = saved
            return problems

    def assertProblem(self, source, fragment):
        problems = self.problems_of(source)
        self.assertTrue(any(fragment in p for p in problems),
                        f"expected a problem with {fragment!r}, got {problems}")

    def test_good_scripts_pass(self):
        self.assertEqual(self.problems_of(GOOD_WRITER), [])
        self.assertEqual(self.problems_of(GOOD_READER), [])

    def test_a_key_built_inside_the_script_is_refused(self):
        self.assertProblem(GOOD_WRITER.replace("redis.call('SADD', set, ARGV[1])",
                                               "redis.call('SADD', 'rg:' .. ARGV[1], 1)"),
                           "does not come from KEYS")

    def test_a_name_assigned_from_an_argument_is_not_a_key(self):
        self.assertProblem(GOOD_WRITER.replace("local set = KEYS[1]",
                                               "local set = KEYS[1]\nset = ARGV[1]"),
                           "key 'set' does not come from KEYS")

    def test_every_key_of_a_multi_key_command_is_checked(self):
        self.assertProblem(GOOD_WRITER.replace("return 1", "redis.call('DEL', KEYS[1], "
                                               "'other')\nreturn 1"), "key ''other''")
        self.assertProblem(GOOD_WRITER.replace("return 1", "redis.call('RENAME', KEYS[1], "
                                               "ARGV[1])\nreturn 1"), "key 'ARGV[1]'")

    def test_the_key_of_a_container_command_follows_its_subcommand(self):
        self.assertEqual(self.problems_of(GOOD_WRITER.replace(
            "return 1", "redis.pcall('XINFO', 'STREAM', KEYS[2])\nreturn 1")), [])
        self.assertProblem(GOOD_WRITER.replace("return 1", "redis.pcall('XINFO', 'STREAM', "
                                               "ARGV[1])\nreturn 1"), "key 'ARGV[1]'")

    def test_the_keys_after_a_leading_numkeys_are_checked(self):
        intersect = "redis.call('ZINTERCARD', 2, KEYS[1], KEYS[2])\nreturn 1"
        self.assertEqual(self.problems_of(GOOD_WRITER.replace("return 1", intersect)), [])
        self.assertProblem(GOOD_WRITER.replace("return 1", intersect.replace(
            "KEYS[2]", "'rg:' .. ARGV[1]")), "ZINTERCARD: key ''rg:' .. ARGV[1]'")
        self.assertProblem(GOOD_WRITER.replace("return 1", intersect.replace(
            ", 2,", ", ARGV[1],")), "cannot tell which arguments are keys")

    def test_the_first_line_names_the_flags(self):
        self.assertProblem(GOOD_WRITER.replace("#!lua\n", ""), "first line")
        self.assertProblem(GOOD_READER.replace("#!lua flags=no-writes", "#!lua"),
                           "only reads")
        self.assertProblem(GOOD_WRITER.replace("#!lua", "#!lua flags=no-writes"),
                           "but the script writes")
        self.assertProblem(GOOD_WRITER.replace("#!lua", "#!lua flags=allow-cross-slot-keys"),
                           "not allowed")

    def test_the_header_names_keys_arguments_and_result(self):
        self.assertProblem(GOOD_WRITER.replace("-- ARGV[1]  the member\n", ""),
                           "ARGV[1] is not named in the header")
        self.assertProblem(GOOD_WRITER.replace("-- KEYS[2]  the index\n", ""),
                           "KEYS[2] is not named in the header")
        self.assertProblem(GOOD_WRITER.replace("-- Returns  1 when added\n", ""),
                           "what the script returns")
        self.assertProblem(GOOD_READER.replace("KEYS[1..]", "KEYS[1]"),
                           "indexed by a variable")

    def test_commands_are_literal_and_time_is_an_argument(self):
        self.assertProblem(GOOD_WRITER.replace("'SADD'", "ARGV[1]"), "string literal")
        self.assertProblem(GOOD_WRITER.replace("return 1", "redis.call('TIME')\nreturn 1"),
                           "TIME")

    def test_a_comment_is_not_code(self):
        self.assertEqual(self.problems_of(GOOD_WRITER.replace(
            "return 1", "-- redis.call('DEL', 'rg:' .. x)\nreturn 1")), [])

    def test_a_script_nothing_embeds_is_reported(self):
        problems = self.problems_of(GOOD_WRITER, embedded=False)
        self.assertTrue(any("no CMakeLists.txt embeds it" in p for p in problems), problems)

    def test_includes_name_an_existing_library(self):
        self.assertEqual(self.problems_of(GOOD_WRITER.replace(
            "return 1", "-- #include event_sequence.lua\nreturn 1")),
            ["services/probe/lua/probe.lua: includes event_sequence.lua, which "
             "common/src/lua/lib lacks"])

    def test_lua_in_cpp_is_reported(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            (root / "common" / "src").mkdir(parents=True)
            (root / "services").mkdir()
            (root / "common" / "src" / "store.cc").write_text(
                'const char* k = R"lua(redis.call("GET", KEYS[1]))lua";\n')
            saved = lint.PENDING
            lint.PENDING = set()
            try:
                _, problems = lint.check_tree(root)
            finally:
                lint.PENDING = saved
            self.assertTrue(any("store.cc: holds Lua" in p for p in problems), problems)

    def test_the_tree_passes(self):
        scripts, problems = lint.check_tree(ROOT)
        self.assertEqual(problems, [])
        self.assertGreater(len(scripts), 0)


if __name__ == "__main__":
    sys.argv[1:] = []
    unittest.main(verbosity=2)
