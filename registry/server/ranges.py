"""What a GET/HEAD answers from its conditional and Range headers (RFC 9110 §13, §14), and
the condition of a conditional manifest PUT or DELETE.

A blob is content-addressed and never changes, so its digest is its one validator: the strong
ETag `"<digest>"`. No Last-Modified is sent, so If-Modified-Since and If-Unmodified-Since are
ignored (§13.1.3, §13.1.4: no modification date), and an If-Range holding a date never matches
(§13.1.5), which means the Range is ignored and the whole blob is sent. HEAD is answered as GET
would be (§9.3.2). No I/O: the handlers send what `decide` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multidict import MultiMapping

from registry.server.params import decimal
from registry.storage import WriteCondition

_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_BYTE_RANGE = re.compile(r"([0-9]*)-([0-9]*)")


@dataclass(frozen=True, slots=True)
class Reply:
    """The status to answer; for 200 and 206 the bytes [start, stop) to send."""

    status: int
    start: int = 0
    stop: int = 0

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def sends_blob(self) -> bool:
        """200 or 206; 304, 412 and 416 carry no blob bytes."""
        return self.status in (200, 206)


def decide(headers: MultiMapping[str], size: int, digest: str) -> Reply:
    """The answer to a GET/HEAD of a blob of `size` bytes whose ETag is `"<digest>"`.

    In RFC 9110 §13.2.2 order: If-Match not matching (strong comparison) is 412; If-None-Match
    matching (weak comparison, `*` included) is 304; then one byte range is 206, or 416 when
    it cannot be satisfied. Anything else is 200 with the whole blob: no Range, a Range the
    If-Range validator does not match, a unit other than bytes, several ranges (no multipart
    here) or an invalid range-set (§14.2 lets a server ignore those).
    """
    status = precondition(headers, digest)
    if status is not None:
        return Reply(status)
    whole = Reply(200, 0, size)
    ranges = _field(headers, "Range")
    if ranges is None or not _if_range_holds(_field(headers, "If-Range"), digest):
        return whole
    return _byte_range(ranges, size) or whole


def precondition(headers: MultiMapping[str], digest: str) -> int | None:
    """412 when If-Match does not name `"<digest>"` (strong comparison), 304 when
    If-None-Match does (weak comparison, `*` included), else None: the answer to a GET/HEAD
    of content whose ETag is its digest (a blob, or a manifest by tag or digest)."""
    if_match = _field(headers, "If-Match")
    if if_match is not None and not _tag_listed(if_match, digest, weak=False):
        return 412
    if_none_match = _field(headers, "If-None-Match")
    if if_none_match is not None and _tag_listed(if_none_match, digest, weak=True):
        return 304
    return None


def write_condition(headers: MultiMapping[str], reference: str) -> WriteCondition | None:
    """The If-Match / If-None-Match condition of a manifest PUT or DELETE on `reference`, for
    the store to test when it writes; None without those headers. If-Match compares strongly
    (a weak tag never matches), If-None-Match weakly (§13.1.1, §13.1.2)."""
    if_match = _field(headers, "If-Match")
    if_none_match = _field(headers, "If-None-Match")
    if if_match is None and if_none_match is None:
        return None
    return WriteCondition(
        reference,
        None if if_match is None else _listed(if_match, weak=False),
        None if if_none_match is None else _listed(if_none_match, weak=True))


def _listed(field: str, *, weak: bool) -> frozenset[str]:
    """The entity tags of an If-Match/If-None-Match list ("*" for any); weak ones only where
    the comparison is weak."""
    if field.strip() == "*":
        return frozenset({"*"})
    return frozenset(value for is_weak, value in _ENTITY_TAG.findall(field)
                     if weak or not is_weak)


def _field(headers: MultiMapping[str], name: str) -> str | None:
    """A header's value, its lines joined as one list (§5.3); None when absent."""
    lines = headers.getall(name, [])
    return ", ".join(lines) if lines else None


def _tag_listed(field: str, digest: str, *, weak: bool) -> bool:
    """True if an If-Match/If-None-Match list names the blob (or is `*`)."""
    if field.strip() == "*":
        return True
    return any(value == digest and (weak or not is_weak)
               for is_weak, value in _ENTITY_TAG.findall(field))


def _if_range_holds(field: str | None, digest: str) -> bool:
    """No If-Range, or one holding our strong ETag (a weak tag or a date never matches)."""
    if field is None:
        return True
    tag = _ENTITY_TAG.fullmatch(field.strip())
    return tag is not None and not tag[1] and tag[2] == digest


def _byte_range(field: str, size: int) -> Reply | None:
    """206 or 416 for a single byte range; None to ignore the Range header."""
    unit, equals, range_set = field.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in range_set.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    match = _BYTE_RANGE.fullmatch(specs[0])
    if match is None:
        return None
    first, last = (decimal(text) for text in match.groups())
    if first is not None:  # "a-b" or "a-"
        if last is not None and last < first:
            return None  # invalid, not unsatisfiable
        if first >= size:
            return Reply(416)
        return Reply(206, first, min(last + 1, size) if last is not None else size)
    if last is None:  # "-"
        return None
    suffix = last
    if suffix == 0:
        return Reply(416)
    if size == 0:
        return None  # the last N bytes of nothing: the whole (empty) blob
    return Reply(206, max(size - suffix, 0), size)
