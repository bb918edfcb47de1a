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

# A shared helper that touches keys its caller passes: every key it gives redis.call is one of
# its own parameters, never assigned, and every script passes KEYS[i] there.
GOOD_HELPER = """-- Trims a stream; records what it removed.
--   -- #include trim.lua
local function rg_older(a, b)
  return a < b
end
local function rg_trim(stream, floor, min_id)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first > 0 and rg_older(first[1][1], min_id) then
    redis.call('XTRIM', stream, 'MINID', min_id)
    redis.call('SET', floor, min_id)
  end
end
local function rg_trim_twice(stream, floor, min_id)
  rg_trim(stream, floor, min_id)
  rg_trim(stream, floor, min_id)
end
"""

HELPER_CALLER = """#!lua
-- Trims the stream.
-- KEYS[1]  the stream
-- KEYS[2]  its floor
-- ARGV[1]  the oldest id to keep
-- Returns  1
-- #include trim.lua
local floor = KEYS[2]
rg_trim(KEYS[1], floor, ARGV[1])
return 1
"""


class LuaLintTest(unittest.TestCase):
    def problems_of(self, source, name="probe.lua", embedded=True, libraries=None):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            folder = root / "services" / "probe" / "lua"
            folder.mkdir(parents=True)
            (root / "common").mkdir()
            library_dir = root / lint.LIBRARY_DIR
            library_dir.mkdir(parents=True)
            for library_name, library_source in (libraries or {}).items():
                (library_dir / library_name).write_text(library_source)
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

    def assertProblem(self, source, fragment, libraries=None):
        problems = self.problems_of(source, libraries=libraries)
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

    def test_a_helper_may_touch_the_keys_its_caller_passes_from_keys(self):
        self.assertEqual(self.problems_of(HELPER_CALLER, libraries={"trim.lua": GOOD_HELPER}),
                         [])
        self.assertEqual(self.problems_of(
            HELPER_CALLER.replace("rg_trim(", "rg_trim_twice("),
            libraries={"trim.lua": GOOD_HELPER}), [])

    def test_a_helper_that_builds_a_key_is_refused(self):
        built = GOOD_HELPER.replace("redis.call('SET', floor, min_id)",
                                    "redis.call('SET', 'rg:' .. floor, min_id)")
        self.assertProblem(HELPER_CALLER, "key ''rg:' .. floor' is not one of the helper's "
                           "parameters", libraries={"trim.lua": built})
        other = GOOD_HELPER.replace("redis.call('SET', floor, min_id)",
                                    "redis.call('SET', min_id .. ':floor', min_id)")
        self.assertProblem(HELPER_CALLER, "is not one of the helper's parameters",
                           libraries={"trim.lua": other})

    def test_a_helper_key_that_is_not_a_parameter_is_refused(self):
        local = GOOD_HELPER.replace("  local first =", "  local f = 'rg:x'\n  local first =")
        local = local.replace("redis.call('SET', floor, min_id)", "redis.call('SET', f, min_id)")
        self.assertProblem(HELPER_CALLER, "key 'f' is not one of the helper's parameters",
                           libraries={"trim.lua": local})
        reassigned = GOOD_HELPER.replace("  local first =", "  floor = 'rg:' .. min_id\n"
                                         "  local first =")
        self.assertProblem(HELPER_CALLER, "assigns its key parameter 'floor'",
                           libraries={"trim.lua": reassigned})
        for rebind in ("  for _, floor in ipairs({min_id}) do end\n",
                       "  local function inner(floor) return floor end\n",
                       "  local a, floor = 1, min_id\n"):
            self.assertProblem(HELPER_CALLER, "assigns its key parameter 'floor'", libraries={
                "trim.lua": GOOD_HELPER.replace("  local first =", rebind + "  local first =")})
        through = GOOD_HELPER.replace("  rg_trim(stream, floor, min_id)\n  rg_trim(",
                                      "  rg_trim(stream, floor, min_id)\n  rg_trim('rg:' .. ")
        self.assertProblem(HELPER_CALLER, "rg_trim: key argument 1 ''rg:' .. stream'",
                           libraries={"trim.lua": through})

    def test_a_helper_still_reads_no_keys_or_arguments(self):
        self.assertProblem(HELPER_CALLER, "reads no KEYS or ARGV", libraries={
            "trim.lua": GOOD_HELPER.replace("'MINID', min_id", "'MINID', ARGV[1]")})

    def test_a_script_passes_a_helper_its_keys_from_keys(self):
        helpers = {"trim.lua": GOOD_HELPER}
        self.assertProblem(HELPER_CALLER.replace("rg_trim(KEYS[1]", "rg_trim(ARGV[1]"),
                           "rg_trim: key argument 1 'ARGV[1]' does not come from KEYS",
                           libraries=helpers)
        self.assertProblem(HELPER_CALLER.replace("local floor = KEYS[2]",
                                                 "local floor = 'rg:' .. ARGV[1]"),
                           "rg_trim: key argument 2 'floor' does not come from KEYS",
                           libraries=helpers)
        self.assertProblem(HELPER_CALLER.replace("rg_trim(KEYS[1], floor, ARGV[1])",
                                                 "rg_trim(unpack(KEYS))"),
                           "rg_trim: key argument 1 'unpack(KEYS)'", libraries=helpers)
        self.assertProblem(HELPER_CALLER.replace("rg_trim(KEYS[1], floor, ARGV[1])",
                                                 "local trim = rg_trim\ntrim(ARGV[1], ARGV[1])"),
                           "rg_trim is used other than called", libraries=helpers)

    def test_a_helper_that_writes_makes_its_caller_a_writer(self):
        helpers = {"trim.lua": GOOD_HELPER}
        self.assertProblem(HELPER_CALLER.replace("#!lua", "#!lua flags=no-writes"),
                           "but the script writes", libraries=helpers)

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
