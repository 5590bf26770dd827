"""Policy rules as pure functions: maturity, yanks, ranges, hash pins, exceptions, advisories."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta, timezone

from packaging.version import Version

from reconciler import policy
from reconciler.model import (
    Advisory,
    Blocked,
    FilesPolicy,
    IgnoredAdvisory,
    PolicyException,
    YankedPolicy,
)
from tests.conftest import (
    FROZEN_NOW,
    days_ago,
    make_config,
    make_file,
    make_project,
    make_requirement,
)

NONE: policy.Advisories = {}


def decide(text: str, project, config=None, advisories=NONE, held=(), unchecked=frozenset()):  # type: ignore[no-untyped-def]
    context = policy.PolicyContext(config or make_config(), FROZEN_NOW, advisories, unchecked)
    return policy.decide(make_requirement(text), project, context, held=held)


def test_mature_pin_is_admitted() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(15)))
    decision = decide("foo==1.0", project)
    assert isinstance(decision, policy.Admitted)
    assert decision.version == Version("1.0")


def test_young_pin_waits_with_eligible_at() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(3)))
    decision = decide("foo==1.0", project)
    assert isinstance(decision, Blocked)
    assert decision.reason == "immature"
    assert decision.eligible_at == days_ago(3) + timedelta(days=14)
    assert "3 days old" in decision.detail


def test_maturity_is_exactly_min_age() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(14)))
    assert isinstance(decide("foo==1.0", project), policy.Admitted)
    project = make_project("foo", make_file("foo", "1.0", days_ago(14) + timedelta(seconds=1)))
    assert isinstance(decide("foo==1.0", project), Blocked)


def test_late_wheel_on_old_release_waits_on_its_own() -> None:
    sdist = make_file("foo", "1.0", days_ago(300), kind="sdist")
    late_wheel = make_file("foo", "1.0", days_ago(2))
    decision = decide("foo==1.0", make_project("foo", sdist, late_wheel))
    assert isinstance(decision, policy.Admitted)
    assert decision.files == (sdist,)
    assert any("wait to mature" in note for note in decision.notes)


def test_missing_upload_time_fails_closed() -> None:
    decision = decide("foo==1.0", make_project("foo", make_file("foo", "1.0", None)))
    assert isinstance(decision, Blocked)
    assert decision.reason == "no-upload-time"
    assert decision.eligible_at is None


def test_range_picks_newest_version_that_passes() -> None:
    project = make_project(
        "foo",
        make_file("foo", "1.0", days_ago(100)),
        make_file("foo", "1.1", days_ago(50)),
        make_file("foo", "1.2", days_ago(2)),
        make_file("foo", "2.0", days_ago(40)),
    )
    decision = decide("foo>=1,<2", project)
    assert isinstance(decision, policy.Admitted)
    assert decision.version == Version("1.1")
    assert [w.version for w in decision.waiting] == ["1.2"]  # said there, not in a note too
    assert not any("1.2" in note for note in decision.notes)


def test_range_with_nothing_mature_reports_earliest_eligibility() -> None:
    project = make_project(
        "foo", make_file("foo", "1.1", days_ago(2)), make_file("foo", "1.0", days_ago(10))
    )
    decision = decide("foo", project)
    assert isinstance(decision, Blocked)
    assert decision.eligible_at == days_ago(10) + timedelta(days=14)
    assert decision.detail == (  # each version's age, the rule once
        "1.1: 2 days old, eligible 2026-12-06 12:00 UTC; "
        "1.0: 10 days old, eligible 2026-11-28 12:00 UTC (policy.min_age_days: 14)"
    )


def test_prereleases_only_when_asked() -> None:
    project = make_project(
        "foo", make_file("foo", "1.0", days_ago(100)), make_file("foo", "2.0rc1", days_ago(100))
    )
    assert decide("foo", project).version == Version("1.0")  # type: ignore[union-attr]
    assert decide("foo>=2.0rc1", project).version == Version("2.0rc1")  # type: ignore[union-attr]


def test_yanked_is_blocked_by_default() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(100), yanked=True))
    decision = decide("foo==1.0", project)
    assert isinstance(decision, Blocked) and decision.reason == "yanked"


def test_allow_pinned_keeps_yanked_pins_but_not_ranges() -> None:
    config = make_config(yanked=YankedPolicy.ALLOW_PINNED)
    yanked = make_file("foo", "1.0", days_ago(100), yanked=True)
    decision = decide("foo==1.0", make_project("foo", yanked), config)
    assert isinstance(decision, policy.Admitted)
    assert decision.files[0].yanked
    assert isinstance(decide("foo>=1", make_project("foo", yanked), config), Blocked)


def test_hash_pins_select_files_and_refuse_mismatch() -> None:
    wheel = make_file("foo", "1.0", days_ago(100))
    sdist = make_file("foo", "1.0", days_ago(100), kind="sdist")
    project = make_project("foo", wheel, sdist)
    context = policy.PolicyContext(make_config(), FROZEN_NOW)
    pinned = make_requirement("foo==1.0", hashes=(wheel.sha256,))  # type: ignore[arg-type]
    decision = policy.decide(pinned, project, context, NONE)
    assert isinstance(decision, policy.Admitted) and decision.files == (wheel,)
    wrong = make_requirement("foo==1.0", hashes=("0" * 64,))
    decision = policy.decide(wrong, project, context, NONE)
    assert isinstance(decision, Blocked) and decision.reason == "hash-mismatch"


def test_advisory_blocks_and_range_falls_back() -> None:
    project = make_project(
        "foo", make_file("foo", "1.0", days_ago(100)), make_file("foo", "1.1", days_ago(100))
    )
    advisories = {("foo", "1.1"): [Advisory("GHSA-1", fixed_in=("1.2",))]}
    decision = decide("foo", project, advisories=advisories)
    assert isinstance(decision, policy.Admitted) and decision.version == Version("1.0")
    blocked = decide("foo==1.1", project, advisories=advisories)
    assert isinstance(blocked, Blocked) and blocked.reason == "vulnerable"
    assert "GHSA-1 (fixed in 1.2)" in blocked.detail


def test_ignore_entry_matches_alias_until_it_expires() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(100)))
    advisories = {("foo", "1.0"): [Advisory("GHSA-1", aliases=("CVE-2026-1",))]}
    live = make_config(ignore=(IgnoredAdvisory("CVE-2026-1", "unused", date(2027, 1, 1)),))
    assert isinstance(decide("foo==1.0", project, live, advisories), policy.Admitted)
    expired = make_config(ignore=(IgnoredAdvisory("CVE-2026-1", "unused", date(2026, 11, 1)),))
    assert isinstance(decide("foo==1.0", project, expired, advisories), Blocked)
    assert policy.expired_entries(expired, FROZEN_NOW) == [
        "ignore entry CVE-2026-1 expired on 2026-11-01; it no longer applies"
    ]


def test_exception_admits_young_version_until_it_expires() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(1)))
    active = PolicyException("foo", Version("1.0"), "hotfix INC-42", date(2026, 12, 31))
    decision = decide("foo==1.0", project, make_config(exceptions=(active,)))
    assert isinstance(decision, policy.Admitted)
    assert "admitted by exception: hotfix INC-42" in decision.notes
    lapsed = PolicyException("foo", Version("1.0"), "hotfix", date(2026, 11, 23))
    assert isinstance(decide("foo==1.0", project, make_config(exceptions=(lapsed,))), Blocked)


def test_a_past_now_never_revives_a_lapsed_exception_or_ignore_entry() -> None:
    """`--now` a month back (or an edited plan's instant) judges maturity then, but an
    exception or ignore entry must be in force at the wall clock too."""
    young = make_project("foo", make_file("foo", "1.0", days_ago(1)))
    lapsed = PolicyException("foo", Version("1.0"), "hotfix", date(2026, 11, 20))
    config = make_config(exceptions=(lapsed,))
    past, later = FROZEN_NOW - timedelta(days=10), FROZEN_NOW
    then = policy.PolicyContext(config, past)
    assert then.exception_for("foo", Version("1.0")) == lapsed
    judged = policy.PolicyContext(config, past, wall_clock=later)
    assert judged.exception_for("foo", Version("1.0")) is None
    assert isinstance(policy.decide(make_requirement("foo==1.0"), young, judged, NONE), Blocked)
    entry = IgnoredAdvisory("CVE-1", "unused", date(2026, 11, 20))
    ignoring = policy.PolicyContext(make_config(ignore=(entry,)), past, wall_clock=later)
    assert ignoring.ignore_entry(Advisory("GHSA-1", aliases=("CVE-1",))) is None


def test_malicious_report_blocks_despite_exception_and_ignore() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(100)))
    config = make_config(
        exceptions=(PolicyException("foo", Version("1.0"), "trust me"),),
        ignore=(IgnoredAdvisory("MAL-2026-1", "nope"),),
    )
    decision = decide("foo==1.0", project, config, {("foo", "1.0"): [Advisory("MAL-2026-1")]})
    assert isinstance(decision, Blocked) and decision.reason == "malicious"


def test_files_policy_filters_sdists_and_wheel_tags() -> None:
    wheel = make_file("foo", "1.0", days_ago(100))
    sdist = make_file("foo", "1.0", days_ago(100), kind="sdist")
    project = make_project("foo", wheel, sdist)
    no_sdist = make_config(files=FilesPolicy(sdist=False))
    assert decide("foo==1.0", project, no_sdist).files == (wheel,)  # type: ignore[union-attr]
    only_linux = make_config(files=FilesPolicy(sdist=False, wheel_patterns=("manylinux*",)))
    decision = decide("foo==1.0", project, only_linux)
    assert isinstance(decision, Blocked) and decision.reason == "no-files"
    pure = make_config(files=FilesPolicy(sdist=False, wheel_patterns=("manylinux*", "any")))
    assert decide("foo==1.0", project, pure).files == (wheel,)  # type: ignore[union-attr]
    cp3 = make_config(files=FilesPolicy(sdist=False, wheel_patterns=("py3-*-*",)))
    assert decide("foo==1.0", project, cp3).files == (wheel,)  # type: ignore[union-attr]


def test_not_found_and_quarantined_projects() -> None:
    assert decide("foo", None).reason == "not-found"  # type: ignore[union-attr]
    project = make_project("foo", make_file("foo", "1.0", days_ago(100)), status="quarantined")
    assert decide("foo", project).reason == "quarantined"  # type: ignore[union-attr]


def test_versions_to_audit_skips_versions_that_fail_other_rules() -> None:
    project = make_project(
        "foo", make_file("foo", "1.0", days_ago(100)), make_file("foo", "1.1", days_ago(1))
    )
    context = policy.PolicyContext(make_config(), FROZEN_NOW)
    assert policy.versions_to_audit(make_requirement("foo"), project, context) == [Version("1.0")]


FIX_PROJECT = make_project(
    "foo",
    make_file("foo", "1.0", days_ago(100)),
    make_file("foo", "1.1", days_ago(5)),  # fixes GHSA-held
    make_file("foo", "1.2", days_ago(4)),  # has its own advisory
)
HELD_ADVISORY = Advisory("GHSA-held", fixed_in=("1.1",))


def test_security_fix_lane_admits_a_young_fix_of_the_held_version() -> None:
    config = make_config(fix_min_age_days=3)
    advisories = {("foo", "1.0"): [HELD_ADVISORY], ("foo", "1.2"): [Advisory("GHSA-new")]}
    decision = decide("foo", FIX_PROJECT, config, advisories, held=[Version("1.0")])
    assert isinstance(decision, policy.Admitted) and decision.version == Version("1.1")
    assert any("security fix: fixes GHSA-held in 1.0; admitted under" in n for n in decision.notes)
    # Not for a version nothing held is affected by, and never at the default (same) age.
    assert isinstance(decide("foo", FIX_PROJECT, config, advisories), Blocked)
    assert isinstance(decide("foo", FIX_PROJECT, None, advisories, held=[Version("1.0")]), Blocked)


def test_security_fix_lane_needs_a_fixed_version_above_the_held_one() -> None:
    config = make_config(fix_min_age_days=3)
    unfixed = {("foo", "1.0"): [Advisory("GHSA-held")]}  # no fixed version known
    assert isinstance(decide("foo", FIX_PROJECT, config, unfixed, held=[Version("1.0")]), Blocked)
    still_affected = {
        ("foo", "1.0"): [HELD_ADVISORY],
        ("foo", "1.1"): [HELD_ADVISORY],
        ("foo", "1.2"): [Advisory("GHSA-new")],
    }
    decision = decide("foo", FIX_PROJECT, config, still_affected, held=[Version("1.0")])
    assert isinstance(decision, Blocked) and "security fix" not in decision.detail


def test_security_fix_lane_stops_at_the_lowest_clean_fix() -> None:
    # 1.1 fixes the held version's advisory; 9.9 came out an hour ago and must not ride along.
    fresh = make_project(
        "foo",
        make_file("foo", "1.0", days_ago(100)),
        make_file("foo", "1.1", days_ago(5)),
        make_file("foo", "9.9", days_ago(0.05)),
    )
    config = make_config(fix_min_age_days=0)
    advisories = {("foo", "1.0"): [HELD_ADVISORY]}
    decision = decide("foo", fresh, config, advisories, held=[Version("1.0")])
    assert isinstance(decision, policy.Admitted) and decision.version == Version("1.1")
    # With a mature fix there is nothing to hurry: the ordinary rules choose, no lane note.
    mature = make_project(
        "foo",
        make_file("foo", "1.0", days_ago(100)),
        make_file("foo", "1.1", days_ago(300)),
        make_file("foo", "9.9", days_ago(0.05)),
    )
    decision = decide("foo", mature, config, advisories, held=[Version("1.0")])
    assert isinstance(decision, policy.Admitted) and decision.version == Version("1.1")
    assert not any("security fix" in n for n in decision.notes)


def test_a_version_no_service_could_check_is_never_admitted() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(100)))
    decision = decide("foo", project, unchecked=frozenset({("foo", "1.0")}))
    assert isinstance(decision, Blocked) and decision.reason == "unchecked"


def test_ignored_advisories_are_named_on_admission() -> None:
    project = make_project("foo", make_file("foo", "1.0", days_ago(100)))
    config = make_config(
        ignore=(IgnoredAdvisory("CVE-1", "unreachable", expires=date(2027, 1, 1)),)
    )
    advisories = {("foo", "1.0"): [Advisory("GHSA-1", aliases=("CVE-1",))]}
    decision = decide("foo==1.0", project, config, advisories)
    assert isinstance(decision, policy.Admitted)
    assert decision.notes == ("GHSA-1 ignored until 2027-01-01: unreachable",)


def test_a_release_listing_one_file_name_twice_is_refused_whole() -> None:
    wheel = make_file("foo", "1.0", days_ago(30))
    other = make_file("foo", "1.0", days_ago(30), sha256="e" * 64)
    decision = decide("foo==1.0", make_project("foo", wheel, other))
    assert isinstance(decision, Blocked) and decision.reason == "ambiguous-file"
    assert decision.detail == "1.0: upstream lists foo-1.0-py3-none-any.whl more than once"


def test_a_file_claiming_a_size_past_the_cap_is_not_taken() -> None:
    wheel = replace(make_file("foo", "1.0", days_ago(30)), size=10**12)
    decision = decide("foo==1.0", make_project("foo", wheel))
    assert isinstance(decision, Blocked) and decision.reason == "too-large"
    assert decision.detail == "1.0: upstream says its files are larger than 8 GiB"
    sdist = make_file("foo", "1.0", days_ago(30), kind="sdist")
    decision = decide("foo==1.0", make_project("foo", wheel, sdist))
    assert isinstance(decision, policy.Admitted) and decision.files == (sdist,)


def test_an_upload_time_in_the_far_future_is_immature_not_an_overflow() -> None:
    from datetime import datetime, timezone

    doomsday = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    decision = decide("foo==1.0", make_project("foo", make_file("foo", "1.0", doomsday)))
    assert isinstance(decision, Blocked) and decision.reason == "immature"
    assert "uploaded on 9999-12-31, in the future" in decision.detail
    assert decision.eligible_at is None


def test_grants_lapse_by_the_utc_day_whatever_the_offset_of_now() -> None:
    lapsed = PolicyException("foo", Version("1.0"), "hotfix", date(2026, 11, 23))
    west = FROZEN_NOW.astimezone(timezone(timedelta(hours=-23)))  # still the 23rd there
    context = policy.PolicyContext(make_config(exceptions=(lapsed,)), west)
    assert context.exception_for("foo", Version("1.0")) is None
