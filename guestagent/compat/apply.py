"""`guestagent apply-config` / `os-apply-config`: render the template tree, or query a key.

Options and exit codes are os-apply-config's: `--key` prints a value (exit 1
when it is missing and there is no `--key-default`, or when it does not match
`--type`); `--boolean-key` exits 0 for true, 1 for false and 255 (os-apply-config's
-1) for anything else; `--print-templates` prints the template root. Rendering
exits 0, or 1 with a message and nothing written.

Which metadata, first that applies: `--metadata` files; `--state-dir` (that
agent's files); `$OS_CONFIG_FILES`; the index `--os-config-files` names; the
index of the agent that started us (`$GUESTAGENT_OS_CONFIG_DIR`); os-collect-config's
index (`$OS_CONFIG_FILES_PATH`, then its old /var/run place). The
`--fallback-metadata` files (Heat's boot metadata by default) are merged first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from guestagent import templates
from guestagent.compat import parser as compat_parser

EXIT_TRUE, EXIT_FALSE, EXIT_NOT_BOOLEAN = 0, 1, 255


def build_parser(prog: str | None = None):
    """The parser of `apply-config`, spelled as os-apply-config's."""
    p = compat_parser(prog, "apply-config", "os-apply-config",
                      "render the os-apply-config template tree against the metadata, "
                      "or print one key")
    p.add_argument("-t", "--templates", type=Path, default=None, metavar="TEMPLATE_ROOT",
                   help="template tree (default $OS_CONFIG_APPLIER_TEMPLATES or "
                        f"{templates.DEFAULT_TEMPLATES})")
    p.add_argument("-o", "--output", type=Path, default=Path("/"), metavar="OUT_DIR",
                   help="root the tree is written under (default /)")
    p.add_argument("-m", "--metadata", type=Path, nargs="*", action="extend", default=[],
                   metavar="METADATA_FILE",
                   help="metadata JSON files, most general first (repeatable); "
                        "overrides $OS_CONFIG_FILES")
    p.add_argument("--fallback-metadata", type=Path, nargs="*",
                   default=list(templates.FALLBACK_METADATA), metavar="FILE",
                   help="files merged before the others when they exist (default: "
                        f"{' '.join(map(str, templates.FALLBACK_METADATA))}); "
                        "give the option alone for none")
    p.add_argument("--os-config-files", type=Path, default=None, metavar="INDEX",
                   help="os_config_files.json listing the metadata files (default "
                        f"$OS_CONFIG_FILES_PATH or {templates.DEFAULT_INDEX})")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="guestagent: use the metadata of the agent with this state directory")
    p.add_argument("-v", "--validate", action="store_true",
                   help="render everything, write nothing")
    p.add_argument("--print-templates", action="store_true",
                   help="print the template root and exit")
    p.add_argument("-s", "--subhash", default=None,
                   help="render against the object at this dotted key instead of the whole")
    p.add_argument("--key", default=None, help="print the value at this dotted key and exit")
    p.add_argument("--type", dest="type_name", default="default",
                   help=f"with --key: fail unless the value is of this type "
                        f"({'|'.join(sorted(templates.TYPES))}; default: default)")
    p.add_argument("--key-default", default=None,
                   help="with --key: print this when the key is missing (not type-checked)")
    p.add_argument("--boolean-key", default=None,
                   help="exit 0 if this key is true, 1 if false, 255 if not a boolean")
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    from guestagent import __version__
    return f"guestagent {__version__}"


def metadata_files(args, environ=None) -> list[Path]:
    """The metadata files, most general first, as the module docstring orders the choices."""
    environ = os.environ if environ is None else environ
    if args.metadata:
        files = list(args.metadata)
    elif args.state_dir is not None:
        from guestagent import config
        directory = config.load(None, {"state_dir": str(args.state_dir)}).settings().os_config_dir
        files = templates.read_index(directory / templates.INDEX_NAME)
    elif environ.get("OS_CONFIG_FILES"):
        files = templates.config_files_from_env(environ)
    elif args.os_config_files is not None:
        files = templates.read_index(args.os_config_files)
    elif environ.get("GUESTAGENT_OS_CONFIG_DIR"):
        files = templates.read_index(Path(environ["GUESTAGENT_OS_CONFIG_DIR"])
                                     / templates.INDEX_NAME)
    else:
        index = Path(environ.get("OS_CONFIG_FILES_PATH") or templates.DEFAULT_INDEX)
        files = templates.read_index(index) or templates.read_index(templates.OLD_INDEX)
    return list(args.fallback_metadata or []) + files


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run apply-config; the exit code is os-apply-config's for the same request."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    name = build_parser(prog).prog
    if args.print_templates:
        print(args.templates or templates.default_templates_dir())
        return 0
    if args.key and args.boolean_key:
        print(f"{name}: --boolean-key is ignored with --key", file=sys.stderr)
    files: list[Path] = []
    try:
        files = metadata_files(args)
        metadata = templates.load_metadata(files)
        if args.key:
            print(templates.query(metadata, args.key, args.type_name, args.key_default))
            return 0
        if args.boolean_key:
            value = templates.boolean_key(metadata, args.boolean_key)
            return EXIT_NOT_BOOLEAN if value is None else EXIT_TRUE if value else EXIT_FALSE
        metadata = templates.sub_tree(metadata, args.subhash)
        if args.validate:
            templates.render_tree(args.templates or templates.default_templates_dir(),
                                  metadata, args.output)
            return 0
        result = templates.apply(metadata, args.templates, args.output)
    except templates.TemplateError as exc:
        listed = ", ".join(str(p) for p in files if p.exists()) or "no file"
        where = f" (metadata: {listed})" if args.key else ""
        print(f"{name}: {exc}{where}", file=sys.stderr)
        return 1
    for path in result.written:
        print(f"wrote {path}", file=sys.stderr)
    for path in result.removed:
        print(f"removed {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
