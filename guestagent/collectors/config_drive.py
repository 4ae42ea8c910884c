"""`config_drive`: the block device labelled config-2, read without mounting it.

ISO 9660 drives are read with pycdlib, vfat drives with mtools, so the drive works even where
the kernel cannot mount it. The source's document is the boot metadata:
- the `cfn-init-data` part of the Heat user_data (top level, as heat_local would give it),
  unless the cfn-init-data file already exists (then heat_local owns that data);
- `openstack`: openstack/latest/meta_data.json;
- `ec2`: ec2/latest/meta-data.json.
A drive does not change while the instance runs, so it is read once per collector.
"""

from __future__ import annotations

import email
import email.errors
import io
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from guestagent import jsondoc, process
from guestagent.collectors.base import NOT_MODIFIED, Collected, Collector
from guestagent.errors import SourceNotConfigured, SourceUnavailable

LABELS = ("config-2", "CONFIG-2")
META_DATA = "openstack/latest/meta_data.json"
USER_DATA = "openstack/latest/user_data"
EC2_META_DATA = "ec2/latest/meta-data.json"
BOOT_METADATA_FILE = "/var/lib/heat-cfntools/cfn-init-data"
MAX_FILE = 16 * 1024 * 1024
# Compressed user_data may expand this far, no further (a small image can hold a gzip bomb).
MAX_USER_DATA = 16 * 1024 * 1024
# MIME parts looked at in user_data (Heat writes about five).
MAX_PARTS = 1000
TOOL_TIMEOUT = 30.0
# What pycdlib may raise on a damaged image besides its own exception: it parses structures
# on trust (offsets, lengths, counts), so any of these can come out of a corrupted drive.
_IMAGE_ERRORS = (OSError, ValueError, LookupError, TypeError, AttributeError, ArithmeticError,
                 struct.error, UnicodeError, RecursionError, EOFError, AssertionError)


def find_device(explicit: str | None = None) -> Path | None:
    """The config drive: `explicit` when given, else the device labelled config-2 (blkid)."""
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    for label in LABELS:
        by_label = Path("/dev/disk/by-label") / label
        if by_label.exists():
            return by_label.resolve()
    for label in LABELS:
        out = _tool(["blkid", "-c", "/dev/null", "-t", f"LABEL={label}", "-o", "device"])
        if out is not None and out.strip():
            return Path(out.decode().split()[0])
    return None


class Drive:
    """Read files of one config drive image or device; `read(path)` is None when absent."""

    def __init__(self, device: Path):
        self.device = device
        self.kind = _sniff(device)

    def read(self, relpath: str) -> bytes | None:
        if self.kind == "iso9660":
            return self._read_iso(relpath)
        return self._read_vfat(relpath)

    def _read_iso(self, relpath: str) -> bytes | None:
        import pycdlib
        from pycdlib.pycdlibexception import PyCdlibException

        iso = pycdlib.PyCdlib()
        try:
            with open(self.device, "rb") as fp:
                iso.open_fp(fp)
                try:
                    key = _iso_key(iso, relpath)
                    try:
                        size = iso.get_record(**key).get_data_length()
                    # No such file on the drive. pycdlib 1.15 (the last for Python 3.9) raises
                    # IndexError for a missing name that sorts after every entry of its directory.
                    except (PyCdlibException, IndexError):
                        return None
                    if size > MAX_FILE:
                        raise SourceUnavailable("config_drive", f"{relpath}: larger than {MAX_FILE} bytes")
                    out = io.BytesIO()
                    iso.get_file_from_iso_fp(out, **key)
                    return out.getvalue()
                finally:
                    iso.close()
        except SourceUnavailable:
            raise
        except OSError as exc:
            if exc.strerror:
                raise SourceUnavailable("config_drive", f"{self.device}: {exc.strerror}") from exc
            raise SourceUnavailable("config_drive", f"{self.device}: not a readable ISO 9660 "
                                                    f"image ({exc})") from exc
        except (PyCdlibException,) + _IMAGE_ERRORS as exc:
            raise SourceUnavailable("config_drive", f"{self.device}: not a readable ISO 9660 "
                                                    f"image ({type(exc).__name__}: "
                                                    f"{str(exc)[:200]})") from exc

    def _read_vfat(self, relpath: str) -> bytes | None:
        return _tool(["mtype", "-i", str(self.device), "::/" + relpath],
                     env={"MTOOLS_SKIP_CHECK": "1"}, missing_ok=True)


def _iso_key(iso, relpath: str) -> dict:
    # Nova writes Rock Ridge and Joliet names; plain ISO 9660 names are 8.3 and unusable here.
    if iso.has_rock_ridge():
        return {"rr_path": "/" + relpath}
    if iso.has_joliet():
        return {"joliet_path": "/" + relpath}
    raise SourceUnavailable("config_drive", "ISO image has neither Rock Ridge nor Joliet names")


def _sniff(device: Path) -> str:
    try:
        with open(device, "rb") as fh:
            head = fh.read(34816)
    except OSError as exc:
        raise SourceUnavailable("config_drive", f"{device}: {exc.strerror}") from exc
    if head[32769:32774] == b"CD001":
        return "iso9660"
    if head[510:512] == b"\x55\xaa" and (head[54:57] == b"FAT" or head[82:85] == b"FAT"):
        return "vfat"
    raise SourceUnavailable("config_drive", f"{device}: neither ISO 9660 nor vfat")


def _tool(argv: list[str], env: dict | None = None, missing_ok: bool = False) -> bytes | None:
    """Run a small read-only tool; its stdout, or None (blkid found nothing, mtype no file)."""
    with tempfile.TemporaryDirectory(prefix="guestagent-cd-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        try:
            # Keep up to MAX_FILE + 1 bytes of stdout: one more than allowed tells it is too big.
            result = process.run(argv, stdout_path=out, stderr_path=err,
                                 env=process.child_env(extra=env), timeout=TOOL_TIMEOUT,
                                 stdout_keep=(MAX_FILE + 1, 0))
        except FileNotFoundError:
            raise SourceUnavailable("config_drive", f"{argv[0]} is not installed") from None
        if result.status_code != 0:
            if argv[0] == "blkid" or (missing_ok and "not found" in result.stderr(4096)):
                return None
            raise SourceUnavailable("config_drive", f"{argv[0]} failed ({result.status_code}): "
                                                    f"{result.stderr(4096).strip()[:300]}")
        if result.printed.get("stdout", 0) > MAX_FILE or os.path.getsize(out) > MAX_FILE:
            raise SourceUnavailable("config_drive", f"{argv[-1]}: larger than {MAX_FILE} bytes")
        if result.capture_errors:
            raise SourceUnavailable("config_drive", "; ".join(result.capture_errors.values()))
        return out.read_bytes()


def cfn_init_data(user_data: bytes) -> dict | None:
    """The JSON object in the `cfn-init-data` part of Heat's MIME user_data; None if none.

    gzip-compressed user_data is expanded up to MAX_USER_DATA bytes, no further; a MIME
    structure the parser cannot walk (too deep, too many parts, malformed) is this source's
    error."""
    if user_data[:2] == b"\x1f\x8b":
        user_data = gunzip(user_data, MAX_USER_DATA, USER_DATA)
    try:
        message = email.message_from_bytes(user_data)
        if not message.is_multipart():
            return None
        for count, part in enumerate(message.walk()):
            if count >= MAX_PARTS:
                raise SourceUnavailable("config_drive", f"{USER_DATA}: more than {MAX_PARTS} "
                                                        "MIME parts")
            # By name: Heat gives several parts (cfn-metadata-server, ...) the x-cfninitdata type.
            if part.get_filename() == "cfn-init-data":
                payload = part.get_payload(decode=True) or b""
                return _json_object(payload, f"{USER_DATA} part cfn-init-data")
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError,
            UnicodeError, RecursionError) as exc:
        raise SourceUnavailable("config_drive", f"{USER_DATA}: not readable MIME "
                                                f"({type(exc).__name__}: {str(exc)[:200]})"
                                ) from None
    return None


def gunzip(data: bytes, limit: int, what: str) -> bytes:
    """`data` (gzip) expanded, SourceUnavailable when bad or when it expands past `limit`."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
    try:
        out = inflater.decompress(data, limit + 1)  # never more than limit + 1 bytes in memory
    except zlib.error as exc:
        raise SourceUnavailable("config_drive", f"{what}: bad gzip data ({exc})") from None
    if len(out) > limit:
        raise SourceUnavailable("config_drive", f"{what}: expands to more than {limit} bytes "
                                                "(gzip); refused")
    if not inflater.eof:
        raise SourceUnavailable("config_drive", f"{what}: bad gzip data (truncated)")
    return out


def _json_object(data: bytes, what: str) -> dict:
    try:
        value = jsondoc.loads(data, max_bytes=MAX_FILE)
    except jsondoc.DocumentError as exc:
        raise SourceUnavailable("config_drive", f"{what}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SourceUnavailable("config_drive", f"{what}: must hold a JSON object")
    return value


def read_json(device: Path, relpath: str) -> dict | None:
    """One JSON object file of the drive, None when the drive does not hold it."""
    data = Drive(device).read(relpath)
    return None if data is None else _json_object(data, relpath)


@dataclass
class ConfigDrive(Collector):
    device: str | None = None
    boot_metadata_file: Path = Path(BOOT_METADATA_FILE)
    name: str = "config_drive"
    _document: dict | None = field(default=None, repr=False)
    _absent: bool = field(default=False, repr=False)

    def collect(self, previous=None):
        """The drive's boot metadata (see the module docstring); read once, then NOT_MODIFIED."""
        if self._document is not None:
            return NOT_MODIFIED if previous is not None else Collected(self._document)
        if self._absent:
            raise SourceNotConfigured(f"{self.name}: no block device labelled {LABELS[0]}")
        device = find_device(self.device)
        if device is None:
            if not self.device:
                # Most clouds have no drive; probe once, not on every poll.
                self._absent = True
                raise SourceNotConfigured(f"{self.name}: no block device labelled {LABELS[0]}")
            raise SourceUnavailable(self.name, f"{self.device} does not exist")
        drive = Drive(device)
        document: dict = {}
        user_data = drive.read(USER_DATA)
        if user_data is not None and not self.boot_metadata_file.exists():
            document.update(cfn_init_data(user_data) or {})
        for key, relpath in (("openstack", META_DATA), ("ec2", EC2_META_DATA)):
            data = drive.read(relpath)
            if data is not None:
                document[key] = _json_object(data, relpath)
        if not document:
            raise SourceUnavailable(self.name, f"{device}: holds none of {META_DATA}, "
                                               f"{EC2_META_DATA}, {USER_DATA} (cfn-init-data)")
        self._document = document
        return Collected(document)


def build(options: dict) -> ConfigDrive:
    return ConfigDrive(device=options.get("device") or None,
                       boot_metadata_file=Path(options.get("boot_metadata_file")
                                               or BOOT_METADATA_FILE))
