"""The applier's downloads: verified into staging, each in a file of its own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.applier import download_verified
from reconciler.cancel import Cancellation
from reconciler.errors import HashMismatchError
from reconciler.http import make_session
from reconciler.model import PlannedFile
from reconciler.progress import NullProgress
from reconciler.upstream import UpstreamIndex
from tests.conftest import days_ago
from tests.servers.upstream import FakeFile, FakeUpstream


def test_two_downloads_of_one_file_name_never_share_a_staging_file(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    big = upstream.add_file("dup", FakeFile("dup-1.0-py3-none-any.whl", days_ago(30), size=4 << 20))
    index = UpstreamIndex(upstream.index_url, make_session(None, 4))
    planned = PlannedFile(big.filename, big.sha256, url=f"{upstream.url}/files/{big.filename}")
    handle = NullProgress().file("x", None)

    def fetch(_: int) -> Path:
        return download_verified(index, planned, tmp_path, handle, Cancellation())

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(fetch, range(2))
    assert first != second and first.name == second.name == big.filename
    assert first.stat().st_size == second.stat().st_size == 4 << 20


def test_a_server_sending_more_than_the_index_says_is_cut_off(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    big = upstream.add_file("big", FakeFile("big-1.0-py3-none-any.whl", days_ago(30), size=4 << 20))
    index = UpstreamIndex(upstream.index_url, make_session(None, 4))
    url = f"{upstream.url}/files/{big.filename}"
    planned = PlannedFile(big.filename, big.sha256, url=url, size=1 << 20)
    with pytest.raises(HashMismatchError, match="sent more than the 1048576 bytes"):
        download_verified(index, planned, tmp_path, NullProgress().file("x", None), Cancellation())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
