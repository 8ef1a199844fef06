"""One import from start to end, shared by the API and the command line: the source's
mapping, the file read and checked whole, then one unit of work (retried once if
another import of the same lines committed first on PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from app.auth.service import Principal
from app.cardguard import check_fields
from app.db import Database
from app.errors import Conflict, Invalid
from app.i18n import N_
from app.reconciliation import csvfile, repository, service
from app.reconciliation.models import PaymentImport

# Largest file taken (bytes): a year of a busy charity's bank statement is far less.
MAX_IMPORT_BYTES = 20 * 1024 * 1024
Progress = Callable[[int, int], None]


class FileRefused(Invalid):
    """A file with problems: none of it is imported."""

    code = "bad_file"

    def __init__(self, parsed: csvfile.ParsedFile) -> None:
        count = len(parsed.problems) + parsed.more_problems
        super().__init__(
            N_("the file was not imported: {count} problem")
            if count == 1
            else N_("the file was not imported: {count} problems"),
            field="file",
            count=count,
        )
        self.problems = parsed.problems
        self.more_problems = parsed.more_problems

    def body(self, language: str = "en") -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "problems": [p.as_dict(language) for p in self.problems],
            "more_problems": self.more_problems,
        }


async def import_file(
    db: Database,
    principal: Principal | None,
    *,
    source_name: str,
    campaign_id: int,
    data: bytes,
    filename: str,
    reading: Progress | None = None,
    recording: Progress | None = None,
) -> PaymentImport:
    service.check_role(principal)
    check_fields({"filename": filename})
    if len(filename) > 200:
        raise Invalid("at most 200 characters", field="filename")
    async with db.read() as session:
        source = await repository.source_by_name(session, source_name)
    # The card guard reads every cell: off the event loop, so screens stay served.
    parsed = await asyncio.to_thread(csvfile.parse, data, service.mapping_of(source), reading)
    if parsed.problems:
        raise FileRefused(parsed)
    digest = hashlib.sha256(data).hexdigest()
    for attempt in range(2):
        try:
            async with db.unit_of_work() as uow:
                return await service.import_lines(
                    uow,
                    principal,
                    source,
                    campaign_id,
                    parsed.lines,
                    filename=filename,
                    file_sha256=digest,
                    progress=recording,
                )
        except IntegrityError as exc:
            # Another import of these lines committed first: again, they are known now.
            if attempt:
                raise Conflict("another import of this file is under way") from exc
    raise AssertionError("unreachable")
