#!/usr/bin/python3
"""The API reference (docs/api-reference.md), made from the protos and their comments.

    tools/docs/api_reference.py            # prints the reference (Markdown)
    tools/docs/api_reference.py --write    # replaces docs/api-reference.md
    tools/docs/api_reference.py --check    # exit 1 if docs/api-reference.md differs (a test)

The protos are the product's face and their comments its documentation; this page is never
edited by hand, so it cannot drift from them. Under each RPC it adds who may call it, from
the role table the services enforce (common/src/rpc_roles.cc, via rpc_roles_table.py). It runs protoc (PROTOC, default
/usr/bin/protoc) for a descriptor set with source info and renders, per package: its
services with every RPC (request, response, streaming, comment), then its messages (each
field with its number, type and comment) and its enums (each value with its comment).
Output is deterministic (files and declarations in source order, no clock).
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import rpc_roles_table  # noqa: E402  (the role x RPC table the services enforce)

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
OUT = REPO / "docs" / "api-reference.md"

# The packages a client calls, in the order a reader meets them. Bench and google.rpc are
# left out: the first is a benchmark baseline, the second Google's own, documented there.
PACKAGES = [
    ("rogatory/intake/v1", "Intake: requests and their lifecycle"),
    ("rogatory/routing/v1", "Translation-routing: routing decisions and translation jobs"),
    ("rogatory/deadlines/v1", "Deadline-tracking: legal time limits"),
    ("rogatory/notification/v1", "Notification: inboxes, streams and webhooks"),
    ("rogatory/admin/v1", "Administration: audit and the test clock"),
    ("rogatory/events/v1", "Events between services (service-to-service only)"),
    ("rogatory/common/v1", "Shared types and events"),
]

# FieldDescriptorProto.Type -> the name a proto file uses.
SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}

# Paths into FileDescriptorProto, as SourceCodeInfo numbers them.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2


def proto_files() -> list[str]:
    files = []
    for package, _ in PACKAGES:
        files += sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / package).glob("*.proto"))
    return files


def descriptor_set(files: list[str]) -> descriptor_pb2.FileDescriptorSet:
    protoc = os.environ.get("PROTOC", "/usr/bin/protoc")
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "set.pb"
        subprocess.run([protoc, f"-I{PROTO_ROOT}", "--include_source_info",
                        f"--descriptor_set_out={out}", *files], check=True)
        result = descriptor_pb2.FileDescriptorSet()
        result.ParseFromString(out.read_bytes())
        return result


class Comments:
    """The leading comments of one file's declarations, by source path."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto):
        self.by_path = {tuple(loc.path): loc for loc in file.source_code_info.location}

    def file_header(self) -> str:
        """The comment above `syntax` (field 12 of FileDescriptorProto): the file's own."""
        loc = self.by_path.get((12,))
        if loc is None:
            return ""
        return "\n\n".join(strip(c) for c in [*loc.leading_detached_comments,
                                                  loc.leading_comments] if c.strip())

    def __call__(self, *path: int) -> str:
        loc = self.by_path.get(tuple(path))
        if loc is None:
            return ""
        return strip(loc.leading_comments or loc.trailing_comments)


def strip(text: str) -> str:
    """A comment's text without the one space protoc keeps after each `//`."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(lines).strip()


def one_line(text: str) -> str:
    """A comment as one table cell: paragraphs joined, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def anchor(full_name: str) -> str:
    return full_name.replace(".", "").lower()


def type_name(field: descriptor_pb2.FieldDescriptorProto, local_package: str) -> str:
    if field.type in SCALARS:
        return SCALARS[field.type]
    name = field.type_name.lstrip(".")
    if name.startswith("google.protobuf."):
        return name
    shown = name[len(local_package) + 1:] if name.startswith(local_package + ".") else name
    return f"[{shown}](#{anchor(name)})"


def field_type(field, local_package: str, maps: dict[str, tuple[str, str]]) -> str:
    if field.type_name.lstrip(".") in maps:
        key, value = maps[field.type_name.lstrip(".")]
        return f"map<{key}, {value}>"
    text = type_name(field, local_package)
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        return f"repeated {text}"
    if field.proto3_optional:
        return f"optional {text}"
    return text


def who_may_call() -> dict[tuple[str, str], str]:
    """(service short name, method) -> who may call it, from the enforced role table:
    "issuing: issuing side; ...; translator: —"."""
    found = {}
    for service, method, grants, _note in rpc_roles_table.rows():
        short = service.split(" ")[-1]  # "admin AuditService" -> "AuditService"
        cells = [f"{column}: {rpc_roles_table.CELLS[g]}"
                 for column, g in zip(rpc_roles_table.COLUMNS, grants)]
        found[(short, method)] = "; ".join(cells)
    return found


def render_service(out: list[str], service, path: tuple, package: str, comments: Comments,
                   roles: dict[tuple[str, str], str]):
    full = f"{package}.{service.name}"
    out.append(f"### service {service.name}\n")
    out.append(f"<a id=\"{anchor(full)}\"></a>`{full}`\n")
    if comments(*path):
        out.append(comments(*path) + "\n")
    for i, method in enumerate(service.method):
        request = ("stream " if method.client_streaming else "") + type_name(
            descriptor_pb2.FieldDescriptorProto(type_name=method.input_type,
                                                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE),
            package)
        response = ("stream " if method.server_streaming else "") + type_name(
            descriptor_pb2.FieldDescriptorProto(type_name=method.output_type,
                                                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE),
            package)
        out.append(f"#### {service.name}.{method.name}\n")
        out.append(f"`rpc {method.name}` ({request}) returns ({response})\n")
        text = comments(*path, SERVICE_METHOD, i)
        if text:
            out.append(text + "\n")
        who = roles.get((service.name, method.name))
        if who:
            out.append(f"Who may call (the role table): {who}.\n")


def map_entries(message, prefix: str, found: dict[str, tuple[str, str]], package: str):
    for nested in message.nested_type:
        name = f"{prefix}.{nested.name}"
        if nested.options.map_entry:
            key, value = nested.field[0], nested.field[1]
            found[name] = (type_name(key, package), type_name(value, package))
        map_entries(nested, name, found, package)


def render_enum(out: list[str], enum, path: tuple, prefix: str, comments: Comments):
    full = f"{prefix}.{enum.name}"
    out.append(f"<a id=\"{anchor(full)}\"></a>\n#### enum {full.split('.', 3)[-1]}\n")
    if comments(*path):
        out.append(comments(*path) + "\n")
    out.append("| value | number | meaning |\n|---|---|---|")
    for i, value in enumerate(enum.value):
        out.append(f"| `{value.name}` | {value.number} | "
                   f"{one_line(comments(*path, ENUM_VALUE, i))} |")
    out.append("")


def render_message(out: list[str], message, path: tuple, prefix: str, package: str,
                   comments: Comments, maps: dict[str, tuple[str, str]]):
    if message.options.map_entry:
        return
    full = f"{prefix}.{message.name}"
    out.append(f"<a id=\"{anchor(full)}\"></a>\n#### message {full[len(package) + 1:]}\n")
    if comments(*path):
        out.append(comments(*path) + "\n")
    if message.field:
        out.append("| field | number | type | meaning |\n|---|---|---|---|")
        for i, field in enumerate(message.field):
            oneof = ""
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneof = f" (oneof `{message.oneof_decl[field.oneof_index].name}`)"
            out.append(f"| `{field.name}` | {field.number} | "
                       f"{field_type(field, package, maps)}{oneof} | "
                       f"{one_line(comments(*path, MESSAGE_FIELD, i))} |")
        out.append("")
    else:
        out.append("No fields.\n")
    for i, enum in enumerate(message.enum_type):
        render_enum(out, enum, path + (MESSAGE_ENUM, i), full, comments)
    for i, nested in enumerate(message.nested_type):
        render_message(out, nested, path + (MESSAGE_NESTED, i), full, package, comments, maps)


def render(descriptors: descriptor_pb2.FileDescriptorSet) -> str:
    files = {f.name: f for f in descriptors.file}
    roles = who_may_call()
    out = [
        "# Rogatory API reference",
        "",
        "Generated from the comments in `protos/` by `tools/docs/api_reference.py --write`;",
        "do not edit by hand (`api_reference_generated_test` fails when this page and the",
        "protos differ). \"Who may call\" under each RPC is the role table the services enforce",
        "(`common/src/rpc_roles.cc`; cells explained in the README's Security section): ✓ every",
        "call, reach: requests in the caller's reach, own: its own inbox, subscriptions or jobs,",
        "issuing / executing / either side: requests on which it acts for that side, —: refused.",
        "",
        "## Packages",
        "",
    ]
    for package_dir, title in PACKAGES:
        out.append(f"- [{title}](#{package_dir.replace('/', '').lower()}) "
                   f"(`{package_dir.replace('/', '.')}`)")
    out.append("")
    for package_dir, title in PACKAGES:
        out.append(f"<a id=\"{package_dir.replace('/', '').lower()}\"></a>\n## {title}\n")
        for name in sorted(n for n in files if n.startswith(package_dir + "/")):
            file = files[name]
            comments = Comments(file)
            package = file.package
            out.append(f"`protos/{name}`\n")
            header = comments.file_header()
            if header:
                out.append(header + "\n")
            for i, service in enumerate(file.service):
                render_service(out, service, (FILE_SERVICE, i), package, comments, roles)
            maps: dict[str, tuple[str, str]] = {}
            for message in file.message_type:
                map_entries(message, f"{package}.{message.name}", maps, package)
            if file.message_type or file.enum_type:
                out.append(f"### Messages and enums of `{name}`\n")
            for i, message in enumerate(file.message_type):
                render_message(out, message, (FILE_MESSAGE, i), package, package, comments, maps)
            for i, enum in enumerate(file.enum_type):
                render_enum(out, enum, (FILE_ENUM, i), package, comments)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace " + str(OUT.relative_to(REPO)))
    mode.add_argument("--check", action="store_true", help="exit 1 if it differs")
    args = parser.parse_args()
    text = render(descriptor_set(proto_files()))
    if args.write:
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
        return 0
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(True), text.splitlines(True),
            str(OUT.relative_to(REPO)), "generated from protos/", n=1))
        print(f"\n{OUT.relative_to(REPO)} is stale: run tools/docs/api_reference.py --write",
              file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
