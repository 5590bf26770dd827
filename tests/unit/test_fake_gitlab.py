"""The fake GitLab keeps GitLab's rules (tests/servers/gitlab.py, reference gitlab-api.md)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from tests.servers.gitlab import FakeGitLab, Throttle


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    with server:
        yield server
    assert not server.errors, server.errors[0]


def basic_job(fake: FakeGitLab) -> tuple[str, str]:
    return ("gitlab-ci-token", fake.job_token)


def upload(
    fake: FakeGitLab,
    file_name: str = "demo-1.0-py3-none-any.whl",
    content: bytes = b"wheel bytes",
    name: str = "demo",
    version: str = "1.0",
    **extra: str,
) -> requests.Response:
    fields = {
        "name": name,
        "version": version,
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        ":action": "file_upload",
        **extra,
        "content": (file_name, content, "application/octet-stream"),
    }
    encoder = MultipartEncoder(fields=fields)
    return requests.post(
        f"{fake.api_url}/projects/42/packages/pypi",
        data=encoder,
        headers={"Content-Type": encoder.content_type},
        auth=basic_job(fake),
        timeout=5,
    )


def test_upload_attach_duplicate_and_simple_index(gitlab: FakeGitLab) -> None:
    first = upload(gitlab, requires_python=">=3.8")
    assert first.status_code == 201, first.text
    assert first.json() == {"message": "201 Created"}
    assert gitlab.upload_body_sizes[0] > len(b"wheel bytes")
    assert upload(gitlab, "demo-1.0.tar.gz", b"sdist").status_code == 201
    duplicate = upload(gitlab)
    assert duplicate.status_code == 400
    assert duplicate.json() == {"message": "Validation failed: File name has already been taken"}
    assert len(gitlab.packages) == 1 and len(gitlab.packages[0]["files"]) == 2
    # Exact (name, version) lookup: another spelling is another package.
    assert upload(gitlab, "Demo-1.0-py3-none-any.whl", name="Demo").status_code == 201
    assert len(gitlab.packages) == 2
    assert upload(gitlab, version="not a version").status_code == 400
    assert upload(gitlab, sha256_digest="abc").status_code == 400

    page = requests.get(f"{gitlab.simple_url}/demo/", auth=basic_job(gitlab), timeout=5)
    assert page.status_code == 200 and page.text.count("<a ") == 3
    sha = hashlib.sha256(b"wheel bytes").hexdigest()
    href = f"{gitlab.api_url}/projects/42/packages/pypi/files/{sha}/demo-1.0-py3-none-any.whl"
    assert f'href="{href}#sha256={sha}" data-requires-python="&gt;=3.8"' in page.text
    download = requests.get(href, auth=basic_job(gitlab), timeout=5)
    assert download.content == b"wheel bytes"
    wrong = requests.get(href.replace(sha, "0" * 64), auth=basic_job(gitlab), timeout=5)
    assert wrong.status_code == 404
    root = requests.get(gitlab.simple_url, auth=basic_job(gitlab), timeout=5)
    assert root.text.count("<a ") == 1  # Demo and demo normalise alike


def test_chunked_upload_and_unverified_digest(gitlab: FakeGitLab) -> None:
    encoder = MultipartEncoder(
        fields={
            "name": "demo",
            "version": "2.0",
            "sha256_digest": "f" * 64,
            "content": ("demo-2.0.tar.gz", b"x" * 100_000, "application/octet-stream"),
        }
    )
    body = encoder.to_string()
    response = requests.post(
        f"{gitlab.api_url}/projects/group%2Fmirror/packages/pypi",
        data=iter([body[:5000], body[5000:]]),  # a generator: Transfer-Encoding: chunked
        headers={"Content-Type": encoder.content_type},
        auth=("anyone", gitlab.other_token),
        timeout=5,
    )
    assert response.status_code == 201
    assert gitlab.upload_body_sizes == [len(body)]
    stored = gitlab.packages[0]["files"][0]
    assert stored["file_sha256"] == "f" * 64 and stored["size"] == 100_000
    assert stored["actual_sha256"] == hashlib.sha256(b"x" * 100_000).hexdigest()


def test_credentials_per_route(gitlab: FakeGitLab) -> None:
    gitlab.add_package("demo", "1.0", {"demo-1.0.tar.gz": b"sdist"})
    packages = f"{gitlab.api_url}/projects/42/packages"
    header = {"JOB-TOKEN": gitlab.job_token}
    pypi = requests.get(f"{gitlab.simple_url}/demo", headers=header, timeout=5)
    assert pypi.status_code == 401 and pypi.json() == {"message": "401 Unauthorized"}
    assert requests.get(packages, auth=basic_job(gitlab), timeout=5).status_code == 401
    assert requests.get(packages, headers=header, timeout=5).status_code == 200
    query = requests.get(packages, params={"job_token": gitlab.job_token}, timeout=5)
    assert query.status_code == 200
    mixed = requests.get(packages, headers={"JOB-TOKEN": gitlab.other_token}, timeout=5)
    assert mixed.status_code == 401  # a PAT in JOB-TOKEN is no job token
    ci_login = ("gitlab-ci-token", gitlab.other_token)
    assert requests.get(gitlab.simple_url, auth=ci_login, timeout=5).status_code == 401
    assert requests.get(gitlab.simple_url, auth=("x", gitlab.other_token)).status_code == 200
    bearer = {"Authorization": f"Bearer {gitlab.other_token}"}
    assert requests.get(packages, headers=bearer, timeout=5).status_code == 200
    assert requests.get(f"{packages}/1", headers=header, timeout=5).status_code == 200
    other_project = requests.get(f"{gitlab.api_url}/projects/43/packages", headers=header)
    assert other_project.status_code == 404
    # Reporter cannot upload; developer cannot delete.
    assert upload_as(gitlab, gitlab.note_token).status_code == 403
    delete = requests.delete(f"{packages}/1", headers={"PRIVATE-TOKEN": gitlab.other_token})
    assert delete.status_code == 403 and delete.json() == {"message": "403 Forbidden"}
    user = requests.get(f"{gitlab.api_url}/user", headers={"PRIVATE-TOKEN": gitlab.note_token})
    assert user.json()["id"] == 77 and user.json()["username"] == "mirror-bot"
    assert requests.get(f"{gitlab.api_url}/user", headers=header, timeout=5).status_code == 401
    kinds = [kind for _, _, kind in gitlab.auth_log]
    assert kinds[:3] == ["job-token-header", "basic-job-token", "job-token-header"]
    assert all(gitlab.job_token not in path for _, path in gitlab.request_log)
    assert all(gitlab.job_token not in path for _, path in gitlab.requests)


def upload_as(fake: FakeGitLab, token: str) -> requests.Response:
    encoder = MultipartEncoder(
        fields={"name": "x", "version": "1", "content": ("x-1.tar.gz", b"x", "text/plain")}
    )
    return requests.post(
        f"{fake.api_url}/projects/42/packages/pypi",
        data=encoder,
        headers={"Content-Type": encoder.content_type, "PRIVATE-TOKEN": token},
        timeout=5,
    )


def test_pagination_without_totals(gitlab: FakeGitLab) -> None:
    for i in range(250):
        gitlab.add_package(f"pkg{i:03d}", "1.0", {})
    gitlab.totals_limit = 100
    url = f"{gitlab.api_url}/projects/42/packages"
    headers = {"JOB-TOKEN": gitlab.job_token}
    seen: list[str] = []
    page, pages = "1", 0
    while page:
        response = requests.get(
            url, params={"page": page, "per_page": "500"}, headers=headers, timeout=5
        )
        assert response.headers["x-per-page"] == "100"
        assert "x-total" not in response.headers and "x-total-pages" not in response.headers
        assert 'rel="last"' not in response.headers["Link"]
        seen += [p["name"] for p in response.json()]
        page, pages = response.headers["x-next-page"], pages + 1
    assert pages == 3 and len(seen) == 250 and seen == sorted(seen)
    assert response.headers["x-next-page"] == "" and response.headers["x-prev-page"] == "2"
    assert 'rel="next"' not in response.headers["Link"]
    gitlab.totals_limit = 10000
    response = requests.get(url, params={"per_page": 100}, headers=headers, timeout=5)
    assert response.headers["x-total"] == "250" and response.headers["x-total-pages"] == "3"
    assert 'rel="last"' in response.headers["Link"] and 'rel="next"' in response.headers["Link"]


def test_name_filter_async_delete_and_forwarding(gitlab: FakeGitLab) -> None:
    for name in ("requests", "requests-oauthlib", "urllib3"):
        gitlab.add_package(name, "1.0", {f"{name}-1.0.tar.gz": b"sdist"})
    url = f"{gitlab.api_url}/projects/42/packages"
    headers = {"JOB-TOKEN": gitlab.job_token}
    found = requests.get(url, params={"package_name": "REQUESTS"}, headers=headers, timeout=5)
    assert sorted(p["name"] for p in found.json()) == ["requests", "requests-oauthlib"]
    exact = requests.get(url, params={"package_version": "2.0"}, headers=headers, timeout=5)
    assert exact.json() == []

    assert requests.delete(f"{url}/1", headers=headers, timeout=5).status_code == 204
    assert [p["id"] for p in requests.get(url, headers=headers, timeout=5).json()] == [2, 3]
    assert requests.get(f"{url}/1", headers=headers, timeout=5).status_code == 404
    assert gitlab.packages[0]["status"] == "pending_destruction"
    assert gitlab.package_named("requests", "1.0") is None
    auth = basic_job(gitlab)
    gone = requests.get(f"{gitlab.simple_url}/requests", auth=auth, allow_redirects=False)
    assert gone.status_code == 302
    assert gone.headers["Location"] == "https://pypi.org/simple/requests/"
    gitlab.forwarding = False
    assert requests.get(f"{gitlab.simple_url}/nothing", auth=auth).status_code == 404
    assert gitlab.run_destruction_worker() == 2
    assert [p["id"] for p in gitlab.packages] == [2, 3]

    files = requests.get(f"{url}/2/package_files", headers=headers, timeout=5).json()
    assert files[0]["file_sha256"] == hashlib.sha256(b"sdist").hexdigest()
    assert files[0]["file_md5"] is None and files[0]["size"] == 5
    deleted = requests.delete(f"{url}/2/package_files/{files[0]['id']}", headers=headers)
    assert deleted.status_code == 204
    assert requests.get(f"{url}/2/package_files", headers=headers, timeout=5).json() == []


def test_terraform_lock_and_state(gitlab: FakeGitLab) -> None:
    state = f"{gitlab.api_url}/projects/42/terraform/state/mirror"
    auth = basic_job(gitlab)
    info = {
        "Operation": "apply",
        "Info": "",
        "Who": "me@host",
        "Version": "1",
        "Created": "now",
        "Path": "p",
    }
    assert requests.get(state, auth=auth, timeout=5).status_code == 404
    header = {"JOB-TOKEN": gitlab.job_token}
    assert (
        requests.post(f"{state}/lock", json={"ID": "a", **info}, headers=header).status_code == 401
    )
    assert requests.post(f"{state}/lock", json={"ID": "a"}, auth=auth).status_code == 400
    taken = requests.post(f"{state}/lock", json={"ID": "a", **info}, auth=auth, timeout=5)
    assert taken.status_code == 200
    assert taken.json()["Who"] == "pipeline-user" and taken.json()["ID"] == "a"
    assert requests.get(state, auth=auth, timeout=5).status_code == 204
    again = requests.post(f"{state}/lock", json={"ID": "a", **info, "Info": "mine"}, auth=auth)
    assert again.status_code == 409
    assert again.json()["ID"] == "a" and again.json()["Info"] == "mine"
    # A write without the lock's ID, or with another, is GitLab's unrescued StateLockedError.
    one, two = b'{"serial":1}', b'{"serial":2}'
    assert requests.post(state, data=one, auth=auth, timeout=5).status_code == 500
    assert requests.post(f"{state}?ID=b", data=one, auth=auth).status_code == 500
    assert requests.post(f"{state}?ID=a", data=one, auth=auth).status_code == 200
    assert requests.post(f"{state}?ID=a", data=one, auth=auth).status_code == 422  # same serial
    assert requests.post(f"{state}?ID=a", data=b"", auth=auth).status_code == 204
    assert requests.get(state, auth=auth, timeout=5).content == one
    assert requests.delete(f"{state}/lock?ID=b", auth=auth, timeout=5).status_code == 409
    assert requests.delete(f"{state}/lock", json={"ID": "a"}, auth=auth).status_code == 200
    assert requests.post(state, data=two, auth=auth, timeout=5).status_code == 200
    requests.post(f"{state}/lock", json={"ID": "c", **info}, auth=auth, timeout=5)
    assert requests.delete(f"{state}/lock", auth=auth, timeout=5).status_code == 200  # force
    assert gitlab.locks == {} and gitlab.states["mirror"] == two
    gitlab.job_role = "developer"
    assert requests.post(f"{state}/lock", json={"ID": "d", **info}, auth=auth).status_code == 403
    gitlab.job_role = "maintainer"

    results: list[int] = []

    def race(lock_id: str) -> None:
        response = requests.post(
            f"{state}-race/lock", json={"ID": lock_id, **info}, auth=auth, timeout=5
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=race, args=(str(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [409] * 7


def test_notes(gitlab: FakeGitLab) -> None:
    notes = f"{gitlab.api_url}/projects/42/merge_requests/7/notes"
    job = {"JOB-TOKEN": gitlab.job_token}
    bot = {"PRIVATE-TOKEN": gitlab.note_token}
    gitlab.add_note(7, 5, "alice says hi")
    gitlab.add_note(7, 10, "changed the description", system=True)
    assert requests.post(notes, json={"body": "x"}, headers=job, timeout=5).status_code == 401
    created = requests.post(notes, json={"body": "<!-- plan -->"}, headers=bot, timeout=5)
    assert created.status_code == 201
    note = created.json()
    assert note["author"] == {**note["author"], "id": 77, "username": "mirror-bot"}
    assert note["noteable_type"] == "MergeRequest" and note["noteable_iid"] == 7
    listed = requests.get(notes, headers=job, timeout=5).json()
    assert [n["id"] for n in listed] == [3, 2, 1]  # newest first
    ascending = requests.get(notes, params={"sort": "asc"}, headers=job, timeout=5).json()
    assert [n["id"] for n in ascending] == [1, 2, 3] and ascending[1]["system"] is True
    assert requests.get(f"{notes}/3", headers=job, timeout=5).json()["body"] == "<!-- plan -->"
    alice = {"PRIVATE-TOKEN": gitlab.other_token}
    assert requests.put(f"{notes}/3", data={"body": "y"}, headers=alice).status_code == 403
    assert requests.put(f"{notes}/3", data={"body": "y"}, headers=job).status_code == 401
    edited = requests.put(f"{notes}/3", data={"body": "edited"}, headers=bot, timeout=5)
    assert edited.status_code == 200 and gitlab.notes[2]["body"] == "edited"
    huge = "x" * 1_000_001
    assert requests.post(notes, json={"body": huge}, headers=bot).status_code == 400
    assert requests.post(notes, json={"body": "x" * 1_000_000}, headers=bot).status_code == 201
    assert requests.post(notes, json={"body": "  "}, headers=bot, timeout=5).status_code == 400
    other_mr = f"{gitlab.api_url}/projects/42/merge_requests/8/notes"
    assert requests.get(other_mr, headers=job, timeout=5).status_code == 404
    assert ("POST", "/api/v4/projects/42/merge_requests/7/notes", "job-token-header") in (
        gitlab.auth_log
    )


def test_faults(gitlab: FakeGitLab) -> None:
    upload_path = r"/packages/pypi$"
    gitlab.inject("POST", upload_path, "429", retry_after="3")
    limited = upload(gitlab)
    assert limited.status_code == 429 and limited.text == "Retry later"
    assert limited.headers["Retry-After"] == "3" and "RateLimit-ResetTime" in limited.headers
    gitlab.inject("POST", upload_path, "500")
    assert upload(gitlab).status_code == 500 and gitlab.packages == []
    gitlab.inject("POST", upload_path, "500-after")
    assert upload(gitlab).status_code == 500 and len(gitlab.packages) == 1
    gitlab.inject("POST", upload_path, "reset")
    with pytest.raises(requests.ConnectionError):
        upload(gitlab, "demo-1.0.tar.gz")
    assert len(gitlab.packages[0]["files"]) == 1
    gitlab.inject("POST", upload_path, "reset-after", times=1)
    with pytest.raises(requests.ConnectionError):
        upload(gitlab, "demo-1.0.tar.gz")
    assert len(gitlab.packages[0]["files"]) == 2
    assert upload(gitlab, "demo-1.0.zip").status_code == 201  # faults used up
    assert gitlab.faults_served == ["429", "500", "500-after", "reset", "reset-after"]
    assert gitlab.fault_log[0] == ("POST", "/api/v4/projects/42/packages/pypi", "429")
    assert gitlab.count("/api/v4/projects/42/packages/pypi", method="POST") == 6
    assert len(gitlab.upload_body_sizes) == 6 and gitlab.statuses[0] == 2  # resets


def test_a_throttle_counts_each_caller_per_fixed_window(gitlab: FakeGitLab) -> None:
    now = [1_000_040.0]  # 20 s into a 60 s window (windows start at multiples of the period)
    gitlab.throttle = Throttle(limit=2, period=60, clock=lambda: now[0])
    url = f"{gitlab.api_url}/projects/42/packages"
    job = {"JOB-TOKEN": gitlab.job_token}
    answers = [requests.get(url, headers=job, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert [a.headers["RateLimit-Observed"] for a in answers] == ["1", "2", "3"]
    assert {a.headers["RateLimit-Reset"] for a in answers} == {"1000080"}
    assert answers[2].text == "Retry later" and answers[2].headers["Retry-After"] == "40"
    assert "RateLimit-ResetTime" in answers[2].headers and gitlab.throttled == 1
    other = {"PRIVATE-TOKEN": gitlab.other_token}  # another user: a count of its own
    assert requests.get(url, headers=other, timeout=5).status_code == 200
    now[0] += 40  # the next window
    assert requests.get(url, headers=job, timeout=5).headers["RateLimit-Remaining"] == "1"
